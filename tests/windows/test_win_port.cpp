// SPDX-License-Identifier: MIT
// The completion port: timeouts (the reactor's timers), posts from other threads, handle counts.
#include "win_support.hpp"

#include "windows/iocp.hpp"

#include <chrono>
#include <string>

namespace win = gipc::detail::win;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

double ms_since(clock_type::time_point start)
{
    return std::chrono::duration<double, std::milli>(clock_type::now() - start).count();
}

} // namespace

WIN_TEST("a wait with a timeout and nothing queued returns WAIT_TIMEOUT after the timeout")
{
    win::completion_port port;
    REQUIRE(port.create() == 0);
    win::completion c[4];
    std::size_t n = 99;
    for (DWORD timeout : {20u, 100u}) {
        auto start = clock_type::now();
        CHECK(port.wait(c, 4, timeout, n) == WAIT_TIMEOUT);
        double elapsed = ms_since(start);
        CHECK(n == 0);
        // The system's timer granularity can end a wait up to one tick (15.6 ms) early.
        CHECK(elapsed >= timeout - 16.0);
        CHECK(elapsed < timeout + 1000.0);
    }
    auto start = clock_type::now();
    CHECK(port.wait(c, 4, 0, n) == WAIT_TIMEOUT);
    CHECK(ms_since(start) < 100.0);
}

WIN_TEST("a post from another thread wakes a wait without timeout, with its key, bytes and pointer")
{
    win::completion_port port;
    REQUIRE(port.create() == 0);
    OVERLAPPED marker{};
    auto start = clock_type::now();
    gipc_win_test::native_thread poster([&] {
        ::Sleep(100);
        CHECK(port.post(42, 1234, &marker) == 0);
    });
    win::completion c[4];
    std::size_t n = 0;
    DWORD e = port.wait(c, 4, INFINITE, n);
    double elapsed = ms_since(start);
    poster.join();
    REQUIRE(e == 0);
    REQUIRE(n == 1);
    CHECK(c[0].key == 42);
    CHECK(c[0].bytes == 1234);
    CHECK(c[0].overlapped == &marker);
    CHECK(elapsed >= 84.0);
    CHECK(elapsed < 5000.0);
}

WIN_TEST("queued packets come out in order, several per wait, and only once")
{
    win::completion_port port;
    REQUIRE(port.create() == 0);
    for (ULONG_PTR k = 1; k <= 5; ++k)
        REQUIRE(port.post(k) == 0);
    win::completion c[3];
    std::size_t n = 0;
    REQUIRE(port.wait(c, 3, 0, n) == 0);
    REQUIRE(n == 3);
    CHECK(c[0].key == 1);
    CHECK(c[1].key == 2);
    CHECK(c[2].key == 3);
    REQUIRE(port.wait(c, 3, 0, n) == 0);
    REQUIRE(n == 2);
    CHECK(c[0].key == 4);
    CHECK(c[1].key == 5);
    CHECK(port.wait(c, 3, 0, n) == WAIT_TIMEOUT);
    CHECK(port.wait(c, 0, 0, n) == ERROR_INVALID_PARAMETER);
}

WIN_TEST("the handle count sees a handle opened and closed")
{
    DWORD before = gipc_win_test::handle_count();
    {
        win::unique_handle event(::CreateEventW(nullptr, TRUE, FALSE, nullptr));
        REQUIRE(event);
        CHECK(gipc_win_test::handle_count() == before + 1);
        win::unique_handle moved(std::move(event));
        CHECK(!event);
        CHECK(gipc_win_test::handle_count() == before + 1);
    }
    CHECK(gipc_win_test::handle_count() == before);
    win::unique_handle invalid(INVALID_HANDLE_VALUE);
    CHECK(!invalid);
    CHECK(invalid.get() == nullptr);
}

WIN_TEST("handles are made non-inheritable and an inheritable duplicate is one")
{
    win::unique_handle event(::CreateEventW(nullptr, TRUE, FALSE, nullptr));
    REQUIRE(event);
    CHECK(win::is_inheritable(event.get()) == 0);
    win::unique_handle dup;
    REQUIRE(win::inheritable_duplicate(event.get(), dup) == 0);
    CHECK(dup.get() != event.get());
    CHECK(win::is_inheritable(dup.get()) == 1);
    CHECK(win::is_inheritable(event.get()) == 0);
    REQUIRE(win::set_inheritable(dup.get(), false) == 0);
    CHECK(win::is_inheritable(dup.get()) == 0);
    CHECK(win::is_inheritable(nullptr) == -static_cast<long>(ERROR_INVALID_HANDLE));
}

namespace {

// tcp_pair connects a loopback TCP pair: a's end accepted, b's end connected. No doctest
// assertion inside: the warm-up calls it before doctest runs.
bool tcp_pair(win::unique_socket& a, win::unique_socket& b)
{
    win::unique_socket listener;
    if (win::make_socket(AF_INET, SOCK_STREAM, IPPROTO_TCP, listener) != 0)
        return false;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int len = sizeof addr;
    if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener.get(), 1) != 0 ||
        ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
        return false;
    if (win::make_socket(AF_INET, SOCK_STREAM, IPPROTO_TCP, b) != 0 ||
        ::connect(b.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        return false;
    SOCKET s = ::accept(listener.get(), nullptr, nullptr);
    if (s == INVALID_SOCKET)
        return false;
    a.reset(s);
    return true;
}

// Winsock opens what it needs once per process, and Wine's Winsock an event per thread for its
// blocking calls (connect, accept, send): the warm-up makes them part of the baseline.
const bool winsock_warmed_up = gipc_win_test::register_warm_up([] {
    win::unique_socket a, b;
    if (tcp_pair(a, b)) {
        char c = 'x';
        ::send(b.get(), &c, 1, 0);
        ::recv(a.get(), &c, 1, 0);
    }
});

} // namespace

WIN_TEST("sockets are non-inheritable, owned, and their overlapped receives complete through the port")
{
    DWORD before = gipc_win_test::handle_count();
    {
        win::unique_socket s;
        REQUIRE(win::make_socket(AF_INET, SOCK_STREAM, IPPROTO_TCP, s) == 0);
        CHECK(static_cast<bool>(s));
        CHECK(win::is_inheritable(reinterpret_cast<HANDLE>(s.get())) == 0);
        CHECK(gipc_win_test::handle_count() > before);
    }
    CHECK(gipc_win_test::handle_count() == before);

    win::completion_port port;
    REQUIRE(port.create() == 0);
    win::unique_socket a, b;
    REQUIRE(tcp_pair(a, b));
    REQUIRE(port.associate_socket(a.get(), 7) == 0);
    char buf[32];
    WSABUF wb{sizeof buf, buf};
    DWORD flags = 0;
    OVERLAPPED ov{};
    REQUIRE(::WSARecv(a.get(), &wb, 1, nullptr, &flags, &ov, nullptr) == SOCKET_ERROR);
    REQUIRE(::WSAGetLastError() == WSA_IO_PENDING);
    win::completion c[2];
    std::size_t n = 0;
    CHECK(port.wait(c, 2, 0, n) == WAIT_TIMEOUT);
    REQUIRE(::send(b.get(), "socket", 6, 0) == 6);
    REQUIRE(port.wait(c, 2, 5000, n) == 0);
    REQUIRE(n == 1);
    CHECK(c[0].key == 7);
    CHECK(c[0].overlapped == &ov);
    CHECK(c[0].bytes == 6);
    CHECK(win::io_error(ov) == 0);
    CHECK(std::string(buf, 6) == "socket");
}
