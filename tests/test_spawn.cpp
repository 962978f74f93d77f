// SPDX-License-Identifier: MIT
// spawn_process: a new execution of the program (this test binary, whose main calls
// spawn_main first), arguments that travel as data, handles transferred, nothing else
// inherited, and failures to start. Children report through exit codes and pipes.
//
// The Windows build (tests/windows/test_spawn.exe, with tests/windows/spawn_support.cpp's main
// and helpers) compiles every case but those in the #ifndef _WIN32 blocks: fork, signals, fds,
// rlimits, uids and /proc are POSIX-only.
#include "test_support.hpp"

#include <gipc/gipc.hpp>

#include <boost/fiber/all.hpp>

#ifdef _WIN32
#include <windows.h>
#else
#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

using namespace std::chrono_literals;
using gipc_test::seconds_since;

namespace {

struct point {
    int x = 0;
    std::string label;
    std::vector<double> weights;
    MSGPACK_DEFINE(x, label, weights)
    bool operator==(const point&) const = default;
};

int g_changed_by_parent = 1; // the parent sets 2 before spawning; a spawned child sees 1

int noop() { return 0; }
int add(int a, long b) { return int(a + b); }
void throws_runtime_error() { throw std::runtime_error("spawned and failed"); }

// Reports (through w) what arrived, converted.
void report_values(gipc::writer w, std::uint64_t big, std::int8_t small, bool flag, double d, std::string s,
                   std::vector<int> v, std::map<std::string, int> m, std::tuple<int, std::string, bool> t,
                   std::optional<int> some, std::optional<std::string> none, point p,
                   std::vector<std::vector<std::string>> nested)
{
    w.put(std::make_tuple(big, small, flag, d, s, v));
    w.put(m);
    w.put(t);
    w.put(std::make_tuple(some, none));
    w.put(p);
    w.put(nested);
}

#ifndef _WIN32
// open_fd_list is what /proc/self/fd lists (without the directory's own fd).
std::vector<int> open_fd_list()
{
    std::vector<int> fds;
    DIR* d = ::opendir("/proc/self/fd");
    if (!d)
        return fds;
    const int own = ::dirfd(d);
    while (const dirent* e = ::readdir(d))
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && std::atoi(e->d_name) != own)
            fds.push_back(std::atoi(e->d_name));
    ::closedir(d);
    std::sort(fds.begin(), fds.end());
    return fds;
}

// The child's inheritance: its threads (first, before gipc makes anything), fds, the global,
// the environment variable of the start protocol, and its handles' fds.
void report_inheritance(gipc::writer w, gipc::reader r)
{
    const std::size_t threads = gipc_test::thread_count();
    const std::vector<int> fds = open_fd_list();
    w.put(std::make_tuple(threads, fds, g_changed_by_parent, std::getenv("GIPC_SPAWN_FD") != nullptr,
                          w.native_handle(), r.native_handle()));
}

#endif

// report_globals is what a spawned child sees of the parent's globals and of the start protocol's
// environment variable.
void report_globals(gipc::writer w)
{
    w.put(std::make_tuple(g_changed_by_parent, std::getenv("GIPC_SPAWN_FD") != nullptr));
}

int echo_once(gipc::duplex d)
{
    auto v = d.get<std::string>();
    d.put(v + "!");
    return 0;
}

int sum_readers(std::vector<gipc::reader> readers, gipc::writer& out)
{
    int sum = 0;
    for (auto& r : readers)
        sum += r.get<int>();
    out.put(sum);
    return int(readers.size());
}

int serve_one(gipc::net::listener l)
{
    auto s = l.accept(10s);
    s.write_all(s.read_line(10s));
    return 0;
}

int greet_stream(gipc::net::stream s)
{
    s.write_all("from the child\n");
    return 0;
}

int read_two(gipc::reader r) { return r.get<int>() * 10 + r.get<int>(); }

int put_many(gipc::writer w, int n)
{
    for (int i = 0; i < n; ++i)
        w.put(i);
    return 0; // the frames are queued; the exit path delivers them
}

int exit_with(int n) { std::exit(n); }

int grandchild(int depth)
{
    if (depth == 0)
        return 7;
    auto p = gipc::spawn_process(grandchild, depth - 1);
    p.join();
    return *p.exitcode() + 1;
}

std::mutex g_held_forever;

int lock_global_mutex()
{
    std::lock_guard lk(g_held_forever); // a fresh copy of the program: never locked here
    return 5;
}

int sleep_forever()
{
    for (;;)
        std::this_thread::sleep_for(std::chrono::hours(1));
}

#ifndef _WIN32
int report_signals(gipc::writer w)
{
    struct sigaction usr1{}, usr2{}, pipe{};
    ::sigaction(SIGUSR1, nullptr, &usr1);
    ::sigaction(SIGUSR2, nullptr, &usr2);
    ::sigaction(SIGPIPE, nullptr, &pipe);
    sigset_t mask;
    ::pthread_sigmask(SIG_SETMASK, nullptr, &mask);
    w.put(std::make_tuple(usr1.sa_handler == SIG_IGN, usr2.sa_handler == SIG_DFL, pipe.sa_handler == SIG_IGN,
                          sigismember(&mask, SIGTERM) == 1));
    return 0;
}

void usr2_handler(int) {}

// copy_self copies this test binary to a temporary file of its own, executable.
std::string copy_self()
{
    char path[] = "/tmp/gipc-spawn-copy-XXXXXX";
    const int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    ::close(fd);
    std::ifstream in(gipc_test::self_exe(), std::ios::binary);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << in.rdbuf();
    out.close();
    REQUIRE(::chmod(path, 0755) == 0);
    return path;
}

// run_copy runs a copy of this binary as a child helper (for tests that change its file).
gipc_test::helper_result run_copy(const std::string& copy, const std::string& helper)
{
    const std::string cmd = "timeout -s KILL 30 " + copy + " --gipc-child " + helper + " 2>&1";
    FILE* f = ::popen(cmd.c_str(), "re");
    REQUIRE(f != nullptr);
    std::string out;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0)
        out.append(buf, n);
    const int status = ::pclose(f);
    ::unlink(copy.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

#endif

// no_children_left: what a failed spawn must leave (none of this process's children remain).
bool no_children_left() { return gipc_test::child_pids().empty(); }

// process_gone: whether the process pid has ended, waiting up to 10 s.
bool process_gone(pid_t pid)
{
    const auto start = std::chrono::steady_clock::now();
#ifdef _WIN32
    HANDLE h = ::OpenProcess(SYNCHRONIZE, FALSE, DWORD(pid));
    if (!h)
        return true;
    const bool gone = ::WaitForSingleObject(h, 10000) == WAIT_OBJECT_0;
    ::CloseHandle(h);
    (void)start;
    return gone;
#else
    bool gone = false;
    while (seconds_since(start) < 10 && !gone) {
        gone = ::kill(pid, 0) != 0;
        if (!gone) {
            std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
            std::string line;
            std::getline(stat, line);
            const auto close = line.rfind(')');
            gone = close != std::string::npos && line.size() > close + 2 && line[close + 2] == 'Z';
        }
        std::this_thread::sleep_for(10ms);
    }
    return gone;
#endif
}

// set_env sets an environment variable for this process and its children.
void set_env(const char* name, const char* value)
{
#ifdef _WIN32
    ::_putenv_s(name, value);
#else
    ::setenv(name, value, 1);
#endif
}

} // namespace

// ---- child helpers (environment-changing cases run in a process of their own) ------------------

#ifndef _WIN32
GIPC_TEST_CHILD("spawn-signals")
{
    std::signal(SIGUSR1, SIG_IGN);
    std::signal(SIGUSR2, usr2_handler);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    ::pthread_sigmask(SIG_BLOCK, &block, nullptr);
    auto [r, w] = gipc::pipe();
    auto p = gipc::spawn_process(report_signals, std::move(w));
    auto [ignored_kept, handler_reset, pipe_ignored, term_blocked] = r.get<std::tuple<bool, bool, bool, bool>>(10s);
    if (!p.join(10s))
        return 2;
    std::printf("ignored=%d reset=%d sigpipe=%d masked=%d exit=%d\n", ignored_kept, handler_reset, pipe_ignored,
                term_blocked, *p.exitcode());
    return 0;
}

#endif

GIPC_TEST_CHILD("spawn-daemon-then-die")
{
    gipc::process_options o;
    o.daemon = true;
    auto p = gipc::spawn_process(o, sleep_forever);
    std::printf("%d\n", int(p.pid()));
    std::fflush(stdout);
#ifdef _WIN32
    ::TerminateProcess(::GetCurrentProcess(), 9); // no exit duty runs
#else
    ::raise(SIGKILL);
#endif
    return 0;
}

GIPC_TEST_CHILD("spawn-without-spawn-main")
{
    // The child's main skips spawn_main (see tests/support/main.cpp).
    set_env("GIPC_TEST_SKIP_SPAWN_MAIN", args.empty() ? "call" : args[0].c_str());
    try {
        auto p = gipc::spawn_process(noop);
        std::printf("started pid %d\n", int(p.pid()));
        return 3;
    } catch (const std::system_error& e) {
        std::printf("refused: %s\n", e.what());
    }
    std::fflush(stdout);
    return no_children_left() ? 0 : 4;
}

#ifndef _WIN32
GIPC_TEST_CHILD("spawn-not-executable")
{
    // This is a copy of the test binary: made non-executable, its exec is refused.
    if (::chmod("/proc/self/exe", 0644) != 0) {
        std::printf("chmod failed\n");
        return 5;
    }
    try {
        gipc::spawn_process(noop);
        return 3;
    } catch (const std::system_error& e) {
        std::printf("errno=%d %s\n", e.code().value(), e.what());
    }
    return no_children_left() ? 0 : 4;
}

GIPC_TEST_CHILD("spawn-deleted-file")
{
    char self[4096];
    const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 5;
    self[n] = 0;
    if (::unlink(self) != 0)
        return 6;
    auto p = gipc::spawn_process(add, 40, 2L);
    if (!p.join(10s))
        return 2;
    std::printf("exit=%d\n", *p.exitcode());
    return 0;
}

GIPC_TEST_CHILD("spawn-process-limit")
{
    // As an unprivileged user with no room for one more process (its threads count too), the
    // exec's clone fails with EAGAIN.
    auto warm = gipc::spawn_process(noop); // the fork thread exists from here
    warm.join();
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) {
        std::printf("cannot become nobody\n");
        return 5;
    }
    rlimit lim{1, 1};
    if (::setrlimit(RLIMIT_NPROC, &lim) != 0)
        return 6;
    int code = 3;
    try {
        gipc::spawn_process(noop);
    } catch (const std::system_error& e) {
        std::printf("errno=%d %s\n", e.code().value(), e.what());
        code = no_children_left() ? 0 : 4;
    }
    // Ended here: a sanitizer's leak check at exit cannot inspect a process that changed its
    // uid, and this helper's result is its exit status.
    std::fflush(stdout);
    ::_exit(code);
}

GIPC_TEST_CHILD("spawn-fd-limit")
{
    auto warm = gipc::spawn_process(noop);
    warm.join();
    // UBSan's vptr check needs a free fd the first time it sees a type: let it meet
    // std::system_error now.
    try {
        throw std::system_error(EMFILE, std::system_category(), "warm-up");
    } catch (const std::system_error& e) {
        (void)e.what();
        (void)e.code().value();
    }
    const auto before = open_fd_list();
    rlimit lim{};
    ::getrlimit(RLIMIT_NOFILE, &lim);
    const rlimit old = lim;
    lim.rlim_cur = rlim_t(before.back() + 1); // no free fd left but those below the highest
    // Fill every free number below the limit.
    std::vector<int> fillers;
    for (;;) {
        const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            break;
        if (fd > before.back()) {
            ::close(fd);
            break;
        }
        fillers.push_back(fd);
    }
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0)
        return 6;
    try {
        gipc::spawn_process(noop);
        return 3;
    } catch (const std::system_error& e) {
        std::printf("errno=%d %s\n", e.code().value(), e.what());
    }
    for (int fd : fillers)
        ::close(fd);
    ::setrlimit(RLIMIT_NOFILE, &old);
    return no_children_left() && open_fd_list() == before ? 0 : 4;
}

#endif

TEST_SUITE("spawn") {

GIPC_TEST("a spawned target's return value is its exit code; names count with forked children")
{
#ifndef _WIN32
    auto forked = gipc::start_process([] { return 0; });
    auto p = gipc::spawn_process(add, 40, 2L);
    CHECK(p.pid() != forked.pid());
    const int n_fork = std::stoi(forked.name().substr(8));
    CHECK(p.name() == "Process-" + std::to_string(n_fork + 1));
    forked.join();
#else
    auto first = gipc::spawn_process(noop);
    auto p = gipc::spawn_process(add, 40, 2L);
    CHECK(p.pid() != first.pid());
    const int n_first = std::stoi(first.name().substr(8));
    CHECK(p.name() == "Process-" + std::to_string(n_first + 1));
    REQUIRE(first.join(10s));
#endif
    CHECK(p.pid() > 0);
    REQUIRE(p.join(10s));
    CHECK_FALSE(p.is_alive());
    CHECK(p.exitcode() == 42);

    auto lambda = gipc::spawn_process([](int x) { return x * 2; }, 21);
    REQUIRE(lambda.join(10s));
    CHECK(lambda.exitcode() == 42);

    gipc::process_options o;
    o.name = "worker";
    auto named = gipc::spawn_process(o, noop);
    CHECK(named.name() == "worker");
    REQUIRE(named.join(10s));
    CHECK(named.exitcode() == 0);
}

GIPC_TEST("msgpack arguments arrive converted to the target's parameter types")
{
    auto [r, w] = gipc::pipe();
    const point pt{3, "three", {0.5, 1.5}};
    const std::vector<std::vector<std::string>> nested{{"a"}, {}, {"b", "c"}};
    auto p = gipc::spawn_process(report_values, std::move(w), std::uint64_t(1) << 40, std::int8_t(-5), true, 2.25,
                                 "text", std::vector<int>{1, 2, 3}, std::map<std::string, int>{{"one", 1}, {"two", 2}},
                                 std::make_tuple(9, std::string("nine"), false), std::optional<int>(4),
                                 std::optional<std::string>(), pt, nested);
    auto first = r.get<std::tuple<std::uint64_t, std::int8_t, bool, double, std::string, std::vector<int>>>(10s);
    CHECK(first == std::make_tuple(std::uint64_t(1) << 40, std::int8_t(-5), true, 2.25, std::string("text"),
                                   std::vector<int>{1, 2, 3}));
    CHECK(r.get<std::map<std::string, int>>(10s) == std::map<std::string, int>{{"one", 1}, {"two", 2}});
    CHECK(r.get<std::tuple<int, std::string, bool>>(10s) == std::make_tuple(9, std::string("nine"), false));
    CHECK(r.get<std::tuple<std::optional<int>, std::optional<std::string>>>(10s) ==
          std::make_tuple(std::optional<int>(4), std::optional<std::string>()));
    CHECK(r.get<point>(10s) == pt);
    CHECK(r.get<std::vector<std::vector<std::string>>>(10s) == nested);
    REQUIRE(p.join(10s));
    CHECK(p.exitcode() == 0);
}

GIPC_TEST("handles of every kind are transferred: open in the child, closed in the parent")
{
    // duplex
    auto [a, b] = gipc::duplex_pipe();
    auto p1 = gipc::spawn_process(echo_once, std::move(b));
    CHECK(b.closed());
    a.put(std::string("hi"));
    CHECK(a.get<std::string>(10s) == "hi!");
    REQUIRE(p1.join(10s));
    CHECK(p1.exitcode() == 0);

    // a vector of readers, and a writer by std::ref
    std::vector<gipc::reader> readers;
    std::vector<gipc::writer> writers;
    for (int i = 0; i < 3; ++i) {
        auto [r, w] = gipc::pipe();
        readers.push_back(std::move(r));
        writers.push_back(std::move(w));
    }
    auto [out_r, out_w] = gipc::pipe();
    auto p2 = gipc::spawn_process(sum_readers, std::ref(readers), std::ref(out_w));
    for (auto& r : readers)
        CHECK(r.closed());
    CHECK(out_w.closed());
    for (int i = 0; i < 3; ++i)
        writers[i].put(i + 1);
    CHECK(out_r.get<int>(10s) == 6);
    REQUIRE(p2.join(10s));
    CHECK(p2.exitcode() == 3);

#ifndef _WIN32
    // a Unix-domain listener
    const std::string path = "/tmp/gipc-spawn-test-" + std::to_string(::getpid()) + ".sock";
    ::unlink(path.c_str());
    auto l = gipc::net::listener::unix_socket(path);
    auto p3 = gipc::spawn_process(serve_one, std::move(l));
    CHECK(l.closed());
    auto c = gipc::net::stream::connect_unix(path, 10s);
    c.write_all("ping\n");
    CHECK(c.read_line(10s) == "ping\n");
    REQUIRE(p3.join(10s));
    CHECK(p3.exitcode() == 0);
    c.close();
    ::unlink(path.c_str());
#endif

    // a TCP listener, and a stream
    auto tcp = gipc::net::listener::tcp("127.0.0.1", 0);
    const auto tcp_port = tcp.port();
    auto p5 = gipc::spawn_process(serve_one, std::move(tcp));
    CHECK(tcp.closed());
    auto c5 = gipc::net::stream::connect("127.0.0.1", tcp_port, 10s);
    c5.write_all("pong\n");
    CHECK(c5.read_line(10s) == "pong\n");
    REQUIRE(p5.join(10s));
    CHECK(p5.exitcode() == 0);

    auto l2 = gipc::net::listener::tcp("127.0.0.1", 0);
    auto client = gipc::net::stream::connect("127.0.0.1", l2.port(), 10s);
    auto server_side = l2.accept(10s);
    auto p4 = gipc::spawn_process(greet_stream, std::move(server_side));
    CHECK(server_side.closed());
    CHECK(client.read_line(10s) == "from the child\n");
    REQUIRE(p4.join(10s));
    CHECK(p4.exitcode() == 0);
}

GIPC_TEST("bytes a transferred reader had read ahead arrive in the child")
{
    auto [r, w] = gipc::pipe();
    w.put(1);
    w.put(2);
    w.put(3);
    w.flush();
    CHECK(r.get<int>(10s) == 1); // reads all three frames from the pipe at once
    auto p = gipc::spawn_process(read_two, std::move(r));
    REQUIRE(p.join(10s));
    CHECK(p.exitcode() == 23);
}

#ifndef _WIN32
GIPC_TEST("the child inherits stdio and its handles only: one thread, fresh globals, no start variable")
{
    g_changed_by_parent = 2;
    // A non-close-on-exec fd of the parent does not leak into the child.
    const int leaky = ::open("/dev/null", O_RDONLY);
    REQUIRE(leaky >= 0);
    auto [r, w] = gipc::pipe();
    auto [r2, w2] = gipc::pipe();
    auto p = gipc::spawn_process(report_inheritance, std::move(w), std::move(r2));
    auto [threads, fds, global, variable, wfd, rfd] =
        r.get<std::tuple<std::size_t, std::vector<int>, int, bool, int, int>>(10s);
    CHECK(threads == 1);
    std::vector<int> expected{0, 1, 2, wfd, rfd};
    std::sort(expected.begin(), expected.end());
    // The target's writer made the child's reactor (an epoll fd and an eventfd) once it ran
    // put(): list only what the child had before that, plus its two handles.
    CHECK(fds == expected);
    CHECK(global == 1);
    CHECK_FALSE(variable);
    REQUIRE(p.join(10s));
    CHECK(p.exitcode() == 0);
    ::close(leaky);
    g_changed_by_parent = 1;
}

#endif

GIPC_TEST("a spawned child has fresh globals and does not see the start protocol's variable")
{
    g_changed_by_parent = 2;
    auto [r, w] = gipc::pipe();
    auto p = gipc::spawn_process(report_globals, std::move(w));
    auto [global, variable] = r.get<std::tuple<int, bool>>(10s);
    CHECK(global == 1);
    CHECK_FALSE(variable);
    REQUIRE(p.join(10s));
    CHECK(p.exitcode() == 0);
    g_changed_by_parent = 1;
}

GIPC_TEST("terminate() and kill() end a spawned child: exitcode -15 and -9")
{
    auto t = gipc::spawn_process(sleep_forever);
    CHECK(t.is_alive());
    CHECK_FALSE(t.join(50ms));
    t.terminate();
    REQUIRE(t.join(10s));
    CHECK(t.exitcode() == -15);
    t.terminate(); // ended: nothing to do
    CHECK(t.exitcode() == -15);

    auto k = gipc::spawn_process(sleep_forever);
    k.kill();
    REQUIRE(k.join(10s));
    CHECK(k.exitcode() == -9);

    // A child that exits on its own keeps its code, whatever is sent after.
    auto e = gipc::spawn_process(add, 1, 2L);
    REQUIRE(e.join(10s));
    e.kill();
    CHECK(e.exitcode() == 3);
}

GIPC_TEST("a parent thread holding a mutex forever does not stop spawned children that take it")
{
    std::mutex done_m;
    std::condition_variable done_cv;
    bool done = false;
    std::thread holder([&] {
        std::lock_guard held(g_held_forever);
        std::unique_lock lk(done_m);
        done_cv.wait(lk, [&] { return done; });
    });
    std::this_thread::sleep_for(10ms);
    for (int i = 0; i < 5; ++i) {
        auto p = gipc::spawn_process(lock_global_mutex);
        REQUIRE(p.join(10s));
        CHECK(p.exitcode() == 5);
    }
    {
        std::lock_guard lk(done_m);
        done = true;
    }
    done_cv.notify_one();
    holder.join();
}

GIPC_TEST("50 concurrent spawns from fibers, and nested spawns")
{
    std::vector<boost::fibers::fiber> fibers;
    std::atomic<int> ok{0};
    for (int i = 0; i < 50; ++i)
        fibers.emplace_back([&, i] {
            auto p = gipc::spawn_process(add, i, 1L);
            if (p.join(30s) && p.exitcode() == i + 1)
                ++ok;
        });
    for (auto& f : fibers)
        f.join();
    CHECK(ok == 50);

    auto p = gipc::spawn_process(grandchild, 3);
    REQUIRE(p.join(30s));
    CHECK(p.exitcode() == 10);
}

GIPC_TEST("uncaught exception, exit(), and queued frames delivered exactly once")
{
    auto p = gipc::spawn_process(throws_runtime_error);
    REQUIRE(p.join(10s));
    CHECK(p.exitcode() == 1);

    auto e = gipc::spawn_process(exit_with, 9);
    REQUIRE(e.join(10s));
    CHECK(e.exitcode() == 9);

    auto [r, w] = gipc::pipe();
    auto q = gipc::spawn_process(put_many, std::move(w), 2000);
    for (int i = 0; i < 2000; ++i)
        REQUIRE(r.get<int>(10s) == i);
    CHECK_THROWS_AS((void)r.get<int>(10s), gipc::eof_error);
    REQUIRE(q.join(10s));
    CHECK(q.exitcode() == 0);
}

GIPC_TEST("the uncaught-exception line names the spawned child")
{
    auto res = gipc_test::run_helper("spawn-throw-line");
    CHECK(res.status == 0);
    CHECK(res.output.find("uncaught exception: spawned and failed") != std::string::npos);
    CHECK(res.output.find("gipc: process Process-") != std::string::npos);
}

GIPC_TEST("a closed handle argument is refused and nothing starts")
{
    gipc::reader closed;
    CHECK_THROWS_AS(gipc::spawn_process(read_two, std::move(closed)), gipc::closed_error);
    CHECK(no_children_left());
}

#ifndef _WIN32
GIPC_TEST("signals: ignored stay ignored, handlers and the mask are reset, SIGPIPE ignored")
{
    auto res = gipc_test::run_helper("spawn-signals");
    CHECK(res.status == 0);
    CHECK(res.output.find("ignored=1 reset=1 sigpipe=1 masked=0 exit=0") != std::string::npos);
}

#endif

GIPC_TEST("a daemon spawned child dies with its SIGKILLed parent")
{
    auto res = gipc_test::run_helper("spawn-daemon-then-die");
#ifdef _WIN32
    CHECK(res.status == 9); // TerminateProcess's code
#else
    CHECK(res.status == -SIGKILL);
#endif
    const pid_t daemon = std::atoi(res.output.c_str());
    REQUIRE(daemon > 0);
    CHECK(process_gone(daemon));
}

GIPC_TEST("a spawned child whose main() does not call spawn_main stops with 70, never recursing")
{
    for (const char* mode : {"call", "return"}) {
        auto res = gipc_test::run_helper("spawn-without-spawn-main", {mode});
        INFO(mode << ": " << res.output);
        CHECK(res.status == 0);
        CHECK(res.output.find("gipc: a spawned child needs gipc::spawn_main(argc, argv) at the start of main()") !=
              std::string::npos);
        CHECK(res.output.find("refused: ") != std::string::npos);
    }
}

#ifndef _WIN32
GIPC_TEST("exec failures throw std::system_error and leave nothing behind")
{
    auto denied = run_copy(copy_self(), "spawn-not-executable");
    INFO(denied.output);
    CHECK(denied.status == 0);
    CHECK(denied.output.find("errno=" + std::to_string(EACCES)) != std::string::npos);

    auto limited = gipc_test::run_helper("spawn-process-limit");
    INFO(limited.output);
    CHECK(limited.status == 0);
    CHECK(limited.output.find("errno=" + std::to_string(EAGAIN)) != std::string::npos);

    auto fds = gipc_test::run_helper("spawn-fd-limit");
    INFO(fds.output);
    CHECK(fds.status == 0);
    CHECK(fds.output.find("errno=" + std::to_string(EMFILE)) != std::string::npos);
}

GIPC_TEST("the program's file may be deleted: /proc/self/exe still starts")
{
    auto res = run_copy(copy_self(), "spawn-deleted-file");
    INFO(res.output);
    CHECK(res.status == 0);
    CHECK(res.output.find("exit=42") != std::string::npos);
}
#endif

} // TEST_SUITE

GIPC_TEST_CHILD("spawn-throw-line")
{
    auto p = gipc::spawn_process(throws_runtime_error);
    return p.join(10s) && p.exitcode() == 1 ? 0 : 1;
}
