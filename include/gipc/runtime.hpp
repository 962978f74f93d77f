// SPDX-License-Identifier: MIT
#pragma once
// The fiber runtime under gipc: a Boost.Fiber scheduling algorithm that keeps a round-robin
// ready queue and, when no fiber is ready, sleeps in an epoll reactor instead of spinning.
//
// Every gipc call installs the scheduler on its thread on first use, so most programs never
// call anything here. The waits below are for programs that want to block a fiber, not the
// thread, on a file descriptor of their own (a socket, an eventfd, a device).

#include <chrono>

namespace gipc {

// use_reactor installs gipc's scheduling algorithm on the calling thread. Idempotent. Fibers
// already ready on the thread move over to it. Replaces any other algorithm the thread used.
// Throws std::system_error when the reactor's epoll or eventfd cannot be created.
void use_reactor();

// wait_readable parks the calling fiber until fd is readable (or has hung up or failed), while
// other fibers of the thread run. Returns at once when fd is already readable. The fd must stay
// open during the wait. Callable from any fiber of any thread, including the main context.
void wait_readable(int fd);

// wait_readable with a timeout: false when the timeout expired first. A timeout <= 0 only
// checks readiness without blocking.
bool wait_readable(int fd, std::chrono::nanoseconds timeout);

// wait_writable / wait_writable(timeout): the same for writability.
void wait_writable(int fd);
bool wait_writable(int fd, std::chrono::nanoseconds timeout);

} // namespace gipc
