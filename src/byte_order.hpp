// SPDX-License-Identifier: MIT
#pragma once
// Big-endian integers in byte buffers: gipc's frame headers (4-byte lengths) and the integers
// of msgpack that gipc reads by hand.

#include "private.hpp"

#include <cstddef>
#include <cstdint>

namespace gipc::detail {

// load_be reads the n-byte (n <= 8) big-endian unsigned integer at p.
inline std::uint64_t load_be(const char* p, std::size_t n) noexcept
{
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i)
        v = (v << 8) | static_cast<unsigned char>(p[i]);
    return v;
}

// load_be32 is written out (compilers make it one load and a byte swap): every frame header
// of a pipe is read with it.
inline std::uint32_t load_be32(const char* p) noexcept
{
    return (std::uint32_t{static_cast<unsigned char>(p[0])} << 24) |
           (std::uint32_t{static_cast<unsigned char>(p[1])} << 16) |
           (std::uint32_t{static_cast<unsigned char>(p[2])} << 8) | std::uint32_t{static_cast<unsigned char>(p[3])};
}

inline void store_be32(char* p, std::uint32_t v) noexcept
{
    p[0] = static_cast<char>(v >> 24);
    p[1] = static_cast<char>(v >> 16);
    p[2] = static_cast<char>(v >> 8);
    p[3] = static_cast<char>(v);
}

} // namespace gipc::detail
