// SPDX-License-Identifier: MIT
// The fiber runtime: the reactor scheduler, fd waits, timers, cross-thread wakeups.
#include "test_support.hpp"

#include <gipc/pipe.hpp>
#include <gipc/runtime.hpp>

#include <boost/fiber/all.hpp>

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <limits>
#include <system_error>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

using namespace std::chrono_literals;
using gipc_test::seconds_since;
using clock_type = std::chrono::steady_clock;

namespace {

// A pipe for tests, both ends non-blocking and closed on destruction.
struct test_pipe {
    int r = -1, w = -1;
    test_pipe()
    {
        int fds[2];
        REQUIRE(::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0);
        r = fds[0];
        w = fds[1];
    }
    ~test_pipe()
    {
        if (r >= 0)
            ::close(r);
        if (w >= 0)
            ::close(w);
    }
    test_pipe(const test_pipe&) = delete;
    test_pipe& operator=(const test_pipe&) = delete;
    void put(char c = 'x') const { REQUIRE(::write(w, &c, 1) == 1); }
    char take() const
    {
        char c = 0;
        REQUIRE(::read(r, &c, 1) == 1);
        return c;
    }
};

// child_pipe is test_pipe for child helpers, which run outside doctest: failures throw.
struct child_pipe {
    int r = -1, w = -1;
    child_pipe()
    {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0)
            throw std::system_error(errno, std::system_category(), "pipe2");
        r = fds[0];
        w = fds[1];
    }
    ~child_pipe()
    {
        ::close(r);
        ::close(w);
    }
    child_pipe(const child_pipe&) = delete;
    child_pipe& operator=(const child_pipe&) = delete;
    void put(char c = 'x') const
    {
        if (::write(w, &c, 1) != 1)
            throw std::system_error(errno, std::system_category(), "write");
    }
    char take() const
    {
        char c = 0;
        if (::read(r, &c, 1) != 1)
            throw std::system_error(errno, std::system_category(), "read");
        return c;
    }
};

double thread_cpu_seconds()
{
    rusage ru{};
    ::getrusage(RUSAGE_THREAD, &ru);
    return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// refuse_epoll_pwait2 installs a seccomp filter on every thread of the calling process (for a
// child of a test: it cannot be undone) under which epoll_pwait2 fails with err, as under
// container profiles written before the call existed. False when the kernel refuses it.
bool refuse_epoll_pwait2(int err)
{
    sock_filter filter[] = {
        // Only x86-64 system calls are looked at; others are allowed.
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_epoll_pwait2, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (static_cast<unsigned>(err) & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
    return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
           ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) == 0;
}

// child_failure is a child helper's report of a failed check: a message on stderr and an
// exit status naming the check.
int child_failure(int code, const char* what)
{
    std::fprintf(stderr, "child check %d failed: %s\n", code, what);
    return code;
}

// voluntary_switches is how often thread tid of this process blocked (in epoll_wait, say)
// and was woken again, from /proc: the kernel counts each wake-up of a sleeping thread.
long voluntary_switches(pid_t tid)
{
    std::FILE* f = std::fopen(("/proc/self/task/" + std::to_string(tid) + "/status").c_str(), "re");
    if (!f)
        return -1;
    char line[256];
    long n = -1;
    while (std::fgets(line, sizeof line, f))
        if (std::sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1)
            break;
    std::fclose(f);
    return n;
}

// own_waits_after_fork runs, in the calling process, 5 fiber waits on a pipe of its own
// (written by a thread of its own 20 ms after each wait began) and 5 gets from a gipc pipe
// fed the same way, and returns how many of them failed (a lost wake-up shows as a timeout).
// No doctest here: a forked child runs it too.
int own_waits_after_fork()
{
    int failures = 0;
    try {
        child_pipe p;
        auto [r, w] = gipc::pipe();
        std::atomic<int> step{0};
        std::thread writer([&, &w = w] {
            for (int i = 1; i <= 10; ++i) {
                auto start = clock_type::now();
                while (step < i && seconds_since(start) < 10)
                    std::this_thread::sleep_for(1ms);
                std::this_thread::sleep_for(20ms);
                if (i <= 5) {
                    p.put();
                } else {
                    w.put(i);
                    w.flush();
                }
            }
        });
        boost::fibers::fiber waiter([&] {
            for (int i = 1; i <= 5; ++i) {
                step = i;
                if (gipc::wait_readable(p.r, 3s))
                    p.take();
                else
                    ++failures;
            }
        });
        waiter.join();
        for (int i = 6; i <= 10; ++i) {
            step = i;
            try {
                failures += r.get<int>(3s) != i;
            } catch (const gipc::timeout_error&) {
                ++failures;
            }
        }
        writer.join();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "own_waits_after_fork: %s\n", e.what());
        ++failures;
    }
    return failures;
}

} // namespace

// The runtime under a seccomp profile that refuses epoll_pwait2 with the errno in args[0].
GIPC_TEST_CHILD("epoll_pwait2_refused")
{
    const int err = std::stoi(args.at(0));
    if (!refuse_epoll_pwait2(err))
        return 77;
    errno = 0;
    if (::syscall(SYS_epoll_pwait2, -1, nullptr, 0, nullptr, nullptr, 0) != -1 || errno != err)
        return child_failure(2, "the filter does not refuse epoll_pwait2 with the errno asked for");
    try {
        gipc::use_reactor();

        // Fibers of one thread ping-pong over two pipes.
        {
            child_pipe ping, pong;
            int rounds = 0;
            bool stuck = false;
            boost::fibers::fiber a([&] {
                for (int i = 0; i < 200 && !stuck; ++i) {
                    ping.put();
                    if (!gipc::wait_readable(pong.r, 5s)) {
                        stuck = true;
                        break;
                    }
                    pong.take();
                    ++rounds;
                }
            });
            boost::fibers::fiber b([&] {
                for (int i = 0; i < 200 && !stuck; ++i) {
                    if (!gipc::wait_readable(ping.r, 5s)) {
                        stuck = true;
                        break;
                    }
                    ping.take();
                    pong.put();
                }
            });
            a.join();
            b.join();
            if (stuck || rounds != 200)
                return child_failure(3, "ping-pong between fibers over pipes stalled");
        }

        // Messages go back and forth between two threads over gipc pipes.
        {
            auto [to_echo_r, to_echo_w] = gipc::pipe();
            auto [back_r, back_w] = gipc::pipe();
            std::thread echo([&, &to_echo_r = to_echo_r, &back_w = back_w] {
                try {
                    for (int i = 0; i < 300; ++i) {
                        back_w.put(to_echo_r.get<int>(5s) + 1);
                        back_w.flush();
                    }
                } catch (const std::exception& e) {
                    std::fprintf(stderr, "echo thread: %s\n", e.what());
                }
            });
            int bad = 0;
            try {
                for (int i = 0; i < 300; ++i) {
                    to_echo_w.put(i);
                    to_echo_w.flush();
                    bad += back_r.get<int>(5s) != i + 1;
                }
            } catch (const std::exception& e) {
                std::fprintf(stderr, "main thread: %s\n", e.what());
                bad = -1;
            }
            echo.join();
            if (bad != 0)
                return child_failure(4, "round trips between threads over gipc pipes failed");
        }

        // A wait is woken when another thread makes the fd readable.
        {
            child_pipe p;
            std::thread writer([&] {
                std::this_thread::sleep_for(30ms);
                p.put();
            });
            auto start = clock_type::now();
            const bool woke = gipc::wait_readable(p.r, 5s);
            const double elapsed = seconds_since(start);
            writer.join();
            if (!woke || elapsed < 0.025)
                return child_failure(5, "wait_readable was not woken by a write from another thread");
        }

        // Fiber sleeps end, and not early.
        for (auto d : {1ms, 50ms}) {
            auto start = clock_type::now();
            boost::this_fiber::sleep_for(d);
            const double elapsed = seconds_since(start);
            if (elapsed < std::chrono::duration<double>(d).count() || elapsed > 2.0)
                return child_failure(6, "a fiber sleep took the wrong time");
        }

        // An idle thread sleeps in the kernel. A fresh thread, so that its CPU clock counts
        // the idle wait only.
        double cpu = 1, wall = 0;
        {
            child_pipe p;
            std::thread t([&] {
                gipc::use_reactor();
                boost::fibers::fiber waiter([&] { (void)gipc::wait_readable(p.r, 300ms); });
                boost::fibers::fiber sleeper([] { boost::this_fiber::sleep_for(300ms); });
                const double cpu0 = thread_cpu_seconds();
                auto start = clock_type::now();
                waiter.join();
                sleeper.join();
                wall = seconds_since(start);
                cpu = thread_cpu_seconds() - cpu0;
            });
            t.join();
        }
        std::fprintf(stderr, "epoll_pwait2 refused with %s: idle wait %.1f ms wall, %.1f ms CPU\n",
                     std::strerror(err), wall * 1e3, cpu * 1e3);
        if (wall < 0.295)
            return child_failure(7, "the idle wait ended early");
        if (cpu >= 0.1) // a spinning thread uses about as much CPU as wall-clock time
            return child_failure(8, "an idle thread spins");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "child: %s\n", e.what());
        return child_failure(9, "exception");
    }
    return 0;
}

TEST_SUITE("runtime") {

GIPC_TEST("under a seccomp profile that refuses epoll_pwait2, waits, sleeps and pipes work without spinning")
{
    for (int err : {EPERM, ENOSYS, EACCES}) {
        CAPTURE(err);
        const auto result = gipc_test::run_helper("epoll_pwait2_refused", {std::to_string(err)}, 30s);
        INFO("helper output:\n" << result.output);
        REQUIRE_MESSAGE(result.status != -1000, "the child hung and was killed");
        REQUIRE(result.status >= 0); // exited, not killed by a signal
        if (result.status == 77) {
            MESSAGE("the kernel refuses seccomp filters here: skipped");
            return;
        }
        CHECK(result.status == 0);
    }
}

GIPC_TEST("a wait with a 50 ms timeout returns false after at least 50 ms")
{
    test_pipe p;
    bool result = true;
    double elapsed = 0;
    boost::fibers::fiber f([&] {
        auto start = clock_type::now();
        result = gipc::wait_readable(p.r, 50ms);
        elapsed = seconds_since(start);
    });
    f.join();
    CHECK_FALSE(result);
    CHECK(elapsed >= 0.050);
    CHECK(elapsed < 1.0);
}

GIPC_TEST("a wait returns at once when the fd is already ready")
{
    test_pipe p;
    p.put();
    CHECK(gipc::wait_readable(p.r, 0ns));
    CHECK(gipc::wait_readable(p.r, 10s));
    gipc::wait_readable(p.r);
    CHECK(gipc::wait_writable(p.w, 0ns));
    gipc::wait_writable(p.w);
    CHECK(p.take() == 'x');
    CHECK_FALSE(gipc::wait_readable(p.r, 0ns));
}

GIPC_TEST("a fiber waiting on a pipe wakes when another thread writes to it")
{
    test_pipe p;
    std::atomic<bool> woke{false};
    double elapsed = 0;
    boost::fibers::fiber f([&] {
        auto start = clock_type::now();
        gipc::wait_readable(p.r);
        elapsed = seconds_since(start);
        woke = true;
    });
    std::thread writer([&] {
        std::this_thread::sleep_for(30ms);
        p.put();
    });
    f.join();
    writer.join();
    CHECK(woke);
    CHECK(elapsed >= 0.025);
    CHECK(elapsed < 5.0);
    CHECK(p.take() == 'x');
}

GIPC_TEST("the main context itself can wait on an fd while fibers run")
{
    test_pipe p;
    int ran = 0;
    boost::fibers::fiber f([&] {
        for (int i = 0; i < 5; ++i) {
            ++ran;
            boost::this_fiber::sleep_for(2ms);
        }
        p.put();
    });
    gipc::wait_readable(p.r);
    CHECK(ran == 5);
    f.join();
}

GIPC_TEST("a wait for writability blocks while the pipe is full and wakes when it drains")
{
    test_pipe p;
    std::vector<char> block(65536, 'a');
    while (::write(p.w, block.data(), block.size()) > 0) {
    }
    REQUIRE(errno == EAGAIN);
    CHECK_FALSE(gipc::wait_writable(p.w, 20ms));
    bool writable = false;
    boost::fibers::fiber f([&] { writable = gipc::wait_writable(p.w, 5s); });
    boost::fibers::fiber drain([&] {
        boost::this_fiber::sleep_for(10ms);
        while (::read(p.r, block.data(), block.size()) > 0) {
        }
    });
    f.join();
    drain.join();
    CHECK(writable);
}

GIPC_TEST("wait_readable and wait_writable saturate huge timeouts and poll on zero or negative ones")
{
    using std::chrono::duration;
    const auto infinity = duration<double>(std::numeric_limits<double>::infinity());
    // wait_for_write_after waits on an empty pipe with timeout while another thread writes
    // after 100 ms: the wait must block until then and report readiness.
    auto wait_for_write_after = [](auto timeout) {
        test_pipe p;
        std::thread writer([&] {
            std::this_thread::sleep_for(100ms);
            p.put();
        });
        auto start = clock_type::now();
        const bool ready = gipc::wait_readable(p.r, timeout);
        const double elapsed = seconds_since(start);
        writer.join();
        CHECK(ready);
        CHECK(elapsed >= 0.09);
        CHECK(elapsed < 5.0);
    };
    SUBCASE("hours::max() waits") { wait_for_write_after(std::chrono::hours::max()); }
    SUBCASE("nanoseconds::max() waits") { wait_for_write_after(std::chrono::nanoseconds::max()); }
    SUBCASE("duration<double> infinity waits") { wait_for_write_after(infinity); }
    SUBCASE("a huge duration<double> waits") { wait_for_write_after(duration<double>(1e300)); }
    SUBCASE("a large finite timeout (100 years) waits")
    {
        wait_for_write_after(std::chrono::hours(24 * 365 * 100));
    }
    SUBCASE("a wait in a fiber with hours::max() is woken by another thread")
    {
        test_pipe p;
        bool ready = false;
        boost::fibers::fiber f([&] { ready = gipc::wait_readable(p.r, std::chrono::hours::max()); });
        std::thread writer([&] {
            std::this_thread::sleep_for(50ms);
            p.put();
        });
        f.join();
        writer.join();
        CHECK(ready);
    }
    SUBCASE("wait_writable saturates too")
    {
        test_pipe p;
        std::vector<char> block(65536, 'a');
        while (::write(p.w, block.data(), block.size()) > 0) {
        }
        REQUIRE(errno == EAGAIN);
        std::thread drain([&] {
            std::this_thread::sleep_for(100ms);
            while (::read(p.r, block.data(), block.size()) > 0) {
            }
        });
        auto start = clock_type::now();
        CHECK(gipc::wait_writable(p.w, std::chrono::hours::max()));
        CHECK(seconds_since(start) >= 0.09);
        drain.join();
        CHECK(gipc::wait_writable(p.w, infinity));
    }
    SUBCASE("zero, negative and NaN timeouts poll")
    {
        test_pipe p;
        const auto nan = duration<double>(std::numeric_limits<double>::quiet_NaN());
        auto start = clock_type::now();
        CHECK_FALSE(gipc::wait_readable(p.r, 0ns));
        CHECK_FALSE(gipc::wait_readable(p.r, -5s));
        CHECK_FALSE(gipc::wait_readable(p.r, std::chrono::hours::min()));
        CHECK_FALSE(gipc::wait_readable(p.r, -infinity));
        CHECK_FALSE(gipc::wait_readable(p.r, nan));
        CHECK_FALSE(gipc::wait_readable(p.r, duration<double>(0.0)));
        CHECK(seconds_since(start) < 0.5);
        p.put();
        CHECK(gipc::wait_readable(p.r, 0ns));
        CHECK(gipc::wait_readable(p.r, -5s));
        CHECK(gipc::wait_readable(p.r, std::chrono::hours::min()));
        CHECK(gipc::wait_readable(p.r, -infinity));
        CHECK(gipc::wait_writable(p.w, 0ms));
        CHECK(gipc::wait_writable(p.w, -1ms));
        CHECK(gipc::wait_writable(p.w, nan));
    }
    SUBCASE("a short finite timeout still expires")
    {
        test_pipe p;
        auto start = clock_type::now();
        CHECK_FALSE(gipc::wait_readable(p.r, duration<double>(0.03)));
        CHECK(seconds_since(start) >= 0.03);
        CHECK_FALSE(gipc::wait_readable(p.r, std::chrono::microseconds(20000)));
    }
}

GIPC_TEST("a thread that waited once on a shared reader is not woken by the messages another thread reads")
{
    constexpr int messages = 20000;
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    std::atomic<pid_t> idle_tid{0};
    std::atomic<int> idle_got{-1};
    boost::fibers::promise<void> done;
    auto done_future = done.get_future();
    // The idle thread waits once on r (its reactor registers the fd), then sleeps in a fiber
    // until the end of the test.
    std::thread idle([&] {
        idle_tid = ::gettid();
        try {
            idle_got = r.get<int>(10s);
        } catch (const std::exception&) {
        }
        done_future.wait_for(30s);
    });
    while (idle_tid == 0)
        std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(50ms); // the idle thread is parked in get()
    w.put(-1);
    w.flush();
    auto start = clock_type::now();
    while (idle_got != -1 && seconds_since(start) < 10)
        std::this_thread::sleep_for(1ms);
    REQUIRE(idle_got == -1);
    std::this_thread::sleep_for(20ms); // the idle thread is asleep in its fiber

    const long before = voluntary_switches(idle_tid);
    REQUIRE(before >= 0);
    // Another thread reads every message; each one is written on its own, so that each is a
    // readiness edge of the pipe.
    std::atomic<int> read_ok{0};
    std::thread reading([&] {
        try {
            for (int i = 0; i < messages; ++i)
                read_ok += r.get<int>(10s) == i;
        } catch (const std::exception&) {
        }
    });
    for (int i = 0; i < messages; ++i) {
        w.put(i);
        w.flush();
    }
    reading.join();
    const long wakeups = voluntary_switches(idle_tid) - before;
    done.set_value();
    idle.join();
    MESSAGE("the idle thread woke " << wakeups << " times while another thread read " << messages
                                   << " messages");
    CHECK(read_ok == messages);
    CHECK(wakeups < 100);
}

GIPC_TEST("after a plain fork(), parent and child each keep every wake-up of their own waits")
{
    // Before the fork the parent's reactor holds registrations: a gipc pipe it has read from
    // (persistent), and a fiber parked on an fd that the child will make readable.
    auto [r0, w0] = gipc::pipe();
    w0.put(1);
    REQUIRE(r0.get<int>(5s) == 1);
    test_pipe q;
    bool parked_woke = false;
    boost::fibers::fiber parked([&] { parked_woke = gipc::wait_readable(q.r, 10s); });
    boost::this_fiber::yield(); // parked is waiting now

    std::fflush(nullptr);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // The child: the copy of parked continues here and must be woken by the write below
        // (it was waiting in the parent's epoll set), and waits of its own keep their wake-ups.
        std::thread poke([&] {
            std::this_thread::sleep_for(50ms);
            q.put('c');
        });
        const int failures = own_waits_after_fork();
        parked.join();
        poke.join();
        ::_exit(failures == 0 && parked_woke ? 0 : parked_woke ? 10 + failures : 9);
    }
    // The parent, at the same time.
    const int failures = own_waits_after_fork();
    parked.join();
    auto start = clock_type::now();
    int status = 0;
    pid_t reaped = 0;
    while ((reaped = ::waitpid(pid, &status, WNOHANG)) == 0 && seconds_since(start) < 30)
        std::this_thread::sleep_for(10ms);
    if (reaped == 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        FAIL("the child hung and was killed");
    }
    CHECK(failures == 0);
    CHECK(parked_woke);
    REQUIRE(WIFEXITED(status));
    CHECK_MESSAGE(WEXITSTATUS(status) == 0, "child: 9 = its copy of the parked fiber was not woken, "
                                            "10 + n = n of its own waits lost their wake-up");
}

GIPC_TEST("a wait on an fd that is not open throws std::system_error with EBADF")
{
    test_pipe p;
    const int closed_fd = p.r;
    ::close(p.r);
    p.r = -1;
    try {
        (void)gipc::wait_readable(closed_fd, 10ms);
        FAIL("no exception");
    } catch (const std::system_error& e) {
        CHECK(e.code().value() == EBADF);
    }
}

GIPC_TEST("a thread whose fibers are all blocked uses almost no CPU")
{
    test_pipe p;
    double cpu = 0, wall = 0;
    // A fresh thread, so its CPU clock measures the idle wait only.
    std::thread t([&] {
        gipc::use_reactor();
        boost::fibers::fiber waiter([&] { (void)gipc::wait_readable(p.r, 200ms); });
        boost::fibers::fiber sleeper([] { boost::this_fiber::sleep_for(200ms); });
        auto cpu0 = thread_cpu_seconds();
        auto start = clock_type::now();
        waiter.join();
        sleeper.join();
        wall = seconds_since(start);
        cpu = thread_cpu_seconds() - cpu0;
    });
    t.join();
    MESSAGE("idle wait: " << wall * 1e3 << " ms wall, " << cpu * 1e3 << " ms CPU");
    CHECK(wall >= 0.195);
    CHECK(cpu < 0.02); // a spinning thread would use ~200 ms
}

GIPC_TEST("a fiber blocked in get() with nothing else ready still lets a sleeping fiber keep its schedule")
{
    // The ticker is asleep when the main fiber starts waiting, so the main fiber waits for its
    // pipe alone: that wait must end in time for every tick.
    auto [r, w] = gipc::pipe();
    std::vector<double> ticks;
    auto start = clock_type::now();
    boost::fibers::fiber ticker([&] {
        for (int i = 1; i <= 5; ++i) {
            boost::this_fiber::sleep_until(start + i * 20ms);
            ticks.push_back(seconds_since(start));
        }
    });
    boost::this_fiber::yield(); // the ticker goes to sleep
    std::thread writer([w = std::move(w), start]() mutable {
        std::this_thread::sleep_until(start + 400ms);
        w.put(7);
    });
    CHECK(r.get<int>() == 7);
    const double got = seconds_since(start);
    ticker.join();
    writer.join();
    REQUIRE(ticks.size() == 5);
    for (std::size_t i = 0; i < ticks.size(); ++i) {
        CHECK(ticks[i] >= 0.02 * double(i + 1) - 0.001);
        CHECK(ticks[i] < 0.02 * double(i + 1) + 0.15); // not held back until the message came
    }
    CHECK(got >= 0.399);
}

GIPC_TEST("a fiber blocked in get() with nothing else ready still lets another thread wake a fiber at once")
{
    auto [r, w] = gipc::pipe();
    boost::fibers::unbuffered_channel<int> ch;
    double woke_at = 0;
    auto start = clock_type::now();
    boost::fibers::fiber waiter([&] {
        int v = 0;
        CHECK(ch.pop(v) == boost::fibers::channel_op_status::success);
        CHECK(v == 1);
        woke_at = seconds_since(start);
    });
    boost::this_fiber::yield(); // the waiter parks in the channel
    std::thread other([&ch, start] {
        std::this_thread::sleep_until(start + 30ms);
        ch.push(1);
    });
    std::thread writer([w = std::move(w), start]() mutable {
        std::this_thread::sleep_until(start + 400ms);
        w.put(7);
    });
    CHECK(r.get<int>() == 7);
    waiter.join();
    other.join();
    writer.join();
    CHECK(woke_at >= 0.029);
    CHECK(woke_at < 0.25); // woken by the other thread's push, not by the message
}

GIPC_TEST("1000 fibers blocked on 1000 pipes all wake while a ticker keeps its schedule")
{
    gipc_test::raise_fd_limit();
    constexpr int n = 1000;
    std::vector<std::unique_ptr<test_pipe>> pipes;
    for (int i = 0; i < n; ++i)
        pipes.push_back(std::make_unique<test_pipe>());

    int woke = 0;
    std::vector<boost::fibers::fiber> waiters;
    for (int i = 0; i < n; ++i)
        waiters.emplace_back([&, i] {
            gipc::wait_readable(pipes[size_t(i)]->r);
            CHECK(pipes[size_t(i)]->take() == 'x');
            ++woke;
        });

    // The ticker wants to run every 5 ms for 300 ms.
    std::vector<double> ticks;
    bool stop = false;
    boost::fibers::fiber ticker([&] {
        auto start = clock_type::now();
        while (!stop) {
            boost::this_fiber::sleep_for(5ms);
            ticks.push_back(seconds_since(start));
        }
    });

    // Another thread writes to the pipes in batches spread over ~200 ms.
    std::thread writer([&] {
        for (int i = 0; i < n; ++i) {
            pipes[size_t(i)]->put();
            if (i % 50 == 49)
                std::this_thread::sleep_for(10ms);
        }
    });
    for (auto& w : waiters)
        w.join();
    writer.join();
    boost::this_fiber::sleep_for(50ms);
    stop = true;
    ticker.join();

    CHECK(woke == n);
    REQUIRE(ticks.size() >= 2);
    double worst_gap = ticks[0];
    for (size_t i = 1; i < ticks.size(); ++i)
        worst_gap = std::max(worst_gap, ticks[i] - ticks[i - 1]);
    const double expected = ticks.back() / 0.005;
    MESSAGE("ticks: " << ticks.size() << " of ~" << expected << " expected, worst gap "
                      << worst_gap * 1e3 << " ms");
    // Generous margins: a loaded 2-core machine delays timers, but a ticker starved by the
    // waiters would miss most of its ticks.
    CHECK(double(ticks.size()) >= expected * 0.5);
    CHECK(worst_gap < 0.1);
}

GIPC_TEST("a fiber looping on yield does not starve a fiber waiting for an fd")
{
    test_pipe p;
    std::atomic<bool> got_it{false};
    long spins = 0;
    boost::fibers::fiber spinner([&] {
        auto start = clock_type::now();
        while (!got_it && seconds_since(start) < 5.0) {
            ++spins;
            boost::this_fiber::yield();
        }
    });
    boost::fibers::fiber waiter([&] {
        gipc::wait_readable(p.r);
        got_it = true;
    });
    std::thread writer([&] {
        std::this_thread::sleep_for(20ms);
        p.put();
    });
    auto start = clock_type::now();
    waiter.join();
    spinner.join();
    writer.join();
    CHECK(got_it);
    CHECK(spins > 0);
    CHECK(seconds_since(start) < 2.0);
}

GIPC_TEST("a fiber looping on yield does not starve sleeping fibers")
{
    bool woke = false;
    boost::fibers::fiber spinner([&] {
        auto start = clock_type::now();
        while (!woke && seconds_since(start) < 5.0)
            boost::this_fiber::yield();
    });
    boost::fibers::fiber sleeper([&] {
        boost::this_fiber::sleep_for(10ms);
        woke = true;
    });
    sleeper.join();
    spinner.join();
    CHECK(woke);
}

GIPC_TEST("Boost.Fiber primitives work under the reactor scheduler")
{
    SUBCASE("a promise set from another thread wakes the waiting fiber")
    {
        boost::fibers::promise<int> promise;
        auto future = promise.get_future();
        std::thread t([&] {
            std::this_thread::sleep_for(20ms);
            promise.set_value(42);
        });
        int value = 0;
        boost::fibers::fiber f([&] { value = future.get(); });
        f.join();
        t.join();
        CHECK(value == 42);
    }
    SUBCASE("a fiber mutex serializes fibers that sleep while holding it")
    {
        boost::fibers::mutex m;
        int inside = 0, max_inside = 0, total = 0;
        std::vector<boost::fibers::fiber> fs;
        for (int i = 0; i < 10; ++i)
            fs.emplace_back([&] {
                for (int k = 0; k < 3; ++k) {
                    std::lock_guard lk(m);
                    max_inside = std::max(max_inside, ++inside);
                    boost::this_fiber::sleep_for(1ms);
                    --inside;
                    ++total;
                }
            });
        for (auto& f : fs)
            f.join();
        CHECK(max_inside == 1);
        CHECK(total == 30);
    }
    SUBCASE("a buffered channel passes values between fibers and threads")
    {
        boost::fibers::buffered_channel<int> ch(8);
        long sum = 0;
        boost::fibers::fiber consumer([&] {
            int v;
            while (ch.pop(v) == boost::fibers::channel_op_status::success)
                sum += v;
        });
        std::thread producer([&] {
            for (int i = 1; i <= 1000; ++i)
                ch.push(i);
            ch.close();
        });
        consumer.join();
        producer.join();
        CHECK(sum == 500500);
    }
    SUBCASE("sleep_for sleeps at least as long as asked, and not much longer")
    {
        for (auto d : {1ms, 10ms, 50ms}) {
            auto start = clock_type::now();
            boost::this_fiber::sleep_for(d);
            double elapsed = seconds_since(start);
            CHECK(elapsed >= std::chrono::duration<double>(d).count());
            CHECK(elapsed < std::chrono::duration<double>(d).count() + 0.5);
        }
    }
    SUBCASE("a condition variable notified from another thread wakes its fiber")
    {
        boost::fibers::mutex m;
        boost::fibers::condition_variable cv;
        bool ready = false;
        std::thread t([&] {
            std::this_thread::sleep_for(10ms);
            std::lock_guard lk(m);
            ready = true;
            cv.notify_all();
        });
        boost::fibers::fiber f([&] {
            std::unique_lock lk(m);
            cv.wait(lk, [&] { return ready; });
        });
        f.join();
        t.join();
        CHECK(ready);
    }
}

GIPC_TEST("cross-thread wakeups are never lost (20,000 ping-pongs between two threads)")
{
    // Every hop parks a fiber and wakes it from the other thread through the eventfd; one
    // lost wakeup hangs the exchange.
    constexpr int rounds = 20000;
    boost::fibers::unbuffered_channel<int> ping, pong;
    std::thread other([&] {
        int v;
        while (ping.pop(v) == boost::fibers::channel_op_status::success)
            pong.push(v + 1);
    });
    int v = 0;
    auto start = clock_type::now();
    for (int i = 0; i < rounds; ++i) {
        ping.push(v);
        pong.pop(v);
    }
    ping.close();
    other.join();
    CHECK(v == rounds);
    MESSAGE(rounds << " cross-thread round trips in " << seconds_since(start) << " s");
}

GIPC_TEST("wakeups from many threads at once are never lost")
{
    // Three threads wake fibers of this thread concurrently, so wake() races with the
    // reactor draining its eventfd.
    constexpr int producers = 3, per_producer = 30000;
    std::vector<std::unique_ptr<boost::fibers::buffered_channel<int>>> channels;
    for (int p = 0; p < producers; ++p)
        channels.push_back(std::make_unique<boost::fibers::buffered_channel<int>>(2));
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p)
        threads.emplace_back([&, p] {
            for (int i = 0; i < per_producer; ++i)
                channels[size_t(p)]->push(1);
            channels[size_t(p)]->close();
        });
    long total = 0;
    std::vector<boost::fibers::fiber> consumers;
    for (int p = 0; p < producers; ++p)
        consumers.emplace_back([&, p] {
            int v;
            while (channels[size_t(p)]->pop(v) == boost::fibers::channel_op_status::success)
                total += v;
        });
    for (auto& c : consumers)
        c.join();
    for (auto& t : threads)
        t.join();
    CHECK(total == long(producers) * per_producer);
}

GIPC_TEST("the scheduler runs on several threads at once, each with its own reactor")
{
    constexpr int threads = 4;
    auto count_epoll_fds = [] {
        int n = 0;
        for (int fd : gipc_test::open_fds())
            n += gipc_test::describe_fd(fd) == "anon_inode:[eventpoll]";
        return n;
    };
    const int epoll_before = count_epoll_fds();
    std::vector<std::thread> ts;
    std::atomic<int> installed{0};
    std::atomic<bool> counted{false};
    std::atomic<int> done{0};
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&] {
            gipc::use_reactor();
            gipc::use_reactor(); // idempotent
            ++installed;
            while (!counted)
                std::this_thread::sleep_for(1ms);
            // Fibers of this thread ping-pong over two pipes 200 times.
            test_pipe ping, pong;
            boost::fibers::fiber a([&] {
                for (int i = 0; i < 200; ++i) {
                    ping.put();
                    gipc::wait_readable(pong.r);
                    pong.take();
                }
            });
            boost::fibers::fiber b([&] {
                for (int i = 0; i < 200; ++i) {
                    gipc::wait_readable(ping.r);
                    ping.take();
                    pong.put();
                }
            });
            boost::fibers::fiber sleeper([] { boost::this_fiber::sleep_for(20ms); });
            a.join();
            b.join();
            sleeper.join();
            ++done;
        });
    while (installed < threads)
        std::this_thread::sleep_for(1ms);
    // Each thread has an epoll instance of its own while it lives.
    CHECK(count_epoll_fds() == epoll_before + threads);
    counted = true;
    for (auto& t : ts)
        t.join();
    CHECK(done == threads);
    // The fixture checks that every thread's reactor fds were closed when the thread ended.
}

} // TEST_SUITE
