// SPDX-License-Identifier: MIT
#pragma once
// platform: the few services of the operating system that gipc's neutral logic (the relay, the
// errors) needs and that differ between platforms. Declared here, defined once per platform in
// a source meson.build chooses: src/posix/platform.cpp (pthreads, signals, fork) and
// src/windows/platform.cpp. Never throws.

#include "private.hpp"

#include "native_fd.hpp"

#include <cstddef>
#include <system_error>

namespace gipc::detail::platform {

// start_quiet_thread runs fn(arg) on a new detached thread of gipc's own: the relay, the helper
// that writes out the queues of ended threads, and on Windows the drain thread and the socket
// poller are made here (POSIX's process start calls posix::start_quiet_thread itself; Windows'
// name lookup waits for a thread of its own that uses neither winpthread nor gipc, and joins
// it). On POSIX it blocks every signal
// (the process's signals go to the program's threads; gipc's helper threads never run a
// handler). On Windows the thread ends so that its exit cannot deadlock with a program's thread
// ending at the same moment (src/windows/platform.cpp). Returns 0 or -errno.
int start_quiet_thread(void* (*fn)(void*), void* arg) noexcept;

// at_fork_child has fn run in every child forked from now on, right after fork() (a
// pthread_atfork child handler). Windows has no fork: it does nothing there. Returns 0 or
// -errno.
int at_fork_child(void (*fn)()) noexcept;

// errno_category is the error category of the -errno values gipc reports in a
// std::system_error: std::system_category() on POSIX (where it is errno's), and
// std::generic_category() on Windows, whose system category is that of Win32 error codes.
const std::error_category& errno_category() noexcept;

// transfer_value is a handle as the data of a call to another process carries it: the fd on
// POSIX; on Windows the HANDLE's value, which fits in 32 bits (Windows keeps handle values
// 32-bit significant so that processes of either width can share them).
int transfer_value(native_fd fd) noexcept;

// adopt_transferred takes over a handle this process received from its parent (a spawned
// child's, by its transfer_value) as one of gipc's: not inherited by this process's own
// children, and on POSIX non-blocking. Returns 0 (out set) or -errno.
int adopt_transferred(int value, unique_native_fd& out) noexcept;

// process_id is this process's id (getpid; GetCurrentProcessId).
long process_id() noexcept;

// exit_now ends this process at once with code, running no exit handler and no static
// destructor of the program (_exit; ExitProcess).
[[noreturn]] void exit_now(int code) noexcept;

// advise_huge_pages asks for transparent huge pages for [addr, addr + size) (whole 2 MiB pages),
// where the system offers them on request (madvise MADV_HUGEPAGE); nothing elsewhere.
void advise_huge_pages(void* addr, std::size_t size) noexcept;

} // namespace gipc::detail::platform
