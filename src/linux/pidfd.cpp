// SPDX-License-Identifier: MIT
#include "linux/pidfd.hpp"

#include "posix/fd.hpp"

#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>

namespace gipc::linux_pidfd {

namespace {

int decode(const siginfo_t& info) noexcept
{
    if (info.si_code == CLD_EXITED)
        return info.si_status;
    return -info.si_status; // CLD_KILLED, CLD_DUMPED
}

int reap(int pidfd, int& status, int flags) noexcept
{
    siginfo_t info;
    std::memset(&info, 0, sizeof info);
    int r = posix::retry_eintr([&] { return ::waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED | flags); });
    if (r < 0)
        return r;
    if (info.si_pid == 0)
        return 0; // WNOHANG and still running
    status = decode(info);
    return 1;
}

} // namespace

int open(pid_t pid) noexcept
{
    // Raw syscalls: glibc 2.36's <sys/pidfd.h> declares its wrappers without C linkage for
    // C++. pidfds are always close-on-exec.
    long fd = ::syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -errno : static_cast<int>(fd);
}

int try_reap(int pidfd, int& status) noexcept { return reap(pidfd, status, WNOHANG); }

int reap_blocking(int pidfd, int& status) noexcept
{
    int r = reap(pidfd, status, 0);
    return r == 1 ? 0 : (r < 0 ? r : -ECHILD);
}

int wait_exited(int pidfd) noexcept
{
    pollfd exited{pidfd, POLLIN, 0};
    const int r = posix::retry_eintr([&] { return ::poll(&exited, 1, -1); });
    return r < 0 ? r : 0;
}

int send_signal(int pidfd, int sig) noexcept
{
    return ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0 ? 0 : -errno;
}

} // namespace gipc::linux_pidfd
