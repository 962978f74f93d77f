// SPDX-License-Identifier: MIT
#pragma once
// A call that travels as data: a function located by (loaded object, offset), so that address
// space layout randomisation does not matter, its arguments packed with msgpack, and what
// became of it (a result, or an exception's type name and what()). Used by spawn_process; not
// part of the API: names here may change.

#include <gipc/detail/export.hpp>

#include <msgpack.hpp>

#include <cstdint>
#include <string>

namespace gipc::detail {

// code_location names a function of the program (object "") or of a shared library it loaded
// (object: the path the dynamic linker loaded it from) by its offset from the object's base.
struct code_location {
    std::string object;
    std::uint64_t offset = 0;
    MSGPACK_DEFINE(object, offset)
};

// locate_code finds the loaded object that holds address; throws gipc::error when none does
// (code made at run time).
GIPC_EXPORT code_location locate_code(std::uintptr_t address);
// find_code is the address of a located function in this process (another execution of the
// same program); throws gipc::error when its object is not loaded here or the offset lies
// outside it.
GIPC_EXPORT std::uintptr_t find_code(const code_location& where);

// call_failure describes an exception that ended a call: its demangled type and what().
struct call_failure {
    std::string type;
    std::string what;
    MSGPACK_DEFINE(type, what)
};
// describe_current_exception describes the exception being handled (call only in a catch).
GIPC_EXPORT call_failure describe_current_exception();

} // namespace gipc::detail
