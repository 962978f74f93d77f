// SPDX-License-Identifier: MIT
#pragma once
// native_fd on Windows: a HANDLE (void*, spelled out so that io_ops.hpp, which every logic file
// includes, does not bring <windows.h> along). meson.build puts this directory on the include
// path of libgipc's sources on Windows, so that io_ops.hpp's #include "native_fd.hpp" finds
// this header (src/linux/native_fd.hpp is the POSIX one).

#include "../private.hpp"

namespace gipc::detail {

using native_fd = void*;

} // namespace gipc::detail
