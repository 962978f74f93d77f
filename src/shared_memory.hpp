// SPDX-License-Identifier: MIT
#pragma once
// Shared memory between a process and a child it hands the memory's handle to, as gipc's logic
// sees it (the pool's result rings). The backend implements it, chosen in meson.build: on
// Linux, src/linux/shared_memory.cpp (a memfd); on Windows, src/windows/shared_memory.cpp (a
// section of the paging file). The memory's handle is a native_fd (an fd, a HANDLE), owned by
// unique_native_fd. Functions return 0 (or an address) or -errno and never throw.

#include "private.hpp"

#include "native_fd.hpp"

#include <cstddef>

namespace gipc::shm {

// create sets memory to new memory of size bytes, zero-filled, whose handle this process's
// children do not inherit (a close-on-exec memfd; a section handle that is not inheritable).
// Returns 0, or -errno (memory untouched).
int create(const char* name, std::size_t size, detail::unique_native_fd& memory) noexcept;

// map maps the first size bytes of memory shared and read-write. On Linux it keeps the mapping
// out of forked children (MADV_DONTFORK: a child forked later, by gipc or by a task, does not
// get it). The mapping holds the memory: its handle may be closed afterwards. Returns the
// address, or nullptr with err set to -errno.
void* map(detail::native_fd memory, std::size_t size, int& err) noexcept;

// unmap undoes map (nothing for nullptr).
void unmap(void* address, std::size_t size) noexcept;

} // namespace gipc::shm
