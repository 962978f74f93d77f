// SPDX-License-Identifier: MIT
// Code located by (loaded module, offset), for a call that travels as data (see
// <gipc/detail/call.hpp>), on Windows: the module that holds an address is
// GetModuleHandleExW's (FROM_ADDRESS), its span the SizeOfImage of its PE header, and the main
// program is GetModuleHandleW(nullptr), so that where the system loaded each image (ASLR) does
// not matter. The sibling of src/posix/code_location.cpp.
#include "windows/win32.hpp"

#include "windows/cmdline.hpp"

#include <gipc/detail/call.hpp>
#include <gipc/error.hpp>

#include <string>

namespace gipc::detail {

namespace {

// image_size is the span of a loaded image, from its PE header.
std::uintptr_t image_size(HMODULE m) noexcept
{
    const auto* base = reinterpret_cast<const unsigned char*>(m);
    const auto* dos = reinterpret_cast<const IMAGE_DOS_HEADER*>(base);
    const auto* nt = reinterpret_cast<const IMAGE_NT_HEADERS*>(base + dos->e_lfanew);
    return nt->OptionalHeader.SizeOfImage;
}

std::string module_path(HMODULE m)
{
    std::wstring path(260, L'\0');
    for (;;) {
        const DWORD n = ::GetModuleFileNameW(m, path.data(), DWORD(path.size()));
        if (n == 0)
            throw error("gipc: GetModuleFileNameW failed for a module of the program");
        if (n < path.size()) {
            path.resize(n);
            break;
        }
        path.resize(path.size() * 2);
    }
    std::string out;
    if (win::utf16_to_utf8(std::u16string_view(reinterpret_cast<const char16_t*>(path.data()), path.size()), out) != 0)
        throw error("gipc: a module of the program has a name that is not valid UTF-16");
    return out;
}

} // namespace

code_location locate_code(std::uintptr_t address)
{
    HMODULE m = nullptr;
    if (!::GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                              reinterpret_cast<LPCWSTR>(address), &m) ||
        !m)
        throw error("gipc: the function is not in the program's file or a library it loaded (made at run time?): "
                    "a spawned child cannot find it");
    code_location where;
    if (m != ::GetModuleHandleW(nullptr))
        where.object = module_path(m);
    where.offset = address - reinterpret_cast<std::uintptr_t>(m);
    return where;
}

std::uintptr_t find_code(const code_location& where)
{
    HMODULE m = nullptr;
    if (where.object.empty()) {
        m = ::GetModuleHandleW(nullptr);
    } else {
        std::u16string name;
        if (win::utf8_to_utf16(where.object, name) == 0)
            m = ::GetModuleHandleW(reinterpret_cast<LPCWSTR>(name.c_str()));
    }
    if (!m)
        throw error("gipc: a spawned child's target is in " + where.object + ", which is not loaded here");
    if (where.offset >= image_size(m))
        throw error(where.object.empty()
                        ? std::string("gipc: a spawned child's target lies outside the program's file")
                        : "gipc: a spawned child's target lies outside " + where.object);
    return reinterpret_cast<std::uintptr_t>(m) + std::uintptr_t(where.offset);
}

} // namespace gipc::detail
