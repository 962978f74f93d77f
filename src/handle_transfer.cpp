// SPDX-License-Identifier: MIT
// Handles that travel to another process as data (see handle_transfer.hpp), and how
// spawn_process and pool tasks (<gipc/detail/spawn.hpp>) list them in a request.
#include "handle_transfer.hpp"
#include "errors.hpp"
#include "platform.hpp"
#include "socket_os.hpp"

#include <gipc/net.hpp>
#include <gipc/program.hpp>

#include <algorithm>
#include <cerrno>
#include <system_error>

namespace gipc::detail {

namespace {

// adopt makes a handle the parent placed in this child one of gipc's, as gipc's own are.
unique_native_fd adopt(int value)
{
    unique_native_fd out;
    if (const int err = platform::adopt_transferred(value, out); err < 0)
        throw_errno(err, "gipc: a transferred handle of the spawned child");
    return out;
}

} // namespace

handle_header describe_handle(const spawn_request::handle& h)
{
    handle_header hh;
    hh.kind = h.kind;
    for (end_base* e : h.ends) {
        hh.fds.push_back(platform::transfer_value(e->fd()));
        hh.limit = e->message_limit();
        if (auto* r = dynamic_cast<read_end*>(e))
            hh.unread = r->unread_bytes();
        else if (auto* s = dynamic_cast<socket_end*>(e))
            hh.unread = s->buffer.substr(s->head);
    }
    return hh;
}

std::vector<handle_header> describe_handles(const std::vector<spawn_request::handle>& handles,
                                            std::vector<end_base*>& ends, int first)
{
    std::vector<handle_header> out;
    out.reserve(handles.size());
    for (const auto& h : handles) {
        handle_header hh = describe_handle(h);
        for (std::size_t j = 0; j < h.ends.size(); ++j) {
            auto at = std::find(ends.begin(), ends.end(), h.ends[j]);
            if (at == ends.end()) {
                ends.push_back(h.ends[j]);
                at = ends.end() - 1;
            }
            hh.fds[j] = first + int(at - ends.begin());
        }
        out.push_back(std::move(hh));
    }
    return out;
}

spawned_handles rebuild_handles(const std::vector<handle_header>& headers)
{
    spawned_handles out;
    for (const auto& h : headers) {
        spawned_handles::entry e;
        e.kind = h.kind;
        const std::size_t want = h.kind == 'd' ? 2 : 1;
        if (h.fds.size() != want)
            throw error("gipc: a spawned child received a malformed handle");
        switch (h.kind) {
        case 'r':
        case 'd': {
            auto r = std::make_shared<read_end>(adopt(h.fds[0]), std::size_t(h.limit));
            r->preload(h.unread);
            r->register_open();
            e.r = std::move(r);
            if (h.kind == 'd') {
                auto w = std::make_shared<write_end>(adopt(h.fds[1]), std::size_t(h.limit));
                w->register_open();
                e.w = std::move(w);
            }
            break;
        }
        case 'w': {
            auto w = std::make_shared<write_end>(adopt(h.fds[0]), std::size_t(h.limit));
            w->register_open();
            e.w = std::move(w);
            break;
        }
        case 's':
        case 'l':
        case 'b':
        case 'y': {
            const char* kind = h.kind == 's' ? "stream" : h.kind == 'l' ? "listener" : h.kind == 'b' ? "byte reader" : "byte writer";
            // A stream or listener is a socket (closed as one: closesocket on Windows); a byte
            // reader or writer is a pipe's end.
            auto s = h.kind == 's' || h.kind == 'l'
                         ? std::make_shared<socket_end>(socket_os::unique_socket(fd_socket(adopt(h.fds[0]).release())), kind)
                         : std::make_shared<socket_end>(adopt(h.fds[0]), kind);
            s->buffer = h.unread;
            s->register_open();
            e.s = std::move(s);
            break;
        }
        default:
            throw error("gipc: a spawned child received a handle of an unknown kind");
        }
        out.items.push_back(std::move(e));
    }
    return out;
}


} // namespace gipc::detail

namespace gipc {

using detail::spawned_handles;

namespace {
std::size_t add_handle(detail::spawn_request& req, char kind, std::vector<detail::end_base*> ends)
{
    for (std::size_t i = 0; i < req.handles.size(); ++i)
        if (req.handles[i].kind == kind && req.handles[i].ends == ends)
            return i; // the same handle again (std::ref twice): transferred once
    req.handles.push_back({kind, std::move(ends)});
    return req.handles.size() - 1;
}
} // namespace

void detail::detail_access::add(detail::transfer_list& list, const byte_reader& r) { add_socket(list, r.end_); }
void detail::detail_access::add(detail::transfer_list& list, const byte_writer& w) { add_socket(list, w.end_); }

std::size_t detail::detail_access::add_spawned(detail::spawn_request& req, const reader& r)
{
    add(req.transfers, r);
    return add_handle(req, 'r', {r.end_.get()});
}
std::size_t detail::detail_access::add_spawned(detail::spawn_request& req, const writer& w)
{
    add(req.transfers, w);
    return add_handle(req, 'w', {w.end_.get()});
}
std::size_t detail::detail_access::add_spawned(detail::spawn_request& req, const duplex& d)
{
    add(req.transfers, d);
    return add_handle(req, 'd', {d.in_.get(), d.out_.get()});
}
std::size_t detail::detail_access::add_spawned(detail::spawn_request& req, const net::stream& s)
{
    add(req.transfers, s);
    return add_handle(req, 's', {s.end_.get()});
}
std::size_t detail::detail_access::add_spawned(detail::spawn_request& req, const net::listener& l)
{
    add(req.transfers, l);
    return add_handle(req, 'l', {l.end_.get()});
}

std::size_t detail::detail_access::add_spawned(detail::spawn_request& req, const byte_reader& r)
{
    add(req.transfers, r);
    return add_handle(req, 'b', {r.end_.get()});
}
std::size_t detail::detail_access::add_spawned(detail::spawn_request& req, const byte_writer& w)
{
    add(req.transfers, w);
    return add_handle(req, 'y', {w.end_.get()});
}

std::shared_ptr<detail::read_end> detail::detail_access::take_read_end(spawned_handles& h, std::size_t index, char kind)
{
    return std::move(h.at(index, kind).r);
}
std::shared_ptr<detail::write_end> detail::detail_access::take_write_end(spawned_handles& h, std::size_t index, char kind)
{
    return std::move(h.at(index, kind).w);
}
std::shared_ptr<detail::socket_end> detail::detail_access::take_socket_end(spawned_handles& h, std::size_t index, char kind)
{
    return std::move(h.at(index, kind).s);
}

} // namespace gipc
