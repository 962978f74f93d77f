// SPDX-License-Identifier: MIT
#pragma once
// native_socket on POSIX: a socket's file descriptor, the one type of io_ops.hpp's socket
// operations (an accept's result is the new fd or -errno). meson.build puts this directory on
// the include path of libgipc's sources on Linux, as for native_fd.hpp (src/windows/ has the
// Windows one).

#include "../private.hpp"

#include "native_fd.hpp"

namespace gipc::detail {

using native_socket = int;

// socket_fd and fd_socket convert between a socket and the native_fd a gipc end holds it as
// (end_base's fd, the key of forget_fd): the same fd on POSIX.
constexpr native_fd socket_fd(native_socket s) noexcept { return s; }
constexpr native_socket fd_socket(native_fd fd) noexcept { return fd; }

} // namespace gipc::detail
