// SPDX-License-Identifier: MIT
#pragma once
// Internals shared by gipc's public headers. Not part of the API: names here may change.

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace gipc::detail {

class read_end;
class write_end;
// detail_access: the handles' friend, through which start_process and spawn_process reach
// their ends (<gipc/detail/process.hpp>).
struct detail_access;

using steady_time = std::chrono::steady_clock::time_point;

// native_handle_type is what native_handle() of a pipe end returns: the platform's handle of
// the open pipe, an int fd on POSIX and a HANDLE on Windows (void*, spelled out so that gipc's
// headers do not bring <windows.h> along). closed_native_handle() is what a closed end returns:
// -1 on POSIX, INVALID_HANDLE_VALUE (the HANDLE of value -1) on Windows.
#ifdef _WIN32
using native_handle_type = void*;
inline native_handle_type closed_native_handle() noexcept
{
    return reinterpret_cast<void*>(~std::uintptr_t{0});
}
#else
using native_handle_type = int;
constexpr native_handle_type closed_native_handle() noexcept { return -1; }
#endif

// deadline_from converts a relative timeout to an absolute steady_clock deadline, saturating
// at time_point::max() for timeouts too long to represent (infinity included). A timeout that
// is not positive (NaN included) is the deadline "now".
template <class Rep, class Period>
steady_time deadline_from(std::chrono::duration<Rep, Period> timeout) noexcept
{
    using namespace std::chrono;
    const auto now = steady_clock::now();
    if (!(timeout > duration<Rep, Period>::zero()))
        return now;
    // Compare in floating point so that any Rep/Period converts without overflow.
    const duration<double> wanted = timeout;
    const duration<double> room = steady_time::max() - now;
    if (wanted >= room)
        return steady_time::max();
    return now + ceil<steady_clock::duration>(timeout);
}

} // namespace gipc::detail
