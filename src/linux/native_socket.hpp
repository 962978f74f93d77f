// SPDX-License-Identifier: MIT
#pragma once
// native_socket on POSIX: a socket's file descriptor, the one type of io_ops.hpp's socket
// operations (an accept's result is the new fd or -errno). meson.build puts this directory on
// the include path of libgipc's sources on Linux, as for native_fd.hpp (src/windows/ has the
// Windows one).

#include "../private.hpp"

namespace gipc::detail {

using native_socket = int;

} // namespace gipc::detail
