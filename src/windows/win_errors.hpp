// SPDX-License-Identifier: MIT
#pragma once
// win_errors.hpp: the translation of a Win32 error code into the -errno value that gipc's
// neutral logic reports (as std::system_error in std::generic_category(): src/platform.hpp).

#include "win32.hpp"

namespace gipc::detail::win {

// errno_of is -errno for a Win32 error code: a pipe whose other end is gone is -EPIPE, a
// missing file or program -ENOENT, an exhausted resource -ENOMEM or -EMFILE, what has no closer
// errno -EIO (a cancelled operation too: callers that cancel know why). Never -EAGAIN, which
// gipc's I/O paths would take for "try again".
int errno_of(DWORD error) noexcept;

} // namespace gipc::detail::win
