// SPDX-License-Identifier: MIT
// gipc::pool: results, failures of tasks and of workers, timeouts, recycling, closing and
// terminating, from forked and from spawned workers.
//
// The Windows build (tests/windows/test_pool.exe, with tests/windows/spawn_support.cpp's main:
// spawn_main first, as every program with spawned children needs) compiles every case: there
// every worker is spawned (pool_options::spawn makes no difference), a worker that dies ends
// with an exit code instead of a signal, and processes are ended and watched with Win32 calls.
#include "test_support.hpp"

#include <gipc/gipc.hpp>

#include <boost/fiber/all.hpp>

#ifdef _WIN32
#include <windows.h>
#else
#include <fcntl.h>
#include <unistd.h>
#endif

#include <atomic>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

using namespace std::chrono_literals;

namespace {

int square(int x) { return x * x; }
std::string greet(std::string who, int times)
{
    std::string out;
    for (int i = 0; i < times; ++i)
        out += "hi " + who + ";";
    return out;
}
std::map<std::string, std::vector<int>> make_map(int n)
{
    std::map<std::string, std::vector<int>> m;
    for (int i = 0; i < n; ++i)
        m[std::to_string(i)] = std::vector<int>(std::size_t(i), i);
    return m;
}
std::tuple<int, double, std::optional<std::string>> make_tuple_of(int x)
{
    return {x, x / 2.0, x % 2 ? std::optional<std::string>("odd") : std::nullopt};
}
std::atomic<int> g_side_effects{0};
void no_result(int) { ++g_side_effects; }
#ifdef _WIN32
int my_pid() { return int(::GetCurrentProcessId()); }
// die_now ends this process at once, as a SIGKILL does: no exit duty runs.
[[noreturn]] void die_now()
{
    ::TerminateProcess(::GetCurrentProcess(), 9);
    std::abort(); // not reached
}
#else
int my_pid() { return int(::getpid()); }
[[noreturn]] void die_now()
{
    ::raise(SIGKILL);
    std::abort(); // not reached
}
#endif
int throws_out_of_range(int x)
{
    if (x == 3)
        throw std::out_of_range("three is out of range");
    return x;
}
// dies ends its worker: 1 at once (SIGKILL; TerminateProcess on Windows), 2 by abort() (on
// Windows by _Exit(6): the C runtime's abort() there may start a debugger instead), 3 by exit(3).
int dies(int how)
{
    if (how == 1)
        die_now();
    if (how == 2) {
#ifdef _WIN32
        std::_Exit(6);
#else
        std::abort();
#endif
    }
    if (how == 3)
        std::exit(3);
    return how;
}
int sleeps_ms(int ms)
{
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms;
}

// ready_within gets a future's value, failing the test (instead of hanging it) when the future
// is not ready within the limit.
template <class Future>
auto ready_within(Future&& f, std::chrono::seconds limit = 60s)
{
    REQUIRE(f.wait_for(limit) == boost::fibers::future_status::ready);
    return f.get();
}

gipc::pool_options opts(unsigned workers, bool spawn)
{
    gipc::pool_options o;
    o.workers = workers;
    o.spawn = spawn;
    return o;
}

} // namespace

TEST_SUITE("pool") {

GIPC_TEST("results of many types and void, from forked and spawned workers")
{
    for (bool spawn : {false, true}) {
        INFO("spawn " << spawn);
        gipc::pool p(opts(2, spawn));
        CHECK(p.workers() == 2);
        auto a = p.submit(square, 12);
        auto b = p.submit(greet, "you", 2);
        auto c = p.submit(make_map, 4);
        auto d = p.submit(make_tuple_of, 3);
        auto e = p.submit(no_result, 1);
        auto f = p.submit([](long x) { return x + 1; }, 41L);
        CHECK(ready_within(a) == 144);
        CHECK(ready_within(b) == "hi you;hi you;");
        CHECK(ready_within(c) == make_map(4));
        CHECK(ready_within(d) == make_tuple_of(3));
        ready_within(e);
        CHECK(g_side_effects == 0); // it ran in a worker, not here
        CHECK(ready_within(f) == 42);
    }
}

GIPC_TEST("map returns results in input order and rethrows the first failure after every task ended")
{
    gipc::pool p(opts(2, false));
    std::vector<int> inputs(500);
    for (int i = 0; i < 500; ++i)
        inputs[std::size_t(i)] = i;
    auto squares = p.map(square, inputs);
    REQUIRE(squares.size() == 500);
    for (int i = 0; i < 500; ++i)
        CHECK(squares[std::size_t(i)] == i * i);

    try {
        p.map(throws_out_of_range, std::vector<int>{1, 2, 3, 4, 5});
        FAIL("map did not throw");
    } catch (const gipc::task_error& e) {
        CHECK(e.type() == "std::out_of_range");
        CHECK(std::string(e.what()) == "three is out of range");
    }
    // The pool goes on.
    CHECK(ready_within(p.submit(square, 3)) == 9);
}

GIPC_TEST("submits from 4 threads x 10 fibers at once")
{
    gipc::pool p(opts(2, false));
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            std::vector<boost::fibers::fiber> fibers;
            for (int f = 0; f < 10; ++f)
                fibers.emplace_back([&, t, f] {
                    for (int k = 0; k < 10; ++k) {
                        const int x = t * 1000 + f * 10 + k;
                        auto result = p.submit(square, x);
                        if (result.wait_for(60s) == boost::fibers::future_status::ready && result.get() == x * x)
                            ++ok;
                    }
                });
            for (auto& f : fibers)
                f.join();
        });
    // This thread's fibers dispatch: wait cooperatively for the submitters.
    while (ok.load() < 400) {
        boost::this_fiber::sleep_for(1ms);
        static const auto start = std::chrono::steady_clock::now();
        if (gipc_test::seconds_since(start) > 60)
            break;
    }
    for (auto& t : threads)
        t.join();
    CHECK(ok == 400);
}

GIPC_TEST("a task that throws fails with task_error; its worker stays")
{
    gipc::pool p(opts(1, false));
    const int pid = ready_within(p.submit(my_pid));
    auto f = p.submit(throws_out_of_range, 3);
    CHECK_THROWS_AS(ready_within(f), gipc::task_error);
    CHECK(ready_within(p.submit(my_pid)) == pid);
}

GIPC_TEST("a worker that dies fails only its task, is replaced, and every other task completes")
{
    for (bool spawn : {false, true}) {
        INFO("spawn " << spawn);
        gipc::pool p(opts(2, spawn));
        std::vector<boost::fibers::future<int>> fine;
        std::vector<boost::fibers::future<int>> fatal;
        for (int i = 0; i < 60; ++i) {
            if (i % 20 == 5)
                fatal.push_back(p.submit(dies, 1 + (i / 20) % 3)); // SIGKILL, abort, exit(3)
            else
                fine.push_back(p.submit(square, i));
        }
        int good = 0;
        for (auto& f : fine) {
            ready_within(f);
            ++good;
        }
        CHECK(good == 57);
        std::vector<std::string> messages;
        for (auto& f : fatal) {
            try {
                ready_within(f);
                messages.push_back("no error");
            } catch (const gipc::worker_lost_error& e) {
                messages.push_back(e.what());
            }
        }
        REQUIRE(messages.size() == 3);
#ifdef _WIN32
        CHECK(messages[0].find("exited with code 9") != std::string::npos);
        CHECK(messages[1].find("exited with code 6") != std::string::npos);
#else
        CHECK(messages[0].find("killed by signal 9") != std::string::npos);
        CHECK(messages[1].find("killed by signal 6") != std::string::npos);
#endif
        CHECK(messages[2].find("exited with code 3") != std::string::npos);
        CHECK(ready_within(p.submit(square, 5)) == 25);
    }
}

GIPC_TEST("task_timeout kills the overrunning worker, fails that task with timeout_error, and replaces it")
{
    gipc::pool_options o = opts(1, false);
    o.task_timeout = 300ms;
    gipc::pool p(o);
    const int before = ready_within(p.submit(my_pid));
    auto slow = p.submit(sleeps_ms, 5000);
    auto after = p.submit(sleeps_ms, 10);
    const auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(ready_within(slow), gipc::timeout_error);
    CHECK(gipc_test::seconds_since(start) < 4);
    CHECK(ready_within(after) == 10);
    CHECK(ready_within(p.submit(my_pid)) != before);
}

GIPC_TEST("max_tasks_per_worker recycles workers")
{
    gipc::pool_options o = opts(1, false);
    o.max_tasks_per_worker = 2;
    gipc::pool p(o);
    std::vector<int> pids;
    for (int i = 0; i < 6; ++i)
        pids.push_back(ready_within(p.submit(my_pid)));
    CHECK(pids[0] == pids[1]);
    CHECK(pids[2] == pids[3]);
    CHECK(pids[4] == pids[5]);
    CHECK(std::set<int>(pids.begin(), pids.end()).size() == 3);
}

GIPC_TEST("close() refuses new tasks; the destructor completes submitted ones")
{
    std::vector<boost::fibers::future<int>> futures;
    {
        gipc::pool p(opts(2, false));
        for (int i = 0; i < 20; ++i)
            futures.push_back(p.submit(sleeps_ms, 5));
        p.close();
        CHECK_THROWS_AS((void)p.submit(square, 1), gipc::error);
    }
    for (auto& f : futures)
        CHECK(ready_within(f) == 5);
}

GIPC_TEST("terminate() fails unfinished tasks with gipc::error and join() returns")
{
    gipc::pool p(opts(2, false));
    std::vector<boost::fibers::future<int>> futures;
    for (int i = 0; i < 10; ++i)
        futures.push_back(p.submit(sleeps_ms, 2000));
    boost::this_fiber::sleep_for(200ms); // the workers have started their tasks
    const auto start = std::chrono::steady_clock::now();
    p.terminate();
    p.join();
    CHECK(gipc_test::seconds_since(start) < 5);
    int failed = 0;
    for (auto& f : futures) {
        try {
            ready_within(f);
        } catch (const gipc::worker_lost_error&) {
            FAIL("a terminated task failed as lost");
        } catch (const gipc::error&) {
            ++failed;
        }
    }
    CHECK(failed == 10);
    CHECK_THROWS_AS((void)p.submit(square, 1), gipc::error);
}

GIPC_TEST("an empty pool name is refused")
{
    gipc::pool_options o;
    o.name = "";
    CHECK_THROWS_AS(gipc::pool p(o), gipc::error);
}

} // TEST_SUITE

namespace {

int sum_until_eof(gipc::reader r)
{
    int sum = 0;
    try {
        for (;;)
            sum += r.get<int>();
    } catch (const gipc::eof_error&) {
    }
    return sum;
}

int write_three(gipc::writer w, int base)
{
    for (int i = 0; i < 3; ++i)
        w.put(base + i);
    return 3;
}

std::string echo_upper(gipc::duplex& d)
{
    std::string s = d.get<std::string>();
    for (char& c : s)
        c = char(std::toupper(static_cast<unsigned char>(c)));
    d.put(s);
    return s;
}

int count_readers(std::vector<gipc::reader> readers)
{
    int sum = 0;
    for (auto& r : readers)
        sum += r.get<int>();
    return sum;
}

} // namespace

TEST_SUITE("pool") {

GIPC_TEST("gipc handles given to submit reach the task's worker and are closed in the parent")
{
    for (bool spawn : {false, true}) {
        INFO("spawn " << spawn);
        gipc::pool p(opts(2, spawn));

        // A reader, with frames it had read ahead: they arrive too.
        auto [r, w] = gipc::pipe();
        w.put(1);
        w.put(2);
        w.put(3);
        w.flush();
        REQUIRE(r.get<int>(10s) == 1);
        auto sum = p.submit(sum_until_eof, std::move(r));
        CHECK(r.closed());
        w.put(10);
        w.close();
        CHECK(ready_within(sum) == 15);

        // A writer by std::ref, with frames the parent queued first.
        auto [r2, w2] = gipc::pipe();
        w2.put(100);
        auto wrote = p.submit(write_three, std::ref(w2), 7);
        CHECK(ready_within(wrote) == 3);
        CHECK(w2.closed());
        CHECK(r2.get<int>(10s) == 100);
        CHECK(r2.get<int>(10s) == 7);
        CHECK(r2.get<int>(10s) == 8);
        CHECK(r2.get<int>(10s) == 9);
        CHECK_THROWS_AS((void)r2.get<int>(10s), gipc::eof_error);

        // A duplex, by reference in the task.
        auto [a, b] = gipc::duplex_pipe();
        auto upper = p.submit(echo_upper, std::move(b));
        a.put(std::string("pool"));
        CHECK(a.get<std::string>(10s) == "POOL");
        CHECK(ready_within(upper) == "POOL");

        // A vector of readers, among plain tasks.
        std::vector<gipc::reader> readers;
        std::vector<gipc::writer> writers;
        for (int i = 0; i < 3; ++i) {
            auto [rr, ww] = gipc::pipe();
            readers.push_back(std::move(rr));
            writers.push_back(std::move(ww));
        }
        std::vector<boost::fibers::future<int>> plain;
        for (int i = 0; i < 50; ++i)
            plain.push_back(p.submit(square, i));
        auto counted = p.submit(count_readers, std::move(readers));
        for (int i = 0; i < 3; ++i)
            writers[std::size_t(i)].put(i + 1);
        CHECK(ready_within(counted) == 6);
        for (int i = 0; i < 50; ++i)
            CHECK(ready_within(plain[std::size_t(i)]) == i * i);

        gipc::reader closed;
        CHECK_THROWS_AS((void)p.submit(sum_until_eof, std::move(closed)), gipc::closed_error);
    }
}

GIPC_TEST("a worker that died while idle is replaced before a task is sent to it")
{
    gipc::pool p(opts(1, false));
    const int first = ready_within(p.submit(my_pid));
#ifdef _WIN32
    HANDLE worker = ::OpenProcess(PROCESS_TERMINATE | SYNCHRONIZE, FALSE, DWORD(first));
    REQUIRE(worker != nullptr);
    REQUIRE(::TerminateProcess(worker, 9));
    const bool ended = ::WaitForSingleObject(worker, 10000) == WAIT_OBJECT_0;
    ::CloseHandle(worker);
    REQUIRE(ended);
#else
    REQUIRE(::kill(first, SIGKILL) == 0);
    // Bounded wait until it has died (a zombie until the pool reaps it).
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
        std::ifstream stat("/proc/" + std::to_string(first) + "/stat");
        std::string line;
        if (!std::getline(stat, line))
            break;
        const auto close = line.rfind(')');
        if (close != std::string::npos && line.size() > close + 2 && line[close + 2] == 'Z')
            break;
        REQUIRE(gipc_test::seconds_since(start) < 10);
        boost::this_fiber::sleep_for(5ms);
    }
#endif
    const int second = ready_within(p.submit(my_pid)); // not a worker_lost_error
    CHECK(second != first);
}

} // TEST_SUITE

namespace {

// record_then_maybe_die notes in the file at path that it ran with x, then dies on 150. Workers
// append to the file at once: each line goes in one append that the system makes atomic
// (O_APPEND; on Windows FILE_APPEND_DATA without FILE_WRITE_DATA, under a lock of the file: the
// C runtime's "a" mode there seeks to the end and then writes, and two workers' lines can land
// on one another).
int record_then_maybe_die(std::string path, int x)
{
    const std::string line = std::to_string(x) + "\n";
#ifdef _WIN32
    HANDLE f = ::CreateFileA(path.c_str(), FILE_APPEND_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                             nullptr, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, nullptr);
    if (f == INVALID_HANDLE_VALUE)
        throw std::runtime_error("cannot open " + path);
    // Under Wine, appends from several workers at once lost lines: the line goes under a lock.
    OVERLAPPED whole{};
    DWORD written = 0;
    bool ok = ::LockFileEx(f, LOCKFILE_EXCLUSIVE_LOCK, 0, MAXDWORD, MAXDWORD, &whole);
    if (ok) {
        ok = ::WriteFile(f, line.data(), DWORD(line.size()), &written, nullptr) && written == line.size();
        ::UnlockFileEx(f, 0, MAXDWORD, MAXDWORD, &whole);
    }
    ::CloseHandle(f);
#else
    const int f = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (f < 0)
        throw std::runtime_error("cannot open " + path);
    const bool ok = ::write(f, line.data(), line.size()) == ssize_t(line.size());
    ::close(f);
#endif
    if (!ok)
        throw std::runtime_error("cannot write to " + path);
    if (x == 150)
        die_now();
    return 2 * x;
}

// new_temp_file makes an empty file of its own in the temporary directory and returns its path.
std::string new_temp_file()
{
#ifdef _WIN32
    char dir[MAX_PATH + 1];
    char path[MAX_PATH + 1];
    const DWORD n = ::GetTempPathA(sizeof dir, dir);
    REQUIRE((n > 0 && n < sizeof dir));
    REQUIRE(::GetTempFileNameA(dir, "gpr", 0, path) != 0);
    return path;
#else
    char path[] = "/tmp/gipc-pool-ran-XXXXXX";
    const int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    ::close(fd);
    return path;
#endif
}

// sized_result: every third result is far larger than the worker's result memory takes.
std::string sized_result(int i) { return std::string(i % 3 == 0 ? 200000 : 10, char('a' + i % 26)); }

} // namespace

TEST_SUITE("pool") {

GIPC_TEST("a worker that dies in the middle of a batch: no result it gave is lost and no task runs twice")
{
    for (bool spawn : {false, true}) {
        INFO("spawn " << spawn);
        const std::string path = new_temp_file();
        {
            gipc::pool p(opts(2, spawn));
            std::vector<boost::fibers::future<int>> futures;
            for (int i = 0; i < 300; ++i)
                futures.push_back(p.submit(record_then_maybe_die, path, i));
            for (int i = 0; i < 300; ++i) {
                if (i == 150)
                    CHECK_THROWS_AS((void)ready_within(futures[std::size_t(i)]), gipc::worker_lost_error);
                else
                    CHECK(ready_within(futures[std::size_t(i)]) == 2 * i);
            }
        }
        std::map<int, int> runs;
        std::ifstream in(path);
        for (int x; in >> x;)
            ++runs[x];
        in.close();
        std::remove(path.c_str());
        CHECK(runs.size() == 300);
        for (const auto& run : runs) {
            const int task = run.first, times = run.second; // (clang 14 lambdas cannot capture bindings)
            INFO("task " << task);
            CHECK(times == 1);
        }
    }
}

GIPC_TEST("results too large for the worker's result memory come by the pipe, in order with the others")
{
    for (bool spawn : {false, true}) {
        INFO("spawn " << spawn);
        gipc::pool p(opts(2, spawn));
        std::vector<int> inputs(90);
        for (int i = 0; i < 90; ++i)
            inputs[std::size_t(i)] = i;
        const auto out = p.map(sized_result, inputs);
        REQUIRE(out.size() == 90);
        for (int i = 0; i < 90; ++i)
            CHECK(out[std::size_t(i)] == sized_result(i));
    }
}

// quick_beside_slow queues quick squares and one task of 6 s (first or last), on a pool that
// has learnt that its tasks are short, and checks that every quick result arrives within 3 s
// (they take milliseconds, unless they wait for the slow task), while the slow task still runs.
void quick_beside_slow(gipc::pool& p, int quick_tasks, bool slow_first)
{
    (void)p.map(square, std::vector<int>(1000, 2)); // short tasks: the next ones go in batches
    std::optional<boost::fibers::future<int>> slow;
    if (slow_first)
        slow = p.submit(sleeps_ms, 6000);
    std::vector<boost::fibers::future<int>> quick;
    for (int i = 0; i < quick_tasks; ++i)
        quick.push_back(p.submit(square, i));
    if (!slow_first)
        slow = p.submit(sleeps_ms, 6000);
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < quick_tasks; ++i) {
        REQUIRE(quick[std::size_t(i)].wait_for(3s) == boost::fibers::future_status::ready);
        CHECK(quick[std::size_t(i)].get() == i * i);
    }
    CHECK(gipc_test::seconds_since(start) < 3);
    CHECK(slow->wait_for(0ms) == boost::fibers::future_status::timeout); // it still runs
    CHECK(ready_within(*slow) == 6000);
}

GIPC_TEST("results a worker gave before a long task began reach their futures while it runs")
{
    gipc::pool p(opts(1, false));
    quick_beside_slow(p, 20, false); // one worker: the quick tasks and then the slow one, one batch
}

GIPC_TEST("a task that runs long does not hold up the tasks sent behind it while another worker idles")
{
    for (bool spawn : {false, true}) {
        INFO("spawn " << spawn);
        gipc::pool p(opts(2, spawn));
        quick_beside_slow(p, 40, true); // the slow task first in its batch, quick ones behind it
    }
}

GIPC_TEST("map after close() throws the refusal; map waits for every task it queued")
{
    gipc::pool p(opts(2, false));
    p.close();
    CHECK_THROWS_AS((void)p.map(square, std::vector<int>{1, 2, 3}), gipc::error);
}

} // TEST_SUITE
