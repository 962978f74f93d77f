// SPDX-License-Identifier: MIT
#pragma once
// The relay: gipc's waiting operations (io_ops.hpp) for fibers of threads whose program
// installed a scheduling algorithm of its own (work_stealing, shared_work...), which gipc keeps
// and so cannot make sleep in a reactor of its own. Such a fiber's operation waits in the
// relay reactor, the reactor of a process-wide helper thread that runs gipc's algorithm and
// does nothing else: the backend registers the wait there and parks the fiber on a Boost.Fiber
// primitive, which the helper's dispatcher, polling the reactor, notifies (Boost.Fiber wakes a
// fiber of another thread through that thread's scheduler, which then wakes its algorithm).
// Only the waiting fiber blocks, and it may resume on another thread of its pool, as the
// program's algorithm decides. Timeouts run in the waiting fiber's own scheduler, as for every
// condition variable.
//
// The helper thread starts on first use, blocks every signal, and ends once no operation has
// used it for relay_linger (a forked child starts its own on first use: the parent's is not
// there; on Windows it stays until the process ends, see platform.hpp). forget_everywhere()
// reaches the relay reactor like every other, so a relayed wait on an fd gipc forgets ends
// with -EBADF.

#include "private.hpp"

#include "reactor.hpp"

#include <chrono>

namespace gipc::detail {

// relay_linger is how long the relay thread outlives its last wait (and it looks this often).
inline constexpr std::chrono::milliseconds relay_linger{200};

struct relay_state;

// relay_lease: the relay reactor, held for the length of one operation of a fiber of any
// thread (the helper thread does not end while a lease is held). The constructor starts the
// helper thread if none serves, and waits (blocking only the calling fiber) until its reactor
// is there; it throws std::system_error when the thread or its reactor cannot be made (EAGAIN,
// EMFILE). The backend's operations are the only users; any fiber, any thread.
class relay_lease {
public:
    relay_lease();
    ~relay_lease();
    relay_lease(const relay_lease&) = delete;
    relay_lease& operator=(const relay_lease&) = delete;

    // get is the relay thread's reactor. Its operations for other threads' fibers are the
    // backend's (epoll: wait_any_thread, which checks the fd once more after registering).
    reactor& get() const noexcept { return *reactor_; }

private:
    reactor* reactor_ = nullptr;
    relay_state* relay_ = nullptr;
};

} // namespace gipc::detail
