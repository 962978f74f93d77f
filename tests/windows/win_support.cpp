// SPDX-License-Identifier: MIT
#define DOCTEST_CONFIG_IMPLEMENT
#include "win_support.hpp"

#include "windows/iocp.hpp"
#include "windows/process.hpp"

#include <winternl.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <sstream>
#include <vector>

namespace gipc_win_test {

DWORD handle_count()
{
    DWORD n = 0;
    DWORD e = gipc::detail::win::process_handle_count(n);
    REQUIRE_MESSAGE(e == 0, "GetProcessHandleCount failed: " << e);
    return n;
}

namespace {

// open_handles lists the values of this process's handles (as process_handle_count counts
// them), for the message of a leak.
std::set<ULONG_PTR> open_handles()
{
    std::set<ULONG_PTR> out;
    constexpr ULONG_PTR block = 1024 * 4;
    for (ULONG_PTR start = 4;; start += block) {
        bool any = false;
        for (ULONG_PTR v = start; v < start + block; v += 4) {
            DWORD flags = 0;
            if (::GetHandleInformation(reinterpret_cast<HANDLE>(v), &flags)) {
                out.insert(v);
                any = true;
            }
        }
        if (!any)
            return out;
    }
}

// describe_handle is the handle's object type ("Event", "File", "Thread"...).
std::string describe_handle(ULONG_PTR value)
{
    alignas(8) unsigned char buf[1024];
    ULONG len = 0;
    NTSTATUS st = ::NtQueryObject(reinterpret_cast<HANDLE>(value), ObjectTypeInformation, buf,
                                  sizeof buf, &len);
    if (st != 0)
        return "type unknown";
    auto* name = reinterpret_cast<const UNICODE_STRING*>(buf);
    std::string out;
    for (USHORT i = 0; i < name->Length / 2; ++i)
        out += static_cast<char>(name->Buffer[i] < 128 ? name->Buffer[i] : '?');
    return out;
}

} // namespace

handle_leak_check::handle_leak_check() : handles_(handle_count())
{
    before_ = open_handles();
}

handle_leak_check::~handle_leak_check()
{
    DWORD now = handle_count();
    for (int i = 0; i < 200 && now > handles_; ++i) {
        ::Sleep(10);
        now = handle_count();
    }
    if (now > handles_) {
        std::ostringstream what;
        for (ULONG_PTR h : open_handles())
            if (!before_.count(h))
                what << " 0x" << std::hex << h << std::dec << " (" << describe_handle(h) << ")";
        FAIL_CHECK((now - handles_) << " handle(s) left open by the test (" << handles_
                                    << " before, " << now << " after):" << what.str());
    }
}

native_thread::native_thread(std::function<void()> fn)
{
    auto* job = new std::function<void()>(std::move(fn));
    HANDLE h = ::CreateThread(
        nullptr, 0,
        [](void* p) -> DWORD {
            auto* f = static_cast<std::function<void()>*>(p);
            (*f)();
            delete f;
            return 0;
        },
        job, 0, nullptr);
    if (!h) {
        delete job;
        FAIL("CreateThread failed: " << ::GetLastError());
    }
    thread_.reset(h);
}

void native_thread::join()
{
    if (thread_) {
        ::WaitForSingleObject(thread_.get(), INFINITE);
        thread_.reset();
    }
}

namespace {
HANDLE new_event()
{
    HANDLE e = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
    if (!e)
        FAIL("CreateEventW failed: " << ::GetLastError());
    return e;
}
} // namespace

deadline_watch::deadline_watch(const char* what, DWORD limit_ms)
    : done_(new_event()), watcher_([done = done_.get(), what, limit_ms] {
          if (::WaitForSingleObject(done, limit_ms) != WAIT_OBJECT_0) {
              // WriteFile, not the C runtime's streams, whose lock a hung thread may hold.
              char text[512];
              const int n = std::snprintf(text, sizeof text, "deadline_watch: %s did not finish within %lu ms\n",
                                          what, static_cast<unsigned long>(limit_ms));
              DWORD written = 0;
              if (n > 0)
                  ::WriteFile(::GetStdHandle(STD_ERROR_HANDLE), text,
                              static_cast<DWORD>(std::min<int>(n, sizeof text - 1)), &written, nullptr);
              // Not ExitProcess (std::_Exit): it needs the loader lock, which a hung thread may hold.
              ::TerminateProcess(::GetCurrentProcess(), 1);
          }
      })
{
}

deadline_watch::~deadline_watch()
{
    ::SetEvent(done_.get());
    watcher_.join();
}

std::wstring helper_path()
{
    // No doctest assertion here: warm_up calls this before doctest runs. A failure gives a
    // path that cannot start, which the tests report.
    wchar_t buf[MAX_PATH * 4];
    DWORD n = ::GetModuleFileNameW(nullptr, buf, sizeof buf / sizeof buf[0]);
    std::wstring path(buf, n);
    auto slash = path.find_last_of(L"\\/");
    if (slash == std::wstring::npos)
        return L"gipc_win_child.exe";
    return path.substr(0, slash + 1) + L"gipc_win_child.exe";
}

namespace {
std::vector<void (*)()>& warm_ups()
{
    static std::vector<void (*)()> fns;
    return fns;
}
} // namespace

bool register_warm_up(void (*fn)())
{
    warm_ups().push_back(fn);
    return true;
}

void warm_up()
{
    // Wine's thread pool runs the waits of RegisterWaitForSingleObject on threads of its own,
    // each with an event, and ends such a thread 5 s after its last wait ended
    // (THREADPOOL_WORKER_TIMEOUT in Wine's ntdll/threadpool.c): a wait started after a longer
    // pause (a slow test on a loaded machine) makes a new thread and event, which outlive the
    // test case that started it by up to 5 s. A wait that never ends, registered here for the
    // whole process, keeps one such thread and its event in every test's baseline.
    static HANDLE never = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
    static HANDLE forever_wait = nullptr;
    if (never && !forever_wait)
        ::RegisterWaitForSingleObject(&forever_wait, never, [](void*, BOOLEAN) {}, nullptr, INFINITE,
                                      WT_EXECUTEONLYONCE);
    for (auto fn : warm_ups())
        fn();
    namespace win = gipc::detail::win;
    win::completion_port port;
    if (port.create() != 0)
        return; // the tests report it
    win::spawn_options options;
    options.application = helper_path();
    options.command_line = L"\"" + options.application + L"\" exit 0";
    win::unique_handle child;
    DWORD pid = 0;
    if (win::spawn(options, child, pid) != 0)
        return;
    win::exit_watch watch;
    if (watch.start(child.get(), port, 1) != 0)
        return;
    win::completion c[1];
    std::size_t n = 0;
    port.wait(c, 1, 10000, n);
}

job_thread::job_thread(void (*setup)()) : setup_(setup)
{
    // The thread runs until the process ends; its handle is not needed.
    HANDLE thread = ::CreateThread(
        nullptr, 0,
        [](void* p) -> DWORD {
            auto* self = static_cast<job_thread*>(p);
            if (self->setup_)
                self->setup_();
            for (;;) {
                ::AcquireSRWLockExclusive(&self->lock_);
                while (self->jobs_.empty())
                    ::SleepConditionVariableSRW(&self->cv_, &self->lock_, INFINITE, 0);
                auto job = std::move(self->jobs_.front());
                self->jobs_.pop_front();
                ::ReleaseSRWLockExclusive(&self->lock_);
                job();
            }
        },
        this, 0, nullptr);
    if (thread)
        ::CloseHandle(thread);
}

void job_thread::post(std::function<void()> job)
{
    ::AcquireSRWLockExclusive(&lock_);
    jobs_.push_back(std::move(job));
    ::ReleaseSRWLockExclusive(&lock_);
    ::WakeConditionVariable(&cv_);
}

} // namespace gipc_win_test
