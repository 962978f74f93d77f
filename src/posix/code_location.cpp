// SPDX-License-Identifier: MIT
// Code located by (loaded object, offset), for a call that travels as data (see
// <gipc/detail/call.hpp>), on ELF systems: with dl_iterate_phdr, the same way in the process
// that sends the call and in the one that runs it, so that address space layout randomisation
// does not matter. (src/windows/code_location.cpp is the Windows sibling.)
#include <gipc/detail/call.hpp>
#include <gipc/error.hpp>

#include <link.h>

#include <string>

namespace gipc::detail {

namespace {

// object_span: a loaded object's base address and the span its loadable segments cover.
struct object_span {
    const char* name = nullptr;
    ElfW(Addr) base = 0;
    ElfW(Addr) low = 0, high = 0; // [low, high): the loadable segments, as mapped
};

object_span span_of(const dl_phdr_info* info)
{
    object_span s;
    s.name = info->dlpi_name ? info->dlpi_name : "";
    s.base = info->dlpi_addr;
    bool any = false;
    for (int i = 0; i < info->dlpi_phnum; ++i) {
        const auto& ph = info->dlpi_phdr[i];
        if (ph.p_type != PT_LOAD)
            continue;
        const ElfW(Addr) lo = info->dlpi_addr + ph.p_vaddr;
        const ElfW(Addr) hi = lo + ph.p_memsz;
        if (!any || lo < s.low)
            s.low = lo;
        if (!any || hi > s.high)
            s.high = hi;
        any = true;
    }
    return s;
}

// The main executable is the first object dl_iterate_phdr reports; its name is "" there.
template <class F>
void for_each_object(F&& f)
{
    ::dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t, void* fn) -> int { return (*static_cast<F*>(fn))(span_of(info)) ? 1 : 0; },
        &f);
}

} // namespace

code_location locate_code(std::uintptr_t address)
{
    code_location where;
    bool found = false;
    bool first = true;
    for_each_object([&](const object_span& s) {
        const bool main_program = first;
        first = false;
        if (address < s.low || address >= s.high)
            return false;
        where.object = main_program ? std::string() : std::string(s.name);
        where.offset = address - s.base;
        found = true;
        return true;
    });
    if (!found)
        throw error("gipc: the function is not in the program's file or a library it loaded (made at run time?): "
                    "a spawned child cannot find it");
    return where;
}

std::uintptr_t find_code(const code_location& where)
{
    std::uintptr_t address = 0;
    bool first = true;
    for_each_object([&](const object_span& s) {
        const bool main_program = first;
        first = false;
        if (main_program ? !where.object.empty() : where.object != s.name)
            return false;
        const ElfW(Addr) at = s.base + where.offset;
        if (at >= s.low && at < s.high)
            address = at;
        return true;
    });
    if (address == 0)
        throw error(where.object.empty()
                        ? std::string("gipc: a spawned child's target lies outside the program's file")
                        : "gipc: a spawned child's target is in " + where.object + ", which is not loaded here");
    return address;
}

} // namespace gipc::detail
