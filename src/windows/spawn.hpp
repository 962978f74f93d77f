// SPDX-License-Identifier: MIT
#pragma once
// What src/windows/program_start.cpp needs of src/windows/spawn.cpp, the process-start layer on
// Windows. Private header: never included from include/gipc/.

#include "windows/handle.hpp"

#include <gipc/process.hpp>

#include <string>

namespace gipc::detail {

// prepare_program_start does what every start of a child does first: gipc's algorithm on the
// calling thread, the exit duties registered.
void prepare_program_start();

// adopt_program watches an external program (start_program) as a child of this process: not
// waited for at exit unless a daemon, which is killed then (and by its kill-on-close job
// however this process ends). job is a daemon's kill-on-close job, or with group the job that
// terminate() and kill() end whole; else empty. When it cannot be watched it is killed, and this
// throws.
process adopt_program(win::unique_handle process, DWORD pid, std::string name, bool daemon, win::unique_handle job,
                      bool group);

} // namespace gipc::detail
