// SPDX-License-Identifier: MIT
#pragma once
// reactor: a thread's event loop, as gipc's logic sees it, and (io_ops.hpp, included here)
// the I/O operations that loop serves. Logic files (scheduler, pipe ends, relay, process, net,
// programs) include these two headers and no backend's. One backend implements both, chosen
// in meson.build (platform_sources): src/linux/epoll_reactor.cpp and src/linux/epoll_io.cpp on
// Linux, src/windows/iocp_reactor.cpp and src/windows/iocp_io.cpp on Windows. A backend
// derives its class from reactor and defines the members declared here; nothing is virtual
// but the destructor, so a call costs what a call into the backend costs.
//
// The unit of the interface is one of gipc's operations (io_ops.hpp: read into this buffer,
// write this, accept, connect, wait for this child's exit), not the readiness of an fd: the
// caller asks for the operation and is woken when it is done. How the loop learns that is the
// backend's: epoll's readiness waits, counts and writable callbacks (epoll_reactor.hpp) are its
// own, and a completion backend (an I/O completion port, see ../shared/windows.md) would
// instead start the overlapped operation and wake the caller when its packet arrives. Either
// way the caller is woken on its own thread's dispatcher, from poll(). What the reactor itself
// offers the logic is the loop: poll, wake, forgetting an fd before it is closed, and fork.
//
// Threads: a reactor belongs to the thread that made it. Only fibers of that thread call id();
// only that thread's dispatcher calls poll(). wake() and forget_everywhere() are for any thread.
//
// Fork: a child inherits its parent's reactors (their kernel objects are shared with the
// parent). Windows has no fork: there the fork hooks below do nothing. The backend renews the forking thread's reactor on its next use in the child, and
// never touches those of the threads the child does not have; see the backend's header.

#include "private.hpp"

#include "io_ops.hpp"

#include <chrono>
#include <cstdint>
#include <memory>

namespace gipc::detail {

// reactor_callback: told once, on the reactor's dispatcher (from poll()), that the operation it
// was registered for can go on (io::call_when_queue_room). It must not block or suspend.
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

    // id is unique among the reactors this process ever made (never 0): unlike the address, it
    // is not reused when a thread's reactor is destroyed and another one made. A reactor
    // renewed after a fork gets a new id: what a backend remembered under the old id (a
    // read_hint) does not apply to it.
    std::uint64_t id() const noexcept;

    // poll waits for events until deadline (time_point::min() polls without blocking) and
    // wakes the fibers and callbacks waiting for them. Only the owning thread's dispatcher
    // calls it: waking fibers from a fiber that is inside a Boost.Fiber primitive can deadlock.
    void poll(steady_time deadline) noexcept;

    // wake makes a poll() in progress, or the next one, return promptly. Any thread.
    void wake() noexcept;

    // forget_everywhere removes fd from every reactor of the process, just before gipc closes
    // it. Any thread. Operations still waiting on fd return -EBADF.
    static void forget_everywhere(native_fd fd) noexcept;

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
