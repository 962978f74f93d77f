// SPDX-License-Identifier: MIT
// gipc_win_child.exe: the child process of the Windows platform tests. Its first argument says
// what to do:
//   exit N             exit with code N
//   sleep              sleep until killed
//   talk H             write "hello from child" to the duplex pipe end H (a handle value, in
//                      decimal), read from it until "bye" (or its end), exit with code 7
//   args               write each argument as CommandLineToArgvW splits this process's command
//                      line, in UTF-8 and followed by a NUL, to stdout; exit 0
//   daemon-parent H    start "sleep" in a kill-on-close job object, write its process id to H
//                      (decimal, then a newline), wait until H's other end closes, then exit
//                      with code 0 without closing the job: the system closes it at exit
// Any failure exits with code 100 and a message on stderr.
#include "windows/cmdline.hpp"
#include "windows/handle.hpp"
#include "windows/process.hpp"

#include <shellapi.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cwchar>
#include <string>

namespace win = gipc::detail::win;

namespace {

[[noreturn]] void fail(const char* what, DWORD e)
{
    std::fprintf(stderr, "gipc_win_child: %s failed: error %lu\n", what, static_cast<unsigned long>(e));
    std::fflush(stderr);
    ::ExitProcess(100);
}

HANDLE parse_handle(const wchar_t* s)
{
    return reinterpret_cast<HANDLE>(static_cast<std::uintptr_t>(std::wcstoull(s, nullptr, 10)));
}

void write_all(HANDLE h, const void* data, DWORD size)
{
    auto* p = static_cast<const char*>(data);
    while (size > 0) {
        DWORD n = 0;
        if (!::WriteFile(h, p, size, &n, nullptr))
            fail("WriteFile", ::GetLastError());
        p += n;
        size -= n;
    }
}

// wait_for_end reads h until its other end closes, or until what was read ends with stop.
void read_until(HANDLE h, const std::string& stop)
{
    std::string got;
    char buf[256];
    for (;;) {
        DWORD n = 0;
        if (!::ReadFile(h, buf, sizeof buf, &n, nullptr)) {
            DWORD e = ::GetLastError();
            if (e == ERROR_BROKEN_PIPE)
                return;
            fail("ReadFile", e);
        }
        got.append(buf, n);
        if (!stop.empty() && got.size() >= stop.size() &&
            got.compare(got.size() - stop.size(), stop.size(), stop) == 0)
            return;
    }
}

} // namespace

int main()
{
    int argc = 0;
    wchar_t** argv = ::CommandLineToArgvW(::GetCommandLineW(), &argc);
    if (!argv || argc < 2)
        fail("reading the arguments", ERROR_BAD_ARGUMENTS);
    std::wstring mode = argv[1];
    if (mode == L"exit" && argc == 3)
        return static_cast<int>(std::wcstol(argv[2], nullptr, 10));
    if (mode == L"sleep") {
        ::Sleep(INFINITE);
        return 0;
    }
    if (mode == L"talk" && argc == 3) {
        HANDLE h = parse_handle(argv[2]);
        const char hello[] = "hello from child";
        write_all(h, hello, sizeof hello - 1);
        read_until(h, "bye");
        return 7;
    }
    if (mode == L"args") {
        HANDLE out = ::GetStdHandle(STD_OUTPUT_HANDLE);
        for (int i = 0; i < argc; ++i) {
            std::u16string w(reinterpret_cast<const char16_t*>(argv[i]));
            std::string utf8;
            if (auto e = win::utf16_to_utf8(w, utf8))
                fail("utf16_to_utf8", e);
            write_all(out, utf8.data(), static_cast<DWORD>(utf8.size()));
            write_all(out, "", 1);
        }
        return 0;
    }
    if (mode == L"daemon-parent" && argc == 3) {
        HANDLE h = parse_handle(argv[2]);
        win::unique_handle job;
        if (auto e = win::make_kill_on_close_job(job))
            fail("make_kill_on_close_job", e);
        wchar_t self[MAX_PATH * 4];
        DWORD len = ::GetModuleFileNameW(nullptr, self, sizeof self / sizeof self[0]);
        if (len == 0)
            fail("GetModuleFileNameW", ::GetLastError());
        win::spawn_options options;
        options.application.assign(self, len);
        options.command_line = L"\"" + options.application + L"\" sleep";
        options.job = job.get();
        win::unique_handle grandchild;
        DWORD pid = 0;
        if (auto e = win::spawn(options, grandchild, pid))
            fail("spawn", e);
        std::string line = std::to_string(pid) + "\n";
        write_all(h, line.data(), static_cast<DWORD>(line.size()));
        read_until(h, "");
        job.release(); // left to the system to close at exit, as when a parent crashes
        ::ExitProcess(0);
    }
    fail("parsing the arguments", ERROR_BAD_ARGUMENTS);
}
