// SPDX-License-Identifier: MIT
// gipc under the program's Boost.Fiber scheduling algorithms: gipc keeps shared_work,
// work_stealing and the like in place, every call blocks only its fiber, and fibers keep
// migrating; on threads of the default round_robin gipc installs its own algorithm.
#include "test_support.hpp"

#include <gipc/gipc.hpp>

#include <boost/fiber/algo/round_robin.hpp>
#include <boost/fiber/algo/shared_work.hpp>
#include <boost/fiber/algo/work_stealing.hpp>
#include <boost/fiber/all.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

using namespace std::chrono_literals;
using gipc_test::seconds_since;
using clock_type = std::chrono::steady_clock;

namespace {

// thread_id identifies the calling thread. Not thread_id(): glibc declares
// pthread_self() const, so a compiler may reuse one call's result after a fiber switch, which
// on these algorithms may have moved the fiber to another thread.
pid_t thread_id() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

double thread_cpu_seconds()
{
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

int g_failures = 0;
std::mutex g_report_mtx;

void expect(bool ok, const char* what)
{
    if (!ok) {
        std::lock_guard lk(g_report_mtx);
        std::fprintf(stderr, "FAILED: %s\n", what);
        ++g_failures;
    }
}

// run_pool runs body on the main fiber of the first of n threads that all run the algorithm
// install() installs; the other threads' main fibers wake every millisecond until body is done
// (so that idle threads look at the shared queue or steal, as these algorithms' users do).
template <class Install, class Body>
void run_pool(unsigned n, Install install, Body body)
{
    std::barrier ready(n);
    std::atomic<bool> done{false};
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < n; ++i) {
        threads.emplace_back([&, i] {
            install();
            ready.arrive_and_wait(); // work_stealing steals from every thread: all must exist
            if (i == 0) {
                body();
                done = true;
            } else {
                while (!done)
                    boost::this_fiber::sleep_for(1ms);
            }
        });
    }
    for (auto& t : threads)
        t.join();
}

// Counts of what the fibers of a mixed workload did.
struct tally {
    std::atomic<int> round_trips{0};
    std::atomic<int> echoes{0};
    std::atomic<int> joins{0};
    std::atomic<int> sleeps{0};
    std::atomic<int> moved{0}; // blocking gipc calls after which the fiber ran on another thread
    std::mutex mtx;
    std::set<pid_t> ran_on; // where the workload's fibers started or resumed after gipc calls
};

void note_start(tally& t)
{
    std::lock_guard lk(t.mtx);
    t.ran_on.insert(thread_id());
}

// note_resume counts a resumption on another thread than before, and where it was.
void note_resume(tally& t, pid_t before)
{
    const pid_t now = thread_id();
    if (now != before)
        ++t.moved;
    std::lock_guard lk(t.mtx);
    t.ran_on.insert(now);
}

// mixed_workload: hundreds of fibers doing pipe round trips, socket echoes, child joins and
// sleeps, all spawned after the first gipc call of the thread.
void mixed_workload(tally& t, bool fork_children, bool shared_queue)
{
    constexpr int pipes = 64, rounds = 20, sockets = 16, sleepers = 32, children = 6;
    std::vector<boost::fibers::fiber> fibers;
    std::vector<std::pair<gipc::duplex, gipc::duplex>> ducts;
    for (int i = 0; i < pipes; ++i)
        ducts.push_back(gipc::duplex_pipe());
    for (int i = 0; i < pipes; ++i) {
        fibers.emplace_back([&t, &d = ducts[std::size_t(i)].second] {
            note_start(t);
            for (int k = 0; k < rounds; ++k)
                d.put(d.get<int>(20s) + 1);
        });
        fibers.emplace_back([&t, &d = ducts[std::size_t(i)].first, i] {
            note_start(t);
            for (int k = 0; k < rounds; ++k) {
                d.put(i + k);
                const auto before = thread_id();
                const int r = d.get<int>(20s);
                note_resume(t, before);
                expect(r == i + k + 1, "a pipe round trip returns the reply");
                ++t.round_trips;
            }
        });
    }
    std::vector<std::pair<gipc::net::stream, gipc::net::stream>> links;
    for (int i = 0; i < sockets; ++i)
        links.push_back(gipc::net::stream::pair());
    for (int i = 0; i < sockets; ++i) {
        fibers.emplace_back([&t, &s = links[std::size_t(i)].second] {
            note_start(t);
            for (int k = 0; k < rounds; ++k)
                s.write_all(s.read_line(20s)); // the line with its newline
        });
        fibers.emplace_back([&t, &s = links[std::size_t(i)].first, i] {
            note_start(t);
            for (int k = 0; k < rounds; ++k) {
                const std::string line = std::to_string(i * 1000 + k);
                s.write_all(line + "\n");
                const auto before = thread_id();
                const std::string back = s.read_line(20s);
                note_resume(t, before);
                expect(back == line + "\n", "a socket echo returns the line");
                ++t.echoes;
            }
        });
    }
    for (int i = 0; fork_children && i < children; ++i) {
        fibers.emplace_back([&t, i] {
            note_start(t);
            auto p = gipc::start_process([i] { return 10 + i; });
            const auto before = thread_id();
            expect(p.join(20s), "join returns");
            note_resume(t, before);
            expect(p.exitcode() == 10 + i, "the child's exit code");
            ++t.joins;
        });
    }
    for (int i = 0; i < sleepers; ++i) {
        fibers.emplace_back([&t] {
            note_start(t);
            for (int k = 0; k < 10; ++k)
                boost::this_fiber::sleep_for(1ms);
            ++t.sleeps;
        });
    }
    // Under shared_work, fibers that are mostly ready keep the shared queue busy, so that which
    // thread runs a fiber woken from a gipc wait is up to the queue's order, not simply the
    // thread the wake-up reached first. They sleep now and then: shared_work runs a thread's
    // dispatcher and main fiber only when the shared queue is empty. (work_stealing steals only
    // for threads with nothing of their own to run: there they would keep fibers home.)
    std::atomic<bool> stop{false};
    std::vector<boost::fibers::fiber> yielders;
    for (int i = 0; shared_queue && i < 4; ++i)
        yielders.emplace_back([&stop] {
            for (unsigned k = 1; !stop; ++k) {
                boost::this_fiber::yield();
                if (k % 4 == 0)
                    boost::this_fiber::sleep_for(50us);
            }
        });
    for (auto& f : fibers)
        f.join();
    stop = true;
    for (auto& f : yielders)
        f.join();
}

int run_mixed(const std::string& algo, unsigned n)
{
    // Under ASan a fork while other threads allocate can hang the child (test_support.hpp).
    const bool fork_children = !gipc_test::fork_with_busy_threads_deadlocks;
    tally t;
    int rounds = 0;
    auto body = [&] {
        try {
            // Whether a woken fiber resumes elsewhere is the algorithm's choice, made anew at
            // every wake-up; on 2 threads a round can go by with none. Up to 10 rounds (each
            // under a second) until one has: a build that pins fibers never gets there.
            do {
                t.round_trips = t.echoes = t.joins = t.sleeps = 0;
                mixed_workload(t, fork_children, algo == "shared_work");
            } while (++rounds < 10 && t.moved == 0);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "workload: %s\n", e.what());
            ++g_failures;
        }
    };
    // The algorithms' busy mode (suspend false): an idle thread keeps taking from the shared
    // queue or stealing, so that a fiber woken on one thread is often run by another. (In
    // their sleeping mode the thread a wake-up goes to nearly always runs the fiber itself;
    // the other tests use that mode.)
    if (algo == "shared_work")
        run_pool(n, [] { boost::fibers::use_scheduling_algorithm<boost::fibers::algo::shared_work>(false); }, body);
    else
        run_pool(n, [n] { boost::fibers::use_scheduling_algorithm<boost::fibers::algo::work_stealing>(n, false); },
                 body);
    std::fprintf(stderr, "%s on %u threads, %d round(s): %d round trips, %d echoes, %d joins, %d sleepers, %d resumed elsewhere, "
                 "fibers ran on %zu threads\n",
                 algo.c_str(), n, rounds, t.round_trips.load(), t.echoes.load(), t.joins.load(), t.sleeps.load(),
                 t.moved.load(), t.ran_on.size());
    expect(t.round_trips == 64 * 20, "every pipe round trip completes");
    expect(t.echoes == 16 * 20, "every socket echo completes");
    expect(t.joins == (fork_children ? 6 : 0), "every child is joined");
    expect(t.sleeps == 32, "every sleeper wakes");
    expect(t.moved > 0, "fibers resume on other threads after blocking gipc calls");
    expect(t.ran_on.size() >= 2, "fibers spawned after the first gipc call spread over the threads");
    return g_failures == 0 ? 0 : 1;
}

} // namespace

GIPC_TEST_CHILD("algorithms_mixed")
{
    if (args.size() != 2)
        return 2;
    return run_mixed(args[0], unsigned(std::stoul(args[1])));
}

TEST_SUITE("algorithms") {

GIPC_TEST("hundreds of fibers on shared_work and work_stealing pools do pipe round trips, socket echoes, joins and sleeps, and migrate across gipc calls")
{
    for (const char* algo : {"shared_work", "work_stealing"}) {
        for (const char* n : {"2", "4"}) {
            // A helper process each: work_stealing sizes its thread table once per process.
            const auto result = gipc_test::run_helper("algorithms_mixed", {algo, n}, 60s);
            const int status = result.status;
            const std::string& output = result.output;
            INFO(algo << " on " << n << " threads:\n" << output);
            CHECK(status == 0);
            MESSAGE(output);
        }
    }
}

GIPC_TEST("on a thread of another algorithm use_reactor throws and gipc keeps the algorithm; calls there still work")
{
    bool threw = false, kept = false, worked = false;
    double cpu = 1, wall = 0;
    std::thread t([&] {
        boost::fibers::use_scheduling_algorithm<boost::fibers::algo::shared_work>(true);
        auto [r, w] = gipc::pipe(); // the first gipc call of the thread
        try {
            gipc::use_reactor();
        } catch (const gipc::error&) {
            threw = true;
        }
        // Still shared_work: a fiber made now goes to the shared queue and a second thread
        // of the pool runs it.
        std::atomic<pid_t> ran_on{0};
        std::thread other([&] {
            boost::fibers::use_scheduling_algorithm<boost::fibers::algo::shared_work>(true);
            for (int i = 0; i < 5000 && ran_on == 0; ++i)
                boost::this_fiber::sleep_for(1ms);
        });
        const auto here = thread_id();
        boost::fibers::fiber f([&] { ran_on = thread_id(); });
        // This thread's main fiber blocks the thread (not a fiber wait) until the other ran f.
        for (int i = 0; i < 5000 && ran_on == 0; ++i)
            std::this_thread::sleep_for(1ms);
        kept = ran_on.load() != 0 && ran_on.load() != here;
        f.join();
        other.join();
        w.put(42);
        worked = r.get<int>(5s) == 42;
        // An idle wait there sleeps in the kernel.
        const double cpu0 = thread_cpu_seconds();
        const auto start = clock_type::now();
        try {
            (void)r.get<int>(300ms);
        } catch (const gipc::timeout_error&) {
        }
        wall = seconds_since(start);
        cpu = thread_cpu_seconds() - cpu0;
    });
    t.join();
    CHECK(threw);
    CHECK(kept);
    CHECK(worked);
    CHECK(wall >= 0.29);
    CHECK(cpu < 0.1);
}

GIPC_TEST("on a thread of another algorithm put() reaches a reader on another thread without the writer suspending")
{
    auto [r, w] = gipc::pipe();
    std::atomic<bool> got{false};
    bool writer_saw = false;
    int value = 0;
    std::thread reader([&, &r = r] {
        try {
            value = r.get<int>(5s);
        } catch (const std::exception&) {
        }
        got = true;
    });
    std::thread writer([&, &w = w] {
        boost::fibers::use_scheduling_algorithm<boost::fibers::algo::shared_work>(true);
        boost::fibers::fiber f([&] {
            w.put(7);
            // Spin without suspending (bounded): only a put() that wrote at once lets the
            // reader see the frame meanwhile.
            const auto start = clock_type::now();
            while (!got && clock_type::now() - start < 3s) {
            }
            writer_saw = got;
        });
        f.join();
    });
    writer.join();
    reader.join();
    CHECK(writer_saw);
    CHECK(value == 7);
}

GIPC_TEST("on a thread running round_robin, installed explicitly, gipc installs its algorithm and an idle wait sleeps in the kernel")
{
    bool installed = false;
    double cpu = 1, wall = 0;
    std::thread t([&] {
        boost::fibers::use_scheduling_algorithm<boost::fibers::algo::round_robin>();
        auto [r, w] = gipc::pipe();
        try {
            gipc::use_reactor(); // gipc's algorithm is there: no error
            installed = true;
        } catch (const gipc::error&) {
        }
        const double cpu0 = thread_cpu_seconds();
        const auto start = clock_type::now();
        try {
            (void)r.get<int>(300ms);
        } catch (const gipc::timeout_error&) {
        }
        wall = seconds_since(start);
        cpu = thread_cpu_seconds() - cpu0;
    });
    t.join();
    CHECK(installed);
    CHECK(wall >= 0.29);
    CHECK(cpu < 0.1);
}

} // TEST_SUITE
