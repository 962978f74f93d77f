// SPDX-License-Identifier: MIT
// Boost.Fiber as cross-built by scripts/windows.sh (Boost.Context with Windows fibers): fibers
// switch, sleep and join, and C++ exceptions thrown on a fiber's stack are caught there and
// travel through futures.
#include "win_support.hpp"

#include <boost/fiber/all.hpp>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

int deep_throw(int depth)
{
    if (depth == 0)
        throw std::runtime_error("from deep inside a fiber");
    char pad[256];
    pad[0] = static_cast<char>(depth);
    return deep_throw(depth - 1) + pad[0];
}

// A thread of the whole process that runs the jobs given to it (never destroyed: it runs until
// the process ends). Boost.Fiber gives every thread
// that touches one of its primitives a scheduler, and a thread that ends leaves it behind under
// MinGW-w64 (README.md, "Windows"): the cross-thread test uses this long-lived thread, whose
// scheduler, made during the warm-up, belongs to every test's baseline.
struct worker {
    static gipc_win_test::job_thread& get()
    {
        static auto* w = new gipc_win_test::job_thread;
        return *w;
    }
};

// The scheduler of the main thread and of the worker, and what they open once and keep (the
// semaphores of the condition variable a scheduler sleeps on, the event the system makes for a
// mutex the first time two threads contend for it).
const bool warmed_up = gipc_win_test::register_warm_up([] {
    boost::fibers::buffered_channel<int> ping(2), pong(2);
    worker::get().post([&] {
        int v = 0;
        while (ping.pop(v) == boost::fibers::channel_op_status::success)
            pong.push(v);
        pong.close();
    });
    boost::fibers::fiber f([&] {
        for (int i = 0; i < 300; ++i) {
            int v = 0;
            ping.push(i);
            pong.pop(v);
        }
        ping.close();
        int v = 0;
        while (pong.pop(v) == boost::fibers::channel_op_status::success) {
        }
        boost::this_fiber::sleep_for(1ms);
    });
    f.join();
});

} // namespace

WIN_TEST("an exception thrown on a fiber stack is caught on that stack")
{
    std::string caught;
    boost::fibers::fiber f([&] {
        try {
            deep_throw(50);
        } catch (const std::runtime_error& e) {
            caught = e.what();
        }
    });
    f.join();
    CHECK(caught == "from deep inside a fiber");
}

WIN_TEST("an exception leaving a fiber's function reaches the future's reader")
{
    boost::fibers::future<int> fut = boost::fibers::async([] {
        boost::this_fiber::yield();
        return deep_throw(10);
    });
    CHECK_THROWS_WITH_AS(fut.get(), "from deep inside a fiber", std::runtime_error);
}

WIN_TEST("fibers interleave at yields and sleep without blocking each other")
{
    std::vector<int> order;
    boost::fibers::fiber a([&] {
        for (int i = 0; i < 3; ++i) {
            order.push_back(i * 2);
            boost::this_fiber::yield();
        }
    });
    boost::fibers::fiber b([&] {
        for (int i = 0; i < 3; ++i) {
            order.push_back(i * 2 + 1);
            boost::this_fiber::yield();
        }
    });
    a.join();
    b.join();
    CHECK(order == std::vector<int>{0, 1, 2, 3, 4, 5});

    auto start = std::chrono::steady_clock::now();
    boost::fibers::fiber s1([] { boost::this_fiber::sleep_for(100ms); });
    boost::fibers::fiber s2([] { boost::this_fiber::sleep_for(100ms); });
    s1.join();
    s2.join();
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    CHECK(ms >= 84.0);
    CHECK(ms < 2000.0); // the sleeps overlapped
}

WIN_TEST("a fiber waiting on a channel is woken by another thread")
{
    boost::fibers::buffered_channel<int> ch(4);
    boost::fibers::promise<void> done;
    boost::fibers::future<void> finished = done.get_future();
    worker::get().post([&] {
        std::this_thread::sleep_for(50ms);
        ch.push(41);
        ch.close();
        done.set_value();
    });
    int got = 0;
    boost::fibers::fiber consumer([&] {
        int v = 0;
        while (ch.pop(v) == boost::fibers::channel_op_status::success)
            got += v + 1;
    });
    consumer.join();
    finished.get();
    CHECK(got == 42);
}
