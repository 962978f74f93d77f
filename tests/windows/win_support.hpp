// SPDX-License-Identifier: MIT
#pragma once
// Support of the Windows platform tests (tests/windows/): the handle-leak fixture every test
// case runs under, the path of the child helper (gipc_win_child.exe, beside the test binary),
// and small checks. The tests include private headers of src/windows/ (built with GIPC_PRIVATE).

#include <doctest/doctest.h>

#include "windows/handle.hpp"

#include <deque>
#include <functional>
#include <set>
#include <string>

namespace gipc_win_test {

// handle_leak_check: constructed before and destroyed after each test case; fails the case when
// this process has more handles open after it than before (GetProcessHandleCount), after a
// grace period for handles that the system's thread pool releases late. The test main warms up
// what the system opens once per process (the thread pool, process creation) before any test,
// so that it belongs to every test's baseline.
struct handle_leak_check {
    handle_leak_check();
    ~handle_leak_check();
    handle_leak_check(const handle_leak_check&) = delete;
    handle_leak_check& operator=(const handle_leak_check&) = delete;

private:
    DWORD handles_ = 0;
    std::set<ULONG_PTR> before_; // the handle values, for the message of a leak
};

// handle_count is GetProcessHandleCount of this process (a failed test case when it fails).
DWORD handle_count();

// helper_path is the full path of gipc_win_child.exe, in the directory of this test binary.
std::wstring helper_path();

// warm_up runs once before the tests (win_support.cpp's main): a thread-pool wait, a child
// process, and what a test file registered with register_warm_up.
void warm_up();

// register_warm_up adds fn to warm_up, for what a test file's library opens once per process
// or thread and keeps (Boost.Fiber's scheduler: the semaphores of its condition variable).
// Call it from a namespace-scope initializer: static const bool x = register_warm_up(...).
bool register_warm_up(void (*fn)());

// native_thread runs fn on a thread made with CreateThread, joined by join() or the destructor.
// Tests use it rather than std::thread: MinGW's threads (winpthread) open events for their own
// bookkeeping the first time two threads contend for it, which timing decides, and which the
// leak check would count.
class native_thread {
public:
    explicit native_thread(std::function<void()> fn);
    ~native_thread() { join(); }
    native_thread(const native_thread&) = delete;
    native_thread& operator=(const native_thread&) = delete;
    void join();

private:
    gipc::detail::win::unique_handle thread_;
};

// deadline_watch bounds a wait that has no timeout of its own (one whose wake-up a test checks):
// unless it is destroyed within limit_ms of its construction, it prints what did not finish and
// ends the process with status 1, so that a lost wake-up fails the test run instead of hanging
// it. A thread of its own (native_thread) waits on an event that the destructor sets.
class deadline_watch {
public:
    deadline_watch(const char* what, DWORD limit_ms);
    ~deadline_watch();
    deadline_watch(const deadline_watch&) = delete;
    deadline_watch& operator=(const deadline_watch&) = delete;

private:
    gipc::detail::win::unique_handle done_;
    native_thread watcher_;
};

// job_thread: a long-lived thread (made with CreateThread, never ended: Boost.Fiber leaves a
// thread's scheduler behind when the thread ends under MinGW-w64, README.md "Windows") that
// runs setup once, then the jobs posted to it, one after the other, on its main fiber. Never
// destroyed; make one with new and keep it. An SRW lock and a condition variable of the system,
// which need no handle, rather than std::mutex, for which winpthread opens an event the first
// time two threads contend.
class job_thread {
public:
    explicit job_thread(void (*setup)() = nullptr);
    job_thread(const job_thread&) = delete;
    job_thread& operator=(const job_thread&) = delete;
    // post queues job and returns at once.
    void post(std::function<void()> job);

private:
    void (*setup_)();
    SRWLOCK lock_ = SRWLOCK_INIT;
    CONDITION_VARIABLE cv_ = CONDITION_VARIABLE_INIT;
    std::deque<std::function<void()>> jobs_;
};

} // namespace gipc_win_test

// WIN_TEST(name [* decorators]): a doctest test case under the handle-leak fixture.
#define WIN_TEST(...) TEST_CASE_FIXTURE(gipc_win_test::handle_leak_check, __VA_ARGS__)
