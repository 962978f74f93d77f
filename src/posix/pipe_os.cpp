// SPDX-License-Identifier: MIT
// pipe_os.hpp on POSIX (Linux): pipes from pipe2, sized with fcntl's F_GETPIPE_SZ and
// F_SETPIPE_SZ (posix/fd.hpp); and SIGPIPE ignored (sigpipe.hpp).
#include "pipe_os.hpp"
#include "sigpipe.hpp"

#include "posix/fd.hpp"

#include <sys/types.h>
#include <csignal>
#include <unistd.h>

#include <mutex>

namespace gipc::detail {

// ignore_sigpipe makes writes to a pipe without readers fail with EPIPE instead of killing
// the process. A handler the program installed itself is left alone.
void ignore_sigpipe() noexcept
{
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction current{};
        if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
            struct sigaction ignore{};
            ignore.sa_handler = SIG_IGN;
            sigemptyset(&ignore.sa_mask);
            ::sigaction(SIGPIPE, &ignore, nullptr);
        }
    });
}

namespace pipe_os {

int make_pipe(unique_native_fd& read_end, unique_native_fd& write_end) noexcept
{
    return posix::make_pipe(read_end, write_end, true);
}

int pipe_size(native_fd fd) noexcept { return posix::pipe_size(fd); }
int pipe_max_size() noexcept { return posix::pipe_max_size(); }
int grow_pipe(native_fd fd, int size) noexcept { return posix::grow_pipe(fd, size); }

int settle_queue(native_fd) { return 0; }

std::string describe(native_fd fd) { return "fd " + std::to_string(fd); }

unsigned long process_id() noexcept { return static_cast<unsigned long>(::getpid()); }
bool on_main_thread() noexcept { return ::gettid() == ::getpid(); }
bool thread_exit_destroys_locals() noexcept { return true; }

} // namespace pipe_os

} // namespace gipc::detail
