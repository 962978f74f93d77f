// SPDX-License-Identifier: MIT
#pragma once
// The two kinds of pipe end behind reader, writer and duplex (their base, end_base, and the
// registry of open ends are in end_base.hpp).

#include "private.hpp"

#include "byte_order.hpp"
#include "end_base.hpp"
#include "assert.hpp"
#include "reactor.hpp"
#include "scheduler.hpp"
#include "thread_safety.hpp"

#include <gipc/detail/codec.hpp>
#include <gipc/detail/handle.hpp>
#include <gipc/error.hpp>

#include <boost/fiber/condition_variable.hpp>
#include <boost/fiber/mutex.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace gipc::detail {

// locked_end: a pipe end whose side (the read side of a read_end, the write side of a
// write_end) is guarded by a lock that fibers of one or several threads wait for
// cooperatively, which every get and put takes. The lock lives in end_base::state_ beside the
// count of operations in progress (locked_bit, waiting_bit): an uncontended lock_op() counts
// the operation and takes the lock with one compare-and-swap, and its unlock_op() ends both
// with another (two separate atomic words, a count and a mutex, took two read-modify-writes
// each way).
//
// locked_bit is set while a fiber holds the lock, waiting_bit as well while a fiber may wait
// for it. A fiber that has to wait counts its operation first (begin_op: closed_error, and
// close() says locked_error while it waits), then sets both bits, holding wait_mutex_ from
// that change to its wait, so an unlock that finds waiting_bit (and takes wait_mutex_ to
// notify) cannot miss it; an unlock clears both bits, and a woken fiber sets both again as it
// takes the lock, since others may still wait. A waiting_bit with nobody waiting costs one
// needless notify. Locking the side a fiber holds already waits forever: gipc never does.
class locked_end : public end_base {
public:
    using end_base::end_base;

    // lock_op counts an operation (begin_op) and takes the side's lock, waiting cooperatively.
    // Throws closed_error on a closed end.
    void lock_op()
    {
        if (!try_lock_op())
            (void)lock_op_slow(steady_time::max());
    }
    // lock_op_until is lock_op up to deadline: false (nothing counted, nothing held) when the
    // deadline comes first. Tries once even when the deadline has passed.
    bool lock_op_until(steady_time deadline) { return try_lock_op() || lock_op_slow(deadline); }
    // unlock_op releases the lock and ends the operation.
    void unlock_op() noexcept
    {
        std::uint32_t s = state_.load(std::memory_order_relaxed);
        GIPC_ASSERT((s & locked_bit) != 0 && (s & count_mask) > 0, "unlock_op ends what lock_op began");
        while (!state_.compare_exchange_weak(s, (s - 1) & ~(locked_bit | waiting_bit), std::memory_order_acq_rel,
                                             std::memory_order_relaxed)) {
        }
        if (s & waiting_bit)
            wake_one();
    }
    // reset_lock_after_fork: in a forked child, nobody waits for the lock (the parent's fibers
    // that held or awaited it are not the child's); kept_after_fork() clears the bits.
    void reset_lock_after_fork() noexcept
    {
        new (&wait_mutex_) boost::fibers::mutex;
        new (&waiters_) boost::fibers::condition_variable;
    }

protected:
    bool try_lock_op() noexcept
    {
        std::uint32_t s = state_.load(std::memory_order_relaxed);
        return (s & (closed_bit | closing_bit | locked_bit)) == 0 && (s & count_mask) < count_mask &&
               state_.compare_exchange_weak(s, s + 1 + locked_bit, std::memory_order_acq_rel,
                                            std::memory_order_relaxed);
    }

private:
    bool lock_op_slow(steady_time deadline);

protected:
    // wake_waiter wakes a fiber waiting for the lock (an unlock that found waiting_bit).
    void wake_waiter() noexcept { wake_one(); }

private:
    // take_lock_bit: with the operation counted, sets the lock bits (waiting_bit too when
    // waiting is set); true when the lock was free, so that the caller holds it now.
    bool take_lock_bit(bool waiting) noexcept
    {
        const std::uint32_t set = waiting ? locked_bit | waiting_bit : locked_bit;
        std::uint32_t s = state_.load(std::memory_order_relaxed);
        for (;;) {
            if (!waiting && (s & locked_bit))
                return false;
            if (state_.compare_exchange_weak(s, s | set, std::memory_order_acq_rel, std::memory_order_relaxed))
                return (s & locked_bit) == 0;
        }
    }
    void wake_one() noexcept;

    boost::fibers::mutex wait_mutex_;
    boost::fibers::condition_variable waiters_;
};

// side_lock: RAII for lock_op/unlock_op; closed_error when end is null or closed.
template <class End>
class side_lock {
public:
    explicit side_lock(End* end) : end_(end)
    {
        if (!end)
            throw closed_error("gipc: handle is closed");
        end->lock_op();
    }
    ~side_lock() { end_->unlock_op(); }
    side_lock(const side_lock&) = delete;
    side_lock& operator=(const side_lock&) = delete;

private:
    End* end_;
};

// queue_mutex: the lock of a writer's queue (write_end::qlock_), which every put() takes and
// threads' dispatchers and reactors take to write the queue out: a thread lock, as
// detail::mutex, whose uncontended lock and unlock are one compare-and-swap each, inline,
// where std::mutex calls into libpthread for both. It is two bits of the writer's
// end_base::state_ (queue_bit: held; queue_wait_bit: held, and a thread may be sleeping on
// the word in wait_on_word, a futex on Linux), so that a put can take the write side's
// lock, count its operation and take the queue lock with one compare-and-swap, and release
// all three with one (write_end::try_put_small). An unlock that finds queue_wait_bit wakes the
// sleepers, which set it again as one of them takes the lock.
class GIPC_CAPABILITY("mutex") queue_mutex {
public:
    explicit queue_mutex(std::atomic<std::uint32_t>& word) noexcept : word_(word) {}
    queue_mutex(const queue_mutex&) = delete;
    queue_mutex& operator=(const queue_mutex&) = delete;

    void lock() noexcept GIPC_ACQUIRE()
    {
        std::uint32_t s = word_.load(std::memory_order_relaxed);
        if ((s & end_base::queue_bit) != 0 ||
            !word_.compare_exchange_strong(s, s | end_base::queue_bit, std::memory_order_acquire,
                                           std::memory_order_relaxed))
            lock_slow();
        set_owner(std::this_thread::get_id());
    }
    void unlock() noexcept GIPC_RELEASE()
    {
        set_owner(std::thread::id());
        std::uint32_t s = word_.load(std::memory_order_relaxed);
        while (!word_.compare_exchange_weak(s, s & ~end_base::queue_bits, std::memory_order_release,
                                            std::memory_order_relaxed)) {
        }
        if (s & end_base::queue_wait_bit)
            wake_word_all(word_);
    }
    // assert_held checks (where GIPC_ASSERT is compiled in) that the calling thread holds the
    // lock, and tells the analysis so.
    void assert_held() const noexcept GIPC_ASSERT_CAPABILITY(this)
    {
#ifndef NDEBUG
        GIPC_ASSERT(owner_.load(std::memory_order_relaxed) == std::this_thread::get_id(),
                    "the calling thread holds the queue lock");
#endif
    }
    // taken_with_word tells the lock (its debug owner) that the calling thread took it by
    // setting queue_bit itself, as write_end::try_put_small does.
    void taken_with_word() noexcept { set_owner(std::this_thread::get_id()); }
    void released_with_word() noexcept { set_owner(std::thread::id()); }

private:
    void lock_slow() noexcept
    {
        std::uint32_t s = word_.load(std::memory_order_relaxed);
        for (;;) {
            if (!(s & end_base::queue_bit)) {
                // Taken with queue_wait_bit: others may still sleep.
                if (word_.compare_exchange_weak(s, s | end_base::queue_bits, std::memory_order_acquire,
                                                std::memory_order_relaxed))
                    return;
                continue;
            }
            if (!(s & end_base::queue_wait_bit)) {
                if (!word_.compare_exchange_weak(s, s | end_base::queue_wait_bit, std::memory_order_relaxed,
                                                 std::memory_order_relaxed))
                    continue;
                s |= end_base::queue_wait_bit;
            }
            // Returns once the word differs from s (an operation counted or ended changes it too).
            wait_on_word(word_, s);
            s = word_.load(std::memory_order_relaxed);
        }
    }
    void set_owner([[maybe_unused]] std::thread::id id) noexcept
    {
#ifndef NDEBUG
        owner_.store(id, std::memory_order_relaxed);
#endif
    }

    std::atomic<std::uint32_t>& word_;
#ifndef NDEBUG
    std::atomic<std::thread::id> owner_{};
#endif
};

// queue_guard: lock_guard for queue_mutex.
class GIPC_SCOPED_CAPABILITY queue_guard {
public:
    explicit queue_guard(queue_mutex& m) noexcept GIPC_ACQUIRE(m) : m_(m) { m_.lock(); }
    ~queue_guard() GIPC_RELEASE() { m_.unlock(); }
    queue_guard(const queue_guard&) = delete;
    queue_guard& operator=(const queue_guard&) = delete;

private:
    queue_mutex& m_;
};

// byte_queue: the bytes of a writer's queued frames. Appending while the capacity suffices is
// one memcpy, inline (std::vector's range insert is an out-of-line call doing much more).
class byte_queue {
public:
    char* data() noexcept { return data_.get(); }
    std::size_t size() const noexcept { return size_; }
    void append(const char* p, std::size_t n)
    {
        if (n == 0)
            return;
        if (n > cap_ - size_)
            grow(n);
        std::memcpy(data_.get() + size_, p, n);
        size_ += n;
    }
    // clear empties the queue and keeps its storage; release gives the storage back too.
    void clear() noexcept { size_ = 0; }
    // room is how many bytes append takes without growing.
    std::size_t room() const noexcept { return cap_ - size_; }
    void release() noexcept
    {
        data_.reset();
        size_ = cap_ = 0;
    }

private:
    void grow(std::size_t n);
    std::unique_ptr<char[]> data_;
    std::size_t size_ = 0, cap_ = 0;
};

class read_end final : public locked_end {
public:
    read_end(unique_native_fd fd, std::size_t max_message_size) noexcept;

    // next_frame waits for a whole frame, consumes it and returns its payload, which stays
    // valid until the next call. When take is given and the payload was assembled in a string
    // of its own (large frames), that string is moved into *take and {nullptr, size} is
    // returned. The read side's lock must be held.
    std::pair<const char*, std::size_t> next_frame(steady_time deadline, std::string* take = nullptr);
    // release_returned_frame frees the string of a large frame that next_frame returned, once
    // the caller is done with its payload, and a buffer grown past its bound. The read side's
    // lock held.
    // Inline, as every get() calls it: the common case, a small frame returned from a buffer
    // within its bound, has nothing to free.
    void release_returned_frame() noexcept
    {
        if (large_active_ || (head_ == tail_ && cap_ > read_buffer_max))
            release_returned_frame_slow();
    }
    // try_next_scalar is try_read_scalar's work (<gipc/detail/pipe.hpp>): taking the read
    // side's lock without waiting, a scalar frame that is buffered whole is consumed.
    bool try_next_scalar(msgpack::object& out) noexcept
    {
        if (!try_lock_op())
            return false;
        bool done = false;
        const std::size_t have = tail_ - head_;
        if (have >= 4 && !large_active_ && poison_.empty()) {
            const char* frame = buf_.get() + head_;
            const std::uint32_t len = load_be32(frame);
            if (len <= max_size_ && have - 4 >= len) {
                if (len == 1 && static_cast<unsigned char>(frame[4]) <= 0x7f) { // a positive fixint
                    out.type = msgpack::type::POSITIVE_INTEGER;
                    out.via.u64 = static_cast<unsigned char>(frame[4]);
                    done = true;
                } else {
                    done = len != 0 && scalar_payload(frame + 4, len, out);
                }
                if (done) {
                    head_ += 4 + std::size_t{len};
                    if (head_ == tail_)
                        head_ = tail_ = 0;
                    release_returned_frame();
                }
            }
        }
        unlock_op();
        return done;
    }
    // A reader keeps at most this much buffer once it returned a message.
    static constexpr std::size_t read_buffer_max = 1024 * 1024;

    void close();
    void abandon_after_fork() noexcept override;

    // unread_bytes is what the end has read from its pipe but not returned yet (a frame being
    // assembled included), as the bytes of the stream: a spawned child that receives the end
    // preloads them, so a transfer loses nothing. Only while no fiber uses the end.
    std::string unread_bytes() const;
    // frame_ready: a whole frame is buffered, so the next next_frame() returns it without
    // reading the pipe. Only while no fiber uses the end.
    bool frame_ready() const noexcept;
    void preload(std::string_view bytes);

private:
    void release_returned_frame_slow() noexcept;
    void reserve_for(std::size_t needed);
    // read_large assembles a large frame's payload in large_, reading straight into it.
    void read_large(steady_time deadline);
    // read_some reads from the pipe into count (1 or 2) slices: the bytes read, 0 at the end
    // of the stream (eof_ set); timeout_error at the deadline, std::system_error on errors.
    std::size_t read_some(const io::slice* slices, int count, steady_time deadline, io::read_hint* hint);
    std::string large_;              // payload of a large frame being assembled
    std::size_t large_len_ = 0;      // payload size of that frame (large_ grows up to it)
    std::size_t large_filled_ = 0;   // bytes of large_ received
    bool large_active_ = false;      // large_ holds a frame being assembled (or just returned)
    // What the backend remembers of the pipe between the reads of next_frame (io_ops.hpp).
    io::read_hint hint_;
    std::unique_ptr<char[]> buf_;
    std::size_t cap_ = 0, head_ = 0, tail_ = 0;
    bool eof_ = false;
    std::string poison_; // non-empty: the stream is unusable, every get throws this
};

class write_end final : public locked_end,
                        public deferred_task,
                        public reactor_callback,
                        public std::enable_shared_from_this<write_end> {
public:
    write_end(unique_native_fd fd, std::size_t max_message_size) noexcept;

    std::size_t max_message_size() const noexcept { return max_size_; }

    // put_frame sends the whole frame (header included) that frame holds; a large one takes
    // the builder's storage (see frame_builder::take). The write side's lock must be held.
    void put_frame(frame_builder& frame)
    {
        if (frame.size() > direct_threshold)
            put_large_frame(frame);
        else
            queue_frame({frame.data(), frame.size()}, {});
    }
    // queue_small_frame sends a frame (header included) of a few bytes. The write side's lock
    // held.
    void queue_small_frame(std::string_view frame) { queue_frame(frame, {}); }
    // try_put_small is a put() of a small frame (header included) in its common case, inline:
    // the end open and free, no error pending, the frame fitting the queue's storage and
    // leaving it under flush_at, and the queue deferred on the calling thread's algorithm
    // already. Then one compare-and-swap counts the operation and takes the write side's lock
    // and the queue lock, the frame is appended, and one compare-and-swap releases all three:
    // true. False, with nothing done, when the case is another: the caller takes the general
    // path (write_session, queue_small_frame), which does the same then and more otherwise.
    // GIPC_NO_THREAD_SAFETY_ANALYSIS: qlock_ is taken and released by the changes of state_
    // here, which the analysis cannot follow.
    bool try_put_small(std::string_view frame) noexcept GIPC_NO_THREAD_SAFETY_ANALYSIS
    {
        std::uint32_t s = state_.load(std::memory_order_relaxed);
        if ((s & (closed_bit | closing_bit | locked_bit | queue_bit)) != 0 || (s & count_mask) == count_mask ||
            !state_.compare_exchange_strong(s, s + 1 + locked_bit + queue_bit, std::memory_order_acq_rel,
                                            std::memory_order_relaxed))
            return false;
        qlock_.taken_with_word();
        const reactor_algorithm* algo = reactor_algorithm::current();
        const bool fast = error_ == 0 && algo != nullptr && queued_on_.load(std::memory_order_relaxed) == algo &&
                          frame.size() - 4 <= max_size_ && q_.room() >= frame.size() &&
                          q_.size() - qhead_ + frame.size() < flush_at;
        if (fast)
            q_.append(frame.data(), frame.size());
        qlock_.released_with_word();
        s = state_.load(std::memory_order_relaxed);
        while (!state_.compare_exchange_weak(s, (s - 1) & ~(locked_bit | waiting_bit | queue_bits),
                                             std::memory_order_acq_rel, std::memory_order_relaxed)) {
        }
        if (s & queue_wait_bit)
            wake_word_all(state_);
        if (s & waiting_bit)
            wake_waiter();
        return fast;
    }
    // A queue this long is written at once, without waiting for the fiber to suspend.
    static constexpr std::size_t flush_at = 64 * 1024;
    // Frames up to this size are queued and coalesced; larger ones are written straight from
    // the caller's buffer, after the queue (pipe.cpp).
    static constexpr std::size_t direct_threshold = 16 * 1024;
    // put_payload sends header + payload without copying a large payload.
    // The write side's lock held.
    void put_payload(std::string_view payload);
    // throw_pending throws an error met earlier while writing queued frames.
    // The write side's lock held.
    void throw_pending();
    // flush_blocking writes out the whole queue, waiting cooperatively.
    // The write side's lock held.
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
    // write_queued_or_direct is write_queued under qlock_; true when the backend writes no
    // queue from this thread (queue_write: -EOPNOTSUPP), which left the queue to the caller's
    // write_queue_direct.
    bool write_queued_or_direct(std::size_t& left) noexcept GIPC_EXCLUDES(qlock_);
    // write_queue_direct writes what is queued from the calling fiber with direct writes,
    // after a queued write in flight. Throws on errors. The write side's lock held, qlock_ not.
    void write_queue_direct();
    // queue_frame appends one frame, given as two pieces, to the queue and writes the queue
    // when it is long, or defers its writing to before another fiber of the thread runs (see
    // deferred_task). The write side's lock held.
    void queue_frame(std::string_view head, std::string_view body);
    // after_stall arranges for the queue to be written when the pipe becomes writable.
    void after_stall() noexcept GIPC_REQUIRES(qlock_);
    // grow_pipe_locked enlarges the pipe after a write found it full; false when it cannot.
    bool grow_pipe_locked() noexcept GIPC_REQUIRES(qlock_);
    // pipe_grower: the full_handler of this end's writes, which grows the pipe on demand
    // (grow_pipe_locked): with qlock_ held already (queued frames) or taking it (direct ones).
    class pipe_grower final : public io::full_handler {
    public:
        pipe_grower(write_end& w, bool lock_held) noexcept : w_(w), lock_held_(lock_held) {}
        bool on_full() noexcept override;

    private:
        write_end& w_;
        bool lock_held_;
    };
    void write_all_direct(const io::slice* slices, int count);
    // put_large_frame is put_frame's path for a frame over direct_threshold.
    void put_large_frame(frame_builder& frame);

    queue_mutex qlock_{state_}; // guards everything below: other threads flush from their dispatchers
    byte_queue q_ GIPC_GUARDED_BY(qlock_);
    std::size_t qhead_ GIPC_GUARDED_BY(qlock_) = 0;
    int error_ GIPC_GUARDED_BY(qlock_) = 0; // -errno of a failed write of queued frames, not yet reported
    bool direct_only_ GIPC_GUARDED_BY(qlock_) = false; // write_queued met -EOPNOTSUPP
    // The pipe was full, and the reactor with this id (0: none) holds a writable callback.
    // That reactor's thread may end before the callback runs, dropping it: another thread
    // that finds the pipe full registers its own (ids are never reused).
    std::uint64_t stalled_on_ GIPC_GUARDED_BY(qlock_) = 0;
    int pipe_size_ GIPC_GUARDED_BY(qlock_) = 0;
    bool grow_refused_ GIPC_GUARDED_BY(qlock_) = false;
    std::atomic<const void*> queued_on_{nullptr}; // the algorithm whose deferred tasks hold us
};

// orphan_writers_mutex guards the writers handed to the helper thread that writes what ended
// threads queued behind full pipes. Held across fork() with gipc's other locks (after every
// writer's queue lock: adopting a writer takes it with the writer's queue lock held).
#ifndef _WIN32
std::mutex& orphan_writers_mutex() noexcept;
#endif

} // namespace gipc::detail
