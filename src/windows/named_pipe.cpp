// SPDX-License-Identifier: MIT
#include "named_pipe.hpp"

#include <atomic>
#include <cwchar>

namespace gipc::detail::win {
namespace {

std::atomic<unsigned long> pipe_counter{0};

// create_pair makes the server end (with server_access) and opens the client end (with
// client_access) of a new pipe of a unique name.
DWORD create_pair(DWORD server_access, bool server_overlapped, DWORD client_access,
                  bool client_overlapped, DWORD buffer_size, unique_handle& server,
                  unique_handle& client) noexcept
{
    SECURITY_ATTRIBUTES sa{};
    sa.nLength = sizeof sa;
    sa.bInheritHandle = FALSE;
    DWORD pid = ::GetCurrentProcessId();
    // A name can be taken when another process made it: one of an earlier process of the same
    // id, or anyone's. FILE_FLAG_FIRST_PIPE_INSTANCE then fails with ERROR_ACCESS_DENIED (or
    // ERROR_PIPE_BUSY): take the next number.
    for (int attempt = 0;; ++attempt) {
        wchar_t name[64];
        std::swprintf(name, sizeof name / sizeof name[0], L"\\\\.\\pipe\\gipc-%lu-%lu",
                      static_cast<unsigned long>(pid), pipe_counter.fetch_add(1) + 1);
        HANDLE s = ::CreateNamedPipeW(
            name,
            server_access | FILE_FLAG_FIRST_PIPE_INSTANCE | (server_overlapped ? FILE_FLAG_OVERLAPPED : 0),
            PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
            1, buffer_size, buffer_size, 0, &sa);
        if (s == INVALID_HANDLE_VALUE) {
            DWORD e = ::GetLastError();
            if ((e == ERROR_ACCESS_DENIED || e == ERROR_PIPE_BUSY) && attempt < 100)
                continue;
            return e;
        }
        unique_handle srv(s);
        HANDLE c = ::CreateFileW(name, client_access, 0, &sa, OPEN_EXISTING,
                                 (client_overlapped ? FILE_FLAG_OVERLAPPED : 0) |
                                     SECURITY_SQOS_PRESENT | SECURITY_ANONYMOUS,
                                 nullptr);
        if (c == INVALID_HANDLE_VALUE)
            return ::GetLastError();
        unique_handle cli(c);
        // The client's open connected the pipe. ConnectNamedPipe says so with
        // ERROR_PIPE_CONNECTED; a server end opened for overlapped I/O needs an OVERLAPPED
        // even for that answer.
        OVERLAPPED ov{};
        unique_handle event(::CreateEventW(nullptr, TRUE, FALSE, nullptr));
        if (!event)
            return ::GetLastError();
        ov.hEvent = event.get();
        if (!::ConnectNamedPipe(srv.get(), server_overlapped ? &ov : nullptr)) {
            DWORD e = ::GetLastError();
            if (e == ERROR_IO_PENDING) { // no client after all: undo the wait before ov goes
                ::CancelIoEx(srv.get(), &ov);
                DWORD n = 0;
                ::GetOverlappedResult(srv.get(), &ov, &n, TRUE);
                return ERROR_PIPE_NOT_CONNECTED;
            }
            if (e != ERROR_PIPE_CONNECTED)
                return e;
        }
        server = std::move(srv);
        client = std::move(cli);
        return 0;
    }
}

} // namespace

DWORD make_pipe(unique_handle& read_end, unique_handle& write_end, const pipe_options& options) noexcept
{
    // The write end has FILE_READ_ATTRIBUTES too, to let its owner query the pipe (its state,
    // GetNamedPipeInfo) like the server end can.
    return create_pair(PIPE_ACCESS_INBOUND, options.read_overlapped,
                       GENERIC_WRITE | FILE_READ_ATTRIBUTES, options.write_overlapped,
                       options.buffer_size, read_end, write_end);
}

DWORD make_duplex_pipe(unique_handle& first, unique_handle& second, const duplex_options& options) noexcept
{
    return create_pair(PIPE_ACCESS_DUPLEX, options.first_overlapped, GENERIC_READ | GENERIC_WRITE,
                       options.second_overlapped, options.buffer_size, first, second);
}

} // namespace gipc::detail::win
