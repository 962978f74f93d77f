// SPDX-License-Identifier: MIT
// tests/support's fixture for the tests of tests/ that run on Windows too (test_pipe.cpp):
// gipc_test::leak_check fails a case that leaves a gipc handle open (the registry of open ends)
// or a handle of the process (win_support.hpp's handle_leak_check, with its grace period). The
// test main is win_support.cpp's, whose warm-up installs gipc's scheduler first, so that the
// thread's completion port belongs to every test's baseline.
#include "test_support.hpp"

#include "win_support.hpp"

#include <gipc/detail/test_support.hpp>
#include <gipc/pipe.hpp>
#include <gipc/runtime.hpp>

#include <boost/fiber/algo/round_robin.hpp>
#include <boost/fiber/operations.hpp>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>

namespace gipc_test {

struct os_leak_check {
    gipc_win_test::handle_leak_check handles;
};

leak_check::leak_check() : handles_(gipc::detail::open_handle_count()), threads_(0)
{
    os_ = std::make_unique<os_leak_check>();
}

leak_check::~leak_check()
{
    const std::size_t now = gipc::detail::open_handle_count();
    if (now > handles_)
        FAIL_CHECK((now - handles_) << " gipc handle(s) left open by the test (" << handles_ << " before, "
                                    << now << " after)");
    os_.reset(); // the process's handles, after their grace period
}

namespace {
// Unbuffered standard output: a case that hangs (under Meson's timeout) or crashes has its name
// and everything doctest said before it in the log.
const bool unbuffered_output = [] {
    std::setvbuf(stdout, nullptr, _IONBF, 0);
    return true;
}();
const bool reactor_warm_up = gipc_win_test::register_warm_up([] { gipc::use_reactor(); });
// The pipe tests run std::threads (as on Linux), and gipc runs threads of its own made with
// CreateThread that use thread_local objects (through Boost.Fiber): winpthread keeps handles of
// its own from the first thread of each kind, for the process's life.
struct thread_local_object {
    std::string text = "warm";
    ~thread_local_object() { text.clear(); }
};
const bool thread_warm_up = gipc_win_test::register_warm_up([] {
    auto use_thread_local = [] {
        thread_local thread_local_object o;
        o.text += "-up";
    };
    std::thread(use_thread_local).join();
    gipc_win_test::native_thread(use_thread_local).join();
});
// A thread that starts while another runs its thread-local destructors at exit waits for a lock
// of the C runtime's (winpthread's), which then makes an event for it and keeps it for the
// process's life. gipc's destructors at a thread's exit can take a while (a reactor that hands
// its writes in flight on), so the cases whose threads end while others start meet it: make
// it happen here, once, with a destructor that waits until a second thread has started.
struct slow_thread_exit {
    HANDLE in_destructor = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
    ~slow_thread_exit()
    {
        ::SetEvent(in_destructor);
        ::Sleep(200); // long enough for the second thread to reach the lock
    }
};
const bool thread_exit_warm_up = gipc_win_test::register_warm_up([] {
    std::atomic<HANDLE> signal{nullptr};
    std::thread ending([&] {
        thread_local slow_thread_exit o;
        signal.store(o.in_destructor);
    });
    for (int i = 0; i < 10000 && !signal.load(); ++i)
        ::Sleep(1);
    if (signal.load())
        ::WaitForSingleObject(signal.load(), 10000);
    std::thread starting([] {
        thread_local thread_local_object o;
        o.text += "-up";
    });
    ending.join();
    starting.join();
    if (signal.load())
        ::CloseHandle(signal.load());
});
// gipc's thread-pool waits (an operation started on a handle of another thread's port, a queued
// write there) run their callback in the wait thread (WT_EXECUTEINWAITTHREAD), which Wine
// keeps apart from the warm-up's wait of win_support.cpp: a wait of that kind that never ends
// keeps such a thread, and its event, in every test's baseline as well.
// A case runs gipc's calls on a thread of the program's own scheduling algorithm, where they
// wait through the relay: its first thread starts here, before any case.
struct program_algorithm : boost::fibers::algo::round_robin {};
const bool relay_warm_up = gipc_win_test::register_warm_up([] {
    auto ends = gipc::pipe();
    gipc_win_test::native_thread([&] {
        boost::fibers::use_scheduling_algorithm<program_algorithm>();
        try {
            (void)ends.first.get<int>(std::chrono::milliseconds(0));
        } catch (const gipc::timeout_error&) {
        }
    }).join();
});
const bool pool_wait_warm_up = gipc_win_test::register_warm_up([] {
    static HANDLE never = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
    static HANDLE forever_wait = nullptr;
    if (never && !forever_wait)
        ::RegisterWaitForSingleObject(&forever_wait, never, [](void*, BOOLEAN) {}, nullptr, INFINITE,
                                      WT_EXECUTEONLYONCE | WT_EXECUTEINWAITTHREAD);
});
} // namespace

} // namespace gipc_test
