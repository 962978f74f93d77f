// SPDX-License-Identifier: MIT
#pragma once
// Handles that travel to another process as data: what a spawned child (spawn.cpp) or a pool
// worker (pool.cpp) needs to rebuild each transferred handle around the fd it received.
// Private header: never included from include/gipc/.

#include "private.hpp"

#include "pipe_end.hpp"
#include "socket_end.hpp"

#include <gipc/process.hpp>

#include <msgpack.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gipc::detail {

// handle_header: one transferred handle: its kind (spawn_request::handle), its fds in the
// receiving process, its pipe_options' limit, and the bytes its reader had read ahead.
struct handle_header {
    char kind = 0;
    std::vector<int> fds; // in the receiving process (platform::transfer_value: on Windows the HANDLEs)
    std::uint64_t limit = 0;
    std::string unread; // bytes a reader had read ahead
    // On Windows, a socket's WSAPROTOCOL_INFOW from WSADuplicateSocketW for the receiving
    // process, which makes the socket there (then fds[0] is unused); empty otherwise.
    std::string socket_info;
    MSGPACK_DEFINE(kind, fds, limit, unread, socket_info)
};

// describe_handle is the header of one handle of a request, whose fds are still the sender's.
handle_header describe_handle(const spawn_request::handle& h);

// describe_handles is the headers of a request's handles as the receiver numbers their fds:
// each end once, in the order it first appears (appended to ends), the n-th of them as fd
// first + n.
std::vector<handle_header> describe_handles(const std::vector<spawn_request::handle>& handles,
                                            std::vector<end_base*>& ends, int first);

// spawned_handles: the handles a process received, rebuilt; handles are taken out by index.
class spawned_handles {
public:
    struct entry {
        char kind = 0;
        std::shared_ptr<read_end> r;
        std::shared_ptr<write_end> w;
        std::shared_ptr<socket_end> s;
    };
    std::vector<entry> items;

    entry& at(std::size_t index, char kind)
    {
        if (index >= items.size() || items[index].kind != kind)
            throw error("gipc: a spawned child received a handle that does not fit its target's parameter");
        return items[index];
    }
};

// rebuild_handles makes the handles of headers around their fds (which it takes over: made
// not inherited by this process's children, and on POSIX non-blocking).
spawned_handles rebuild_handles(const std::vector<handle_header>& headers);

} // namespace gipc::detail
