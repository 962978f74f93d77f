// SPDX-License-Identifier: MIT
// gipc_bench: gipc's hot paths against the raw system calls they are built on, measured in
// the same run (the raw ones in a single-threaded helper process, see baselines). One line per
// figure:
//
//   <figure>: <value> <unit> | baseline <value> <unit> | ratio <gipc/baseline>
//
// Every ratio says how close gipc comes to its baseline (1 = as fast): gipc / baseline for rates,
// baseline / gipc for tcp_clients_1000, a time whose baseline is the same exchange written with
// non-blocking sockets and epoll and no fibers. round_trip_pinned is round_trip with both
// processes (and its baseline's) on one vCPU. round_trip_epoll and round_trip_pinned_epoll
// are not gipc's: they give the raw exchange written with non-blocking pipes and epoll (the
// three syscalls per hop that gipc makes) against the blocking baseline, the most that any
// readiness-based implementation can reach on the machine.
// Each figure runs at least 0.5 s (the workload grows until it does), three times, alternating
// with its baseline; the medians are printed.
//
//   usage: gipc_bench [FIGURE...]     (default: every figure)

#include <gipc/gipc.hpp>

#include <boost/fiber/all.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <dirent.h>
#include <poll.h>
#include <sched.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using bench_clock = std::chrono::steady_clock;

namespace {

double seconds_since(bench_clock::time_point t0)
{
    return std::chrono::duration<double>(bench_clock::now() - t0).count();
}

// rate finds a workload n that takes at least 0.5 s and returns operations per second.
double rate(const std::function<double(long n)>& run_seconds, long n = 1000)
{
    for (;;) {
        const double s = run_seconds(n);
        if (s >= 0.5)
            return double(n) / s;
        n = s <= 0.01 ? n * 10 : long(double(n) * 0.6 / s) + 1;
    }
}

double median3(const std::function<double()>& f)
{
    double v[3] = {f(), f(), f()};
    std::sort(v, v + 3);
    return v[1];
}

// paired_median3 runs gipc's exchange and its baseline alternately, three times each, so that
// both see the same phases of a shared machine's load; returns the two medians.
std::pair<double, double> paired_median3(const std::function<double()>& gipc_run,
                                         const std::function<double()>& baseline_run)
{
    double g[3], b[3];
    for (int i = 0; i < 3; ++i) {
        g[i] = gipc_run();
        b[i] = baseline_run();
    }
    std::sort(g, g + 3);
    std::sort(b, b + 3);
    return {g[1], b[1]};
}

void print(const char* figure, double value, const char* unit, double baseline, double ratio)
{
    std::printf("%s: %.6g %s | baseline %.6g %s | ratio %.3g\n", figure, value, unit, baseline, unit, ratio);
    std::fflush(stdout);
}

void die(const char* what)
{
    std::perror(what);
    std::exit(2);
}

// read_full reads exactly size bytes from a blocking fd.
void read_full(int fd, char* data, size_t size)
{
    while (size > 0) {
        ssize_t n = ::read(fd, data, size);
        if (n <= 0)
            die("read");
        data += n;
        size -= size_t(n);
    }
}

void write_full(int fd, const char* data, size_t size)
{
    while (size > 0) {
        ssize_t n = ::write(fd, data, size);
        if (n <= 0)
            die("write");
        data += n;
        size -= size_t(n);
    }
}

void wait_child(pid_t pid)
{
    int status;
    if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("raw child");
}

// ---- small_messages ----------------------------------------------------------------------------

double gipc_small(long n)
{
    auto [r, w] = gipc::pipe();
    auto t0 = bench_clock::now();
    auto p = gipc::start_process(
        [n](gipc::writer w) {
            for (long i = 0; i < n; ++i)
                w.put(std::uint8_t(i));
        },
        std::move(w));
    for (long i = 0; i < n; ++i)
        if (r.get<std::uint8_t>() != std::uint8_t(i))
            die("small_messages: wrong message");
    const double s = seconds_since(t0);
    p.join();
    return s;
}

double raw_small(long n)
{
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
        die("pipe");
    auto t0 = bench_clock::now();
    pid_t pid = ::fork();
    if (pid == 0) {
        ::close(fds[0]);
        // One write per frame: 4-byte length 1, then a 1-byte msgpack positive fixint.
        char frame[5] = {0, 0, 0, 1, 0};
        for (long i = 0; i < n; ++i) {
            frame[4] = char(i & 0x7f);
            write_full(fds[1], frame, 5);
        }
        ::_exit(0);
    }
    ::close(fds[1]);
    std::vector<char> buf(65536);
    long total = 0;
    for (;;) {
        ssize_t got = ::read(fds[0], buf.data(), buf.size());
        if (got <= 0)
            break;
        total += got;
    }
    const double s = seconds_since(t0);
    ::close(fds[0]);
    wait_child(pid);
    if (total != n * 5)
        die("raw small: short");
    return s;
}

// ---- bulk_64000 ----------------------------------------------------------------------------------

constexpr size_t bulk = 64000;

double gipc_bulk(long n)
{
    auto [r, w] = gipc::pipe();
    auto t0 = bench_clock::now();
    auto p = gipc::start_process(
        [n](gipc::writer w) {
            const std::string payload(bulk, 'b');
            for (long i = 0; i < n; ++i)
                w.put_bytes(payload);
        },
        std::move(w));
    for (long i = 0; i < n; ++i)
        if (r.get_bytes().size() != bulk)
            die("bulk: wrong size");
    const double s = seconds_since(t0);
    p.join();
    return s;
}

double raw_bulk(long n)
{
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
        die("pipe");
    ::fcntl(fds[1], F_SETPIPE_SZ, 1 << 20); // the capacity gipc grows its pipes to
    auto t0 = bench_clock::now();
    pid_t pid = ::fork();
    if (pid == 0) {
        ::close(fds[0]);
        std::vector<char> frame(bulk + 4, 'b');
        for (long i = 0; i < n; ++i)
            write_full(fds[1], frame.data(), frame.size());
        ::_exit(0);
    }
    ::close(fds[1]);
    std::vector<char> frame(bulk + 4);
    for (long i = 0; i < n; ++i)
        read_full(fds[0], frame.data(), frame.size());
    const double s = seconds_since(t0);
    ::close(fds[0]);
    wait_child(pid);
    return s;
}

// ---- round_trip ----------------------------------------------------------------------------------

double gipc_round_trip(long n)
{
    auto [mine, theirs] = gipc::duplex_pipe();
    auto p = gipc::start_process(
        [](gipc::duplex d) {
            for (;;) {
                int v = d.get<int>();
                if (v < 0)
                    return;
                d.put(v + 1);
            }
        },
        std::move(theirs));
    mine.put(0);
    (void)mine.get<int>(); // the child is running
    auto t0 = bench_clock::now();
    for (long i = 0; i < n; ++i) {
        mine.put(int(i & 0xffff));
        if (mine.get<int>() != int(i & 0xffff) + 1)
            die("round_trip: wrong reply");
    }
    const double s = seconds_since(t0);
    mine.put(-1);
    p.join();
    return s;
}

// gipc_round_trip_shared_work: the exchange of gipc_round_trip, run by a fiber of a 2-thread
// pool under Boost.Fiber's shared_work (sleeping when idle), which gipc keeps: its waits go
// through the relay thread and its puts write at once.
double gipc_round_trip_shared_work(long n)
{
    double s = 0;
    std::mutex m;
    boost::fibers::condition_variable_any done_cv;
    bool done = false;
    std::thread helper([&] {
        boost::fibers::use_scheduling_algorithm<boost::fibers::algo::shared_work>(true);
        std::unique_lock lk(m);
        done_cv.wait(lk, [&] { return done; });
    });
    std::thread runner([&] {
        boost::fibers::use_scheduling_algorithm<boost::fibers::algo::shared_work>(true);
        boost::fibers::fiber([&] { s = gipc_round_trip(n); }).join();
        std::lock_guard lk(m);
        done = true;
        done_cv.notify_all();
    });
    runner.join();
    helper.join();
    return s;
}

// blocking_reader: one side of raw_round_trip: a blocking read of the byte, false at EOF.
struct blocking_reader {
    int fd;
    explicit blocking_reader(int read_fd) : fd(read_fd) {}
    bool get(char& c) { return ::read(fd, &c, 1) == 1; }
};

// epoll_waiter: one side of raw_round_trip_epoll: a non-blocking pipe read end registered
// edge-triggered with an epoll set of its own, read the way gipc reads a pipe it has drained:
// wait first, then read.
struct epoll_waiter {
    int fd, ep;
    explicit epoll_waiter(int read_fd) : fd(read_fd), ep(::epoll_create1(EPOLL_CLOEXEC))
    {
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
        ev.data.fd = fd;
        if (ep < 0 || ::fcntl(fd, F_SETFL, O_NONBLOCK) != 0 || ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
            die("epoll");
    }
    ~epoll_waiter() { ::close(ep); }
    epoll_waiter(const epoll_waiter&) = delete;
    epoll_waiter& operator=(const epoll_waiter&) = delete;
    // get waits for the byte and reads it: false at EOF.
    bool get(char& c)
    {
        for (;;) {
            epoll_event events[8];
            if (::epoll_wait(ep, events, 8, -1) < 0 && errno != EINTR)
                die("epoll_wait");
            const ssize_t n = ::read(fd, &c, 1);
            if (n == 1)
                return true;
            if (n == 0)
                return false;
            if (errno != EAGAIN && errno != EINTR)
                die("read");
        }
    }
};

// raw_ping_pong: n one-byte round trips between this process and a forked echo child, each
// side reading through a Reader (blocking_reader or epoll_waiter); returns the seconds.
template <class Reader>
double raw_ping_pong(long n)
{
    int ping[2], pong[2];
    if (::pipe2(ping, O_CLOEXEC) != 0 || ::pipe2(pong, O_CLOEXEC) != 0)
        die("pipe");
    pid_t pid = ::fork();
    if (pid == 0) {
        ::close(ping[1]);
        ::close(pong[0]);
        Reader in(ping[0]);
        char c;
        while (in.get(c))
            write_full(pong[1], &c, 1);
        ::_exit(0);
    }
    ::close(ping[0]);
    ::close(pong[1]);
    double s;
    {
        Reader in(pong[0]);
        char c = 'x';
        write_full(ping[1], &c, 1);
        if (!in.get(c))
            die("round trip: EOF");
        auto t0 = bench_clock::now();
        for (long i = 0; i < n; ++i) {
            write_full(ping[1], &c, 1);
            if (!in.get(c))
                die("round trip: EOF");
        }
        s = seconds_since(t0);
    }
    ::close(ping[1]);
    ::close(pong[0]);
    wait_child(pid);
    return s;
}

double raw_round_trip(long n) { return raw_ping_pong<blocking_reader>(n); }

// raw_round_trip_epoll: raw_round_trip's exchange with what a readiness-based implementation
// cannot do without per hop: a write, an epoll_wait and a read (gipc makes the same three
// syscalls), and nothing else: the ceiling of gipc's round_trip figures on this machine.
double raw_round_trip_epoll(long n) { return raw_ping_pong<epoll_waiter>(n); }

// ---- spawn_join ----------------------------------------------------------------------------------

double gipc_spawn(long n)
{
    auto t0 = bench_clock::now();
    for (long i = 0; i < n; ++i) {
        auto p = gipc::start_process([] {});
        p.join();
    }
    return seconds_since(t0);
}

double raw_spawn(long n)
{
    auto t0 = bench_clock::now();
    for (long i = 0; i < n; ++i) {
        pid_t pid = ::fork();
        if (pid == 0)
            ::_exit(0);
        wait_child(pid);
    }
    return seconds_since(t0);
}

// ---- spawn_process_join -------------------------------------------------------------------------

int bench_noop() { return 0; }

double gipc_spawn_exec(long n)
{
    auto t0 = bench_clock::now();
    for (long i = 0; i < n; ++i) {
        auto p = gipc::spawn_process(bench_noop);
        p.join();
    }
    return seconds_since(t0);
}

// The baseline: posix_spawn of this same binary with --exit-at-once, which main() obeys before
// any gipc state is made, and waitpid.
double raw_spawn_exec(long n)
{
    char arg0[] = "gipc_bench";
    char arg1[] = "--exit-at-once";
    char* args[] = {arg0, arg1, nullptr};
    auto t0 = bench_clock::now();
    for (long i = 0; i < n; ++i) {
        pid_t pid;
        if (::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, args, environ) != 0)
            die("posix_spawn");
        wait_child(pid);
    }
    return seconds_since(t0);
}

// ---- start_program_join, program_cat_MBps -------------------------------------------------------

double gipc_program(long n)
{
    gipc::command c;
    c.argv = {"/bin/true"};
    auto t0 = bench_clock::now();
    for (long i = 0; i < n; ++i) {
        auto p = gipc::start_program(c);
        p.join();
    }
    return seconds_since(t0);
}

// The baseline: posix_spawn of /bin/true and waitpid.
double raw_program(long n)
{
    char arg0[] = "/bin/true";
    char* args[] = {arg0, nullptr};
    auto t0 = bench_clock::now();
    for (long i = 0; i < n; ++i) {
        pid_t pid;
        if (::posix_spawn(&pid, "/bin/true", nullptr, nullptr, args, environ) != 0)
            die("posix_spawn");
        wait_child(pid);
    }
    return seconds_since(t0);
}

constexpr std::size_t cat_bytes = std::size_t(64) << 20;

const std::string& cat_input()
{
    static const std::string input = [] {
        std::string s(cat_bytes, '\0');
        for (std::size_t i = 0; i < s.size(); ++i)
            s[i] = char('a' + i % 23);
        return s;
    }();
    return input;
}

// gipc_cat: n times cat_bytes through communicate() with cat.
double gipc_cat(long n)
{
    gipc::command c;
    c.argv = {"/bin/cat"};
    c.in = gipc::stdio::pipe;
    c.out = gipc::stdio::pipe;
    const std::string& input = cat_input();
    auto t0 = bench_clock::now();
    for (long i = 0; i < n; ++i) {
        auto p = gipc::start_program(c);
        if (p.communicate(input).out.size() != input.size())
            die("cat returned other bytes");
    }
    return seconds_since(t0);
}

// raw_cat: the same with posix_spawn, two non-blocking pipes and a poll loop. Like
// communicate(), each run collects the output into a string of its own, grown as bytes come
// (the size is not known in advance).
double raw_cat(long n)
{
    const std::string& input = cat_input();
    auto t0 = bench_clock::now();
    for (long i = 0; i < n; ++i) {
        int in[2], out[2];
        if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0)
            die("pipe");
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, in[0], 0);
        posix_spawn_file_actions_adddup2(&fa, out[1], 1);
        char arg0[] = "/bin/cat";
        char* args[] = {arg0, nullptr};
        pid_t pid;
        if (::posix_spawn(&pid, "/bin/cat", &fa, nullptr, args, environ) != 0)
            die("posix_spawn");
        posix_spawn_file_actions_destroy(&fa);
        ::close(in[0]);
        ::close(out[1]);
        ::fcntl(in[1], F_SETFL, O_NONBLOCK);
        ::fcntl(out[0], F_SETFL, O_NONBLOCK);
        std::string output;
        std::size_t sent = 0;
        int wfd = in[1];
        std::vector<char> buf(1 << 16);
        for (;;) {
            pollfd fds[2] = {{out[0], POLLIN, 0}, {wfd, POLLOUT, 0}};
            if (::poll(fds, wfd >= 0 ? 2 : 1, -1) < 0)
                die("poll");
            if (wfd >= 0 && fds[1].revents) {
                const ssize_t w = ::write(wfd, input.data() + sent, input.size() - sent);
                if (w > 0)
                    sent += std::size_t(w);
                if (sent == input.size()) {
                    ::close(wfd);
                    wfd = -1;
                }
            }
            if (fds[0].revents) {
                const ssize_t r = ::read(out[0], buf.data(), buf.size());
                if (r == 0)
                    break;
                if (r > 0)
                    output.append(buf.data(), std::size_t(r));
            }
        }
        ::close(out[0]);
        wait_child(pid);
        if (output.size() != input.size())
            die("cat returned other bytes");
    }
    return seconds_since(t0);
}

// big_parent: 1 GiB of touched memory held while it lives (what fork() has to copy the page
// tables of, and exec does not care about).
class big_parent {
public:
    big_parent()
    {
        mem_ = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem_ == MAP_FAILED)
            die("mmap");
        std::memset(mem_, 1, size);
    }
    ~big_parent() { ::munmap(mem_, size); }
    big_parent(const big_parent&) = delete;
    big_parent& operator=(const big_parent&) = delete;

private:
    static constexpr std::size_t size = std::size_t(1) << 30;
    void* mem_;
};

// ---- pool_tasks ------------------------------------------------------------------------------------

int bench_square(int x) { return x * x; }

// Trivial tasks through a 2-worker pool: submit them all, then get every future. The pool is
// made before the clock starts.
double gipc_pool_tasks(long n)
{
    gipc::pool_options o;
    o.workers = 2;
    gipc::pool p(o);
    p.submit(bench_square, 1).get(); // the workers run
    std::vector<boost::fibers::future<int>> futures;
    futures.reserve(std::size_t(n));
    auto t0 = bench_clock::now();
    for (long i = 0; i < n; ++i)
        futures.push_back(p.submit(bench_square, int(i % 1000)));
    for (long i = 0; i < n; ++i)
        if (futures[std::size_t(i)].get() != int(i % 1000) * int(i % 1000)) {
            std::fprintf(stderr, "pool task: wrong result\n");
            std::exit(2);
        }
    return seconds_since(t0);
}

double gipc_pool_map(long n)
{
    gipc::pool_options o;
    o.workers = 2;
    gipc::pool p(o);
    p.submit(bench_square, 1).get();
    std::vector<int> inputs(static_cast<std::size_t>(n), 3);
    auto t0 = bench_clock::now();
    if (p.map(bench_square, inputs).size() != inputs.size())
        die("pool map");
    return seconds_since(t0);
}

// The baseline: 2 raw children, each answering one 4-byte task per blocking round trip over a
// pair of pipes; the parent keeps both busy (a task to each, then both answers).
double raw_pool_tasks(long n)
{
    int to[2][2], from[2][2];
    pid_t pid[2];
    for (int c = 0; c < 2; ++c) {
        if (::pipe(to[c]) != 0 || ::pipe(from[c]) != 0)
            die("pipe");
        pid[c] = ::fork();
        if (pid[c] == 0) {
            ::close(to[c][1]); // only the parent writes tasks and reads answers
            ::close(from[c][0]);
            for (int earlier = 0; earlier < c; ++earlier) { // nor the other child's ends
                ::close(to[earlier][1]);
                ::close(from[earlier][0]);
            }
            int x;
            for (;;) {
                ssize_t got = ::read(to[c][0], &x, sizeof x);
                if (got != sizeof x)
                    ::_exit(0);
                x = bench_square(x);
                if (::write(from[c][1], &x, sizeof x) != sizeof x)
                    ::_exit(1);
            }
        }
        ::close(to[c][0]);
        ::close(from[c][1]);
    }
    auto t0 = bench_clock::now();
    for (long i = 0; i < n; i += 2) {
        for (int c = 0; c < 2; ++c) {
            int x = int((i + c) % 1000);
            write_full(to[c][1], reinterpret_cast<const char*>(&x), sizeof x);
        }
        for (int c = 0; c < 2; ++c) {
            int x;
            read_full(from[c][0], reinterpret_cast<char*>(&x), sizeof x);
        }
    }
    const double s = seconds_since(t0);
    for (int c = 0; c < 2; ++c) {
        ::close(to[c][1]);
        ::close(from[c][0]);
        wait_child(pid[c]);
    }
    return s;
}

// ---- fan_in_100 ----------------------------------------------------------------------------------

double gipc_fan_in(long n)
{
    constexpr int writers = 100;
    const long per = n / writers;
    std::vector<gipc::reader> readers;
    std::vector<gipc::writer> ws;
    for (int i = 0; i < writers; ++i) {
        auto [r, w] = gipc::pipe();
        readers.push_back(std::move(r));
        ws.push_back(std::move(w));
    }
    auto t0 = bench_clock::now();
    auto p = gipc::start_process(
        [per](std::vector<gipc::writer>& ws) {
            std::vector<boost::fibers::fiber> fs;
            for (auto& w : ws)
                fs.emplace_back([&w, per] {
                    for (long i = 0; i < per; ++i)
                        w.put(std::uint8_t(i));
                    w.close();
                });
            for (auto& f : fs)
                f.join();
        },
        std::ref(ws));
    std::vector<boost::fibers::fiber> fs;
    for (auto& r : readers)
        fs.emplace_back([&r, per] {
            for (long i = 0; i < per; ++i)
                (void)r.get<std::uint8_t>();
        });
    for (auto& f : fs)
        f.join();
    const double s = seconds_since(t0);
    p.join();
    return s;
}

// ---- tcp_clients_1000 ----------------------------------------------------------------------------

// The serverclient exchange, with the example's pooled fiber stacks.
boost::fibers::pooled_fixedsize_stack& stacks()
{
    static boost::fibers::pooled_fixedsize_stack pool(64 * 1024);
    return pool;
}

double tcp_clients()
{
    constexpr int n = 1000;
    auto server = gipc::net::listener::tcp("127.0.0.1", 0);
    const auto port = server.port();
    bool stop = false;
    boost::fibers::fiber server_fiber([&] {
        std::vector<boost::fibers::fiber> handlers;
        while (!stop) {
            try {
                handlers.emplace_back(
                    std::allocator_arg, stacks(), [](gipc::net::stream c) { c.write_all(c.read_line()); },
                    server.accept(20ms));
            } catch (const gipc::timeout_error&) {
            }
        }
        for (auto& h : handlers)
            h.join();
    });
    auto [r, w] = gipc::pipe();
    auto p = gipc::start_process(
        [port](gipc::writer w) {
            auto t0 = bench_clock::now();
            std::vector<boost::fibers::fiber> clients;
            int ok = 0;
            for (int i = 0; i < n; ++i)
                clients.emplace_back(std::allocator_arg, stacks(), [&] {
                    auto c = gipc::net::stream::connect("127.0.0.1", port);
                    c.write_all("HELLO\n");
                    ok += c.read_line() == "HELLO\n";
                });
            for (auto& c : clients)
                c.join();
            w.put(seconds_since(t0));
            return ok == n ? 0 : 1;
        },
        std::move(w));
    const double s = r.get<double>();
    p.join();
    stop = true;
    server_fiber.join();
    if (p.exitcode() != 0)
        die("tcp_clients: a client failed");
    return s;
}

// The same exchange with non-blocking sockets and epoll, no fibers: the server's event loop in
// this process, the 1000 clients in one event loop in a forked child, each doing only what
// the exchange needs (socket, connect, TCP_NODELAY as gipc sets it: on each connecting socket
// and once on the listener, whose connections inherit it; send, recv, close). The least a
// concurrent implementation pays the kernel.
double raw_tcp_clients()
{
    constexpr int n = 1000;
    const int one = 1;
    int ls = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ::setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ::setsockopt(ls, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(ls, SOMAXCONN) != 0 ||
        ::getsockname(ls, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
        die("raw tcp: listen");
    int report[2];
    if (::pipe2(report, O_CLOEXEC) != 0)
        die("pipe");
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(ls);
        const auto t0 = bench_clock::now();
        const int ep = ::epoll_create1(EPOLL_CLOEXEC);
        for (int i = 0; i < n; ++i) {
            const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
            ::setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            int r = ::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
            if (r != 0 && errno == EINPROGRESS)
                r = ::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 || errno == EISCONN ? 0 : -1;
            epoll_event ev{};
            ev.events = r == 0 ? EPOLLIN | EPOLLET : EPOLLOUT | EPOLLET;
            ev.data.fd = s;
            if (r == 0 && ::send(s, "HELLO\n", 6, MSG_NOSIGNAL) != 6)
                ::_exit(1);
            ::epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
        }
        int done = 0;
        epoll_event events[256];
        while (done < n) {
            const int k = ::epoll_wait(ep, events, 256, -1);
            for (int i = 0; i < k; ++i) {
                const int s = events[i].data.fd;
                if (events[i].events & EPOLLOUT) { // the rare connect that was still in progress
                    epoll_event ev{};
                    ev.events = EPOLLIN | EPOLLET;
                    ev.data.fd = s;
                    if (::send(s, "HELLO\n", 6, MSG_NOSIGNAL) != 6)
                        ::_exit(1);
                    ::epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev);
                    continue;
                }
                char buf[64];
                const ssize_t got = ::recv(s, buf, sizeof buf, 0);
                if (got == 6) {
                    ::close(s);
                    ++done;
                } else if (got >= 0 || errno != EAGAIN) {
                    ::_exit(1);
                }
            }
        }
        const double seconds = seconds_since(t0);
        write_full(report[1], reinterpret_cast<const char*>(&seconds), sizeof seconds);
        ::_exit(0);
    }
    ::close(report[1]);
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    epoll_event lev{};
    lev.events = EPOLLIN;
    lev.data.fd = ls;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);
    auto serve = [](int c) {
        char buf[64];
        const ssize_t got = ::recv(c, buf, sizeof buf, 0);
        if (got <= 0)
            return false;
        if (::send(c, buf, size_t(got), MSG_NOSIGNAL) != got)
            die("raw tcp: send");
        ::close(c);
        return true;
    };
    int served = 0;
    epoll_event events[256];
    while (served < n) {
        const int k = ::epoll_wait(ep, events, 256, -1);
        for (int i = 0; i < k; ++i) {
            const int fd = events[i].data.fd;
            if (fd != ls) {
                served += serve(fd);
                continue;
            }
            for (;;) {
                const int c = ::accept4(ls, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (c < 0)
                    break;
                if (serve(c)) {
                    ++served;
                    continue;
                }
                epoll_event ev{};
                ev.events = EPOLLIN | EPOLLET;
                ev.data.fd = c;
                ::epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
            }
        }
    }
    double seconds = 0;
    read_full(report[0], reinterpret_cast<char*>(&seconds), sizeof seconds);
    ::close(report[0]);
    ::close(ep);
    ::close(ls);
    wait_child(pid);
    return seconds;
}

// baselines: the raw-syscall baselines run in a helper process forked at startup, before gipc
// starts any child. A plain program doing these exchanges is single-threaded; this process is
// not once gipc's fork thread exists, and glibc's fork(), read() and write() then take their
// multi-threaded paths (fork() alone costs about 40 us more), which would flatter the ratios.
class baselines {
public:
    enum which : int { small = 1, bulk_frames, round_trips, spawns, tcp, round_trips_epoll };

    baselines()
    {
        if (::pipe2(request_, O_CLOEXEC) != 0 || ::pipe2(reply_, O_CLOEXEC) != 0)
            die("pipe");
        helper_ = ::fork();
        if (helper_ < 0)
            die("fork");
        if (helper_ == 0) {
            ::close(request_[1]);
            ::close(reply_[0]);
            for (;;) {
                long job[2];
                if (::read(request_[0], job, sizeof job) != sizeof job)
                    ::_exit(0);
                const double seconds = job[0] == small         ? raw_small(job[1])
                                       : job[0] == bulk_frames ? raw_bulk(job[1])
                                       : job[0] == round_trips ? raw_round_trip(job[1])
                                       : job[0] == spawns      ? raw_spawn(job[1])
                                       : job[0] == round_trips_epoll ? raw_round_trip_epoll(job[1])
                                                               : raw_tcp_clients();
                write_full(reply_[1], reinterpret_cast<const char*>(&seconds), sizeof seconds);
            }
        }
        ::close(request_[0]);
        ::close(reply_[1]);
    }
    ~baselines()
    {
        ::close(request_[1]);
        ::close(reply_[0]);
        wait_child(helper_);
    }
    baselines(const baselines&) = delete;
    baselines& operator=(const baselines&) = delete;

    // seconds runs one baseline with workload n in the helper.
    double seconds(which w, long n)
    {
        const long job[2] = {w, n};
        write_full(request_[1], reinterpret_cast<const char*>(job), sizeof job);
        double s = 0;
        read_full(reply_[0], reinterpret_cast<char*>(&s), sizeof s);
        return s;
    }
    std::function<double(long)> runner(which w)
    {
        return [this, w](long n) { return seconds(w, n); };
    }
    pid_t pid() const noexcept { return helper_; }

private:
    int request_[2], reply_[2];
    pid_t helper_;
};

// pinned_to_one_cpu runs this process and the baseline helper (and the children either forks
// meanwhile, which inherit it) on one CPU, the first one this process may use, until destroyed.
class pinned_to_one_cpu {
public:
    explicit pinned_to_one_cpu(pid_t helper) : helper_(helper)
    {
        if (::sched_getaffinity(0, sizeof old_, &old_) != 0)
            die("sched_getaffinity");
        cpu_set_t one;
        CPU_ZERO(&one);
        for (int c = 0; c < CPU_SETSIZE; ++c)
            if (CPU_ISSET(c, &old_)) {
                CPU_SET(c, &one);
                break;
            }
        if (!set_all(one))
            die("sched_setaffinity");
    }
    ~pinned_to_one_cpu() { set_all(old_); }
    pinned_to_one_cpu(const pinned_to_one_cpu&) = delete;
    pinned_to_one_cpu& operator=(const pinned_to_one_cpu&) = delete;

private:
    // set_all sets the mask of every thread of this process (affinity is per thread: gipc's
    // fork thread, whose copy a child's thread is, must be pinned too) and of the helper.
    bool set_all(const cpu_set_t& mask)
    {
        bool ok = ::sched_setaffinity(helper_, sizeof mask, &mask) == 0;
        DIR* d = ::opendir("/proc/self/task");
        if (!d)
            return false;
        while (dirent* e = ::readdir(d))
            if (e->d_name[0] != '.')
                ok = ::sched_setaffinity(std::atoi(e->d_name), sizeof mask, &mask) == 0 && ok;
        ::closedir(d);
        return ok;
    }
    pid_t helper_;
    cpu_set_t old_;
};

bool wanted(int argc, char** argv, const char* figure)
{
    if (argc < 2)
        return true;
    for (int i = 1; i < argc; ++i)
        if (std::strcmp(argv[i], figure) == 0)
            return true;
    return false;
}

} // namespace

int main(int argc, char** argv)
{
    gipc::spawn_main(argc, argv); // a spawn_process child runs its target here
    if (argc == 2 && std::strcmp(argv[1], "--exit-at-once") == 0)
        ::_exit(0); // the raw baseline of spawn_process_join
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    baselines raw; // before gipc starts anything
    gipc::use_reactor();
    double small = 0;
    if (wanted(argc, argv, "small_messages") || wanted(argc, argv, "fan_in_100")) {
        double base = 0;
        std::tie(small, base) = paired_median3([] { return rate(gipc_small, 100000); },
                                               [&] { return rate(raw.runner(baselines::small), 100000); });
        if (wanted(argc, argv, "small_messages"))
            print("small_messages", small, "msgs/s", base, small / base);
    }
    if (wanted(argc, argv, "bulk_64000")) {
        const auto [g, b] = paired_median3([] { return rate(gipc_bulk, 1000) * bulk / 1e6; },
                                           [&] { return rate(raw.runner(baselines::bulk_frames), 1000) * bulk / 1e6; });
        print("bulk_64000", g, "MB/s", b, g / b);
    }
    if (wanted(argc, argv, "round_trip")) {
        const auto [g, b] = paired_median3([] { return rate(gipc_round_trip, 1000); },
                                           [&] { return rate(raw.runner(baselines::round_trips), 1000); });
        print("round_trip", g, "round trips/s", b, g / b);
    }
    if (wanted(argc, argv, "round_trip_pinned")) {
        // Both processes of each exchange on one vCPU: every hop is a context switch on that CPU
        // instead of a wake-up of another one.
        pinned_to_one_cpu pin(raw.pid());
        const auto [g, b] = paired_median3([] { return rate(gipc_round_trip, 1000); },
                                           [&] { return rate(raw.runner(baselines::round_trips), 1000); });
        print("round_trip_pinned", g, "round trips/s", b, g / b);
    }
    // Not gipc's figures: the raw exchange with epoll (raw_round_trip_epoll) against the
    // blocking one, on two vCPUs and pinned to one, both run in the helper: how close any
    // readiness-based implementation can come to the round_trip baselines here.
    if (wanted(argc, argv, "round_trip_epoll")) {
        const auto [e, b] = paired_median3([&] { return rate(raw.runner(baselines::round_trips_epoll), 1000); },
                                           [&] { return rate(raw.runner(baselines::round_trips), 1000); });
        print("round_trip_epoll", e, "round trips/s", b, e / b);
    }
    if (wanted(argc, argv, "round_trip_pinned_epoll")) {
        pinned_to_one_cpu pin(raw.pid());
        const auto [e, b] = paired_median3([&] { return rate(raw.runner(baselines::round_trips_epoll), 1000); },
                                           [&] { return rate(raw.runner(baselines::round_trips), 1000); });
        print("round_trip_pinned_epoll", e, "round trips/s", b, e / b);
    }
    if (wanted(argc, argv, "round_trip_shared_work")) {
        const auto [g, b] = paired_median3([] { return rate(gipc_round_trip_shared_work, 1000); },
                                           [&] { return rate(raw.runner(baselines::round_trips), 1000); });
        print("round_trip_shared_work", g, "round trips/s", b, g / b);
    }
    if (wanted(argc, argv, "spawn_join")) {
        const auto [g, b] = paired_median3([] { return rate(gipc_spawn, 50); },
                                           [&] { return rate(raw.runner(baselines::spawns), 50); });
        print("spawn_join", g, "spawns/s", b, g / b);
    }
    double small_spawn_exec = 0;
    if (wanted(argc, argv, "spawn_process_join") || wanted(argc, argv, "spawn_process_join_1g")) {
        double b = 0;
        std::tie(small_spawn_exec, b) = paired_median3([] { return rate(gipc_spawn_exec, 50); },
                                                       [] { return rate(raw_spawn_exec, 50); });
        if (wanted(argc, argv, "spawn_process_join"))
            print("spawn_process_join", small_spawn_exec, "spawns/s", b, small_spawn_exec / b);
    }
    if (wanted(argc, argv, "start_process_join_1g") || wanted(argc, argv, "spawn_process_join_1g")) {
        // Each against its own rate from this small parent, measured alternately with it.
        double small_fork = 0, big_fork = 0, big_exec = 0;
        const bool fork_wanted = wanted(argc, argv, "start_process_join_1g");
        if (fork_wanted) {
            double f[3], F[3];
            for (int i = 0; i < 3; ++i) {
                f[i] = rate(gipc_spawn, 50);
                big_parent big;
                F[i] = rate(gipc_spawn, 20);
            }
            std::sort(f, f + 3);
            std::sort(F, F + 3);
            small_fork = f[1];
            big_fork = F[1];
            print("start_process_join_1g", big_fork, "spawns/s", small_fork, big_fork / small_fork);
        }
        if (wanted(argc, argv, "spawn_process_join_1g")) {
            double e[3], E[3];
            for (int i = 0; i < 3; ++i) {
                e[i] = rate(gipc_spawn_exec, 50);
                big_parent big;
                E[i] = rate(gipc_spawn_exec, 50);
            }
            std::sort(e, e + 3);
            std::sort(E, E + 3);
            big_exec = E[1];
            print("spawn_process_join_1g", big_exec, "spawns/s", e[1], big_exec / e[1]);
        }
    }
    if (wanted(argc, argv, "pool_tasks")) {
        const auto [g, b] = paired_median3([] { return rate(gipc_pool_tasks, 1000); },
                                           [] { return rate(raw_pool_tasks, 1000); });
        print("pool_tasks", g, "tasks/s", b, g / b);
    }
    if (wanted(argc, argv, "pool_map")) {
        const auto [g, b] = paired_median3([] { return rate(gipc_pool_map, 1000); },
                                           [] { return rate(raw_pool_tasks, 1000); });
        print("pool_map", g, "tasks/s", b, g / b);
    }
    if (wanted(argc, argv, "start_program_join") || wanted(argc, argv, "start_program_join_1g")) {
        double g = 0, b = 0;
        std::tie(g, b) = paired_median3([] { return rate(gipc_program, 50); }, [] { return rate(raw_program, 50); });
        if (wanted(argc, argv, "start_program_join"))
            print("start_program_join", g, "programs/s", b, g / b);
    }
    if (wanted(argc, argv, "start_program_join_1g")) {
        // Against its own rate from this small parent, measured alternately with it.
        double e[3], E[3];
        for (int i = 0; i < 3; ++i) {
            e[i] = rate(gipc_program, 50);
            big_parent big;
            E[i] = rate(gipc_program, 50);
        }
        std::sort(e, e + 3);
        std::sort(E, E + 3);
        print("start_program_join_1g", E[1], "programs/s", e[1], E[1] / e[1]);
    }
    if (wanted(argc, argv, "program_cat_MBps")) {
        const double mb = double(cat_bytes) / 1e6;
        const auto [g, b] = paired_median3([&] { return rate(gipc_cat, 1) * mb; }, [&] { return rate(raw_cat, 1) * mb; });
        print("program_cat_MBps", g, "MB/s", b, g / b);
    }
    if (wanted(argc, argv, "fan_in_100")) {
        const double g = median3([] { return rate(gipc_fan_in, 100000); });
        print("fan_in_100", g, "msgs/s", small, g / small);
    }
    if (wanted(argc, argv, "tcp_clients_1000")) {
        const auto [g, b] = paired_median3(tcp_clients, [&] { return raw.seconds(baselines::tcp, 0); });
        // 1000 concurrent clients need an event loop, so the baseline is the same exchange
        // written with non-blocking sockets and epoll, without fibers. A time, so the ratio is
        // baseline / gipc (above 1 would mean gipc is faster), like the rates' gipc / baseline.
        print("tcp_clients_1000", g, "s", b, b / g);
    }
    return 0;
}
