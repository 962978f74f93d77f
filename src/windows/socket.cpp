// SPDX-License-Identifier: MIT
#include "socket.hpp"

#include <cerrno>

namespace gipc::detail::win {

int socket_errno(DWORD error) noexcept
{
    switch (error) {
    case WSAECONNREFUSED:
    case ERROR_CONNECTION_REFUSED:
        return -ECONNREFUSED;
    case WSAECONNRESET:
    case WSAECONNABORTED:
    case ERROR_NETNAME_DELETED: // STATUS_CONNECTION_RESET, STATUS_LOCAL_DISCONNECT
    case ERROR_CONNECTION_ABORTED:
        return -ECONNRESET;
    case WSAESHUTDOWN:
    case ERROR_GRACEFUL_DISCONNECT:
        return -EPIPE;
    case WSAENETUNREACH:
    case ERROR_NETWORK_UNREACHABLE:
        return -ENETUNREACH;
    case WSAEHOSTUNREACH:
    case ERROR_HOST_UNREACHABLE:
        return -EHOSTUNREACH;
    case WSAETIMEDOUT:
    case ERROR_SEM_TIMEOUT: // STATUS_IO_TIMEOUT
        return -ETIMEDOUT;
    case WSAEADDRINUSE:
    case ERROR_ADDRESS_ALREADY_ASSOCIATED:
        return -EADDRINUSE;
    case WSAEADDRNOTAVAIL:
        return -EADDRNOTAVAIL;
    case WSAEAFNOSUPPORT:
        return -EAFNOSUPPORT;
    case WSAEPROTONOSUPPORT:
    case WSAESOCKTNOSUPPORT:
        return -EPROTONOSUPPORT;
    case WSAENOTCONN:
        return -ENOTCONN;
    case WSAEISCONN:
        return -EISCONN;
    case WSAENOTSOCK:
    case WSAEBADF:
    case ERROR_INVALID_HANDLE:
        return -EBADF;
    case WSAEINVAL:
    case ERROR_INVALID_PARAMETER:
        return -EINVAL;
    case WSAEACCES:
    case ERROR_ACCESS_DENIED:
        return -EACCES;
    case WSAEMFILE:
    case ERROR_TOO_MANY_OPEN_FILES:
        return -EMFILE;
    case WSAENOBUFS:
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
    case ERROR_NO_SYSTEM_RESOURCES:
        return -ENOBUFS;
    case WSAEWOULDBLOCK:
        return -EAGAIN;
    case WSAENETDOWN:
        return -ENETDOWN;
    case WSAENETRESET:
        return -ENETRESET;
    case WSAEMSGSIZE:
        return -EMSGSIZE;
    case WSAEOPNOTSUPP:
        return -EOPNOTSUPP;
    case WSANOTINITIALISED:
        return -ENOTSOCK;
    default:
        return -EIO;
    }
}

int socket_family(SOCKET s) noexcept
{
    sockaddr_storage addr{};
    int len = sizeof addr;
    if (::getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
        return -::WSAGetLastError();
    return addr.ss_family;
}

int extension_function(SOCKET s, GUID id, void** out) noexcept
{
    DWORD got = 0;
    if (::WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &id, sizeof id, out, sizeof *out, &got, nullptr,
                   nullptr) != 0)
        return ::WSAGetLastError();
    return 0;
}

} // namespace gipc::detail::win
