// SPDX-License-Identifier: MIT
#pragma once
// transfer.hpp: the handles that a start of a child transfers to it, as both platforms'
// process-start layers use them (src/process.cpp on POSIX, src/windows/spawn.cpp): walking
// them, checking that they can go, and reserving them from the check until the parent closes
// them. Private header: never included from include/gipc/.

#include "private.hpp"

#include "errors.hpp"
#include "pipe_end.hpp"
#include "socket_end.hpp"

#include <gipc/detail/process.hpp>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

namespace gipc::detail {

// for_each_transfer calls f with every end a start transfers (f takes a pointer to read_end,
// write_end and socket_end, or to end_base).
template <class F>
void for_each_transfer(const transfer_list& transfers, F&& f)
{
    for (auto* r : transfers.readers)
        f(r);
    for (auto* w : transfers.writers)
        f(w);
    for (auto* s : transfers.sockets)
        f(s);
}

// check_transfers throws closed_error or locked_error, as start_process documents, when a
// transferred handle is closed (or was moved from) or another fiber is using it.
inline void check_transfers(const transfer_list& transfers)
{
    if (transfers.closed_argument)
        throw closed_error("gipc: cannot transfer a handle that is closed or moved from");
    for_each_transfer(transfers, [](end_base* e) {
        if (e->closed())
            throw closed_error("gipc: cannot transfer " + e->name() + ": it is closed");
        if (e->in_use())
            throw locked_error("gipc: cannot transfer " + e->name() + ": another fiber is using it");
    });
}

// transfer_reservation holds the ends a start transfers from its check until the parent closes
// them (or the start fails and they stay open): meanwhile no fiber of any thread can start
// using them (begin_op on another thread waits out the reservation; none of this thread runs,
// as nothing here suspends), so a transfer and a use on another thread are ordered and the
// child never gets an end in the middle of an operation.
class transfer_reservation {
public:
    explicit transfer_reservation(const transfer_list& transfers) : transfers_(transfers)
    {
        for_each_transfer(transfers, [&](end_base* e) {
            if (std::find(ends_.begin(), ends_.end(), e) == ends_.end())
                ends_.push_back(e); // a handle passed twice is reserved once
        });
        for (std::size_t i = 0; i < ends_.size(); ++i) {
            const auto check = ends_[i]->try_reserve_close();
            if (check == end_base::close_check::ok)
                continue;
            for (std::size_t j = 0; j < i; ++j)
                ends_[j]->cancel_close();
            const std::string name = ends_[i]->name();
            ends_.clear();
            if (check == end_base::close_check::already_closed)
                throw closed_error("gipc: cannot transfer " + name + ": it is closed");
            throw locked_error("gipc: cannot transfer " + name + ": another fiber is using it");
        }
    }
    transfer_reservation(const transfer_reservation&) = delete;
    transfer_reservation& operator=(const transfer_reservation&) = delete;
    // The start failed: the ends stay open in the parent.
    ~transfer_reservation()
    {
        for (end_base* e : ends_)
            e->cancel_close();
    }

    // ends is each reserved end once, in the order of for_each_transfer.
    const std::vector<end_base*>& ends() const noexcept { return ends_; }

    // commit closes the ends in the parent: they belong to the child now.
    void commit() noexcept
    {
        for (end_base* e : ends_)
            e->commit_close();
        std::vector<end_base*> done;
        for_each_transfer(transfers_, [&](auto* e) {
            if (std::find(done.begin(), done.end(), e) != done.end())
                return;
            done.push_back(e);
            try {
                e->close();
            } catch (const std::exception& ex) {
                std::fprintf(stderr, "gipc: closing %s: %s\n", e->name().c_str(), ex.what());
            }
        });
        ends_.clear();
    }

private:
    const transfer_list& transfers_;
    std::vector<end_base*> ends_;
};

} // namespace gipc::detail
