// SPDX-License-Identifier: MIT
// Cooperative sockets: TCP over IPv4 and IPv6, Unix-domain, timeouts, errors, many clients.
// The Windows build (tests/windows/meson.build) compiles the cases that neither fork nor use
// Unix-domain sockets or fd numbers, with the streams of stream_pair over TCP loopback; the
// others sit in blocks it does not compile.
#include "test_support.hpp"
#ifndef _WIN32
#include "small_stack.hpp"
#endif

#include <gipc/detail/test_support.hpp>
#include <gipc/gipc.hpp>

#include <boost/fiber/all.hpp>

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#else
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <thread>

using namespace std::chrono_literals;
using gipc_test::seconds_since;
namespace net = gipc::net;
#ifndef _WIN32
using namespace gipc_test::small_stack;

extern char** environ;
#endif

namespace {

// closed_socket is what native_handle() of a closed socket returns: -1 (INVALID_SOCKET on
// Windows).
const net::native_handle_type closed_socket = static_cast<net::native_handle_type>(-1);

// stream_pair is two connected streams: stream::pair() (Unix-domain) on POSIX; on Windows, which
// has no Unix-domain sockets for gipc, a TCP connection over loopback.
std::pair<net::stream, net::stream> stream_pair()
{
#ifdef _WIN32
    auto server = net::listener::tcp("127.0.0.1", 0);
    auto client = net::stream::connect("127.0.0.1", server.port(), 5s);
    return {std::move(client), server.accept(5s)};
#else
    return net::stream::pair();
#endif
}

// get_option is getsockopt of an int-sized option of the socket s.
int get_option(net::native_handle_type s, int level, int name)
{
    int value = 0;
    socklen_t len = sizeof value;
#ifdef _WIN32
    REQUIRE(::getsockopt(static_cast<SOCKET>(s), level, name, reinterpret_cast<char*>(&value), &len) == 0);
#else
    REQUIRE(::getsockopt(s, level, name, &value, &len) == 0);
#endif
    return value;
}

} // namespace


// A pair whose ends a lambda uses is held in a named variable and its ends are bound to
// references (or the lambda names its capture: `[&w = w]`), not unpacked with `auto [r, w]`
// alone: clang before 16 refuses lambdas that capture structured bindings (scripts/clang.sh
// builds the tests with clang).

#ifndef _WIN32
// Every call of the socket API on fibers whose stacks are small_stack_size bytes: TCP and
// Unix-domain listeners and streams, both ends at once, timeouts and errors.
GIPC_TEST_CHILD("small_stack_net")
{
    std::size_t deepest = 0;
    std::optional<net::listener> tcp;
    // The first gipc call of the thread (which installs the scheduler) is on a small stack too.
    small_stack_fiber(&deepest, [&] {
        guarded("listener::tcp", [&] {
            tcp.emplace(net::listener::tcp("127.0.0.1", 0));
            SMALL_STACK_THROWS(tcp->accept(10ms), gipc::timeout_error);
        });
    }).join();
    if (!tcp)
        return 1;
    const std::string big(4 << 20, 'b'); // far more than the socket buffers hold: write_all waits
    auto server = small_stack_fiber(&deepest, [&] {
        guarded("server", [&] {
            for (int i = 0; i < 2; ++i) {
                net::stream conn = i == 0 ? tcp->accept() : tcp->accept(10s);
                const std::string line = conn.read_line(10s);
                conn.write_all(line);
                std::string got(big.size(), '\0');
                std::size_t n = 0;
                while (n < got.size()) {
                    const std::size_t k = i == 0 ? conn.read_some(got.data() + n, got.size() - n)
                                                 : conn.read_some(got.data() + n, got.size() - n, 10s);
                    if (k == 0)
                        break;
                    n += k;
                }
                SMALL_STACK_EXPECT(n == big.size() && got == big);
                conn.write_all(big + "\n", 10s);
                SMALL_STACK_EXPECT(conn.read_line() == ""); // the client shut its side down
            }
        });
    });
    auto client = small_stack_fiber(&deepest, [&] {
        guarded("client", [&] {
            for (int i = 0; i < 2; ++i) {
                // "localhost" may resolve to ::1 first, which refuses: connect tries the next.
                net::stream c = i == 0 ? net::stream::connect("127.0.0.1", tcp->port())
                                       : net::stream::connect("localhost", tcp->port(), 10s);
                c.write_all("hello\n");
                SMALL_STACK_EXPECT(c.read_line() == "hello\n");
                c.write_all(big);
                SMALL_STACK_EXPECT(c.read_line(10s, big.size() + 1) == big + "\n");
                SMALL_STACK_THROWS(c.read_line(10ms), gipc::timeout_error);
                char byte;
                SMALL_STACK_THROWS(c.read_some(&byte, 1, 10ms), gipc::timeout_error);
                c.shutdown();
                c.close();
                SMALL_STACK_THROWS(c.close(), gipc::closed_error);
            }
        });
    });
    server.join();
    client.join();
    small_stack_fiber(&deepest, [&] {
        guarded("errors", [&] {
            const std::uint16_t closed_port = tcp->port();
            tcp->close();
            SMALL_STACK_THROWS(net::stream::connect("127.0.0.1", closed_port), std::system_error);
            auto [a, b] = net::stream::pair();
            SMALL_STACK_THROWS(a.write_all(big, 10ms), gipc::timeout_error); // nobody reads
            a.close();
            b.close();
        });
    }).join();

    char dir_template[] = "/tmp/gipc-test-XXXXXX";
    if (::mkdtemp(dir_template) == nullptr)
        return 1;
    const std::string path = std::string(dir_template) + "/sock";
    small_stack_fiber(&deepest, [&] {
        guarded("unix", [&] {
            auto l = net::listener::unix_socket(path);
            SMALL_STACK_EXPECT(l.port() == 0);
            auto echo = small_stack_fiber(&deepest, [&] {
                guarded("unix echo", [&] {
                    auto conn = l.accept(10s);
                    conn.write_all(conn.read_line());
                });
            });
            auto c = net::stream::connect_unix(path);
            c.write_all("over unix\n");
            SMALL_STACK_EXPECT(c.read_line(10s) == "over unix\n");
            echo.join();
            auto c2 = net::stream::connect_unix(path, 10s);
            auto conn2 = l.accept(10s);
            c2.write_all("x\n");
            SMALL_STACK_EXPECT(conn2.read_line(10s) == "x\n");
        });
    }).join();
    ::unlink(path.c_str());
    ::rmdir(dir_template);
    return report_small_stack("net", deepest);
}
#endif

TEST_SUITE("net") {

GIPC_TEST("a TCP echo over IPv4 and IPv6")
{
    for (const char* host : {"127.0.0.1", "::1"}) {
        auto server = net::listener::tcp(host, 0);
        REQUIRE(server.port() != 0);
        boost::fibers::fiber echo([&] {
            auto conn = server.accept();
            conn.write_all(conn.read_line());
        });
        auto client = net::stream::connect(host, server.port());
        client.write_all("HELLO\n");
        CHECK(client.read_line() == "HELLO\n");
        echo.join();
    }
}

GIPC_TEST("TCP streams have TCP_NODELAY, connected and accepted; addresses in other numeric forms connect too")
{
    // "127.1" and "0x7f.0.0.1" are 127.0.0.1 to getaddrinfo, not to inet_pton.
    for (const char* host : {"127.0.0.1", "::1", "127.1", "0x7f.0.0.1"}) {
        CAPTURE(host);
        auto server = net::listener::tcp(host[0] == ':' ? "::1" : "127.0.0.1", 0);
        auto client = net::stream::connect(host, server.port());
        auto conn = server.accept();
        for (net::native_handle_type s : {client.native_handle(), conn.native_handle()})
            CHECK(get_option(s, IPPROTO_TCP, TCP_NODELAY) != 0);
        client.write_all("HELLO\n");
        CHECK(conn.read_line() == "HELLO\n");
    }
}

GIPC_TEST("a reply that arrived before the receive after a send is read at once; a zero timeout polls")
{
    // The receive that follows a send on a stream that never waited registers and waits before
    // it tries: the registration must report the reply that is already there.
    auto server = net::listener::tcp("127.0.0.1", 0);
    for (int round = 0; round < 3; ++round) {
        CAPTURE(round);
        auto client = net::stream::connect("127.0.0.1", server.port());
        auto conn = server.accept(5s);
        client.write_all("ping\n");
        CHECK(conn.read_line(5s) == "ping\n");
        conn.write_all("pong\n");
        boost::this_fiber::sleep_for(20ms); // the reply is in client's receive queue now
        const auto start = std::chrono::steady_clock::now();
        if (round == 0) {
            CHECK(client.read_line() == "pong\n");
        } else if (round == 1) {
            CHECK(client.read_line(5s) == "pong\n");
        } else {
            char buf[8];
            const std::size_t n = client.read_some(buf, sizeof buf, 0ms);
            CHECK(std::string(buf, n) == "pong\n");
        }
        CHECK(seconds_since(start) < 1.0);
        // Nothing more comes: a timed receive after another send times out, then the data
        // sent after it is read.
        client.write_all("again\n");
        CHECK(conn.read_line(5s) == "again\n");
        CHECK_THROWS_AS(client.read_line(20ms), gipc::timeout_error);
        conn.write_all("late\n");
        CHECK(client.read_line(5s) == "late\n");
    }
}

GIPC_TEST("sockets are close-on-exec, non-blocking gipc handles (on Windows: not inheritable)")
{
    const auto before = gipc::detail::open_handle_count();
    auto server = net::listener::tcp("127.0.0.1", 0);
    auto client = net::stream::connect("127.0.0.1", server.port());
    auto conn = server.accept();
    CHECK(gipc::detail::open_handle_count() == before + 3);
    for (net::native_handle_type s : {server.native_handle(), client.native_handle(), conn.native_handle()}) {
#ifdef _WIN32
        // native_handle() is the SOCKET: Winsock knows it, and it is a stream socket.
        CHECK(get_option(s, SOL_SOCKET, SO_TYPE) == SOCK_STREAM);
        DWORD flags = ~DWORD(0);
        REQUIRE(::GetHandleInformation(reinterpret_cast<HANDLE>(s), &flags));
        CHECK((flags & HANDLE_FLAG_INHERIT) == 0);
#else
        CHECK((::fcntl(s, F_GETFD) & FD_CLOEXEC) != 0);
        CHECK((::fcntl(s, F_GETFL) & O_NONBLOCK) != 0);
#endif
    }
#ifdef _WIN32
    const net::native_handle_type closed = conn.native_handle();
#endif
    conn.close();
    CHECK(conn.closed());
    CHECK(conn.native_handle() == closed_socket);
#ifdef _WIN32
    // Closed with closesocket: Winsock knows the SOCKET no more.
    int type = 0;
    socklen_t len = sizeof type;
    CHECK(::getsockopt(static_cast<SOCKET>(closed), SOL_SOCKET, SO_TYPE, reinterpret_cast<char*>(&type), &len) != 0);
    CHECK(::WSAGetLastError() == WSAENOTSOCK);
#endif
    CHECK_THROWS_AS(conn.close(), gipc::closed_error);
    CHECK_THROWS_AS(conn.write_all("x"), gipc::closed_error);
}

GIPC_TEST("accept with a timeout throws timeout_error")
{
    auto server = net::listener::tcp("127.0.0.1", 0);
    auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(server.accept(50ms), gipc::timeout_error);
    CHECK(seconds_since(start) >= 0.05);
    CHECK(seconds_since(start) < 1.0);
}

GIPC_TEST("connect to a closed port throws std::system_error with ECONNREFUSED")
{
    std::uint16_t port;
    {
        auto server = net::listener::tcp("127.0.0.1", 0);
        port = server.port();
    }
    try {
        net::stream::connect("127.0.0.1", port, 5s);
        FAIL("connect succeeded");
    } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::connection_refused);
    }
}

#ifndef _WIN32
GIPC_TEST("an fd number reused after a refused connect is watched again")
{
    // A refused connect waited on its socket in this thread's reactor; the pipe that gets the
    // same fd number next must still wake its reader.
    std::uint16_t port;
    {
        auto server = net::listener::tcp("127.0.0.1", 0);
        port = server.port();
    }
    const int lowest_free = ::fcntl(0, F_DUPFD_CLOEXEC, 0);
    REQUIRE(lowest_free >= 0);
    ::close(lowest_free);
    CHECK_THROWS_AS(net::stream::connect("127.0.0.1", port, 5s), std::system_error);
    auto reuse = [&](int socket_fd) {
        auto [r, w] = gipc::pipe();
        REQUIRE(r.native_handle() == socket_fd); // the socket's number
        boost::fibers::fiber writer([&w = w] {
            boost::this_fiber::sleep_for(20ms);
            w.put(42);
        });
        int got = 0;
        CHECK_NOTHROW(got = r.get<int>(5s));
        CHECK(got == 42);
        writer.join();
    };
    reuse(lowest_free);

    // A connect that times out has surely waited in the reactor: the kernel drops the SYNs
    // sent to a listener whose accept queue is full.
    auto full = net::listener::tcp("127.0.0.1", 0, 1);
    std::vector<net::stream> queued;
    for (int i = 0; i < 2; ++i)
        queued.push_back(net::stream::connect("127.0.0.1", full.port(), 5s));
    const int lowest_now = ::fcntl(0, F_DUPFD_CLOEXEC, 0);
    REQUIRE(lowest_now >= 0);
    ::close(lowest_now);
    const auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(net::stream::connect("127.0.0.1", full.port(), 200ms), gipc::timeout_error);
    CHECK(seconds_since(start) >= 0.19);
    reuse(lowest_now);
}
#endif

GIPC_TEST("a peer closing mid-line makes read_line throw eof_error; a clean close gives \"\"")
{
    auto server = net::listener::tcp("127.0.0.1", 0);
    auto client = net::stream::connect("127.0.0.1", server.port());
    auto conn = server.accept();
    client.write_all("complete\npartial");
    client.close();
    CHECK(conn.read_line() == "complete\n");
    CHECK_THROWS_WITH_AS(conn.read_line(), doctest::Contains("middle of a line"), gipc::eof_error);

    auto client2 = net::stream::connect("127.0.0.1", server.port());
    auto conn2 = server.accept();
    client2.shutdown(SHUT_WR);
    CHECK(conn2.read_line() == "");
    char c;
    CHECK(conn2.read_some(&c, 1) == 0);
}

GIPC_TEST("read timeouts keep the data: read_line continues where it stopped")
{
    auto [a, b] = stream_pair();
    a.write_all("first half, ");
    CHECK_THROWS_AS(b.read_line(30ms), gipc::timeout_error);
    a.write_all("second half\n");
    CHECK(b.read_line(1s) == "first half, second half\n");
    char buf[8];
    CHECK_THROWS_AS(b.read_some(buf, sizeof buf, 20ms), gipc::timeout_error);
}

GIPC_TEST("read_line: long lines, several lines per receive, read_some after, max_length")
{
    auto ends = stream_pair();
    net::stream& a = ends.first;
    net::stream& b = ends.second;
    const std::string long_line = std::string(300000, 'x') + "\n";
    boost::fibers::fiber writer([&] { a.write_all(long_line + "one\ntwo\nthree"); });
    CHECK(b.read_line() == long_line);
    CHECK(b.read_line() == "one\n");
    CHECK(b.read_line() == "two\n");
    writer.join();
    char buf[16];
    CHECK(b.read_some(buf, sizeof buf) == 5); // "three" was read ahead with the lines
    CHECK(std::string(buf, 5) == "three");
    a.write_all(std::string(5000, 'y'));
    CHECK_THROWS_WITH_AS(b.read_line(1s, 1000), doctest::Contains("longer than"), gipc::error);
}

GIPC_TEST("write_all blocks cooperatively while the peer is slow")
{
    auto ends = stream_pair();
    net::stream& a = ends.first;
    net::stream& b = ends.second;
    const std::string big(8 * 1024 * 1024, 'z');
    boost::fibers::fiber writer([&] {
        a.write_all(big);
        a.shutdown(SHUT_WR);
    });
    std::string got;
    char buf[65536];
    for (;;) {
        std::size_t n = b.read_some(buf, sizeof buf);
        if (n == 0)
            break;
        got.append(buf, n);
    }
    writer.join();
    CHECK(got == big);
    CHECK_THROWS_AS(a.write_all(big, 1ms), std::exception); // write side shut down
}

GIPC_TEST("close while another fiber is blocked on the socket throws locked_error")
{
    auto server = net::listener::tcp("127.0.0.1", 0);
    boost::fibers::fiber acceptor([&] { CHECK_THROWS_AS(server.accept(100ms), gipc::timeout_error); });
    boost::this_fiber::yield();
    CHECK_THROWS_AS(server.close(), gipc::locked_error);
    acceptor.join();
    server.close();
}

GIPC_TEST("1000 concurrent connections served by one thread")
{
#ifndef _WIN32
    gipc_test::raise_fd_limit();
#endif
    constexpr int n = 1000;
    auto server = net::listener::tcp("127.0.0.1", 0);
    int served = 0;
    boost::fibers::fiber server_fiber([&] {
        std::vector<boost::fibers::fiber> handlers;
        for (int i = 0; i < n; ++i)
            handlers.emplace_back(
                [&](net::stream conn) {
                    // Hold every connection open until all clients are connected.
                    auto line = conn.read_line();
                    conn.write_all(line);
                    ++served;
                },
                server.accept(10s));
        for (auto& h : handlers)
            h.join();
    });
    std::atomic<int> ok{0};
    std::vector<net::stream> clients;
    for (int i = 0; i < n; ++i)
        clients.push_back(net::stream::connect("127.0.0.1", server.port()));
    std::vector<boost::fibers::fiber> fs;
    for (int i = 0; i < n; ++i)
        fs.emplace_back([&, i] {
            const std::string msg = "client " + std::to_string(i) + "\n";
            clients[size_t(i)].write_all(msg);
            if (clients[size_t(i)].read_line(10s) == msg)
                ++ok;
        });
    for (auto& f : fs)
        f.join();
    server_fiber.join();
    CHECK(ok == n);
    CHECK(served == n);
}

GIPC_TEST("an accept loop with short timeouts serves every client, connections arriving as accepts time out")
{
    // The server of examples/serverclient.cpp (accept with a timeout until told to stop, a
    // fiber per connection), with a timeout of 2 ms instead of its 50 ms, so that accepts time
    // out all along while clients connect at any moment, among them the moments a timed-out
    // accept is being given up (on Windows: its AcceptEx cancelled, its packet waited for).
    constexpr int n = 100;
    auto server = net::listener::tcp("127.0.0.1", 0);
    const std::uint16_t port = server.port();
    bool stop = false;
    int timeouts = 0;
    boost::fibers::fiber server_fiber([&] {
        std::vector<boost::fibers::fiber> handlers;
        while (!stop) {
            try {
                handlers.emplace_back(
                    [](net::stream conn) {
                        try {
                            conn.write_all(conn.read_line(10s));
                        } catch (const std::exception& e) {
                            FAIL_CHECK("server: " << e.what());
                        }
                    },
                    server.accept(2ms));
            } catch (const gipc::timeout_error&) {
                ++timeouts;
            }
        }
        for (auto& h : handlers)
            h.join();
    });
    int ok = 0;
    // In 10 waves of clients, each started once an accept timed out after the last wave was
    // served: accepts time out between the waves, and each wave's connections arrive while an
    // accept is pending or being given up.
    for (int wave = 0; wave < 10; ++wave) {
        const int seen = timeouts;
        while (timeouts == seen)
            boost::this_fiber::sleep_for(1ms);
        std::vector<boost::fibers::fiber> clients;
        for (int i = wave * n / 10; i < (wave + 1) * n / 10; ++i)
            clients.emplace_back([&, i] {
                auto conn = net::stream::connect("127.0.0.1", port, 10s);
                const std::string msg = "client " + std::to_string(i) + "\n";
                conn.write_all(msg);
                if (conn.read_line(10s) == msg)
                    ++ok;
            });
        for (auto& c : clients)
            c.join();
    }
    stop = true;
    server_fiber.join();
    CHECK(ok == n);
    CHECK(timeouts >= 10);
}

#ifndef _WIN32
GIPC_TEST("a Unix socket pair between two processes")
{
    auto [mine, theirs] = net::stream::pair();
    auto p = gipc::start_process(
        [](net::stream s) {
            for (;;) {
                auto line = s.read_line();
                if (line.empty())
                    return 0;
                s.write_all("echo: " + line);
            }
        },
        std::move(theirs));
    CHECK(theirs.closed());
    mine.write_all("one\ntwo\n");
    CHECK(mine.read_line(5s) == "echo: one\n");
    CHECK(mine.read_line(5s) == "echo: two\n");
    mine.shutdown(SHUT_WR);
    p.join();
    CHECK(p.exitcode() == 0);
    CHECK(mine.read_line() == "");
}

GIPC_TEST("a Unix-domain listener, and a listener passed to a child that accepts on it")
{
    char dir_template[] = "/tmp/gipc-test-XXXXXX";
    REQUIRE(::mkdtemp(dir_template) != nullptr);
    const std::string path = std::string(dir_template) + "/sock";
    {
        auto server = net::listener::unix_socket(path);
        CHECK(server.port() == 0);
        auto p = gipc::start_process(
            [](net::listener l) {
                auto conn = l.accept(10s);
                conn.write_all(conn.read_line());
            },
            std::move(server));
        CHECK(server.closed());
        auto client = net::stream::connect_unix(path, 5s);
        client.write_all("via the child\n");
        CHECK(client.read_line(5s) == "via the child\n");
        p.join();
        CHECK(p.exitcode() == 0);
    }
    ::unlink(path.c_str());
    ::rmdir(dir_template);
}

GIPC_TEST("sockets not passed to a child are closed in it")
{
    auto server = net::listener::tcp("127.0.0.1", 0);
    const int fd = server.native_handle();
    auto p = gipc::start_process([fd] { return gipc_test::open_fds().count(fd) ? 1 : 0; });
    p.join();
    CHECK(p.exitcode() == 0);
    CHECK_FALSE(server.closed());
}

GIPC_TEST("a Unix connect to a listener with a full backlog waits for room, or times out")
{
    char dir_template[] = "/tmp/gipc-test-XXXXXX";
    REQUIRE(::mkdtemp(dir_template) != nullptr);
    const std::string path = std::string(dir_template) + "/sock";
    {
        // Backlog 1: the kernel queues up to 2 connections nobody accepted yet; the next
        // non-blocking connect() fails with EAGAIN.
        auto server = net::listener::unix_socket(path, 1);
        std::vector<int> queued; // connected, not accepted: they fill the backlog
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
        for (;;) {
            const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
            REQUIRE(fd >= 0);
            if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
                queued.push_back(fd);
                REQUIRE(queued.size() < 100);
                continue;
            }
            const int err = errno;
            ::close(fd);
            REQUIRE(err == EAGAIN);
            break;
        }
        // Full: a timed connect waits, then says so.
        auto start = std::chrono::steady_clock::now();
        CHECK_THROWS_AS(net::stream::connect_unix(path, 100ms), gipc::timeout_error);
        CHECK(seconds_since(start) >= 0.1);
        CHECK(seconds_since(start) < 2.0);

        // Room made while a connect waits: it gets through.
        boost::fibers::fiber acceptor([&] {
            boost::this_fiber::sleep_for(30ms);
            for (std::size_t i = 0; i < queued.size(); ++i)
                server.accept(5s); // closed right away
            auto conn = server.accept(5s); // the waiting connect's
            conn.write_all(conn.read_line(5s));
        });
        start = std::chrono::steady_clock::now();
        auto client = net::stream::connect_unix(path, 5s);
        CHECK(seconds_since(start) >= 0.03);
        client.write_all("made it\n");
        CHECK(client.read_line(5s) == "made it\n");
        acceptor.join();
        for (int fd : queued)
            ::close(fd);
    }
    ::unlink(path.c_str());
    ::rmdir(dir_template);
}

GIPC_TEST("listener::tcp(\"\") listens on IPv4 alone where IPv6 is unavailable")
{
    // In a child whose seccomp filter makes socket(AF_INET6, ...) fail with EAFNOSUPPORT, as
    // on a kernel without IPv6.
    auto [r, w] = gipc::pipe();
    auto p = gipc::start_process(
        [](gipc::writer w) {
            if (!gipc_test::refuse_ipv6_sockets())
                return 2;
            if (::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0) >= 0 || errno != EAFNOSUPPORT)
                return 3;
            auto server = net::listener::tcp("", 0);
            w.put(int(server.port()));
            auto conn = server.accept(10s);
            conn.write_all(conn.read_line(10s));
            return 0;
        },
        std::move(w));
    const int port = r.get<int>(10s);
    auto client = net::stream::connect("127.0.0.1", std::uint16_t(port), 5s);
    client.write_all("over IPv4\n");
    CHECK(client.read_line(5s) == "over IPv4\n");
    REQUIRE(p.join(10s));
    CHECK(p.exitcode() == 0);
}

GIPC_TEST("listener::tcp(\"\") on a port taken for IPv6 reports EADDRINUSE instead of listening on IPv4 alone")
{
    const int taken = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(taken >= 0);
    const int one = 1;
    REQUIRE(::setsockopt(taken, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) == 0);
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_addr = in6addr_any;
    socklen_t len = sizeof addr;
    REQUIRE(::bind(taken, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(taken, 4) == 0);
    REQUIRE(::getsockname(taken, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    try {
        auto l = net::listener::tcp("", ntohs(addr.sin6_port));
        FAIL_CHECK("listened on port " << l.port() << ", which IPv6 has taken");
    } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::address_in_use);
    }
    ::close(taken);
}

GIPC_TEST("every socket call works on a 16 KiB fiber stack")
{
    CHECK(run_small_stack_helper("small_stack_net") == 0);
}
#else
GIPC_TEST("no Unix-domain sockets on Windows: connect_unix, pair and unix_socket throw EAFNOSUPPORT")
{
    const auto refused = [](auto&& call) {
        try {
            call();
            FAIL_CHECK("a Unix-domain socket call succeeded");
        } catch (const std::system_error& e) {
            CHECK(e.code() == std::errc::address_family_not_supported);
        }
    };
    refused([] { net::stream::connect_unix("gipc-test.sock"); });
    refused([] { net::stream::connect_unix("gipc-test.sock", 1s); });
    refused([] { net::stream::pair(); });
    refused([] { net::listener::unix_socket("gipc-test.sock"); });
}

GIPC_TEST("a handle value reused after a refused or timed-out connect is watched again")
{
    // What "an fd number reused after a refused connect is watched again" checks on POSIX: a
    // connect that waited has its socket associated with this thread's completion port and
    // known to the backend; the pipe end that gets the same handle value next must still
    // complete its reads. The next handle takes the value an event just closed had (the lowest
    // free one under Wine, the last freed one on Windows): the connect's socket, then the pipe.
    const auto next_handle_value = [] {
        const HANDLE e = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
        REQUIRE(e != nullptr);
        ::CloseHandle(e);
        return e;
    };
    const auto reuse = [](HANDLE socket_value) {
        auto [r, w] = gipc::pipe();
        REQUIRE(r.native_handle() == socket_value);
        boost::fibers::fiber writer([&w = w] {
            boost::this_fiber::sleep_for(20ms);
            w.put(42);
        });
        int got = 0;
        CHECK_NOTHROW(got = r.get<int>(5s));
        CHECK(got == 42);
        writer.join();
    };
    std::uint16_t port;
    {
        auto server = net::listener::tcp("127.0.0.1", 0);
        port = server.port();
    }
    HANDLE value = next_handle_value();
    CHECK_THROWS_AS(net::stream::connect("127.0.0.1", port, 5s), std::system_error);
    reuse(value);

    // A connect that times out (its ConnectEx cancelled): the SYNs sent to a listener whose
    // accept queue is full are dropped.
    auto full = net::listener::tcp("127.0.0.1", 0, 1);
    std::vector<net::stream> queued;
    for (int i = 0; i < 2; ++i)
        queued.push_back(net::stream::connect("127.0.0.1", full.port(), 5s));
    value = next_handle_value();
    const auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(net::stream::connect("127.0.0.1", full.port(), 200ms), gipc::timeout_error);
    CHECK(seconds_since(start) >= 0.19);
    reuse(value);
}

GIPC_TEST("a name resolves: localhost connects")
{
    // "localhost" is no numeric address: resolved by getaddrinfo on a thread of its own.
    auto server = net::listener::tcp("127.0.0.1", 0);
    auto client = net::stream::connect("localhost", server.port(), 5s);
    auto conn = server.accept(5s);
    client.write_all("by name\n");
    CHECK(conn.read_line(5s) == "by name\n");
}
#endif

} // TEST_SUITE
