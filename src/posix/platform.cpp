// SPDX-License-Identifier: MIT
// platform.hpp on POSIX.
#include "platform.hpp"

#include "posix/spawn.hpp"

#include <pthread.h>

namespace gipc::detail::platform {

int start_quiet_thread(void* (*fn)(void*), void* arg) noexcept { return posix::start_quiet_thread(fn, arg); }

int at_fork_child(void (*fn)()) noexcept { return -::pthread_atfork(nullptr, nullptr, fn); }

bool helper_threads_may_end() noexcept { return true; }

const std::error_category& errno_category() noexcept { return std::system_category(); }

} // namespace gipc::detail::platform
