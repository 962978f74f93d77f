// SPDX-License-Identifier: MIT
#include "test_support.hpp"

#include <gipc/detail/test_support.hpp>
#include <gipc/pipe.hpp>
#include <gipc/runtime.hpp>

#include <dirent.h>
#include <csignal>
#include <sys/wait.h>
#include <spawn.h>
#include <poll.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

extern char** environ;

namespace gipc_test {

namespace {

std::size_t handle_count() { return gipc::detail::open_handle_count(); }

} // namespace

std::set<int> open_fds()
{
    std::set<int> fds;
    DIR* d = ::opendir("/proc/self/fd");
    if (!d)
        return fds;
    const int self = ::dirfd(d);
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.')
            continue;
        int fd = std::atoi(e->d_name);
        if (fd != self)
            fds.insert(fd);
    }
    ::closedir(d);
    return fds;
}

std::string describe_fd(int fd)
{
    char buf[PATH_MAX];
    std::string link = "/proc/self/fd/" + std::to_string(fd);
    ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
    if (n < 0)
        return "?";
    buf[n] = 0;
    return buf;
}

namespace {

// read_stat returns (state, ppid) of a /proc/<pid>/stat entry.
bool read_stat(const std::string& pid, char& state, pid_t& ppid)
{
    std::ifstream f("/proc/" + pid + "/stat");
    std::string line;
    if (!std::getline(f, line))
        return false;
    auto close = line.rfind(')');
    if (close == std::string::npos)
        return false;
    std::istringstream rest(line.substr(close + 2));
    rest >> state >> ppid;
    return bool(rest);
}

std::vector<pid_t> scan_children(bool zombies_only)
{
    std::vector<pid_t> out;
    const pid_t me = ::getpid();
    DIR* d = ::opendir("/proc");
    if (!d)
        return out;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char state;
        pid_t ppid;
        if (read_stat(e->d_name, state, ppid) && ppid == me && (!zombies_only || state == 'Z'))
            out.push_back(std::atoi(e->d_name));
    }
    ::closedir(d);
    return out;
}

} // namespace

std::vector<pid_t> child_pids() { return scan_children(false); }
std::vector<pid_t> zombie_children() { return scan_children(true); }

std::size_t thread_count()
{
    std::size_t n = 0;
    DIR* d = ::opendir("/proc/self/task");
    if (!d)
        return 0;
    while (dirent* e = ::readdir(d))
        if (e->d_name[0] != '.')
            ++n;
    ::closedir(d);
    return n;
}

// Linux counts fds, gipc handles and threads itself: nothing more to check.
struct os_leak_check {};

leak_check::leak_check() : fds_(open_fds()), handles_(handle_count()), threads_(thread_count()) {}

leak_check::~leak_check()
{
    // Children and fds released by exit watching or other threads get a grace period.
    auto start = std::chrono::steady_clock::now();
    std::set<int> now = open_fds();
    std::vector<pid_t> kids = child_pids();
    std::size_t threads = thread_count();
    while ((now != fds_ || !kids.empty() || handle_count() != handles_ || threads > threads_) &&
           seconds_since(start) < 2.0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        now = open_fds();
        kids = child_pids();
        threads = thread_count();
    }
    CHECK_MESSAGE(threads <= threads_, (threads - threads_) << " thread(s) left running by the test");
    for (int fd : now)
        if (!fds_.count(fd))
            FAIL_CHECK("fd " << fd << " (" << describe_fd(fd) << ") left open by the test");
    for (int fd : fds_)
        if (!now.count(fd))
            FAIL_CHECK("fd " << fd << " that was open before the test was closed by it");
    for (pid_t pid : kids)
        FAIL_CHECK("child process " << pid << " left behind");
    CHECK_MESSAGE(handle_count() == handles_, "gipc handles left open by the test");
}

void raise_fd_limit()
{
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &rl);
    }
}

std::string self_exe()
{
    char buf[PATH_MAX];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n < 0)
        return {};
    buf[n] = 0;
    return buf;
}

bool refuse_ipv6_sockets()
{
    sock_filter filter[] = {
        // Only x86-64 system calls are looked at; others are allowed.
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 5),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_socket, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[0])), // the family
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_INET6, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EAFNOSUPPORT & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
    return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

helper_result run_helper(const std::string& name, std::vector<std::string> args, std::chrono::seconds timeout)
{
    helper_result res;
    int out[2];
    REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, out[1], 2);
    const std::string exe = gipc_test::self_exe();
    std::vector<std::string> argv_s{exe, "--gipc-child", name};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    pid_t pid = -1;
    const int err = ::posix_spawn(&pid, exe.c_str(), &fa, &attr, argv.data(), environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    REQUIRE(err == 0);
    const auto start = std::chrono::steady_clock::now();
    bool timed_out = false;
    for (;;) {
        pollfd p{out[0], POLLIN, 0};
        const double left = double(timeout.count()) - seconds_since(start);
        if (left <= 0) {
            timed_out = true;
            break;
        }
        if (::poll(&p, 1, int(left * 1000) + 1) <= 0)
            continue;
        char buf[4096];
        const ssize_t n = ::read(out[0], buf, sizeof buf);
        if (n > 0)
            res.output.append(buf, std::size_t(n));
        else if (n == 0 || errno != EINTR)
            break;
    }
    ::close(out[0]);
    if (timed_out)
        ::kill(-pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (timed_out)
        res.status = -1000;
    else
        res.status = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    return res;
}

} // namespace gipc_test
