// SPDX-License-Identifier: MIT
#pragma once
// iocp.hpp: an I/O completion port, the core of gipc's Windows reactor. Overlapped I/O on the
// handles associated with it completes as packets on the port; any thread may post a packet of
// its own (a wakeup, a child's exit); one thread waits for packets with a timeout, which also
// serves the scheduler's timers. Nothing here throws: functions return 0 or a Win32 error code.

#include "handle.hpp"

#include <cstddef>

namespace gipc::detail::win {

// completion is one dequeued packet: the key given at association (or post), the OVERLAPPED
// of the operation (or the pointer posted), and the number of bytes transferred.
struct completion {
    ULONG_PTR key = 0;
    OVERLAPPED* overlapped = nullptr;
    DWORD bytes = 0;
};

// io_error is the Win32 error code of the overlapped operation ov, which the port reported
// complete (0 when it succeeded): ERROR_BROKEN_PIPE at the end of a pipe, ERROR_OPERATION_ABORTED
// after CancelIoEx... Only for packets of real I/O: a posted packet's OVERLAPPED carries no status.
DWORD io_error(const OVERLAPPED& ov) noexcept;

class completion_port {
public:
    completion_port() noexcept = default;

    // create makes the port (one thread runs its completions). Returns 0 or a Win32 error code.
    DWORD create() noexcept;

    HANDLE get() const noexcept { return port_.get(); }
    explicit operator bool() const noexcept { return static_cast<bool>(port_); }

    // associate routes the completions of overlapped I/O on h (opened with FILE_FLAG_OVERLAPPED)
    // to this port with key. It also sets FILE_SKIP_COMPLETION_PORT_ON_SUCCESS, so an operation
    // that succeeds at once queues no packet (its caller takes the result there and then), and
    // FILE_SKIP_SET_EVENT_ON_HANDLE. A handle is associated once, for its whole life; closing
    // it ends the association. Returns 0 or a Win32 error code.
    DWORD associate(HANDLE h, ULONG_PTR key) noexcept;

    // associate_socket: associate for a Winsock socket.
    DWORD associate_socket(SOCKET s, ULONG_PTR key) noexcept;

    // wait dequeues up to capacity packets into out, waiting at most timeout_ms (INFINITE:
    // without limit; 0: only what is queued) for the first. Sets count to the number dequeued.
    // Returns 0, WAIT_TIMEOUT when none came within the timeout (count is 0), or another Win32
    // error code.
    DWORD wait(completion* out, std::size_t capacity, DWORD timeout_ms, std::size_t& count) noexcept;

    // post queues a packet of its own; callable from any thread, even while another waits.
    // Returns 0 or a Win32 error code.
    DWORD post(ULONG_PTR key, DWORD bytes = 0, OVERLAPPED* overlapped = nullptr) noexcept;

private:
    unique_handle port_;
};

} // namespace gipc::detail::win
