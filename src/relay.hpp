// SPDX-License-Identifier: MIT
#pragma once
// The relay: gipc's fd waits for fibers of threads whose program installed a scheduling
// algorithm of its own (work_stealing, shared_work...), which gipc keeps and so cannot make
// sleep in a reactor of its own. Such a fiber registers its wait with the relay reactor, an
// reactor of a process-wide helper thread that runs gipc's algorithm and does nothing
// else, and parks on the registration's Boost.Fiber condition variable; the helper's
// dispatcher, polling the reactor, notifies it from there (Boost.Fiber wakes a fiber of
// another thread through that thread's scheduler, which then wakes its algorithm). Only the
// waiting fiber blocks, and it may resume on another thread of its pool, as the program's
// algorithm decides. Timeouts run in the waiting fiber's own scheduler, as for every
// condition variable.
//
// The helper thread starts on first use, blocks every signal, and ends once no wait has used
// it for relay_linger (a forked child starts its own on first use: the parent's is not there).
// forget_everywhere() reaches the relay reactor like every other, so a relayed wait on an fd
// gipc forgets ends with -EBADF.

#include "private.hpp"

#include "reactor.hpp"

#include <chrono>

namespace gipc::detail {

// relay_linger is how long the relay thread outlives its last wait (and it looks this often).
inline constexpr std::chrono::milliseconds relay_linger{200};

// relay_wait is reactor::wait for a fiber of any thread, through the relay reactor: it
// parks the calling fiber until fd is ready for dir (at the call or after it: it checks the
// fd once more after registering, since the relay may dispatch an edge between the caller's
// EAGAIN and the registration) or until deadline. persistent as for reactor::wait.
// Returns 0, -ETIMEDOUT, -EBADF, -EAGAIN or -errno as reactor::wait does; throws
// std::system_error when the relay thread or its reactor cannot be made (EAGAIN, EMFILE).
int relay_wait(int fd, io_dir dir, steady_time deadline, bool persistent);

} // namespace gipc::detail
