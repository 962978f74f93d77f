// SPDX-License-Identifier: MIT
// Fiber stack switches announced to AddressSanitizer. Linked into programs only when gipc is built
// with -Db_sanitize=address (see meson.build).
//
// Boost.Context switches stacks in jump_fcontext() and ontop_fcontext(). Boost built without
// BOOST_USE_ASAN (Debian's is) never tells ASan that a fiber runs on another stack. An exception
// thrown on a fiber stack then cannot clear the shadow of the frames it unwinds (ASan prints
// "ASan is ignoring requested __asan_handle_no_return" because it believes the thread's stack runs
// from the fiber's frame up to the thread's own stack), the unwound frames stay poisoned, and later
// calls at those addresses report false stack-use-after-scope or stack-buffer-overflow errors.
//
// This file defines both functions in the program itself, so every caller (libboost_fiber.so and
// the Boost.Context code inlined into the program) calls them, and each tells ASan the bounds of
// the stack it is about to switch to, then calls the real function of libboost_context.so.

#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>

#include <dlfcn.h>
#include <pthread.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>

extern "C" {
// The ABI of Boost.Context's assembly (boost/context/detail/fcontext.hpp).
struct gipc_asan_transfer {
    void* fctx;
    void* data;
};
using gipc_asan_jump_fn = gipc_asan_transfer (*)(void*, void*);
using gipc_asan_ontop_fn = gipc_asan_transfer (*)(void*, void*, gipc_asan_transfer (*)(gipc_asan_transfer));
}

namespace {

struct stack_bounds {
    const void* bottom = nullptr;
    std::size_t size = 0;
};

// thread_stack is the calling thread's own stack, where its main context runs.
stack_bounds thread_stack()
{
    thread_local const stack_bounds bounds = [] {
        stack_bounds b;
        pthread_attr_t attr;
        if (::pthread_getattr_np(::pthread_self(), &attr) == 0) {
            void* addr = nullptr;
            std::size_t size = 0;
            if (::pthread_attr_getstack(&attr, &addr, &size) == 0)
                b = {addr, size};
            ::pthread_attr_destroy(&attr);
        }
        return b;
    }();
    return bounds;
}

// locate_heap_block asks ASan which heap block holds `p`. It is slow (it builds a full address
// description), so bounds_of caches its answers.
stack_bounds locate_heap_block(void* p)
{
    void* region = nullptr;
    std::size_t size = 0;
    const char* kind = __asan_locate_address(p, nullptr, 0, &region, &size);
    if (kind != nullptr && std::strcmp(kind, "heap") == 0 && region != nullptr)
        return {region, size};
    return {};
}

// still_allocated: [begin, begin + size) is, as far as ASan's shadow memory tells, still one heap
// block of exactly that size: the bytes just outside it are poisoned (redzones) and its first
// and last bytes are not. A block that was freed (poisoned throughout), unmapped (unpoisoned
// around it), or replaced by a block of another size or start fails one of the four checks.
// This reads four shadow bytes and takes no lock; asking ASan's allocator instead
// (__sanitizer_get_ownership) scans every large allocation under a process-wide lock, which
// with thousands of fiber stacks made each stack switch cost as much as a thousand messages.
// A check that fails wrongly (a stack frame's redzone at the block's lowest byte) only sends
// bounds_of to the slow lookup again.
bool still_allocated(std::uintptr_t begin, std::size_t size)
{
    auto poisoned = [](std::uintptr_t a) { return __asan_address_is_poisoned(reinterpret_cast<void*>(a)) != 0; };
    return poisoned(begin - 1) && !poisoned(begin) && !poisoned(begin + size - 1) && poisoned(begin + size);
}

// bounds_of is the stack that the saved context `to` (a stack pointer into it) belongs to: the
// thread's own stack, or a heap block (the fixedsize and pooled stack allocators of Boost.Context
// take fiber stacks from the heap). Heap blocks found are cached per thread, keyed by their
// start; a cached block is used only while it is still_allocated.
stack_bounds bounds_of(void* to)
{
    const stack_bounds own = thread_stack();
    const auto addr = reinterpret_cast<std::uintptr_t>(to);
    const auto own_begin = reinterpret_cast<std::uintptr_t>(own.bottom);
    if (addr >= own_begin && addr - own_begin < own.size)
        return own;

    thread_local std::map<std::uintptr_t, std::size_t> blocks;
    auto it = blocks.upper_bound(addr);
    if (it != blocks.begin()) {
        --it;
        if (addr - it->first < it->second && still_allocated(it->first, it->second))
            return {reinterpret_cast<void*>(it->first), it->second};
    }
    const stack_bounds found = locate_heap_block(to);
    if (found.bottom == nullptr)
        return own;
    const auto begin = reinterpret_cast<std::uintptr_t>(found.bottom);
    // Blocks overlapping the one found were freed: forget them.
    blocks.erase(blocks.lower_bound(begin), blocks.lower_bound(begin + found.size));
    auto before = blocks.lower_bound(begin);
    if (before != blocks.begin() && std::prev(before)->first + std::prev(before)->second > begin)
        blocks.erase(std::prev(before));
    blocks.emplace(begin, found.size);
    return found;
}

// announce tells ASan that the thread is about to run on the stack of `to`. Both halves of the
// switch protocol are done here, before the jump, because a fiber entered for the first time
// starts in Boost.Context's entry function and never returns into this file to finish a switch.
void announce(void* to)
{
    const stack_bounds b = bounds_of(to);
    __sanitizer_start_switch_fiber(nullptr, b.bottom, b.size);
    __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
}

template <class F>
F next_definition(const char* name)
{
    void* sym = ::dlsym(RTLD_NEXT, name);
    if (sym == nullptr) {
        std::fprintf(stderr, "gipc: ASan fiber support: %s not found in Boost.Context\n", name);
        std::abort();
    }
    return reinterpret_cast<F>(sym);
}

} // namespace

extern "C" gipc_asan_transfer jump_fcontext(void* to, void* vp)
{
    static const auto real = next_definition<gipc_asan_jump_fn>("jump_fcontext");
    announce(to);
    return real(to, vp);
}

extern "C" gipc_asan_transfer ontop_fcontext(void* to, void* vp, gipc_asan_transfer (*fn)(gipc_asan_transfer))
{
    static const auto real = next_definition<gipc_asan_ontop_fn>("ontop_fcontext");
    announce(to);
    return real(to, vp, fn);
}
