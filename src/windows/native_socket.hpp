// SPDX-License-Identifier: MIT
#pragma once
// native_socket on Windows: a Winsock SOCKET (UINT_PTR) held as a signed integer of its size, so
// that io_ops.hpp's socket operations keep one convention on both platforms: an accept's result
// is the new socket, or -errno (a SOCKET is a handle value: a small multiple of 4, never
// negative as a signed number; INVALID_SOCKET is -1). Spelled without <winsock2.h>, which
// io_ops.hpp does not bring along. meson.build puts this directory on the include path of
// libgipc's sources on Windows (src/linux/native_socket.hpp is the POSIX one).

#include "../private.hpp"

#include "native_fd.hpp"

#include <cstdint>

namespace gipc::detail {

using native_socket = std::intptr_t;

// socket_fd and fd_socket convert between a socket and the native_fd a gipc end holds it as
// (end_base's fd, the key of forget_fd and of the IOCP backend's operations): the SOCKET's
// value as a HANDLE, which is what a SOCKET of the system's provider is. An end holding a
// socket closes it with closesocket, never CloseHandle (socket_end.hpp).
inline native_fd socket_fd(native_socket s) noexcept { return reinterpret_cast<native_fd>(s); }
inline native_socket fd_socket(native_fd fd) noexcept { return reinterpret_cast<native_socket>(fd); }

} // namespace gipc::detail
