// SPDX-License-Identifier: MIT
#pragma once
// child_state on Linux: what the parent knows of one child (src/process.cpp defines its
// members). The process handle's members common to both platforms (src/process_handle.cpp) use
// it through this header, which meson.build's platform include directory chooses
// (src/windows/child_state.hpp is the Windows one). Private header.

#include "private.hpp"

#include "native_fd.hpp"
#include "posix/fd.hpp"
#include "thread_safety.hpp"

#include <sys/types.h>

#include <optional>
#include <string>

namespace gipc::detail {

// child_state: what the parent knows of one child. Shared by the process handle, the
// registry of live children and the reaper.
class child_state {
public:
    // program: an external program (start_program): not waited for at exit, SIGKILLed then
    // when a daemon, never counted on the parent-death pipe. group: signals go to its group.
    child_state(pid_t pid, posix::unique_fd pidfd, std::string name, bool daemon, bool program = false,
                bool group = false);
    ~child_state();
    child_state(const child_state&) = delete;
    child_state& operator=(const child_state&) = delete;

    pid_t pid() const noexcept { return pid_; }
    int pidfd() const noexcept { return pidfd_.get(); }
    // exit_handle is what io::wait_exit waits on: the pidfd.
    native_fd exit_handle() const noexcept { return pidfd_.get(); }
    const std::string& name() const noexcept { return name_; }
    bool daemon() const noexcept { return daemon_; }
    bool program() const noexcept { return program_; }

    // poll reaps the child if it has exited, without blocking; returns its status if so.
    std::optional<int> poll();
    // wait_blocking blocks the thread until the child has exited and reaps it.
    void wait_blocking();
    // signal sends sig (to its group with group) unless the child is reaped.
    void signal(int sig);

    // abandon_after_fork closes the pidfd in a forked child: this child is not its.
    void abandon_after_fork() noexcept { posix::close_fd(pidfd_.release()); }

private:
    void reaped(int status) GIPC_REQUIRES(mtx_);

    const pid_t pid_;
    posix::unique_fd pidfd_;
    const std::string name_;
    const bool daemon_;
    const bool program_;
    const bool group_;
    mutex mtx_; // lock order: thread_safety.hpp
    std::optional<int> status_ GIPC_GUARDED_BY(mtx_);
};

} // namespace gipc::detail
