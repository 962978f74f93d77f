// SPDX-License-Identifier: MIT
#include "posix/fd.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

namespace gipc::posix {

void close_fd(int fd) noexcept
{
    // Linux releases the descriptor even when close() reports EINTR, so it is never retried.
    if (fd >= 0)
        ::close(fd);
}

int set_nonblocking(int fd, bool on) noexcept
{
    int flags = retry_eintr([&] { return ::fcntl(fd, F_GETFL); });
    if (flags < 0)
        return flags;
    int wanted = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
    if (wanted == flags)
        return 0;
    int r = retry_eintr([&] { return ::fcntl(fd, F_SETFL, wanted); });
    return r < 0 ? r : 0;
}

int make_pipe(unique_fd& read_end, unique_fd& write_end, bool nonblocking) noexcept
{
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | (nonblocking ? O_NONBLOCK : 0)) != 0)
        return -errno;
    read_end.reset(fds[0]);
    write_end.reset(fds[1]);
    return 0;
}

ssize_t read_some(int fd, void* data, std::size_t size) noexcept
{
    return retry_eintr([&] { return ::read(fd, data, size); });
}

ssize_t readv_some(int fd, const ::iovec* iov, int count) noexcept
{
    return retry_eintr([&] { return ::readv(fd, iov, count); });
}

ssize_t write_some(int fd, const void* data, std::size_t size) noexcept
{
    return retry_eintr([&] { return ::write(fd, data, size); });
}

ssize_t writev_some(int fd, const ::iovec* iov, int count) noexcept
{
    return retry_eintr([&] { return ::writev(fd, iov, count); });
}

int pipe_max_size() noexcept
{
    static const int max = [] {
        int value = 1 << 20;
        if (FILE* f = std::fopen("/proc/sys/fs/pipe-max-size", "re")) {
            int v = 0;
            if (std::fscanf(f, "%d", &v) == 1 && v > 0)
                value = v;
            std::fclose(f);
        }
        return value;
    }();
    return max;
}

int pipe_size(int fd) noexcept { return retry_eintr([&] { return ::fcntl(fd, F_GETPIPE_SZ); }); }

int grow_pipe(int fd, int size) noexcept
{
    if (size > pipe_max_size())
        size = pipe_max_size();
    return retry_eintr([&] { return ::fcntl(fd, F_SETPIPE_SZ, size); });
}

} // namespace gipc::posix
