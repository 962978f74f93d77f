// SPDX-License-Identifier: MIT
// socket_os.hpp on POSIX, on the syscall wrappers of posix/socket.hpp.
#include "socket_os.hpp"

#include "posix/socket.hpp"

#include <cerrno>
#include <cstring>
#include <system_error>
#include <thread>

namespace gipc::detail::socket_os {

int ready() noexcept { return 0; }

std::string resolve_error(int code) { return ::gai_strerror(code); }

int lookup_on_thread(const char* node, const char* service, const addrinfo* hints, addrinfo** list,
                     int& result) noexcept
{
    try {
        std::thread([&] { result = ::getaddrinfo(node, service, hints, list); }).join();
        return 0;
    } catch (const std::system_error& e) {
        return -e.code().value();
    }
}

native_socket open_stream_socket(int family) noexcept { return posix::open_stream_socket(family); }

void close_socket(native_socket s) noexcept
{
    if (s >= 0)
        posix::close_fd(s);
}

int open_socket_pair(native_socket& a, native_socket& b) noexcept
{
    posix::unique_fd x, y;
    if (const int err = posix::open_socket_pair(x, y); err < 0)
        return err;
    a = x.release();
    b = y.release();
    return 0;
}

int unix_address(const std::string& path, sockaddr_storage& addr, unsigned& len) noexcept
{
    sockaddr_un un{};
    static_assert(sizeof un <= sizeof addr);
    un.sun_family = AF_UNIX;
    if (path.size() >= sizeof un.sun_path)
        return -ENAMETOOLONG;
    std::memcpy(un.sun_path, path.c_str(), path.size() + 1);
    std::memcpy(&addr, &un, sizeof un);
    len = sizeof un;
    return 0;
}

int listen_on(native_socket s, const sockaddr* addr, unsigned len, int backlog, bool reuse_addr,
              bool dual_stack) noexcept
{
    return posix::listen_on(s, addr, len, backlog, reuse_addr, dual_stack);
}

void set_nodelay(native_socket s) noexcept { posix::set_nodelay(s); }

int shutdown_socket(native_socket s, int how) noexcept { return posix::shutdown_socket(s, how); }

int local_port(native_socket s) noexcept { return posix::local_port(s); }

} // namespace gipc::detail::socket_os
