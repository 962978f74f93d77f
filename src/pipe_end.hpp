// SPDX-License-Identifier: MIT
#pragma once
// The two kinds of pipe end behind reader, writer and duplex (their base, end_base, and the
// registry of open ends are in end_base.hpp).

#include "private.hpp"

#include "end_base.hpp"
#include "assert.hpp"
#include "reactor.hpp"
#include "scheduler.hpp"
#include "thread_safety.hpp"

#include <gipc/detail/handle.hpp>
#include <gipc/error.hpp>

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
#include <vector>

namespace gipc::detail {

class read_end final : public end_base {
public:
    read_end(unique_native_fd fd, std::size_t max_message_size) noexcept;

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
    // frame_ready: a whole frame is buffered, so the next next_frame() returns it without
    // reading the pipe. Only while no fiber uses the end.
    bool frame_ready() const noexcept;
    void preload(std::string_view bytes);

private:
    void reserve_for(std::size_t needed);
    // read_large assembles a large frame's payload in large_, reading straight into it.
    void read_large(steady_time deadline);
    // read_some reads from the pipe into count (1 or 2) slices: the bytes read, 0 at the end
    // of the stream (eof_ set); timeout_error at the deadline, std::system_error on errors.
    std::size_t read_some(const io::slice* slices, int count, steady_time deadline, io::read_hint* hint);
    boost::fibers::timed_mutex rmtx_;
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

class write_end final : public end_base,
                        public deferred_task,
                        public reactor_callback,
                        public std::enable_shared_from_this<write_end> {
public:
    write_end(unique_native_fd fd, std::size_t max_message_size) noexcept;

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

// orphan_writers_mutex guards the writers handed to the helper thread that writes what ended
// threads queued behind full pipes. Held across fork() with gipc's other locks (after every
// writer's queue lock: adopting a writer takes it with the writer's queue lock held).
std::mutex& orphan_writers_mutex() noexcept;

} // namespace gipc::detail
