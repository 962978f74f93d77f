// SPDX-License-Identifier: MIT
#pragma once
// named_pipe.hpp: pipes for gipc on Windows. Anonymous pipes (CreatePipe) cannot do overlapped
// I/O, so a pipe here is a uniquely named pipe, \\.\pipe\gipc-<pid>-<counter>, created with
// FILE_FLAG_FIRST_PIPE_INSTANCE (no other process can have made, or then make, an instance of
// that name) in byte mode, and at once opened from this process by its other end. Remote clients
// are refused. Both ends are non-inheritable (handle.hpp: inheritable_duplicate passes one to a
// child). Nothing here throws: functions return 0 or a Win32 error code.

#include "handle.hpp"

namespace gipc::detail::win {

// pipe_options: per end, whether it is opened for overlapped I/O (FILE_FLAG_OVERLAPPED), the
// way gipc's reactor does all its I/O; an end given to a program that expects ordinary
// synchronous I/O (a child's stdin or stdout) must be opened without it.
struct pipe_options {
    bool read_overlapped = true;
    bool write_overlapped = true;
    DWORD buffer_size = 64 * 1024; // each direction's buffer, a hint to the system
};

// make_pipe creates a one-way pipe: bytes written to write_end are read from read_end. When the
// write end is closed, a read of the read end fails with ERROR_BROKEN_PIPE (end of stream);
// when the read end is closed, a write fails with ERROR_NO_DATA or ERROR_BROKEN_PIPE.
DWORD make_pipe(unique_handle& read_end, unique_handle& write_end,
                const pipe_options& options = {}) noexcept;

// duplex_options: per end, overlapped or not.
struct duplex_options {
    bool first_overlapped = true;
    bool second_overlapped = true;
    DWORD buffer_size = 64 * 1024;
};

// make_duplex_pipe creates a two-way pipe: what one end writes, the other reads.
DWORD make_duplex_pipe(unique_handle& first, unique_handle& second,
                       const duplex_options& options = {}) noexcept;

} // namespace gipc::detail::win
