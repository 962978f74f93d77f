// SPDX-License-Identifier: MIT
#pragma once
// File descriptor utilities. Functions here never throw: they return a value >= 0 on success
// and -errno on failure, captured right after the failing call. EINTR is retried in exactly
// one place, retry_eintr().

#include "../private.hpp"

#include <sys/types.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstddef>
#include <utility>

namespace gipc::posix {

// retry_eintr calls f until it returns something other than -1 with errno == EINTR, and
// returns its result, or -errno when it failed.
template <class F>
auto retry_eintr(F&& f) noexcept -> decltype(f())
{
    for (;;) {
        auto r = f();
        if (r != -1)
            return r;
        if (errno != EINTR)
            return -errno;
    }
}

// close_fd closes fd (nothing when fd < 0), ignoring EINTR (the fd is released even then).
void close_fd(int fd) noexcept;

// unique_fd owns one file descriptor and closes it on destruction. Not thread-safe: one owner.
class unique_fd {
public:
    unique_fd() noexcept = default;
    explicit unique_fd(int fd) noexcept : fd_(fd) {}
    unique_fd(unique_fd&& other) noexcept : fd_(other.release()) {}
    unique_fd& operator=(unique_fd&& other) noexcept
    {
        reset(other.release());
        return *this;
    }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() { reset(); }

    int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }

    // release gives up ownership without closing; returns the fd.
    int release() noexcept { return std::exchange(fd_, -1); }

    // reset closes the owned fd, if any, and takes fd.
    void reset(int fd = -1) noexcept
    {
        int old = std::exchange(fd_, fd);
        if (old >= 0)
            close_fd(old);
    }

private:
    int fd_ = -1;
};

// set_nonblocking turns O_NONBLOCK on or off. Returns 0 or -errno.
int set_nonblocking(int fd, bool on) noexcept;

// make_pipe creates a pipe with O_CLOEXEC and, when nonblocking, O_NONBLOCK on both ends.
// Returns 0 or -errno.
int make_pipe(unique_fd& read_end, unique_fd& write_end, bool nonblocking) noexcept;

// grow_pipe asks the kernel for a pipe buffer of at least size bytes (F_SETPIPE_SZ), capped at
// the system maximum. Returns the resulting size, or -errno (a refusal such as EPERM past the
// per-user limit is normal and leaves the pipe usable).
int grow_pipe(int fd, int size) noexcept;

// pipe_size is the pipe's buffer size (F_GETPIPE_SZ), or -errno.
int pipe_size(int fd) noexcept;

// read_some / readv_some / write_some / writev_some are read(2), readv(2), write(2) and
// writev(2) with EINTR retried: the bytes moved, or -errno (-EAGAIN: the fd would block).
ssize_t read_some(int fd, void* data, std::size_t size) noexcept;
ssize_t readv_some(int fd, const ::iovec* iov, int count) noexcept;
ssize_t write_some(int fd, const void* data, std::size_t size) noexcept;
ssize_t writev_some(int fd, const ::iovec* iov, int count) noexcept;

// pipe_max_size is /proc/sys/fs/pipe-max-size, read once (1 MiB when unreadable).
int pipe_max_size() noexcept;

} // namespace gipc::posix
