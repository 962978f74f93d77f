// SPDX-License-Identifier: MIT
// The operations of io_ops.hpp for the epoll backend. Each tries its syscall first (src/posix/
// wrappers: -errno, EINTR retried) and parks the fiber in the reactor only on EAGAIN, then
// tries again: the syscalls a caller doing its own non-blocking I/O would make, and no more
// (a pipe reader that drained its pipe even skips the read that would fail: read_hint; so does
// the receive of a reply on a stream that never waited: stream_hint). The
// waits go to the calling thread's epoll_reactor where gipc's algorithm runs, and through the
// relay (relay.hpp) where the program's own runs.

#include "linux/epoll_reactor.hpp"

#include "assert.hpp"
#include "posix/fd.hpp"
#include "posix/socket.hpp"
#include "relay.hpp"
#include "scheduler.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <boost/fiber/operations.hpp>

#include <algorithm>
#include <cerrno>

namespace gipc::detail {

namespace {

epoll_reactor& epoll(reactor& r) noexcept { return static_cast<epoll_reactor&>(r); }

// wait_owned parks the calling fiber (on any thread, whatever its algorithm) until fd, which
// gipc owns and will forget_fd() before closing, is ready for dir after the call began, or
// until deadline. The caller has just seen EAGAIN. Returns 0 (try the syscall again; a wake-up
// is not a promise that it succeeds), -ETIMEDOUT or -errno. since (a readiness count of this
// thread's reactor) is ignored where the thread runs another algorithm. Throws
// std::system_error when no reactor can be had.
int wait_owned(int fd, io_dir dir, steady_time deadline, std::uint64_t since = epoll_reactor::no_readiness)
{
    reactor_algorithm* algo = thread_algorithm();
    int r;
    if (algo) {
        algo->run_deferred(); // one of gipc's suspension points: no need to go by the dispatcher
        epoll_reactor& loop = epoll(algo->reactor());
        // With nothing else of the thread to run, the fiber polls for fd itself, as the
        // dispatcher would: two fiber switches and a round of the dispatcher's loop less per
        // wait, which is most of a request/reply exchange's own cost.
        steady_time until;
        if (algo->alone_until(deadline, until)) {
            bool woken = false;
            r = loop.wait_alone(fd, dir, until, since, woken);
            if (woken)
                algo->took_wake();
            if (r != -EAGAIN)
                return r;
        }
        r = loop.wait(fd, dir, deadline, true, since);
    } else {
        relay_lease relay;
        r = epoll(relay.get()).wait_any_thread(fd, dir, deadline, true);
    }
    // -EAGAIN (woken without news, after a fork) is what 0 already asks of the caller: try the
    // syscall, and wait again if it would block.
    return r == -EAGAIN ? 0 : r;
}

// until_done makes attempt (a syscall through a src/posix/ wrapper) until it returns anything
// but -EAGAIN, waiting for dir on fd after each -EAGAIN, and returns its result, or the wait's
// -ETIMEDOUT or -errno.
template <class Attempt>
auto until_done(int fd, io_dir dir, steady_time deadline, Attempt&& attempt) -> decltype(attempt())
{
    for (;;) {
        const auto n = attempt();
        if (n != -EAGAIN)
            return n;
        if (const int w = wait_owned(fd, dir, deadline); w != 0)
            return w;
    }
}

// some_moved is a write's result as the operations report it: a write of at least one byte
// that moved none is -EIO.
ssize_t some_moved(ssize_t n) noexcept { return n == 0 ? -EIO : n; }

// to_iovec copies count (1 or 2) slices into iov and returns their total size.
std::size_t to_iovec(const io::slice* slices, int count, ::iovec* iov) noexcept
{
    GIPC_ASSERT(count == 1 || count == 2, "an operation moves one or two slices");
    std::size_t total = 0;
    for (int i = 0; i < count; ++i) {
        iov[i] = {slices[i].data, slices[i].size};
        total += slices[i].size;
    }
    return total;
}

// ready_now reports whether the program's fd is ready for dir right now, without blocking: 1,
// 0, or -errno (-EBADF: not open).
int ready_now(int fd, io_dir dir) noexcept
{
    pollfd p{fd, static_cast<short>(dir == io_dir::read ? POLLIN : POLLOUT), 0};
    const int r = posix::retry_eintr([&] { return ::poll(&p, 1, 0); });
    if (r < 0)
        return r;
    if (p.revents & POLLNVAL)
        return -EBADF;
    return r > 0 ? 1 : 0;
}

} // namespace

namespace io {

ssize_t read(int fd, const slice* slices, int count, steady_time deadline, read_hint* hint)
{
    ::iovec iov[2];
    const std::size_t total = to_iovec(slices, count, iov);
    // Readiness counts are kept by gipc's algorithm's reactor only: on a thread of another
    // algorithm the read simply tries. The fiber stays on loop's thread throughout: gipc's
    // algorithm never moves fibers between threads.
    epoll_reactor* loop = nullptr;
    if (hint) {
        reactor_algorithm* algo = thread_algorithm();
        loop = algo ? &epoll(algo->reactor()) : nullptr;
    }
    if (loop && hint->reactor == loop->id() && loop->readiness(fd, io_dir::read) == hint->seen) {
        // The last read drained the pipe and no data was announced since: the read would
        // fail, so wait first. The wait flushes this thread's queued frames, which is what a
        // request/reply exchange is waiting for. A timeout of this wait proves nothing: data
        // may have arrived that the reactor has not polled yet. The read below decides.
        hint->reactor = 0;
        const int w = wait_owned(fd, io_dir::read, deadline, hint->seen);
        if (w != 0 && w != -ETIMEDOUT)
            return w;
    }
    return until_done(fd, io_dir::read, deadline, [&] {
        const ssize_t n = count == 1 ? posix::read_some(fd, iov[0].iov_base, iov[0].iov_len)
                                     : posix::readv_some(fd, iov, count);
        if (hint) {
            hint->reactor = 0;
            if (loop && n > 0 && static_cast<std::size_t>(n) < total) {
                // A short read from a pipe empties it. (Not a promise that the next read
                // blocks: after a hang-up it returns 0, which readiness() accounts for.)
                hint->seen = loop->readiness(fd, io_dir::read);
                if (hint->seen != epoll_reactor::no_readiness)
                    hint->reactor = loop->id();
            }
        }
        return n;
    });
}

ssize_t write(int fd, const slice* slices, int count, steady_time deadline, full_handler* on_full)
{
    ::iovec iov[2];
    [[maybe_unused]] const std::size_t total = to_iovec(slices, count, iov);
    GIPC_ASSERT(total > 0, "a write moves at least one byte");
    return until_done(fd, io_dir::write, deadline, [&] {
        for (;;) {
            const ssize_t n = count == 1 ? posix::write_some(fd, iov[0].iov_base, iov[0].iov_len)
                                         : posix::writev_some(fd, iov, count);
            // A full fd the caller made room in (a pipe grown) is tried again before waiting.
            if (n != -EAGAIN || !on_full || !on_full->on_full())
                return some_moved(n);
        }
    });
}

ssize_t queue_write(int fd, const void* data, std::size_t len, full_handler* on_full) noexcept
{
    std::size_t done = 0;
    while (done < len) {
        const ssize_t n = posix::write_some(fd, static_cast<const char*>(data) + done, len - done);
        if (n > 0) {
            done += static_cast<std::size_t>(n);
            continue;
        }
        if (n != -EAGAIN)
            return some_moved(n);
        if (!on_full || !on_full->on_full())
            break;
    }
    return static_cast<ssize_t>(done);
}

int call_when_queue_room(reactor& loop, int fd, std::shared_ptr<reactor_callback> cb) noexcept
{
    return epoll(loop).call_when_writable(fd, std::move(cb));
}

int wait_queue_room(int fd, steady_time deadline) { return wait_owned(fd, io_dir::write, deadline); }

namespace {

// stream_until_done is until_done for an operation on a stream socket: hint, when given, learns
// that the stream waited before each wait.
template <class Attempt>
auto stream_until_done(int fd, io_dir dir, steady_time deadline, stream_hint* hint, Attempt&& attempt)
    -> decltype(attempt())
{
    for (;;) {
        const auto n = attempt();
        if (n != -EAGAIN)
            return n;
        if (hint)
            hint->waited.store(true, std::memory_order_relaxed);
        if (const int w = wait_owned(fd, dir, deadline); w != 0)
            return w;
    }
}

} // namespace

ssize_t receive(int fd, void* data, std::size_t size, steady_time deadline, stream_hint* hint)
{
    // A reply is awaited (see stream_hint): wait first when this thread's reactor cannot hold a
    // registration of fd, which only a wait of an operation on this stream makes, so that the
    // wait's registration is the first and reports data already there. A fiber of this thread
    // that waited stored `waited` before, in this thread's order: relaxed suffices. (A wait
    // through the relay, which fibers of every thread share, asks the kernel after
    // registering.) A deadline already passed is a poll: it tries, not waits. Like any wake-up,
    // the wait's end is no promise, and its timeout proves nothing: the receive below decides.
    if (hint && hint->sent.exchange(false, std::memory_order_relaxed) &&
        !hint->waited.load(std::memory_order_relaxed) &&
        (deadline == steady_time::max() || std::chrono::steady_clock::now() < deadline)) {
        hint->waited.store(true, std::memory_order_relaxed);
        if (const int w = wait_owned(fd, io_dir::read, deadline); w != 0 && w != -ETIMEDOUT)
            return w;
    }
    return stream_until_done(fd, io_dir::read, deadline, hint, [&] { return posix::receive_some(fd, data, size); });
}

ssize_t send(int fd, const void* data, std::size_t size, steady_time deadline, stream_hint* hint)
{
    const ssize_t n = stream_until_done(fd, io_dir::write, deadline, hint,
                                        [&] { return some_moved(posix::send_some(fd, data, size)); });
    if (hint && n > 0)
        hint->sent.store(true, std::memory_order_relaxed);
    return n;
}

ssize_t send_with_fds(int fd, const void* data, std::size_t size, const int* fds, std::size_t count,
                      steady_time deadline)
{
    return until_done(fd, io_dir::write, deadline,
                      [&] { return some_moved(posix::send_with_fds(fd, data, size, fds, count)); });
}

ssize_t receive_with_fds(int fd, void* data, std::size_t size, int* fds, std::size_t max_fds,
                         std::size_t& received, steady_time deadline)
{
    return until_done(fd, io_dir::read, deadline,
                      [&] { return posix::receive_with_fds(fd, data, size, fds, max_fds, received); });
}

int accept(int fd, steady_time deadline)
{
    return until_done(fd, io_dir::read, deadline, [&] {
        for (;;) {
            const int conn = posix::accept_stream(fd);
            if (conn != -ECONNABORTED)
                return conn;
            // The peer gave up while queued: take the next one.
        }
    });
}

int connect(int fd, const ::sockaddr* addr, unsigned addr_len, steady_time deadline, stream_hint* hint)
{
    // After EINTR the attempt goes on in the background, as after EINPROGRESS: it is followed
    // up like one, not started again.
    const auto len = static_cast<socklen_t>(addr_len);
    std::chrono::milliseconds pause{1};
    for (;;) {
        const int err = posix::start_connect(fd, addr, len);
        if (err == 0)
            return 0;
        if (err == -EINPROGRESS)
            break;
        if (err != -EAGAIN || addr->sa_family != AF_UNIX)
            return err;
        // A Unix listener's backlog is full. The kernel announces no readiness for that, so
        // ask again after a pause (1 ms, doubling up to 64 ms), until the deadline.
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline)
            return -ETIMEDOUT;
        boost::this_fiber::sleep_until(std::min(deadline, now + pause));
        pause = std::min(pause * 2, std::chrono::milliseconds{64});
    }
    // Over loopback the handshake is done by the time connect() returns EINPROGRESS: asking
    // again (EISCONN) saves a wait in the reactor and the SO_ERROR query.
    if (const int err = posix::poll_connect(fd, addr, len); err != -EINPROGRESS)
        return err;
    if (hint)
        hint->waited.store(true, std::memory_order_relaxed);
    if (const int w = wait_owned(fd, io_dir::write, deadline); w != 0)
        return w;
    return posix::connect_result(fd);
}

int wait_exit(int fd, steady_time deadline) { return wait_owned(fd, io_dir::read, deadline); }

int wait_user_fd(int fd, io_dir dir, steady_time deadline, bool may_block)
{
    // Every gipc call installs gipc's algorithm where the default runs.
    reactor_algorithm* algo = thread_algorithm();
    for (;;) {
        if (const int r = ready_now(fd, dir); r != 0)
            return r;
        if (!may_block)
            return 0;
        // Registered for the length of this wait only (not persistent): the program may close
        // fd at any time after.
        int r;
        if (algo) {
            algo->run_deferred();
            r = epoll(algo->reactor()).wait(fd, dir, deadline, false);
        } else {
            relay_lease relay;
            r = epoll(relay.get()).wait_any_thread(fd, dir, deadline, false);
        }
        if (r == 0)
            return 1;
        if (r == -ETIMEDOUT)
            return 0;
        if (r != -EAGAIN) // -EAGAIN: woken without news (after a fork): look again
            return r;
    }
}

} // namespace io

} // namespace gipc::detail
