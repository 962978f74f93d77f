// SPDX-License-Identifier: MIT
#pragma once
// The exec path of the process-start layer, shared by spawn_process (a new execution of the
// program, spawn.cpp) and start_program (an external program, program.cpp): a child made with
// clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD), which shares the parent's memory until it calls
// execve (so the cost does not grow with the parent's memory, as with posix_spawn), sets up its
// fds and process attributes, and calls execve. The parent holds the child's pidfd from the
// moment it exists (CLONE_PIDFD): no exit, reaping by someone else or pid reuse can come
// between. A failure of any step in the child (its errno and which step) is written into the
// shared memory before the child _exits, and exec_child reaps that child itself: the caller
// gets the error and no child is left behind.
//
// What the child does, in order: the fd moves (dup2), closing every fd from close_from on
// (close_range, with a /proc/self/fd fallback), chdir, setpgid, PR_SET_PDEATHSIG, signal
// handlers reset (handled signals to their default, ignored ones kept, SIGPIPE to its default
// when asked), the signal mask cleared, execve.
// Private header: never included from include/gipc/.

#include "private.hpp"

#include <sys/types.h>

#include <vector>

namespace gipc::detail {

// exec_spec: what the child executes and how it is set up. Built on the calling thread; read
// (never changed) by exec_child on the fork thread.
struct exec_spec {
    const char* path = nullptr;   // the file to execute: execve's, no PATH lookup
    char* const* argv = nullptr;
    char* const* envp = nullptr;
    struct move {
        int from; // an fd of the parent, at or above close_from (or == to: keep `to` open)
        int to;   // its number in the child, below close_from
    };
    std::vector<move> moves;          // done in order, so {1, 2} after a move to 1 is 2>&1
    int close_from = 3;               // every fd at or above it is closed in the child
    const char* cwd = nullptr;        // chdir there first (nullptr: stay)
    bool new_process_group = false;   // setpgid(0, 0): the child leads a new process group
    pid_t death_parent = 0;           // > 0: PR_SET_PDEATHSIG SIGKILL, and _exit(127) unless
                                      // getppid() is still this (the parent died meanwhile)
    bool sigpipe_default = false;     // SIGPIPE at its default (else as the parent has it)
};

// The child's step that failed.
enum class exec_step { none, clone, dup2, close_fds, chdir, setpgid, prctl, execve };
const char* exec_step_name(exec_step step) noexcept;

struct exec_result {
    pid_t pid = -1;  // the child (> 0) when it runs the new program
    int pidfd = -1;  // its pidfd (close-on-exec), owned by the caller
    int err = 0;     // 0, or the errno of the step that failed (then no child is left)
    exec_step step = exec_step::none;
};

// exec_child makes the child. Allocates nothing: it runs on the fork thread (see fork_thread
// in process.cpp), whose signals are all blocked, so that no handler of the parent runs in the
// child before its handlers are reset, and a PR_SET_PDEATHSIG ties the child to a thread that
// lives as long as the process. One call at a time (the fork thread runs one request at a
// time): the child's stack is a static buffer.
exec_result exec_child(const exec_spec& spec) noexcept;

} // namespace gipc::detail
