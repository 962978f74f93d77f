// SPDX-License-Identifier: MIT
#pragma once
// socket.hpp: Winsock pieces of gipc's sockets on Windows, beside handle.hpp's unique_socket,
// start_winsock and make_socket. Nothing here throws or waits.

#include "handle.hpp"

namespace gipc::detail::win {

// socket_errno is the -errno of a failed socket operation: error is a Winsock code (WSAGetLastError
// of a call that failed at once) or the Win32 code of a completion (io_error: the NTSTATUS of
// the operation, mapped by the system, e.g. ERROR_CONNECTION_REFUSED for WSAECONNREFUSED).
int socket_errno(DWORD error) noexcept;

// socket_family is the address family of the socket s (getsockname), or minus a Winsock code.
int socket_family(SOCKET s) noexcept;

// extension_function fetches one of Winsock's extension functions for the provider of s
// (AcceptEx, ConnectEx: WSAIoctl SIO_GET_EXTENSION_FUNCTION_POINTER). Returns 0 or a Winsock
// error code.
int extension_function(SOCKET s, GUID id, void** out) noexcept;

} // namespace gipc::detail::win
