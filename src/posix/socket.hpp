// SPDX-License-Identifier: MIT
#pragma once
// Stream socket syscalls for net.cpp. As in fd.hpp: nothing here throws or waits; every
// function returns a value >= 0 on success and -errno on failure. Sockets are made
// non-blocking and close-on-exec.

#include "../private.hpp"

#include "posix/fd.hpp"

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>

namespace gipc::posix {

// open_stream_socket makes a stream socket of family. Returns the fd or -errno.
int open_stream_socket(int family) noexcept;

// open_socket_pair makes a connected pair of Unix sockets (non-blocking, close-on-exec):
// stream sockets, or with seqpacket, sockets that keep message boundaries. Returns 0 or -errno.
int open_socket_pair(unique_fd& a, unique_fd& b, bool seqpacket = false) noexcept;

// start_connect starts connecting fd to addr. Returns 0 when connected, -EINPROGRESS while the
// attempt goes on in the background (EINTR counts as that: the attempt is not started again),
// or -errno (-EAGAIN: a Unix listener's backlog is full, ask again later).
int start_connect(int fd, const sockaddr* addr, socklen_t len) noexcept;

// poll_connect asks once more whether an attempt start_connect began is done. Returns 0 when
// connected, -EINPROGRESS while it goes on, or -errno.
int poll_connect(int fd, const sockaddr* addr, socklen_t len) noexcept;

// connect_result is the outcome of an attempt that the reactor reported writable (SO_ERROR):
// 0 or -errno.
int connect_result(int fd) noexcept;

// listen_on binds fd to addr and listens. reuse_addr sets SO_REUSEADDR first; dual_stack
// clears IPV6_V6ONLY (an IPv6 wildcard that takes IPv4 too); a TCP listener gets TCP_NODELAY,
// which the connections it accepts inherit. Returns 0 or -errno.
int listen_on(int fd, const sockaddr* addr, socklen_t len, int backlog, bool reuse_addr, bool dual_stack) noexcept;

// accept_stream takes a connection off fd's queue (EINTR retried). Returns the new fd (with
// TCP_NODELAY when fd is a TCP listener of listen_on's), or -errno (-EAGAIN: none queued).
int accept_stream(int fd) noexcept;

// set_nodelay sets TCP_NODELAY; it fails harmlessly on Unix sockets.
void set_nodelay(int fd) noexcept;

// receive_some / send_some are recv and send (MSG_NOSIGNAL) with EINTR retried: the bytes
// moved, or -errno.
ssize_t receive_some(int fd, void* data, std::size_t size) noexcept;
ssize_t send_some(int fd, const void* data, std::size_t size) noexcept;

// max_passed_fds is how many fds send_with_fds passes in one message at most (the kernel's
// SCM_MAX_FD is 253).
inline constexpr std::size_t max_passed_fds = 253;

// send_with_fds sends data (size >= 1) with count fds (SCM_RIGHTS, count <= max_passed_fds)
// over the Unix socket fd in one message, without waiting (MSG_DONTWAIT, MSG_NOSIGNAL, EINTR
// retried): the bytes sent, or -errno (-EAGAIN: no room now).
ssize_t send_with_fds(int fd, const void* data, std::size_t size, const int* fds, std::size_t count) noexcept;

// receive_with_fds receives one message from the Unix socket fd into data, without waiting
// (MSG_DONTWAIT, EINTR retried), and stores the fds it carried (close-on-exec; the caller owns
// them) in fds, at most max_fds, their number in received. Returns the bytes received (0: the
// peer is gone), or -errno (-EAGAIN: nothing queued; -EMSGSIZE: the message carried more fds
// than max_fds or the kernel could pass, and those that arrived are closed again).
ssize_t receive_with_fds(int fd, void* data, std::size_t size, int* fds, std::size_t max_fds,
                         std::size_t& received) noexcept;

// shutdown_socket is shutdown(2). Returns 0 or -errno.
int shutdown_socket(int fd, int how) noexcept;

// local_port is the port fd is bound to (0 for a socket without one). Returns it or -errno.
int local_port(int fd) noexcept;

} // namespace gipc::posix
