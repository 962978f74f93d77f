// SPDX-License-Identifier: MIT
#pragma once
// pool_link on Windows: how a pool hands one of its workers what cannot travel as bytes on the
// worker's pipe, its result ring's memory and the handles given to its tasks. meson.build puts
// this directory on the include path of libgipc's sources on Windows, so that src/pool.cpp's
// #include "pool_link.hpp" finds this header (src/linux/pool_link.hpp is the Linux one, with the
// same interface).
//
// Windows has no fd passing, and needs none: the pool holds each worker's process handle
// (opened with PROCESS_DUP_HANDLE once the worker runs), so it duplicates a handle straight into
// the worker with DuplicateHandle, and a socket with WSADuplicateSocketW for the worker's pid
// (as spawn_process does for a socket: an inherited or duplicated socket handle is not always
// a socket in the other process). The values, or the WSAPROTOCOL_INFOW bytes, go to the worker
// as a frame on its pipe, right after the frame that needs them; the worker reads that frame
// when it meets a task with handles (or, first of all, its ring's memory) and adopts them
// (not inherited by its own children). Handles duplicated into a worker that dies before it
// adopts them end with its process: nothing is left behind in the pool's process, and
// nothing is duplicated before the worker exists.

#include "../private.hpp"

#include "../handle_transfer.hpp"
#include "native_fd.hpp"

#include <gipc/pipe.hpp>
#include <gipc/process.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace gipc::detail {

// pool_link_arg: the worker's part of its link, an argument of the worker's target: nothing
// is needed (its pipe carries the link's frames); 0.
using pool_link_arg = int;

// pool_parent_link: the pool's side of one worker's link.
class pool_parent_link {
public:
    // Makes the link; worker is set to the worker's part.
    explicit pool_parent_link(pool_link_arg& worker) noexcept { worker = 0; }

    // give_memory hands the link the ring's memory, before the worker starts: the first thing
    // the worker receives. Here it waits in the link until the worker runs.
    void give_memory(unique_native_fd memory) noexcept { memory_ = std::move(memory); }
    // started: the worker's process exists (p), its pipe is to_worker: opens it for
    // DuplicateHandle, and hands it its memory. Throws std::system_error.
    void started(const process& p, duplex& to_worker);
    // send_handles gives the worker the ends of the task just put on to_worker, in the order
    // its handle headers number them (socket[i]: ends[i] is a socket). The caller closes its
    // ends afterwards. Throws when they cannot go (the worker died): those already duplicated
    // into the worker are closed there.
    void send_handles(const std::vector<end_base*>& ends, const std::vector<bool>& socket, duplex& to_worker);

private:
    // duplicate makes h a handle of the worker; returns its value there. Throws.
    int duplicate(native_fd h, const std::string& what);
    // close_in_worker closes a handle duplicated into the worker (after a failure).
    void close_in_worker(int value) noexcept;

    unique_native_fd memory_;  // the ring's memory, until the worker runs
    unique_native_fd process_; // the worker's, with PROCESS_DUP_HANDLE
    unsigned long pid_ = 0;
};

// pool_worker_link: the worker's side.
class pool_worker_link {
public:
    explicit pool_worker_link(pool_link_arg) noexcept {}

    // receive_memory waits (blocking only this fiber) for the ring's memory.
    unique_native_fd receive_memory(duplex& from_pool);
    // receive_handles waits for the ends of the task just read, and puts them in headers in
    // place of the indices the pool numbered them by: the headers then own them (for
    // rebuild_handles). Throws error when they do not all arrive.
    void receive_handles(std::vector<handle_header>& headers, duplex& from_pool);
};

// describe_worker_end says how a worker ended (its exitcode(), none when it did not end), for
// worker_lost_error: "exited with code 3"; a worker that this process ended with kill() or
// terminate() reports -9 or -15 (process::exitcode()), "exited with code -9 (ended by kill())".
std::string describe_worker_end(std::optional<int> code);

// start_pool_worker starts a worker: always spawned (spawn_process) on Windows, which has no
// fork; spawn makes no difference.
template <class F, class... A>
process start_pool_worker(process_options options, bool, F target, A&&... args)
{
    return spawn_process(std::move(options), target, std::forward<A>(args)...);
}

} // namespace gipc::detail
