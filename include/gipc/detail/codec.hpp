// SPDX-License-Identifier: MIT
#pragma once
// Framing and msgpack glue used by the templates of <gipc/pipe.hpp>. Not part of the API.

#include <gipc/detail/export.hpp>
#include <gipc/error.hpp>

#include <msgpack.hpp>

#include <cstddef>
#include <string>
#include <typeinfo>
#include <vector>

namespace gipc::detail {

// frame_builder is a byte buffer msgpack packs into; it begins with room for the 4-byte
// frame header. One per thread, reused, so packing a small value allocates nothing. Memory
// stays bounded: a payload growing past the limit given to reset() is refused at once (the
// write throws gipc::error and the builder gives its storage back), and a builder holding
// more than keep_capacity gives it back when reset for the next frame.
class GIPC_EXPORT frame_builder {
public:
    static constexpr std::size_t keep_capacity = 64 * 1024;

    // reset empties the builder for a frame whose payload may have at most limit bytes.
    void reset(std::size_t limit)
    {
        if (buf_.capacity() > keep_capacity)
            release();
        buf_.resize(4);
        limit_ = limit;
    }
    void write(const char* data, std::size_t size)
    {
        if (size > limit_ - (buf_.size() - 4))
            refuse();
        buf_.insert(buf_.end(), data, data + size);
    }
    std::vector<char>& buffer() noexcept { return buf_; }
    // release gives the storage back; the builder is unusable until the next reset().
    void release() noexcept { std::vector<char>().swap(buf_); }

private:
    // refuse releases the storage and throws gipc::error: the payload is over the limit.
    [[noreturn]] void refuse();
    std::vector<char> buf_ = std::vector<char>(4);
    std::size_t limit_ = 0;
};

// scratch_builder is the calling thread's frame_builder.
GIPC_EXPORT frame_builder& scratch_builder() noexcept;

// unpack_payload parses one msgpack value that must span the whole payload. Unpack limits
// keep a small hostile frame from allocating without bound. Throws decode_error.
GIPC_EXPORT msgpack::object_handle unpack_payload(const char* data, std::size_t size);
// This one puts what the value needs into zone; the object is valid until zone is cleared.
GIPC_EXPORT msgpack::object unpack_payload(msgpack::zone& zone, const char* data, std::size_t size);

// zone_lease lends the calling thread's reusable msgpack zone for one decode, so that decoding
// a value allocates nothing (a fresh zone mallocs an 8 KiB chunk, and then frees it). A decode
// that begins while the zone is lent (a conversion that suspended its fiber) gets a zone of
// its own. The zone is cleared when the lease ends.
class GIPC_EXPORT zone_lease {
public:
    zone_lease();
    ~zone_lease();
    zone_lease(const zone_lease&) = delete;
    zone_lease& operator=(const zone_lease&) = delete;
    msgpack::zone& get() noexcept { return *zone_; }

private:
    msgpack::zone* zone_;
    bool* lent_ = nullptr; // the thread's flag when its zone is lent, else the zone is ours
};

// throw_convert_error throws decode_error for a payload that does not convert to a type.
[[noreturn]] GIPC_EXPORT void throw_convert_error(const std::type_info& type, const char* why);

// decode converts one frame payload to T. Throws decode_error.
template <class T>
T decode(const char* data, std::size_t size)
{
    if constexpr (std::is_same_v<T, msgpack::object_handle>) {
        return unpack_payload(data, size);
    } else {
        zone_lease zone;
        const msgpack::object object = unpack_payload(zone.get(), data, size);
        try {
            return object.as<T>();
        } catch (const msgpack::type_error& e) {
            throw_convert_error(typeid(T), e.what());
        } catch (const std::bad_cast& e) {
            throw_convert_error(typeid(T), e.what());
        }
    }
}

} // namespace gipc::detail
