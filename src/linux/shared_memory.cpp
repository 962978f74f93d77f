// SPDX-License-Identifier: MIT
#include "shared_memory.hpp"

#include "posix/fd.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace gipc::shm {

int create(const char* name, std::size_t size, detail::unique_native_fd& memory) noexcept
{
    posix::unique_fd fd(::memfd_create(name, MFD_CLOEXEC));
    if (!fd)
        return -errno;
    if (const int r = posix::retry_eintr([&] { return ::ftruncate(fd.get(), static_cast<off_t>(size)); }); r < 0)
        return r;
    memory = std::move(fd);
    return 0;
}

void* map(detail::native_fd fd, std::size_t size, int& err) noexcept
{
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        err = -errno;
        return nullptr;
    }
    if (::madvise(p, size, MADV_DONTFORK) != 0) {
        err = -errno;
        ::munmap(p, size);
        return nullptr;
    }
    err = 0;
    return p;
}

void unmap(void* address, std::size_t size) noexcept
{
    if (address)
        ::munmap(address, size);
}

} // namespace gipc::shm
