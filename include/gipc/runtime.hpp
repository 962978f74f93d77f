// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// The fiber runtime under gipc: a Boost.Fiber scheduling algorithm that keeps a round-robin
/// ready queue and, when no fiber is ready, sleeps in a reactor instead of spinning (epoll on
/// Linux, an I/O completion port on Windows).
///
/// Every gipc call installs the scheduler on its thread on first use where the thread runs
/// Boost.Fiber's default algorithm (round_robin, implicitly or installed explicitly), so most
/// programs never call anything here. The waits below are for programs that want to block a
/// fiber, not the thread, on a file descriptor of their own (a socket, an eventfd, a device).
///
/// Other scheduling algorithms: on a thread whose program installed another algorithm
/// (work_stealing, shared_work, its own), gipc keeps it. Every gipc call still works and blocks
/// only the calling fiber: its fd waits go to a process-wide helper thread of gipc's (started on
/// first use, every signal blocked, ended once unused for a fraction of a second), which wakes
/// the fiber through Boost.Fiber. Fibers keep migrating as that algorithm decides, also across
/// gipc calls: a fiber that blocks in get() on one thread may resume on another. put() writes at
/// once there (queueing frames until the fiber suspends needs gipc's algorithm), and
/// use_reactor() throws gipc::error.
///
/// Threads on Windows (MinGW-w64): make the threads that run fibers or call gipc std::threads.
/// MinGW-w64's C runtime takes its locks in opposite orders at the exit of a std::thread and of
/// a thread made with CreateThread that used thread_local objects (as Boost.Fiber does), so two
/// such threads ending at the same moment can deadlock. gipc's own threads end in a way that
/// cannot deadlock with a std::thread (README.md, "Windows").

#include <gipc/detail/export.hpp>
#include <gipc/detail/handle.hpp>

#include <chrono>

namespace gipc {

namespace detail {
// wait_fd_until backs the waits below: true when fd is ready for writing (for_write) or
// reading, false at deadline; with may_block false it only checks readiness.
GIPC_EXPORT bool wait_fd_until(int fd, bool for_write, steady_time deadline, bool may_block);
} // namespace detail

/// use_reactor installs gipc's scheduling algorithm on the calling thread. Idempotent. Fibers
/// already ready on the thread move over to it. Only in place of Boost.Fiber's default
/// round_robin: on a thread that runs another algorithm it throws gipc::error and changes
/// nothing. Throws std::system_error when the reactor's epoll or eventfd (Windows: its
/// completion port) cannot be created.
GIPC_EXPORT void use_reactor();

/// wait_readable parks the calling fiber until fd is readable (or has hung up or failed), while
/// other fibers of the thread run. Returns at once when fd is already readable. The fd must stay
/// open during the wait. Callable from any fiber of any thread, including the main context.
/// On Windows, fd is a Winsock socket (its SOCKET value cast to int; Windows has no readiness
/// waits on C runtime fds or pipe handles): a process-wide helper thread polls the sockets that
/// fibers wait on (WSAPoll), and the socket itself is not changed (it stays blocking or not as
/// the program made it). A value that is not an open socket throws std::system_error
/// (std::errc::bad_file_descriptor, or not_a_socket).
GIPC_EXPORT void wait_readable(int fd);

/// wait_readable with a timeout: false when the timeout expired first. Any duration type
/// works, and timeouts saturate: hours::max(), duration<double> infinity and other timeouts
/// beyond what steady_clock can represent mean "no timeout"; a timeout <= 0 (or NaN) only
/// checks readiness without blocking.
template <class Rep, class Period>
[[nodiscard]] bool wait_readable(int fd, std::chrono::duration<Rep, Period> timeout)
{
    return detail::wait_fd_until(fd, false, detail::deadline_from(timeout),
                                 timeout > std::chrono::duration<Rep, Period>::zero());
}

/// wait_writable / wait_writable(timeout): the same for writability.
GIPC_EXPORT void wait_writable(int fd);

/// wait_writable with a timeout: false when the timeout expired first (timeouts as for
/// wait_readable).
template <class Rep, class Period>
[[nodiscard]] bool wait_writable(int fd, std::chrono::duration<Rep, Period> timeout)
{
    return detail::wait_fd_until(fd, true, detail::deadline_from(timeout),
                                 timeout > std::chrono::duration<Rep, Period>::zero());
}

} // namespace gipc
