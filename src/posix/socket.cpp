// SPDX-License-Identifier: MIT
#include "posix/socket.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/uio.h>

#include <cstring>

namespace gipc::posix {

int open_stream_socket(int family) noexcept
{
    const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    return fd >= 0 ? fd : -errno;
}

int open_socket_pair(unique_fd& a, unique_fd& b, bool seqpacket) noexcept
{
    int fds[2];
    if (::socketpair(AF_UNIX, (seqpacket ? SOCK_SEQPACKET : SOCK_STREAM) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) != 0)
        return -errno;
    a.reset(fds[0]);
    b.reset(fds[1]);
    return 0;
}

int start_connect(int fd, const sockaddr* addr, socklen_t len) noexcept
{
    if (::connect(fd, addr, len) == 0)
        return 0;
    return errno == EINTR ? -EINPROGRESS : -errno;
}

int poll_connect(int fd, const sockaddr* addr, socklen_t len) noexcept
{
    if (::connect(fd, addr, len) == 0 || errno == EISCONN)
        return 0;
    if (errno == EALREADY || errno == EINPROGRESS || errno == EINTR)
        return -EINPROGRESS;
    return -errno;
}

int connect_result(int fd) noexcept
{
    int err = 0;
    socklen_t err_len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len) != 0)
        return -errno;
    return -err;
}

int listen_on(int fd, const sockaddr* addr, socklen_t len, int backlog, bool reuse_addr, bool dual_stack) noexcept
{
    int one = 1, zero = 0;
    if (reuse_addr)
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (dual_stack)
        ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    // A TCP listener's connections inherit its TCP_NODELAY (Linux copies the listener's
    // options into each connection it accepts): set once here, not once per accept.
    if (addr->sa_family == AF_INET || addr->sa_family == AF_INET6)
        set_nodelay(fd);
    if (::bind(fd, addr, len) != 0 || ::listen(fd, backlog) != 0)
        return -errno;
    return 0;
}

int accept_stream(int fd) noexcept
{
    return retry_eintr([&] { return ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK); });
}

void set_nodelay(int fd) noexcept
{
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

ssize_t receive_some(int fd, void* data, std::size_t size) noexcept
{
    return retry_eintr([&] { return ::recv(fd, data, size, 0); });
}

ssize_t send_some(int fd, const void* data, std::size_t size) noexcept
{
    return retry_eintr([&] { return ::send(fd, data, size, MSG_NOSIGNAL); });
}

ssize_t send_with_fds(int fd, const void* data, std::size_t size, const int* fds, std::size_t count) noexcept
{
    if (count > max_passed_fds)
        return -EINVAL;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_passed_fds)];
    iovec iov{const_cast<void*>(data), size};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (count > 0) {
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * count);
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * count);
        std::memcpy(CMSG_DATA(c), fds, sizeof(int) * count);
    }
    return retry_eintr([&] { return ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT); });
}

ssize_t receive_with_fds(int fd, void* data, std::size_t size, int* fds, std::size_t max_fds,
                         std::size_t& received) noexcept
{
    received = 0;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_passed_fds)];
    iovec iov{data, size};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = retry_eintr([&] { return ::recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC); });
    if (n < 0)
        return n;
    bool lost = (msg.msg_flags & MSG_CTRUNC) != 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        const std::size_t carried = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (std::size_t i = 0; i < carried; ++i) {
            int got;
            std::memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
            if (received < max_fds)
                fds[received++] = got;
            else {
                close_fd(got);
                lost = true;
            }
        }
    }
    if (lost) {
        for (std::size_t i = 0; i < received; ++i)
            close_fd(fds[i]);
        received = 0;
        return -EMSGSIZE;
    }
    return n;
}

int shutdown_socket(int fd, int how) noexcept { return ::shutdown(fd, how) == 0 ? 0 : -errno; }

int local_port(int fd) noexcept
{
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
        return -errno;
    if (addr.ss_family == AF_INET)
        return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    if (addr.ss_family == AF_INET6)
        return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    return 0;
}

} // namespace gipc::posix
