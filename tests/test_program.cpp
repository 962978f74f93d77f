// SPDX-License-Identifier: MIT
// External programs: start_program / run_program, their stdio, exec errors, timeouts that kill
// a whole group, lifetime (no zombie, kill_on_drop, daemons), and the byte streams as gipc
// handles. The programs are the system's (sh, cat, sort, sleep, ls, env, pwd).
#include "test_support.hpp"

#include <gipc/gipc.hpp>

#include <boost/fiber/all.hpp>

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using gipc::stdio;
using gipc_test::seconds_since;

namespace {

// temp_dir: a fresh directory, removed with what it holds.
struct temp_dir {
    std::string path;
    temp_dir()
    {
        char tmpl[] = "/tmp/gipc-program-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~temp_dir() { [[maybe_unused]] int r = std::system(("rm -rf '" + path + "'").c_str()); }
    std::string file(const std::string& name, const std::string& content, mode_t mode) const
    {
        const std::string p = path + "/" + name;
        std::ofstream(p) << content;
        ::chmod(p.c_str(), mode);
        return p;
    }
};

// gone: the process pid has ended (no such process, or a zombie of someone else), within 10 s.
bool gone_within_10s(pid_t pid)
{
    const auto start = std::chrono::steady_clock::now();
    while (seconds_since(start) < 10) {
        if (::kill(pid, 0) != 0)
            return true;
        std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
        std::string line;
        std::getline(stat, line);
        const auto close = line.rfind(')');
        if (close != std::string::npos && line.size() > close + 2 && line[close + 2] == 'Z')
            return true;
        std::this_thread::sleep_for(10ms);
    }
    return false;
}

pid_t read_pid_file(const std::string& path)
{
    const auto start = std::chrono::steady_clock::now();
    while (seconds_since(start) < 10) {
        std::ifstream in(path);
        int pid = 0;
        if (in >> pid && pid > 0)
            return pid;
        std::this_thread::sleep_for(10ms);
    }
    return -1;
}

gipc::command sh(const std::string& script)
{
    gipc::command c;
    c.argv = {"/bin/sh", "-c", script};
    return c;
}

int errno_of(const std::function<void()>& f)
{
    try {
        f();
    } catch (const std::system_error& e) {
        return e.code().value();
    }
    return 0;
}

std::mutex g_held_forever;

void write_hello(gipc::byte_writer w) { w.write_all("hello from a spawned child\n"); }

} // namespace

// ---- child helpers (environment-changing cases run in a process of their own) ------------------

namespace {
void usr1_handler(int) {}
} // namespace

GIPC_TEST_CHILD("program-signals")
{
    std::signal(SIGUSR1, usr1_handler); // handled: at its default in the program
    std::signal(SIGUSR2, SIG_IGN);      // ignored: stays ignored
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    ::pthread_sigmask(SIG_BLOCK, &block, nullptr);
    gipc::command c;
    c.argv = {"cat", "/proc/self/status"}; // cat installs no handler (grep catches SIGSEGV)
    c.out = stdio::pipe;
    auto r = gipc::run_program(c, {}, 10s);
    std::printf("%s", r.out.c_str());
    return r.exitcode;
}

GIPC_TEST_CHILD("program-daemon-then-die")
{
    // Started from a thread that ends before this process dies: the daemon outlives the thread.
    pid_t pid = -1;
    std::optional<gipc::program> kept;
    std::thread([&] {
        gipc::command c;
        c.argv = {"sleep", "30"};
        c.daemon = true;
        kept.emplace(gipc::start_program(c));
        pid = kept->pid();
    }).join();
    std::this_thread::sleep_for(100ms);
    std::printf("%d %d\n", int(pid), kept->is_alive() ? 1 : 0);
    std::fflush(stdout);
    if (args.empty())
        ::raise(SIGKILL); // abnormal end
    return 0;                 // normal end: the exit duties SIGKILL it
}

GIPC_TEST_CHILD("program-path-of-this-process")
{
    // PATH of this process (no env): a directory with a non-executable match first.
    ::setenv("PATH", (args[0] + ":" + args[1]).c_str(), 1);
    gipc::command c;
    c.argv = {"gipc-probe"};
    c.out = stdio::pipe;
    auto r = gipc::run_program(c, {}, 10s);
    std::printf("%s", r.out.c_str());
    return r.exitcode;
}

GIPC_TEST_CHILD("program-without-close-range")
{
    // As on Linux before 5.9: close_range fails with ENOSYS (in the program too).
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_close_range, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        std::printf("no seccomp\n");
        return 5;
    }
    for (int fd : {20, 21, 300})
        if (::fcntl(1, F_DUPFD, fd) < 0) // not close-on-exec
            return 6;
    gipc::command c;
    c.argv = {"ls", "/proc/self/fd"};
    c.out = stdio::pipe;
    auto r = gipc::run_program(c, {}, 10s);
    std::printf("%s", r.out.c_str());
    return r.exitcode;
}

TEST_SUITE("program") {

GIPC_TEST("run_program returns the exit code and the piped output")
{
    gipc::command c = sh("echo out; echo err >&2; exit 3");
    c.out = stdio::pipe;
    c.err = stdio::pipe;
    auto r = gipc::run_program(c, {}, 10s);
    CHECK(r.exitcode == 3);
    CHECK(r.out == "out\n");
    CHECK(r.err == "err\n");

    c.err = stdio::merge;
    r = gipc::run_program(c, {}, 10s);
    CHECK(r.out == "out\nerr\n");
    CHECK(r.err.empty());

    c.err = stdio::null;
    r = gipc::run_program(c, {}, 10s);
    CHECK(r.out == "out\n");

    gipc::command cat;
    cat.argv = {"cat"};
    cat.in = stdio::null;
    cat.out = stdio::pipe;
    r = gipc::run_program(cat, {}, 10s);
    CHECK(r.exitcode == 0);
    CHECK(r.out.empty());

    // input pipes stdin by itself
    cat.in = stdio::inherit;
    r = gipc::run_program(cat, "fed\n", 10s);
    CHECK(r.out == "fed\n");
}

GIPC_TEST("streams: in, out and err of a running program, read_line, read_some, read_all")
{
    gipc::command c = sh("while read l; do echo \"got $l\"; echo \"e $l\" >&2; done");
    c.in = stdio::pipe;
    c.out = stdio::pipe;
    c.err = stdio::pipe;
    auto p = gipc::start_program(c);
    CHECK(p.name() == "/bin/sh");
    CHECK(p.pid() > 0);
    p.in().write_all("one\ntwo\n");
    CHECK(p.out().read_line(10s) == "got one\n");
    char buf[64];
    std::string err_text;
    while (err_text.size() < 6)
        err_text.append(buf, p.err().read_some(buf, sizeof buf, 10s));
    CHECK(err_text.substr(0, 6) == "e one\n");
    p.in().close();
    CHECK(p.out().read_all(10s) == "got two\n");
    CHECK(p.out().read_line(10s).empty());
    REQUIRE(p.join(10s));
    CHECK(p.exitcode() == 0);
    CHECK_FALSE(p.is_alive());

    auto q = gipc::start_program(sh("exit 0"));
    CHECK(q.in().closed());
    CHECK(q.out().closed());
    CHECK(q.err().closed());
    CHECK(q.in().native_handle() == -1);
    CHECK_THROWS_AS(q.out().read_line(), gipc::closed_error);
    q.join();
}

GIPC_TEST("a read timeout loses no data; eof in the middle of a line")
{
    gipc::command c = sh("printf 'par'; sleep 0.3; printf 'tial\\nend'");
    c.out = stdio::pipe;
    auto p = gipc::start_program(c);
    CHECK_THROWS_AS(p.out().read_line(50ms), gipc::timeout_error);
    CHECK(p.out().read_line(10s) == "partial\n");
    CHECK_THROWS_AS(p.out().read_line(10s), gipc::eof_error);
    REQUIRE(p.join(10s));

    gipc::command d = sh("printf 'a'; sleep 0.3; printf 'b'");
    d.out = stdio::pipe;
    auto q = gipc::start_program(d);
    CHECK_THROWS_AS(q.out().read_all(50ms), gipc::timeout_error);
    CHECK(q.out().read_all(10s) == "ab");
    REQUIRE(q.join(10s));
}

GIPC_TEST("the program gets no fd but stdin, stdout and stderr")
{
    const int stray = ::fcntl(1, F_DUPFD, 20); // not close-on-exec
    REQUIRE(stray >= 20);
    gipc::command c;
    c.argv = {"ls", "/proc/self/fd"};
    c.out = stdio::pipe;
    auto r = gipc::run_program(c, {}, 10s);
    ::close(stray);
    std::istringstream in(r.out);
    std::set<int> fds;
    for (int fd; in >> fd;)
        fds.insert(fd);
    // ls's own directory fd is 3.
    CHECK(fds == std::set<int>{0, 1, 2, 3});
}

GIPC_TEST("without close_range, the fallback still closes every other fd")
{
    auto res = gipc_test::run_helper("program-without-close-range");
    INFO(res.output);
    REQUIRE(res.status == 0);
    std::istringstream in(res.output);
    std::set<int> fds;
    for (int fd; in >> fd;)
        fds.insert(fd);
    CHECK(fds == std::set<int>{0, 1, 2, 3});
}

GIPC_TEST("signals: handlers reset, ignored stay ignored, SIGPIPE at its default, mask empty")
{
    auto res = gipc_test::run_helper("program-signals");
    INFO(res.output);
    REQUIRE(res.status == 0);
    auto field = [&](const char* name) {
        const auto at = res.output.find(name);
        REQUIRE(at != std::string::npos);
        return std::stoull(res.output.substr(at + std::strlen(name)), nullptr, 16);
    };
    const auto bit = [](int sig) { return 1ull << (sig - 1); };
    CHECK(field("SigBlk:") == 0);
    CHECK((field("SigIgn:") & bit(SIGUSR2)) != 0);
    CHECK((field("SigIgn:") & bit(SIGPIPE)) == 0);
    CHECK(field("SigCgt:") == 0);
}

GIPC_TEST("PATH lookup in env's PATH: non-executable matches skipped, EACCES when only such exist")
{
    temp_dir a, b;
    a.file("gipc-probe", "#!/bin/sh\necho not-executable\n", 0644);
    b.file("gipc-probe", "#!/bin/sh\necho from-b\n", 0755);
    gipc::command c;
    c.argv = {"gipc-probe"};
    c.out = stdio::pipe;
    c.env = std::vector<std::string>{"PATH=" + a.path + ":" + b.path};
    auto r = gipc::run_program(c, {}, 10s);
    CHECK(r.out == "from-b\n");

    c.env = std::vector<std::string>{"PATH=" + a.path};
    CHECK(errno_of([&] { gipc::start_program(c); }) == EACCES);
    c.env = std::vector<std::string>{"PATH=/nonexistent-dir"};
    CHECK(errno_of([&] { gipc::start_program(c); }) == ENOENT);

    // env without PATH: /bin:/usr/bin
    gipc::command t;
    t.argv = {"true"};
    t.env = std::vector<std::string>{"A=1"};
    CHECK(gipc::run_program(t, {}, 10s).exitcode == 0);

    // without env: this process's PATH
    auto res = gipc_test::run_helper("program-path-of-this-process", {a.path, b.path});
    INFO(res.output);
    CHECK(res.status == 0);
    CHECK(res.output.find("from-b") != std::string::npos);
}

GIPC_TEST("env replaces the environment, cwd the directory")
{
    gipc::command c;
    c.argv = {"/usr/bin/env"};
    c.env = std::vector<std::string>{"ALPHA=1", "BETA=two"};
    c.out = stdio::pipe;
    CHECK(gipc::run_program(c, {}, 10s).out == "ALPHA=1\nBETA=two\n");

    temp_dir d;
    gipc::command p;
    p.argv = {"pwd"};
    p.cwd = d.path;
    p.out = stdio::pipe;
    CHECK(gipc::run_program(p, {}, 10s).out == d.path + "\n");
}

GIPC_TEST("exec errors are std::system_error from start_program, and no child is left")
{
    temp_dir d;
    const std::string plain = d.file("plain", "#!/bin/sh\nexit 0\n", 0644);
    gipc::command c;
    c.argv = {"/nonexistent/program"};
    CHECK(errno_of([&] { gipc::start_program(c); }) == ENOENT);
    c.argv = {plain};
    CHECK(errno_of([&] { gipc::start_program(c); }) == EACCES);
    c.argv = {"gipc-no-such-program-anywhere"};
    CHECK(errno_of([&] { gipc::start_program(c); }) == ENOENT);
    c.argv = {"true"};
    c.cwd = d.path + "/missing";
    c.out = stdio::pipe;
    CHECK(errno_of([&] { gipc::start_program(c); }) == ENOENT);
    try {
        gipc::start_program(c);
    } catch (const std::system_error& e) {
        CHECK(std::string(e.what()).find("directory") != std::string::npos);
    }
    CHECK(gipc_test::child_pids().empty());

    gipc::command empty;
    CHECK_THROWS_AS(gipc::start_program(empty), gipc::error);
    gipc::command merged;
    merged.argv = {"true"};
    merged.out = stdio::merge;
    CHECK_THROWS_AS(gipc::start_program(merged), gipc::error);
}

GIPC_TEST("communicate moves megabytes both ways at once without deadlock")
{
    std::string input(8 << 20, '\0');
    for (std::size_t i = 0; i < input.size(); ++i)
        input[i] = char('a' + i % 23);
    gipc::command c;
    c.argv = {"cat"};
    c.in = stdio::pipe;
    c.out = stdio::pipe;
    auto p = gipc::start_program(c);
    auto o = p.communicate(input, 60s);
    CHECK(o.out == input);
    CHECK(p.exitcode() == 0);

    // stdout and stderr both large, while stdin is still being fed
    gipc::command both = sh("cat; head -c 3000000 /dev/zero >&2");
    both.in = stdio::pipe;
    both.out = stdio::pipe;
    both.err = stdio::pipe;
    auto r = gipc::run_program(both, input, 60s);
    CHECK(r.out.size() == input.size());
    CHECK(r.err.size() == 3000000);

    // a program that exits without reading its input is not an error
    gipc::command early = sh("exit 0");
    early.in = stdio::pipe;
    CHECK(gipc::run_program(early, input, 30s).exitcode == 0);

    // input without a stdin pipe
    gipc::command no_in;
    no_in.argv = {"true"};
    auto t = gipc::start_program(no_in);
    CHECK_THROWS_AS(t.communicate("x"), gipc::error);
    t.join();
}

GIPC_TEST("after a communicate timeout a later communicate returns all the output")
{
    gipc::command c = sh("read l; echo \"1 $l\"; sleep 0.5; echo 2");
    c.in = stdio::pipe;
    c.out = stdio::pipe;
    auto p = gipc::start_program(c);
    CHECK_THROWS_AS(p.communicate("x\n", 200ms), gipc::timeout_error);
    CHECK(p.is_alive());
    auto o = p.communicate({}, 10s);
    CHECK(o.out == "1 x\n2\n");
    CHECK(p.exitcode() == 0);
}

GIPC_TEST("run_program's timeout kills the whole group, reaps it and throws timeout_error")
{
    temp_dir d;
    const std::string pid_file = d.path + "/bg";
    gipc::command c = sh("sleep 30 & echo $! > " + pid_file + "; wait");
    c.new_process_group = true;
    c.out = stdio::pipe;
    const auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_AS((void)gipc::run_program(c, {}, 300ms), gipc::timeout_error);
    CHECK(seconds_since(start) < 5);
    const pid_t background = read_pid_file(pid_file);
    REQUIRE(background > 0);
    CHECK(gone_within_10s(background));
}

GIPC_TEST("run_program's timeout holds when a grandchild outside the group keeps stdout open")
{
    temp_dir d;
    const std::string pid_file = d.path + "/bg";
    gipc::command c = sh("setsid sleep 30 & echo $! > " + pid_file + "; sleep 30");
    c.new_process_group = true;
    c.out = stdio::pipe;
    const auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_AS((void)gipc::run_program(c, {}, 300ms), gipc::timeout_error);
    CHECK(seconds_since(start) < 5);
    const pid_t outside = read_pid_file(pid_file);
    REQUIRE(outside > 0);
    ::kill(outside, SIGKILL); // not ours to reap: init does
}

GIPC_TEST("exit codes, terminate and kill (of the group), joins with a timeout")
{
    gipc::command c = sh("exit 7");
    auto p = gipc::start_program(c);
    REQUIRE(p.join(10s));
    CHECK(p.exitcode() == 7);

    gipc::command s;
    s.argv = {"sleep", "30"};
    auto t = gipc::start_program(s);
    CHECK_FALSE(t.join(50ms));
    CHECK(t.exitcode() == std::nullopt);
    t.terminate();
    REQUIRE(t.join(10s));
    CHECK(t.exitcode() == -SIGTERM);

    auto k = gipc::start_program(s);
    k.kill();
    REQUIRE(k.join(10s));
    CHECK(k.exitcode() == -SIGKILL);
    k.kill(); // reaped: a no-op

    temp_dir d;
    const std::string pid_file = d.path + "/bg";
    gipc::command g = sh("sleep 30 & echo $! > " + pid_file + "; wait");
    g.new_process_group = true;
    auto gp = gipc::start_program(g);
    const pid_t background = read_pid_file(pid_file);
    REQUIRE(background > 0);
    gp.terminate();
    REQUIRE(gp.join(10s));
    CHECK(gone_within_10s(background));

    gipc::program moved = std::move(p);
    CHECK(p.pid() == -1);
    CHECK(p.name().empty());
    CHECK_THROWS_AS(p.join(), gipc::error);
    CHECK(moved.exitcode() == 7);
}

GIPC_TEST("lifetime: a dropped program is reaped in the background; kill_on_drop kills it")
{
    {
        gipc::command c;
        c.argv = {"sleep", "0.2"};
        auto p = gipc::start_program(c); // dropped while running: no zombie (leak check)
    }
    gipc::command s;
    s.argv = {"sleep", "30"};
    s.kill_on_drop = true;
    pid_t pid;
    {
        auto p = gipc::start_program(s);
        pid = p.pid();
    }
    CHECK(gone_within_10s(pid));
    // assigning over one drops it too
    auto a = gipc::start_program(s);
    pid = a.pid();
    gipc::command t;
    t.argv = {"true"};
    a = gipc::start_program(t);
    CHECK(gone_within_10s(pid));
    a.join();
}

GIPC_TEST("a daemon program dies with its parent, not with the thread that started it")
{
    auto res = gipc_test::run_helper("program-daemon-then-die");
    INFO(res.output);
    CHECK(res.status == -SIGKILL);
    int pid = 0, alive = 0;
    std::istringstream(res.output) >> pid >> alive;
    REQUIRE(pid > 0);
    CHECK(alive == 1);
    CHECK(gone_within_10s(pid));

    auto normal = gipc_test::run_helper("program-daemon-then-die", {"exit"});
    INFO(normal.output);
    CHECK(normal.status == 0);
    std::istringstream(normal.output) >> pid >> alive;
    REQUIRE(pid > 0);
    CHECK(gone_within_10s(pid));
}

GIPC_TEST("the streams are gipc handles: closed in start_process children, transferable")
{
    gipc::command c;
    c.argv = {"cat"};
    c.in = stdio::pipe;
    c.out = stdio::pipe;
    auto p = gipc::start_program(c);
    // A forked child that does not get p.in() must not hold it open.
    auto child = gipc::start_process([] { std::this_thread::sleep_for(2s); });
    p.in().close();
    CHECK(p.out().read_all(1s).empty());
    REQUIRE(p.join(1s));
    CHECK(child.is_alive());
    child.kill();
    child.join();

    // transferred to a forked child
    auto q = gipc::start_program(c);
    auto writer = gipc::start_process([](gipc::byte_writer w) { w.write_all("from a forked child\n"); },
                                      std::move(q.in()));
    CHECK(q.in().closed());
    CHECK(q.out().read_line(10s) == "from a forked child\n");
    REQUIRE(writer.join(10s));
    CHECK(q.out().read_all(10s).empty()); // the child's copy closed: cat saw the end
    REQUIRE(q.join(10s));

    // transferred to a spawned child, and a reader with bytes read ahead
    auto s = gipc::start_program(c);
    auto spawned = gipc::spawn_process(write_hello, std::move(s.in()));
    REQUIRE(spawned.join(10s));
    CHECK(spawned.exitcode() == 0);
    CHECK(s.out().read_all(10s) == "hello from a spawned child\n");
    REQUIRE(s.join(10s));

    gipc::command two = sh("printf 'first\\nsecond\\n'");
    two.out = stdio::pipe;
    auto t = gipc::start_program(two);
    REQUIRE(t.join(10s));
    CHECK(t.out().read_line(10s) == "first\n"); // "second\n" is read ahead
    auto reader = gipc::spawn_process(+[](gipc::byte_reader r) { return r.read_all() == "second\n" ? 0 : 1; },
                                      std::move(t.out()));
    REQUIRE(reader.join(10s));
    CHECK(reader.exitcode() == 0);
}

GIPC_TEST("200 programs from 20 fibers at once, nothing leaked")
{
    std::vector<boost::fibers::fiber> fibers;
    std::atomic<int> ok{0};
    for (int f = 0; f < 20; ++f)
        fibers.emplace_back([&, f] {
            std::vector<gipc::program> mine;
            for (int i = 0; i < 10; ++i) {
                gipc::command c;
                c.argv = {"cat"};
                c.in = stdio::pipe;
                c.out = stdio::pipe;
                mine.push_back(gipc::start_program(c));
                boost::this_fiber::yield();
            }
            for (int i = 0; i < 10; ++i) {
                const std::string text = std::to_string(f) + ":" + std::to_string(i) + "\n";
                auto o = mine[std::size_t(i)].communicate(text, 60s);
                if (o.out == text && mine[std::size_t(i)].exitcode() == 0)
                    ++ok;
            }
        });
    for (auto& f : fibers)
        f.join();
    CHECK(ok == 200);
}

GIPC_TEST("a parent thread holding a mutex and the stdio locks forever does not stop programs")
{
    std::mutex done_m;
    std::condition_variable done_cv;
    bool done = false;
    std::atomic<bool> holding{false};
    std::thread holder([&] {
        std::lock_guard held(g_held_forever);
        ::flockfile(stdout);
        ::flockfile(stderr);
        holding = true;
        std::unique_lock lk(done_m);
        done_cv.wait(lk, [&] { return done; });
        ::funlockfile(stderr);
        ::funlockfile(stdout);
    });
    while (!holding)
        std::this_thread::sleep_for(1ms);
    for (int i = 0; i < 5; ++i) {
        gipc::command c = sh("echo $0");
        c.out = stdio::pipe;
        c.err = stdio::merge;
        auto r = gipc::run_program(c, {}, 10s);
        CHECK(r.out == "/bin/sh\n");
    }
    {
        std::lock_guard lk(done_m);
        done = true;
    }
    done_cv.notify_one();
    holder.join();
}

} // TEST_SUITE
