// SPDX-License-Identifier: MIT
// exec_child: clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD) + execve (see exec_child.hpp).
#include "exec_child.hpp"

#include "linux/pidfd.hpp"
#include "posix/fd.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

namespace gipc::detail {

namespace {

// The child runs on this stack while the fork thread waits (CLONE_VFORK); one child at a time.
constexpr std::size_t child_stack_size = 64 * 1024;
alignas(64) char g_child_stack[child_stack_size];

struct child_args {
    const exec_spec* spec;
    int err;       // written by the child when a step fails
    exec_step step;
};

// The child shares the parent's memory: it touches nothing but its stack and args, calls only
// system calls and async-signal-safe functions, and is not instrumented by sanitizers (their
// runtime state is the parent's).
#define GIPC_CHILD_CODE __attribute__((no_sanitize("address", "undefined", "thread")))

[[noreturn]] GIPC_CHILD_CODE void child_fail(child_args& a, exec_step step, int err) noexcept
{
    a.err = err > 0 ? err : EIO;
    a.step = step;
    ::_exit(127);
}

// close_from_fallback closes every fd at or above first where close_range is missing (Linux
// before 5.9): the ones /proc/self/fd lists, else every number up to the fd limit.
GIPC_CHILD_CODE int close_from_fallback(int first) noexcept
{
    const int dir = static_cast<int>(::syscall(SYS_openat, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir < 0) {
        rlimit lim{};
        if (::getrlimit(RLIMIT_NOFILE, &lim) != 0)
            return errno;
        const rlim_t top = lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur > (1u << 20) ? (1u << 20) : lim.rlim_cur;
        for (rlim_t fd = rlim_t(first); fd < top; ++fd)
            ::syscall(SYS_close, int(fd));
        return 0;
    }
    alignas(8) char buf[1024];
    for (;;) {
        const long n = ::syscall(SYS_getdents64, dir, buf, sizeof buf);
        if (n < 0) {
            const int err = errno;
            ::syscall(SYS_close, dir);
            return err;
        }
        if (n == 0)
            break;
        bool closed_some = false;
        for (long off = 0; off < n;) {
            struct linux_dirent64 {
                std::uint64_t ino;
                std::int64_t off;
                unsigned short reclen;
                unsigned char type;
                char name[1];
            };
            const auto* d = reinterpret_cast<const linux_dirent64*>(buf + off);
            off += d->reclen;
            int fd = 0;
            const char* p = d->name;
            if (*p < '0' || *p > '9')
                continue;
            for (; *p >= '0' && *p <= '9'; ++p)
                fd = fd * 10 + (*p - '0');
            if (fd >= first && fd != dir) {
                ::syscall(SYS_close, fd);
                closed_some = true;
            }
        }
        if (closed_some)
            ::syscall(SYS_lseek, dir, 0, SEEK_SET); // the listing changed: read it again
    }
    ::syscall(SYS_close, dir);
    return 0;
}

GIPC_CHILD_CODE int child_main(void* arg) noexcept
{
    auto& a = *static_cast<child_args*>(arg);
    const exec_spec& s = *a.spec;
    for (const auto& m : s.moves) {
        if (m.from == m.to) {
            if (::fcntl(m.to, F_SETFD, 0) != 0)
                child_fail(a, exec_step::dup2, errno);
        } else if (::dup2(m.from, m.to) < 0) {
            child_fail(a, exec_step::dup2, errno);
        }
    }
    if (::syscall(SYS_close_range, static_cast<unsigned>(s.close_from), ~0u, 0u) != 0) {
        const int err = errno == ENOSYS || errno == EINVAL ? close_from_fallback(s.close_from) : errno;
        if (err != 0)
            child_fail(a, exec_step::close_fds, err);
    }
    if (s.cwd && ::chdir(s.cwd) != 0)
        child_fail(a, exec_step::chdir, errno);
    if (s.new_process_group && ::setpgid(0, 0) != 0)
        child_fail(a, exec_step::setpgid, errno);
    if (s.death_parent > 0) {
        if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
            child_fail(a, exec_step::prctl, errno);
        if (::getppid() != s.death_parent)
            ::_exit(127); // the parent is gone already: no death signal will come
    }
    // Handlers are the parent's code: reset them before the mask (inherited from the fork
    // thread: everything blocked) lets a signal in. Ignored signals stay ignored, as across exec.
    for (int sig = 1; sig < NSIG; ++sig) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        struct sigaction current{};
        if (::sigaction(sig, nullptr, &current) != 0)
            continue; // reserved by the C library
        const bool has_function = (current.sa_flags & SA_SIGINFO) ||
                                  (current.sa_handler != SIG_DFL && current.sa_handler != SIG_IGN);
        if (has_function || (sig == SIGPIPE && s.sigpipe_default)) {
            struct sigaction dfl{};
            dfl.sa_handler = SIG_DFL;
            sigemptyset(&dfl.sa_mask);
            ::sigaction(sig, &dfl, nullptr);
        }
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(s.path, s.argv, s.envp);
    child_fail(a, exec_step::execve, errno);
}

} // namespace

const char* exec_step_name(exec_step step) noexcept
{
    switch (step) {
    case exec_step::none:
        return "start";
    case exec_step::clone:
        return "clone";
    case exec_step::dup2:
        return "dup2";
    case exec_step::close_fds:
        return "close_range";
    case exec_step::chdir:
        return "chdir";
    case exec_step::setpgid:
        return "setpgid";
    case exec_step::prctl:
        return "prctl";
    case exec_step::execve:
        return "execve";
    }
    return "start";
}

exec_result exec_child(const exec_spec& spec) noexcept
{
    exec_result r;
    child_args args{&spec, 0, exec_step::none};
    int pidfd = -1;
    const pid_t pid = ::clone(child_main, g_child_stack + child_stack_size,
                              CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &args, &pidfd);
    if (pid < 0) {
        r.err = errno;
        r.step = exec_step::clone;
        return r;
    }
    // CLONE_VFORK: the child has called execve or _exit by now, and its writes to args are seen.
    if (args.err != 0) {
        int status = 0;
        linux_pidfd::reap_blocking(pidfd, status);
        posix::close_fd(pidfd);
        r.err = args.err;
        r.step = args.step;
        return r;
    }
    r.pid = pid;
    r.pidfd = pidfd;
    return r;
}

} // namespace gipc::detail
