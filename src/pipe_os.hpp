// SPDX-License-Identifier: MIT
#pragma once
// pipe_os: what the pipe ends (pipe.cpp, handles.cpp) need of the operating system and what
// differs between platforms: making a pipe, its buffer size and growing it, naming an fd in
// messages, the process and thread identities the writers of ended threads go by. Declared
// here, defined once per platform in a source meson.build chooses: src/posix/pipe_os.cpp
// (pipe2, fcntl's F_SETPIPE_SZ) and src/windows/pipe_os.cpp (overlapped named pipes,
// src/windows/named_pipe.hpp). Never throws, except describe (std::bad_alloc).

#include "private.hpp"

#include "io_ops.hpp"

#include <string>

namespace gipc::detail::pipe_os {

// make_pipe creates a pipe for gipc's ends: on POSIX with O_CLOEXEC and O_NONBLOCK on both
// ends; on Windows a uniquely named pipe in byte mode, both ends opened for overlapped I/O and
// not inheritable. Returns 0 or -errno.
int make_pipe(unique_native_fd& read_end, unique_native_fd& write_end) noexcept;

// pipe_size is the pipe's buffer size, or -errno. pipe_max_size is the most grow_pipe gives.
int pipe_size(native_fd fd) noexcept;
int pipe_max_size() noexcept;

// grow_pipe asks for a pipe buffer of at least size bytes (capped at pipe_max_size()). Returns
// the resulting size, or -errno (a refusal, such as EPERM past a per-user limit, is normal and
// leaves the pipe usable). Windows cannot grow a pipe: -EOPNOTSUPP.
int grow_pipe(native_fd fd, int size) noexcept;

// settle_queue waits, on the calling fiber, until the bytes queue_write (io_ops.hpp) took from
// the writer's queue are in the pipe, and returns 0, or the -errno of their write. Nothing to
// wait for on POSIX, where queue_write's bytes are in the pipe when it returns; on Windows its
// overlapped write may still be in flight, and closing the handle would cancel it.
int settle_queue(native_fd fd);

// describe names fd in messages: "fd 7", "handle 0x1a4".
std::string describe(native_fd fd);

// process_id is the calling process's id; on_main_thread is true on the process's initial
// thread, whose thread-local destructors run only when the process exits.
unsigned long process_id() noexcept;
bool on_main_thread() noexcept;

// thread_exit_destroys_locals: a thread that ends destroys its thread_local objects, as C++
// says (on Windows too: iocp_reactor.cpp makes sure of it under MinGW-w64's emulated TLS).
// Where it did not, the writers that a thread left queued behind a full pipe would not be
// handed to a helper thread when it ends, and would go out with the next call on the writer.
bool thread_exit_destroys_locals() noexcept;

} // namespace gipc::detail::pipe_os
