// SPDX-License-Identifier: MIT
#pragma once
// native_fd on POSIX: a file descriptor, owned by posix::unique_fd. meson.build puts this
// directory on the include path of libgipc's sources on Linux, so that io_ops.hpp's #include
// "native_fd.hpp" finds this header (src/windows/native_fd.hpp is the Windows one).

#include "../private.hpp"

#include "../posix/fd.hpp"

namespace gipc::detail {

using native_fd = int;

// unique_native_fd: the owner of one native_fd, closing it on destruction (what a gipc handle's
// end holds).
using unique_native_fd = posix::unique_fd;

} // namespace gipc::detail
