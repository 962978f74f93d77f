// SPDX-License-Identifier: MIT
// platform.hpp on POSIX.
#include "platform.hpp"

#include "posix/spawn.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

namespace gipc::detail::platform {

int start_quiet_thread(void* (*fn)(void*), void* arg) noexcept { return posix::start_quiet_thread(fn, arg); }

int at_fork_child(void (*fn)()) noexcept { return -::pthread_atfork(nullptr, nullptr, fn); }

long process_id() noexcept { return ::getpid(); }

void exit_now(int code) noexcept { ::_exit(code); }

const std::error_category& errno_category() noexcept { return std::system_category(); }

int transfer_value(native_fd fd) noexcept { return fd; }

int adopt_transferred(int value, unique_native_fd& out) noexcept
{
    const int fl = ::fcntl(value, F_GETFL);
    if (fl < 0 || ::fcntl(value, F_SETFD, FD_CLOEXEC) != 0 || ::fcntl(value, F_SETFL, fl | O_NONBLOCK) != 0)
        return -errno;
    out.reset(value);
    return 0;
}

void advise_huge_pages(void* addr, std::size_t size) noexcept { ::madvise(addr, size, MADV_HUGEPAGE); }

} // namespace gipc::detail::platform
