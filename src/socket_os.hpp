// SPDX-License-Identifier: MIT
#pragma once
// socket_os: what gipc::net (net.cpp) needs of the operating system's sockets besides the
// waiting operations of io_ops.hpp, and what differs between platforms: making a stream socket,
// binding and listening, options, shutdown, the bound port, name resolution's setup, Unix-domain
// addresses and socket pairs. Declared here, defined once per platform in a source meson.build
// chooses: src/posix/socket_os.cpp (on src/posix/socket.hpp) and src/windows/socket_os.cpp
// (Winsock: overlapped sockets, not inheritable). The system's socket headers (getaddrinfo,
// inet_pton, sockaddr_in6...) come from socket_headers.hpp of the platform's directory, which
// meson.build puts on the include path as for native_fd.hpp. Nothing here throws (but
// resolve_error's std::bad_alloc) or parks a fiber: functions return a value >= 0 on success
// and -errno on failure; only lookup_on_thread waits, blocking the thread for a name lookup.

#include "private.hpp"

#include "io_ops.hpp"
#include "socket_headers.hpp"

#include <string>
#include <utility>

namespace gipc::detail::socket_os {

// ready prepares the process for sockets and name resolution (Winsock's WSAStartup, once; nothing
// on POSIX). Returns 0 or -errno. open_stream_socket calls it; call it before getaddrinfo.
int ready() noexcept;

// lookup_on_thread is getaddrinfo(node, service, hints, list) with its result in result, run on
// a thread of its own (a thread's stack, not the calling fiber's) while the calling thread
// waits for it. Returns 0, or -errno when no thread could be made (result untouched). On
// Windows the thread is the system's (CreateThread), not the C++ library's: MinGW-w64's
// threads (winpthread) keep an event of their bookkeeping after some of their joins.
int lookup_on_thread(const char* node, const char* service, const addrinfo* hints, addrinfo** list,
                     int& result) noexcept;

// resolve_error is the text of getaddrinfo's error code (gai_strerror; on Windows, where the
// code is a Winsock one, its ANSI text: the wide gai_strerror of a UNICODE build is not a
// std::string's). Throws only std::bad_alloc.
std::string resolve_error(int code);

// open_stream_socket makes a stream socket of family for gipc: non-blocking and close-on-exec
// on POSIX, overlapped and not inheritable on Windows. Returns it or -errno.
native_socket open_stream_socket(int family) noexcept;

// close_socket closes s (close, closesocket); -1 is ignored.
void close_socket(native_socket s) noexcept;

// unique_socket: the owner of one socket that no gipc end holds yet, closing it with
// close_socket on destruction (a unique_native_fd would close it as a file, which on Windows is
// CloseHandle: not how a SOCKET is closed). -1 is empty. Not thread-safe: one owner.
class unique_socket {
public:
    unique_socket() noexcept = default;
    explicit unique_socket(native_socket s) noexcept : s_(s < 0 ? -1 : s) {}
    unique_socket(unique_socket&& other) noexcept : s_(other.release()) {}
    unique_socket& operator=(unique_socket&& other) noexcept
    {
        reset(other.release());
        return *this;
    }
    unique_socket(const unique_socket&) = delete;
    unique_socket& operator=(const unique_socket&) = delete;
    ~unique_socket() { reset(); }

    native_socket get() const noexcept { return s_; }
    explicit operator bool() const noexcept { return s_ >= 0; }
    native_socket release() noexcept { return std::exchange(s_, -1); }
    void reset(native_socket s = -1) noexcept { close_socket(std::exchange(s_, s < 0 ? -1 : s)); }

private:
    native_socket s_ = -1;
};

// open_socket_pair makes a connected pair of Unix stream sockets (as open_stream_socket makes
// them). Returns 0 or -errno: -EAFNOSUPPORT on Windows, where gipc has no Unix-domain sockets.
int open_socket_pair(native_socket& a, native_socket& b) noexcept;

// unix_address fills addr with the address of the Unix socket at path and len with its length.
// Returns 0, -ENAMETOOLONG when path does not fit, or -EAFNOSUPPORT on Windows (Wine 8's
// Winsock has no AF_UNIX; gipc offers none there).
int unix_address(const std::string& path, sockaddr_storage& addr, unsigned& len) noexcept;

// listen_on binds s to addr and listens. reuse_addr lets a TCP listener bind a port whose old
// connections linger (SO_REUSEADDR on POSIX; on Windows, whose SO_REUSEADDR would let another
// socket take a port in use, SO_EXCLUSIVEADDRUSE, which refuses that and allows the rest);
// dual_stack clears IPV6_V6ONLY (an IPv6 wildcard that takes IPv4 too); a TCP listener gets
// TCP_NODELAY, which its connections inherit. Returns 0 or -errno (-EADDRINUSE: the port is
// taken).
int listen_on(native_socket s, const sockaddr* addr, unsigned len, int backlog, bool reuse_addr,
              bool dual_stack) noexcept;

// set_nodelay sets TCP_NODELAY; it fails harmlessly on Unix sockets.
void set_nodelay(native_socket s) noexcept;

// shutdown_socket is shutdown (how: SHUT_RD, SHUT_WR, SHUT_RDWR, which Winsock's SD_RECEIVE,
// SD_SEND, SD_BOTH equal). Returns 0 or -errno.
int shutdown_socket(native_socket s, int how) noexcept;

// local_port is the port s is bound to (0 for a socket without one). Returns it or -errno.
int local_port(native_socket s) noexcept;

} // namespace gipc::detail::socket_os
