// SPDX-License-Identifier: MIT
#pragma once
// io_ops: gipc's I/O operations, as its logic files (pipe ends, byte streams, sockets, process
// exits, the pool's fd passing) ask for them: "read into this buffer", "write this", "accept",
// "connect", "wait for this child's exit" — start the operation and park the calling fiber
// until it is done. One
// backend implements them, chosen in meson.build (platform_sources) with its reactor
// (reactor.hpp, which includes this header): src/linux/epoll_io.cpp on Linux,
// src/windows/iocp_io.cpp on Windows.
//
// A readiness backend (epoll) tries the syscall first and parks the fiber only when it would
// block (EAGAIN), until the fd is ready, then tries again: the syscalls a caller doing its own
// non-blocking I/O would make, and no more (where it knows the syscall would fail, it waits
// first: read_hint, stream_hint). A completion backend (an I/O completion port, see
// ../shared/windows.md) starts the overlapped operation (ReadFile/WriteFile on a named pipe,
// WSARecv/WSASend, AcceptEx, ConnectEx, RegisterWaitForSingleObject on a process handle) with
// the caller's buffer and parks the fiber until its completion packet arrives.
//
// The buffer rule, for every operation here: the caller's buffers stay valid and untouched by
// the caller from the call until it returns, and not a moment longer: when an operation
// returns, the backend is done with them. A completion backend that gives up at the deadline
// cancels its operation and waits for the cancellation's packet before it returns (bytes the
// operation moved meanwhile are returned, not -ETIMEDOUT). queue_write, which never waits,
// copies what it takes where it cannot finish at once.
//
// Results: a byte count (>= 0; 0 from a read is the end of the stream) or -errno; -ETIMEDOUT
// at the deadline (steady_time::max() is none). The operations throw only where every gipc call
// may: std::system_error when the calling thread can get no reactor at all (EMFILE...).
//
// Threads: a fiber of any thread may call the waiting operations, whatever scheduling
// algorithm its thread runs: the backend waits in the thread's own reactor where gipc's
// algorithm runs (and runs the thread's deferred tasks first: a wait is one of gipc's own
// suspension points, see scheduler.hpp), and through the relay (relay.hpp) where the program's
// own algorithm runs. fds are gipc's own (non-blocking, close-on-exec; on Windows handles
// opened for overlapped I/O, not inheritable), forgotten with forget_fd() before gipc closes
// them; only wait_user_fd takes fds of the program's.

#include "private.hpp"

// native_fd: the platform's handle of an open file, pipe end or process (an int fd on POSIX, a
// HANDLE on Windows), from the header of the platform's directory that meson.build puts on the
// include path (src/linux/native_fd.hpp, src/windows/native_fd.hpp).
#include "native_fd.hpp"
// native_socket: the platform's handle of a socket (an int fd on POSIX, a SOCKET on Windows),
// chosen the same way (src/linux/native_socket.hpp, src/windows/native_socket.hpp).
#include "native_socket.hpp"

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

struct sockaddr;

namespace gipc::detail {

class reactor;
class reactor_callback;

enum class io_dir : unsigned { read = 0, write = 1 };

using steady_time = std::chrono::steady_clock::time_point;

namespace io {

// slice: one buffer of a scattered read or gathered write.
struct slice {
    void* data;
    std::size_t size;
};

// read_hint: what the backend remembers of a pipe between the reads of one reader, so that the
// next read costs no failed syscall: epoll keeps the reactor and readiness count it saw when a
// read drained the pipe, and the next read waits first while that count stands. Owned by the
// reader, used by one fiber at a time (under the reader's lock); a zero hint knows nothing.
struct read_hint {
    std::uint64_t reactor = 0;
    std::uint64_t seen = 0;
};

// full_handler: asked by a readiness backend when a write finds the fd full, before it waits:
// true when the caller made room (a pipe grown) and the write should be tried again at once.
// Called on the writing thread, with whatever the caller held at the call; it must not block.
// A completion backend never asks.
class full_handler {
public:
    virtual bool on_full() noexcept = 0;

protected:
    ~full_handler() = default;
};

// read reads at most the slices' total size from the pipe fd into them (in order), parking
// the fiber until some bytes or the end of the stream arrive, or deadline. Returns the bytes
// read, 0 at the end of the stream, -ETIMEDOUT or -errno. hint, when given, is the reader's
// (see read_hint). count is 1 or 2.
ssize_t read(native_fd fd, const slice* slices, int count, steady_time deadline, read_hint* hint = nullptr);

// write writes from the slices (in order) to the pipe fd, at least one byte: as many as fd
// takes once it takes any, parking the fiber until then, or deadline. Returns the bytes
// written (> 0), -ETIMEDOUT or -errno (-EPIPE: no reader). on_full as for full_handler.
// count is 1 or 2.
ssize_t write(native_fd fd, const slice* slices, int count, steady_time deadline, full_handler* on_full = nullptr);

// queue_write is the write of a queue that the loop flushes (the pipe writer's coalesced
// frames): it writes what the pipe fd takes of data now, never waiting, and returns the bytes
// taken (0 when none fit now) or -errno. A completion backend copies what it takes into a
// buffer of its own for the overlapped write it starts (taking none while one is in flight)
// and reports that write's failure from the next call. Any thread; never suspends, so it may
// run with thread locks held and from deferred tasks and loop callbacks.
ssize_t queue_write(native_fd fd, const void* data, std::size_t len, full_handler* on_full) noexcept;

// call_when_queue_room registers cb to run once, from loop.poll() on loop's thread, when
// queue_write on fd can take more (epoll: the next EPOLLOUT edge; a completion backend: the
// completion of the write it started). Only loop's owning thread calls it, for its own loop.
// Returns 0 or -errno.
int call_when_queue_room(reactor& loop, native_fd fd, std::shared_ptr<reactor_callback> cb) noexcept;

// wait_queue_room parks the calling fiber until queue_write on fd can take more, or deadline
// (the pipe writer's blocking flush and close). Returns 0 (try again: a wake-up is not a
// promise), -ETIMEDOUT or -errno.
int wait_queue_room(native_fd fd, steady_time deadline);

// stream_hint: what the operations on one stream socket tell each other, so that the receive
// of a reply costs no syscall that fails: whether an operation on the stream ever waited (a
// readiness backend has then registered its fd with a reactor), and whether the last operation
// was a send. A receive that follows a send, on a stream that never waited, expects the reply
// to be on its way rather than there (a request was just sent): epoll registers the fd and
// waits before its first try, as a program doing its own non-blocking I/O would (the first
// registration reports data that is already there, so none is missed); the receive that would
// fail with EAGAIN first is saved. Owned by the stream; its reading and its writing fiber may
// run on different threads, hence atomics (see receive for why relaxed ones do). A zero hint
// knows nothing; a completion backend ignores it.
struct stream_hint {
    std::atomic<bool> waited{false};
    std::atomic<bool> sent{false};
};

// The socket operations below take native_socket. receive, send, accept and connect exist on
// both platforms (Windows: overlapped WSARecv, WSASend, AcceptEx, ConnectEx, on sockets made by
// the platform's socket functions: overlapped, not inheritable). send_with_fds and
// receive_with_fds are POSIX-only: the Windows backend does not define them, and the Windows
// build compiles none of their callers (src/pool.cpp).
//
// receive and send are read and write for a connected stream socket (send never raises
// SIGPIPE: -EPIPE). receive returns the bytes received, 0 when the peer shut down its side,
// -ETIMEDOUT or -errno; send the bytes sent (> 0), -ETIMEDOUT or -errno. hint, when given, is
// the stream's (see stream_hint).
ssize_t receive(native_socket fd, void* data, std::size_t size, steady_time deadline, stream_hint* hint = nullptr);
ssize_t send(native_socket fd, const void* data, std::size_t size, steady_time deadline, stream_hint* hint = nullptr);

// send_with_fds sends data (size >= 1) together with count open fds over the connected Unix
// socket fd, in one message (SCM_RIGHTS, at most 253 fds: SCM_MAX_FD): the receiver
// gets the bytes and duplicates of the fds at once. Parks the fiber while the socket has no
// room, until deadline. Returns the bytes sent (> 0), -ETIMEDOUT or -errno. This is how a
// POSIX parent hands descriptors to a child it did not fork them into (pool tasks); a Windows
// backend passes handles with DuplicateHandle into the child instead, which needs no socket.
ssize_t send_with_fds(int fd, const void* data, std::size_t size, const int* fds, std::size_t count,
                      steady_time deadline);

// receive_with_fds receives one such message into data and the fds it carried into fds (at
// most max_fds; their number in received; close-on-exec, owned by the caller from the return
// on), parking the fiber until one arrives, or deadline. Returns the bytes received (0: the
// peer is gone), -ETIMEDOUT, -EMSGSIZE (more fds came than max_fds or the kernel could pass:
// none is kept) or -errno.
ssize_t receive_with_fds(int fd, void* data, std::size_t size, int* fds, std::size_t max_fds,
                         std::size_t& received, steady_time deadline);

// accept takes one connection off the listening socket fd, parking the fiber until one is
// queued, or deadline; a connection that the peer gave up while queued is skipped. Returns the
// new socket (non-blocking, close-on-exec, TCP_NODELAY where it applies; on Windows overlapped
// and not inheritable; the caller owns it), -ETIMEDOUT or -errno.
native_socket accept(native_socket fd, steady_time deadline);

// connect connects the stream socket fd (made by the platform's open_stream_socket) to addr, parking
// the fiber until the attempt ends, or deadline (a Unix listener whose backlog is full is
// asked again after pauses, as the kernel announces no room there). Returns 0, -ETIMEDOUT or
// -errno (-ECONNREFUSED...). fd was registered with the reactor: forget_fd() it before closing
// it, connected or not (on Windows the SOCKET as a HANDLE, as every socket operation keys it). hint, when given, learns whether the connect waited (the stream made
// of fd starts with it).
int connect(native_socket fd, const ::sockaddr* addr, unsigned addr_len, steady_time deadline, stream_hint* hint = nullptr);

// wait_exit parks the calling fiber until the child behind the exit handle fd (a pidfd; on
// Windows the process handle) has exited, or deadline. Returns 0 (the child may be reaped
// without blocking; a wake-up is not a promise: poll, and wait again), -ETIMEDOUT or -errno.
// It does not reap.
int wait_exit(native_fd fd, steady_time deadline);

// wait_user_fd is gipc::wait_readable/wait_writable: a readiness wait on an fd of the
// program's, by contract (the one operation here that is not gipc's own). Returns 1 when fd
// is ready for dir now or becomes ready before deadline, 0 when it is not and may_block is
// false or deadline passed, or -errno (-EBADF: fd is not open; on Windows fd is a SOCKET, and
// -ENOTSOCK or -EBADF when it is not one: windows/readiness.cpp). fd is registered for the
// length of the wait only: the program may close it at any time after.
int wait_user_fd(int fd, io_dir dir, steady_time deadline, bool may_block);

} // namespace io

} // namespace gipc::detail
