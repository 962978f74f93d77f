// SPDX-License-Identifier: MIT
#pragma once
// SIGPIPE in gipc's own process (handles.cpp).

#include "private.hpp"

namespace gipc::detail {

// ignore_sigpipe makes writes to a pipe without readers fail with EPIPE instead of killing
// the process, once per process; a handler the program installed itself is left alone.
void ignore_sigpipe() noexcept;

} // namespace gipc::detail
