// SPDX-License-Identifier: MIT
#pragma once
// The templates behind gipc::pool (<gipc/pool.hpp>): packing a task as data, running it in a
// worker, and completing its future. Not part of the API: names here may change.

#include <gipc/detail/export.hpp>
#include <gipc/detail/spawn.hpp>

#include <boost/fiber/condition_variable.hpp>
#include <boost/fiber/future.hpp>
#include <boost/fiber/mutex.hpp>

#include <msgpack.hpp>

#include <atomic>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace gipc::detail {

// unwrap_ref_value is the object an argument refers to: itself, or what a reference_wrapper holds.
template <class T>
struct is_reference_wrapper : std::false_type {};
template <class T>
struct is_reference_wrapper<std::reference_wrapper<T>> : std::true_type {};
template <class A>
auto& unwrap_ref_value(A& a) noexcept
{
    if constexpr (is_reference_wrapper<std::remove_cv_t<A>>::value)
        return a.get();
    else
        return a;
}

template <class F>
struct function_pointer_result {
    using type = void;
};
template <class R, class... P>
struct function_pointer_result<R (*)(P...)> {
    using type = R;
};
template <class R, class... P>
struct function_pointer_result<R (*)(P...) noexcept> {
    using type = R;
};

template <class F>
struct task_result {
    using type = std::remove_cvref_t<typename function_pointer_result<
        std::conditional_t<spawn_target<F>, decltype(+std::declval<F&>()), void>>::type>;
};
template <class F>
    requires(spawn_target<F>)
struct task_result<F> {
    using type = std::remove_cvref_t<typename function_pointer_result<decltype(+std::declval<F&>())>::type>;
};

// pool_sink completes one task's future.
class GIPC_EXPORT pool_sink {
public:
    virtual ~pool_sink() = default;
    // deliver converts the task's packed result; a conversion failure fails the future.
    virtual void deliver(const msgpack::object& result) noexcept = 0;
    virtual void fail(std::exception_ptr e) noexcept = 0;
};

// sink_handle holds a task's sink: owned (submit: the promise of the future it returned) or
// borrowed (map: a slot of the map call, which waits for every task it submitted). A borrowed
// sink whose task is dropped without an outcome is failed, so that its map never waits for
// it; an owned one is destroyed, which breaks its promise.
class sink_handle {
public:
    sink_handle() noexcept = default;
    static sink_handle owned(std::unique_ptr<pool_sink> s) noexcept { return sink_handle(s.release(), true); }
    static sink_handle borrowed(pool_sink* s) noexcept { return sink_handle(s, false); }
    sink_handle(sink_handle&& o) noexcept : p_(std::exchange(o.p_, nullptr)), owned_(o.owned_) {}
    sink_handle& operator=(sink_handle&& o) noexcept
    {
        if (this != &o) {
            reset();
            p_ = std::exchange(o.p_, nullptr);
            owned_ = o.owned_;
        }
        return *this;
    }
    sink_handle(const sink_handle&) = delete;
    sink_handle& operator=(const sink_handle&) = delete;
    ~sink_handle() { reset(); }

    explicit operator bool() const noexcept { return p_ != nullptr; }
    // deliver and fail give the task's outcome to the sink, then let go of it.
    void deliver(const msgpack::object& result) noexcept
    {
        p_->deliver(result);
        done();
    }
    void fail(std::exception_ptr e) noexcept
    {
        p_->fail(std::move(e));
        done();
    }

private:
    sink_handle(pool_sink* p, bool owned) noexcept : p_(p), owned_(owned) {}
    GIPC_EXPORT static void drop(pool_sink* borrowed) noexcept; // fails it: the task was dropped (pool.cpp)
    void done() noexcept
    {
        if (owned_)
            delete p_;
        p_ = nullptr;
    }
    void reset() noexcept
    {
        if (p_ && !owned_)
            drop(p_);
        done();
    }
    pool_sink* p_ = nullptr;
    bool owned_ = false;
};

template <class R>
class promise_sink final : public pool_sink {
public:
    boost::fibers::future<R> future() { return promise_.get_future(); }
    void deliver(const msgpack::object& result) noexcept override
    {
        try {
            if constexpr (std::is_void_v<R>)
                promise_.set_value();
            else
                promise_.set_value(result.as<R>());
        } catch (const std::exception& e) {
            fail(std::make_exception_ptr(decode_error(std::string("gipc: the result of a pool task: ") + e.what())));
        }
    }
    void fail(std::exception_ptr e) noexcept override
    {
        try {
            promise_.set_exception(std::move(e));
        } catch (...) {
        }
    }

private:
    boost::fibers::promise<R> promise_;
};

// A pool invoker unpacks the arguments (handles from the ones the task received), calls the
// task and packs its result (nil for void).
using pool_invoker = void (*)(std::uintptr_t target, const msgpack::object& args, spawned_handles& handles,
                              msgpack::sbuffer& result);

template <class R, class... P>
void pool_invoke(std::uintptr_t target, const msgpack::object& args, spawned_handles& handles, msgpack::sbuffer& result)
{
    if (args.type != msgpack::type::ARRAY || args.via.array.size != sizeof...(P))
        throw error("gipc: a pool worker received arguments that do not fit its task");
    auto* fn = reinterpret_cast<R (*)(P...)>(target);
    msgpack::packer<msgpack::sbuffer> pk(result);
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        std::tuple<std::remove_cvref_t<P>...> values{unpack_spawn_argument<P>(args.via.array.ptr[I], handles)...};
        if constexpr (std::is_void_v<R>) {
            fn(static_cast<P&&>(std::get<I>(values))...);
            pk.pack_nil();
        } else {
            pk.pack(fn(static_cast<P&&>(std::get<I>(values))...));
        }
    }(std::index_sequence_for<P...>{});
}

// pool_request: one task, packed, with the sink of its future. Handle arguments are moved
// into `keep` (the pool owns them from submit on) and listed in `handles` (their ends).
// The arguments are packed into a buffer of the submitting thread's (scratch()), reused from
// one submit to the next: pool_submit copies them into the task's frame.
struct pool_request {
    std::uintptr_t invoker = 0;
    std::uintptr_t target = 0;
    spawn_request handles; // its args stay empty: the arguments are in scratch()
    std::vector<std::shared_ptr<void>> keep;
    sink_handle sink;
    GIPC_EXPORT static msgpack::sbuffer& scratch() noexcept;
    std::string_view args() const noexcept { return {scratch().data(), scratch().size()}; }
};

// pool_submit queues a task (pool.cpp). Throws gipc::error when the pool takes no more tasks.
GIPC_EXPORT void pool_submit(pool_state& state, pool_request request);

// pack_pool_argument packs one argument; a handle (or a vector of them) is moved into the
// request, which owns it until it is handed to a worker.
template <class P, class A>
void pack_pool_argument(msgpack::packer<msgpack::sbuffer>& pk, pool_request& request, A&& a)
{
    using param = std::remove_cvref_t<P>;
    if constexpr (is_handle_v<param> || is_handle_vector<param>::value) {
        param& source = static_cast<param&>(unwrap_ref_value(a));
        auto held = std::make_shared<param>(std::move(source));
        if constexpr (is_handle_v<param>) {
            pk.pack(add_spawned_handle(request.handles, *held));
        } else {
            pk.pack_array(static_cast<std::uint32_t>(held->size()));
            for (const auto& h : *held)
                pk.pack(add_spawned_handle(request.handles, h));
        }
        request.keep.push_back(std::move(held));
    } else {
        pk.pack(param(std::forward<A>(a)));
    }
}

// map_waiter counts the tasks of one map() call that have no outcome yet.
class map_waiter {
public:
    void add() noexcept { left_.fetch_add(1, std::memory_order_relaxed); }
    void one_done() noexcept
    {
        if (left_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            std::lock_guard lk(mtx_);
            cv_.notify_all();
        }
    }
    void wait()
    {
        std::unique_lock lk(mtx_);
        cv_.wait(lk, [&] { return left_.load(std::memory_order_acquire) == 0; });
    }

private:
    std::atomic<std::size_t> left_{0};
    boost::fibers::mutex mtx_;
    boost::fibers::condition_variable cv_;
};

// map_slot receives one map() task's outcome, in the map call's own storage (no future, no
// allocation per task).
template <class R>
class map_slot final : public pool_sink {
public:
    explicit map_slot(map_waiter& w) noexcept : waiter_(&w) {}
    void deliver(const msgpack::object& result) noexcept override
    {
        try {
            value.emplace(result.as<R>());
        } catch (const std::exception& e) {
            failure = std::make_exception_ptr(decode_error(std::string("gipc: the result of a pool task: ") + e.what()));
        }
        waiter_->one_done();
    }
    void fail(std::exception_ptr e) noexcept override
    {
        failure = std::move(e);
        waiter_->one_done();
    }
    std::optional<R> value;
    std::exception_ptr failure;

private:
    map_waiter* waiter_;
};

// pool_call packs a call to fn as a task whose outcome goes to sink, and queues it.
template <class R, class... P, class... A>
void pool_call(pool_state& state, sink_handle sink, R (*fn)(P...), A&&... args)
{
    static_assert(sizeof...(P) == sizeof...(A), "gipc::pool: give the task exactly one argument per parameter");
    static_assert((check_spawn_argument<P, A>() && ...));
    using result = std::remove_cvref_t<R>;
    static_assert(std::is_void_v<result> || (packable_v<result> && !std::is_pointer_v<result>),
                  "gipc::pool: a task's result must be void or a value msgpack-cxx can pack and convert");
    pool_request request;
    request.sink = std::move(sink); // first: whatever throws below, the sink hears of it
    msgpack::sbuffer& packed = pool_request::scratch();
    packed.clear();
    msgpack::packer<msgpack::sbuffer> pk(packed);
    pk.pack_array(static_cast<std::uint32_t>(sizeof...(P)));
    (pack_pool_argument<P>(pk, request, std::forward<A>(args)), ...);
    request.target = reinterpret_cast<std::uintptr_t>(fn);
    pool_invoker invoker = &pool_invoke<R, P...>;
    request.invoker = reinterpret_cast<std::uintptr_t>(invoker);
    pool_submit(state, std::move(request));
}

template <class R, class... P, class... A>
boost::fibers::future<std::remove_cvref_t<R>> pool_call_future(pool_state& state, R (*fn)(P...), A&&... args)
{
    auto sink = std::make_unique<promise_sink<std::remove_cvref_t<R>>>();
    auto future = sink->future();
    pool_call(state, sink_handle::owned(std::move(sink)), fn, std::forward<A>(args)...);
    return future;
}

} // namespace gipc::detail

namespace gipc {

template <class F, class... Args>
boost::fibers::future<typename detail::task_result<F>::type> pool::submit(F task, Args&&... args)
{
    static_assert(detail::spawn_target<F>,
                  "gipc::pool: a task must be a function pointer or a lambda without captures and without "
                  "auto parameters: workers find it by its place in the program's file");
    if constexpr (detail::spawn_target<F>)
        return detail::pool_call_future(*state_, +task, std::forward<Args>(args)...);
}

template <class F, class Range>
std::vector<typename detail::task_result<F>::type> pool::map(F task, const Range& inputs)
{
    using result = typename detail::task_result<F>::type;
    static_assert(!std::is_void_v<result>, "gipc::pool::map: the task must return a value (use submit for void tasks)");
    static_assert(detail::spawn_target<F>,
                  "gipc::pool: a task must be a function pointer or a lambda without captures and without "
                  "auto parameters: workers find it by its place in the program's file");
    // Every task submitted is waited for before map returns or throws: the slots are here.
    detail::map_waiter waiter;
    std::deque<detail::map_slot<result>> slots; // stable addresses as it grows
    if constexpr (detail::spawn_target<F>) {
        for (const auto& input : inputs) {
            detail::map_slot<result>& slot = slots.emplace_back(waiter);
            waiter.add();
            try {
                detail::pool_call(*state_, detail::sink_handle::borrowed(&slot), +task, input);
            } catch (...) {
                slot.failure = std::current_exception(); // never queued (the slot was failed already)
                break;
            }
        }
    }
    waiter.wait();
    std::vector<result> out;
    out.reserve(slots.size());
    for (auto& slot : slots) {
        if (slot.failure)
            std::rethrow_exception(slot.failure);
        out.push_back(std::move(*slot.value));
    }
    return out;
}

} // namespace gipc
