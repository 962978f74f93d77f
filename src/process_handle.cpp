// SPDX-License-Identifier: MIT
// The process handle's members that both platforms share, on the platform's child_state
// ("child_state.hpp": src/linux/child_state.hpp, src/windows/child_state.hpp). Its construction
// and destruction are the process-start layer's (src/process.cpp, src/windows/spawn.cpp).
#include "child_state.hpp"

#include "errors.hpp"
#include "io_ops.hpp"

#include <gipc/process.hpp>

#include <cerrno>

namespace gipc {

namespace {
// The signals terminate() and kill() send on POSIX (SIGTERM, SIGKILL); on Windows the codes
// whose negation exitcode() reports after TerminateProcess.
constexpr int terminate_signal = 15;
constexpr int kill_signal = 9;
} // namespace

process::process(std::shared_ptr<detail::child_state> state) noexcept : state_(std::move(state)) {}
process::process(process&& other) noexcept = default;

process& process::operator=(process&& other) noexcept
{
    if (this != &other) {
        process old(std::move(*this));
        state_ = std::move(other.state_);
    }
    return *this;
}

void process::check() const
{
    if (!state_)
        throw error("gipc: process handle is empty (moved from)");
}

pid_t process::pid() const noexcept { return state_ ? pid_t(state_->pid()) : -1; }

const std::string& process::name() const noexcept
{
    static const std::string empty;
    return state_ ? state_->name() : empty;
}

bool process::daemon() const noexcept { return state_ && state_->daemon(); }

bool process::is_alive() { return !exitcode().has_value(); }

std::optional<int> process::exitcode()
{
    check();
    return state_->poll();
}

void process::join() { join_until(detail::steady_time::max()); }

bool process::join_until(detail::steady_time deadline)
{
    check();
    for (;;) {
        if (state_->poll())
            return true;
        const int w = detail::io::wait_exit(state_->exit_handle(), deadline);
        if (w == -ETIMEDOUT)
            return state_->poll().has_value();
        if (w != 0)
            detail::throw_errno(w, "gipc: wait for " + state_->name());
    }
}

void process::terminate()
{
    check();
    state_->signal(terminate_signal);
}

void process::kill()
{
    check();
    state_->signal(kill_signal);
}

} // namespace gipc
