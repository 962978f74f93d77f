// SPDX-License-Identifier: MIT
// External programs on Windows: start_program / run_program with CreateProcessW, their stdio,
// command lines that arrive as argv, environment and working directory, exec errors, timeouts,
// terminate/kill of a program and of its group (job), kill_on_drop, daemons, and the byte
// streams as gipc handles. tests/test_program.cpp is the POSIX suite (its programs are sh, cat,
// sleep...); here the programs are this test binary's own child helpers (`--gipc-child NAME`,
// spawn_support.cpp's main), under pipe_support.cpp's fixture.
#include "test_support.hpp"

#include <gipc/gipc.hpp>

#include <boost/fiber/all.hpp>

#include <windows.h>

#include <fcntl.h>
#include <io.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using gipc::stdio;

namespace {

// helper is a command running this binary's child helper name with args.
gipc::command helper(const std::string& name, std::vector<std::string> args = {})
{
    gipc::command c;
    c.argv = {gipc_test::self_exe(), "--gipc-child", name};
    c.argv.insert(c.argv.end(), args.begin(), args.end());
    return c;
}

// binary_stdio: the helpers' output without CR LF translation, so that both platforms' lines
// compare the same.
void binary_stdio()
{
    ::_setmode(::_fileno(stdin), _O_BINARY);
    ::_setmode(::_fileno(stdout), _O_BINARY);
    ::_setmode(::_fileno(stderr), _O_BINARY);
}

bool gone_within_10s(pid_t pid)
{
    HANDLE h = ::OpenProcess(SYNCHRONIZE, FALSE, DWORD(pid));
    if (!h)
        return true;
    const bool gone = ::WaitForSingleObject(h, 10000) == WAIT_OBJECT_0;
    ::CloseHandle(h);
    return gone;
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

void write_hello(gipc::byte_writer w) { w.write_all("hello from a spawned child\n"); }

} // namespace

// ---- the programs ------------------------------------------------------------------------------

GIPC_TEST_CHILD("out-err-exit")
{
    binary_stdio();
    std::fputs("out\n", stdout);
    std::fflush(stdout);
    std::fputs("err\n", stderr);
    return args.empty() ? 0 : std::atoi(args[0].c_str());
}

GIPC_TEST_CHILD("cat")
{
    binary_stdio();
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0)
        std::fwrite(buf, 1, n, stdout);
    if (!args.empty()) { // then this many bytes to stderr
        const std::string zeros(std::size_t(std::atol(args[0].c_str())), '\0');
        std::fwrite(zeros.data(), 1, zeros.size(), stderr);
    }
    return 0;
}

GIPC_TEST_CHILD("lines")
{
    binary_stdio();
    std::string l;
    while (std::getline(std::cin, l)) {
        std::printf("got %s\n", l.c_str());
        std::fflush(stdout);
        std::fprintf(stderr, "e %s\n", l.c_str());
    }
    return 0;
}

GIPC_TEST_CHILD("slow-output")
{
    binary_stdio();
    std::fputs(args.at(0).c_str(), stdout);
    std::fflush(stdout);
    ::Sleep(300);
    std::fputs(args.at(1).c_str(), stdout);
    return 0;
}

GIPC_TEST_CHILD("read-then-slow")
{
    binary_stdio();
    std::string l;
    std::getline(std::cin, l);
    std::printf("1 %s\n", l.c_str());
    std::fflush(stdout);
    ::Sleep(500);
    std::printf("2\n");
    return 0;
}

GIPC_TEST_CHILD("echo-args")
{
    binary_stdio();
    for (const auto& a : args)
        std::printf("[%s]\n", a.c_str());
    return 0;
}

GIPC_TEST_CHILD("print-env")
{
    binary_stdio();
    const char* v = std::getenv(args.at(0).c_str());
    std::printf("%s\n", v ? v : "(unset)");
    return 0;
}

GIPC_TEST_CHILD("print-cwd")
{
    binary_stdio();
    char buf[4096];
    const DWORD n = ::GetCurrentDirectoryA(sizeof buf, buf);
    std::printf("%.*s\n", int(n), buf);
    return 0;
}

GIPC_TEST_CHILD("sleep")
{
    ::Sleep(DWORD(args.empty() ? 30000 : std::atoi(args[0].c_str())));
    return 0;
}

// sleep-with-grandchild: starts another sleeping program (in this one's job, as a process it
// creates is), prints its pid, and sleeps.
GIPC_TEST_CHILD("sleep-with-grandchild")
{
    binary_stdio();
    auto g = gipc::start_program(helper("sleep"));
    std::printf("%d\n", int(g.pid()));
    std::fflush(stdout);
    ::Sleep(30000);
    return 0;
}

// program-daemon-then-die: a daemon program, its pid printed, then this process ends abruptly
// (or, with "exit", normally).
GIPC_TEST_CHILD("program-daemon-then-die")
{
    gipc::command c = helper("sleep");
    c.daemon = true;
    auto p = gipc::start_program(c);
    std::printf("%d %d\n", int(p.pid()), p.is_alive() ? 1 : 0);
    std::fflush(stdout);
    if (!args.empty() && args[0] == "exit")
        return 0;
    ::TerminateProcess(::GetCurrentProcess(), 9);
    return 0;
}

TEST_SUITE("program") {

GIPC_TEST("run_program returns the exit code and the piped output")
{
    gipc::command c = helper("out-err-exit", {"3"});
    c.out = stdio::pipe;
    c.err = stdio::pipe;
    auto r = gipc::run_program(c, {}, 30s);
    CHECK(r.exitcode == 3);
    CHECK(r.out == "out\n");
    CHECK(r.err == "err\n");

    c.err = stdio::merge;
    r = gipc::run_program(c, {}, 30s);
    CHECK(r.out == "out\nerr\n");
    CHECK(r.err.empty());

    c.err = stdio::null;
    r = gipc::run_program(c, {}, 30s);
    CHECK(r.out == "out\n");

    gipc::command cat = helper("cat");
    cat.in = stdio::null;
    cat.out = stdio::pipe;
    r = gipc::run_program(cat, {}, 30s);
    CHECK(r.exitcode == 0);
    CHECK(r.out.empty());

    // input pipes stdin by itself
    cat.in = stdio::inherit;
    r = gipc::run_program(cat, "fed\n", 30s);
    CHECK(r.out == "fed\n");
}

GIPC_TEST("streams: in, out and err of a running program, read_line, read_some, read_all")
{
    gipc::command c = helper("lines");
    c.in = stdio::pipe;
    c.out = stdio::pipe;
    c.err = stdio::pipe;
    c.name = "lines";
    auto p = gipc::start_program(c);
    CHECK(p.name() == "lines");
    CHECK(p.pid() > 0);
    p.in().write_all("one\ntwo\n");
    CHECK(p.out().read_line(30s) == "got one\n");
    char buf[64];
    std::string err_text;
    while (err_text.size() < 6)
        err_text.append(buf, p.err().read_some(buf, sizeof buf, 30s));
    CHECK(err_text.substr(0, 6) == "e one\n");
    p.in().close();
    CHECK(p.out().read_all(30s) == "got two\n");
    CHECK(p.out().read_line(30s).empty());
    REQUIRE(p.join(30s));
    CHECK(p.exitcode() == 0);
    CHECK_FALSE(p.is_alive());

    auto q = gipc::start_program(helper("sleep", {"0"}));
    CHECK(q.in().closed());
    CHECK(q.out().closed());
    CHECK(q.err().closed());
    CHECK(q.in().native_handle() == INVALID_HANDLE_VALUE);
    CHECK_THROWS_AS(q.out().read_line(), gipc::closed_error);
    q.join();
}

GIPC_TEST("a read timeout loses no data; eof in the middle of a line")
{
    gipc::command c = helper("slow-output", {"par", "tial\nend"});
    c.out = stdio::pipe;
    auto p = gipc::start_program(c);
    CHECK_THROWS_AS(p.out().read_line(50ms), gipc::timeout_error);
    CHECK(p.out().read_line(30s) == "partial\n");
    CHECK_THROWS_AS(p.out().read_line(30s), gipc::eof_error);
    REQUIRE(p.join(30s));

    gipc::command d = helper("slow-output", {"a", "b"});
    d.out = stdio::pipe;
    auto q = gipc::start_program(d);
    CHECK_THROWS_AS(q.out().read_all(50ms), gipc::timeout_error);
    CHECK(q.out().read_all(30s) == "ab");
    REQUIRE(q.join(30s));
}

GIPC_TEST("argv arrives as given: spaces, quotes, backslashes, empty arguments")
{
    const std::vector<std::string> args{"plain", "two words", "", "a\"quote", "back\\slash\\", "\\\"both\\\"", "tab\there"};
    gipc::command c = helper("echo-args", args);
    c.out = stdio::pipe;
    auto r = gipc::run_program(c, {}, 30s);
    std::string expected;
    for (const auto& a : args)
        expected += "[" + a + "]\n";
    CHECK(r.out == expected);
}

GIPC_TEST("env replaces the environment, cwd the directory")
{
    gipc::command c = helper("print-env", {"GIPC_PROGRAM_TEST"});
    c.out = stdio::pipe;
    CHECK(gipc::run_program(c, {}, 30s).out == "(unset)\n");
    char sysroot[MAX_PATH];
    const DWORD n = ::GetEnvironmentVariableA("SystemRoot", sysroot, MAX_PATH);
    c.env = std::vector<std::string>{"GIPC_PROGRAM_TEST=value", "SystemRoot=" + std::string(sysroot, n)};
    CHECK(gipc::run_program(c, {}, 30s).out == "value\n");

    char tmp[MAX_PATH];
    const DWORD t = ::GetTempPathA(MAX_PATH, tmp);
    std::string dir = std::string(tmp, t) + "gipc-program-cwd-" + std::to_string(::GetCurrentProcessId());
    REQUIRE(::CreateDirectoryA(dir.c_str(), nullptr));
    gipc::command w = helper("print-cwd");
    w.out = stdio::pipe;
    w.cwd = dir;
    const std::string out = gipc::run_program(w, {}, 30s).out;
    ::RemoveDirectoryA(dir.c_str());
    CHECK(_stricmp(out.c_str(), (dir + "\n").c_str()) == 0);
}

GIPC_TEST("exec errors are std::system_error from start_program, and no child is left")
{
    gipc::command missing;
    missing.argv = {"gipc-no-such-program-anywhere"};
    CHECK(errno_of([&] { gipc::start_program(missing); }) == ENOENT);
    missing.argv = {"C:\\gipc\\no\\such\\program.exe"};
    CHECK(errno_of([&] { gipc::start_program(missing); }) == ENOENT);

    gipc::command bad_cwd = helper("sleep", {"0"});
    bad_cwd.cwd = "C:\\gipc-no-such-directory";
    CHECK(errno_of([&] { gipc::start_program(bad_cwd); }) == ENOENT);

    gipc::command empty;
    CHECK_THROWS_AS(gipc::start_program(empty), gipc::error);
    gipc::command merged = helper("sleep", {"0"});
    merged.out = stdio::merge;
    CHECK_THROWS_AS(gipc::start_program(merged), gipc::error);
    CHECK(gipc_test::child_pids().empty());
}

GIPC_TEST("communicate moves megabytes both ways at once without deadlock")
{
    std::string input(4 << 20, '\0');
    for (std::size_t i = 0; i < input.size(); ++i)
        input[i] = char('a' + i % 23);
    gipc::command c = helper("cat");
    c.in = stdio::pipe;
    c.out = stdio::pipe;
    auto p = gipc::start_program(c);
    auto o = p.communicate(input, 60s);
    CHECK(o.out == input);
    CHECK(p.exitcode() == 0);

    // stdout and stderr both large, while stdin is still being fed
    gipc::command both = helper("cat", {"3000000"});
    both.in = stdio::pipe;
    both.out = stdio::pipe;
    both.err = stdio::pipe;
    auto r = gipc::run_program(both, input, 60s);
    CHECK(r.out.size() == input.size());
    CHECK(r.err.size() == 3000000);

    // a program that exits without reading its input is not an error
    gipc::command early = helper("sleep", {"0"});
    early.in = stdio::pipe;
    CHECK(gipc::run_program(early, input, 30s).exitcode == 0);
}

GIPC_TEST("after a communicate timeout a later communicate returns all the output")
{
    gipc::command c = helper("read-then-slow");
    c.in = stdio::pipe;
    c.out = stdio::pipe;
    auto p = gipc::start_program(c);
    CHECK_THROWS_AS(p.communicate("x\n", 200ms), gipc::timeout_error);
    CHECK(p.is_alive());
    auto o = p.communicate({}, 30s);
    CHECK(o.out == "1 x\n2\n");
    CHECK(p.exitcode() == 0);
}

GIPC_TEST("exit codes, terminate and kill (of the group), run_program's timeout")
{
    auto p = gipc::start_program(helper("out-err-exit", {"7"}));
    REQUIRE(p.join(30s));
    CHECK(p.exitcode() == 7);

    auto t = gipc::start_program(helper("sleep"));
    CHECK_FALSE(t.join(50ms));
    CHECK(t.exitcode() == std::nullopt);
    t.terminate();
    REQUIRE(t.join(30s));
    CHECK(t.exitcode() == -15);

    auto k = gipc::start_program(helper("sleep"));
    k.kill();
    REQUIRE(k.join(30s));
    CHECK(k.exitcode() == -9);
    k.kill(); // ended: a no-op
    CHECK(k.exitcode() == -9);

    gipc::command g = helper("sleep-with-grandchild");
    g.new_process_group = true;
    g.out = stdio::pipe;
    auto gp = gipc::start_program(g);
    const int grandchild = std::atoi(gp.out().read_line(30s).c_str());
    REQUIRE(grandchild > 0);
    gp.terminate();
    REQUIRE(gp.join(30s));
    CHECK(gp.exitcode() == -15);
    CHECK(gone_within_10s(grandchild));

    gipc::command slow = helper("sleep");
    slow.new_process_group = true;
    slow.out = stdio::pipe;
    const auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_AS((void)gipc::run_program(slow, {}, 300ms), gipc::timeout_error);
    CHECK(gipc_test::seconds_since(start) < 10);

    gipc::program moved = std::move(p);
    CHECK(p.pid() == -1);
    CHECK_THROWS_AS(p.join(), gipc::error);
    CHECK(moved.exitcode() == 7);
}

GIPC_TEST("lifetime: kill_on_drop kills a dropped program")
{
    gipc::command s = helper("sleep");
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
    a = gipc::start_program(helper("sleep", {"0"}));
    CHECK(gone_within_10s(pid));
    a.join();
}

GIPC_TEST("a daemon program dies with its parent")
{
    auto res = gipc_test::run_helper("program-daemon-then-die");
    INFO(res.output);
    CHECK(res.status == 9);
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

GIPC_TEST("the streams are gipc handles: transferable to a spawned child")
{
    gipc::command c = helper("cat");
    c.in = stdio::pipe;
    c.out = stdio::pipe;
    auto p = gipc::start_program(c);
    auto child = gipc::spawn_process(write_hello, std::move(p.in()));
    CHECK(p.in().closed());
    REQUIRE(child.join(30s));
    CHECK(child.exitcode() == 0);
    CHECK(p.out().read_all(30s) == "hello from a spawned child\n");
    REQUIRE(p.join(30s));
}

GIPC_TEST("30 programs from 10 fibers at once, nothing leaked")
{
    std::atomic<int> ok{0};
    std::vector<boost::fibers::fiber> fibers;
    for (int f = 0; f < 10; ++f)
        fibers.emplace_back([&, f] {
            for (int i = 0; i < 3; ++i) {
                gipc::command c = helper("echo-args", {std::to_string(f * 10 + i)});
                c.out = stdio::pipe;
                auto r = gipc::run_program(c, {}, 60s);
                if (r.exitcode == 0 && r.out == "[" + std::to_string(f * 10 + i) + "]\n")
                    ++ok;
            }
        });
    for (auto& f : fibers)
        f.join();
    CHECK(ok == 30);
}

} // TEST_SUITE
