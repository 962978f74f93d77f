// SPDX-License-Identifier: MIT
#pragma once
// The machinery behind reader, writer and duplex (<gipc/pipe.hpp>, which includes this file at
// its end): the frame reading and writing their templates call, and the definitions of those
// templates. Not part of the API: names here may change.

#include <gipc/detail/export.hpp>
#include <gipc/detail/codec.hpp>
#include <gipc/detail/handle.hpp>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace gipc {

namespace detail {
using frame_visitor = void (*)(void* context, const char* data, std::size_t size);
// read_frame waits for the next whole frame of r, consumes it, and calls visit on its payload.
GIPC_EXPORT void read_frame(read_end* r, steady_time deadline, frame_visitor visit, void* context);
GIPC_EXPORT std::string read_frame_bytes(read_end* r, steady_time deadline);
// try_read_scalar is read_frame's common case for a scalar: when r is open and free and its
// buffer holds a whole next frame whose payload is one integer, nil, boolean or float, it
// consumes that frame and sets out to the object msgpack would give (see scalar_payload).
// False, with nothing done, otherwise: read_frame then does the rest.
GIPC_EXPORT bool try_read_scalar(read_end* r, msgpack::object& out) noexcept;

// write_session holds the write side of w (fiber mutex and closed check) while a frame is
// encoded into the thread's scratch builder and committed.
class GIPC_EXPORT write_session {
public:
    explicit write_session(write_end* w);
    ~write_session();
    write_session(const write_session&) = delete;
    write_session& operator=(const write_session&) = delete;
    // frame is the thread's scratch builder, emptied for a frame of at most max_message_size.
    frame_builder& frame();
    void commit(frame_builder& frame);

private:
    write_end* w_;
};
GIPC_EXPORT void put_bytes(write_end* w, std::string_view payload);

// small_frame: the frame of a scalar (an arithmetic type: msgpack packs one in at most 9
// bytes), packed on the caller's stack rather than in the thread's scratch builder; the
// header's 4 bytes come first. A value that does not fit (a program's own packing of a
// scalar type) marks the frame overflowed and put() takes the general path.
struct small_frame {
    static constexpr std::size_t capacity = 4 + 12;
    char data[capacity];
    std::size_t size = 4;
    bool overflowed = false;
    void write(const char* p, std::size_t n) noexcept
    {
        if (n > capacity - size) {
            overflowed = true;
            return;
        }
        std::memcpy(data + size, p, n);
        size += n;
    }
};
// put_small_frame sends frame (a small_frame's size bytes, header room included) as one
// frame, as write_session's commit does.
GIPC_EXPORT void put_small_frame(write_end* w, char* frame, std::size_t size);
GIPC_EXPORT void flush(write_end* w);

// borrows_payload is true of types whose values point into the bytes they were decoded from,
// which are gone when get() returns.
template <class T>
inline constexpr bool borrows_payload =
    std::is_same_v<T, std::string_view> || std::is_same_v<T, msgpack::object> ||
    std::is_same_v<T, msgpack::type::raw_ref> || std::is_same_v<T, msgpack::type::ext_ref> ||
    std::is_pointer_v<T>;

template <class T>
T get_value(read_end* r, steady_time deadline)
{
    static_assert(!borrows_payload<T>,
                  "gipc: get<T>() needs a T that owns its data: std::string rather than std::string_view, "
                  "msgpack::object_handle rather than msgpack::object");
    if constexpr (std::is_arithmetic_v<T>) {
        msgpack::object object;
        if (try_read_scalar(r, object))
            return convert_object<T>(object);
    }
    std::optional<T> out;
    read_frame(r, deadline,
               [](void* c, const char* data, std::size_t size) {
                   static_cast<std::optional<T>*>(c)->emplace(decode<T>(data, size));
               },
               &out);
    return std::move(*out);
}

template <class T>
void put_value(write_end* w, const T& value)
{
    if constexpr (std::is_arithmetic_v<T>) {
        small_frame frame;
        msgpack::pack(frame, value);
        if (!frame.overflowed) {
            put_small_frame(w, frame.data, frame.size);
            return;
        }
    }
    write_session session(w);
    frame_builder& frame = session.frame();
    try {
        msgpack::pack(frame, value);
    } catch (...) {
        frame.release(); // a put that fails keeps no memory
        throw;
    }
    session.commit(frame);
}
} // namespace detail

template <class T>
T reader::get()
{
    return detail::get_value<T>(end_.get(), detail::steady_time::max());
}

template <class T, class Rep, class Period>
T reader::get(std::chrono::duration<Rep, Period> timeout)
{
    return detail::get_value<T>(end_.get(), detail::deadline_from(timeout));
}

template <class Rep, class Period>
std::string reader::get_bytes(std::chrono::duration<Rep, Period> timeout)
{
    return detail::read_frame_bytes(end_.get(), detail::deadline_from(timeout));
}

template <class T>
void writer::put(const T& value)
{
    detail::put_value(end_.get(), value);
}

template <class T>
T duplex::get()
{
    return detail::get_value<T>(in_.get(), detail::steady_time::max());
}

template <class T, class Rep, class Period>
T duplex::get(std::chrono::duration<Rep, Period> timeout)
{
    return detail::get_value<T>(in_.get(), detail::deadline_from(timeout));
}

template <class Rep, class Period>
std::string duplex::get_bytes(std::chrono::duration<Rep, Period> timeout)
{
    return detail::read_frame_bytes(in_.get(), detail::deadline_from(timeout));
}

template <class T>
void duplex::put(const T& value)
{
    detail::put_value(out_.get(), value);
}

} // namespace gipc
