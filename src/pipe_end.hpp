// SPDX-License-Identifier: MIT
#pragma once
// The two kinds of pipe end behind gipc's handles, and the process-wide registry of open ends
// (a forked child closes every end that was not transferred to it).

#include "assert.hpp"
#include "reactor.hpp"
#include "posix/fd.hpp"
#include "scheduler.hpp"
#include "thread_safety.hpp"

#include <gipc/detail/handle.hpp>
#include <gipc/error.hpp>

#include <sys/uio.h>

#include <boost/fiber/mutex.hpp>
#include <boost/fiber/timed_mutex.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace gipc::detail {

class end_base;
void register_end(end_base* end);
void unregister_end(end_base* end) noexcept;

// end_base: what both kinds of end share: the fd, the closed/in-use state, the registry.
class end_base {
public:
    end_base(posix::unique_fd fd, const char* kind, std::size_t max_message_size) noexcept;
    virtual ~end_base();
    end_base(const end_base&) = delete;
    end_base& operator=(const end_base&) = delete;

    int fd() const noexcept { return fd_.get(); }
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
    void begin_op();
    void end_op() noexcept
    {
        [[maybe_unused]] const std::uint32_t was = state_.fetch_sub(1, std::memory_order_acq_rel);
        GIPC_ASSERT((was & ~(closed_bit | closing_bit)) > 0, "end_op ends an operation begin_op began");
    }

    enum class close_check { ok, already_closed, in_use };
    // try_mark_closed marks the end closed unless it is closed or in use.
    close_check try_mark_closed() noexcept;
    bool in_use() const noexcept
    {
        return (state_.load(std::memory_order_acquire) & ~(closed_bit | closing_bit)) != 0;
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
        GIPC_ASSERT(state_.load(std::memory_order_relaxed) == closing_bit, "only a reserved end commits a close");
        state_.store(closed_bit, std::memory_order_release);
    }
    void cancel_close() noexcept
    {
        GIPC_ASSERT(state_.load(std::memory_order_relaxed) == closing_bit, "only a reserved end cancels a close");
        state_.store(0, std::memory_order_release);
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

    // state_: closed_bit, closing_bit (reserved by try_reserve_close), and below them the
    // number of operations in progress.
    static constexpr std::uint32_t closed_bit = 1u << 31;
    static constexpr std::uint32_t closing_bit = 1u << 30;
    std::atomic<std::uint32_t> state_{0};

private:
    // settled_state is state_ once no reservation is pending.
    std::uint32_t settled_state() const noexcept;
    // try_set_idle_state sets state_ to `to` if the end is open and idle (waiting out another
    // thread's reservation first).
    close_check try_set_idle_state(std::uint32_t to) noexcept;

protected:
    posix::unique_fd fd_;
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

class read_end final : public end_base {
public:
    read_end(posix::unique_fd fd, std::size_t max_message_size) noexcept;

    // next_frame waits for a whole frame, consumes it and returns its payload, which stays
    // valid until the next call. When take is given and the payload was assembled in a string
    // of its own (large frames), that string is moved into *take and {nullptr, size} is
    // returned. rmtx_ must be held.
    std::pair<const char*, std::size_t> next_frame(steady_time deadline, std::string* take = nullptr);
    boost::fibers::timed_mutex& mutex() noexcept { return rmtx_; }
    // release_returned_frame frees the string of a large frame that next_frame returned, once
    // the caller is done with its payload, and a buffer grown past its bound. rmtx_ held.
    void release_returned_frame() noexcept;

    void close();
    void abandon_after_fork() noexcept override;

    // unread_bytes is what the end has read from its pipe but not returned yet (a frame being
    // assembled included), as the bytes of the stream: a spawned child that receives the end
    // preloads them, so a transfer loses nothing. Only while no fiber uses the end.
    std::string unread_bytes() const;
    void preload(std::string_view bytes);

private:
    void reserve_for(std::size_t needed);
    // read_large assembles a large frame's payload in large_, reading straight into it.
    void read_large(steady_time deadline);
    // wait_readable_until parks until the pipe is readable; timeout_error at the deadline.
    void wait_readable_until(steady_time deadline, std::uint64_t since = reactor::no_readiness);
    boost::fibers::timed_mutex rmtx_;
    std::string large_;              // payload of a large frame being assembled
    std::size_t large_len_ = 0;      // payload size of that frame (large_ grows up to it)
    std::size_t large_filled_ = 0;   // bytes of large_ received
    bool large_active_ = false;      // large_ holds a frame being assembled (or just returned)
    // Set when a read found the pipe drained: the id of the thread's reactor (0: not drained)
    // and that reactor's readiness count for the fd then.
    std::uint64_t drained_on_ = 0;
    std::uint64_t drained_seq_ = 0;
    std::unique_ptr<char[]> buf_;
    std::size_t cap_ = 0, head_ = 0, tail_ = 0;
    bool eof_ = false;
    std::string poison_; // non-empty: the stream is unusable, every get throws this
};

class write_end final : public end_base,
                        public deferred_task,
                        public reactor_callback,
                        public std::enable_shared_from_this<write_end> {
public:
    write_end(posix::unique_fd fd, std::size_t max_message_size) noexcept;

    boost::fibers::mutex& mutex() noexcept { return wmtx_; }
    std::size_t max_message_size() const noexcept { return max_size_; }

    // put_frame sends one whole frame (header included). wmtx_ must be held. When
    // frame_storage is given, the frame lives in it and it may be moved from.
    void put_frame(const char* frame, std::size_t size, std::vector<char>* frame_storage);
    // put_payload sends header + payload without copying a large payload. wmtx_ held.
    void put_payload(std::string_view payload);
    // throw_pending throws an error met earlier while writing queued frames. wmtx_ held.
    void throw_pending();
    // flush_blocking writes out the whole queue, waiting cooperatively. wmtx_ held.
    void flush_blocking();

    void close();
    void abandon_after_fork() noexcept override;

    // Around fork(): the queue lock is held so that the child never inherits it locked;
    // a transferred writer's child copy drops what is queued (the parent delivers it).
    void lock_for_fork() noexcept GIPC_NO_THREAD_SAFETY_ANALYSIS { qlock_.lock(); }
    void unlock_after_fork() noexcept GIPC_NO_THREAD_SAFETY_ANALYSIS { qlock_.unlock(); }
    // keep_in_child: in the forked child, which is single-threaded (the queue lock, held
    // across fork(), is released by the caller after this).
    void keep_in_child() noexcept GIPC_NO_THREAD_SAFETY_ANALYSIS;

    void run_deferred() noexcept override;
    // on_ready (the reactor's callback) is on_writable: the pipe took data again, write the
    // queue.
    void on_ready() noexcept override;
    void on_writable() noexcept;

    // stalled_on: the pipe is full and the reactor with this id holds the writable callback.
    bool stalled_on(std::uint64_t reactor_id) noexcept;
    // hand_over_if_stalled_on gives the writer to a helper thread when the reactor with this
    // id, whose thread is ending, holds its writable callback (see pipe.cpp).
    void hand_over_if_stalled_on(std::uint64_t reactor_id) noexcept;

private:
    // write_queued writes as much of the queue as the pipe takes now. qlock_ must be held.
    // Returns the bytes left queued; an error is stored in error_ and drops the queue.
    std::size_t write_queued() noexcept GIPC_REQUIRES(qlock_);
    // queue_frame appends one frame, given as two pieces, to the queue and writes the queue
    // when it is long, or defers its writing to before another fiber of the thread runs (see
    // deferred_task). wmtx_ held.
    void queue_frame(std::string_view head, std::string_view body);
    // after_stall arranges for the queue to be written when the pipe becomes writable.
    void after_stall() noexcept GIPC_REQUIRES(qlock_);
    // grow_pipe_locked enlarges the pipe after a full-pipe EAGAIN; false when it cannot.
    bool grow_pipe_locked() noexcept GIPC_REQUIRES(qlock_);
    void write_all_direct(const ::iovec* iov, int count);

    boost::fibers::mutex wmtx_;
    detail::mutex qlock_; // guards everything below: other threads flush from their dispatchers
    std::vector<char> q_ GIPC_GUARDED_BY(qlock_);
    std::size_t qhead_ GIPC_GUARDED_BY(qlock_) = 0;
    int error_ GIPC_GUARDED_BY(qlock_) = 0; // -errno of a failed write of queued frames, not yet reported
    // The pipe was full, and the reactor with this id (0: none) holds a writable callback.
    // That reactor's thread may end before the callback runs, dropping it: another thread
    // that finds the pipe full registers its own (ids are never reused).
    std::uint64_t stalled_on_ GIPC_GUARDED_BY(qlock_) = 0;
    int pipe_size_ GIPC_GUARDED_BY(qlock_) = 0;
    bool grow_refused_ GIPC_GUARDED_BY(qlock_) = false;
    std::atomic<const void*> queued_on_{nullptr}; // the algorithm whose deferred tasks hold us
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

// orphan_writers_mutex guards the writers handed to the helper thread that writes what ended
// threads queued behind full pipes. Held across fork() with gipc's other locks (after every
// writer's queue lock: adopting a writer takes it with the writer's queue lock held).
std::mutex& orphan_writers_mutex() noexcept;

// Registry of open ends.
void register_end(end_base* end);
void unregister_end(end_base* end) noexcept;

// for_each_open_end calls fn on every open end, with the registry locked.
template <class F>
void for_each_open_end(F&& fn);
std::mutex& end_registry_mutex() noexcept;
std::unordered_set<end_base*>& end_registry() noexcept;

template <class F>
void for_each_open_end(F&& fn)
{
    std::lock_guard lk(end_registry_mutex());
    for (end_base* e : end_registry())
        fn(e);
}

} // namespace gipc::detail
