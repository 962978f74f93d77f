// SPDX-License-Identifier: MIT
#pragma once
// The machinery behind start_process (<gipc/process.hpp>, which includes this file at its
// end): the target and its arguments as run in the child, and the list of handles they
// transfer. Not part of the API: names here may change.

#include <gipc/detail/export.hpp>
#include <gipc/net.hpp>
#include <gipc/pipe.hpp>

#include <cstddef>
#include <cstdlib>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace gipc {

class byte_reader;
class byte_writer;

namespace detail {
struct spawn_request;
class spawned_handles;

// child_entry: the target and its arguments, as run in the child.
class GIPC_EXPORT child_entry {
public:
    virtual ~child_entry() = default;
    virtual int run() = 0;
};

template <class F, class... Args>
class bound_call final : public child_entry {
public:
    template <class G, class... A>
    explicit bound_call(G&& f, A&&... args) : call_(std::forward<G>(f), std::forward<A>(args)...)
    {
    }
    int run() override
    {
        return std::apply(
            [](auto&& f, auto&&... args) -> int {
                using result = std::invoke_result_t<F, Args...>;
                if constexpr (std::is_integral_v<result>)
                    return static_cast<int>(std::invoke(std::move(f), std::move(args)...));
                else {
                    std::invoke(std::move(f), std::move(args)...);
                    return 0;
                }
            },
            std::move(call_));
    }
    std::tuple<F, Args...>& call() noexcept { return call_; }

private:
    std::tuple<F, Args...> call_;
};

// transfer_list: the pipe ends given to a child.
struct transfer_list {
    std::vector<read_end*> readers;
    std::vector<write_end*> writers;
    std::vector<socket_end*> sockets;
    bool closed_argument = false; // a handle argument that is closed or moved from
};

// detail_access lets start_process see which pipe ends its arguments hold, and spawn_process
// transfer them (the handles' friend).
struct GIPC_EXPORT detail_access {
    static void add(transfer_list& list, const reader& r)
    {
        if (r.end_)
            list.readers.push_back(r.end_.get());
        else
            list.closed_argument = true;
    }
    static void add(transfer_list& list, const writer& w)
    {
        if (w.end_)
            list.writers.push_back(w.end_.get());
        else
            list.closed_argument = true;
    }
    static void add(transfer_list& list, const duplex& d)
    {
        if (d.in_)
            list.readers.push_back(d.in_.get());
        if (d.out_)
            list.writers.push_back(d.out_.get());
        if (!d.in_ && !d.out_)
            list.closed_argument = true;
    }
    static void add(transfer_list& list, const net::stream& s) { add_socket(list, s.end_); }
    static void add(transfer_list& list, const net::listener& l) { add_socket(list, l.end_); }
    // The byte streams of <gipc/program.hpp> (program.cpp).
    static void add(transfer_list& list, const byte_reader& r);
    static void add(transfer_list& list, const byte_writer& w);
    template <class T>
    static constexpr bool is_handle = std::is_same_v<T, reader> || std::is_same_v<T, writer> ||
                                      std::is_same_v<T, duplex> || std::is_same_v<T, net::stream> ||
                                      std::is_same_v<T, net::listener> || std::is_same_v<T, byte_reader> ||
                                      std::is_same_v<T, byte_writer>;
    // A std::vector of handles transfers each of them.
    template <class T, class A>
    static void add(transfer_list& list, const std::vector<T, A>& handles)
    {
        if constexpr (is_handle<T>)
            for (const T& h : handles)
                add(list, h);
    }
    template <class T>
    static void add(transfer_list& list, const std::reference_wrapper<T>& ref)
    {
        add(list, ref.get());
    }
    template <class T>
    static void add(transfer_list&, const T&)
    {
    }

    // spawn_process: add_spawned lists a handle argument for transfer and returns its index;
    // in the child, take_spawned rebuilds it (spawn.cpp).
    static std::size_t add_spawned(spawn_request& request, const reader& r);
    static std::size_t add_spawned(spawn_request& request, const writer& w);
    static std::size_t add_spawned(spawn_request& request, const duplex& d);
    static std::size_t add_spawned(spawn_request& request, const net::stream& s);
    static std::size_t add_spawned(spawn_request& request, const net::listener& l);
    static std::size_t add_spawned(spawn_request& request, const byte_reader& r);
    static std::size_t add_spawned(spawn_request& request, const byte_writer& w);
    template <class H>
    static H take_spawned(spawned_handles& handles, std::size_t index)
    {
        H h;
        if constexpr (std::is_same_v<H, reader>)
            h.end_ = take_read_end(handles, index, 'r');
        else if constexpr (std::is_same_v<H, writer>)
            h.end_ = take_write_end(handles, index, 'w');
        else if constexpr (std::is_same_v<H, duplex>) {
            h.in_ = take_read_end(handles, index, 'd');
            h.out_ = take_write_end(handles, index, 'd');
        } else if constexpr (std::is_same_v<H, net::stream>)
            h.end_ = take_socket_end(handles, index, 's');
        else if constexpr (std::is_same_v<H, byte_reader>)
            h.end_ = take_socket_end(handles, index, 'b');
        else if constexpr (std::is_same_v<H, byte_writer>)
            h.end_ = take_socket_end(handles, index, 'y');
        else
            h.end_ = take_socket_end(handles, index, 'l');
        return h;
    }

private:
    static std::shared_ptr<read_end> take_read_end(spawned_handles&, std::size_t, char kind);
    static std::shared_ptr<write_end> take_write_end(spawned_handles&, std::size_t, char kind);
    static std::shared_ptr<socket_end> take_socket_end(spawned_handles&, std::size_t, char kind);
    static void add_socket(transfer_list& list, const std::shared_ptr<socket_end>& end)
    {
        if (end)
            list.sockets.push_back(end.get());
        else
            list.closed_argument = true;
    }
};

// spawn_exec starts a new execution of the program for a spawn_process call (spawn.cpp).
GIPC_EXPORT process spawn_exec(process_options options, spawn_request& request);
} // namespace detail

#if defined(_WIN32)
// Windows has no fork(): a child there can only be spawned (a new run of the program). So
// start_process refuses every call at compile time, with a message that names spawn_process:
// each definition's static_assert depends on its template arguments, so that it fires where a
// call instantiates it and only there (a program that never calls start_process compiles).
namespace detail {
template <class...>
inline constexpr bool start_process_on_windows = false;
} // namespace detail

template <class F, class... Args>
process start_process(process_options, F&&, Args&&...)
{
    static_assert(detail::start_process_on_windows<F, Args...>,
                  "gipc::start_process is not available on Windows (it has no fork()): start the "
                  "child with gipc::spawn_process, and call gipc::spawn_main first in main()");
    std::abort();
}

template <class F, class... Args>
process start_process(F&&, Args&&...)
{
    static_assert(detail::start_process_on_windows<F, Args...>,
                  "gipc::start_process is not available on Windows (it has no fork()): start the "
                  "child with gipc::spawn_process, and call gipc::spawn_main first in main()");
    std::abort();
}
#else
template <class F, class... Args>
process start_process(process_options options, F&& target, Args&&... args)
{
    auto entry = std::make_unique<detail::bound_call<std::decay_t<F>, std::decay_t<Args>...>>(
        std::forward<F>(target), std::forward<Args>(args)...);
    detail::transfer_list transfers;
    std::apply([&](auto&, auto&... stored) { (detail::detail_access::add(transfers, stored), ...); }, entry->call());
    return detail::spawn(std::move(options), std::move(entry), transfers);
}

template <class F, class... Args>
process start_process(F&& target, Args&&... args)
{
    return start_process(process_options{}, std::forward<F>(target), std::forward<Args>(args)...);
}
#endif

} // namespace gipc
