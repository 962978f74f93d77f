// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// Cooperative stream sockets: TCP (IPv4 and IPv6) and Unix-domain, on the same reactor as
/// pipes. Every blocking call blocks only the calling fiber.
///
/// @code{.cpp}
/// auto server = gipc::net::listener::tcp("127.0.0.1", 0);   // port 0: any free port
/// auto conn = gipc::net::stream::connect("127.0.0.1", server.port());
/// auto peer = server.accept();
/// conn.write_all("HELLO\n");
/// std::string line = peer.read_line();                     // "HELLO\n"
/// @endcode
///
/// Sockets are gipc handles like pipe ends: move-only, closed by the destructor, O_CLOEXEC and
/// non-blocking, passed to a child by start_process when given as an argument (and closed in
/// the child otherwise). One fiber may read while another writes; several fibers reading (or
/// writing) the same stream at once need a lock of their own.
///
/// Errors: std::system_error with the errno (e.g. std::errc::connection_refused), a timeout
/// is gipc::timeout_error, use after close is gipc::closed_error, close() while another fiber
/// is blocked on the socket is gipc::locked_error. Sends never raise SIGPIPE (MSG_NOSIGNAL).
/// TCP streams, connected and accepted, have TCP_NODELAY: a small write leaves at once.
/// Host names are resolved with getaddrinfo, which blocks the thread: pass numeric addresses
/// where that matters. Every call works on a fiber stack of 16 KiB; resolving a name that is not
/// in /etc/hosts runs the system's resolver (DNS) on that stack too, whose needs gipc does not
/// control.
///
/// Windows: TCP over IPv4 and IPv6 works as above, on Winsock sockets: overlapped and not
/// inheritable (where POSIX says O_CLOEXEC and non-blocking), AcceptEx, ConnectEx, WSARecv and
/// WSASend completing through the thread's I/O completion port, closed with closesocket. The
/// differences: native_handle() is the SOCKET (INVALID_SOCKET once closed), for Winsock calls
/// of the program's (getsockopt...), never to be closed by it; there is no SIGPIPE to suppress
/// (a send to a peer that is gone fails with std::system_error, as on POSIX); listener::tcp sets
/// SO_EXCLUSIVEADDRUSE instead of SO_REUSEADDR (whose Windows meaning would let another socket
/// take a port in use), so a taken port is EADDRINUSE there too; a host name is looked up on a
/// thread of the system's. Unix-domain sockets are not available there (Wine's Winsock, where
/// gipc is tested, has no AF_UNIX): connect_unix, pair and listener::unix_socket throw
/// std::system_error (std::errc::address_family_not_supported). Passing sockets to a child is
/// not available on Windows yet.

#include <gipc/detail/export.hpp>
#include <gipc/detail/handle.hpp>
#include <gipc/error.hpp>

#include <cstdint>

#if !defined(_WIN32)
#include <sys/socket.h>
namespace gipc::net {
/// native_handle_type is what native_handle() of a socket returns: its fd on POSIX.
using native_handle_type = int;
} // namespace gipc::net
#else
// Windows: the two names the declarations use, with Winsock's values, without <winsock2.h>
// (which defines SOMAXCONN alike; its SD_RECEIVE, SD_SEND, SD_BOTH are SHUT_RD, SHUT_WR,
// SHUT_RDWR).
#ifndef SOMAXCONN
#define SOMAXCONN 0x7fffffff
#endif
#ifndef SHUT_WR
#define SHUT_RD 0x00
#define SHUT_WR 0x01
#define SHUT_RDWR 0x02
#endif
namespace gipc::net {
/// native_handle_type is what native_handle() of a socket returns: its Winsock SOCKET on
/// Windows (UINT_PTR, spelled out so that this header does not bring <winsock2.h> along);
/// INVALID_SOCKET (~0) once closed.
using native_handle_type = std::uintptr_t;
} // namespace gipc::net
#endif

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace gipc {
namespace detail {
class socket_end;
}

/// Cooperative stream sockets: TCP and Unix-domain (see net.hpp).
namespace net {

/// stream: a connected stream socket, TCP or Unix-domain.
class GIPC_EXPORT stream {
public:
    /// connect opens a TCP connection to host:port, trying each address host resolves to.
    static stream connect(const std::string& host, std::uint16_t port);
    /// connect with a timeout bounding the connection attempts, to every address together
    /// (resolving host is not bounded): timeout_error when it expires.
    template <class Rep, class Period>
    static stream connect(const std::string& host, std::uint16_t port, std::chrono::duration<Rep, Period> timeout)
    {
        return connect_until(host, port, detail::deadline_from(timeout));
    }
    /// connect_unix connects to a Unix-domain stream socket at path. While the listener's
    /// backlog is full it asks again after a pause (1 ms, doubling up to 64 ms) until the
    /// timeout; the kernel announces no readiness for that.
    static stream connect_unix(const std::string& path);
    /// connect_unix with a timeout bounding the whole call: timeout_error when it expires.
    template <class Rep, class Period>
    static stream connect_unix(const std::string& path, std::chrono::duration<Rep, Period> timeout)
    {
        return connect_unix_until(path, detail::deadline_from(timeout));
    }
    /// pair returns two connected Unix-domain streams (socketpair), e.g. one for a child.
    static std::pair<stream, stream> pair();

    /// A default-constructed stream is closed.
    stream() noexcept;
    /// Takes over the other stream's socket; that one is left closed.
    stream(stream&&) noexcept;
    /// Move assignment closes the socket this one held, like the destructor.
    stream& operator=(stream&&) noexcept;
    /// The destructor closes an open socket.
    ~stream();

    /// read_some reads up to size bytes, blocking until at least one arrives; 0 at end of stream.
    std::size_t read_some(void* data, std::size_t size);
    /// read_some with a timeout: timeout_error when no byte arrived before it expired.
    template <class Rep, class Period>
    std::size_t read_some(void* data, std::size_t size, std::chrono::duration<Rep, Period> timeout)
    {
        return read_some_until(data, size, detail::deadline_from(timeout));
    }

    /// read_line returns the next line including its `\n`. At the end of the stream it returns
    /// "" when no byte of a new line arrived, and throws eof_error when the peer closed in the
    /// middle of a line. A line longer than max_length throws gipc::error.
    std::string read_line(std::size_t max_length = 1 << 20);
    /// read_line with a timeout bounding the whole call: timeout_error when it expires.
    template <class Rep, class Period>
    std::string read_line(std::chrono::duration<Rep, Period> timeout, std::size_t max_length = 1 << 20)
    {
        return read_line_until(detail::deadline_from(timeout), max_length);
    }

    /// write_all writes every byte of data, blocking cooperatively while the socket is full.
    void write_all(std::string_view data);
    /// write_all with a timeout bounding the whole call: timeout_error when it expires.
    template <class Rep, class Period>
    void write_all(std::string_view data, std::chrono::duration<Rep, Period> timeout)
    {
        write_all_until(data, detail::deadline_from(timeout));
    }

    /// shutdown stops reading (SHUT_RD), writing (SHUT_WR, the peer sees end of stream), or both.
    void shutdown(int how = SHUT_WR);
    /// close closes the socket. closed_error if already closed; locked_error (the socket stays
    /// open) while another fiber is blocked on it.
    void close();
    /// closed is true when the socket is closed: by close(), moved from, default-constructed,
    /// or transferred to a child process.
    bool closed() const noexcept;
    /// native_handle is the socket's fd (the SOCKET on Windows), or -1 when closed
    /// (INVALID_SOCKET on Windows).
    native_handle_type native_handle() const noexcept;

private:
    friend class listener;
    friend struct detail::detail_access;
    explicit stream(std::shared_ptr<detail::socket_end> end) noexcept;
    static stream connect_until(const std::string& host, std::uint16_t port, detail::steady_time deadline);
    static stream connect_unix_until(const std::string& path, detail::steady_time deadline);
    std::size_t read_some_until(void* data, std::size_t size, detail::steady_time deadline);
    std::string read_line_until(detail::steady_time deadline, std::size_t max_length);
    void write_all_until(std::string_view data, detail::steady_time deadline);
    std::shared_ptr<detail::socket_end> end_;
};

/// listener: a listening stream socket, TCP or Unix-domain, that accepts streams.
class GIPC_EXPORT listener {
public:
    /// tcp binds host:port (port 0: a free port, see port()) with SO_REUSEADDR and listens.
    /// host "" binds every IPv4 and IPv6 address ("::" dual-stack), or every IPv4 address
    /// ("0.0.0.0") where IPv6 is unavailable (IPv6 sockets or addresses refused); a port that
    /// is taken is an error (EADDRINUSE), never a reason to listen on IPv4 alone.
    static listener tcp(const std::string& host, std::uint16_t port, int backlog = SOMAXCONN);
    /// unix_socket binds a Unix-domain socket at path (which must not exist) and listens.
    static listener unix_socket(const std::string& path, int backlog = SOMAXCONN);

    /// A default-constructed listener is closed.
    listener() noexcept;
    /// Takes over the other listener's socket; that one is left closed.
    listener(listener&&) noexcept;
    /// Move assignment closes the socket this one held, like the destructor.
    listener& operator=(listener&&) noexcept;
    /// The destructor closes an open socket.
    ~listener();

    /// accept waits for the next connection.
    stream accept();
    /// accept with a timeout: timeout_error when no connection came before it expired.
    template <class Rep, class Period>
    stream accept(std::chrono::duration<Rep, Period> timeout)
    {
        return accept_until(detail::deadline_from(timeout));
    }

    /// port is the bound TCP port (0 for a Unix-domain listener). closed_error when closed.
    std::uint16_t port() const;
    /// close closes the socket. closed_error if already closed; locked_error (the socket stays
    /// open) while another fiber is blocked in accept().
    void close();
    /// closed is true when the socket is closed: by close(), moved from, default-constructed,
    /// or transferred to a child process.
    bool closed() const noexcept;
    /// native_handle is the socket's fd (the SOCKET on Windows), or -1 when closed
    /// (INVALID_SOCKET on Windows).
    native_handle_type native_handle() const noexcept;

private:
    friend struct detail::detail_access;
    explicit listener(std::shared_ptr<detail::socket_end> end) noexcept;
    stream accept_until(detail::steady_time deadline);
    std::shared_ptr<detail::socket_end> end_;
};

} // namespace net
} // namespace gipc
