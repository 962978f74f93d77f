// SPDX-License-Identifier: MIT
#pragma once
// Signal hygiene around fork(). Never throws.

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

} // namespace gipc::posix
