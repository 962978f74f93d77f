// SPDX-License-Identifier: MIT
#pragma once
// Shared memory between a process and a child it hands the memory's fd to, as gipc's logic
// sees it (the pool's result rings). The backend implements it, chosen in meson.build: on
// Linux, src/linux/shared_memory.cpp (a memfd). Functions return >= 0 (or an address) or
// -errno and never throw.

#include "private.hpp"

#include <cstddef>

namespace gipc::shm {

// create returns a memfd (close-on-exec) of size bytes, zero-filled, or -errno.
int create(const char* name, std::size_t size) noexcept;

// map maps the first size bytes of fd shared and read-write, and keeps the mapping out of
// forked children (MADV_DONTFORK: a child forked later, by gipc or by a task, does not get
// it). Returns the address, or nullptr with err set to -errno.
void* map(int fd, std::size_t size, int& err) noexcept;

// unmap undoes map (nothing for nullptr).
void unmap(void* address, std::size_t size) noexcept;

} // namespace gipc::shm
