// SPDX-License-Identifier: MIT
#pragma once
// What both platforms' child starts share, on both sides of the start protocol: its bytes, the
// setup failure a child reports, the call a spawned child receives (its header, the go message
// that carries it, its decoding in spawn_main), and how a child runs its target and ends. The
// channel differs (a socketpair on POSIX, a synchronous duplex pipe on Windows) and so does what
// happens around it (process_start.hpp; windows/spawn.cpp); these pieces do not.
// Private header: never included from include/gipc/.

#include "private.hpp"

#include "handle_transfer.hpp"

#include <gipc/detail/call.hpp>
#include <gipc/detail/spawn.hpp>

#include <msgpack.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gipc::detail {

// The start protocol's bytes: the parent's go message starts with go_byte; the child answers
// started_byte, or failed_byte followed by a setup_failure (then it ends with exit code 127).
constexpr char go_byte = 'g';
constexpr char started_byte = 's';
constexpr char failed_byte = 'f';
struct setup_failure {
    int err;
    char what[240];
};

// start_failure_message is a child's failure report: failed_byte, then the setup_failure of
// err (an errno value) and what (cut to fit).
using start_failure_bytes = char[1 + sizeof(setup_failure)];
void start_failure_message(int err, const char* what, start_failure_bytes& out) noexcept;

// read_start_report reads a child's report from the have bytes received in msg: 0 when it
// starts its target, the errno of its setup failure (its message in what), or -1 when the
// report is incomplete or not one (the child ended without a word).
int read_start_report(const char* msg, std::size_t have, std::string& what) noexcept;

// The call of a spawned child, packed before its arguments: everything the child needs but
// them. daemon, parent and death_fd are POSIX's (a Windows daemon is in a job object).
constexpr const char* spawn_call_magic = "gipc-spawn-1";
struct call_header {
    std::string magic = spawn_call_magic;
    std::string name;
    bool daemon = false;
    int parent = 0;
    int death_fd = -1;
    code_location invoker;
    code_location target;
    std::vector<handle_header> handles;
    MSGPACK_DEFINE(magic, name, daemon, parent, death_fd, invoker, target, handles)
};

// go_message is the go message of a spawned child: go_byte, the length of what follows (32
// bits, big-endian), the header, the packed arguments. Throws gipc::error when that is 4 GiB
// or more, std::bad_alloc.
std::string go_message(const call_header& header, const char* packed_args, std::size_t args_size);

// go_message_head_size is the size of what precedes the call's data; go_message_length reads
// that length from it (the caller checks head[0] == go_byte).
constexpr std::size_t go_message_head_size = 5;
std::uint32_t go_message_length(const char* head) noexcept;

// spawned_call: the call, as rebuilt in the child.
struct spawned_call {
    std::string name;
    spawn_invoker invoker = nullptr;
    std::uintptr_t target = 0;
    msgpack::object_handle args;
    spawned_handles* handles = nullptr;
};

// decode_call unpacks the call's data (the go message after its head) into call's name and
// arguments, and returns its header. Throws gipc::error for a call of another version of gipc,
// msgpack's errors for malformed data.
call_header decode_call(const std::string& data, spawned_call& call);

// bind_call makes the call's handles around the fds (or handles) of header.handles, which it
// takes over, into handles, and finds its code in this process. Throws as rebuild_handles and
// find_code do.
void bind_call(const call_header& header, spawned_call& call, spawned_handles& handles);

class child_state; // the platform's (linux/child_state.hpp, windows/child_state.hpp)

// live_children is the children of this process that have not been reaped, from the
// platform's registry (process.cpp; windows/spawn.cpp). Throws std::bad_alloc.
std::vector<std::shared_ptr<child_state>> live_children();

// exit_duties: at a normal exit, terminate daemon children (a daemon program is killed: it
// need not know gipc's ways), then wait for every child but the external programs that are not
// daemons (left running, as Python's subprocess leaves them: the system reaps them once this
// process is gone).
void exit_duties() noexcept;

// finish_child is how a child ends once its target is done: flush what writers still hold
// (queued frames leave before the child exits), the exit duties, stdio flushed.
void finish_child() noexcept;

// run_child_target runs run(arg) as a child's target and ends the child: the uncaught-exception
// line, then destroy(arg) (the arguments, whose handles flush and close), then finish_child and
// an exit with the target's exit code that runs no exit handler of the program.
[[noreturn]] void run_child_target(const std::string& name, int (*run)(void*), void (*destroy)(void*) noexcept,
                                   void* arg);

// run_spawned_call is run_child_target for a spawned child's call.
[[noreturn]] void run_spawned_call(spawned_call& call);

} // namespace gipc::detail
