// SPDX-License-Identifier: MIT
#pragma once
// Framing and msgpack glue used by the templates of <gipc/pipe.hpp>. Not part of the API.

#include <gipc/detail/export.hpp>
#include <gipc/error.hpp>

#include <msgpack.hpp>

#include <cstddef>
#include <cstring>
#include <memory>
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
        if (cap_ > keep_capacity || cap_ == 0)
            renew();
        size_ = 4;
        limit_ = limit;
    }
    // write appends: while the capacity suffices, one memcpy, inline (msgpack writes a small
    // value in one or two calls).
    void write(const char* data, std::size_t size)
    {
        if (size > limit_ - (size_ - 4))
            refuse();
        if (size > cap_ - size_)
            grow(size);
        if (size != 0)
            std::memcpy(buf_.get() + size_, data, size);
        size_ += size;
    }
    // data and size: the frame so far, header room included.
    char* data() noexcept { return buf_.get(); }
    std::size_t size() const noexcept { return size_; }
    // take hands the storage (size() bytes at data(), read before) to the caller; the builder
    // is unusable until the next reset().
    std::unique_ptr<char[]> take() noexcept
    {
        size_ = cap_ = 0;
        return std::move(buf_);
    }
    // release gives the storage back; the builder is unusable until the next reset().
    void release() noexcept
    {
        buf_.reset();
        size_ = cap_ = 0;
    }

private:
    // refuse releases the storage and throws gipc::error: the payload is over the limit.
    [[noreturn]] void refuse();
    // renew replaces the storage with a fresh small one; grow makes room for n more bytes.
    void renew();
    void grow(std::size_t n);
    std::unique_ptr<char[]> buf_;
    std::size_t size_ = 0, cap_ = 0, limit_ = 0;
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

// scalar_payload reads a payload that is one integer, nil, boolean or float into out without
// msgpack's parser and without a zone (none of them needs one), giving the object msgpack would
// give; false for anything else.
GIPC_EXPORT bool scalar_payload(const char* data, std::size_t size, msgpack::object& out) noexcept;

// convert_object converts a decoded object to T. Throws decode_error.
template <class T>
T convert_object(const msgpack::object& object)
{
    try {
        return object.as<T>();
    } catch (const msgpack::type_error& e) {
        throw_convert_error(typeid(T), e.what());
    } catch (const std::bad_cast& e) {
        throw_convert_error(typeid(T), e.what());
    }
}

// decode converts one frame payload to T. Throws decode_error.
template <class T>
T decode(const char* data, std::size_t size)
{
    if constexpr (std::is_same_v<T, msgpack::object_handle>) {
        return unpack_payload(data, size);
    } else {
        // A scalar needs no zone: lease none. A positive fixint (one byte, 0 to 127) is read
        // here, the other scalars by scalar_payload.
        msgpack::object object;
        if (size == 1 && static_cast<unsigned char>(data[0]) <= 0x7f) {
            object.type = msgpack::type::POSITIVE_INTEGER;
            object.via.u64 = static_cast<unsigned char>(data[0]);
            return convert_object<T>(object);
        }
        if (scalar_payload(data, size, object))
            return convert_object<T>(object);
        zone_lease zone;
        return convert_object<T>(unpack_payload(zone.get(), data, size));
    }
}

} // namespace gipc::detail
