// SPDX-License-Identifier: MIT
#pragma once
// The templates behind spawn_process (<gipc/process.hpp>): checking the target and the
// arguments at compile time, packing them, and unpacking them in the child. Not part of the
// API: names here may change. Included at the end of <gipc/process.hpp>.

#include <gipc/detail/call.hpp>

#include <msgpack.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace gipc::detail {

class end_base;

// spawn_request: what spawn_process hands the library: the packed arguments (a msgpack array,
// one element per parameter; a handle is packed as its index in handles), the handles to
// transfer, and where the target and its invoker are.
struct spawn_request {
    struct handle {
        char kind; // 'r' reader, 'w' writer, 'd' duplex, 's' stream, 'l' listener, 'b' byte_reader, 'y' byte_writer
        std::vector<end_base*> ends; // a duplex: its read end, then its write end
    };
    msgpack::sbuffer args{0}; // allocated on first write (a pool task's stays empty)
    std::vector<handle> handles;
    transfer_list transfers;
    std::uintptr_t target = 0;
    std::uintptr_t invoker = 0;
};

// spawned_handles: in a spawned child, the handles its parent transferred, rebuilt. Defined in
// spawn.cpp; handles are taken out of it by index.
class spawned_handles;

// An invoker unpacks the arguments and calls the target; it returns the exit code.
using spawn_invoker = int (*)(std::uintptr_t target, const msgpack::object& args, spawned_handles& handles);

// ---- what may be a spawned target's parameter -----------------------------------------------

template <class T>
inline constexpr bool is_handle_v = detail_access::is_handle<T>;

template <class T>
struct is_handle_vector : std::false_type {};
template <class T, class A>
struct is_handle_vector<std::vector<T, A>> : std::bool_constant<is_handle_v<T>> {};

template <class T>
struct unwrap_ref {
    using type = T;
};
template <class T>
struct unwrap_ref<std::reference_wrapper<T>> {
    using type = std::remove_cv_t<T>;
};
// argument_t is what an argument holds: the handle behind a std::reference_wrapper, or itself.
template <class A>
using argument_t = typename unwrap_ref<std::remove_cvref_t<A>>::type;

// packable<T>: msgpack-cxx packs T and converts it back: arithmetic types, enums (declared
// with MSGPACK_ADD_ENUM), strings, the standard containers, pairs, tuples and optionals of
// such, and classes with MSGPACK_DEFINE.
template <class T>
struct packable;
template <class T>
inline constexpr bool packable_v = packable<std::remove_cv_t<T>>::value;

template <class T>
concept has_msgpack_members = requires(const T& t, T& m, msgpack::packer<msgpack::sbuffer>& p,
                                       const msgpack::object& o) {
    t.msgpack_pack(p);
    m.msgpack_unpack(o);
};

template <class T>
struct packable : std::bool_constant<std::is_arithmetic_v<T> || std::is_enum_v<T> ||
                                     (std::is_class_v<T> && has_msgpack_members<T>)> {};
template <class C, class Tr, class A>
struct packable<std::basic_string<C, Tr, A>> : std::bool_constant<std::is_same_v<C, char>> {};
template <class T, class A>
struct packable<std::vector<T, A>> : packable<T> {};
template <class T, class A>
struct packable<std::deque<T, A>> : packable<T> {};
template <class T, class A>
struct packable<std::list<T, A>> : packable<T> {};
template <class T, std::size_t N>
struct packable<std::array<T, N>> : packable<T> {};
template <class T, class C, class A>
struct packable<std::set<T, C, A>> : packable<T> {};
template <class T, class H, class E, class A>
struct packable<std::unordered_set<T, H, E, A>> : packable<T> {};
template <class K, class V, class C, class A>
struct packable<std::map<K, V, C, A>> : std::bool_constant<packable_v<K> && packable_v<V>> {};
template <class K, class V, class H, class E, class A>
struct packable<std::unordered_map<K, V, H, E, A>> : std::bool_constant<packable_v<K> && packable_v<V>> {};
template <class A, class B>
struct packable<std::pair<A, B>> : std::bool_constant<packable_v<A> && packable_v<B>> {};
template <class... T>
struct packable<std::tuple<T...>> : std::bool_constant<(packable_v<T> && ...)> {};
template <class T>
struct packable<std::optional<T>> : packable<T> {};

// check_spawn_argument refuses, with a message, an argument A for a parameter P.
template <class P, class A>
constexpr bool check_spawn_argument()
{
    using param = std::remove_cvref_t<P>;
    using arg = argument_t<A>;
    if constexpr (is_handle_v<param> || is_handle_vector<param>::value) {
        static_assert(std::is_same_v<arg, param>,
                      "gipc::spawn_process: a handle parameter (reader, writer, duplex, net::stream, "
                      "net::listener, byte_reader, byte_writer, or a std::vector of one of them) takes that same handle type, "
                      "by value or by std::ref");
        return std::is_same_v<arg, param>;
    } else {
        static_assert(!is_handle_v<arg> && !is_handle_vector<arg>::value,
                      "gipc::spawn_process: a handle argument needs a parameter of its own handle type");
        static_assert(!std::is_pointer_v<param> && !std::is_member_pointer_v<param>,
                      "gipc::spawn_process: a parameter of a spawned target cannot be a pointer: "
                      "pointers do not travel to another process (pass the value)");
        static_assert(packable_v<param>,
                      "gipc::spawn_process: every parameter of a spawned target is a gipc handle or a "
                      "value msgpack-cxx can pack and convert (numbers, strings, standard containers, "
                      "pairs, tuples, optionals, MSGPACK_DEFINE classes)");
        static_assert(std::is_constructible_v<param, A>,
                      "gipc::spawn_process: the argument does not convert to the target's parameter type");
        return true;
    }
}

// ---- packing in the parent --------------------------------------------------------------------

template <class T>
std::size_t add_spawned_handle(spawn_request& request, const T& handle)
{
    return detail_access::add_spawned(request, handle);
}

template <class P, class A>
void pack_spawn_argument(msgpack::packer<msgpack::sbuffer>& pk, spawn_request& request, A&& a)
{
    using param = std::remove_cvref_t<P>;
    if constexpr (is_handle_v<param>) {
        const param& h = a;
        pk.pack(add_spawned_handle(request, h));
    } else if constexpr (is_handle_vector<param>::value) {
        const param& v = a;
        pk.pack_array(static_cast<std::uint32_t>(v.size()));
        for (const auto& h : v)
            pk.pack(add_spawned_handle(request, h));
    } else {
        // Packed as the parameter's own type, so that the child converts it back exactly.
        if constexpr (std::is_same_v<std::remove_cvref_t<A>, param>)
            pk.pack(a);
        else
            pk.pack(param(std::forward<A>(a)));
    }
}

// ---- unpacking in the child -------------------------------------------------------------------

template <class P>
std::remove_cvref_t<P> unpack_spawn_argument(const msgpack::object& o, spawned_handles& handles)
{
    using param = std::remove_cvref_t<P>;
    if constexpr (is_handle_v<param>) {
        return detail_access::take_spawned<param>(handles, o.as<std::size_t>());
    } else if constexpr (is_handle_vector<param>::value) {
        param v;
        for (const std::size_t i : o.as<std::vector<std::size_t>>())
            v.push_back(detail_access::take_spawned<typename param::value_type>(handles, i));
        return v;
    } else {
        return o.as<param>();
    }
}

// spawn_invoke: the invoker of a target R(P...), run in the child.
template <class R, class... P>
int spawn_invoke(std::uintptr_t target, const msgpack::object& args, spawned_handles& handles)
{
    if (args.type != msgpack::type::ARRAY || args.via.array.size != sizeof...(P))
        throw error("gipc: a spawned child received arguments that do not fit its target");
    auto* fn = reinterpret_cast<R (*)(P...)>(target);
    return [&]<std::size_t... I>(std::index_sequence<I...>) -> int {
        // Braced initialisation converts the arguments in order.
        std::tuple<std::remove_cvref_t<P>...> values{unpack_spawn_argument<P>(args.via.array.ptr[I], handles)...};
        if constexpr (std::is_integral_v<R>)
            return static_cast<int>(fn(static_cast<P&&>(std::get<I>(values))...));
        else {
            fn(static_cast<P&&>(std::get<I>(values))...);
            return 0;
        }
    }(std::index_sequence_for<P...>{});
}

template <class R, class... P, class... A>
process spawn_call(process_options options, R (*fn)(P...), A&&... args)
{
    static_assert(sizeof...(P) == sizeof...(A),
                  "gipc::spawn_process: give the target exactly one argument per parameter");
    static_assert((check_spawn_argument<P, A>() && ...));
    spawn_request request;
    msgpack::packer<msgpack::sbuffer> pk(request.args);
    pk.pack_array(static_cast<std::uint32_t>(sizeof...(P)));
    (pack_spawn_argument<P>(pk, request, std::forward<A>(args)), ...);
    request.target = reinterpret_cast<std::uintptr_t>(fn);
    spawn_invoker invoker = &spawn_invoke<R, P...>;
    request.invoker = reinterpret_cast<std::uintptr_t>(invoker);
    return spawn_exec(std::move(options), request);
}

// spawn_target: a function pointer, or what converts to one with unary + (a lambda without
// captures that is not generic).
template <class F>
concept spawn_target = requires(F& f) {
    { +f };
    requires std::is_pointer_v<decltype(+f)>;
    requires std::is_function_v<std::remove_pointer_t<decltype(+f)>>;
};

} // namespace gipc::detail

namespace gipc {

template <class F, class... Args>
process spawn_process(process_options options, F target, Args&&... args)
{
    static_assert(detail::spawn_target<F>,
                  "gipc::spawn_process: the target must be a function pointer or a lambda without "
                  "captures and without auto parameters: the child finds it by its place in the "
                  "program's file, and captured state cannot travel (pass it as an argument)");
    if constexpr (detail::spawn_target<F>)
        return detail::spawn_call(std::move(options), +target, std::forward<Args>(args)...);
}

template <class F, class... Args>
process spawn_process(F target, Args&&... args)
{
    return spawn_process(process_options{}, std::move(target), std::forward<Args>(args)...);
}

} // namespace gipc
