// SPDX-License-Identifier: MIT
#include "gipc/runtime.hpp"

#include "errors.hpp"
#include "reactor.hpp"
#include "scheduler.hpp"

namespace gipc {

namespace detail {

bool wait_fd_until(int fd, bool for_write, steady_time deadline, bool may_block)
{
    const int r = io::wait_user_fd(fd, for_write ? io_dir::write : io_dir::read, deadline, may_block);
    if (r == -EBADF)
        throw_errno(r, "gipc: wait on an fd that is not open");
    if (r < 0)
        throw_errno(r, "gipc: wait on fd");
    return r > 0;
}

} // namespace detail

void use_reactor() { detail::installed_algorithm(); }

void wait_readable(int fd) { detail::wait_fd_until(fd, false, detail::steady_time::max(), true); }

void wait_writable(int fd) { detail::wait_fd_until(fd, true, detail::steady_time::max(), true); }

} // namespace gipc
