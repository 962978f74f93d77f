// SPDX-License-Identifier: MIT
// gipc's runtime on Windows: the IOCP reactor (src/windows/iocp_reactor.cpp) under gipc's
// scheduling algorithm, and the operations of io_ops.hpp on overlapped named pipes and process
// handles (src/windows/iocp_io.cpp): timers, a fiber parked in a read while others run, wakeups
// from other threads, timeouts that lose no data, the end of the stream and broken pipes, queued
// writes, operations of fibers of other threads (another thread of gipc's algorithm, and one of
// the program's own algorithm, served by the relay), forgotten handles, child exits.
#include "win_support.hpp"

#include "errors.hpp"
#include "io_ops.hpp"
#include "platform.hpp"
#include "reactor.hpp"
#include "scheduler.hpp"
#include "windows/named_pipe.hpp"
#include "windows/process.hpp"
#include "windows/socket.hpp"

#include <gipc/runtime.hpp>

#include <boost/fiber/algo/round_robin.hpp>
#include <boost/fiber/all.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
namespace io = gipc::detail::io;
namespace win = gipc::detail::win;
using gipc::detail::steady_time;

namespace {

steady_time after(std::chrono::milliseconds d) { return std::chrono::steady_clock::now() + d; }

double ms_since(std::chrono::steady_clock::time_point t)
{
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

ssize_t read_into(HANDLE h, std::string& out, std::size_t most, steady_time deadline = steady_time::max())
{
    std::string buf(most, '\0');
    const io::slice s{buf.data(), buf.size()};
    const ssize_t n = io::read(h, &s, 1, deadline);
    if (n > 0)
        out.append(buf.data(), static_cast<std::size_t>(n));
    return n;
}

ssize_t write_str(HANDLE h, const std::string& data, steady_time deadline = steady_time::max())
{
    const io::slice s{const_cast<char*>(data.data()), data.size()};
    return io::write(h, &s, 1, deadline);
}

// read_exactly reads n bytes (several reads).
std::string read_exactly(HANDLE h, std::size_t n)
{
    std::string out;
    while (out.size() < n) {
        const ssize_t r = read_into(h, out, n - out.size());
        REQUIRE(r > 0);
    }
    return out;
}

struct pipe_pair {
    win::unique_handle r, w;
    explicit pipe_pair(DWORD buffer = 64 * 1024)
    {
        win::pipe_options o;
        o.buffer_size = buffer;
        REQUIRE(win::make_pipe(r, w, o) == 0);
    }
    // close forgets an end, as gipc does, before closing it.
    static void close(win::unique_handle& h)
    {
        gipc::detail::forget_fd(h.get());
        h.reset();
    }
    ~pipe_pair()
    {
        close(r);
        close(w);
    }
};

// A program's own algorithm: round_robin by another name, which gipc keeps (it installs its own
// only in place of round_robin itself), so gipc's waits there go through the relay.
class program_algorithm final : public boost::fibers::algo::round_robin {
};

// A long-lived thread that runs the jobs given to it on its main fiber, with gipc's algorithm
// or with the program's own. Never destroyed: Boost.Fiber leaves a thread's scheduler behind
// when the thread ends under MinGW-w64 (README.md, "Windows"), so the tests keep two threads for
// the whole process, whose schedulers the warm-up makes.
class worker {
public:
    enum kind { gipc_algorithm, own_algorithm };
    static worker& get(kind k)
    {
        static worker* gipc_one = new worker([] { gipc::use_reactor(); });
        static worker* own_one = new worker([] { boost::fibers::use_scheduling_algorithm<program_algorithm>(); });
        return k == gipc_algorithm ? *gipc_one : *own_one;
    }
    // run runs job on the worker and parks the calling fiber until it is done.
    void run(std::function<void()> job)
    {
        boost::fibers::promise<void> done;
        auto finished = done.get_future();
        thread_.post([&] {
            job();
            done.set_value();
        });
        finished.get();
    }

private:
    explicit worker(void (*setup)()) : thread_(setup) {}
    gipc_win_test::job_thread thread_;
};

// What the process opens once and keeps: the main thread's reactor, the workers' schedulers
// and reactors, and what the relay thread's first start leaves (the relay itself ends 200 ms
// after its last wait).
const bool warmed_up = gipc_win_test::register_warm_up([] {
    // No doctest assertions here: the warm-up runs before doctest does. A failure shows in the
    // tests.
    gipc::use_reactor();
    for (auto k : {worker::gipc_algorithm, worker::own_algorithm}) {
        win::unique_handle r, w;
        if (win::make_pipe(r, w) != 0)
            return;
        worker::get(k).run([&] {
            std::string got;
            write_str(w.get(), "x");
            read_into(r.get(), got, 1);
            boost::this_fiber::sleep_for(1ms);
        });
        // Pending reads on both kinds of thread, completed from here.
        std::string got;
        boost::fibers::fiber writer([&] {
            boost::this_fiber::sleep_for(20ms);
            write_str(w.get(), "y");
        });
        worker::get(k).run([&] { read_into(r.get(), got, 1, std::chrono::steady_clock::now() + 5s); });
        writer.join();
        if (got != "xy" && got != "y")
            std::fprintf(stderr, "warm-up: read %zu bytes on worker %d\n", got.size(), static_cast<int>(k));
        gipc::detail::forget_fd(r.get());
        gipc::detail::forget_fd(w.get());
    }
    // Winsock, the thread and socket that serve wait_readable on sockets (started by the
    // first wait that blocks), and the event Wine's Winsock keeps per thread for its
    // synchronous calls (WSAPoll), on this thread and on both workers.
    win::unique_socket s;
    if (win::make_socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP, s) == 0) {
        sockaddr_in at{};
        at.sin_family = AF_INET;
        at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::bind(s.get(), reinterpret_cast<sockaddr*>(&at), sizeof at) == 0) {
            const int fd = static_cast<int>(s.get());
            (void)gipc::wait_readable(fd, 1ms);
            for (auto k : {worker::gipc_algorithm, worker::own_algorithm})
                worker::get(k).run([fd] { (void)gipc::wait_readable(fd, 1ms); });
        }
    }
});

} // namespace

WIN_TEST("fibers sleep on the reactor's timers, never waking early")
{
    const auto start = std::chrono::steady_clock::now();
    std::vector<int> order;
    boost::fibers::fiber a([&] {
        boost::this_fiber::sleep_for(60ms);
        order.push_back(2);
    });
    boost::fibers::fiber b([&] {
        const auto t = std::chrono::steady_clock::now();
        boost::this_fiber::sleep_for(30ms);
        CHECK(ms_since(t) >= 30.0);
        order.push_back(1);
    });
    a.join();
    b.join();
    CHECK(order == std::vector<int>{1, 2});
    CHECK(ms_since(start) >= 60.0);
    CHECK(ms_since(start) < 2000.0);
}

WIN_TEST("a fiber parked in a read lets the thread's other fibers run")
{
    pipe_pair p;
    std::string got;
    std::atomic<int> ticks{0};
    boost::fibers::fiber reader([&] { CHECK(read_into(p.r.get(), got, 100) == 5); });
    boost::fibers::fiber ticker([&] {
        for (int i = 0; i < 5; ++i) {
            boost::this_fiber::sleep_for(10ms);
            ++ticks;
        }
        CHECK(got.empty()); // the reader is still parked
        write_str(p.w.get(), "hello");
    });
    ticker.join();
    reader.join();
    CHECK(ticks == 5);
    CHECK(got == "hello");
}

WIN_TEST("another thread wakes the dispatcher sleeping in the port")
{
    boost::fibers::promise<int> value;
    auto fut = value.get_future();
    gipc_win_test::native_thread t([&] {
        ::Sleep(50);
        value.set_value(42);
    });
    const auto start = std::chrono::steady_clock::now();
    {
        gipc_win_test::deadline_watch watch("a future's get() woken from another thread", 10'000);
        CHECK(fut.get() == 42); // the main fiber waits with no timer: only the post wakes it
    }
    CHECK(ms_since(start) < 2000.0);
    t.join();
}

WIN_TEST("a read that times out loses nothing: the next read gets the bytes")
{
    pipe_pair p;
    std::string got;
    const auto start = std::chrono::steady_clock::now();
    CHECK(read_into(p.r.get(), got, 10, after(50ms)) == -ETIMEDOUT);
    CHECK(ms_since(start) >= 50.0);
    CHECK(read_into(p.r.get(), got, 10, steady_time::min()) == -ETIMEDOUT);
    CHECK(write_str(p.w.get(), "abc") == 3);
    CHECK(read_into(p.r.get(), got, 10, after(1000ms)) == 3);
    CHECK(got == "abc");
}

WIN_TEST("a write that times out reports what it moved, and the reader gets exactly that")
{
    pipe_pair p(4096);
    std::size_t written = 0;
    std::string sent;
    // Fill the pipe until a write pends; the one that pends is cut at its deadline.
    bool timed_out = false;
    for (int i = 0; i < 200 && !timed_out; ++i) {
        const std::string chunk(8192, static_cast<char>('a' + i % 26));
        const ssize_t n = write_str(p.w.get(), chunk, after(30ms));
        if (n == -ETIMEDOUT) {
            timed_out = true;
            break;
        }
        REQUIRE(n > 0);
        written += static_cast<std::size_t>(n);
        sent += chunk.substr(0, static_cast<std::size_t>(n));
    }
    CHECK(timed_out);
    std::string got = read_exactly(p.r.get(), written);
    CHECK(got == sent);
    // Nothing more: the write that timed out moved nothing.
    std::string more;
    CHECK(read_into(p.r.get(), more, 10, after(30ms)) == -ETIMEDOUT);
}

WIN_TEST("the end of the stream and a broken pipe")
{
    {
        pipe_pair p;
        std::string got;
        boost::fibers::fiber closer([&] {
            boost::this_fiber::sleep_for(20ms);
            write_str(p.w.get(), "last");
            pipe_pair::close(p.w);
        });
        CHECK(read_into(p.r.get(), got, 10) == 4);
        CHECK(read_into(p.r.get(), got, 10) == 0); // pending when the write end closed
        CHECK(read_into(p.r.get(), got, 10) == 0); // and at once after
        closer.join();
        CHECK(got == "last");
    }
    {
        pipe_pair p;
        pipe_pair::close(p.r);
        CHECK(write_str(p.w.get(), "lost") == -EPIPE);
    }
    {
        // A write pending in a full pipe when the reader goes.
        pipe_pair p(4096);
        boost::fibers::fiber closer([&] {
            boost::this_fiber::sleep_for(30ms);
            pipe_pair::close(p.r);
        });
        ssize_t n = 0;
        for (int i = 0; i < 100 && n >= 0; ++i)
            n = write_str(p.w.get(), std::string(8192, 'z'));
        CHECK(n == -EPIPE);
        closer.join();
    }
}

WIN_TEST("queued writes: one in flight at a time, its end is the room waited for")
{
    pipe_pair p(4096);
    const std::string big(200 * 1024, 'q');
    const ssize_t taken = io::queue_write(p.w.get(), big.data(), big.size(), nullptr);
    CHECK(taken == static_cast<ssize_t>(big.size())); // copied, in flight
    CHECK(io::queue_write(p.w.get(), "more", 4, nullptr) == 0); // none while one is in flight
    CHECK(io::wait_queue_room(p.w.get(), after(30ms)) == -ETIMEDOUT);

    struct room_callback final : gipc::detail::reactor_callback {
        int calls = 0;
        void on_ready() noexcept override { ++calls; }
    };
    auto cb = std::make_shared<room_callback>();
    auto& loop = gipc::detail::installed_algorithm().reactor();
    CHECK(io::call_when_queue_room(loop, p.w.get(), cb) == 0);
    std::string got;
    boost::fibers::fiber reader([&] { got = read_exactly(p.r.get(), big.size()); });
    CHECK(io::wait_queue_room(p.w.get(), after(5000ms)) == 0);
    reader.join();
    CHECK(got == big);
    for (int i = 0; i < 100 && cb->calls == 0; ++i)
        boost::this_fiber::sleep_for(1ms);
    CHECK(cb->calls == 1);
    // Room now: a small write completes at once, and nothing is in flight.
    CHECK(io::queue_write(p.w.get(), "tail", 4, nullptr) == 4);
    CHECK(io::wait_queue_room(p.w.get(), steady_time::min()) == 0);
    CHECK(read_exactly(p.r.get(), 4) == "tail");
}

WIN_TEST("a queued write's failure is reported by the next queued write")
{
    pipe_pair p(4096);
    const std::string big(100 * 1024, 'f');
    CHECK(io::queue_write(p.w.get(), big.data(), big.size(), nullptr) == static_cast<ssize_t>(big.size()));
    pipe_pair::close(p.r);
    CHECK(io::wait_queue_room(p.w.get(), after(5000ms)) == 0);
    CHECK(io::queue_write(p.w.get(), "x", 1, nullptr) == -EPIPE);
}

WIN_TEST("fibers of another thread of gipc's algorithm use a handle homed on this one")
{
    pipe_pair p;
    std::string got;
    // Homed here: the first operation on each end is this thread's.
    CHECK(write_str(p.w.get(), "one") == 3);
    CHECK(read_into(p.r.get(), got, 3) == 3);
    boost::fibers::fiber writer([&] {
        boost::this_fiber::sleep_for(30ms);
        write_str(p.w.get(), "two");
    });
    ssize_t n = 0, timed = 0;
    worker::get(worker::gipc_algorithm).run([&] {
        timed = read_into(p.r.get(), got, 3, after(1ms));
        n = read_into(p.r.get(), got, 3);
    });
    writer.join();
    CHECK(timed == -ETIMEDOUT);
    CHECK(n == 3);
    CHECK(got == "onetwo");
}

WIN_TEST("a thread of the program's own algorithm waits through the relay")
{
    pipe_pair p;
    std::string got;
    ssize_t n = 0, timed = 0;
    boost::fibers::fiber writer([&] {
        boost::this_fiber::sleep_for(40ms);
        write_str(p.w.get(), "relayed");
    });
    worker::get(worker::own_algorithm).run([&] {
        timed = read_into(p.r.get(), got, 20, after(5ms));
        n = read_into(p.r.get(), got, 20);
    });
    writer.join();
    CHECK(timed == -ETIMEDOUT);
    CHECK(n == 7);
    CHECK(got == "relayed");
}

WIN_TEST("forgetting a handle ends the operations waiting on it with -EBADF")
{
    pipe_pair p;
    ssize_t n = 1;
    boost::fibers::fiber reader([&] {
        std::string got;
        n = read_into(p.r.get(), got, 10);
    });
    boost::this_fiber::sleep_for(20ms);
    gipc::detail::forget_fd(p.r.get());
    reader.join();
    CHECK(n == -EBADF);
}

WIN_TEST("wait_exit: a timeout while the child runs, then its exit")
{
    win::spawn_options options;
    options.application = gipc_win_test::helper_path();
    options.command_line = L"\"" + options.application + L"\" sleep"; // until ended
    win::unique_handle child;
    DWORD pid = 0;
    REQUIRE(win::spawn(options, child, pid) == 0);
    CHECK(io::wait_exit(child.get(), after(20ms)) == -ETIMEDOUT);
    std::atomic<int> ticks{0};
    boost::fibers::fiber ticker([&] {
        for (int i = 0; i < 3; ++i) {
            boost::this_fiber::sleep_for(5ms);
            ++ticks;
        }
        ::TerminateProcess(child.get(), 7);
    });
    CHECK(io::wait_exit(child.get(), after(20000ms)) == 0);
    ticker.join();
    CHECK(ticks == 3);
    CHECK(::WaitForSingleObject(child.get(), 0) == WAIT_OBJECT_0);
    CHECK(io::wait_exit(child.get(), steady_time::min()) == 0); // exited: at once
    gipc::detail::forget_fd(child.get());
}

WIN_TEST("errors carry errno values that compare with std::errc")
{
    try {
        gipc::detail::throw_errno(-ETIMEDOUT, "gipc: read");
        FAIL("no exception");
    } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::timed_out);
        CHECK(std::string(e.what()).find("gipc: read") == 0);
    }
}

namespace {

// tcp_pair: two connected loopback TCP sockets of the program's (plain Winsock, no gipc).
struct tcp_pair {
    win::unique_socket a, b;
    tcp_pair()
    {
        win::unique_socket listener;
        REQUIRE(win::make_socket(AF_INET, SOCK_STREAM, IPPROTO_TCP, listener) == 0);
        sockaddr_in at{};
        at.sin_family = AF_INET;
        at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int len = sizeof at;
        REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&at), sizeof at) == 0);
        REQUIRE(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&at), &len) == 0);
        REQUIRE(::listen(listener.get(), 1) == 0);
        REQUIRE(win::make_socket(AF_INET, SOCK_STREAM, IPPROTO_TCP, a) == 0);
        REQUIRE(::connect(a.get(), reinterpret_cast<sockaddr*>(&at), sizeof at) == 0);
        b.reset(::accept(listener.get(), nullptr, nullptr));
        REQUIRE(b.get() != INVALID_SOCKET);
    }
    int fd_a() const { return static_cast<int>(a.get()); }
    int fd_b() const { return static_cast<int>(b.get()); }
};

void send_byte(const win::unique_socket& s) { REQUIRE(::send(s.get(), "x", 1, 0) == 1); }

} // namespace

WIN_TEST("wait_readable on a socket parks the fiber until the peer sends, while others run")
{
    tcp_pair p;
    std::atomic<int> ticks{0};
    bool woke = false;
    // The untimed wait_readable is what is tested: the watch ends the run if it never returns.
    gipc_win_test::deadline_watch watch("the untimed wait_readable on a socket", 10'000);
    boost::fibers::fiber waiter([&] {
        gipc::wait_readable(p.fd_b());
        woke = true;
        CHECK(ticks == 3); // not before the peer sent
    });
    boost::fibers::fiber ticker([&] {
        for (int i = 0; i < 3; ++i) {
            boost::this_fiber::sleep_for(10ms);
            ++ticks;
        }
        CHECK(!woke);
        send_byte(p.a);
    });
    ticker.join();
    waiter.join();
    CHECK(woke);
    char c = 0;
    CHECK(::recv(p.b.get(), &c, 1, 0) == 1);
    CHECK(c == 'x');
}

WIN_TEST("wait_readable and wait_writable on a socket: timeouts, polls and hang-ups")
{
    tcp_pair p;
    auto t = std::chrono::steady_clock::now();
    CHECK_FALSE(gipc::wait_readable(p.fd_b(), 50ms));
    CHECK(ms_since(t) >= 50.0);
    CHECK(ms_since(t) < 5000.0);
    CHECK_FALSE(gipc::wait_readable(p.fd_b(), 0ms));  // polls
    CHECK_FALSE(gipc::wait_readable(p.fd_b(), -5ms)); // polls
    CHECK(gipc::wait_writable(p.fd_a(), 0ms));        // room in the send buffer
    CHECK(gipc::wait_writable(p.fd_a(), std::chrono::hours::max()));
    gipc::wait_writable(p.fd_a());
    send_byte(p.a);
    CHECK(gipc::wait_readable(p.fd_b(), 5s));
    CHECK(gipc::wait_readable(p.fd_b(), 0ms));
    char c = 0;
    CHECK(::recv(p.b.get(), &c, 1, 0) == 1);
    // The peer's close is a readiness too: the next recv says which (0: the end).
    boost::fibers::fiber closer([&] {
        boost::this_fiber::sleep_for(20ms);
        p.a.reset();
    });
    t = std::chrono::steady_clock::now();
    CHECK(gipc::wait_readable(p.fd_b(), 10s));
    CHECK(ms_since(t) >= 15.0);
    closer.join();
    CHECK(::recv(p.b.get(), &c, 1, 0) == 0);
}

WIN_TEST("wait_readable on a socket from fibers of other threads, of gipc's algorithm and of the program's")
{
    for (auto k : {worker::gipc_algorithm, worker::own_algorithm}) {
        CAPTURE(static_cast<int>(k));
        tcp_pair p;
        bool first = true, second = false;
        boost::fibers::fiber sender([&] {
            boost::this_fiber::sleep_for(30ms);
            send_byte(p.a);
        });
        worker::get(k).run([&] {
            first = gipc::wait_readable(p.fd_b(), 20ms); // times out: nothing sent yet
            second = gipc::wait_readable(p.fd_b(), 10s);
        });
        sender.join();
        CHECK_FALSE(first);
        CHECK(second);
    }
}

WIN_TEST("many fibers wait on many sockets at once; each wakes for its own")
{
    constexpr int n = 20;
    std::vector<std::unique_ptr<tcp_pair>> pairs;
    for (int i = 0; i < n; ++i)
        pairs.push_back(std::make_unique<tcp_pair>());
    std::vector<int> woke_order;
    std::vector<boost::fibers::fiber> waiters;
    for (int i = 0; i < n; ++i)
        waiters.emplace_back([&, i] {
            if (gipc::wait_readable(pairs[i]->fd_b(), 10s))
                woke_order.push_back(i);
        });
    // In reverse order, each after the previous one woke.
    for (int i = n - 1; i >= 0; --i) {
        const std::size_t before = woke_order.size();
        send_byte(pairs[i]->a);
        const auto t = std::chrono::steady_clock::now();
        while (woke_order.size() == before && ms_since(t) < 10000.0)
            boost::this_fiber::sleep_for(1ms);
        REQUIRE(woke_order.size() == before + 1);
        CHECK(woke_order.back() == i);
    }
    for (auto& f : waiters)
        f.join();
}

WIN_TEST("wait_readable on what is not a socket throws std::system_error")
{
    CHECK_THROWS_AS(gipc::wait_readable(-1), std::system_error);
    CHECK_THROWS_AS((void)gipc::wait_readable(-1, 10ms), std::system_error);
    win::unique_handle r, w;
    REQUIRE(win::make_pipe(r, w) == 0); // a pipe's HANDLE is not a SOCKET
    CHECK_THROWS_AS((void)gipc::wait_readable(static_cast<int>(reinterpret_cast<std::intptr_t>(r.get())), 10ms),
                    std::system_error);
    CHECK_THROWS_AS(gipc::wait_writable(static_cast<int>(reinterpret_cast<std::intptr_t>(w.get()))),
                    std::system_error);
}

namespace {

// say_on_stderr writes text to the process's stderr with WriteFile: a hung thread may hold the
// C runtime's lock of its streams.
void say_on_stderr(const char* text)
{
    DWORD written = 0;
    ::WriteFile(::GetStdHandle(STD_ERROR_HANDLE), text, static_cast<DWORD>(std::strlen(text)), &written, nullptr);
}

// exits_meanwhile: the scenario of the deadlock that MinGW-w64's C runtime has between two
// threads ending at once (README.md, "Windows", "What was found under Wine 8"). A std::thread
// ends first; its thread-local object's destructor, which runs while winpthread holds its lock
// of threads (and before libstdc++ calls FreeLibrary, which takes the loader lock), lets one of
// gipc's own threads (platform::start_quiet_thread) end, waits until that thread is about to
// end, and then 200 ms more. gipc's thread has used a thread_local object (as a thread running
// Boost.Fiber does). A thread that ends under the loader lock and needs winpthread's lock of
// threads there (one made by CreateThread and ended by returning) deadlocks with the
// std::thread; gipc's must not. When the threads have not ended within 10 s, it ends the
// process with a message (deadlocked threads cannot be joined); false when the scenario could
// not be set up or did not happen as described.
struct scenario {
    win::unique_handle in_destructor{::CreateEventW(nullptr, TRUE, FALSE, nullptr)};
    win::unique_handle ready{::CreateEventW(nullptr, TRUE, FALSE, nullptr)};  // gipc's thread used its thread_local
    win::unique_handle ending{::CreateEventW(nullptr, TRUE, FALSE, nullptr)}; // gipc's thread is about to end
    std::atomic<bool> overlapped{true}; // each thread saw the other's event in time
};

struct lets_other_end {
    scenario* s;
    ~lets_other_end()
    {
        ::SetEvent(s->in_destructor.get());
        if (::WaitForSingleObject(s->ending.get(), 10'000) != WAIT_OBJECT_0)
            s->overlapped = false;
        ::Sleep(200); // gipc's thread ends meanwhile
    }
};

struct counted {
    int uses = 0;
    ~counted() { uses = -1; }
};

bool exits_meanwhile()
{
    auto* s = new scenario; // freed once both threads are done with it (below)
    if (!s->in_destructor || !s->ready || !s->ending) {
        delete s;
        return false;
    }
    if (gipc::detail::platform::start_quiet_thread(
            [](void* arg) -> void* {
                auto* s = static_cast<scenario*>(arg);
                thread_local counted c;
                ++c.uses;
                // Its first thread_local made winpthread's record of the thread, which takes
                // the lock of threads that the std::thread's exit holds: before that exit.
                ::SetEvent(s->ready.get());
                if (::WaitForSingleObject(s->in_destructor.get(), 10'000) != WAIT_OBJECT_0)
                    s->overlapped = false;
                ::SetEvent(s->ending.get()); // then this thread ends
                return nullptr;
            },
            s) != 0) {
        delete s;
        return false;
    }
    if (::WaitForSingleObject(s->ready.get(), 10'000) != WAIT_OBJECT_0) {
        ::SetEvent(s->in_destructor.get()); // gipc's thread ends; s stays allocated, it may still use it
        return false;
    }
    win::unique_handle joined{::CreateEventW(nullptr, TRUE, FALSE, nullptr)};
    std::optional<std::thread> ending_first;
    try {
        ending_first.emplace([s] {
            thread_local lets_other_end o{s};
            (void)o;
        });
    } catch (const std::system_error&) {
        ::SetEvent(s->in_destructor.get()); // gipc's thread ends; s stays allocated, it may still use it
        return false;
    }
    if (!joined) {
        ending_first->join();
        ::WaitForSingleObject(s->ending.get(), 10'000);
        return false; // s stays allocated: gipc's thread may still use it
    }
    // A deadlock would keep the std::thread from ever ending: join it on a thread of its own,
    // so that this one can give up.
    gipc_win_test::native_thread joiner([&] {
        ending_first->join();
        ::SetEvent(joined.get());
    });
    if (::WaitForSingleObject(joined.get(), 15'000) != WAIT_OBJECT_0
        || ::WaitForSingleObject(s->ending.get(), 15'000) != WAIT_OBJECT_0) {
        say_on_stderr("exits_meanwhile: the threads did not end within 15 s: deadlock\n");
        // The deadlocked threads cannot be joined, and one of them holds the loader lock, which
        // ExitProcess (and so std::_Exit) needs: end the run, failed, without it.
        ::TerminateProcess(::GetCurrentProcess(), 1);
    }
    joiner.join();
    const bool overlapped = s->overlapped;
    delete s; // gipc's thread no longer uses it once it set `ending`
    return overlapped;
}

// winpthread makes an event for its lock of threads the first time two threads contend for it,
// and keeps it: the scenario runs once before the tests, so that it is in every baseline.
const bool exit_scenario_warmed_up = gipc_win_test::register_warm_up([] { (void)exits_meanwhile(); });

} // namespace

WIN_TEST("one of gipc's threads ends while a std::thread runs its thread-local destructors, without a deadlock")
{
    CHECK(exits_meanwhile());
}
