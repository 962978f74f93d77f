// SPDX-License-Identifier: MIT
#include "gipc/runtime.hpp"

#include "scheduler.hpp"

#include <poll.h>

#include <system_error>

namespace gipc {

namespace {

// ready_now reports whether fd is ready for dir right now, without blocking.
bool ready_now(int fd, detail::io_dir dir)
{
    pollfd p{fd, static_cast<short>(dir == detail::io_dir::read ? POLLIN : POLLOUT), 0};
    int r = posix::retry_eintr([&] { return ::poll(&p, 1, 0); });
    if (r < 0)
        throw std::system_error(-r, std::system_category(), "gipc: poll");
    if (p.revents & POLLNVAL)
        throw std::system_error(EBADF, std::system_category(), "gipc: wait on an fd that is not open");
    return r > 0;
}

bool wait_user_fd(int fd, detail::io_dir dir, detail::steady_time deadline, bool may_block)
{
    auto& algo = detail::installed_algorithm();
    if (ready_now(fd, dir))
        return true;
    if (!may_block)
        return false;
    int r = algo.reactor().wait(fd, dir, deadline, false);
    if (r == 0)
        return true;
    if (r == -ETIMEDOUT)
        return false;
    throw std::system_error(-r, std::system_category(), "gipc: wait on fd");
}

} // namespace

void use_reactor() { detail::installed_algorithm(); }

void wait_readable(int fd) { wait_user_fd(fd, detail::io_dir::read, detail::steady_time::max(), true); }

bool wait_readable(int fd, std::chrono::nanoseconds timeout)
{
    return wait_user_fd(fd, detail::io_dir::read, detail::deadline_after(timeout), timeout.count() > 0);
}

void wait_writable(int fd) { wait_user_fd(fd, detail::io_dir::write, detail::steady_time::max(), true); }

bool wait_writable(int fd, std::chrono::nanoseconds timeout)
{
    return wait_user_fd(fd, detail::io_dir::write, detail::deadline_after(timeout), timeout.count() > 0);
}

} // namespace gipc
