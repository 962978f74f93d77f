// SPDX-License-Identifier: MIT
// pool_link on Linux (pool_link.hpp): a Unix socket pair carrying fds by SCM_RIGHTS.
#include "pool_link.hpp"

#include "../errors.hpp"
#include "../io_ops.hpp"
#include "../posix/fd.hpp"
#include "../posix/socket.hpp"

#include <cerrno>
#include <cstring>

namespace gipc::detail {

namespace {

constexpr std::size_t max_fds = 253; // SCM_RIGHTS carries at most 253 fds in one message

// send_fds passes fds over a Unix socket in one message. Throws std::system_error.
void send_fds(int sock, const std::vector<int>& fds)
{
    const char byte = 'h';
    const ssize_t n = io::send_with_fds(sock, &byte, 1, fds.data(), fds.size(), steady_time::max());
    if (n < 0)
        throw_errno(static_cast<int>(n), "gipc: passing a task's handles to its worker");
}

// receive_fds waits (blocking only this fiber) for the fds of one message, close-on-exec.
std::vector<posix::unique_fd> receive_fds(int sock)
{
    char byte;
    int got[max_fds];
    std::size_t count = 0;
    const ssize_t n = io::receive_with_fds(sock, &byte, 1, got, max_fds, count, steady_time::max());
    if (n == -EMSGSIZE)
        throw error("gipc: a task's handles did not all reach its worker");
    if (n <= 0)
        throw error("gipc: a pool worker lost its parent's socket while receiving a task's handles");
    std::vector<posix::unique_fd> fds;
    for (std::size_t i = 0; i < count; ++i)
        fds.emplace_back(got[i]);
    return fds;
}

} // namespace

pool_parent_link::pool_parent_link(pool_link_arg& worker)
{
    posix::unique_fd parent_fd, worker_fd;
    if (const int r = posix::open_socket_pair(parent_fd, worker_fd, true); r < 0)
        throw_errno(r, "gipc: pool: socketpair");
    sock_ = std::make_shared<socket_end>(std::move(parent_fd), "stream");
    sock_->register_open();
    // The worker's end, as a gipc handle (a net::stream) so that it is transferred.
    spawned_handles one;
    one.items.push_back({'s', nullptr, nullptr, std::make_shared<socket_end>(std::move(worker_fd), "stream")});
    one.items.back().s->register_open();
    worker = detail_access::take_spawned<net::stream>(one, 0);
}

pool_parent_link::~pool_parent_link()
{
    if (sock_)
        sock_->close();
}

void pool_parent_link::give_memory(unique_native_fd memory) { send_fds(sock_->fd(), {memory.get()}); }

void pool_parent_link::send_handles(const std::vector<end_base*>& ends, const std::vector<bool>&, duplex&)
{
    std::vector<int> fds;
    for (end_base* e : ends)
        fds.push_back(e->fd());
    send_fds(sock_->fd(), fds);
}

unique_native_fd pool_worker_link::receive_memory(duplex&)
{
    std::vector<posix::unique_fd> got = receive_fds(sock_.native_handle());
    if (got.size() != 1)
        throw error("gipc: a pool worker did not receive its result memory");
    return std::move(got[0]);
}

void pool_worker_link::receive_handles(std::vector<handle_header>& headers, duplex&)
{
    std::vector<posix::unique_fd> got = receive_fds(sock_.native_handle());
    for (auto& h : headers)
        for (int& fd : h.fds) {
            if (fd < 0 || std::size_t(fd) >= got.size() || !got[std::size_t(fd)])
                throw error("gipc: a pool task's handles did not arrive whole");
            fd = got[std::size_t(fd)].release();
        }
}

std::string describe_worker_end(std::optional<int> code)
{
    if (!code)
        return "did not end";
    if (*code < 0) {
        const char* name = ::sigdescr_np(-*code);
        return "was killed by signal " + std::to_string(-*code) + (name ? std::string(" (") + name + ")" : "");
    }
    return "exited with code " + std::to_string(*code);
}

} // namespace gipc::detail
