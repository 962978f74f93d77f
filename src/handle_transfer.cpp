// SPDX-License-Identifier: MIT
// Handles that travel to another process as data (see handle_transfer.hpp).
#include "handle_transfer.hpp"
#include "errors.hpp"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

namespace gipc::detail {

namespace {

// adopt_fd makes an fd the parent placed in this child one of gipc's: close-on-exec and
// non-blocking, as gipc's own fds are.
posix::unique_fd adopt_fd(int fd)
{
    const int fl = ::fcntl(fd, F_GETFL);
    if (fl < 0 || ::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
        throw_errno(-errno, "gipc: a transferred fd of the spawned child");
    return posix::unique_fd(fd);
}

} // namespace

handle_header describe_handle(const spawn_request::handle& h)
{
    handle_header hh;
    hh.kind = h.kind;
    for (end_base* e : h.ends) {
        hh.fds.push_back(e->fd());
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
            auto r = std::make_shared<read_end>(adopt_fd(h.fds[0]), std::size_t(h.limit));
            r->preload(h.unread);
            r->register_open();
            e.r = std::move(r);
            if (h.kind == 'd') {
                auto w = std::make_shared<write_end>(adopt_fd(h.fds[1]), std::size_t(h.limit));
                w->register_open();
                e.w = std::move(w);
            }
            break;
        }
        case 'w': {
            auto w = std::make_shared<write_end>(adopt_fd(h.fds[0]), std::size_t(h.limit));
            w->register_open();
            e.w = std::move(w);
            break;
        }
        case 's':
        case 'l':
        case 'b':
        case 'y': {
            const char* kind = h.kind == 's' ? "stream" : h.kind == 'l' ? "listener" : h.kind == 'b' ? "byte reader" : "byte writer";
            auto s = std::make_shared<socket_end>(adopt_fd(h.fds[0]), kind);
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
