// SPDX-License-Identifier: MIT
#pragma once
// socket_end: the gipc handle state behind net::stream and net::listener.

#include "private.hpp"

#include "end_base.hpp"
#include "errors.hpp"
#include "io_ops.hpp"
#include "socket_os.hpp"

#include <gipc/error.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace gipc::detail {

class socket_end final : public end_base {
public:
    // A socket's end (net::stream, net::listener): the end holds it as socket_fd(s) and closes
    // it with socket_os::close_socket (closesocket on Windows).
    socket_end(socket_os::unique_socket s, const char* kind) noexcept
        : end_base(unique_native_fd(socket_fd(s.release())), kind, 0), socket_(true)
    {
    }
    // The end of a pipe, or of a socket on POSIX, handed over as a native_fd and closed as one:
    // the byte streams of a program (program.cpp), and the POSIX paths that pass sockets as fds
    // (the pool's fd-passing socket, the sockets a child receives), where a socket is an fd
    // and its close the same.
    socket_end(unique_native_fd fd, const char* kind) noexcept : end_base(std::move(fd), kind, 0) {}

    ~socket_end() override
    {
        // Only an end that never became a handle's still holds its fd here (make_end failing
        // to register it): out of the reactors, which an operation before may have told of it.
        if (fd_) {
            forget_from_everywhere();
            close_now();
        }
    }

    void close()
    {
        forget_from_everywhere();
        close_now();
        buffer.clear();
        buffer.shrink_to_fit();
        head = 0;
    }

    void abandon_after_fork() noexcept override
    {
        close_now();
        end_base::abandon_after_fork();
    }

    // socket is the socket of a socket's end, for the socket operations of io_ops.hpp.
    native_socket socket() const noexcept { return fd_socket(fd_.get()); }

    // set_fd gives an end made without an fd its fd (start_program: on the fork thread, so that
    // no gipc child is forked between the pipe's creation and the end's registration).
    void set_fd(native_fd fd) noexcept { fd_.reset(fd); }

    // take_buffered moves up to size bytes that a line read left in the buffer into data (the
    // buffer is emptied once taken whole). Returns how many: 0 when none are buffered.
    std::size_t take_buffered(void* data, std::size_t size) noexcept
    {
        if (head >= buffer.size())
            return 0;
        const std::size_t n = std::min(size, buffer.size() - head);
        std::memcpy(data, buffer.data() + head, n);
        head += n;
        if (head == buffer.size()) {
            buffer.clear();
            head = 0;
        }
        return n;
    }

    // checked returns n, the result of an operation of io_ops.hpp on this end, when it is no
    // error, and throws otherwise: timeout_error naming operation at the deadline, else
    // std::system_error "gipc: <action> <name()>" (action: "read from", "write to"...). The
    // message is made only when thrown: these run once per read or write.
    template <class N>
    N checked(N n, const char* operation, const char* action) const
    {
        if (n >= 0)
            return n;
        if (n == -ETIMEDOUT)
            throw timeout_error(std::string("gipc: ") + operation + " timed out");
        throw_errno(static_cast<int>(n), std::string("gipc: ") + action + " " + name());
    }

    // read_line is the line reading of net::stream and byte_reader: the next line (its
    // newline included) from the buffer, which more() extends (false at the end of the stream).
    // "" at the end of the stream with nothing buffered; eof_error saying `ended` when a partial
    // line is left; gipc::error for a line longer than max_length.
    template <class More>
    std::string read_line(std::size_t max_length, const char* ended, More&& more)
    {
        std::size_t scanned = head;
        for (;;) {
            const auto nl = buffer.find('\n', scanned);
            if (nl != std::string::npos) {
                std::string line = buffer.substr(head, nl + 1 - head);
                head = nl + 1;
                if (head == buffer.size()) {
                    buffer.clear();
                    head = 0;
                }
                return line;
            }
            scanned = buffer.size();
            if (scanned - head > max_length)
                throw error("gipc: line longer than " + std::to_string(max_length) + " bytes on " + name());
            if (head > 0 && head * 2 > buffer.size()) {
                buffer.erase(0, head);
                scanned -= head;
                head = 0;
            }
            if (!more()) {
                const std::size_t partial = buffer.size() - head;
                if (partial == 0)
                    return {};
                throw eof_error("gipc: " + name() + ": " + ended + " in the middle of a line (" +
                                std::to_string(partial) + " bytes without a newline)");
            }
        }
    }

    // Bytes read ahead by read_line, not yet returned; buffer[head..] is unread.
    std::string buffer;
    std::size_t head = 0;
    // What a stream's receives and sends tell each other (io_ops.hpp).
    io::stream_hint hint;

private:
    // close_now closes the fd as what it is: a socket with close_socket, anything else as a
    // native_fd.
    void close_now() noexcept
    {
        if (!fd_)
            return;
        if (socket_)
            socket_os::close_socket(fd_socket(fd_.release()));
        else
            fd_.reset();
    }

    const bool socket_ = false;
};

} // namespace gipc::detail
