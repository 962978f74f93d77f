// SPDX-License-Identifier: MIT
#pragma once
// pidfd helpers: exit watching without SIGCHLD handlers or waitpid(-1). Linux 5.3 or later.
// Functions return >= 0 or -errno and never throw.

#include "../private.hpp"

#include <sys/types.h>

namespace gipc::linux_pidfd {

// open returns a pidfd (close-on-exec) for the child pid, or -errno.
int open(pid_t pid) noexcept;

// try_reap reaps the exited child behind pidfd without blocking. Returns 1 and sets status
// (>= 0 exit status, -N killed by signal N) when it was reaped, 0 while it runs, or -errno.
int try_reap(int pidfd, int& status) noexcept;

// reap_blocking waits for the child behind pidfd to exit and reaps it. 0 or -errno.
int reap_blocking(int pidfd, int& status) noexcept;

// wait_exited blocks the calling thread (not only its fiber) until the child behind pidfd
// has exited, without reaping it. 0 or -errno.
int wait_exited(int pidfd) noexcept;

// send_signal sends sig to the process behind pidfd (immune to pid reuse). 0 or -errno.
int send_signal(int pidfd, int sig) noexcept;

} // namespace gipc::linux_pidfd
