// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// Pipes between fibers, threads and processes, carrying length-framed messages.
///
/// @code{.cpp}
/// auto [r, w] = gipc::pipe();
/// w.put(std::vector<int>{1, 2, 3});        // msgpack-encoded value
/// auto v = r.get<std::vector<int>>();      // blocks only the calling fiber
/// @endcode
///
/// Wire format: each message is one frame, a 4-byte big-endian payload length followed by the
/// payload: a msgpack value (put/get) or raw bytes (put_bytes/get_bytes). A reader chooses per
/// call how to read the next frame.
///
/// Handles are move-only; a moved-from handle is closed; the destructor closes an open handle.
/// The read side and the write side of every handle are each guarded by a fiber mutex, so
/// fibers on one or several threads may share a handle: each get() returns one whole message
/// and concurrent put()s never interleave their bytes.
///
/// Delivery: put() may queue the frame. A queued frame reaches the pipe no later than when the
/// calling fiber next suspends (blocks, yields, sleeps, joins or ends), on flush(), on close(),
/// and before a child process exits normally. A thread that puts without ever suspending a
/// fiber must call flush() for its frames to leave. put() blocks cooperatively while the pipe
/// is full and the queue is over its bound (256 KiB), so memory stays bounded.
///
/// Bounds: every call works on a fiber stack of 16 KiB. A reader keeps at most 1 MiB of buffer
/// once it returned a large message; a put() that is refused or fails keeps no memory. Frames a
/// thread queued behind a full pipe go out after the thread ended, with no further call on the
/// writer: a helper thread with a reactor of its own takes them over for as long as it takes.
///
/// Writing to a pipe whose read ends are all closed throws std::system_error with
/// std::errc::broken_pipe (gipc ignores SIGPIPE, so the process is never killed by it). An
/// error met while writing queued frames is thrown by the next put() or flush().

#include <gipc/detail/export.hpp>
#include <gipc/detail/handle.hpp>
#include <gipc/error.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace gipc {

/// native_handle_type: what native_handle(), read_handle() and write_handle() of the pipe
/// handles return: the fd (an int) on POSIX, the HANDLE of the named pipe's end on Windows. A
/// closed handle returns -1 on POSIX, INVALID_HANDLE_VALUE on Windows.
using native_handle_type = detail::native_handle_type;

/// pipe_options: the options of pipe() and duplex_pipe().
struct pipe_options {
    /// Frames larger than this are refused: put() throws gipc::error and writes nothing; a
    /// reader that meets a larger header throws decode_error and its stream stays unusable.
    /// At least 1 and at most 4 GiB - 1 (the most a frame header can announce).
    std::size_t max_message_size = std::size_t{1} << 30;
};

class reader;
class writer;
class duplex;

/// pipe creates a pipe and returns its read end and write end. Both fds are O_CLOEXEC and
/// non-blocking (on Windows: the ends of a uniquely named pipe, opened for overlapped I/O and
/// not inheritable). Throws std::system_error when the system refuses (e.g. EMFILE), and
/// gipc::error when max_message_size is 0 or over 4 GiB - 1.
GIPC_EXPORT std::pair<reader, writer> pipe(pipe_options options = {});

/// duplex_pipe creates two pipes and returns two ends, each reading what the other writes.
/// Throws as pipe() does.
GIPC_EXPORT std::pair<duplex, duplex> duplex_pipe(pipe_options options = {});

/// reader: the read end of a pipe.
class GIPC_EXPORT reader {
public:
    /// A default-constructed reader is closed.
    reader() noexcept;
    /// Takes over other's handle; other is left closed.
    reader(reader&& other) noexcept;
    /// Move assignment closes the handle this one held, like the destructor.
    reader& operator=(reader&& other) noexcept;
    /// The destructor closes an open handle. Destroying a handle a fiber is blocked on aborts.
    ~reader();

    /// get blocks the calling fiber until a whole message arrives and returns it as T.
    /// Throws eof_error after every write end is closed and no complete message is left,
    /// decode_error when the payload is not a T (that frame is consumed; the handle stays
    /// usable), closed_error when the handle is closed. T must own its data: get refuses at
    /// compile time types that would point into the frame (std::string_view, msgpack::object,
    /// raw pointers); use std::string or msgpack::object_handle.
    template <class T>
    [[nodiscard]] T get();

    /// get with a timeout bounding the whole call: timeout_error when it expires. Bytes of a
    /// message already read are kept, so a timeout loses no data.
    template <class T, class Rep, class Period>
    [[nodiscard]] T get(std::chrono::duration<Rep, Period> timeout);

    /// get_bytes returns the raw payload of the next frame, whatever it holds. Throws as get()
    /// does, but never for the payload's content.
    [[nodiscard]] std::string get_bytes();
    /// get_bytes with a timeout bounding the whole call: timeout_error when it expires, losing
    /// no data.
    template <class Rep, class Period>
    [[nodiscard]] std::string get_bytes(std::chrono::duration<Rep, Period> timeout);

    /// close closes the handle. closed_error if already closed; locked_error (the handle stays
    /// open) while another fiber is inside get().
    void close();
    /// closed is true when the handle is closed: by close(), moved from, default-constructed,
    /// or transferred to a child process.
    bool closed() const noexcept;
    /// native_handle is the fd (on Windows the HANDLE), or -1 (INVALID_HANDLE_VALUE) when
    /// closed.
    native_handle_type native_handle() const noexcept;

private:
    friend std::pair<reader, writer> pipe(pipe_options);
    friend struct detail::detail_access;
    explicit reader(std::shared_ptr<detail::read_end> end) noexcept;
    std::shared_ptr<detail::read_end> end_;
};

/// writer: the write end of a pipe.
class GIPC_EXPORT writer {
public:
    /// A default-constructed writer is closed.
    writer() noexcept;
    /// Takes over other's handle, queued frames included; other is left closed.
    writer(writer&& other) noexcept;
    /// Move assignment closes the handle this one held, like the destructor.
    writer& operator=(writer&& other) noexcept;
    /// The destructor closes an open handle, writing out queued frames first (see close()).
    ~writer();

    /// put msgpack-encodes value and sends it as one frame. Throws gipc::error (writing
    /// nothing) when the encoded value is over max_message_size, std::system_error for a
    /// failed write (broken_pipe when every reader is gone), closed_error when closed.
    template <class T>
    void put(const T& value);

    /// put_bytes sends payload unchanged as one frame. Throws as put() does.
    void put_bytes(std::string_view payload);

    /// flush pushes queued frames into the pipe now, blocking cooperatively while it is full.
    void flush();

    /// close writes out queued frames (blocking cooperatively while a reader exists and the
    /// pipe is full; frames no reader can receive any more are dropped) and closes the fd.
    /// closed_error if already closed; locked_error while another fiber is inside put().
    void close();
    /// closed is true when the handle is closed: by close(), moved from, default-constructed,
    /// or transferred to a child process.
    bool closed() const noexcept;
    /// native_handle is the fd (on Windows the HANDLE), or -1 (INVALID_HANDLE_VALUE) when
    /// closed.
    native_handle_type native_handle() const noexcept;

private:
    friend std::pair<reader, writer> pipe(pipe_options);
    friend struct detail::detail_access;
    explicit writer(std::shared_ptr<detail::write_end> end) noexcept;
    std::shared_ptr<detail::write_end> end_;
};

/// duplex: one end of a duplex pipe, reading what the other end writes and writing what it
/// reads. Everything reader and writer offer, on one object.
class GIPC_EXPORT duplex {
public:
    /// A default-constructed duplex is closed.
    duplex() noexcept;
    /// Takes over both directions of other; other is left closed.
    duplex(duplex&& other) noexcept;
    /// Move assignment closes both directions this one held, like the destructor.
    duplex& operator=(duplex&& other) noexcept;
    /// The destructor closes both directions, writing out queued frames first, as reader's and
    /// writer's destructors do.
    ~duplex();

    /// get blocks the calling fiber until a whole message from the other end arrives and returns
    /// it as T, as reader::get() does.
    template <class T>
    [[nodiscard]] T get();
    /// get with a timeout bounding the whole call, as reader::get() with a timeout.
    template <class T, class Rep, class Period>
    [[nodiscard]] T get(std::chrono::duration<Rep, Period> timeout);
    /// get_bytes returns the raw payload of the next frame, as reader::get_bytes() does.
    [[nodiscard]] std::string get_bytes();
    /// get_bytes with a timeout bounding the whole call, as reader::get_bytes() with a timeout.
    template <class Rep, class Period>
    [[nodiscard]] std::string get_bytes(std::chrono::duration<Rep, Period> timeout);

    /// put msgpack-encodes value and sends it to the other end as one frame, as writer::put()
    /// does.
    template <class T>
    void put(const T& value);
    /// put_bytes sends payload unchanged as one frame, as writer::put_bytes() does.
    void put_bytes(std::string_view payload);
    /// flush pushes queued frames into the pipe now, as writer::flush() does.
    void flush();

    /// close closes both directions; closed_error only if both were already closed;
    /// locked_error (both directions stay open) while another fiber is inside get() or put().
    void close();
    /// closed is true when both directions are closed.
    bool closed() const noexcept;
    /// read_handle is the fd (HANDLE) this end reads from, -1 (INVALID_HANDLE_VALUE) when that
    /// direction is closed.
    native_handle_type read_handle() const noexcept;
    /// write_handle is the fd (HANDLE) this end writes to, -1 (INVALID_HANDLE_VALUE) when that
    /// direction is closed.
    native_handle_type write_handle() const noexcept;

private:
    friend std::pair<duplex, duplex> duplex_pipe(pipe_options);
    friend struct detail::detail_access;
    duplex(std::shared_ptr<detail::read_end> in, std::shared_ptr<detail::write_end> out) noexcept;
    std::shared_ptr<detail::read_end> in_;
    std::shared_ptr<detail::write_end> out_;
};

} // namespace gipc

#include <gipc/detail/pipe.hpp>
