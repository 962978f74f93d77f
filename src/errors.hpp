// SPDX-License-Identifier: MIT
#pragma once
// throw_errno: the one place where an errno becomes an exception. The layers below the logic
// files (src/posix/, src/linux/, the reactor) never throw: they return -errno, captured right
// after the failing call. A logic file that cannot go on passes that value here, with the
// message the user sees ("gipc: write to pipe"); the exception is std::system_error in the
// system category, and its what() is that message followed by the system's text for the
// errno.
// Private header: never included from include/gipc/.

#include "private.hpp"

#include <string>

namespace gipc::detail {

// throw_errno throws std::system_error(-neg_errno, std::system_category(), what). neg_errno is
// negative (a -errno value); anything else is a bug of gipc's and trips GIPC_ASSERT.
[[noreturn]] void throw_errno(int neg_errno, const char* what);
[[noreturn]] void throw_errno(int neg_errno, const std::string& what);

} // namespace gipc::detail
