// SPDX-License-Identifier: MIT
#pragma once
// The templates behind gipc::pool (<gipc/pool.hpp>): packing a task as data, running it in a
// worker, and completing its future. Not part of the API: names here may change.

#include <gipc/detail/export.hpp>
#include <gipc/detail/spawn.hpp>

#include <boost/fiber/future.hpp>

#include <msgpack.hpp>

#include <cstdint>
#include <exception>
#include <memory>
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
struct pool_request {
    std::uintptr_t invoker = 0;
    std::uintptr_t target = 0;
    spawn_request handles;
    std::vector<std::shared_ptr<void>> keep;
    std::unique_ptr<pool_sink> sink;
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

template <class R, class... P, class... A>
boost::fibers::future<std::remove_cvref_t<R>> pool_call(pool_state& state, R (*fn)(P...), A&&... args)
{
    static_assert(sizeof...(P) == sizeof...(A), "gipc::pool: give the task exactly one argument per parameter");
    static_assert((check_spawn_argument<P, A>() && ...));
    using result = std::remove_cvref_t<R>;
    static_assert(std::is_void_v<result> || (packable_v<result> && !std::is_pointer_v<result>),
                  "gipc::pool: a task's result must be void or a value msgpack-cxx can pack and convert");
    pool_request request;
    msgpack::packer<msgpack::sbuffer> pk(request.handles.args);
    pk.pack_array(static_cast<std::uint32_t>(sizeof...(P)));
    (pack_pool_argument<P>(pk, request, std::forward<A>(args)), ...);
    request.target = reinterpret_cast<std::uintptr_t>(fn);
    pool_invoker invoker = &pool_invoke<R, P...>;
    request.invoker = reinterpret_cast<std::uintptr_t>(invoker);
    auto sink = std::make_unique<promise_sink<result>>();
    auto future = sink->future();
    request.sink = std::move(sink);
    pool_submit(state, std::move(request));
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
        return detail::pool_call(*state_, +task, std::forward<Args>(args)...);
}

template <class F, class Range>
std::vector<typename detail::task_result<F>::type> pool::map(F task, const Range& inputs)
{
    using result = typename detail::task_result<F>::type;
    static_assert(!std::is_void_v<result>, "gipc::pool::map: the task must return a value (use submit for void tasks)");
    std::vector<boost::fibers::future<result>> futures;
    for (const auto& input : inputs)
        futures.push_back(submit(task, input));
    std::vector<result> out;
    out.reserve(futures.size());
    std::exception_ptr first;
    for (auto& f : futures) {
        try {
            out.push_back(f.get());
        } catch (...) {
            if (!first)
                first = std::current_exception();
        }
    }
    if (first)
        std::rethrow_exception(first);
    return out;
}

} // namespace gipc
