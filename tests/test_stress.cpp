// SPDX-License-Identifier: MIT
// Stress tests (the "Hardening" issue): children killed mid-message, readers dying under a
// writer, hundreds of concurrent children, parent death seen from a grandparent, forking while
// other threads do I/O, and ten thousand fibers sharing pipes. Each case is bounded in time; a
// watchdog turns a deadlock into a failure (doctest reports the abort in the running case)
// instead of a hang.
#include "test_support.hpp"

#include <gipc/gipc.hpp>

#include <boost/fiber/all.hpp>

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

using namespace std::chrono_literals;
using gipc_test::seconds_since;
using clock_type = std::chrono::steady_clock;

// A pair whose ends a lambda uses is held in a named variable and its ends are bound to
// references, not unpacked with `auto [r, w]`: clang before 16 refuses lambdas that capture
// structured bindings (scripts/clang.sh builds the tests with clang).

namespace {

// watchdog aborts the process when it is not destroyed within the given time: a deadlock then
// fails the running test case (doctest reports the SIGABRT) instead of hanging the suite.
// The constructor returns once the watchdog's thread is up and waiting, so that the thread's
// start (which allocates) never overlaps a fork() of the test: under ASan, whose allocator
// takes no locks across fork(), a child forked at that moment would inherit a locked
// allocator.
class watchdog {
public:
    watchdog(std::string what, std::chrono::seconds limit) : what_(std::move(what))
    {
        std::unique_lock lk(mtx_);
        thread_ = std::thread([this, limit] {
            std::unique_lock lk(mtx_);
            running_ = true;
            cv_.notify_all();
            if (!cv_.wait_for(lk, limit, [this] { return done_; })) {
                std::fprintf(stderr, "watchdog: %s did not finish within %lld s: deadlock?\n", what_.c_str(),
                             static_cast<long long>(limit.count()));
                std::abort();
            }
        });
        cv_.wait(lk, [this] { return running_; });
    }
    ~watchdog()
    {
        {
            std::lock_guard lk(mtx_);
            done_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }
    watchdog(const watchdog&) = delete;
    watchdog& operator=(const watchdog&) = delete;

private:
    std::string what_;
    std::mutex mtx_;
    std::condition_variable cv_;
    bool running_ = false;
    bool done_ = false;
    std::thread thread_;
};

// bytes_in_pipe is what FIONREAD reports for either end of a pipe.
int bytes_in_pipe(int fd)
{
    int n = -1;
    if (::ioctl(fd, FIONREAD, &n) != 0)
        return -1;
    return n;
}

// proc_state is the state letter of /proc/<pid>/stat (R, S, T, Z, ...), or 0 when there is
// no such process.
char proc_state(pid_t pid, pid_t* ppid = nullptr)
{
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(f, line))
        return 0;
    auto close = line.rfind(')');
    if (close == std::string::npos || line.size() < close + 3)
        return 0;
    if (ppid) {
        std::istringstream rest(line.substr(close + 4));
        rest >> *ppid;
    }
    return line[close + 2];
}

// thread_wait_until polls pred, blocking the whole thread between polls (no fiber of this
// thread runs meanwhile). False when it is still unmet at the deadline.
template <class Pred>
bool thread_wait_until(Pred pred, std::chrono::milliseconds limit)
{
    auto start = clock_type::now();
    while (!pred()) {
        if (clock_type::now() - start > limit)
            return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

// fiber_wait_until polls pred, letting the other fibers of this thread run between polls.
template <class Pred>
bool fiber_wait_until(Pred pred, std::chrono::milliseconds limit)
{
    auto start = clock_type::now();
    while (!pred()) {
        if (clock_type::now() - start > limit)
            return false;
        boost::this_fiber::sleep_for(1ms);
    }
    return true;
}

// round_trip_with_fresh_child: a new pipe pair and a new child that echoes, to show that the
// process carries on normally.
bool round_trip_with_fresh_child()
{
    auto [mine, theirs] = gipc::duplex_pipe();
    auto p = gipc::start_process([](gipc::duplex d) { d.put(d.get<std::string>() + " back"); }, std::move(theirs));
    mine.put(std::string("there and"));
    const bool ok = mine.get<std::string>(10s) == "there and back";
    return p.join(10s) && ok && p.exitcode() == 0;
}

std::uint64_t fnv1a(std::string_view s)
{
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

std::uint64_t mix(std::uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

} // namespace

TEST_SUITE("stress") {

// ---- 1. a child killed in the middle of a large message ------------------------------------------

GIPC_TEST("a child SIGKILLed in the middle of a 50 MB message: get throws eof_error (cut short), the parent carries on")
{
    constexpr std::size_t big = std::size_t{50} << 20;
    watchdog dog("the killed-writer test", 60s);
    // Round 0 reads only what was in the pipe when the child was frozen; rounds 1 and 2 let
    // the child refill the pipe once and twice more. Round 1 reads a msgpack value, round 2
    // uses a timed get_bytes.
    for (int round = 0; round < 3; ++round) {
        CAPTURE(round);
        const bool as_value = round == 1;
        auto ends = gipc::pipe();
        gipc::reader& r = ends.first;
        gipc::writer& w = ends.second;
        auto [started_r, started_w] = gipc::pipe();
        auto p = gipc::start_process(
            [as_value](gipc::writer w, gipc::writer started) {
                std::string payload(big, 'x');
                boost::fibers::fiber put([&] {
                    if (as_value)
                        w.put(payload);
                    else
                        w.put_bytes(payload);
                });
                // The put fiber runs now, fills the pipe (nobody reads it yet) and parks in
                // the middle of its message; only then does this fiber run again.
                boost::this_fiber::yield();
                started.put(1);
                started.flush();
                put.join(); // never returns: the parent kills this process
                return 3;
            },
            std::move(w), std::move(started_w));
        const pid_t pid = p.pid();
        REQUIRE(started_r.get<int>(10s) == 1);
        const int fd = r.native_handle();
        const int full = bytes_in_pipe(fd);
        REQUIRE(full > 0);
        REQUIRE(std::size_t(full) < big);

        // Freeze the child so that the reader can take no more than what is in the pipe.
        auto freeze = [&] {
            ::kill(pid, SIGSTOP);
            return thread_wait_until([&] { return proc_state(pid) == 'T'; }, 5000ms);
        };
        bool staged = freeze();

        std::optional<std::string> got;
        std::string error;
        boost::fibers::fiber reader([&] {
            try {
                if (as_value)
                    got = r.get<std::string>();
                else if (round == 2)
                    got = r.get_bytes(30s);
                else
                    got = r.get_bytes();
            } catch (const gipc::eof_error& e) {
                error = e.what();
            } catch (const std::exception& e) {
                error = std::string("unexpected exception: ") + e.what();
            }
        });
        // The reader takes the header and what the pipe holds, then parks mid-message.
        staged = staged && fiber_wait_until([&] { return bytes_in_pipe(fd) == 0; }, 5000ms);
        for (int k = 0; staged && k < round; ++k) {
            ::kill(pid, SIGCONT);
            // Block the thread (so the reader cannot run) until the child has refilled the pipe.
            staged = thread_wait_until([&] { return bytes_in_pipe(fd) >= full; }, 5000ms) && freeze() &&
                     fiber_wait_until([&] { return bytes_in_pipe(fd) == 0; }, 5000ms);
        }
        CHECK(staged);
        CHECK(error.empty()); // still waiting for the rest of the message
        CHECK_FALSE(got);

        p.kill();
        const bool joined = p.join(10s);
        reader.join(); // the kill closed the last write end: the reader sees EOF
        REQUIRE(joined);
        REQUIRE(staged);
        CHECK(p.exitcode() == -SIGKILL);
        CHECK_FALSE(got);
        MESSAGE("round " << round << ": " << error);
        CHECK(error.find("cut short") != std::string::npos);
        // "(<arrived> of <frame size> bytes arrived)": the header and part of the payload came.
        const std::size_t frame = 4 + big + (as_value ? 5 : 0); // msgpack str32: 5 header bytes
        std::size_t arrived = 0, announced = 0;
        const auto open = error.rfind('(');
        REQUIRE(open != std::string::npos);
        REQUIRE(std::sscanf(error.c_str() + open, "(%zu of %zu bytes arrived)", &arrived, &announced) == 2);
        CHECK(announced == frame);
        CHECK(arrived >= std::size_t(full) * std::size_t(round + 1));
        CHECK(arrived < frame);

        // The handle keeps saying so, and closes cleanly.
        CHECK_THROWS_AS((void)r.get_bytes(), gipc::eof_error);
        r.close();
        // The parent carries on.
        CHECK(round_trip_with_fresh_child());
    }
    CHECK(gipc_test::zombie_children().empty());
}

// ---- 2. the reading child dies while the parent writes --------------------------------------------

namespace {

struct writer_outcome {
    std::string what;         // the first failure of put/flush
    bool broken = false;      // it was std::errc::broken_pipe
    bool broken_again = false; // and the next put/flush failed the same way
    bool closed_ok = false;   // close() did not throw
    bool other_pipe_ok = false; // a fresh pipe on the same thread works afterwards
    long sent = 0;
    std::optional<int> exitcode;
};

// put_until_broken calls put_one until it throws, then checks what it threw.
template <class Put>
void put_until_broken(writer_outcome& out, gipc::writer& w, Put put_one, bool* in_put = nullptr)
{
    bool unused = false;
    bool& busy = in_put ? *in_put : unused;
    try {
        for (;;) {
            busy = true;
            put_one();
            busy = false;
            ++out.sent;
        }
    } catch (const std::system_error& e) {
        out.what = e.what();
        out.broken = e.code() == std::errc::broken_pipe;
    } catch (const std::exception& e) {
        out.what = std::string("unexpected exception: ") + e.what();
    }
    try {
        w.put(1);
        w.flush();
    } catch (const std::system_error& e) {
        out.broken_again = e.code() == std::errc::broken_pipe;
    } catch (...) {
    }
}

void finish(writer_outcome& out, gipc::writer& w, gipc::process& p)
{
    try {
        w.close();
        out.closed_ok = true;
    } catch (...) {
    }
    if (p.join(10s))
        out.exitcode = p.exitcode();
    else
        p.kill(), p.join();
    auto [r2, w2] = gipc::pipe();
    w2.put(std::string("still fine"));
    out.other_pipe_ok = r2.get<std::string>(5s) == "still fine";
}

// (a) The child reads 100 small messages and returns; the parent keeps writing.
writer_outcome reader_returns()
{
    writer_outcome out;
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    auto p = gipc::start_process(
        [](gipc::reader r) {
            for (int i = 0; i < 100; ++i)
                if (r.get<int>() != i)
                    return 2;
            return 0;
        },
        std::move(r));
    int i = 0;
    put_until_broken(out, w, [&] {
        w.put(i);
        if (++i % 10 == 0)
            w.flush();
        boost::this_fiber::yield();
    });
    finish(out, w, p);
    return out;
}

// kill_when_blocked SIGKILLs p once the writer fiber of this thread is blocked inside a put
// (in_put is set around each put; a writer that only suspends inside put is then parked
// there, the pipe full) and some of its bytes are in the pipe.
void kill_when_blocked(gipc::process& p, int fd, const bool& in_put)
{
    fiber_wait_until([&] { return in_put && bytes_in_pipe(fd) > 0; }, 10000ms);
    p.kill();
}

// (b) The child never reads; the parent is blocked in an 8 MB put_bytes when it is killed.
writer_outcome reader_killed_under_large_put()
{
    writer_outcome out;
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    auto p = gipc::start_process([](gipc::reader) { boost::this_fiber::sleep_for(30s); }, std::move(r));
    bool in_put = false;
    boost::fibers::fiber killer([&] { kill_when_blocked(p, w.native_handle(), in_put); });
    const std::string payload(8u << 20, 'b');
    put_until_broken(out, w, [&] { w.put_bytes(payload); }, &in_put);
    killer.join();
    finish(out, w, p);
    return out;
}

// (c) The child never reads; the parent queues small frames until put blocks, then the
// child is killed.
writer_outcome reader_killed_under_queued_puts()
{
    writer_outcome out;
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    auto p = gipc::start_process([](gipc::reader) { boost::this_fiber::sleep_for(30s); }, std::move(r));
    bool in_put = false;
    boost::fibers::fiber killer([&] { kill_when_blocked(p, w.native_handle(), in_put); });
    const std::string small(1000, 'c');
    put_until_broken(out, w, [&] { w.put(small); }, &in_put);
    killer.join();
    finish(out, w, p);
    return out;
}

// (d) The child reads as fast as it can and is killed mid-stream; the parent writes frames
// of mixed sizes.
writer_outcome reader_killed_while_reading()
{
    writer_outcome out;
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    auto p = gipc::start_process(
        [](gipc::reader r) {
            for (;;)
                (void)r.get_bytes();
        },
        std::move(r));
    boost::fibers::fiber killer([&] {
        boost::this_fiber::sleep_for(50ms);
        p.kill();
    });
    const std::string large(20000, 'd');
    int i = 0;
    put_until_broken(out, w, [&] {
        if (++i % 7 == 0)
            w.put_bytes(large);
        else
            w.put(std::vector<int>(std::size_t(i % 50), i));
        if (i % 3 == 0)
            boost::this_fiber::yield();
    });
    killer.join();
    finish(out, w, p);
    return out;
}

} // namespace

GIPC_TEST("the reading child dies while the parent writes: put/flush throw broken_pipe and nothing else breaks"
          * doctest::skip(gipc_test::fork_with_busy_threads_deadlocks))
{
    watchdog dog("the broken-pipe test", 60s);
    // A long-lived echo child keeps answering while the four scenarios run on four threads.
    auto [echo, echo_theirs] = gipc::duplex_pipe();
    auto echo_child = gipc::start_process(
        [](gipc::duplex d) {
            for (;;) {
                int v;
                try {
                    v = d.get<int>();
                } catch (const gipc::eof_error&) {
                    return 0;
                }
                d.put(v + 1);
            }
        },
        std::move(echo_theirs));

    writer_outcome (*scenarios[4])() = {reader_returns, reader_killed_under_large_put, reader_killed_under_queued_puts,
                                        reader_killed_while_reading};
    const char* names[4] = {"reader returns", "reader killed under a large put", "reader killed under queued puts",
                            "reader killed while reading"};
    int echoes = 0, echo_failures = 0;
    for (int round = 0; round < 5; ++round) {
        CAPTURE(round);
        writer_outcome outcomes[4];
        std::atomic<int> done{0};
        std::vector<std::thread> threads;
        for (int s = 0; s < 4; ++s)
            threads.emplace_back([&, s] {
                try {
                    outcomes[s] = scenarios[s]();
                } catch (const std::exception& e) {
                    outcomes[s].what = std::string("scenario failed: ") + e.what();
                }
                ++done;
            });
        while (done < 4) {
            try {
                echo.put(echoes);
                if (echo.get<int>(5s) == echoes + 1)
                    ++echoes;
                else
                    ++echo_failures;
            } catch (const std::exception&) {
                ++echo_failures;
            }
            boost::this_fiber::sleep_for(1ms);
        }
        for (auto& t : threads)
            t.join();

        for (int s = 0; s < 4; ++s) {
            const writer_outcome& o = outcomes[s];
            INFO(names[s] << ": " << o.what << " (" << o.sent << " sent)");
            CHECK(o.broken);
            CHECK(o.broken_again);
            CHECK(o.closed_ok);
            CHECK(o.other_pipe_ok);
            CHECK(o.exitcode == (s == 0 ? 0 : -SIGKILL));
        }
        CHECK(outcomes[0].sent >= 100);
    }

    // SIGPIPE is still ignored: no write above could have killed the process.
    struct sigaction current{};
    REQUIRE(::sigaction(SIGPIPE, nullptr, &current) == 0);
    CHECK((current.sa_handler == SIG_IGN));
    CHECK(echoes > 0);
    CHECK(echo_failures == 0);
    echo.put(1000);
    CHECK(echo.get<int>(5s) == 1001);
    echo.close();
    REQUIRE(echo_child.join(10s));
    CHECK(echo_child.exitcode() == 0);
}

// ---- 3. hundreds of concurrent children ---------------------------------------------------------

GIPC_TEST("200 children started and joined concurrently from 200 fibers on 2 threads, 3 rounds, back to baseline"
          * doctest::skip(gipc_test::fork_with_busy_threads_deadlocks))
{
    gipc_test::raise_fd_limit();
    watchdog dog("the 200-children test", 120s);
    constexpr int threads_n = 2, fibers_per_thread = 100, rounds = 3;
    const std::set<int> baseline = gipc_test::open_fds();
    for (int round = 0; round < rounds; ++round) {
        CAPTURE(round);
        const auto start = clock_type::now();
        std::atomic<int> ok{0};
        std::mutex errors_mtx;
        std::vector<std::string> errors;
        std::vector<std::thread> threads;
        for (int t = 0; t < threads_n; ++t)
            threads.emplace_back([&, t] {
                std::vector<boost::fibers::fiber> fibers;
                for (int f = 0; f < fibers_per_thread; ++f)
                    fibers.emplace_back([&, t, f] {
                        const int id = round * 1000 + t * fibers_per_thread + f;
                        try {
                            auto [mine, theirs] = gipc::duplex_pipe();
                            auto p = gipc::start_process(
                                [](gipc::duplex d) {
                                    auto v = d.get<std::vector<int>>();
                                    d.put(std::accumulate(v.begin(), v.end(), 0L));
                                    d.put(std::string(std::size_t(v[0] % 97), 'k'));
                                    return v[0] % 50;
                                },
                                std::move(theirs));
                            mine.put(std::vector<int>{id, id + 1, id + 2});
                            const long sum = mine.get<long>(30s);
                            const std::string tail = mine.get<std::string>(30s);
                            if (!p.join(30s)) {
                                p.kill();
                                p.join();
                                throw std::runtime_error("child did not exit");
                            }
                            if (sum != 3L * id + 3 || tail != std::string(std::size_t(id % 97), 'k') ||
                                p.exitcode() != id % 50)
                                throw std::runtime_error("wrong exchange or exit code");
                            ++ok;
                        } catch (const std::exception& e) {
                            std::lock_guard lk(errors_mtx);
                            errors.push_back("child " + std::to_string(id) + ": " + e.what());
                        }
                    });
                for (auto& f : fibers)
                    f.join();
            });
        for (auto& t : threads)
            t.join();
        MESSAGE("round " << round << ": " << ok.load() << " children in " << seconds_since(start) << " s");
        for (const auto& e : errors)
            FAIL_CHECK(e);
        CHECK(ok == threads_n * fibers_per_thread);
        // Back to baseline: every pipe end, pidfd and thread reactor is closed, every child reaped.
        std::set<int> now;
        thread_wait_until([&] { return (now = gipc_test::open_fds()) == baseline; }, 2000ms);
        for (int fd : now)
            if (!baseline.count(fd))
                FAIL_CHECK("fd " << fd << " (" << gipc_test::describe_fd(fd) << ") still open after the round");
        CHECK(now.size() == baseline.size());
        CHECK(gipc_test::child_pids().empty());
        CHECK(gipc_test::zombie_children().empty());
    }
}

// ---- 4. a parent killed with SIGKILL takes its daemon children along --------------------------------

namespace {

// A daemon that reports its pid and then sleeps; it should die with its parent.
void report_and_sleep(gipc::writer w)
{
    w.put(int(::getpid()));
    w.close();
    boost::this_fiber::sleep_for(60s);
}

// A daemon that starts a daemon of its own and reports both pids.
void report_nested(gipc::writer w)
{
    auto [r, gw] = gipc::pipe();
    auto grandchild = gipc::start_process({.name = "nested daemon", .daemon = true}, report_and_sleep, std::move(gw));
    const int nested = r.get<int>(10s);
    w.put(std::vector<int>{int(::getpid()), nested});
    w.close();
    boost::this_fiber::sleep_for(60s);
}

// start_daemons starts, from the calling thread, a daemon; from a thread that ends right after,
// another one; and a daemon with a daemon child. Returns their pids once each has reported
// from its target (so each is past its bootstrap). The process objects are kept in procs.
std::vector<int> start_daemons(std::vector<gipc::process>& procs)
{
    std::vector<int> pids;
    {
        auto [r, w] = gipc::pipe();
        procs.push_back(gipc::start_process({.name = "daemon", .daemon = true}, report_and_sleep, std::move(w)));
        pids.push_back(r.get<int>(10s));
    }
    {
        // PR_SET_PDEATHSIG fires when the forking thread ends: this daemon must outlive it.
        auto ends = gipc::pipe();
        gipc::reader& r = ends.first;
        gipc::writer& w = ends.second;
        std::thread t([&] {
            procs.push_back(
                gipc::start_process({.name = "thread daemon", .daemon = true}, report_and_sleep, std::move(w)));
        });
        t.join();
        pids.push_back(r.get<int>(10s));
    }
    {
        auto [r, w] = gipc::pipe();
        procs.push_back(gipc::start_process({.name = "daemon parent", .daemon = true}, report_nested, std::move(w)));
        for (int pid : r.get<std::vector<int>>(10s))
            pids.push_back(pid);
    }
    return pids;
}

// subreaper makes this process the reaper of its orphaned descendants for the duration of a
// test, so that daemons orphaned by a killed child are reparented here, can be reaped here,
// and leave no zombie.
struct subreaper {
    subreaper() { REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0); }
    ~subreaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 0); }
};

// daemons_die checks that every pid is gone within the deadline, reaping those that were
// reparented to this process; whatever is still running afterwards is killed.
void check_daemons_die(const std::vector<int>& pids, double deadline_s)
{
    auto start = clock_type::now();
    std::vector<int> left = pids;
    while (!left.empty() && seconds_since(start) < deadline_s) {
        std::vector<int> still;
        for (int pid : left) {
            int status = 0;
            const pid_t w = ::waitpid(pid, &status, WNOHANG);
            if (w == pid)
                continue; // reparented here and reaped
            if (w < 0 && errno == ECHILD && proc_state(pid) == 0)
                continue; // gone and reaped elsewhere
            still.push_back(pid);
        }
        left = std::move(still);
        if (!left.empty())
            std::this_thread::sleep_for(5ms);
    }
    MESSAGE("daemons gone " << seconds_since(start) << " s after their parent was killed");
    for (int pid : left) {
        FAIL_CHECK("daemon " << pid << " (state " << std::string(1, proc_state(pid)) << ") outlived its killed parent");
        ::kill(pid, SIGKILL);
        int status;
        ::waitpid(pid, &status, 0);
    }
}

// kill_on_failure kills and reaps the helper when a REQUIRE leaves the test early, so that
// neither it nor (through it) its daemons outlive the test.
struct kill_on_failure {
    gipc::process& p;
    ~kill_on_failure()
    {
        if (p.is_alive()) {
            p.kill();
            p.join();
        }
    }
};

void check_running_before_kill(const std::vector<int>& pids, pid_t parent)
{
    REQUIRE(pids.size() == 4);
    for (std::size_t i = 0; i < pids.size(); ++i) {
        pid_t ppid = 0;
        const char state = proc_state(pids[i], &ppid);
        INFO("daemon " << i << " pid " << pids[i] << " state " << std::string(1, state));
        CHECK((state != 0 && state != 'Z'));
        CHECK(ppid == (i == 3 ? pid_t(pids[2]) : parent)); // the last one is the nested daemon
    }
}

} // namespace

GIPC_TEST_CHILD("stress_daemon_parent")
{
    // Exec'd: this is a fresh process whose main thread starts the daemons (PR_SET_PDEATHSIG
    // and the parent-death pipe both apply).
    std::vector<gipc::process> procs;
    std::vector<int> pids = start_daemons(procs);
    std::string line;
    for (int pid : pids)
        line += std::to_string(pid) + " ";
    line += "\n";
    if (::write(1, line.data(), line.size()) != ssize_t(line.size()))
        return 1;
    std::this_thread::sleep_for(60s); // killed by the test long before
    return 0;
}

GIPC_TEST("a parent killed with SIGKILL: its daemon children die too (parent forked by gipc)")
{
    watchdog dog("the daemon test", 60s);
    subreaper reaper;
    for (int round = 0; round < 3; ++round) {
        CAPTURE(round);
        auto [r, w] = gipc::pipe();
        auto helper = gipc::start_process(
            [](gipc::writer w) {
                // The target runs on a thread of its own, not the child's main thread: only the
                // parent-death pipe applies.
                std::vector<gipc::process> procs;
                w.put(start_daemons(procs));
                w.close();
                boost::this_fiber::sleep_for(60s);
            },
            std::move(w));
        kill_on_failure guard{helper};
        const auto pids = r.get<std::vector<int>>(20s);
        check_running_before_kill(pids, helper.pid());
        helper.kill();
        REQUIRE(helper.join(10s));
        CHECK(helper.exitcode() == -SIGKILL);
        check_daemons_die(pids, 5.0);
        CHECK(gipc_test::zombie_children().empty());
    }
}

GIPC_TEST("a parent killed with SIGKILL: its daemon children die too (parent exec'd, daemons from its main thread)")
{
    watchdog dog("the daemon test", 60s);
    subreaper reaper;
    for (int round = 0; round < 3; ++round) {
        CAPTURE(round);
        int out[2];
        REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
        const std::string exe = gipc_test::self_exe();
        auto helper = gipc::start_process(
            [&exe](int out_w) {
                ::dup2(out_w, 1); // the only descriptor that survives the exec
                ::execl(exe.c_str(), exe.c_str(), "--gipc-child", "stress_daemon_parent", static_cast<char*>(nullptr));
                return 127;
            },
            out[1]);
        kill_on_failure guard{helper};
        ::close(out[1]);
        std::string line;
        while (line.find('\n') == std::string::npos) {
            if (!gipc::wait_readable(out[0], 20s))
                break;
            char buf[256];
            const ssize_t n = ::read(out[0], buf, sizeof buf);
            if (n <= 0)
                break;
            line.append(buf, std::size_t(n));
        }
        ::close(out[0]);
        std::vector<int> pids;
        std::istringstream in(line);
        for (int pid; in >> pid;)
            pids.push_back(pid);
        INFO("helper said: " << line);
        check_running_before_kill(pids, helper.pid());
        helper.kill();
        REQUIRE(helper.join(10s));
        CHECK(helper.exitcode() == -SIGKILL);
        check_daemons_die(pids, 5.0);
        CHECK(gipc_test::zombie_children().empty());
    }
}

// ---- 5. start_process while other threads do I/O ------------------------------------------------

GIPC_TEST("start_process 100 times in a row while 3 other threads put and get on their own pipes"
          * doctest::skip(gipc_test::fork_with_busy_threads_deadlocks))
{
    watchdog dog("the fork-under-load test", 90s);
    std::atomic<bool> stop{false};
    std::atomic<long> busy_messages{0};
    std::atomic<int> busy_errors{0};
    std::mutex errors_mtx;
    std::vector<std::string> errors;
    auto busy_error = [&](const std::string& what) {
        ++busy_errors;
        std::lock_guard lk(errors_mtx);
        errors.push_back(what);
    };
    std::vector<std::thread> busy;
    for (int t = 0; t < 3; ++t)
        busy.emplace_back([&, t] {
            try {
                // A stream of small and large frames from two writer fibers to two reader
                // fibers, a ping-pong pair, and a fiber that keeps creating and closing pipes:
                // gipc's locks (fiber mutexes, queue locks, the handle and reactor
                // registries) are taken at random moments relative to the forks.
                auto ends = gipc::pipe();
                gipc::reader& r = ends.first;
                gipc::writer& w = ends.second;
                auto duplex_ends = gipc::duplex_pipe();
                gipc::duplex& a = duplex_ends.first;
                gipc::duplex& b = duplex_ends.second;
                // A fiber must not end with an exception (that terminates the process).
                auto guarded = [&](auto body) {
                    return [&, body] {
                        try {
                            body();
                        } catch (const std::exception& e) {
                            busy_error("busy thread " + std::to_string(t) + ": " + e.what());
                        }
                    };
                };
                std::vector<boost::fibers::fiber> fs;
                for (int k = 0; k < 2; ++k)
                    fs.emplace_back(guarded([&, k] {
                        const std::string large(20000 + 1000 * t + k, char('a' + t));
                        for (int i = 0; !stop; ++i) {
                            if (i % 50 == k)
                                w.put_bytes(large);
                            else
                                w.put(std::vector<int>(std::size_t(i % 64), i));
                            if (i % 16 == 0)
                                w.flush();
                            if (i % 4 == 0)
                                boost::this_fiber::yield();
                        }
                    }));
                std::vector<boost::fibers::fiber> readers;
                for (int k = 0; k < 2; ++k)
                    readers.emplace_back(guarded([&] {
                        for (;;) {
                            try {
                                (void)r.get_bytes();
                                ++busy_messages;
                            } catch (const gipc::eof_error&) {
                                return;
                            }
                        }
                    }));
                fs.emplace_back(guarded([&] {
                    for (int i = 0; !stop; ++i) {
                        a.put(i);
                        if (b.get<int>(10s) != i)
                            throw std::runtime_error("ping-pong lost a message");
                        b.put(std::string(std::size_t(i % 5000), 'p'));
                        if (a.get<std::string>(10s).size() != std::size_t(i % 5000))
                            throw std::runtime_error("ping-pong reply cut");
                    }
                }));
                fs.emplace_back(guarded([&] {
                    for (int i = 0; !stop; ++i) {
                        auto [cr, cw] = gipc::pipe();
                        cw.put(i);
                        if (cr.get<int>(10s) != i)
                            throw std::runtime_error("churned pipe lost a message");
                        boost::this_fiber::yield();
                    }
                }));
                for (auto& f : fs)
                    f.join();
                w.close();
                for (auto& f : readers)
                    f.join();
            } catch (const std::exception& e) {
                busy_error("busy thread " + std::to_string(t) + ": " + e.what());
            }
        });

    const auto start = clock_type::now();
    int ok = 0;
    for (int i = 0; i < 100; ++i) {
        auto [mine, theirs] = gipc::duplex_pipe();
        auto p = gipc::start_process(
            [](gipc::duplex d) {
                // The child uses gipc in its fresh world: a pipe, fibers, large frames.
                auto ends = gipc::pipe();
                gipc::reader& r = ends.first;
                gipc::writer& w = ends.second;
                boost::fibers::fiber f([&] {
                    auto v = d.get<std::vector<int>>();
                    w.put(std::accumulate(v.begin(), v.end(), 0));
                });
                d.put(r.get<int>());
                d.put_bytes(d.get_bytes());
                f.join();
            },
            std::move(theirs));
        try {
            mine.put(std::vector<int>{i, i, i});
            const std::string large(70000 + i, char('A' + i % 26));
            mine.put_bytes(large);
            if (mine.get<int>(10s) == 3 * i && mine.get_bytes(10s) == large && p.join(10s) && p.exitcode() == 0)
                ++ok;
            else
                FAIL_CHECK("child " << i << " failed");
        } catch (const std::exception& e) {
            FAIL_CHECK("child " << i << ": " << e.what());
        }
        if (p.is_alive()) {
            p.kill();
            p.join();
        }
    }
    const double fork_seconds = seconds_since(start);
    stop = true;
    for (auto& t : busy)
        t.join();
    MESSAGE("100 children in " << fork_seconds << " s; " << busy_messages.load() << " messages on the busy threads");
    for (const auto& e : errors)
        FAIL_CHECK(e);
    CHECK(ok == 100);
    CHECK(busy_errors == 0);
    CHECK(busy_messages > 0);
}

// ---- 6. ten thousand fibers sharing pipes ---------------------------------------------------------

namespace {

// thread, fiber, sequence number, payload, FNV-1a of the payload
using stress_message = std::tuple<std::uint32_t, std::uint32_t, std::uint32_t, std::string, std::uint64_t>;

// is_large: message seq of writer fiber f is larger than a pipe's atomic write (4096 bytes).
// Every 50th message of each writer is, and the first one of every 50th writer, so that large
// messages are sent even when a slow build gets only a few messages out of each fiber.
bool is_large(std::uint32_t f, std::uint32_t seq)
{
    return (seq + f) % 50 == 7;
}

// stress_payload is the payload of message seq of writer (t, f): mostly small, one in 50
// large (is_large), some of those past the direct-write threshold.
std::string stress_payload(std::uint32_t t, std::uint32_t f, std::uint32_t seq)
{
    const std::uint64_t h = mix((std::uint64_t{t} << 48) ^ (std::uint64_t{f} << 24) ^ seq);
    const std::size_t size = is_large(f, seq) ? 4097 + h % 36000 : h % 200;
    std::string s(size, '\0');
    for (std::size_t i = 0; i < size; ++i)
        s[i] = static_cast<char>((h >> ((i % 8) * 8)) ^ i);
    return s;
}

} // namespace

GIPC_TEST("10,000 fibers on 4 threads share 4 pipes for 3 seconds: every message arrives once and whole")
{
    gipc_test::raise_fd_limit();
    watchdog dog("the 10,000-fiber test", 90s);
    constexpr std::uint32_t threads_n = 4, fibers_per_thread = 2500, readers_per_thread = 500, pipes_n = 4;
    constexpr std::uint32_t writers_per_thread = fibers_per_thread - readers_per_thread;
    std::vector<gipc::reader> readers;
    std::vector<gipc::writer> writers;
    for (std::uint32_t i = 0; i < pipes_n; ++i) {
        auto [r, w] = gipc::pipe();
        readers.push_back(std::move(r));
        writers.push_back(std::move(w));
    }

    std::atomic<bool> stop{false};
    std::atomic<std::uint32_t> writers_done{0}, threads_ready{0};
    std::atomic<long> corrupt{0}, errors{0};
    std::mutex errors_mtx;
    std::string first_error;
    auto note_error = [&](const std::string& what) {
        ++errors;
        std::lock_guard lk(errors_mtx);
        if (first_error.empty())
            first_error = what;
    };
    std::vector<std::uint32_t> sent(threads_n * writers_per_thread, 0);
    // received[t]: (writer id << 32 | seq) of every message a reader fiber of thread t got.
    std::vector<std::vector<std::uint64_t>> received(threads_n);

    const auto start = clock_type::now();
    std::vector<std::thread> threads;
    for (std::uint32_t t = 0; t < threads_n; ++t)
        threads.emplace_back([&, t] {
            std::vector<boost::fibers::fiber> ws, rs;
            ws.reserve(writers_per_thread);
            rs.reserve(readers_per_thread);
            for (std::uint32_t f = 0; f < writers_per_thread; ++f)
                ws.emplace_back([&, t, f] {
                    const std::uint32_t id = t * writers_per_thread + f;
                    gipc::writer& w = writers[id % pipes_n];
                    try {
                        for (std::uint32_t seq = 0; !stop.load(std::memory_order_relaxed); ++seq) {
                            std::string payload = stress_payload(t, f, seq);
                            const std::uint64_t sum = fnv1a(payload);
                            w.put(stress_message{t, f, seq, std::move(payload), sum});
                            sent[id] = seq + 1;
                            boost::this_fiber::yield();
                        }
                    } catch (const std::exception& e) {
                        note_error(std::string("writer: ") + e.what());
                    }
                });
            for (std::uint32_t f = 0; f < readers_per_thread; ++f)
                rs.emplace_back([&, t, f] {
                    gipc::reader& r = readers[f % pipes_n];
                    for (;;) {
                        stress_message m;
                        try {
                            m = r.get<stress_message>();
                        } catch (const gipc::eof_error&) {
                            return;
                        } catch (const std::exception& e) {
                            note_error(std::string("reader: ") + e.what());
                            return;
                        }
                        const auto& [mt, mf, seq, payload, sum] = m;
                        if (mt >= threads_n || mf >= writers_per_thread || fnv1a(payload) != sum ||
                            payload != stress_payload(mt, mf, seq)) {
                            ++corrupt;
                            continue;
                        }
                        received[t].push_back((std::uint64_t{mt * writers_per_thread + mf} << 32) | seq);
                    }
                });
            ++threads_ready; // every fiber of this thread is made (none has run yet)
            for (auto& f : ws)
                f.join();
            ++writers_done;
            for (auto& f : rs)
                f.join();
        });

    // The 3 seconds count from when every fiber exists (making 10,000 fibers and their
    // stacks takes a while in a sanitizer build).
    REQUIRE(thread_wait_until([&] { return threads_ready == threads_n; }, 60000ms));
    const double setup_seconds = seconds_since(start);
    std::this_thread::sleep_for(3s);
    stop = true;
    // When every writer fiber has ended, the write ends close: the readers drain and see EOF.
    if (!thread_wait_until([&] { return writers_done == threads_n; }, 30000ms)) {
        // Writers blocked on full pipes whose readers gave up: the threads cannot be joined.
        std::lock_guard lk(errors_mtx);
        std::fprintf(stderr, "writer fibers still blocked 30 s after the stop (%ld errors, the first: %s)\n",
                     errors.load(), first_error.c_str());
        std::abort();
    }
    const double write_seconds = seconds_since(start);
    for (auto& w : writers)
        w.close();
    for (auto& t : threads)
        t.join();
    const double total_seconds = seconds_since(start);

    std::vector<std::uint64_t> all;
    for (auto& v : received)
        all.insert(all.end(), v.begin(), v.end());
    std::sort(all.begin(), all.end());
    long total_sent = 0, missing = 0, duplicates = 0, unexpected = 0, large = 0;
    std::size_t pos = 0;
    for (std::uint32_t id = 0; id < sent.size(); ++id) {
        total_sent += sent[id];
        for (std::uint32_t seq = 0; seq < sent[id]; ++seq) {
            const std::uint64_t key = (std::uint64_t{id} << 32) | seq;
            while (pos < all.size() && all[pos] < key) {
                ++unexpected;
                ++pos;
            }
            if (pos == all.size() || all[pos] != key) {
                ++missing;
                continue;
            }
            ++pos;
            while (pos < all.size() && all[pos] == key) {
                ++duplicates;
                ++pos;
            }
            if (is_large(id % writers_per_thread, seq))
                ++large;
        }
    }
    unexpected += long(all.size() - pos);
    MESSAGE(total_sent << " messages (" << large << " over 4096 bytes) from "
                       << threads_n * writers_per_thread << " writer fibers to " << threads_n * readers_per_thread
                       << " reader fibers; all fibers made after " << setup_seconds
                       << " s, writing stopped after " << write_seconds << " s, all read after " << total_seconds
                       << " s");
    INFO("first error: " << first_error);
    CHECK(errors == 0);
    CHECK(corrupt == 0);
    CHECK(missing == 0);
    CHECK(duplicates == 0);
    CHECK(unexpected == 0);
    CHECK(long(all.size()) == total_sent);
    CHECK(large > 0);
    // Every writer fiber got its turn.
    CHECK(std::count(sent.begin(), sent.end(), 0u) == 0);
}

// ---- 7. closing a handle on one thread while a fiber of another waits on its fd ---------------------

namespace {

// fill_pipe writes raw bytes into a pipe's write end until the pipe is full (grown to 1 MiB
// first, as a gipc writer would).
void fill_pipe(int fd)
{
    ::fcntl(fd, F_SETPIPE_SZ, 1 << 20);
    static char buf[65536];
    while (::write(fd, buf, sizeof buf) > 0) {
    }
    while (::write(fd, buf, 1) > 0) {
    }
}

void drain_pipe(int fd)
{
    static char buf[65536];
    while (::read(fd, buf, sizeof buf) > 0) {
    }
}

// close_under_waiter runs `rounds` rounds of: thread A queues a frame behind each of stalled_n full
// pipes (so that its scheduler has flushes to try, which take the writers' and the reactor's
// locks, whenever a fiber suspends) and then waits on the fd of the round's target end, while
// thread B closes that end; with drain, thread C empties the target pipe meanwhile. The close
// wakes A's waiter from B through A's reactor; a wakeup given while holding a lock that A's
// suspending fiber needs deadlocks both threads (the watchdog then aborts).
void close_under_waiter(bool close_writer, int rounds, int stalled_n)
{
    std::vector<std::pair<gipc::reader, gipc::writer>> targets(static_cast<std::size_t>(rounds));
    for (auto& t : targets)
        t = gipc::pipe();
    std::atomic<int> go{0}, closed{0}, drained{0};
    std::thread closer([&] {
        for (int i = 1; i <= rounds; ++i) {
            while (go.load() < i)
                std::this_thread::yield();
            for (int k = 0, spin = (i * 7919) % 3000; k < spin; ++k)
                std::atomic_signal_fence(std::memory_order_seq_cst); // land anywhere in A's wait
            auto& t = targets[static_cast<std::size_t>(i - 1)];
            if (close_writer)
                t.second.close();
            else
                t.first.close();
            closed = i;
        }
    });
    std::thread drainer([&] {
        for (int i = 1; i <= rounds; ++i) {
            while (go.load() < i)
                std::this_thread::yield();
            const int fd = targets[static_cast<std::size_t>(i - 1)].first.native_handle();
            while (close_writer && closed.load() < i) {
                drain_pipe(fd);
                std::this_thread::sleep_for(20us);
            }
            drained = i;
        }
    });
    std::thread waiter([&] {
        for (int i = 1; i <= rounds; ++i) {
            std::vector<std::pair<gipc::reader, gipc::writer>> stalled;
            for (int k = 0; k < stalled_n; ++k) {
                stalled.push_back(gipc::pipe());
                fill_pipe(stalled.back().second.native_handle());
                stalled.back().second.put_bytes("x"); // queued: flushed when a fiber suspends
            }
            auto& t = targets[static_cast<std::size_t>(i - 1)];
            int fd = t.first.native_handle();
            if (close_writer) {
                fd = t.second.native_handle();
                fill_pipe(fd);
                t.second.put_bytes("x");
            }
            go = i;
            try {
                if (close_writer)
                    (void)gipc::wait_writable(fd, 2ms);
                else
                    (void)gipc::wait_readable(fd, 2ms);
            } catch (const std::system_error&) {
                // EBADF: the fd was closed before the wait began
            }
            while (closed.load() < i || drained.load() < i)
                boost::this_fiber::yield();
            for (auto& p : stalled)
                p.first.close(); // readers first: the writers' queued frames are then dropped
        }
    });
    waiter.join();
    closer.join();
    drainer.join();
}

} // namespace

GIPC_TEST("closing a reader on one thread while a fiber of another waits on its fd never deadlocks")
{
    watchdog dog("the close-under-waiter test (reader)", 60s);
    close_under_waiter(false, 200, 4);
}

GIPC_TEST("closing a writer on one thread while a fiber of another waits on its fd never deadlocks")
{
    watchdog dog("the close-under-waiter test (writer)", 60s);
    close_under_waiter(true, 300, 16);
}

} // TEST_SUITE
