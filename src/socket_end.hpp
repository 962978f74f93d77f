// SPDX-License-Identifier: MIT
#pragma once
// socket_end: the gipc handle state behind net::stream and net::listener.

#include "pipe_end.hpp"

#include <string>

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

    // Bytes read ahead by read_line, not yet returned; buffer[head..] is unread.
    std::string buffer;
    std::size_t head = 0;
};

} // namespace gipc::detail
