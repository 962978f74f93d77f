// SPDX-License-Identifier: MIT
#pragma once
// native_socket on Windows: a Winsock SOCKET (UINT_PTR) held as a signed integer of its size, so
// that io_ops.hpp's socket operations keep one convention on both platforms: an accept's result
// is the new socket, or -errno (a SOCKET is a handle value: a small multiple of 4, never
// negative as a signed number; INVALID_SOCKET is -1). Spelled without <winsock2.h>, which
// io_ops.hpp does not bring along. meson.build puts this directory on the include path of
// libgipc's sources on Windows (src/linux/native_socket.hpp is the POSIX one).

#include "../private.hpp"

#include <cstdint>

namespace gipc::detail {

using native_socket = std::intptr_t;

} // namespace gipc::detail
