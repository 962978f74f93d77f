// SPDX-License-Identifier: MIT
// Hostile environments (API.md, "Hostile environments — what stays true"): other code reaping
// gipc's children, exit() in targets, plain fork(), transfers racing other threads, small fiber
// stacks, refused system calls, fd and thread limits, handles captured instead of transferred.
// Every case that changes its process's environment (signal dispositions, rlimits, uid,
// seccomp) runs in a child helper: this test binary started again as `--gipc-child <name>`,
// waited for with a bound, and killed if it does not end in time. Helpers report through their
// exit status (0: every check held) and print what failed on stderr.
#include "test_support.hpp"
#include "small_stack.hpp"

#include <gipc/gipc.hpp>

#include <boost/fiber/all.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

using namespace std::chrono_literals;
using gipc_test::seconds_since;
using clock_type = std::chrono::steady_clock;

namespace {

#define CHECK_HELPER(name)                                                                         \
    do {                                                                                           \
        const gipc_test::helper_result r_ = gipc_test::run_helper(name);                                                 \
        INFO("helper " << name << " output:\n" << r_.output);                                      \
        CHECK(r_.status == 0);                                                                     \
    } while (0)

// In helpers: `expect(cond, "what")` counts and reports a failed check.
int g_failures = 0;
void expect(bool cond, const char* what)
{
    if (!cond) {
        ++g_failures;
        std::fprintf(stderr, "check failed: %s\n", what);
    }
}

// refuse_syscall installs a seccomp filter under which system call nr fails with err (when
// arg1 is >= 0, only calls whose second argument equals it). For helpers only.
bool refuse_syscall(long nr, int err, long arg1 = -1)
{
    std::vector<sock_filter> f = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, static_cast<std::uint8_t>(arg1 >= 0 ? 5 : 3)),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
    };
    if (arg1 >= 0) {
        f.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, std::uint32_t(nr), 0, 3));
        f.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[1])));
        f.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, std::uint32_t(arg1), 0, 1));
    } else {
        f.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, std::uint32_t(nr), 0, 1));
    }
    f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (std::uint32_t(err) & SECCOMP_RET_DATA)));
    f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    sock_fprog prog{static_cast<unsigned short>(f.size()), f.data()};
    return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

constexpr uid_t nobody = 65534;

// tasks_of counts the threads of every process whose real uid is uid.
long tasks_of(uid_t uid)
{
    long n = 0;
    DIR* d = ::opendir("/proc");
    if (!d)
        return -1;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        std::ifstream f(std::string("/proc/") + e->d_name + "/status");
        std::string line;
        long real_uid = -1, threads = 0;
        while (std::getline(f, line)) {
            if (line.rfind("Uid:", 0) == 0)
                real_uid = std::atol(line.c_str() + 4);
            else if (line.rfind("Threads:", 0) == 0)
                threads = std::atol(line.c_str() + 8);
        }
        if (real_uid == long(uid))
            n += threads;
    }
    ::closedir(d);
    return n;
}

// become_nobody drops this helper to uid/gid 65534, where RLIMIT_NPROC applies (root ignores it).
bool become_nobody() { return ::setresgid(nobody, nobody, nobody) == 0 && ::setresuid(nobody, nobody, nobody) == 0; }

// limit_tasks sets RLIMIT_NPROC's soft limit so that `allowed` more tasks of this uid can start.
void limit_tasks(long allowed)
{
    rlimit rl{};
    ::getrlimit(RLIMIT_NPROC, &rl);
    rl.rlim_cur = rlim_t(tasks_of(::getuid()) + allowed);
    ::setrlimit(RLIMIT_NPROC, &rl);
}

void lift_task_limit()
{
    rlimit rl{};
    ::getrlimit(RLIMIT_NPROC, &rl);
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NPROC, &rl);
}

// fd_exhaustion fills every free descriptor below the soft RLIMIT_NOFILE, which it lowers to a
// little above the fds in use; the destructor gives everything back.
class fd_exhaustion {
public:
    fd_exhaustion()
    {
        ::getrlimit(RLIMIT_NOFILE, &old_);
        const std::set<int> open = gipc_test::open_fds();
        rlimit rl = old_;
        rl.rlim_cur = rlim_t(*open.rbegin() + 8);
        ::setrlimit(RLIMIT_NOFILE, &rl);
        for (;;) {
            const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                break;
            fds_.push_back(fd);
        }
    }
    ~fd_exhaustion() { release(); }
    void release()
    {
        for (int fd : fds_)
            ::close(fd);
        fds_.clear();
        ::setrlimit(RLIMIT_NOFILE, &old_);
    }

private:
    rlimit old_{};
    std::vector<int> fds_;
};

bool is_zombie(pid_t pid)
{
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line))
        return false;
    const auto close = line.rfind(')');
    return close != std::string::npos && line.size() > close + 2 && line[close + 2] == 'Z';
}

bool gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

// wait_until polls pred every 5 ms for at most limit.
template <class P>
bool wait_until(P pred, std::chrono::milliseconds limit)
{
    const auto start = clock_type::now();
    while (!pred()) {
        if (clock_type::now() - start > limit)
            return false;
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

} // namespace

TEST_SUITE("hostile") {

// ---- children reaped by someone else ------------------------------------------------------------

GIPC_TEST("SIGCHLD ignored: every child that ran is reported started, joins, and exits 0")
{
    CHECK_HELPER("sigchld_ignored");
}

GIPC_TEST("a waitpid(-1) loop on another thread: children start, join, and never throw")
{
    CHECK_HELPER("waitpid_loop");
}

// ---- exit() in a target ------------------------------------------------------------------------

GIPC_TEST("exit() in a target: its status, queued frames delivered, no parent atexit handler or static destructor")
{
    CHECK_HELPER("exit_in_target");
}

// ---- a plain fork() ----------------------------------------------------------------------------

GIPC_TEST("a plain fork() child neither waits for nor terminates the parent's children at exit")
{
    CHECK_HELPER("plain_fork_exit");
}

// ---- transfers racing other threads ------------------------------------------------------------

GIPC_TEST("a transfer racing get() on another thread: transferred and closed here, or refused"
          * doctest::skip(gipc_test::fork_with_busy_threads_deadlocks))
{
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    int transferred = 0, refused = 0;
    for (int round = 0; round < 300; ++round) {
        auto current = gipc::pipe();
        r = std::move(current.first);
        w = std::move(current.second);
        std::atomic<bool> stop{false};
        std::thread other([&] {
            while (!stop.load()) {
                try {
                    (void)r.get<int>(0ms);
                } catch (const gipc::timeout_error&) {
                } catch (const gipc::closed_error&) {
                    return; // transferred meanwhile
                }
            }
        });
        std::this_thread::sleep_for(50us);
        try {
            auto p = gipc::start_process([](gipc::reader& rr) { return rr.get<int>(10s); }, std::ref(r));
            ++transferred;
            CHECK(r.closed()); // never left open in the parent while the child owns it
            w.put(42);
            CHECK(p.join(10s));
            CHECK(p.exitcode() == 42);
        } catch (const gipc::locked_error&) {
            ++refused;
            CHECK_FALSE(r.closed());
        }
        stop = true;
        other.join();
    }
    MESSAGE(transferred << " transfers, " << refused << " refused while the other thread was inside get()");
    CHECK(transferred > 0);
}

// ---- small fiber stacks ------------------------------------------------------------------------

GIPC_TEST("start_process, join, is_alive, exitcode, terminate and kill on a 16 KiB fiber stack")
{
    bool ok = false;
    std::size_t deepest = 0;
    boost::fibers::fiber f = gipc_test::small_stack::small_stack_fiber(&deepest, [&] {
        auto [r, w] = gipc::pipe();
        auto p = gipc::start_process([](gipc::writer w) { w.put(5); return 3; }, std::move(w));
        CHECK(r.get<int>(10s) == 5);
        CHECK(p.join(10s));
        CHECK_FALSE(p.is_alive());
        CHECK(p.exitcode() == 3);
        auto q = gipc::start_process([] { boost::this_fiber::sleep_for(30s); });
        q.terminate();
        q.join();
        CHECK(q.exitcode() == -SIGTERM);
        auto k = gipc::start_process([] { boost::this_fiber::sleep_for(30s); });
        k.kill();
        CHECK(k.join(10s));
        CHECK(k.exitcode() == -SIGKILL);
        ok = true;
    });
    f.join();
    f = boost::fibers::fiber(); // releases the stack, which records its deepest use
    CHECK(ok);
    MESSAGE("deepest fiber stack use " << deepest << " of " << gipc_test::small_stack::small_stack_size << " bytes");
}

// ---- refused system calls ----------------------------------------------------------------------

GIPC_TEST("pidfd_open refused: start_process throws, the target never runs, nothing is left behind")
{
    CHECK_HELPER("pidfd_open_refused");
}

// ---- resource limits ---------------------------------------------------------------------------

GIPC_TEST("no fd left: start_process throws, a handle meant for the child stays open, and works again later")
{
    CHECK_HELPER("fd_limit_start");
}

GIPC_TEST("orphans are reaped although the reaper's eventfd could not be made at first")
{
    CHECK_HELPER("reaper_without_fds");
}

GIPC_TEST("orphans are reaped although the reaper thread could not be started at first")
{
    CHECK_HELPER("reaper_without_threads");
}

GIPC_TEST("thread limit: a daemon child needs no thread to watch its parent")
{
    CHECK_HELPER("daemon_without_threads");
}

GIPC_TEST("a child whose setup fails makes start_process throw, and leaves nothing behind")
{
    CHECK_HELPER("daemon_setup_fails");
}

// ---- handles captured instead of transferred ---------------------------------------------------

GIPC_TEST("a handle captured by the target is closed in the child, and its closed_error says why")
{
    auto [r, w] = gipc::pipe();
    auto p = gipc::start_process([r = std::move(r)]() mutable {
        try {
            (void)r.get<int>(1s);
            return 1;
        } catch (const gipc::closed_error& e) {
            return std::string(e.what()).find("not transferred to this child") != std::string::npos ? 0 : 2;
        }
    });
    CHECK(p.join(10s));
    CHECK(p.exitcode() == 0);
    CHECK(r.closed()); // the moved-from reader
}

} // TEST_SUITE

// ---- child helpers -----------------------------------------------------------------------------

GIPC_TEST_CHILD("sigchld_ignored")
{
    std::signal(SIGCHLD, SIG_IGN);
    for (int i = 0; i < 200; ++i) {
        try {
            auto p = gipc::start_process([] { return 5; });
            expect(p.join(10s), "join returns");
            expect(!p.is_alive(), "is_alive is false");
            expect(p.exitcode() == 0, "exitcode is 0 (the status is lost)");
            p.terminate(); // no-ops: reaped
            p.kill();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "round %d: %s\n", i, e.what());
            return 1;
        }
    }
    // A child still running when another process reaps it later: also fine.
    auto [r, w] = gipc::pipe();
    auto p = gipc::start_process([](gipc::reader r) { return r.get<int>(10s); }, std::move(r));
    expect(p.is_alive(), "alive while it waits");
    w.put(3);
    expect(p.join(10s), "join returns");
    expect(p.exitcode() == 0, "exitcode 0");
    return g_failures;
}

GIPC_TEST_CHILD("waitpid_loop")
{
    std::atomic<bool> stop{false};
    std::thread reaper([&] {
        while (!stop) {
            int status;
            if (::waitpid(-1, &status, WNOHANG) <= 0)
                std::this_thread::sleep_for(20us);
        }
    });
    int ours = 0, lost = 0;
    for (int i = 0; i < 200; ++i) {
        try {
            auto p = gipc::start_process([] { return 5; });
            expect(p.join(10s), "join returns");
            expect(!p.is_alive(), "is_alive is false");
            const auto code = p.exitcode();
            expect(code == 5 || code == 0, "exitcode is the status, or 0 when the other thread reaped it");
            (code == 5 ? ours : lost) += 1;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "round %d: %s\n", i, e.what());
            ++g_failures;
            break;
        }
    }
    stop = true;
    reaper.join();
    std::fprintf(stderr, "%d statuses seen, %d lost to the other reaper\n", ours, lost);
    return g_failures;
}

namespace {
int g_marker_fd = -1;
pid_t g_marker_owner = 0;
void atexit_marker()
{
    if (::getpid() != g_marker_owner && g_marker_fd >= 0)
        [[maybe_unused]] auto r = ::write(g_marker_fd, "A", 1);
}
struct static_marker {
    ~static_marker()
    {
        if (::getpid() != g_marker_owner && g_marker_fd >= 0)
            [[maybe_unused]] auto r = ::write(g_marker_fd, "S", 1);
    }
};
} // namespace

GIPC_TEST_CHILD("exit_in_target")
{
    int marker[2];
    if (::pipe2(marker, O_CLOEXEC | O_NONBLOCK) != 0)
        return 100;
    g_marker_fd = marker[1];
    g_marker_owner = ::getpid();
    static static_marker destroyed_at_exit;
    std::atexit(atexit_marker);

    {
        auto [r, w] = gipc::pipe();
        auto p = gipc::start_process(
            [](gipc::writer w) {
                for (int i = 0; i < 3; ++i)
                    w.put(i); // queued: no suspension before exit()
                std::printf("child stdout before exit\n");
                std::exit(7);
            },
            std::move(w));
        for (int i = 0; i < 3; ++i)
            expect(r.get<int>(10s) == i, "every frame queued before exit() arrives");
        expect(p.join(10s), "join returns");
        expect(p.exitcode() == 7, "exit(7) gives exitcode 7");
    }
    {
        auto p = gipc::start_process([] { std::quick_exit(9); });
        expect(p.join(10s), "join returns");
        expect(p.exitcode() == 9, "quick_exit(9) gives exitcode 9");
    }
    {
        // exit() deeper in the target's call stack, after a fiber of the child queued a frame.
        // (Fibers still blocked when exit() runs are run to completion first, as in any
        // Boost.Fiber program: exit() destroys the thread's scheduler, which waits for them; and
        // exit() on a fiber other than the target's own context never returns in Boost.Fiber
        // 1.74, whose scheduler then waits for that very fiber. README, "Hostile environments".)
        auto [r, w] = gipc::pipe();
        auto p = gipc::start_process(
            [](gipc::writer w) {
                boost::fibers::fiber f([&] { w.put(std::string("from a fiber")); });
                f.join();
                [] { std::exit(4); }();
            },
            std::move(w));
        expect(r.get<std::string>(10s) == "from a fiber", "the fiber's frame arrives");
        expect(p.join(10s), "join returns");
        expect(p.exitcode() == 4, "exit(4) gives exitcode 4");
    }
    char buf[16];
    const ssize_t n = ::read(marker[0], buf, sizeof buf);
    expect(n < 0 && errno == EAGAIN, "no atexit handler or static destructor of the parent ran in a child");
    g_marker_fd = -1;
    ::close(marker[0]);
    ::close(marker[1]);
    std::fflush(stdout);
    return g_failures;
}

GIPC_TEST_CHILD("plain_fork_exit")
{
    // A gipc child that runs until told to stop, and a daemon one.
    auto [r, w] = gipc::pipe();
    auto p = gipc::start_process([](gipc::reader r) { (void)r.get<int>(60s); }, std::move(r));
    auto d = gipc::start_process({.name = "daemon", .daemon = true}, [] { boost::this_fiber::sleep_for(60s); });
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
        // exit() runs the exit duties of this process, which has no child of its own.
        std::exit(0);
    }
    int status = 0;
    const bool ended = wait_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, 5000ms);
    if (!ended) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
    }
    expect(ended, "the plain fork child's exit did not wait for the parent's children");
    expect(p.is_alive(), "the parent's child is still running");
    expect(d.is_alive(), "the parent's daemon child was not terminated by the plain fork child");
    w.put(1);
    expect(p.join(10s), "the child ends when told");
    d.kill();
    expect(d.join(10s), "the daemon ends when killed");
    return g_failures;
}

GIPC_TEST_CHILD("pidfd_open_refused")
{
    if (!refuse_syscall(SYS_pidfd_open, ENOSYS))
        return 100;
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    auto [out_r, out_w] = gipc::pipe();
    try {
        gipc::start_process(
            [](gipc::reader&, gipc::writer& out) { out.put(std::string("the target ran")); }, std::ref(r),
            std::ref(out_w));
        expect(false, "start_process throws");
    } catch (const std::system_error& e) {
        expect(e.code().value() == ENOSYS, "the error is pidfd_open's ENOSYS");
    }
    expect(!r.closed() && !out_w.closed(), "handles meant for the child stay open in the parent");
    out_w.close();
    try {
        (void)out_r.get<std::string>(5s);
        expect(false, "the target never ran");
    } catch (const gipc::eof_error&) {
    }
    w.put(11);
    expect(r.get<int>(5s) == 11, "the reader meant for the child still works");
    expect(wait_until([] { return gipc_test::child_pids().empty(); }, 5000ms), "no child left, no zombie");
    return g_failures;
}

GIPC_TEST_CHILD("fd_limit_start")
{
    auto target = [](gipc::reader& rr) { return rr.get<int>(5s); };
    {
        // One start before the fds run out: UBSan's vptr check of a type it has not seen probes
        // memory through a pipe of its own, which it cannot make without fds (it then reports an
        // invalid vptr); after a first check of the same types it uses its cache.
        auto warm = gipc::pipe();
        auto p = gipc::start_process(target, std::ref(warm.first));
        warm.second.put(1);
        expect(p.join(10s), "join returns");
        try {
            throw std::system_error(EMFILE, std::system_category(), "the error path's types");
        } catch (const std::system_error& e) {
            expect(e.code().value() == EMFILE, "a system_error is what it is");
        }
    }
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    {
        fd_exhaustion no_fds;
        try {
            gipc::start_process(target, std::ref(r));
            expect(false, "start_process throws without fds");
        } catch (const std::system_error& e) {
            expect(e.code().value() == EMFILE, "the error is EMFILE");
        }
        expect(!r.closed(), "the reader meant for the child stays open");
    }
    expect(gipc_test::child_pids().empty(), "no child was left behind");
    auto p = gipc::start_process(target, std::ref(r));
    expect(r.closed(), "transferred once the limit is lifted");
    w.put(12);
    expect(p.join(10s) && p.exitcode() == 12, "the child got the value");
    return g_failures;
}

namespace {
// orphan_pair: two children waiting for EOF on their pipes; their process objects are dropped
// at chosen moments so that they become orphans.
struct waiting_child {
    gipc::writer release;
    pid_t pid = 0;
    std::optional<gipc::process> handle;
};
waiting_child start_waiting_child()
{
    auto [r, w] = gipc::pipe();
    waiting_child c;
    c.handle.emplace(gipc::start_process(
        [](gipc::reader r) {
            try {
                (void)r.get<int>(60s);
            } catch (const gipc::eof_error&) {
            }
        },
        std::move(r)));
    c.pid = c.handle->pid();
    c.release = std::move(w);
    return c;
}
} // namespace

GIPC_TEST_CHILD("reaper_without_fds")
{
    auto a = start_waiting_child();
    auto b = start_waiting_child();
    {
        fd_exhaustion no_fds;
        a.handle.reset(); // an orphan while no eventfd can be made
    }
    std::this_thread::sleep_for(100ms); // a reaper that started now watches what it was given
    b.handle.reset(); // another orphan, once fds are back
    b.release.close();
    expect(wait_until([&] { return gone(b.pid); }, 5000ms), "the second orphan is reaped after it exits");
    a.release.close();
    expect(wait_until([&] { return gone(a.pid); }, 5000ms), "the first orphan is reaped after it exits");
    expect(gipc_test::zombie_children().empty(), "no zombie");
    return g_failures;
}

GIPC_TEST_CHILD("reaper_without_threads")
{
    if (!become_nobody())
        return 100;
    auto a = start_waiting_child();
    limit_tasks(0);
    a.handle.reset(); // an orphan while no thread can start
    lift_task_limit();
    a.release.close();
    std::this_thread::sleep_for(100ms);
    expect(is_zombie(a.pid), "the orphan has exited and waits to be reaped");
    auto later = gipc::start_process([] {}); // a later gipc call starts the reaper
    expect(later.join(10s), "join returns");
    expect(wait_until([&] { return gone(a.pid); }, 5000ms), "the orphan is reaped");
    expect(gipc_test::zombie_children().empty(), "no zombie");
    // While the limit holds, start_process throws and leaves the handle open.
    auto ends = gipc::pipe();
    limit_tasks(0);
    try {
        gipc::start_process([](gipc::reader&) {}, std::ref(ends.first));
        expect(false, "start_process throws at the thread limit");
    } catch (const std::system_error& e) {
        expect(e.code().value() == EAGAIN, "the error is EAGAIN");
    }
    lift_task_limit();
    expect(!ends.first.closed(), "the handle meant for the child stays open");
    auto p = gipc::start_process([] { return 2; });
    expect(p.join(10s) && p.exitcode() == 2, "start_process works once the limit is lifted");
    return g_failures;
}

GIPC_TEST_CHILD("daemon_without_threads")
{
    if (!become_nobody())
        return 100;
    gipc::start_process([] {}).join(); // gipc's fork thread exists before the limit
    auto [r, w] = gipc::pipe();
    limit_tasks(1); // room for the child process, none for a thread in it
    auto d = gipc::start_process(
        {.name = "daemon", .daemon = true},
        [](gipc::writer w) {
            w.put(std::string("daemon runs"));
            boost::this_fiber::sleep_for(60s);
        },
        std::move(w));
    lift_task_limit();
    expect(r.get<std::string>(10s) == "daemon runs", "the daemon child runs its target");
    expect(d.is_alive(), "and keeps running");
    // It has one thread: its parent's death is watched without one.
    std::ifstream status("/proc/" + std::to_string(d.pid()) + "/status");
    std::string line;
    long threads = 0;
    while (std::getline(status, line))
        if (line.rfind("Threads:", 0) == 0)
            threads = std::atol(line.c_str() + 8);
    expect(threads == 1, "the daemon child has one thread");
    d.kill();
    expect(d.join(10s), "join returns");
    return g_failures;
}

GIPC_TEST_CHILD("daemon_setup_fails")
{
    // Neither the kernel's signal on the parent-death pipe (fcntl F_SETSIG refused) nor a
    // watcher thread (thread limit): the daemon child cannot watch its parent.
    if (!become_nobody() || !refuse_syscall(SYS_fcntl, EPERM, F_SETSIG))
        return 100;
    gipc::start_process([] {}).join(); // gipc's fork thread exists before the limit
    auto [out_r, out_w] = gipc::pipe();
    limit_tasks(1);
    try {
        gipc::start_process({.name = "daemon", .daemon = true},
                            [](gipc::writer& out) { out.put(std::string("the target ran")); }, std::ref(out_w));
        expect(false, "start_process throws");
    } catch (const std::system_error& e) {
        expect(e.code().value() == EAGAIN, "the error is the child's EAGAIN");
        expect(std::string(e.what()).find("parent") != std::string::npos, "the message says what failed");
    }
    lift_task_limit();
    expect(!out_w.closed(), "the handle meant for the child stays open");
    out_w.close();
    try {
        (void)out_r.get<std::string>(5s);
        expect(false, "the target never ran");
    } catch (const gipc::eof_error&) {
    }
    expect(wait_until([] { return gipc_test::child_pids().empty(); }, 5000ms), "no child left, no zombie");
    // Not a daemon: no watch needed, so it starts.
    auto p = gipc::start_process([] { return 6; });
    expect(p.join(10s) && p.exitcode() == 6, "a child that is not a daemon starts");
    return g_failures;
}
