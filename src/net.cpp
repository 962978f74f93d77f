// SPDX-License-Identifier: MIT
#include "errors.hpp"
#include "reactor.hpp"
#include "scheduler.hpp"
#include "socket_end.hpp"
#include "socket_os.hpp"

#include <gipc/net.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <system_error>

namespace gipc::net {

namespace {

using detail::end_base;
using detail::native_socket;
using detail::socket_end;
using detail::steady_time;
using detail::throw_errno;
using detail::socket_os::unique_socket;

std::shared_ptr<socket_end> make_end(unique_socket s, const char* kind, bool waited = true)
{
    auto end = std::make_shared<socket_end>(std::move(s), kind);
    // waited: whether an operation on fd may have waited (registered it) before it became the
    // stream's; true unless known otherwise.
    end->hint.waited.store(waited, std::memory_order_relaxed);
    end->register_open();
    return end;
}

unique_socket new_socket(int family)
{
    const native_socket s = detail::socket_os::open_stream_socket(family);
    if (s < 0)
        throw_errno(static_cast<int>(s), "gipc: socket");
    return unique_socket(s);
}

// connecting_socket owns a socket until it is connected. A connect that waited has registered
// the socket with this thread's reactor, so a socket given up on (refused, timed out) must be
// forgotten there before it is closed, or the next fd with its number would go unwatched.
struct connecting_socket {
    unique_socket s;
    explicit connecting_socket(int family) : s(new_socket(family)) {}
    connecting_socket(const connecting_socket&) = delete;
    connecting_socket& operator=(const connecting_socket&) = delete;
    ~connecting_socket()
    {
        if (s)
            detail::forget_fd(detail::socket_fd(s.get()));
    }
};

// connect_socket connects a socket of open_stream_socket's, waiting cooperatively. Returns 0
// or -errno; throws timeout_error at the deadline.
int connect_socket(native_socket s, const sockaddr* addr, unsigned len, steady_time deadline,
                   detail::io::stream_hint* hint = nullptr)
{
    const int err = detail::io::connect(s, addr, len, deadline, hint);
    if (err == -ETIMEDOUT)
        throw timeout_error("gipc: connect timed out");
    return err;
}

// resolve looks host:port up for a stream socket (passive: for binding; "" is every address).
std::unique_ptr<addrinfo, void (*)(addrinfo*)> resolve(const std::string& host, std::uint16_t port, bool passive,
                                                       int family = AF_UNSPEC)
{
    addrinfo hints{};
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    addrinfo* list = nullptr;
    if (const int err = detail::socket_os::ready(); err < 0)
        throw_errno(err, "gipc: cannot resolve " + host);
    const std::string service = std::to_string(port);
    const char* node = passive && host.empty() ? nullptr : host.c_str();
    // A numeric address is parsed right here. A name goes through the C library's name service
    // (NSS modules loaded on first use, DNS), which takes nearly all of a 16 KiB fiber stack
    // and more on some paths: that lookup runs on a thread of its own, with a thread's stack,
    // while the calling thread waits for it (a lookup blocks the thread either way).
    hints.ai_flags |= AI_NUMERICHOST;
    int r = ::getaddrinfo(node, service.c_str(), &hints, &list);
    if (r == EAI_NONAME && node) {
        hints.ai_flags &= ~AI_NUMERICHOST;
        if (const int err = detail::socket_os::lookup_on_thread(node, service.c_str(), &hints, &list, r); err < 0)
            throw_errno(err, "gipc: cannot resolve " + host + ": no thread for the lookup");
    }
    if (r != 0)
        throw error("gipc: cannot resolve " + host + ": " + detail::socket_os::resolve_error(r));
    return {list, ::freeaddrinfo};
}

// numeric_address fills addr with host:port when host is an IPv4 or IPv6 address in its
// standard text form ("127.0.0.1", "::1"), which is the one address getaddrinfo would return
// for it, and returns its length; 0 for anything else (names, scoped or shortened forms such
// as "fe80::1%eth0" or "127.1"), which resolve() looks up. Connecting to a literal address
// then costs no getaddrinfo call (its allocations, its service string, its stack).
unsigned numeric_address(const std::string& host, std::uint16_t port, sockaddr_storage& addr) noexcept
{
    auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
    if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        return sizeof(sockaddr_in);
    }
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
    if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        return sizeof(sockaddr_in6);
    }
    return 0;
}

// unix_address is the address of the Unix socket at path, its length in len. Throws gipc::error
// when the path does not fit, and std::system_error (EAFNOSUPPORT) where the platform has no
// Unix-domain sockets for gipc (Windows).
sockaddr_storage unix_address(const std::string& path, unsigned& len)
{
    sockaddr_storage addr{};
    const int err = detail::socket_os::unix_address(path, addr, len);
    if (err == -ENAMETOOLONG)
        throw error("gipc: Unix socket path too long: " + path);
    if (err < 0)
        throw_errno(err, "gipc: Unix-domain socket " + path + ": not available on this platform");
    return addr;
}

// socket_handle is what native_handle() returns for the socket of end, or for a closed one
// (nullptr): -1 as native_handle_type, which is INVALID_SOCKET on Windows.
native_handle_type socket_handle(const socket_end* end) noexcept
{
    return end ? static_cast<native_handle_type>(end->socket()) : static_cast<native_handle_type>(-1);
}

} // namespace

// ---- stream --------------------------------------------------------------------------------------

GIPC_SINGLE_END_HANDLE_NO_NATIVE(stream, socket_end, "stream")
native_handle_type stream::native_handle() const noexcept { return socket_handle(closed() ? nullptr : end_.get()); }

stream stream::connect(const std::string& host, std::uint16_t port) { return connect_until(host, port, steady_time::max()); }

stream stream::connect_until(const std::string& host, std::uint16_t port, steady_time deadline)
{
    detail::thread_algorithm();
    // connect_one connects a new socket to addr: the stream, or nullopt with last_error set.
    int last_error = -EADDRNOTAVAIL;
    auto connect_one = [&](const sockaddr* addr, unsigned len) -> std::optional<stream> {
        connecting_socket sock(addr->sa_family);
        detail::io::stream_hint hint;
        last_error = connect_socket(sock.s.get(), addr, len, deadline, &hint);
        if (last_error != 0)
            return std::nullopt;
        detail::socket_os::set_nodelay(sock.s.get());
        return stream(make_end(std::move(sock.s), "stream", hint.waited.load(std::memory_order_relaxed)));
    };
    sockaddr_storage numeric{};
    if (const unsigned len = numeric_address(host, port, numeric)) {
        if (auto s = connect_one(reinterpret_cast<const sockaddr*>(&numeric), len))
            return std::move(*s);
    } else {
        const auto list = resolve(host, port, false);
        for (addrinfo* ai = list.get(); ai; ai = ai->ai_next)
            if (auto s = connect_one(ai->ai_addr, static_cast<unsigned>(ai->ai_addrlen)))
                return std::move(*s);
    }
    throw_errno(last_error, "gipc: connect to " + host + ":" + std::to_string(port));
}

stream stream::connect_unix(const std::string& path) { return connect_unix_until(path, steady_time::max()); }

stream stream::connect_unix_until(const std::string& path, steady_time deadline)
{
    detail::thread_algorithm();
    unsigned len = 0;
    sockaddr_storage addr = unix_address(path, len);
    connecting_socket sock(AF_UNIX);
    detail::io::stream_hint hint;
    if (int err = connect_socket(sock.s.get(), reinterpret_cast<sockaddr*>(&addr), len, deadline, &hint))
        throw_errno(err, "gipc: connect to " + path);
    return stream(make_end(std::move(sock.s), "stream", hint.waited.load(std::memory_order_relaxed)));
}

std::pair<stream, stream> stream::pair()
{
    detail::thread_algorithm();
    detail::native_socket x = -1, y = -1;
    if (const int err = detail::socket_os::open_socket_pair(x, y); err < 0)
        throw_errno(err, "gipc: socketpair (Unix-domain sockets)");
    unique_socket a(x), b(y);
    return {stream(make_end(std::move(a), "stream", false)), stream(make_end(std::move(b), "stream", false))};
}

std::size_t stream::read_some(void* data, std::size_t size) { return read_some_until(data, size, steady_time::max()); }

std::size_t stream::read_some_until(void* data, std::size_t size, steady_time deadline)
{
    detail::op_guard op(end_.get());
    socket_end& e = *end_;
    if (const std::size_t buffered = e.take_buffered(data, size))
        return buffered;
    const ssize_t n = detail::io::receive(e.socket(), data, size, deadline, &e.hint);
    return static_cast<std::size_t>(e.checked(n, "read", "read from"));
}

std::string stream::read_line(std::size_t max_length) { return read_line_until(steady_time::max(), max_length); }

std::string stream::read_line_until(steady_time deadline, std::size_t max_length)
{
    detail::op_guard op(end_.get());
    socket_end& e = *end_;
    return e.read_line(max_length, "the peer closed the connection", [&] {
        // Receive straight into the buffer's tail: no copy, and no array on the fiber's
        // stack (whose untouched pages would fault in, for each fiber that reads a line).
        // The first receive asks for 512 bytes, later ones for the room the string's growth
        // leaves (at most 64 KiB), so a stream's buffer stays small for short lines and long
        // ones take few receives.
        const std::size_t old_size = e.buffer.size();
        const std::size_t room = std::clamp<std::size_t>(e.buffer.capacity() - old_size, 512, 64 * 1024);
        e.buffer.resize(old_size + room);
        const ssize_t n = detail::io::receive(e.socket(), e.buffer.data() + old_size, room, deadline, &e.hint);
        e.buffer.resize(old_size + static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
        return e.checked(n, "read_line", "read from") > 0;
    });
}

void stream::write_all(std::string_view data) { write_all_until(data, steady_time::max()); }

void stream::write_all_until(std::string_view data, steady_time deadline)
{
    detail::op_guard op(end_.get());
    const native_socket s = end_->socket();
    while (!data.empty()) {
        const ssize_t n = detail::io::send(s, data.data(), data.size(), deadline, &end_->hint);
        data.remove_prefix(static_cast<std::size_t>(end_->checked(n, "write", "write to")));
    }
}

void stream::shutdown(int how)
{
    detail::op_guard op(end_.get());
    if (const int err = detail::socket_os::shutdown_socket(end_->socket(), how); err < 0)
        throw_errno(err, "gipc: shutdown " + end_->name());
}


// ---- listener ------------------------------------------------------------------------------------

GIPC_SINGLE_END_HANDLE_NO_NATIVE(listener, socket_end, "listener")
native_handle_type listener::native_handle() const noexcept { return socket_handle(closed() ? nullptr : end_.get()); }

listener listener::tcp(const std::string& host, std::uint16_t port, int backlog)
{
    detail::thread_algorithm();
    const std::string service = std::to_string(port);
    int last_error = -EADDRNOTAVAIL;
    auto listen_on_first = [&](addrinfo* list) -> unique_socket {
        for (addrinfo* ai = list; ai; ai = ai->ai_next) {
            const native_socket made = detail::socket_os::open_stream_socket(ai->ai_family);
            if (made < 0) {
                last_error = static_cast<int>(made);
                continue;
            }
            unique_socket s(made);
            last_error = detail::socket_os::listen_on(s.get(), ai->ai_addr, static_cast<unsigned>(ai->ai_addrlen), backlog, true,
                                          ai->ai_family == AF_INET6 && host.empty());
            if (last_error == 0)
                return s;
        }
        return {};
    };
    // "" is every address: IPv6's wildcard, which takes IPv4 too; IPv4's alone only where IPv6
    // is unavailable (no IPv6 sockets or addresses), not when the port is taken.
    unique_socket fd = listen_on_first(resolve(host, port, true, host.empty() ? AF_INET6 : AF_UNSPEC).get());
    const bool no_ipv6 = last_error == -EAFNOSUPPORT || last_error == -EPROTONOSUPPORT || last_error == -EADDRNOTAVAIL;
    if (!fd && host.empty() && no_ipv6)
        fd = listen_on_first(resolve(host, port, true, AF_INET).get());
    if (!fd)
        throw_errno(last_error, "gipc: listen on " + host + ":" + service);
    return listener(make_end(std::move(fd), "listener"));
}

listener listener::unix_socket(const std::string& path, int backlog)
{
    detail::thread_algorithm();
    unsigned len = 0;
    sockaddr_storage addr = unix_address(path, len);
    unique_socket fd = new_socket(AF_UNIX);
    if (const int err = detail::socket_os::listen_on(fd.get(), reinterpret_cast<sockaddr*>(&addr), len, backlog, false, false);
        err < 0)
        throw_errno(err, "gipc: listen on " + path);
    return listener(make_end(std::move(fd), "listener"));
}

stream listener::accept() { return accept_until(steady_time::max()); }

stream listener::accept_until(steady_time deadline)
{
    detail::op_guard op(end_.get());
    const native_socket s = end_->checked(detail::io::accept(end_->socket(), deadline), "accept", "accept on");
    return stream(make_end(unique_socket(s), "stream", false));
}

std::uint16_t listener::port() const
{
    if (closed())
        throw closed_error("gipc: listener is closed");
    const int port = detail::socket_os::local_port(end_->socket());
    if (port < 0)
        throw_errno(port, "gipc: getsockname");
    return static_cast<std::uint16_t>(port);
}


} // namespace gipc::net
