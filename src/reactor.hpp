// SPDX-License-Identifier: MIT
#pragma once
// reactor: a thread's event loop, as gipc's logic sees it. Logic files (scheduler, pipe ends,
// relay, process, net) include this header and no backend's. One backend implements it,
// chosen in meson.build (platform_sources): src/linux/epoll_reactor.cpp on Linux. A backend
// derives its class from reactor and defines the members declared here; nothing is virtual
// but the destructor, so a call costs what a call into the backend costs.
//
// The unit of the interface is one of gipc's operations on an fd it owns (reading a pipe or a
// socket, writing one, accepting, connecting, waiting for a child's exit through its pidfd):
// the caller starts the operation; when it cannot complete now, the caller asks to be woken
// when it can go on (wait, or call_when_writable for a write queue flushed from the loop), and
// then goes on with it. A readiness backend (epoll) wakes the caller when the fd is ready; a
// completion backend (an I/O completion port, see ../shared/windows.md) would start the
// operation itself (an overlapped read, write, accept or connect; a registered wait on the
// process handle for an exit) and wake the caller when its completion packet arrives. Either
// way the caller is woken on its own thread's dispatcher, from poll(), and a wake-up is never a
// promise: the caller looks again and may wait again.
//
// Threads: a reactor belongs to the thread that made it. Only fibers of that thread call wait()
// (wait_any_thread is the relay's: any thread), readiness(), id() and call_when_writable(); only
// that thread's dispatcher calls poll(). wake() and forget_everywhere() are for any thread.
//
// Fork: a child inherits its parent's reactors (their kernel objects are shared with the
// parent). The backend renews the forking thread's reactor on its next use in the child, and
// never touches those of the threads the child does not have; see the backend's header.

#include "private.hpp"

#include "io_ops.hpp"

#include <chrono>
#include <cstdint>
#include <memory>

namespace gipc::detail {

// reactor_callback: told once, on the reactor's dispatcher (from poll()), that the operation it
// waited for can go on. It must not block or suspend.
class reactor_callback {
public:
    virtual void on_ready() noexcept = 0;

protected:
    ~reactor_callback() = default;
};

class reactor {
public:
    // create makes a reactor for the calling thread, or returns nullptr with err set to
    // -errno.
    static std::unique_ptr<reactor> create(int& err) noexcept;
    virtual ~reactor() = default;
    reactor(const reactor&) = delete;
    reactor& operator=(const reactor&) = delete;

    // wait parks the calling fiber until an operation on fd in dir can go on (fd became ready
    // after the call began), or until deadline. Only fibers of the owning thread call it. With
    // persistent, the registration outlives the wait and the owner of fd must call
    // forget_everywhere(fd) before closing it. Returns 0 when woken by progress, -ETIMEDOUT,
    // -EBADF when the fd was forgotten during the wait, -EAGAIN when woken without news (the
    // process forked: try the operation, and wait again if it would block), or -errno.
    // since: a readiness() count the caller saw with fd drained (see readiness).
    int wait(int fd, io_dir dir, steady_time deadline, bool persistent, std::uint64_t since = no_readiness) noexcept;

    // wait_any_thread is wait() for fibers of any thread (the relay reactor's waits; see
    // relay.hpp). Another thread's poll() may dispatch fd's progress between the caller's
    // EAGAIN and its registration, so the backend checks fd once more after registering.
    int wait_any_thread(int fd, io_dir dir, steady_time deadline, bool persistent) noexcept;

    // readiness counts the wake-ups this reactor dispatched for fd and dir, or is no_readiness
    // when it keeps no count for fd (not registered, no longer registered, or the peer hung
    // up). The count of an fd never goes back while gipc holds the fd. A caller that saw fd
    // drained, and finds the count unchanged later, knows no data arrived in between that it
    // has been told of, and may wait (passing the count as since) without trying first.
    static constexpr std::uint64_t no_readiness = ~std::uint64_t{0};
    std::uint64_t readiness(int fd, io_dir dir) noexcept;

    // id is unique among the reactors this process ever made (never 0): unlike the address, it
    // is not reused when a thread's reactor is destroyed and another one made. A reactor
    // renewed after a fork gets a new id: readiness counts taken before do not apply to it.
    std::uint64_t id() const noexcept;

    // call_when_writable registers cb to run once, from poll() on this thread, when a write to
    // fd can go on (after this call). Persistent registration, as for wait(). Only the owning
    // thread calls it. Returns 0 or -errno.
    int call_when_writable(int fd, std::shared_ptr<reactor_callback> cb) noexcept;

    // poll waits for events until deadline (time_point::min() polls without blocking) and
    // wakes the fibers and callbacks waiting for them. Only the owning thread's dispatcher
    // calls it: waking fibers from a fiber that is inside a Boost.Fiber primitive can deadlock.
    void poll(steady_time deadline) noexcept;

    // wake makes a poll() in progress, or the next one, return promptly. Any thread.
    void wake() noexcept;

    // forget_everywhere removes fd from every reactor of the process, just before gipc closes
    // it. Any thread. Fibers still waiting on fd return -EBADF.
    static void forget_everywhere(int fd) noexcept;

    // discard_all_after_fork drops, in a forked child right after fork (single-threaded), the
    // kernel objects of every reactor inherited from the parent, without changing the
    // parent's registrations or destroying anything inherited fibers may refer to.
    static void discard_all_after_fork() noexcept;

    // lock_registry / unlock_registry hold the process-wide reactor registry across fork() so
    // that the child never inherits it locked.
    static void lock_registry() noexcept;
    static void unlock_registry() noexcept;

protected:
    reactor() noexcept = default;
};

} // namespace gipc::detail
