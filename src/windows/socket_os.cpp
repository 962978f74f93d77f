// SPDX-License-Identifier: MIT
// socket_os.hpp on Windows: Winsock sockets, overlapped (the IOCP backend's operations,
// iocp_io.cpp) and not inheritable (win::make_socket). No Unix-domain sockets: Wine 8's Winsock
// refuses AF_UNIX (WSAEAFNOSUPPORT), and gipc offers none on Windows.
#include "socket_os.hpp"

#include "windows/socket.hpp"

#include <cerrno>

namespace gipc::detail::socket_os {

namespace {

SOCKET as_socket(native_socket s) noexcept { return static_cast<SOCKET>(s); }
int last_errno() noexcept { return win::socket_errno(static_cast<DWORD>(::WSAGetLastError())); }

} // namespace

int ready() noexcept
{
    const int e = win::start_winsock();
    return e == 0 ? 0 : win::socket_errno(static_cast<DWORD>(e));
}

std::string resolve_error(int code) { return ::gai_strerrorA(code); }

int lookup_on_thread(const char* node, const char* service, const addrinfo* hints, addrinfo** list,
                     int& result) noexcept
{
    struct lookup {
        const char* node;
        const char* service;
        const addrinfo* hints;
        addrinfo** list;
        int result;
    } call{node, service, hints, list, 0};
    const win::unique_handle thread(::CreateThread(
        nullptr, 0,
        [](void* arg) -> DWORD {
            auto* c = static_cast<lookup*>(arg);
            c->result = ::getaddrinfo(c->node, c->service, c->hints, c->list);
            return 0;
        },
        &call, 0, nullptr));
    if (!thread)
        return ::GetLastError() == ERROR_NOT_ENOUGH_MEMORY ? -ENOMEM : -EAGAIN;
    ::WaitForSingleObject(thread.get(), INFINITE);
    result = call.result;
    return 0;
}

native_socket open_stream_socket(int family) noexcept
{
    if (family == AF_UNIX)
        return -EAFNOSUPPORT;
    win::unique_socket s;
    if (const int e = win::make_socket(family, SOCK_STREAM, 0, s))
        return win::socket_errno(static_cast<DWORD>(e));
    return static_cast<native_socket>(s.release());
}

void close_socket(native_socket s) noexcept
{
    if (s >= 0)
        ::closesocket(as_socket(s));
}

int open_socket_pair(native_socket&, native_socket&) noexcept { return -EAFNOSUPPORT; }

int unix_address(const std::string&, sockaddr_storage&, unsigned&) noexcept { return -EAFNOSUPPORT; }

int listen_on(native_socket fd, const sockaddr* addr, unsigned len, int backlog, bool reuse_addr,
              bool dual_stack) noexcept
{
    const SOCKET s = as_socket(fd);
    const BOOL one = TRUE, zero = FALSE;
    if (reuse_addr)
        ::setsockopt(s, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, reinterpret_cast<const char*>(&one), sizeof one);
    if (dual_stack)
        ::setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, reinterpret_cast<const char*>(&zero), sizeof zero);
    if (addr->sa_family == AF_INET || addr->sa_family == AF_INET6)
        set_nodelay(fd);
    if (::bind(s, addr, static_cast<int>(len)) != 0) {
        // A port held by a socket with SO_EXCLUSIVEADDRUSE refuses the bind with WSAEACCES
        // (Wine; Windows, too, for some combinations of the two sockets' options): the port
        // is taken, as POSIX says it.
        const int err = ::WSAGetLastError();
        return err == WSAEACCES ? -EADDRINUSE : win::socket_errno(static_cast<DWORD>(err));
    }
    if (::listen(s, backlog) != 0)
        return last_errno();
    return 0;
}

void set_nodelay(native_socket s) noexcept
{
    const BOOL one = TRUE;
    ::setsockopt(as_socket(s), IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<const char*>(&one), sizeof one);
}

int shutdown_socket(native_socket s, int how) noexcept
{
    return ::shutdown(as_socket(s), how) == 0 ? 0 : last_errno();
}

int local_port(native_socket s) noexcept
{
    sockaddr_storage addr{};
    int len = sizeof addr;
    if (::getsockname(as_socket(s), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
        return last_errno();
    if (addr.ss_family == AF_INET)
        return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    if (addr.ss_family == AF_INET6)
        return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    return 0;
}

} // namespace gipc::detail::socket_os
