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

int start_quiet_thread(void* (*fn)(void*), void* arg, pthread_t* joinable) noexcept
{
    sigset_t old_mask;
    block_all_signals(old_mask); // a new thread starts with its creator's mask
    pthread_t thread;
    const int err = ::pthread_create(&thread, nullptr, fn, arg);
    restore_signal_mask(old_mask);
    if (err != 0)
        return -err;
    if (joinable)
        *joinable = thread;
    else
        ::pthread_detach(thread);
    return 0;
}

} // namespace gipc::posix
