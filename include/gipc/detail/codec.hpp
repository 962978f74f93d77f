// SPDX-License-Identifier: MIT
#pragma once
// Framing and msgpack glue used by the templates of <gipc/pipe.hpp>. Not part of the API.

#include <gipc/error.hpp>

#include <msgpack.hpp>

#include <cstddef>
#include <string>
#include <typeinfo>
#include <vector>

namespace gipc::detail {

// frame_builder is a byte buffer msgpack packs into; it begins with room for the 4-byte
// frame header. One per thread, reused, so packing a small value allocates nothing.
class frame_builder {
public:
    void reset() { buf_.resize(4); }
    void write(const char* data, std::size_t size) { buf_.insert(buf_.end(), data, data + size); }
    std::vector<char>& buffer() noexcept { return buf_; }

private:
    std::vector<char> buf_ = std::vector<char>(4);
};

// scratch_builder is the calling thread's frame_builder.
frame_builder& scratch_builder() noexcept;

// unpack_payload parses one msgpack value that must span the whole payload. Unpack limits
// keep a small hostile frame from allocating without bound. Throws decode_error.
msgpack::object_handle unpack_payload(const char* data, std::size_t size);

// throw_convert_error throws decode_error for a payload that does not convert to a type.
[[noreturn]] void throw_convert_error(const std::type_info& type, const char* why);

// decode converts one frame payload to T. Throws decode_error.
template <class T>
T decode(const char* data, std::size_t size)
{
    msgpack::object_handle handle = unpack_payload(data, size);
    if constexpr (std::is_same_v<T, msgpack::object_handle>) {
        return handle;
    } else {
        try {
            return handle.get().as<T>();
        } catch (const msgpack::type_error& e) {
            throw_convert_error(typeid(T), e.what());
        } catch (const std::bad_cast& e) {
            throw_convert_error(typeid(T), e.what());
        }
    }
}

} // namespace gipc::detail
