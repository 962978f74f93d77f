// SPDX-License-Identifier: MIT
#include "errors.hpp"

#include "assert.hpp"
#include "platform.hpp"

#include <system_error>

namespace gipc::detail {

void throw_errno(int neg_errno, const char* what)
{
    GIPC_ASSERT(neg_errno < 0, "throw_errno is given -errno");
    throw std::system_error(-neg_errno, platform::errno_category(), what);
}

void throw_errno(int neg_errno, const std::string& what) { throw_errno(neg_errno, what.c_str()); }

} // namespace gipc::detail
