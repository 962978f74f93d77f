// SPDX-License-Identifier: MIT
#pragma once
// child_state on Windows: what the parent knows of one child (src/windows/spawn.cpp defines its
// members). The process handle's members common to both platforms (src/process_handle.cpp) use
// it through this header, which meson.build's platform include directory chooses. Private
// header.

#include "../private.hpp"

#include "native_fd.hpp"
#include "handle.hpp"
#include "../thread_safety.hpp"

#include <mutex>
#include <optional>
#include <string>

namespace gipc::detail {

// child_state: what the parent knows of one child. Shared by the process handle and the
// registry of running children.
class child_state {
public:
    // program: an external program (start_program): not waited for at exit, killed then when
    // a daemon. group: terminate() and kill() end every process of its job.
    child_state(win::unique_handle process, DWORD pid, std::string name, bool daemon, win::unique_handle job,
                bool program = false, bool group = false) noexcept
        : process_(std::move(process)), job_(std::move(job)), pid_(pid), name_(std::move(name)), daemon_(daemon),
          program_(program), group_(group)
    {
    }
    child_state(const child_state&) = delete;
    child_state& operator=(const child_state&) = delete;

    HANDLE handle() const noexcept { return process_.get(); }
    // exit_handle is what io::wait_exit waits on: the process handle.
    native_fd exit_handle() const noexcept { return process_.get(); }
    DWORD pid() const noexcept { return pid_; }
    const std::string& name() const noexcept { return name_; }
    bool daemon() const noexcept { return daemon_; }
    bool program() const noexcept { return program_; }

    // poll is the exit code once the child has exited, without waiting.
    std::optional<int> poll();
    // wait_blocking blocks the thread until the child has exited.
    void wait_blocking() noexcept
    {
        ::WaitForSingleObject(process_.get(), INFINITE);
        try {
            poll();
        } catch (...) {
        }
    }
    // signal ends a running child with TerminateProcess (its job with group), sig 15 for
    // terminate() and 9 for kill(); exitcode() is then -sig.
    void signal(int sig);

private:
    const win::unique_handle process_;
    // A daemon's kill-on-close job object (closing it, or this process ending, ends the child),
    // or a program group's job.
    win::unique_handle job_;
    const DWORD pid_;
    const std::string name_;
    const bool daemon_;
    const bool program_;
    const bool group_;
    plain_mutex mtx_;
    std::optional<int> code_;
    int ended_by_ = 0; // the sig of the terminate() or kill() that was sent
};

} // namespace gipc::detail
