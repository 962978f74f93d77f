// SPDX-License-Identifier: MIT
#pragma once
// socket_end: the gipc handle state behind net::stream and net::listener.

#include "private.hpp"

#include "end_base.hpp"

#include <string>
#include <utility>

namespace gipc::detail {

class socket_end final : public end_base {
public:
    socket_end(posix::unique_fd fd, const char* kind) noexcept : end_base(std::move(fd), kind, 0) {}

    void close()
    {
        release_fd();
        buffer.clear();
        buffer.shrink_to_fit();
        head = 0;
    }

    // set_fd gives an end made without an fd its fd (start_program: on the fork thread, so that
    // no gipc child is forked between the pipe's creation and the end's registration).
    void set_fd(int fd) noexcept { fd_.reset(fd); }

    // Bytes read ahead by read_line, not yet returned; buffer[head..] is unread.
    std::string buffer;
    std::size_t head = 0;
};

} // namespace gipc::detail
