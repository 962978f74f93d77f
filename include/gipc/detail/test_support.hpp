// SPDX-License-Identifier: MIT
#pragma once
// Test support: hooks for gipc's own tests and fuzz targets, defined in libgipc. Not part of
// the API, not included by any other header of gipc's, and not installed: a program never
// needs it.

#include <gipc/detail/export.hpp>

#include <cstddef>

namespace gipc::detail {

// open_handle_count is the number of gipc handle ends (pipe ends and sockets) open in this
// process (src/pipe.cpp).
GIPC_EXPORT std::size_t open_handle_count() noexcept;

} // namespace gipc::detail
