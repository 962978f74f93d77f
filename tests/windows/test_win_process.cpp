// SPDX-License-Identifier: MIT
// Child processes: exactly the listed handles inherited, exits seen through the port, exit
// codes, command lines as the child sees them, and kill-on-close job objects.
#include "win_support.hpp"

#include "windows/cmdline.hpp"
#include "windows/iocp.hpp"
#include "windows/named_pipe.hpp"
#include "windows/process.hpp"

#include <chrono>
#include <string>

namespace win = gipc::detail::win;
using gipc_win_test::helper_path;

namespace {

std::wstring command(const std::wstring& args)
{
    return L"\"" + helper_path() + L"\" " + args;
}

std::wstring handle_arg(HANDLE h)
{
    return std::to_wstring(reinterpret_cast<std::uintptr_t>(h));
}

// read_some reads what is there (or waits for it) through the port: an overlapped read, then
// the port's packet when it pended. Returns the bytes; sets error to the read's error.
std::string read_some(win::completion_port& port, HANDLE h, DWORD& error, DWORD timeout_ms = 10000)
{
    char buf[256];
    OVERLAPPED ov{};
    DWORD n = 0;
    error = 0;
    if (::ReadFile(h, buf, sizeof buf, &n, &ov))
        return std::string(buf, n);
    error = ::GetLastError();
    if (error != ERROR_IO_PENDING)
        return {};
    win::completion c[1];
    std::size_t count = 0;
    DWORD e = port.wait(c, 1, timeout_ms, count);
    if (e != 0) {
        ::CancelIoEx(h, &ov);
        ::GetOverlappedResult(h, &ov, &n, TRUE);
        error = e;
        return {};
    }
    REQUIRE(count == 1);
    REQUIRE(c[0].overlapped == &ov);
    error = win::io_error(ov);
    return std::string(buf, c[0].bytes);
}

// wait_exit waits for the packet of an exit_watch with key, up to timeout_ms.
bool wait_exit(win::completion_port& port, ULONG_PTR key, DWORD timeout_ms = 10000)
{
    win::completion c[1];
    std::size_t n = 0;
    if (port.wait(c, 1, timeout_ms, n) != 0)
        return false;
    return n == 1 && c[0].key == key && c[0].overlapped == nullptr;
}

} // namespace

WIN_TEST("a child inherits exactly the listed handle, talks through it, and its exit comes through the port")
{
    win::completion_port port;
    REQUIRE(port.create() == 0);
    win::unique_handle mine, theirs;
    win::duplex_options options;
    options.second_overlapped = false; // the child does ordinary synchronous I/O
    REQUIRE(win::make_duplex_pipe(mine, theirs, options) == 0);
    REQUIRE(port.associate(mine.get(), 1) == 0);
    // A decoy: an inheritable write end that is not listed. Were the child to inherit it, the
    // read end would not see its end while the child lives.
    win::unique_handle decoy_r, decoy_w;
    REQUIRE(win::make_pipe(decoy_r, decoy_w) == 0);
    REQUIRE(port.associate(decoy_r.get(), 3) == 0);
    REQUIRE(win::set_inheritable(decoy_w.get(), true) == 0);

    win::unique_handle passed;
    REQUIRE(win::inheritable_duplicate(theirs.get(), passed) == 0);
    theirs.reset();
    win::spawn_options so;
    so.application = helper_path();
    so.command_line = command(L"talk " + handle_arg(passed.get()));
    so.inherit = {passed.get()};
    win::unique_handle child;
    DWORD pid = 0;
    REQUIRE(win::spawn(so, child, pid) == 0);
    CHECK(pid != 0);
    CHECK(pid != ::GetCurrentProcessId());
    passed.reset();
    decoy_w.reset();

    win::exit_watch watch;
    REQUIRE(watch.start(child.get(), port, 9) == 0);

    DWORD e = 0;
    std::string got;
    while (got.size() < 16 && e == 0)
        got += read_some(port, mine.get(), e);
    CHECK(e == 0);
    CHECK(got == "hello from child");

    // The child lives (it waits for "bye"), and the decoy's read end is already at its end.
    DWORD code = 0;
    REQUIRE(win::exit_code(child.get(), code) == 0);
    CHECK(code == STILL_ACTIVE);
    std::string decoy = read_some(port, decoy_r.get(), e, 5000);
    CHECK(decoy.empty());
    CHECK_MESSAGE(e == ERROR_BROKEN_PIPE, "the unlisted handle was inherited (error " << e << ")");

    OVERLAPPED ov{};
    DWORD n = 0;
    if (!::WriteFile(mine.get(), "bye", 3, &n, &ov)) {
        REQUIRE(::GetLastError() == ERROR_IO_PENDING);
        win::completion c[1];
        std::size_t count = 0;
        REQUIRE(port.wait(c, 1, 10000, count) == 0);
        REQUIRE(c[0].overlapped == &ov);
    }
    REQUIRE(wait_exit(port, 9));
    REQUIRE(win::exit_code(child.get(), code) == 0);
    CHECK(code == 7);
    // The child's end closed with it.
    got = read_some(port, mine.get(), e);
    CHECK(e == ERROR_BROKEN_PIPE);
}

WIN_TEST("a child started with no handles to inherit inherits none, not even inheritable ones")
{
    win::completion_port port;
    REQUIRE(port.create() == 0);
    win::unique_handle decoy_r, decoy_w;
    REQUIRE(win::make_pipe(decoy_r, decoy_w) == 0);
    REQUIRE(port.associate(decoy_r.get(), 3) == 0);
    REQUIRE(win::set_inheritable(decoy_w.get(), true) == 0);
    win::spawn_options so;
    so.application = helper_path();
    so.command_line = command(L"sleep");
    win::unique_handle child;
    DWORD pid = 0;
    REQUIRE(win::spawn(so, child, pid) == 0);
    decoy_w.reset();
    // The child sleeps: were it holding a copy of the write end, the read would pend.
    DWORD e = 0;
    std::string got = read_some(port, decoy_r.get(), e, 5000);
    CHECK(got.empty());
    CHECK_MESSAGE(e == ERROR_BROKEN_PIPE, "the inheritable handle was inherited (error " << e << ")");
    CHECK(::WaitForSingleObject(child.get(), 0) == WAIT_TIMEOUT);
    REQUIRE(::TerminateProcess(child.get(), 9));
    REQUIRE(::WaitForSingleObject(child.get(), 10000) == WAIT_OBJECT_0);
    DWORD code = 0;
    REQUIRE(win::exit_code(child.get(), code) == 0);
    CHECK(code == 9);
}

WIN_TEST("spawn refuses a listed handle that is not inheritable, and lists a handle once")
{
    win::unique_handle event(::CreateEventW(nullptr, TRUE, FALSE, nullptr));
    REQUIRE(event);
    win::spawn_options so;
    so.application = helper_path();
    so.command_line = command(L"exit 5");
    so.inherit = {event.get()};
    win::unique_handle child;
    DWORD pid = 0;
    CHECK(win::spawn(so, child, pid) == ERROR_INVALID_PARAMETER);
    CHECK_FALSE(child);
    REQUIRE(win::set_inheritable(event.get(), true) == 0);
    so.inherit = {event.get(), event.get()};
    REQUIRE(win::spawn(so, child, pid) == 0);
    REQUIRE(::WaitForSingleObject(child.get(), 10000) == WAIT_OBJECT_0);
    DWORD code = 0;
    REQUIRE(win::exit_code(child.get(), code) == 0);
    CHECK(code == 5);
}

WIN_TEST("exit codes come back as the child gave them, each exit through its own packet")
{
    win::completion_port port;
    REQUIRE(port.create() == 0);
    const DWORD codes[] = {0, 3, 255, 4242};
    win::unique_handle children[4];
    win::exit_watch watches[4];
    for (int i = 0; i < 4; ++i) {
        win::spawn_options so;
        so.application = helper_path();
        so.command_line = command(L"exit " + std::to_wstring(codes[i]));
        DWORD pid = 0;
        REQUIRE(win::spawn(so, children[i], pid) == 0);
        REQUIRE(watches[i].start(children[i].get(), port, 100 + i) == 0);
    }
    bool seen[4] = {};
    for (int k = 0; k < 4; ++k) {
        win::completion c[1];
        std::size_t n = 0;
        REQUIRE(port.wait(c, 1, 10000, n) == 0);
        REQUIRE(n == 1);
        REQUIRE(c[0].key >= 100);
        REQUIRE(c[0].key < 104);
        int i = static_cast<int>(c[0].key - 100);
        CHECK_FALSE(seen[i]);
        seen[i] = true;
        DWORD code = 0;
        REQUIRE(win::exit_code(children[i].get(), code) == 0);
        CHECK(code == codes[i]);
    }
    win::completion c[1];
    std::size_t n = 0;
    CHECK(port.wait(c, 1, 100, n) == WAIT_TIMEOUT); // one packet per watch, no more
}

WIN_TEST("a watch started after the exit posts at once")
{
    win::completion_port port;
    REQUIRE(port.create() == 0);
    win::spawn_options so;
    so.application = helper_path();
    so.command_line = command(L"exit 12");
    win::unique_handle child;
    DWORD pid = 0;
    REQUIRE(win::spawn(so, child, pid) == 0);
    REQUIRE(::WaitForSingleObject(child.get(), 10000) == WAIT_OBJECT_0);
    win::exit_watch watch;
    REQUIRE(watch.start(child.get(), port, 4) == 0);
    REQUIRE(wait_exit(port, 4, 5000));
    DWORD code = 0;
    REQUIRE(win::exit_code(child.get(), code) == 0);
    CHECK(code == 12);
    win::completion c[1];
    std::size_t n = 0;
    CHECK(port.wait(c, 1, 100, n) == WAIT_TIMEOUT); // once only
}

WIN_TEST("a watch reset before the exit posts nothing")
{
    win::completion_port port;
    REQUIRE(port.create() == 0);
    win::spawn_options so;
    so.application = helper_path();
    so.command_line = command(L"sleep");
    win::unique_handle child;
    DWORD pid = 0;
    REQUIRE(win::spawn(so, child, pid) == 0);
    win::exit_watch watch;
    REQUIRE(watch.start(child.get(), port, 5) == 0);
    CHECK(static_cast<bool>(watch));
    watch.reset();
    CHECK_FALSE(static_cast<bool>(watch));
    REQUIRE(::TerminateProcess(child.get(), 15));
    REQUIRE(::WaitForSingleObject(child.get(), 10000) == WAIT_OBJECT_0);
    DWORD code = 0;
    REQUIRE(win::exit_code(child.get(), code) == 0);
    CHECK(code == 15);
    win::completion c[1];
    std::size_t n = 0;
    CHECK(port.wait(c, 1, 200, n) == WAIT_TIMEOUT);
}

WIN_TEST("the child's CommandLineToArgvW gives back what build_command_line joined")
{
    win::completion_port port;
    REQUIRE(port.create() == 0);
    win::unique_handle r, w;
    win::pipe_options po;
    po.write_overlapped = false; // the child's stdout
    REQUIRE(win::make_pipe(r, w, po) == 0);
    REQUIRE(port.associate(r.get(), 1) == 0);
    std::string exe;
    {
        std::wstring p = helper_path();
        REQUIRE(win::utf16_to_utf8(std::u16string(p.begin(), p.end()), exe) == 0);
    }
    std::vector<std::string> argv = {exe, "args", "", "a b", R"(a\"b)", R"(tail\)",
                                     R"(space tail\ )", "caf\xc3\xa9 \xf0\x9f\x98\x80", "\t"};
    std::u16string line;
    REQUIRE(win::command_line_utf16(argv, line) == 0);
    win::spawn_options so;
    so.application = helper_path();
    so.command_line.assign(line.begin(), line.end());
    so.std_output = w.get();
    win::unique_handle child;
    DWORD pid = 0;
    REQUIRE(win::spawn(so, child, pid) == 0);
    w.reset();
    std::string out;
    DWORD e = 0;
    for (;;) {
        std::string s = read_some(port, r.get(), e);
        if (e != 0)
            break;
        out += s;
    }
    CHECK(e == ERROR_BROKEN_PIPE);
    std::string expected;
    for (const auto& a : argv)
        expected += a + '\0';
    CHECK(out == expected);
    REQUIRE(::WaitForSingleObject(child.get(), 10000) == WAIT_OBJECT_0);
    DWORD code = 99;
    REQUIRE(win::exit_code(child.get(), code) == 0);
    CHECK(code == 0);
}

WIN_TEST("closing a kill-on-close job ends the process in it")
{
    win::unique_handle job;
    REQUIRE(win::make_kill_on_close_job(job) == 0);
    CHECK(win::is_inheritable(job.get()) == 0);
    win::spawn_options so;
    so.application = helper_path();
    so.command_line = command(L"sleep");
    so.job = job.get();
    win::unique_handle child;
    DWORD pid = 0;
    REQUIRE(win::spawn(so, child, pid) == 0);
    BOOL in_job = FALSE;
    REQUIRE(::IsProcessInJob(child.get(), job.get(), &in_job));
    CHECK(in_job);
    CHECK(::WaitForSingleObject(child.get(), 200) == WAIT_TIMEOUT); // it runs: not suspended
    job.reset();
    CHECK(::WaitForSingleObject(child.get(), 10000) == WAIT_OBJECT_0);
}

WIN_TEST("a daemon in a kill-on-close job ends when the parent holding the job exits")
{
    win::completion_port port;
    REQUIRE(port.create() == 0);
    win::unique_handle mine, theirs;
    win::duplex_options options;
    options.second_overlapped = false;
    REQUIRE(win::make_duplex_pipe(mine, theirs, options) == 0);
    REQUIRE(port.associate(mine.get(), 1) == 0);
    win::unique_handle passed;
    REQUIRE(win::inheritable_duplicate(theirs.get(), passed) == 0);
    theirs.reset();
    win::spawn_options so;
    so.application = helper_path();
    so.command_line = command(L"daemon-parent " + handle_arg(passed.get()));
    so.inherit = {passed.get()};
    win::unique_handle parent;
    DWORD pid = 0;
    REQUIRE(win::spawn(so, parent, pid) == 0);
    passed.reset();

    std::string line;
    DWORD e = 0;
    while (line.find('\n') == std::string::npos && e == 0)
        line += read_some(port, mine.get(), e);
    REQUIRE(e == 0);
    DWORD daemon_pid = static_cast<DWORD>(std::stoul(line));
    win::unique_handle daemon(::OpenProcess(SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION |
                                                PROCESS_TERMINATE,
                                            FALSE, daemon_pid));
    REQUIRE(daemon);
    CHECK(::WaitForSingleObject(daemon.get(), 200) == WAIT_TIMEOUT);
    mine.reset(); // the parent exits on its pipe's end, leaving the job's handle to the system
    REQUIRE(::WaitForSingleObject(parent.get(), 10000) == WAIT_OBJECT_0);
    DWORD wait = ::WaitForSingleObject(daemon.get(), 10000);
    if (wait != WAIT_OBJECT_0)
        ::TerminateProcess(daemon.get(), 1);
    CHECK_MESSAGE(wait == WAIT_OBJECT_0, "the daemon outlived the parent that held its job");
}
