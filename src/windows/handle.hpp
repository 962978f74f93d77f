// SPDX-License-Identifier: MIT
#pragma once
// handle.hpp: owners of one HANDLE (closed with CloseHandle) and of one SOCKET (closesocket).
// Like src/posix/fd.hpp on Linux: nothing here throws. Not thread-safe: one owner.
//
// Every handle gipc creates is non-inheritable; a handle is made inheritable only to pass it to
// a child, and then only through an inheritable duplicate listed in PROC_THREAD_ATTRIBUTE_HANDLE_LIST
// (process.hpp), closed once the child exists.

#include "win32.hpp"

#include <string>
#include <utility>

namespace gipc::detail::win {

// unique_handle owns a kernel handle. Both invalid values of the Win32 API count as empty:
// nullptr (what CreateEvent, OpenProcess... return on failure) and INVALID_HANDLE_VALUE (what
// CreateFile and CreateNamedPipe return). get() of an empty owner is nullptr.
class unique_handle {
public:
    unique_handle() noexcept = default;
    explicit unique_handle(HANDLE h) noexcept : h_(normal(h)) {}
    unique_handle(unique_handle&& other) noexcept : h_(other.release()) {}
    unique_handle& operator=(unique_handle&& other) noexcept
    {
        reset(other.release());
        return *this;
    }
    unique_handle(const unique_handle&) = delete;
    unique_handle& operator=(const unique_handle&) = delete;
    ~unique_handle() { reset(); }

    HANDLE get() const noexcept { return h_; }
    explicit operator bool() const noexcept { return h_ != nullptr; }

    // release gives up ownership without closing; returns the handle.
    HANDLE release() noexcept { return std::exchange(h_, nullptr); }

    // reset closes the owned handle, if any, and takes h.
    void reset(HANDLE h = nullptr) noexcept
    {
        HANDLE old = std::exchange(h_, normal(h));
        if (old)
            ::CloseHandle(old);
    }

private:
    static HANDLE normal(HANDLE h) noexcept { return h == INVALID_HANDLE_VALUE ? nullptr : h; }
    HANDLE h_ = nullptr;
};

// unique_socket owns a Winsock socket.
class unique_socket {
public:
    unique_socket() noexcept = default;
    explicit unique_socket(SOCKET s) noexcept : s_(s) {}
    unique_socket(unique_socket&& other) noexcept : s_(other.release()) {}
    unique_socket& operator=(unique_socket&& other) noexcept
    {
        reset(other.release());
        return *this;
    }
    unique_socket(const unique_socket&) = delete;
    unique_socket& operator=(const unique_socket&) = delete;
    ~unique_socket() { reset(); }

    SOCKET get() const noexcept { return s_; }
    explicit operator bool() const noexcept { return s_ != INVALID_SOCKET; }
    SOCKET release() noexcept { return std::exchange(s_, INVALID_SOCKET); }
    void reset(SOCKET s = INVALID_SOCKET) noexcept
    {
        SOCKET old = std::exchange(s_, s);
        if (old != INVALID_SOCKET)
            ::closesocket(old);
    }

private:
    SOCKET s_ = INVALID_SOCKET;
};

// set_inheritable turns HANDLE_FLAG_INHERIT on or off. Returns 0 or a Win32 error code.
DWORD set_inheritable(HANDLE h, bool on) noexcept;

// is_inheritable is 1 when h has HANDLE_FLAG_INHERIT, 0 when not, or minus a Win32 error code.
long is_inheritable(HANDLE h) noexcept;

// inheritable_duplicate makes out an inheritable duplicate of h (same access), for passing h to
// one child: list out.get() in that child's handle list and close out once the child runs.
// Returns 0 or a Win32 error code.
DWORD inheritable_duplicate(HANDLE h, unique_handle& out) noexcept;

// start_winsock initializes Winsock 2.2 for the process, once (later calls return the first
// call's result). Returns 0 or a Winsock error code.
int start_winsock() noexcept;

// make_socket creates an overlapped, non-inheritable socket (WSA_FLAG_OVERLAPPED |
// WSA_FLAG_NO_HANDLE_INHERIT), starting Winsock first. Returns 0 or a Winsock error code.
int make_socket(int family, int type, int protocol, unique_socket& out) noexcept;

// duplicate_socket_for writes to info the WSAPROTOCOL_INFOW bytes from which process pid makes
// its own copy of s (WSADuplicateSocketW; the bytes travel in the data of a call or a task).
// Returns 0 or a Winsock error code. Throws std::bad_alloc.
int duplicate_socket_for(SOCKET s, DWORD pid, std::string& info);

// socket_from_duplicate makes this process's copy of a socket from the bytes another process's
// duplicate_socket_for wrote for it: overlapped and non-inheritable, Winsock started first.
// Returns 0, WSAEINVAL when info is not such bytes, or a Winsock error code.
int socket_from_duplicate(const std::string& info, unique_socket& out) noexcept;

// process_handle_count is the number of handles open in this process, for leak checks:
// GetProcessHandleCount, or, where that answers 0 (Wine 8 always does; a running process has
// handles), the number of handle values that GetHandleInformation accepts (handle.cpp says
// how). Returns 0 or a Win32 error code.
DWORD process_handle_count(DWORD& count) noexcept;

} // namespace gipc::detail::win
