// SPDX-License-Identifier: MIT
// platform.hpp on Windows, and what the Windows build needs of the POSIX-only sources it does
// not compile.
#include "platform.hpp"

#include "windows/handle.hpp"

#include <cstdint>
#include <new>

namespace gipc::detail {

namespace platform {

int start_quiet_thread(void* (*fn)(void*), void* arg) noexcept
{
    // CreateThread rather than std::thread: tests with winpthread's threads now and then ended
    // with one more event handle open (README.md, "Windows"), which leak checks count. Windows
    // has no signals to block.
    struct start {
        void* (*fn)(void*);
        void* arg;
    };
    auto* s = new (std::nothrow) start{fn, arg};
    if (!s)
        return -ENOMEM;
    // The thread runs on without its handle (detached): the owner closes it at once.
    win::unique_handle thread(::CreateThread(
        nullptr, 0,
        [](void* p) -> DWORD {
            const start s = *static_cast<start*>(p);
            delete static_cast<start*>(p);
            s.fn(s.arg);
            return 0;
        },
        s, 0, nullptr));
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
