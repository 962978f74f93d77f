// SPDX-License-Identifier: MIT
#pragma once
// Checking calls on small fiber stacks: guarded, painted stacks that record how deep a fiber
// went, failure counting for child helpers (an overflow is a SIGSEGV that fails one test), and
// running such a helper with a bound.

#include "test_support.hpp"

#include <boost/context/protected_fixedsize_stack.hpp>
#include <boost/context/stack_context.hpp>
#include <boost/fiber/fiber.hpp>

#include <sys/mman.h>
#include <sys/wait.h>
#include <spawn.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <utility>

extern char** environ;

// GIPC_TEST_ASAN: built with AddressSanitizer; GIPC_TEST_NO_ASAN keeps a function uninstrumented.
#if defined(__SANITIZE_ADDRESS__)
#define GIPC_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GIPC_TEST_ASAN 1
#endif
#endif
#ifndef GIPC_TEST_ASAN
#define GIPC_TEST_ASAN 0
#endif
#define GIPC_TEST_NO_ASAN __attribute__((no_sanitize_address))

namespace gipc_test::small_stack {

using namespace std::chrono_literals;

// ---- small fiber stacks --------------------------------------------------------------------------

// small_stack_size is the fiber stack every gipc call must work on (API.md, "Small fiber
// stacks"): 16 KiB. AddressSanitizer builds check 32 KiB instead, because ASan itself needs more
// stack than such a fiber has: every malloc through ASan's interceptor records the caller's
// stack in a BufferedStackTrace of 256 frames on the stack (2 KiB) and unwinds into it, and every
// instrumented frame carries redzones around its addressable locals. Measured with the painted
// stacks below, the same calls take 1.5 to 1.7 times the stack under ASan (10 KiB natively,
// over 16 KiB under ASan, where the overflow was inside ASan's operator new).
#if GIPC_TEST_ASAN
inline constexpr std::size_t small_stack_size = 32 * 1024;
#else
inline constexpr std::size_t small_stack_size = 16 * 1024;
#endif

// painted_stack allocates a stack of `size` usable bytes above a guard page, so that an overflow
// is a SIGSEGV instead of a silent write into other memory. Under AddressSanitizer the stack is
// a page-aligned heap block whose lowest page is made inaccessible, because ASan learns the
// bounds of a fiber stack from its heap block (src/sanitizer/asan_fibers.cpp): on an mmap'd
// protected_fixedsize_stack it would take the fiber for the thread's own stack. The stack is
// painted when allocated; deallocate records in *deepest how much of it the fiber used.
class painted_stack {
public:
    painted_stack(std::size_t size, std::size_t* deepest)
        : usable_((size + page_size() - 1) / page_size() * page_size()), deepest_(deepest)
    {
    }

    boost::context::stack_context allocate()
    {
        boost::context::stack_context sctx;
#if GIPC_TEST_ASAN
        const std::size_t page = page_size();
        void* block = nullptr;
        if (::posix_memalign(&block, page, usable_ + page) != 0)
            throw std::bad_alloc();
        if (::mprotect(block, page, PROT_NONE) != 0) {
            std::free(block);
            throw std::bad_alloc();
        }
        sctx.size = usable_ + page;
        sctx.sp = static_cast<char*>(block) + usable_ + page;
#else
        sctx = boost::context::protected_fixedsize_stack(usable_).allocate();
#endif
        paint(static_cast<char*>(sctx.sp) - usable_, usable_);
        return sctx;
    }

    void deallocate(boost::context::stack_context& sctx) noexcept
    {
        char* bottom = static_cast<char*>(sctx.sp) - usable_;
        *deepest_ = std::max(*deepest_, usable_ - unpainted(bottom, usable_));
#if GIPC_TEST_ASAN
        const std::size_t page = page_size();
        ::mprotect(bottom - page, page, PROT_READ | PROT_WRITE);
        std::free(bottom - page);
#else
        boost::context::protected_fixedsize_stack(usable_).deallocate(sctx);
#endif
    }

private:
    static constexpr unsigned char pattern = 0xa5;
    static std::size_t page_size() { return std::size_t(::sysconf(_SC_PAGESIZE)); }
    // The fiber's frames may have left ASan's shadow poisoned (redzones of frames unwound by an
    // exception): these two touch the stack without instrumentation.
    GIPC_TEST_NO_ASAN static void paint(char* p, std::size_t n)
    {
        for (std::size_t i = 0; i < n; ++i)
            reinterpret_cast<volatile unsigned char*>(p)[i] = pattern;
    }
    GIPC_TEST_NO_ASAN static std::size_t unpainted(const char* p, std::size_t n)
    {
        std::size_t i = 0;
        while (i < n && reinterpret_cast<const volatile unsigned char*>(p)[i] == pattern)
            ++i;
        return i;
    }
    std::size_t usable_;
    std::size_t* deepest_;
};

// small_stack_fiber starts fn on a fiber with a small_stack_size stack; the deepest use of
// every such stack goes to *deepest.
template <class F>
boost::fibers::fiber small_stack_fiber(std::size_t* deepest, F&& fn)
{
    return boost::fibers::fiber(std::allocator_arg, painted_stack(small_stack_size, deepest), std::forward<F>(fn));
}

// A child helper checking calls on small stacks counts what went wrong here; each failure is
// printed to stderr, which the parent's test log shows.
inline int small_stack_failures = 0;

#define SMALL_STACK_EXPECT(cond)                                                                   \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            std::fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond);               \
            ++gipc_test::small_stack::small_stack_failures;                                                                \
        }                                                                                          \
    } while (0)

// SMALL_STACK_THROWS(expr, type): expr throws type.
#define SMALL_STACK_THROWS(expr, type)                                                             \
    do {                                                                                           \
        bool threw_ = false;                                                                       \
        try {                                                                                      \
            (void)(expr);                                                                          \
        } catch (const type&) {                                                                    \
            threw_ = true;                                                                         \
        }                                                                                          \
        if (!threw_) {                                                                             \
            std::fprintf(stderr, "%s:%d: expected %s to throw %s\n", __FILE__, __LINE__, #expr, #type); \
            ++gipc_test::small_stack::small_stack_failures;                                                                \
        }                                                                                          \
    } while (0)

inline void small_stack_fail(const char* what)
{
    std::fprintf(stderr, "small stack: %s: failed\n", what);
    ++gipc_test::small_stack::small_stack_failures;
}

// guarded runs body, counting an exception that escapes it as a failure of `what`.
template <class F>
void guarded(const char* what, F&& body)
{
    try {
        body();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "small stack: %s: unexpected exception: %s\n", what, e.what());
        ++gipc_test::small_stack::small_stack_failures;
    }
}

// report_small_stack ends a child helper: prints the deepest stack use of a phase and
// returns the exit status (0 when nothing failed).
inline int report_small_stack(const char* phase, std::size_t deepest)
{
    std::fprintf(stderr, "small stack: %s: deepest fiber stack use %zu of %zu bytes\n", phase, deepest,
                 small_stack_size);
    return small_stack_failures == 0 ? 0 : 1;
}

// run_small_stack_helper runs this test binary as `--gipc-child name` (a SIGSEGV of an overflow
// fails this test alone) and returns its exit status, or -N when signal N ended it. Bounded: a
// helper still running after 60 s is killed.
inline int run_small_stack_helper(const char* name)
{
    const std::string exe = gipc_test::self_exe();
    char* argv[] = {const_cast<char*>(exe.c_str()), const_cast<char*>("--gipc-child"), const_cast<char*>(name),
                    nullptr};
    pid_t pid = -1;
    REQUIRE(::posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv, environ) == 0);
    const auto start = std::chrono::steady_clock::now();
    int status = 0;
    for (;;) {
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        REQUIRE(r >= 0);
        if (r == pid)
            break;
        if (seconds_since(start) > 60) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            FAIL_CHECK("child helper " << name << " still ran after 60 s");
            return -SIGKILL;
        }
        std::this_thread::sleep_for(5ms);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

} // namespace gipc_test::small_stack
