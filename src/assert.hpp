// SPDX-License-Identifier: MIT
#pragma once
// GIPC_ASSERT(cond, what): a check of an invariant of gipc's own code (a bug when it fails,
// never the caller's input or the environment). It prints what, the condition and the place,
// then aborts. Compiled out when NDEBUG is defined (meson's b_ndebug), like assert(); the
// condition is then not evaluated, so it must have no side effects.
// Private header: never included from include/gipc/.

#ifdef NDEBUG
#define GIPC_ASSERT(cond, what) ((void)0)
#else
#define GIPC_ASSERT(cond, what)                                                                    \
    ((cond) ? (void)0 : ::gipc::detail::assertion_failed(#cond, what, __FILE__, __LINE__))

#include <cstdio>
#include <cstdlib>

namespace gipc::detail {
[[noreturn]] inline void assertion_failed(const char* cond, const char* what, const char* file, int line) noexcept
{
    std::fprintf(stderr, "gipc: internal error at %s:%d: %s (%s failed)\n", file, line, what, cond);
    std::abort();
}
} // namespace gipc::detail
#endif
