// SPDX-License-Identifier: MIT
#include "handle.hpp"

#include <winternl.h>

#include <memory>
#include <new>

namespace gipc::detail::win {

DWORD set_inheritable(HANDLE h, bool on) noexcept
{
    if (!::SetHandleInformation(h, HANDLE_FLAG_INHERIT, on ? HANDLE_FLAG_INHERIT : 0))
        return ::GetLastError();
    return 0;
}

long is_inheritable(HANDLE h) noexcept
{
    DWORD flags = 0;
    if (!::GetHandleInformation(h, &flags))
        return -static_cast<long>(::GetLastError());
    return (flags & HANDLE_FLAG_INHERIT) ? 1 : 0;
}

DWORD inheritable_duplicate(HANDLE h, unique_handle& out) noexcept
{
    HANDLE self = ::GetCurrentProcess();
    HANDLE dup = nullptr;
    if (!::DuplicateHandle(self, h, self, &dup, 0, TRUE, DUPLICATE_SAME_ACCESS))
        return ::GetLastError();
    out.reset(dup);
    return 0;
}

namespace {

// The layout of SystemExtendedHandleInformation (class 64), which winternl.h does not declare.
struct system_handle_entry {
    void* object;
    ULONG_PTR process_id;
    ULONG_PTR handle_value;
    ULONG granted_access;
    USHORT creator_back_trace_index;
    USHORT object_type_index;
    ULONG handle_attributes;
    ULONG reserved;
};
struct system_handle_information {
    ULONG_PTR count;
    ULONG_PTR reserved;
    system_handle_entry handles[1];
};
constexpr int system_extended_handle_information = 64;
constexpr NTSTATUS status_info_length_mismatch = static_cast<NTSTATUS>(0xC0000004L);

// handles_in_system_table counts this process's entries in the system's handle table.
DWORD handles_in_system_table(DWORD& count) noexcept
{
    ULONG size = 1 << 16;
    for (;;) {
        std::unique_ptr<unsigned char[]> buf(new (std::nothrow) unsigned char[size]);
        if (!buf)
            return ERROR_NOT_ENOUGH_MEMORY;
        ULONG needed = 0;
        NTSTATUS s = ::NtQuerySystemInformation(
            static_cast<SYSTEM_INFORMATION_CLASS>(system_extended_handle_information), buf.get(),
            size, &needed);
        if (s == status_info_length_mismatch && size < (1u << 30)) {
            size = needed > size ? needed + 4096 : size * 2;
            continue;
        }
        if (s != 0)
            return ::RtlNtStatusToDosError(s);
        auto* info = reinterpret_cast<const system_handle_information*>(buf.get());
        const ULONG_PTR self = ::GetCurrentProcessId();
        DWORD n = 0;
        for (ULONG_PTR i = 0; i < info->count; ++i)
            if (info->handles[i].process_id == self)
                ++n;
        count = n;
        return 0;
    }
}

} // namespace

DWORD process_handle_count(DWORD& count) noexcept
{
    if (!::GetProcessHandleCount(::GetCurrentProcess(), &count))
        return ::GetLastError();
    // Wine 8 answers 0, whatever is open; its system handle table is right.
    if (count == 0)
        return handles_in_system_table(count);
    return 0;
}

} // namespace gipc::detail::win
