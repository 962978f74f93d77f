// SPDX-License-Identifier: MIT
#include "posix/spawn.hpp"

#include <pthread.h>

namespace gipc::posix {

void block_all_signals(sigset_t& old_mask) noexcept
{
    sigset_t all;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old_mask);
}

void restore_signal_mask(const sigset_t& old_mask) noexcept
{
    ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
}

void reset_signals_in_child() noexcept
{
    for (int sig = 1; sig < NSIG; ++sig) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        struct sigaction current{};
        if (::sigaction(sig, nullptr, &current) != 0)
            continue; // signals reserved by the C library
        const bool has_function = (current.sa_flags & SA_SIGINFO) ||
                                  (current.sa_handler != SIG_DFL && current.sa_handler != SIG_IGN);
        if (sig == SIGPIPE || has_function) {
            struct sigaction reset{};
            reset.sa_handler = sig == SIGPIPE ? SIG_IGN : SIG_DFL;
            sigemptyset(&reset.sa_mask);
            ::sigaction(sig, &reset, nullptr);
        }
    }
    sigset_t none;
    sigemptyset(&none);
    ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
}

} // namespace gipc::posix
