// SPDX-License-Identifier: MIT
#include "iocp.hpp"

#include <winternl.h>

#include <algorithm>

namespace gipc::detail::win {

DWORD io_error(const OVERLAPPED& ov) noexcept
{
    // The kernel leaves the operation's NTSTATUS in Internal; GetOverlappedResult would give the
    // same code through the handle, which a completion does not carry.
    auto status = static_cast<NTSTATUS>(ov.Internal);
    if (status == 0)
        return 0;
    return ::RtlNtStatusToDosError(status);
}

DWORD completion_port::create() noexcept
{
    HANDLE h = ::CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1);
    if (!h)
        return ::GetLastError();
    port_.reset(h);
    return 0;
}

DWORD completion_port::associate(HANDLE h, ULONG_PTR key) noexcept
{
    if (!::CreateIoCompletionPort(h, port_.get(), key, 0))
        return ::GetLastError();
    if (!::SetFileCompletionNotificationModes(
            h, FILE_SKIP_COMPLETION_PORT_ON_SUCCESS | FILE_SKIP_SET_EVENT_ON_HANDLE))
        return ::GetLastError();
    return 0;
}

DWORD completion_port::associate_socket(SOCKET s, ULONG_PTR key) noexcept
{
    return associate(reinterpret_cast<HANDLE>(s), key);
}

DWORD completion_port::wait(completion* out, std::size_t capacity, DWORD timeout_ms,
                            std::size_t& count) noexcept
{
    count = 0;
    OVERLAPPED_ENTRY entries[64];
    ULONG max = static_cast<ULONG>(std::min<std::size_t>(capacity, 64));
    if (max == 0)
        return ERROR_INVALID_PARAMETER;
    ULONG n = 0;
    if (!::GetQueuedCompletionStatusEx(port_.get(), entries, max, &n, timeout_ms, FALSE)) {
        DWORD e = ::GetLastError();
        return e == WAIT_TIMEOUT ? WAIT_TIMEOUT : e;
    }
    for (ULONG i = 0; i < n; ++i) {
        out[i].key = entries[i].lpCompletionKey;
        out[i].overlapped = entries[i].lpOverlapped;
        out[i].bytes = entries[i].dwNumberOfBytesTransferred;
    }
    count = n;
    return 0;
}

DWORD completion_port::post(ULONG_PTR key, DWORD bytes, OVERLAPPED* overlapped) noexcept
{
    if (!::PostQueuedCompletionStatus(port_.get(), bytes, key, overlapped))
        return ::GetLastError();
    return 0;
}

} // namespace gipc::detail::win
