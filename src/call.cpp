// SPDX-License-Identifier: MIT
// A call that travels as data (see <gipc/detail/call.hpp>): what a failed call says. Where its
// code is (locate_code, find_code) is the platform's: src/posix/code_location.cpp,
// src/windows/code_location.cpp.
#include <gipc/detail/call.hpp>
#include <gipc/error.hpp>

#include <cxxabi.h>

#include <cstdlib>
#include <exception>
#include <memory>
#include <typeinfo>

namespace gipc::detail {

call_failure describe_current_exception()
{
    call_failure f;
    try {
        throw;
    } catch (const std::exception& e) {
        f.what = e.what();
    } catch (...) {
        f.what = "unknown exception";
    }
    const std::type_info* type = abi::__cxa_current_exception_type();
    if (type) {
        int status = 0;
        std::unique_ptr<char, decltype(&std::free)> name(abi::__cxa_demangle(type->name(), nullptr, nullptr, &status),
                                                         &std::free);
        f.type = status == 0 && name ? name.get() : type->name();
    }
    return f;
}

} // namespace gipc::detail
