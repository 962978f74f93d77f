// SPDX-License-Identifier: MIT
#include "gipc/runtime.hpp"

#include "errors.hpp"
#include "posix/fd.hpp"
#include "scheduler.hpp"

#include <poll.h>


namespace gipc {

namespace {

// ready_now reports whether fd is ready for dir right now, without blocking.
bool ready_now(int fd, detail::io_dir dir)
{
    pollfd p{fd, static_cast<short>(dir == detail::io_dir::read ? POLLIN : POLLOUT), 0};
    int r = posix::retry_eintr([&] { return ::poll(&p, 1, 0); });
    if (r < 0)
        detail::throw_errno(r, "gipc: poll");
    if (p.revents & POLLNVAL)
        detail::throw_errno(-EBADF, "gipc: wait on an fd that is not open");
    return r > 0;
}

} // namespace

namespace detail {

bool wait_fd_until(int fd, bool for_write, steady_time deadline, bool may_block)
{
    const io_dir dir = for_write ? io_dir::write : io_dir::read;
    thread_algorithm(); // every gipc call installs gipc's algorithm where the default runs
    for (;;) {
        if (ready_now(fd, dir))
            return true;
        if (!may_block)
            return false;
        int r = wait_user_fd(fd, dir, deadline);
        if (r == 0)
            return true;
        if (r == -ETIMEDOUT)
            return false;
        if (r != -EAGAIN) // -EAGAIN: woken without news (after a fork): look again
            throw_errno(r, "gipc: wait on fd");
    }
}

} // namespace detail

void use_reactor() { detail::installed_algorithm(); }

void wait_readable(int fd) { detail::wait_fd_until(fd, false, detail::steady_time::max(), true); }

void wait_writable(int fd) { detail::wait_fd_until(fd, true, detail::steady_time::max(), true); }

} // namespace gipc
