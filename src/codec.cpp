// SPDX-License-Identifier: MIT
#include <gipc/detail/codec.hpp>

#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <string>

namespace gipc::detail {

void frame_builder::refuse()
{
    release();
    throw error("gipc: message is over max_message_size (" + std::to_string(limit_) + " bytes)");
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

msgpack::object_handle unpack_payload(const char* data, std::size_t size)
{
    return unpack_checked(size, [&](std::size_t& offset, const msgpack::unpack_limit& limit) {
        return msgpack::unpack(data, size, offset, nullptr, nullptr, limit);
    });
}

msgpack::object unpack_payload(msgpack::zone& zone, const char* data, std::size_t size)
{
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
