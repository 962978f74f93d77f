// SPDX-License-Identifier: MIT
#pragma once
// pool_link on Linux: how a pool hands one of its workers what cannot travel as bytes on the
// worker's pipe, its result ring's memory and the handles given to its tasks. meson.build puts
// this directory on the include path of libgipc's sources on Linux, so that src/pool.cpp's
// #include "pool_link.hpp" finds this header (src/windows/pool_link.hpp is the Windows one,
// with the same interface).
//
// Here the link is a Unix socket pair, the worker's end given to it as a net::stream when it
// starts: the fds go over it by SCM_RIGHTS, one message each time (the ring's memory first,
// then one message per task that has handles), each message arriving after the frame on the
// pipe that needs it, which the worker reads first and then waits for the fds.

#include "../private.hpp"

#include "../handle_transfer.hpp"
#include "../socket_end.hpp"
#include "native_fd.hpp"

#include <gipc/net.hpp>
#include <gipc/pipe.hpp>
#include <gipc/process.hpp>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace gipc::detail {

// pool_link_arg: the worker's part of its link, an argument of the worker's target.
using pool_link_arg = net::stream;

// pool_parent_link: the pool's side of one worker's link.
class pool_parent_link {
public:
    // Makes the link; worker is set to the worker's part. Throws std::system_error.
    explicit pool_parent_link(pool_link_arg& worker);
    pool_parent_link(pool_parent_link&&) noexcept = default;
    pool_parent_link& operator=(pool_parent_link&&) noexcept = default;
    ~pool_parent_link();

    // give_memory hands the link the ring's memory, before the worker starts: the first thing
    // the worker receives. Here it waits in the socket at once (and closes in the parent, so
    // that no worker forked later inherits it). Throws.
    void give_memory(unique_native_fd memory);
    // started: the worker's process exists (p), its pipe is to_worker: nothing left to do here.
    void started(const process&, duplex&) noexcept {}
    // send_handles gives the worker the ends of the task just put on to_worker, in the order
    // its handle headers number them (socket[i]: ends[i] is a socket). The caller closes its
    // ends afterwards. Throws when they cannot go (the worker died).
    void send_handles(const std::vector<end_base*>& ends, const std::vector<bool>& socket, duplex& to_worker);

private:
    // A registered end, so that forked children (other workers) close their copies.
    std::shared_ptr<socket_end> sock_;
};

// pool_worker_link: the worker's side.
class pool_worker_link {
public:
    explicit pool_worker_link(pool_link_arg link) noexcept : sock_(std::move(link)) {}

    // receive_memory waits (blocking only this fiber) for the ring's memory.
    unique_native_fd receive_memory(duplex& from_pool);
    // receive_handles waits for the ends of the task just read, and puts them in headers in
    // place of the indices the pool numbered them by: the headers then own them (for
    // rebuild_handles). Throws error when they do not all arrive.
    void receive_handles(std::vector<handle_header>& headers, duplex& from_pool);

private:
    net::stream sock_;
};

// describe_worker_end says how a worker ended (its exitcode(), none when it did not end), for
// worker_lost_error: "was killed by signal 9 (Killed)", "exited with code 3".
std::string describe_worker_end(std::optional<int> code);

// start_pool_worker starts a worker: forked (start_process) or spawned (spawn_process).
template <class F, class... A>
process start_pool_worker(process_options options, bool spawn, F target, A&&... args)
{
    return spawn ? spawn_process(std::move(options), target, std::forward<A>(args)...)
                 : start_process(std::move(options), target, std::forward<A>(args)...);
}

} // namespace gipc::detail
