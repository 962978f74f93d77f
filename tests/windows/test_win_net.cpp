// SPDX-License-Identifier: MIT
// The socket operations of io_ops.hpp on the IOCP backend (src/windows/iocp_io.cpp): overlapped
// AcceptEx, ConnectEx, WSARecv and WSASend on TCP sockets over IPv4 and IPv6 loopback, under
// gipc's scheduling algorithm: fibers parked in accept and receive while others run, timeouts
// that lose nothing, refused connections, the end of the stream, a large transfer, forgotten
// sockets, and a thread of the program's own algorithm served by the relay.
#include "win_support.hpp"

#include "io_ops.hpp"
#include "reactor.hpp"
#include "scheduler.hpp"
#include "windows/socket.hpp"

#include <gipc/runtime.hpp>

#include <boost/fiber/algo/round_robin.hpp>
#include <boost/fiber/all.hpp>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>

using namespace std::chrono_literals;
namespace io = gipc::detail::io;
namespace win = gipc::detail::win;
using gipc::detail::native_socket;
using gipc::detail::steady_time;

namespace {

steady_time after(std::chrono::milliseconds d) { return std::chrono::steady_clock::now() + d; }

double ms_since(std::chrono::steady_clock::time_point t)
{
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

// sock: a socket as gipc holds one, forgotten by the reactors before it is closed.
struct sock {
    win::unique_socket s;
    sock() = default;
    explicit sock(native_socket n) : s(static_cast<SOCKET>(n)) {}
    sock(sock&&) = default;
    sock& operator=(sock&& other) noexcept
    {
        close();
        s = std::move(other.s);
        return *this;
    }
    ~sock() { close(); }
    void close()
    {
        if (s) {
            gipc::detail::forget_fd(reinterpret_cast<HANDLE>(s.get()));
            s.reset();
        }
    }
    native_socket get() const { return static_cast<native_socket>(s.get()); }
};

sock new_socket(int family)
{
    sock out;
    REQUIRE(win::make_socket(family, SOCK_STREAM, 0, out.s) == 0);
    return out;
}

// loopback: the loopback address of family, with port.
sockaddr_storage loopback(int family, std::uint16_t port, int& len)
{
    sockaddr_storage a{};
    if (family == AF_INET) {
        auto* v4 = reinterpret_cast<sockaddr_in*>(&a);
        v4->sin_family = AF_INET;
        v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        v4->sin_port = htons(port);
        len = sizeof *v4;
    } else {
        auto* v6 = reinterpret_cast<sockaddr_in6*>(&a);
        v6->sin6_family = AF_INET6;
        v6->sin6_addr = in6addr_loopback;
        v6->sin6_port = htons(port);
        len = sizeof *v6;
    }
    return a;
}

struct listening {
    sock s;
    std::uint16_t port = 0;
    int family;
    explicit listening(int f) : s(new_socket(f)), family(f)
    {
        int len = 0;
        sockaddr_storage a = loopback(f, 0, len);
        REQUIRE(::bind(s.s.get(), reinterpret_cast<sockaddr*>(&a), len) == 0);
        REQUIRE(::listen(s.s.get(), SOMAXCONN) == 0);
        int alen = sizeof a;
        REQUIRE(::getsockname(s.s.get(), reinterpret_cast<sockaddr*>(&a), &alen) == 0);
        port = ntohs(f == AF_INET ? reinterpret_cast<sockaddr_in*>(&a)->sin_port
                                  : reinterpret_cast<sockaddr_in6*>(&a)->sin6_port);
    }
    int connect(sock& c, steady_time deadline = steady_time::max()) const
    {
        int len = 0;
        sockaddr_storage a = loopback(family, port, len);
        return io::connect(c.get(), reinterpret_cast<sockaddr*>(&a), static_cast<unsigned>(len), deadline);
    }
};

// connected: a client and the server's end of one connection.
struct connected {
    sock client, server;
    explicit connected(const listening& l)
    {
        client = new_socket(l.family);
        native_socket accepted = -1;
        boost::fibers::fiber acceptor([&] { accepted = io::accept(l.s.get(), after(5000ms)); });
        const int c = l.connect(client, after(5000ms));
        acceptor.join();
        REQUIRE(c == 0);
        REQUIRE(accepted >= 0);
        server = sock(accepted);
    }
};

ssize_t send_str(const sock& s, const std::string& data, steady_time deadline = steady_time::max())
{
    return io::send(s.get(), data.data(), data.size(), deadline);
}

ssize_t receive_into(const sock& s, std::string& out, std::size_t most, steady_time deadline = steady_time::max())
{
    std::string buf(most, '\0');
    const ssize_t n = io::receive(s.get(), buf.data(), buf.size(), deadline);
    if (n > 0)
        out.append(buf.data(), static_cast<std::size_t>(n));
    return n;
}

// A program's own algorithm (gipc keeps it: it replaces round_robin itself only), whose gipc
// waits go through the relay.
class program_algorithm final : public boost::fibers::algo::round_robin {
};

// own_thread: a long-lived thread of the program's own algorithm that runs one job at a time
// for a fiber of the main thread. Never ended: Boost.Fiber leaves a thread's scheduler behind
// when the thread ends under MinGW-w64 (README.md, "Windows"), which the leak check would count.
class own_thread {
public:
    static own_thread& get()
    {
        static own_thread* one = new own_thread;
        return *one;
    }
    // run runs job on the thread and parks the calling fiber until it is done.
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
    own_thread() : thread_([] { boost::fibers::use_scheduling_algorithm<program_algorithm>(); }) {}
    gipc_win_test::job_thread thread_;
};

// What the process opens once and keeps: Winsock, the main thread's reactor, a connection's
// worth of Winsock's own handles, the relay thread and its reactor. No doctest assertions here:
// the warm-up runs before doctest does (a failure shows in the tests).
const bool warmed_up = gipc_win_test::register_warm_up([] {
    gipc::use_reactor();
    for (int family : {AF_INET, AF_INET6}) {
        sock l, client;
        if (const int e = win::make_socket(family, SOCK_STREAM, 0, l.s) != 0 ? ::WSAGetLastError() : 0) {
            std::fprintf(stderr, "warm-up: no socket of family %d: %d\n", family, e);
            return;
        }
        int len = 0;
        sockaddr_storage a = loopback(family, 0, len);
        int alen = sizeof a;
        if (::bind(l.s.get(), reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(l.s.get(), 4) != 0 ||
            ::getsockname(l.s.get(), reinterpret_cast<sockaddr*>(&a), &alen) != 0 ||
            win::make_socket(family, SOCK_STREAM, 0, client.s) != 0)
            return;
        native_socket accepted = -1;
        boost::fibers::fiber acceptor([&] { accepted = io::accept(l.get(), after(5000ms)); });
        io::connect(client.get(), reinterpret_cast<sockaddr*>(&a), static_cast<unsigned>(alen), after(5000ms));
        acceptor.join();
        if (accepted < 0)
            return;
        sock server(accepted);
        std::string got;
        send_str(client, "x");
        receive_into(server, got, 1);
        // A receive of the program's own thread, through the relay.
        boost::fibers::fiber sender([&] {
            boost::this_fiber::sleep_for(10ms);
            send_str(client, "y");
        });
        own_thread::get().run([&] { receive_into(server, got, 1, after(5000ms)); });
        sender.join();
    }
});

} // namespace

TEST_CASE_TEMPLATE_DEFINE("accept and connect on loopback, then both ways", T, net_family)
{
    gipc_win_test::handle_leak_check leaks;
    const int family = T::value;
    listening l(family);
    connected c(l);
    std::string got;
    CHECK(send_str(c.client, "hello") == 5);
    CHECK(receive_into(c.server, got, 100) == 5);
    CHECK(send_str(c.server, "back") == 4);
    CHECK(receive_into(c.client, got, 100) == 4);
    CHECK(got == "helloback");
}
TEST_CASE_TEMPLATE_INVOKE(net_family, std::integral_constant<int, AF_INET>, std::integral_constant<int, AF_INET6>);

WIN_TEST("a fiber parked in accept and one in receive let the thread's other fibers run")
{
    listening l(AF_INET);
    std::atomic<int> ticks{0};
    native_socket accepted = -1;
    std::string got;
    boost::fibers::fiber acceptor([&] {
        accepted = io::accept(l.s.get(), steady_time::max());
        sock server(accepted);
        CHECK(receive_into(server, got, 100) == 3);
    });
    for (int i = 0; i < 5; ++i) {
        boost::this_fiber::sleep_for(10ms);
        ++ticks;
    }
    CHECK(accepted == -1); // still parked
    sock client = new_socket(AF_INET);
    REQUIRE(l.connect(client) == 0);
    boost::this_fiber::sleep_for(20ms);
    CHECK(got.empty()); // parked in receive
    CHECK(send_str(client, "abc") == 3);
    acceptor.join();
    CHECK(ticks == 5);
    CHECK(got == "abc");
}

WIN_TEST("an accept and a receive that time out lose nothing")
{
    listening l(AF_INET6);
    const auto start = std::chrono::steady_clock::now();
    CHECK(io::accept(l.s.get(), after(50ms)) == -ETIMEDOUT);
    CHECK(ms_since(start) >= 50.0);
    connected c(l); // the listener still accepts after the cancelled AcceptEx
    std::string got;
    CHECK(receive_into(c.server, got, 10, after(30ms)) == -ETIMEDOUT);
    CHECK(receive_into(c.server, got, 10, steady_time::min()) == -ETIMEDOUT);
    CHECK(send_str(c.client, "abc") == 3);
    CHECK(receive_into(c.server, got, 10, after(2000ms)) == 3);
    CHECK(got == "abc");
}

WIN_TEST("a connection refused, and the end of the stream after a shutdown or a close")
{
    std::uint16_t port;
    {
        listening gone(AF_INET);
        port = gone.port;
    }
    sock c = new_socket(AF_INET);
    int len = 0;
    sockaddr_storage a = loopback(AF_INET, port, len);
    CHECK(io::connect(c.get(), reinterpret_cast<sockaddr*>(&a), static_cast<unsigned>(len), after(5000ms)) ==
          -ECONNREFUSED);

    listening l(AF_INET);
    connected x(l);
    std::string got;
    CHECK(send_str(x.client, "last") == 4);
    REQUIRE(::shutdown(x.client.s.get(), SD_SEND) == 0);
    CHECK(receive_into(x.server, got, 100) == 4);
    CHECK(receive_into(x.server, got, 100) == 0);
    CHECK(got == "last");
    // The other direction still works after the half close.
    CHECK(send_str(x.server, "ok") == 2);
    CHECK(receive_into(x.client, got, 100) == 2);
    x.client.close();
    CHECK(receive_into(x.server, got, 100, after(2000ms)) == 0);
}

WIN_TEST("a large transfer arrives whole and in order while the receiver is slow")
{
    listening l(AF_INET);
    connected c(l);
    std::string data(4 << 20, '\0');
    for (std::size_t i = 0; i < data.size(); ++i)
        data[i] = static_cast<char>(i * 7 + i / 1000);
    boost::fibers::fiber sender([&] {
        std::size_t done = 0;
        while (done < data.size()) {
            const ssize_t n = io::send(c.client.get(), data.data() + done, data.size() - done, after(10000ms));
            REQUIRE(n > 0);
            done += static_cast<std::size_t>(n);
        }
    });
    std::string got;
    boost::this_fiber::sleep_for(20ms);
    while (got.size() < data.size()) {
        const ssize_t n = receive_into(c.server, got, 256 * 1024, after(10000ms));
        REQUIRE(n > 0);
    }
    sender.join();
    CHECK(got == data);
}

WIN_TEST("forgetting a socket ends the receive and the accept waiting on it with -EBADF")
{
    listening l(AF_INET);
    connected c(l);
    ssize_t n = 1;
    native_socket a = 1;
    boost::fibers::fiber receiver([&] {
        std::string got;
        n = receive_into(c.server, got, 10);
    });
    boost::fibers::fiber acceptor([&] { a = io::accept(l.s.get(), steady_time::max()); });
    boost::this_fiber::sleep_for(20ms);
    gipc::detail::forget_fd(reinterpret_cast<HANDLE>(c.server.s.get()));
    gipc::detail::forget_fd(reinterpret_cast<HANDLE>(l.s.s.get()));
    receiver.join();
    acceptor.join();
    CHECK(n == -EBADF);
    CHECK(a == -EBADF);
}

WIN_TEST("a thread of the program's own algorithm receives through the relay")
{
    listening l(AF_INET);
    connected c(l);
    std::string got;
    ssize_t n = 0, timed = 0;
    boost::fibers::fiber sender([&] {
        boost::this_fiber::sleep_for(40ms);
        send_str(c.client, "relayed");
    });
    own_thread::get().run([&] {
        timed = receive_into(c.server, got, 20, after(5ms));
        n = receive_into(c.server, got, 20, after(5000ms));
    });
    sender.join();
    CHECK(timed == -ETIMEDOUT);
    CHECK(n == 7);
    CHECK(got == "relayed");
}

WIN_TEST("socket errors map to errno values")
{
    CHECK(win::socket_errno(WSAECONNREFUSED) == -ECONNREFUSED);
    CHECK(win::socket_errno(ERROR_CONNECTION_REFUSED) == -ECONNREFUSED);
    CHECK(win::socket_errno(WSAECONNRESET) == -ECONNRESET);
    CHECK(win::socket_errno(ERROR_NETNAME_DELETED) == -ECONNRESET);
    CHECK(win::socket_errno(WSAEADDRINUSE) == -EADDRINUSE);
    CHECK(win::socket_errno(WSAEAFNOSUPPORT) == -EAFNOSUPPORT);
}

// ---- socket_os (src/windows/socket_os.cpp), what gipc::net makes its sockets with ----

#include "socket_os.hpp"

namespace socket_os = gipc::detail::socket_os;

WIN_TEST("socket_os: a dual-stack wildcard listener takes IPv4 and IPv6, a taken port is EADDRINUSE")
{
    const native_socket ls = socket_os::open_stream_socket(AF_INET6);
    REQUIRE(ls >= 0);
    sock l(ls);
    sockaddr_in6 any{};
    any.sin6_family = AF_INET6;
    any.sin6_addr = in6addr_any;
    REQUIRE(socket_os::listen_on(l.get(), reinterpret_cast<sockaddr*>(&any), sizeof any, SOMAXCONN, true, true) == 0);
    const int port = socket_os::local_port(l.get());
    REQUIRE(port > 0);
    CHECK(win::is_inheritable(reinterpret_cast<HANDLE>(l.s.get())) == 0);
    for (int family : {AF_INET, AF_INET6}) {
        sock c(socket_os::open_stream_socket(family));
        REQUIRE(c.get() >= 0);
        int len = 0;
        sockaddr_storage a = loopback(family, static_cast<std::uint16_t>(port), len);
        native_socket accepted = -1;
        boost::fibers::fiber acceptor([&] { accepted = io::accept(l.get(), after(5000ms)); });
        CHECK(io::connect(c.get(), reinterpret_cast<sockaddr*>(&a), static_cast<unsigned>(len), after(5000ms)) == 0);
        acceptor.join();
        REQUIRE(accepted >= 0);
        sock server(accepted);
        CHECK(io::send(c.get(), "hi", 2, after(5000ms)) == 2);
        std::string got;
        CHECK(receive_into(server, got, 10, after(5000ms)) == 2);
        CHECK(socket_os::shutdown_socket(c.get(), SD_SEND) == 0);
        CHECK(receive_into(server, got, 10, after(5000ms)) == 0);
        CHECK(got == "hi");
    }
    // The port is in use: a second listener on it is refused, SO_EXCLUSIVEADDRUSE or not.
    sock again(socket_os::open_stream_socket(AF_INET6));
    sockaddr_in6 same = any;
    same.sin6_port = htons(static_cast<std::uint16_t>(port));
    CHECK(socket_os::listen_on(again.get(), reinterpret_cast<sockaddr*>(&same), sizeof same, SOMAXCONN, true, true) ==
          -EADDRINUSE);
}

WIN_TEST("socket_os: names resolve after ready(); no Unix-domain sockets on Windows")
{
    REQUIRE(socket_os::ready() == 0);
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* list = nullptr;
    REQUIRE(::getaddrinfo("localhost", "80", &hints, &list) == 0);
    CHECK(list != nullptr);
    ::freeaddrinfo(list);
    sockaddr_storage a{};
    unsigned len = 0;
    CHECK(socket_os::unix_address("C:\\gipc.sock", a, len) == -EAFNOSUPPORT);
    CHECK(socket_os::open_stream_socket(AF_UNIX) == -EAFNOSUPPORT);
    native_socket x = -1, y = -1;
    CHECK(socket_os::open_socket_pair(x, y) == -EAFNOSUPPORT);
}
