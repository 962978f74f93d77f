// SPDX-License-Identifier: MIT
// pipe_os.hpp on Windows: gipc's pipes are uniquely named pipes (named_pipe.hpp: byte mode,
// FILE_FLAG_FIRST_PIPE_INSTANCE, both ends overlapped and not inheritable); their buffer is
// fixed when they are made (a hint to the system), so they never grow. SIGPIPE does not exist:
// a write to a pipe without a reader fails (ERROR_NO_DATA, -EPIPE) on its own.
#include "pipe_os.hpp"
#include "sigpipe.hpp"

#include "windows/win_errors.hpp"
#include "windows/named_pipe.hpp"

#include <cerrno>
#include <cstdio>

namespace gipc::detail {

void close_native_fd(native_fd h) noexcept
{
    if (h)
        ::CloseHandle(static_cast<HANDLE>(h));
}

void ignore_sigpipe() noexcept {}

namespace pipe_os {

namespace {

// Each direction's buffer, as the system is asked for it: what a Linux pipe holds at first.
constexpr DWORD buffer_size = 64 * 1024;

using win::errno_of;

} // namespace

int make_pipe(unique_native_fd& read_end, unique_native_fd& write_end) noexcept
{
    win::unique_handle r, w;
    win::pipe_options options;
    options.buffer_size = buffer_size;
    if (const DWORD e = win::make_pipe(r, w, options); e != 0)
        return errno_of(e);
    read_end.reset(r.release());
    write_end.reset(w.release());
    return 0;
}

int pipe_size(native_fd) noexcept { return static_cast<int>(buffer_size); }
int pipe_max_size() noexcept { return static_cast<int>(buffer_size); }
int grow_pipe(native_fd, int) noexcept { return -EOPNOTSUPP; }

int settle_queue(native_fd fd)
{
    // wait_queue_room returns once no queued write is in flight; a zero-length queue_write
    // then reports the failure of the last one, if it failed.
    if (const int w = io::wait_queue_room(fd, steady_time::max()); w != 0)
        return w;
    // (-EOPNOTSUPP: a thread of another algorithm, where queue_write starts no write.)
    const ssize_t r = io::queue_write(fd, nullptr, 0, nullptr);
    return r < 0 && r != -EOPNOTSUPP ? static_cast<int>(r) : 0;
}

std::string describe(native_fd fd)
{
    char text[32];
    std::snprintf(text, sizeof text, "handle 0x%llx",
                  static_cast<unsigned long long>(reinterpret_cast<ULONG_PTR>(fd)));
    return text;
}

unsigned long process_id() noexcept { return ::GetCurrentProcessId(); }

namespace {
// The thread that runs the static initializers (before main) is the process's initial thread.
const DWORD initial_thread = ::GetCurrentThreadId();
} // namespace

// A thread's thread_local objects are destroyed at its exit while their storage is there:
// iocp_reactor.cpp makes sure of it under MinGW-w64's emulated TLS.
bool thread_exit_destroys_locals() noexcept { return true; }

bool on_main_thread() noexcept { return ::GetCurrentThreadId() == initial_thread; }

} // namespace pipe_os

} // namespace gipc::detail
