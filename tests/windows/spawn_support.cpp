// SPDX-License-Identifier: MIT
// tests/support's child helpers on Windows, for the tests of tests/ that spawn (test_spawn.cpp;
// their main, with the registry of helpers, is tests/support/main.cpp): run_helper (the binary started again with
// CreateProcessW, its stdout and stderr to a pipe, in a job object that ends what it started
// when it times out), self_exe and child_pids (the Toolhelp snapshot's processes whose parent
// is this one). The leak-checking fixture is pipe_support.cpp's.
#include "test_support.hpp"

#include "win_support.hpp"

#include "windows/cmdline.hpp"
#include "windows/handle.hpp"
#include "windows/named_pipe.hpp"
#include "windows/process.hpp"

#include <gipc/process.hpp>

#include <tlhelp32.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace win = gipc::detail::win;

namespace gipc_test {

namespace {

std::wstring wide(const std::string& s)
{
    std::u16string u;
    REQUIRE(win::utf8_to_utf16(s, u) == 0);
    return std::wstring(u.begin(), u.end());
}

} // namespace

std::string self_exe()
{
    wchar_t buf[4096];
    const DWORD n = ::GetModuleFileNameW(nullptr, buf, DWORD(std::size(buf)));
    std::string out;
    if (n == 0 || n >= std::size(buf) ||
        win::utf16_to_utf8(std::u16string_view(reinterpret_cast<const char16_t*>(buf), n), out) != 0)
        return {};
    return out;
}

std::vector<pid_t> child_pids()
{
    std::vector<pid_t> kids;
    win::unique_handle snap(::CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0));
    if (!snap)
        return kids;
    PROCESSENTRY32W e{};
    e.dwSize = sizeof e;
    const DWORD self = ::GetCurrentProcessId();
    for (BOOL ok = ::Process32FirstW(snap.get(), &e); ok; ok = ::Process32NextW(snap.get(), &e))
        if (e.th32ParentProcessID == self && e.th32ProcessID != self)
            kids.push_back(pid_t(e.th32ProcessID));
    return kids;
}

helper_result run_helper(const std::string& name, std::vector<std::string> args, std::chrono::seconds timeout)
{
    helper_result res;
    const std::string exe = self_exe();
    std::vector<std::string> argv{exe, "--gipc-child", name};
    argv.insert(argv.end(), args.begin(), args.end());
    std::u16string line;
    REQUIRE(win::command_line_utf16(argv, line) == 0);

    // The helper's output: a synchronous pipe, read when PeekNamedPipe says bytes wait.
    win::unique_handle out_r, out_w;
    win::pipe_options po;
    po.read_overlapped = false;
    po.write_overlapped = false;
    REQUIRE(win::make_pipe(out_r, out_w, po) == 0);
    // A job without kill-on-close: what the helper leaves running when it ends is the test's to
    // see; only a timeout ends the whole job.
    win::unique_handle job(::CreateJobObjectW(nullptr, nullptr));
    REQUIRE(job);

    win::spawn_options so;
    so.application = wide(exe);
    so.command_line = std::wstring(line.begin(), line.end());
    so.std_input = ::GetStdHandle(STD_INPUT_HANDLE);
    so.std_output = out_w.get();
    so.std_error = out_w.get();
    so.job = job.get();
    win::unique_handle proc;
    DWORD pid = 0;
    REQUIRE(win::spawn(so, proc, pid) == 0);
    out_w.reset();

    const auto start = std::chrono::steady_clock::now();
    bool timed_out = false;
    std::chrono::steady_clock::time_point exited{};
    for (;;) {
        DWORD avail = 0;
        if (!::PeekNamedPipe(out_r.get(), nullptr, 0, nullptr, &avail, nullptr))
            break; // every writer is gone
        if (avail > 0) {
            char buf[4096];
            DWORD n = 0;
            if (!::ReadFile(out_r.get(), buf, avail < sizeof buf ? avail : DWORD(sizeof buf), &n, nullptr))
                break;
            res.output.append(buf, n);
            continue;
        }
        if (exited == std::chrono::steady_clock::time_point{} && ::WaitForSingleObject(proc.get(), 0) == WAIT_OBJECT_0)
            exited = std::chrono::steady_clock::now();
        // Something the helper started holds the pipe after the helper ended: its output is in.
        if (exited != std::chrono::steady_clock::time_point{} && seconds_since(exited) > 2.0)
            break;
        if (seconds_since(start) > double(timeout.count())) {
            timed_out = true;
            ::TerminateJobObject(job.get(), 1);
            break;
        }
        ::Sleep(5);
    }
    ::WaitForSingleObject(proc.get(), INFINITE);
    DWORD code = 0;
    ::GetExitCodeProcess(proc.get(), &code);
    res.status = timed_out ? -1000 : int(code);
    return res;
}

} // namespace gipc_test
