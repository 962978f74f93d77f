// SPDX-License-Identifier: MIT
#pragma once
// Signal hygiene around fork(), and gipc's own threads. Never throws.

#include "../private.hpp"

#include <pthread.h>

#include <csignal>

namespace gipc::posix {

// block_all_signals blocks every signal on the calling thread and stores the old mask, so
// that no handler runs in the child between fork() and the reset of its handlers.
void block_all_signals(sigset_t& old_mask) noexcept;
void restore_signal_mask(const sigset_t& old_mask) noexcept;

// reset_signals_in_child resets every signal with a handler function to its default, leaves
// ignored signals ignored (as exec would), ignores SIGPIPE (pipe errors are reported as
// EPIPE), and clears the signal mask. Only in a child right after fork().
void reset_signals_in_child() noexcept;

// start_quiet_thread runs fn(arg) on a new thread that blocks every signal (the process's
// signals go to the program's threads; gipc's helper threads never run a handler). Detached,
// or joinable with its handle in *joinable when given. Returns 0 or -errno.
int start_quiet_thread(void* (*fn)(void*), void* arg, pthread_t* joinable = nullptr) noexcept;

} // namespace gipc::posix
