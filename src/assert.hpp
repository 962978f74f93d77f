// SPDX-License-Identifier: MIT
#pragma once
// GIPC_ASSERT(cond, what): a check of an invariant of gipc's own code (a bug when it fails,
// never the caller's input or the environment). It prints what, the condition and the place,
// then aborts. Compiled out when NDEBUG is defined (meson's b_ndebug), like assert(); the
// condition is then not evaluated, so it must have no side effects.
// Private header: never included from include/gipc/.
//
// fatal_errno(neg_errno, what): a failure gipc cannot report nor go on after (a syscall on a
// descriptor of its own that must not fail, failing all the same). Prints what and the
// system's text for the errno, then aborts. Never compiled out.

#include "private.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace gipc::detail {
[[noreturn]] inline void fatal_errno(int neg_errno, const char* what) noexcept
{
    std::fprintf(stderr, "gipc: %s: %s\n", what, std::strerror(-neg_errno));
    std::abort();
}
} // namespace gipc::detail

#ifdef NDEBUG
#define GIPC_ASSERT(cond, what) ((void)0)
#else
#define GIPC_ASSERT(cond, what)                                                                    \
    ((cond) ? (void)0 : ::gipc::detail::assertion_failed(#cond, what, __FILE__, __LINE__))

namespace gipc::detail {
[[noreturn]] inline void assertion_failed(const char* cond, const char* what, const char* file, int line) noexcept
{
    std::fprintf(stderr, "gipc: internal error at %s:%d: %s (%s failed)\n", file, line, what, cond);
    std::abort();
}
} // namespace gipc::detail
#endif
