// SPDX-License-Identifier: MIT
#pragma once
// The process-start layer: one way to start a child shared by its two ways in, fork
// (start_process, process.cpp) and exec (spawn_process, spawn.cpp). Both share the transfer of
// handles, naming, daemons, the start protocol, exit watching and exit duties; they differ in
// how the fork thread makes the child and in the child's bootstrap.
//
// The start protocol, over a close-on-exec socketpair:
//   1. the parent makes the child on its fork thread (start_context::start), closes its copy of
//      the child's end, takes the child's pidfd, and sends the go message (fork: go_byte; exec:
//      go_byte, a 32-bit length and the call's data). Until then the child cannot run its target
//      or end on its own, so nobody else can reap it before gipc watches it.
//   2. the child sets itself up and sends started_byte, or failed_byte and a setup_failure (and
//      _exits with 127); EOF before either means it died during its setup.
// Private header: never included from include/gipc/.

#include "private.hpp"

#include "child_call.hpp"
#include "posix/fd.hpp"

#include <gipc/process.hpp>

#include <sys/types.h>

#include <string>

namespace gipc::detail {

// The file a spawned child executes: the program's own, even if deleted or replaced since.
constexpr const char* self_exe_path = "/proc/self/exe";

// start_context: one child being started. It lives on the stack of the thread that called
// start_process or spawn_process (a forked child's memory holds a copy of it).
struct start_context {
    const process_options* options;
    std::string name;
    const transfer_list* transfers;
    pid_t parent;
    // The start socket: the child keeps child_fd until its target starts. start closes the
    // parent's copy of child_fd (and sets it to -1) once the child exists.
    int parent_fd;
    int child_fd;
    int pidfd = -1; // set by start: the child's pidfd, or -errno
    // For a daemon: the read end of this process's parent-death pipe (-1 otherwise).
    int death_read_fd = -1;
    // start runs on the fork thread: makes the child, takes its pidfd and sends the go message
    // once it has it. Returns the pid, or -errno when no child was made.
    pid_t (*start)(start_context&);
    void* way; // the way in's own data
};

// process_maker starts a child (both ways in) and wraps it in a process handle.
class process_maker {
public:
    // start checks and reserves the transfers, names the child, makes it through ctx_start on
    // the fork thread, reads its start report, registers it and closes the transferred
    // handles in the parent. Throws as start_process documents; then no child is left.
    // prepare, when given, runs on the calling thread once the transfers are reserved, before
    // the fork thread runs ctx_start.
    static process start(process_options options, const transfer_list& transfers,
                         pid_t (*ctx_start)(start_context&), void* way,
                         void (*prepare)(start_context&) = nullptr);

    // adopt_program watches an external program started by start_program (outside the start
    // protocol: it holds the pidfd from clone) as a child of this process. When it cannot be
    // watched it is killed (its group too with group) and reaped, and this throws.
    static process adopt_program(pid_t pid, posix::unique_fd pidfd, std::string name, bool daemon, bool group);
};

// prepare_program_start does what every start of a child does first: gipc's algorithm on the
// calling thread, the exit duties registered, a deferred reaper started.
void prepare_program_start();

// run_on_fork_thread runs fn(arg) on the fork thread (see fork_thread in process.cpp: fn must
// not allocate) and returns what it returns, or -errno when the fork thread cannot start.
pid_t run_on_fork_thread(pid_t (*fn)(void*), void* arg);

// ---- in the child ------------------------------------------------------------------------------

// report_setup_failure tells the parent why this child cannot run its target, and ends it.
[[noreturn]] void report_setup_failure(int fd, int err, const char* what) noexcept;

// become_daemon_child makes this child die with its parent (pid parent), whose parent-death
// pipe's read end is death_read_end (see watch_parent_death in process.cpp). Throws
// std::system_error when that cannot be watched.
void become_daemon_child(pid_t parent, posix::unique_fd death_read_end);

// end_on_exit_like_a_child makes exit() in the target end the child as a return does (flush,
// exit duties, _exit), never running the program's atexit handlers. Throws std::system_error.
void end_on_exit_like_a_child();

// count_child_name is the next "Process-N" of this process (shared by both ways in).
std::string next_child_name();

} // namespace gipc::detail
