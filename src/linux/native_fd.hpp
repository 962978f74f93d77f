// SPDX-License-Identifier: MIT
#pragma once
// native_fd on POSIX: a file descriptor. meson.build puts this directory on the include path of
// libgipc's sources on Linux, so that io_ops.hpp's #include "native_fd.hpp" finds this header
// (src/windows/native_fd.hpp is the Windows one).

#include "../private.hpp"

namespace gipc::detail {

using native_fd = int;

} // namespace gipc::detail
