// SPDX-License-Identifier: MIT
// Shared memory on Windows (src/shared_memory.hpp): an unnamed section of the paging file
// (CreateFileMappingW of INVALID_HANDLE_VALUE), mapped with MapViewOfFile. Its handle is not
// inheritable; the pool hands it to a worker with DuplicateHandle (src/windows/pool_link.cpp).
// A section of the paging file starts zero-filled, and a view keeps it alive after its last
// handle is closed.
#include "windows/win32.hpp"

#include "shared_memory.hpp"

#include "windows/win_errors.hpp"

#include <cstdint>

namespace gipc::shm {

int create(const char*, std::size_t size, detail::unique_native_fd& memory) noexcept
{
    const auto wide = static_cast<std::uint64_t>(size);
    HANDLE h = ::CreateFileMappingW(INVALID_HANDLE_VALUE, nullptr, PAGE_READWRITE, DWORD(wide >> 32),
                                    DWORD(wide & 0xffffffffu), nullptr);
    if (!h)
        return detail::win::errno_of(::GetLastError());
    memory.reset(h);
    return 0;
}

void* map(detail::native_fd memory, std::size_t size, int& err) noexcept
{
    void* p = ::MapViewOfFile(static_cast<HANDLE>(memory), FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, size);
    if (!p) {
        err = detail::win::errno_of(::GetLastError());
        return nullptr;
    }
    err = 0;
    return p;
}

void unmap(void* address, std::size_t) noexcept
{
    if (address)
        ::UnmapViewOfFile(address);
}

} // namespace gipc::shm
