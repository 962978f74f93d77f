// SPDX-License-Identifier: MIT
#pragma once
// end_base: what every kind of gipc handle end shares (the fd, the closed/in-use state), the
// process-wide registry of open ends (a forked child closes every end that was not transferred
// to it), and the close/destroy logic of the handles. Base of the pipe ends (pipe_end.hpp) and
// of the socket ends (socket_end.hpp).

#include "private.hpp"

#include "assert.hpp"
#include "io_ops.hpp"
#include "thread_safety.hpp"

#include <gipc/error.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <exception>
#include <mutex>
#include <string>
#include <unordered_set>

namespace gipc::detail {

class end_base;
void register_end(end_base* end);
void unregister_end(end_base* end) noexcept;

// end_base: what both kinds of end share: the fd, the closed/in-use state, the registry.
class end_base {
public:
    end_base(unique_native_fd fd, const char* kind, std::size_t max_message_size) noexcept;
    virtual ~end_base();
    end_base(const end_base&) = delete;
    end_base& operator=(const end_base&) = delete;

    native_fd fd() const noexcept { return fd_.get(); }
    // message_limit is max_message_size of the pipe_options the end was made with (0: a socket).
    std::size_t message_limit() const noexcept { return max_size_; }
    bool closed() const noexcept { return (state_.load(std::memory_order_acquire) & closed_bit) != 0; }
    // name is how messages refer to the end, e.g. "reader (fd 7)".
    std::string name() const;
    // closed_message is what closed_error says of this closed end: in a forked child, an end
    // that was not transferred to it says so (it was captured by the target, or reached
    // through a global, instead of being passed as an argument).
    std::string closed_message(const char* what) const;

    // begin_op / end_op bracket every get/put/flush: close() refuses (locked_error) while an
    // operation is in progress. begin_op throws closed_error on a closed end.
    void begin_op()
    {
        // Inline, as every get and put calls it: an open end not being closed counts the
        // operation with one compare-and-swap; anything else is begin_op_slow's.
        std::uint32_t s = state_.load(std::memory_order_relaxed);
        if ((s & (closed_bit | closing_bit)) != 0 || (s & count_mask) == count_mask ||
            !state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_relaxed))
            begin_op_slow();
    }
    void end_op() noexcept
    {
        [[maybe_unused]] const std::uint32_t was = state_.fetch_sub(1, std::memory_order_acq_rel);
        GIPC_ASSERT((was & count_mask) > 0, "end_op ends an operation begin_op began");
    }

    enum class close_check { ok, already_closed, in_use };
    // try_mark_closed marks the end closed unless it is closed or in use.
    close_check try_mark_closed() noexcept;
    bool in_use() const noexcept
    {
        return (state_.load(std::memory_order_acquire) & count_mask) != 0;
    }
    // Closing two ends at once (a duplex), or transferring ends to a child: try_reserve_close
    // takes the end like try_mark_closed but only provisionally: until commit_close or
    // cancel_close, begin_op on another thread waits instead of starting an operation, so both
    // ends close or neither does, and a transfer is ordered with uses on other threads. A
    // reservation never spans a suspension of its thread's fibers (a fiber of that thread
    // would wait for it forever); a duplex close holds it for a few instructions, a transfer
    // for the length of a fork() and the child's start report.
    close_check try_reserve_close() noexcept;
    void commit_close() noexcept
    {
        settle_reservation(closed_bit);
    }
    void cancel_close() noexcept
    {
        settle_reservation(0);
    }

    // abandon_after_fork closes the fd in a forked child without flushing or touching the
    // (discarded) reactors; queued and buffered data stay the parent's to deliver.
    virtual void abandon_after_fork() noexcept;
    // kept_after_fork: in a forked child that keeps the end, no fiber uses it, whatever other
    // threads of the parent were doing with it at fork time (an operation, a duplex close's
    // reservation, which the child does not share): only the closed bit stays.
    void kept_after_fork() noexcept
    {
        state_.store(state_.load(std::memory_order_relaxed) & closed_bit, std::memory_order_relaxed);
    }

    // register_open adds the end to the registry of open ends.
    void register_open()
    {
        register_end(this);
        registered_ = true;
    }


protected:
    // release_fd removes the end from the registry and the reactors, and closes the fd.
    // Call it, and forget_from_everywhere, with no lock of the end held: forgetting takes the
    // reactor registry and every reactor's mutex, and wakes the fd's waiters (see the lock
    // order in thread_safety.hpp).
    void release_fd() noexcept;
    // forget_from_everywhere is the first half of release_fd: out of the registry of open
    // ends and of every reactor; the fd stays open (its number cannot be reused meanwhile).
    void forget_from_everywhere() noexcept;

public:
    // state_: closed_bit, closing_bit (reserved by try_reserve_close), locked_bit and
    // waiting_bit (a pipe end's side lock, see locked_end in pipe_end.hpp), queue_bit and
    // queue_wait_bit (a writer's queue lock, queue_mutex in pipe_end.hpp, which a thread may
    // hold whatever the rest of the state: they make no end busy), and below them the number
    // of operations in progress.
    static constexpr std::uint32_t closed_bit = 1u << 31;
    static constexpr std::uint32_t closing_bit = 1u << 30;
    static constexpr std::uint32_t locked_bit = 1u << 29;
    static constexpr std::uint32_t waiting_bit = 1u << 28;
    static constexpr std::uint32_t queue_bit = 1u << 27;
    static constexpr std::uint32_t queue_wait_bit = 1u << 26;
    static constexpr std::uint32_t queue_bits = queue_bit | queue_wait_bit;
    static constexpr std::uint32_t count_mask = queue_wait_bit - 1;

protected:
    std::atomic<std::uint32_t> state_{0};

private:
    void begin_op_slow();
    // settle_reservation replaces a reservation (closing_bit) by to, keeping the queue bits.
    void settle_reservation(std::uint32_t to) noexcept
    {
        std::uint32_t s = state_.load(std::memory_order_relaxed);
        do {
            GIPC_ASSERT((s & ~queue_bits) == closing_bit, "only a reserved end settles its reservation");
        } while (!state_.compare_exchange_weak(s, (s & queue_bits) | to, std::memory_order_acq_rel,
                                               std::memory_order_relaxed));
    }
    // settled_state is state_ once no reservation is pending.
    std::uint32_t settled_state() const noexcept;
    // try_set_idle_state sets state_ to `to`, keeping the queue bits, if the end is open and
    // idle (waiting out another thread's reservation first).
    close_check try_set_idle_state(std::uint32_t to) noexcept;

protected:
    unique_native_fd fd_;
    bool abandoned_in_child_ = false; // closed by abandon_after_fork
    const char* kind_;
    std::size_t max_size_;
    bool registered_ = false;
};

// op_guard: RAII for begin_op/end_op.
class op_guard {
public:
    explicit op_guard(end_base* end);
    ~op_guard() { end_->end_op(); }
    op_guard(const op_guard&) = delete;
    op_guard& operator=(const op_guard&) = delete;

private:
    end_base* end_;
};

// close_handle implements a handle's close(): closed_error when end is null or closed,
// locked_error when another fiber uses it, else End::close().
template <class End>
void close_handle(End* end, const char* kind)
{
    if (!end)
        throw closed_error(std::string("gipc: ") + kind + " is closed");
    switch (end->try_mark_closed()) {
    case end_base::close_check::already_closed:
        throw closed_error(end->closed_message("is already closed"));
    case end_base::close_check::in_use:
        throw locked_error("gipc: cannot close " + end->name() + ": another fiber is using it");
    case end_base::close_check::ok:
        end->close();
        break;
    }
}

// destroy_handle implements a handle's destructor: close an open end; destroying one that a
// fiber is using is a bug and aborts with a message naming it.
template <class End>
void destroy_handle(End* end) noexcept
{
    if (!end)
        return;
    switch (end->try_mark_closed()) {
    case end_base::close_check::already_closed:
        return;
    case end_base::close_check::in_use:
        std::fprintf(stderr, "gipc: %s destroyed while a fiber is using it\n", end->name().c_str());
        std::abort();
    case end_base::close_check::ok:
        try {
            end->close();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "gipc: closing %s: %s\n", end->name().c_str(), e.what());
        }
        return;
    }
}

// GIPC_SINGLE_END_HANDLE(T, End, kind) defines the members that every public handle class
// holding one end (a std::shared_ptr<End> end_) has alike: the constructors, the move
// assignment and destructor (an open end is closed, as destroy_handle says), close() (as
// close_handle says, kind naming the handle in errors), closed() and native_handle() (-1 once
// closed; INVALID_HANDLE_VALUE on Windows: detail::closed_native_handle()). Used at namespace gipc scope, in the handle's source file.
// GIPC_SINGLE_END_HANDLE_NO_NATIVE(T, End, kind) defines them but native_handle(), for the
// handles whose native handle is of another type (gipc::net's sockets: a SOCKET on Windows).
#define GIPC_SINGLE_END_HANDLE_NO_NATIVE(T, End, kind)                                             \
    T::T() noexcept = default;                                                                     \
    T::T(std::shared_ptr<End> end) noexcept : end_(std::move(end)) {}                              \
    T::T(T&&) noexcept = default;                                                                  \
    T& T::operator=(T&& other) noexcept                                                            \
    {                                                                                              \
        if (this != &other) {                                                                      \
            detail::destroy_handle(end_.get());                                                    \
            end_ = std::move(other.end_);                                                          \
        }                                                                                          \
        return *this;                                                                              \
    }                                                                                              \
    T::~T() { detail::destroy_handle(end_.get()); }                                                \
    void T::close() { detail::close_handle(end_.get(), kind); }                                    \
    bool T::closed() const noexcept { return !end_ || end_->closed(); }
#define GIPC_SINGLE_END_HANDLE(T, End, kind)                                                       \
    GIPC_SINGLE_END_HANDLE_NO_NATIVE(T, End, kind)                                                 \
    detail::native_handle_type T::native_handle() const noexcept                                  \
    {                                                                                              \
        return closed() ? detail::closed_native_handle() : end_->fd();                             \
    }

// Registry of open ends.
void register_end(end_base* end);
void unregister_end(end_base* end) noexcept;

// for_each_open_end calls fn on every open end, with the registry locked.
template <class F>
void for_each_open_end(F&& fn);
plain_mutex& end_registry_mutex() noexcept;
std::unordered_set<end_base*>& end_registry() noexcept;

template <class F>
void for_each_open_end(F&& fn)
{
    std::lock_guard lk(end_registry_mutex());
    for (end_base* e : end_registry())
        fn(e);
}

} // namespace gipc::detail
