// SPDX-License-Identifier: MIT
#include <gipc/detail/codec.hpp>

#include "byte_order.hpp"

#include <cxxabi.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

namespace gipc::detail {

void frame_builder::refuse()
{
    release();
    throw error("gipc: message is over max_message_size (" + std::to_string(limit_) + " bytes)");
}

void frame_builder::renew()
{
    release();
    constexpr std::size_t initial = 256;
    buf_.reset(new char[initial]);
    cap_ = initial;
}

void frame_builder::grow(std::size_t n)
{
    const std::size_t cap = std::max(2 * cap_, size_ + n);
    std::unique_ptr<char[]> bigger(new char[cap]);
    std::memcpy(bigger.get(), buf_.get(), size_);
    buf_ = std::move(bigger);
    cap_ = cap;
}

frame_builder& scratch_builder() noexcept
{
    thread_local frame_builder builder;
    return builder;
}

namespace {

struct thread_zone {
    msgpack::zone zone;
    bool lent = false;
};

thread_zone& this_thread_zone()
{
    thread_local thread_zone z;
    return z;
}

// unpack_checked runs unpack(offset, limit) and turns msgpack's failures into decode_error.
template <class Unpack>
auto unpack_checked(std::size_t size, Unpack&& unpack)
{
    // Every element of a container takes at least one byte of the payload, so no valid frame
    // declares more elements than it has bytes: limiting counts to the payload size keeps a
    // small hostile frame from making msgpack allocate a huge array up front.
    const std::size_t count_limit = size;
    const msgpack::unpack_limit limit(count_limit, count_limit, size, size, size, 512);
    std::size_t offset = 0;
    decltype(unpack(offset, limit)) result;
    try {
        result = unpack(offset, limit);
    } catch (const msgpack::insufficient_bytes&) {
        throw decode_error("gipc: invalid msgpack payload: value is truncated");
    } catch (const msgpack::unpack_error& e) {
        throw decode_error(std::string("gipc: invalid msgpack payload: ") + e.what());
    } catch (const std::length_error& e) {
        throw decode_error(std::string("gipc: msgpack payload over the unpack limits: ") + e.what());
    } catch (const std::bad_alloc&) {
        throw decode_error("gipc: msgpack payload needs more memory than is available");
    }
    if (offset != size)
        throw decode_error("gipc: invalid msgpack payload: " + std::to_string(size - offset) +
                           " trailing bytes after the value");
    return result;
}

} // namespace

// scalar_payload reads scalars without msgpack's parser, which allocates
// its stacks on every call. False for anything else: the parser takes it.
bool scalar_payload(const char* data, std::size_t size, msgpack::object& out) noexcept
{
    if (size == 0)
        return false;
    const auto b = static_cast<unsigned char>(data[0]);
    auto set_signed = [&](std::int64_t v) {
        if (v < 0) {
            out.type = msgpack::type::NEGATIVE_INTEGER;
            out.via.i64 = v;
        } else {
            out.type = msgpack::type::POSITIVE_INTEGER;
            out.via.u64 = static_cast<std::uint64_t>(v);
        }
    };
    if (size == 1) {
        if (b <= 0x7f) {
            out.type = msgpack::type::POSITIVE_INTEGER;
            out.via.u64 = b;
        } else if (b >= 0xe0) {
            set_signed(static_cast<std::int8_t>(b));
        } else if (b == 0xc0) {
            out.type = msgpack::type::NIL;
        } else if (b == 0xc2 || b == 0xc3) {
            out.type = msgpack::type::BOOLEAN;
            out.via.boolean = b == 0xc3;
        } else {
            return false;
        }
        return true;
    }
    switch (b) {
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf: {
        const std::size_t n = std::size_t{1} << (b - 0xcc);
        if (size != 1 + n)
            return false;
        out.type = msgpack::type::POSITIVE_INTEGER;
        out.via.u64 = load_be(data + 1, n);
        return true;
    }
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        const std::size_t n = std::size_t{1} << (b - 0xd0);
        if (size != 1 + n)
            return false;
        const unsigned shift = unsigned(64 - 8 * n); // sign-extends the n-byte value
        set_signed(static_cast<std::int64_t>(load_be(data + 1, n) << shift) >> shift);
        return true;
    }
    case 0xca: {
        if (size != 5)
            return false;
        const auto bits = static_cast<std::uint32_t>(load_be(data + 1, 4));
        float f;
        std::memcpy(&f, &bits, 4);
        out.type = msgpack::type::FLOAT32;
        out.via.f64 = f;
        return true;
    }
    case 0xcb: {
        if (size != 9)
            return false;
        const std::uint64_t bits = load_be(data + 1, 8);
        double d;
        std::memcpy(&d, &bits, 8);
        out.type = msgpack::type::FLOAT64;
        out.via.f64 = d;
        return true;
    }
    default:
        return false;
    }
}

msgpack::object_handle unpack_payload(const char* data, std::size_t size)
{
    return unpack_checked(size, [&](std::size_t& offset, const msgpack::unpack_limit& limit) {
        return msgpack::unpack(data, size, offset, nullptr, nullptr, limit);
    });
}

msgpack::object unpack_payload(msgpack::zone& zone, const char* data, std::size_t size)
{
    if (msgpack::object scalar; scalar_payload(data, size, scalar))
        return scalar;
    return unpack_checked(size, [&](std::size_t& offset, const msgpack::unpack_limit& limit) {
        return msgpack::unpack(zone, data, size, offset, nullptr, nullptr, limit);
    });
}

zone_lease::zone_lease()
{
    thread_zone& z = this_thread_zone();
    if (z.lent) {
        zone_ = new msgpack::zone;
        return;
    }
    z.lent = true;
    lent_ = &z.lent;
    zone_ = &z.zone;
}

zone_lease::~zone_lease()
{
    if (!lent_) {
        delete zone_;
        return;
    }
    zone_->clear();
    *lent_ = false;
}

void throw_convert_error(const std::type_info& type, const char* why)
{
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> name(abi::__cxa_demangle(type.name(), nullptr, nullptr, &status),
                                                std::free);
    throw decode_error(std::string("gipc: message does not convert to ") +
                       (status == 0 && name ? name.get() : type.name()) + " (" + why + ")");
}

} // namespace gipc::detail
