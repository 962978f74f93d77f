// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// The exception types of gipc. Every gipc usage error derives from gipc::error. Failures of the
/// operating system are std::system_error carrying the errno value instead (for example
/// std::errc::broken_pipe when writing to a pipe whose read ends are all closed).

#include <gipc/detail/export.hpp>

#include <stdexcept>
#include <string>

/// gipc: child processes and inter-process communication for Boost.Fiber programs.
namespace gipc {

/// error: base of every gipc usage error (Python gipc's GIPCError).
class GIPC_EXPORT error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// closed_error: a handle was used or closed after it was closed, moved from, or transferred to a
/// child process (GIPCClosed).
class GIPC_EXPORT closed_error : public error {
public:
    using error::error;
};

/// locked_error: close() was called while another fiber is inside get()/put() on that handle
/// (GIPCLocked). The handle stays open.
class GIPC_EXPORT locked_error : public error {
public:
    using error::error;
};

/// eof_error: get() found every write end closed and no complete message left. A message cut
/// short by EOF is an eof_error too; its what() says so.
class GIPC_EXPORT eof_error : public error {
public:
    using error::error;
};

/// timeout_error: a timeout given to a blocking call expired. No data is lost.
class GIPC_EXPORT timeout_error : public error {
public:
    using error::error;
};

/// decode_error: a frame is malformed, over the size limit, or its payload is not a valid
/// msgpack value of the requested type.
class GIPC_EXPORT decode_error : public error {
public:
    using error::error;
};

} // namespace gipc
