// SPDX-License-Identifier: MIT
// start_program on Windows (src/posix/program_start.cpp is the POSIX one; the rest of the
// program handle is src/program.cpp's): CreateProcessW of the program, found as below, with a
// command line that CommandLineToArgvW splits back into exactly command::argv (cmdline.hpp),
// the environment and working directory asked for, and stdin, stdout and stderr as asked: a
// named pipe whose child end is synchronous (what programs expect) and whose parent end is an
// overlapped gipc handle (byte_writer, byte_reader), NUL, or this process's own. The child
// inherits those three and no other handle (PROC_THREAD_ATTRIBUTE_HANDLE_LIST). A daemon program
// is in a kill-on-close job object (it ends however this process ends); with
// new_process_group, in a job that terminate() and kill() end whole (CREATE_NEW_PROCESS_GROUP
// too), the Windows form of a process group.
//
// argv[0] naming a file (it holds '/', '\' or ':') is that file, or that file with ".exe";
// otherwise it is looked up with SearchPathW (".exe" added when it has no extension) in the PATH
// of the program's environment: env's when given (the system directories when it has none),
// else this process's.
#include "windows/win32.hpp"

#include "windows/cmdline.hpp"
#include "windows/handle.hpp"
#include "windows/named_pipe.hpp"
#include "windows/process.hpp"
#include "windows/spawn.hpp"
#include "windows/win_errors.hpp"

#include "errors.hpp"
#include "socket_end.hpp"

#include <gipc/program.hpp>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace gipc {

using detail::socket_end;
namespace win = detail::win;

namespace {

[[noreturn]] void fail(int neg_errno, const std::string& what)
{
    detail::throw_errno(neg_errno, "gipc: start_program: " + what);
}

std::wstring wide(const std::string& s, const std::string& what)
{
    std::u16string u;
    if (win::utf8_to_utf16(s, u) != 0)
        fail(-EINVAL, what + " is not valid UTF-8");
    return std::wstring(u.begin(), u.end());
}

std::string narrow(const std::wstring& s)
{
    std::string out;
    win::utf16_to_utf8(std::u16string_view(reinterpret_cast<const char16_t*>(s.data()), s.size()), out);
    return out;
}

bool is_file(const std::wstring& path)
{
    const DWORD a = ::GetFileAttributesW(path.c_str());
    return a != INVALID_FILE_ATTRIBUTES && !(a & FILE_ATTRIBUTE_DIRECTORY);
}

// find_program resolves argv[0] (see above).
std::wstring find_program(const command& cmd)
{
    const std::string& name = cmd.argv[0];
    if (name.empty())
        fail(-ENOENT, "argv[0] is empty");
    const std::wstring wname = wide(name, "argv[0]");
    if (name.find_first_of("/\\:") != std::string::npos) {
        if (is_file(wname))
            return wname;
        if (is_file(wname + L".exe"))
            return wname + L".exe";
        fail(-ENOENT, "cannot execute " + name + ": no such file");
    }
    std::wstring path;
    bool have_path = false;
    if (cmd.env) {
        for (const auto& e : *cmd.env)
            if (e.size() >= 5 && ::_strnicmp(e.c_str(), "PATH=", 5) == 0) {
                path = wide(e.substr(5), "PATH");
                have_path = true;
                break;
            }
        if (!have_path) {
            wchar_t dir[MAX_PATH];
            const UINT n = ::GetSystemDirectoryW(dir, MAX_PATH);
            if (n > 0 && n < MAX_PATH)
                path.assign(dir, n);
            const UINT m = ::GetWindowsDirectoryW(dir, MAX_PATH);
            if (m > 0 && m < MAX_PATH)
                path += L";" + std::wstring(dir, m);
        }
    } else {
        const DWORD n = ::GetEnvironmentVariableW(L"PATH", nullptr, 0);
        if (n > 0) {
            path.resize(n);
            path.resize(::GetEnvironmentVariableW(L"PATH", path.data(), n));
        }
    }
    std::wstring found(MAX_PATH, L'\0');
    for (;;) {
        const DWORD n = ::SearchPathW(path.empty() ? nullptr : path.c_str(), wname.c_str(), L".exe",
                                      DWORD(found.size()), found.data(), nullptr);
        if (n == 0)
            fail(-ENOENT, "cannot execute " + name + ": not found in PATH");
        if (n < found.size()) {
            found.resize(n);
            if (!is_file(found))
                fail(-EACCES, "cannot execute " + name + ": no executable match in PATH");
            return found;
        }
        found.resize(n);
    }
}

// environment_block is env as a CreateProcessW block (UTF-16).
std::wstring environment_block(const std::vector<std::string>& env)
{
    std::wstring block;
    for (const auto& e : env) {
        if (e.find('\0') != std::string::npos)
            fail(-EINVAL, "an entry of command::env holds a NUL character");
        block += wide(e, "an entry of command::env");
        block.push_back(L'\0');
    }
    if (env.empty())
        block.push_back(L'\0');
    block.push_back(L'\0');
    return block;
}

} // namespace

program start_program(command cmd)
{
    detail::prepare_program_start();
    if (cmd.argv.empty())
        throw error("gipc: start_program: command::argv is empty");
    if (cmd.in == stdio::merge || cmd.out == stdio::merge)
        throw error("gipc: start_program: stdio::merge is for command::err only");
    const std::string name = cmd.name.empty() ? cmd.argv[0] : cmd.name;

    win::spawn_options so;
    so.application = find_program(cmd);
    std::u16string line;
    if (win::command_line_utf16(cmd.argv, line) != 0)
        fail(-EINVAL, "command::argv cannot be a command line (a NUL character, or a double quote in argv[0])");
    so.command_line.assign(line.begin(), line.end());
    std::wstring env;
    if (cmd.env) {
        env = environment_block(*cmd.env);
        so.environment = env.c_str();
    }
    if (!cmd.cwd.empty()) {
        so.cwd = wide(cmd.cwd, "command::cwd");
        const DWORD a = ::GetFileAttributesW(so.cwd.c_str());
        if (a == INVALID_FILE_ATTRIBUTES || !(a & FILE_ATTRIBUTE_DIRECTORY))
            fail(a == INVALID_FILE_ATTRIBUTES ? -ENOENT : -ENOTDIR,
                 "cannot change to directory " + cmd.cwd + " for " + name);
    }

    // The three streams: the child's ends live until CreateProcessW has passed them on.
    const stdio kinds[3] = {cmd.in, cmd.out, cmd.err == stdio::merge ? stdio::inherit : cmd.err};
    const DWORD std_ids[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};
    HANDLE* slots[3] = {&so.std_input, &so.std_output, &so.std_error};
    win::unique_handle child_side[3];
    std::shared_ptr<socket_end> ends[3];
    for (int i = 0; i < 3; ++i) {
        if (kinds[i] == stdio::pipe) {
            win::unique_handle r, w;
            win::pipe_options po;
            po.read_overlapped = i != 0; // the child's end is synchronous
            po.write_overlapped = i == 0;
            if (const DWORD e = win::make_pipe(r, w, po); e != 0)
                fail(win::errno_of(e), "a pipe for " + name);
            child_side[i] = std::move(i == 0 ? r : w);
            ends[i] = std::make_shared<socket_end>(detail::unique_native_fd((i == 0 ? w : r).release()),
                                                   i == 0 ? "byte writer" : "byte reader");
            ends[i]->register_open();
        } else if (kinds[i] == stdio::null) {
            child_side[i].reset(::CreateFileW(L"NUL", GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE,
                                              nullptr, OPEN_EXISTING, 0, nullptr));
            if (!child_side[i])
                fail(win::errno_of(::GetLastError()), "NUL for " + name);
        }
        if (child_side[i]) {
            *slots[i] = child_side[i].get();
        } else {
            HANDLE h = ::GetStdHandle(std_ids[i]);
            if (h != nullptr && h != INVALID_HANDLE_VALUE)
                *slots[i] = h;
        }
    }
    if (cmd.err == stdio::merge)
        so.std_error = so.std_output;

    win::unique_handle job;
    if (cmd.daemon) {
        if (const DWORD e = win::make_kill_on_close_job(job); e != 0)
            fail(win::errno_of(e), "the job object of " + name);
    } else if (cmd.new_process_group) {
        job.reset(::CreateJobObjectW(nullptr, nullptr));
        if (!job)
            fail(win::errno_of(::GetLastError()), "the job object of " + name);
    }
    if (cmd.new_process_group)
        so.extra_flags |= CREATE_NEW_PROCESS_GROUP;
    so.job = job.get();

    win::unique_handle proc;
    DWORD pid = 0;
    if (const DWORD e = win::spawn(so, proc, pid); e != 0)
        fail(win::errno_of(e), "cannot execute " + narrow(so.application) + " (Win32 error " + std::to_string(e) + ")");
    for (auto& h : child_side)
        h.reset();

    process p = detail::adopt_program(std::move(proc), pid, name, cmd.daemon, std::move(job), cmd.new_process_group);
    program prog(std::move(p), cmd.kill_on_drop);
    prog.in_ = byte_writer(std::move(ends[0]));
    prog.out_ = byte_reader(std::move(ends[1]));
    prog.err_ = byte_reader(std::move(ends[2]));
    return prog;
}

} // namespace gipc
