// SPDX-License-Identifier: MIT
#pragma once
// platform: the few services of the operating system that gipc's neutral logic (the relay, the
// errors) needs and that differ between platforms. Declared here, defined once per platform in
// a source meson.build chooses: src/posix/platform.cpp (pthreads, signals, fork) and
// src/windows/platform.cpp. Never throws.

#include "private.hpp"

#include <system_error>

namespace gipc::detail::platform {

// start_quiet_thread runs fn(arg) on a new detached thread of gipc's own. On POSIX it blocks
// every signal (the process's signals go to the program's threads; gipc's helper threads never
// run a handler). Returns 0 or -errno.
int start_quiet_thread(void* (*fn)(void*), void* arg) noexcept;

// at_fork_child has fn run in every child forked from now on, right after fork() (a
// pthread_atfork child handler). Windows has no fork: it does nothing there. Returns 0 or
// -errno.
int at_fork_child(void (*fn)()) noexcept;

// helper_threads_may_end: whether a helper thread that ran fibers (the relay) may end when it
// is no longer needed. Not on Windows: Boost.Fiber, built with MinGW-w64, leaves the scheduler
// of a thread that ends behind, with the thread's reactor and its handles (README.md,
// "Windows"), so there the relay thread, once started, stays until the process ends.
bool helper_threads_may_end() noexcept;

// errno_category is the error category of the -errno values gipc reports in a
// std::system_error: std::system_category() on POSIX (where it is errno's), and
// std::generic_category() on Windows, whose system category is that of Win32 error codes.
const std::error_category& errno_category() noexcept;

} // namespace gipc::detail::platform
