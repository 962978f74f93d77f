// SPDX-License-Identifier: MIT
// pool_link on Windows (pool_link.hpp): handles duplicated into the worker, their values on its
// pipe.
#include "windows/win32.hpp"

#include "pool_link.hpp"

#include "windows/handle.hpp"
#include "windows/win_errors.hpp"

#include "errors.hpp"
#include "platform.hpp"
#include "socket_os.hpp"

#include <msgpack.hpp>

#include <cstring>

namespace gipc::detail {

namespace {

// link_entry: one handle as the worker receives it: its value there, or (a socket) the
// WSAPROTOCOL_INFOW that makes it there.
struct link_entry {
    int value = 0;
    std::string socket_info;
    MSGPACK_DEFINE(value, socket_info)
};

// The frame that carries the ring's memory starts with this byte, one that carries a task's
// handles with that one: a frame of the wrong kind is a protocol error, not a handle.
constexpr char memory_frame = 'm';
constexpr char handles_frame = 'h';

std::string pack_entries(char kind, const std::vector<link_entry>& entries)
{
    msgpack::sbuffer packed;
    msgpack::pack(packed, entries);
    std::string frame(1, kind);
    frame.append(packed.data(), packed.size());
    return frame;
}

std::vector<link_entry> read_entries(char kind, duplex& from_pool)
{
    std::string frame;
    try {
        frame = from_pool.get_bytes();
    } catch (const eof_error&) {
        throw error("gipc: a pool worker lost its parent's pipe while receiving a task's handles");
    }
    if (frame.empty() || frame[0] != kind)
        throw error("gipc: a pool worker received a malformed frame of handles");
    const msgpack::object_handle oh = msgpack::unpack(frame.data() + 1, frame.size() - 1);
    return oh.get().as<std::vector<link_entry>>();
}

// handle_of is a value a worker received, as its HANDLE (sign-extended, as Windows documents).
HANDLE handle_of(int value) noexcept { return reinterpret_cast<HANDLE>(static_cast<std::intptr_t>(value)); }

} // namespace

void pool_parent_link::started(const process& p, duplex& to_worker)
{
    // The pool holds p, whose process handle keeps its pid from being reused.
    HANDLE h = ::OpenProcess(PROCESS_DUP_HANDLE, FALSE, DWORD(p.pid()));
    if (!h)
        throw_errno(win::errno_of(::GetLastError()), "gipc: pool: opening worker " + p.name() + " to hand it handles");
    process_.reset(h);
    pid_ = DWORD(p.pid());
    std::vector<link_entry> entries(1);
    entries[0].value = duplicate(memory_.get(), "a result ring's memory");
    memory_.reset(); // the parent keeps only its mapping
    try {
        to_worker.put_bytes(pack_entries(memory_frame, entries));
    } catch (...) {
        close_in_worker(entries[0].value);
        throw;
    }
}

int pool_parent_link::duplicate(native_fd h, const std::string& what)
{
    HANDLE out = nullptr;
    if (!::DuplicateHandle(::GetCurrentProcess(), static_cast<HANDLE>(h), static_cast<HANDLE>(process_.get()), &out, 0,
                           FALSE, DUPLICATE_SAME_ACCESS))
        throw_errno(win::errno_of(::GetLastError()), "gipc: pool: duplicating " + what + " into its worker");
    return platform::transfer_value(out);
}

void pool_parent_link::close_in_worker(int value) noexcept
{
    ::DuplicateHandle(static_cast<HANDLE>(process_.get()), handle_of(value), nullptr, nullptr, 0, FALSE,
                      DUPLICATE_CLOSE_SOURCE);
}

void pool_parent_link::send_handles(const std::vector<end_base*>& ends, const std::vector<bool>& socket,
                                    duplex& to_worker)
{
    std::vector<link_entry> entries;
    entries.reserve(ends.size());
    try {
        for (std::size_t i = 0; i < ends.size(); ++i) {
            link_entry e;
            if (i < socket.size() && socket[i]) {
                if (const int r = win::duplicate_socket_for(static_cast<SOCKET>(fd_socket(ends[i]->fd())), pid_,
                                                            e.socket_info);
                    r != 0)
                    throw_errno(win::errno_of(DWORD(r)), "gipc: pool: WSADuplicateSocketW of " + ends[i]->name());
                e.value = -1;
            } else {
                e.value = duplicate(ends[i]->fd(), ends[i]->name());
            }
            entries.push_back(std::move(e));
        }
        to_worker.put_bytes(pack_entries(handles_frame, entries));
    } catch (...) {
        // A socket's information that never reached the worker made nothing there.
        for (const link_entry& e : entries)
            if (e.socket_info.empty())
                close_in_worker(e.value);
        throw;
    }
}

unique_native_fd pool_worker_link::receive_memory(duplex& from_pool)
{
    std::vector<link_entry> entries = read_entries(memory_frame, from_pool);
    if (entries.size() != 1 || !entries[0].socket_info.empty())
        throw error("gipc: a pool worker did not receive its result memory");
    unique_native_fd memory;
    if (const int r = platform::adopt_transferred(entries[0].value, memory); r < 0)
        throw_errno(r, "gipc: a pool worker's result memory");
    return memory;
}

void pool_worker_link::receive_handles(std::vector<handle_header>& headers, duplex& from_pool)
{
    const std::vector<link_entry> entries = read_entries(handles_frame, from_pool);
    // Owned here until every one is in hand; then the headers own them.
    std::vector<unique_native_fd> handles(entries.size());
    std::vector<socket_os::unique_socket> sockets(entries.size());
    for (std::size_t i = 0; i < entries.size(); ++i) {
        const link_entry& e = entries[i];
        if (e.socket_info.empty()) {
            if (const int r = platform::adopt_transferred(e.value, handles[i]); r < 0)
                throw_errno(r, "gipc: a pool task's handle");
            continue;
        }
        win::unique_socket s;
        if (const int r = win::socket_from_duplicate(e.socket_info, s); r == WSAEINVAL)
            throw error("gipc: a pool worker received a malformed socket");
        else if (r != 0)
            throw_errno(win::errno_of(DWORD(r)), "gipc: WSASocketW of a pool task's socket");
        sockets[i].reset(native_socket(s.release()));
    }
    for (const auto& h : headers)
        for (int index : h.fds)
            if (index < 0 || std::size_t(index) >= entries.size())
                throw error("gipc: a pool task's handles did not arrive whole");
    for (auto& h : headers)
        for (int& index : h.fds) {
            const auto i = std::size_t(index);
            if (handles[i])
                index = platform::transfer_value(handles[i].release());
            else if (sockets[i].get() >= 0)
                index = platform::transfer_value(socket_fd(sockets[i].release()));
            else
                throw error("gipc: a pool task's handles did not arrive whole"); // the same one twice
        }
}

std::string describe_worker_end(std::optional<int> code)
{
    if (!code)
        return "did not end";
    std::string s = "exited with code " + std::to_string(*code);
    if (*code == -9)
        s += " (ended by kill())";
    else if (*code == -15)
        s += " (ended by terminate())";
    return s;
}

} // namespace gipc::detail
