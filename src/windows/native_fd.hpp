// SPDX-License-Identifier: MIT
#pragma once
// native_fd on Windows: a HANDLE (void*, spelled out so that io_ops.hpp, which every logic file
// includes, does not bring <windows.h> along). meson.build puts this directory on the include
// path of libgipc's sources on Windows, so that io_ops.hpp's #include "native_fd.hpp" finds
// this header (src/linux/native_fd.hpp is the POSIX one).

#include "../private.hpp"

#include <utility>

namespace gipc::detail {

using native_fd = void*;

// close_native_fd closes h with CloseHandle (src/windows/pipe_os.cpp); nothing for nullptr.
void close_native_fd(native_fd h) noexcept;

// unique_native_fd: the owner of one native_fd, closing it on destruction (what a gipc handle's
// end holds), with the interface of posix::unique_fd. Like win::unique_handle, whose handles it
// takes over (release()), both invalid values of the Win32 API count as empty, and get() of an
// empty owner is nullptr. Not thread-safe: one owner.
class unique_native_fd {
public:
    unique_native_fd() noexcept = default;
    explicit unique_native_fd(native_fd h) noexcept : h_(normal(h)) {}
    unique_native_fd(unique_native_fd&& other) noexcept : h_(other.release()) {}
    unique_native_fd& operator=(unique_native_fd&& other) noexcept
    {
        reset(other.release());
        return *this;
    }
    unique_native_fd(const unique_native_fd&) = delete;
    unique_native_fd& operator=(const unique_native_fd&) = delete;
    ~unique_native_fd() { reset(); }

    native_fd get() const noexcept { return h_; }
    explicit operator bool() const noexcept { return h_ != nullptr; }
    native_fd release() noexcept { return std::exchange(h_, nullptr); }
    void reset(native_fd h = nullptr) noexcept
    {
        if (native_fd old = std::exchange(h_, normal(h)))
            close_native_fd(old);
    }

private:
    // INVALID_HANDLE_VALUE is the HANDLE of value -1.
    static native_fd normal(native_fd h) noexcept
    {
        return h == reinterpret_cast<native_fd>(~static_cast<decltype(sizeof 0)>(0)) ? nullptr : h;
    }
    native_fd h_ = nullptr;
};

} // namespace gipc::detail
