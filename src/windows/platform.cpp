// SPDX-License-Identifier: MIT
// platform.hpp on Windows, and what the Windows build needs of the POSIX-only sources it does
// not compile.
#include "platform.hpp"

#include "windows/handle.hpp"

#include <pthread.h>

#include <cstdint>
#include <new>

namespace gipc::detail {

namespace platform {

namespace {

struct quiet_start {
    void* (*fn)(void*);
    void* arg;
};

DWORD WINAPI run_quiet(void* p) noexcept
{
    const quiet_start s = *static_cast<quiet_start*>(p);
    delete static_cast<quiet_start*>(p);
    s.fn(s.arg);
    // The thread's thread-local destructors run here, from pthread_exit, rather than at its
    // end, where the loader runs them (see start_quiet_thread). Detached first, so that
    // pthread_exit also frees what winpthread keeps of the thread: its exit then finds nothing
    // to do there. (pthread_self is 0 only when winpthread had no memory for the thread's
    // record: the thread then ends by returning, as any CreateThread thread does.)
    if (const pthread_t self = ::pthread_self()) {
        ::pthread_detach(self);
        ::pthread_exit(nullptr);
    }
    return 0;
}

} // namespace

int start_quiet_thread(void* (*fn)(void*), void* arg) noexcept
{
    // A thread of gipc's ends without the locks of MinGW-w64's C runtime in either of the two
    // orders that its threads take them in at their exit, which deadlock when two threads end at
    // once (README.md, "Windows"):
    // - a std::thread (winpthread's pthread_create) runs its thread-local destructors holding
    //   winpthread's lock of threads, and libstdc++ calls FreeLibrary after each destructor,
    //   which takes the loader lock (and exit()'s pthread_key_delete takes winpthread's lock of
    //   keys, then its lock of threads, the other way round);
    // - a thread made by CreateThread that used winpthread (every thread that runs Boost.Fiber
    //   does, through its thread_local objects) has the loader run its thread-local destructors
    //   and winpthread's thread-exit callback under the loader lock, which take winpthread's
    //   lock of threads.
    // So the thread is made by CreateThread, and its destructors run before its end, from
    // pthread_exit, under neither lock (run_quiet). Windows has no signals to block.
    auto* s = new (std::nothrow) quiet_start{fn, arg};
    if (!s)
        return -ENOMEM;
    // The thread runs on without its handle (detached): the owner closes it at once.
    win::unique_handle thread(::CreateThread(nullptr, 0, run_quiet, s, 0, nullptr));
    if (!thread) {
        delete s;
        return -EAGAIN;
    }
    return 0;
}

int at_fork_child(void (*)()) noexcept { return 0; }


long process_id() noexcept { return static_cast<long>(::GetCurrentProcessId()); }

void exit_now(int code) noexcept { ::ExitProcess(static_cast<UINT>(code)); }

const std::error_category& errno_category() noexcept { return std::generic_category(); }

int transfer_value(native_fd fd) noexcept
{
    return static_cast<int>(reinterpret_cast<std::intptr_t>(fd));
}

void advise_huge_pages(void*, std::size_t) noexcept {}

int adopt_transferred(int value, unique_native_fd& out) noexcept
{
    // Sign-extended back, as Windows documents for handles shared between 32- and 64-bit code.
    HANDLE h = reinterpret_cast<HANDLE>(static_cast<std::intptr_t>(value));
    if (const DWORD e = win::set_inheritable(h, false); e != 0)
        return e == ERROR_INVALID_HANDLE ? -EBADF : -EIO;
    out.reset(h);
    return 0;
}

} // namespace platform

} // namespace gipc::detail
