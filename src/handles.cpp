// SPDX-License-Identifier: MIT
// The public pipe handles: thin owners of a read_end / write_end.
#include "errors.hpp"
#include "pipe_end.hpp"
#include "pipe_os.hpp"
#include "scheduler.hpp"
#include "sigpipe.hpp"

#include <gipc/pipe.hpp>

#include <cstdio>
#include <cstdlib>
#include <mutex>

// ignore_sigpipe (sigpipe.hpp) is the platform's: src/posix/pipe_os.cpp, src/windows/pipe_os.cpp.

namespace gipc {

namespace {

using detail::end_base;
using detail::ignore_sigpipe;

bool end_closed(const end_base* end) noexcept { return !end || end->closed(); }
native_handle_type end_fd(const end_base* end) noexcept
{
    return end_closed(end) ? detail::closed_native_handle() : end->fd();
}

void check_options(const pipe_options& options)
{
    if (options.max_message_size == 0 || options.max_message_size > 0xffffffffu)
        throw error("gipc: pipe_options::max_message_size must be between 1 and 4294967295");
}

std::pair<std::shared_ptr<detail::read_end>, std::shared_ptr<detail::write_end>>
make_ends(const pipe_options& options)
{
    ignore_sigpipe();
    detail::unique_native_fd r, w;
    if (int err = detail::pipe_os::make_pipe(r, w); err < 0)
        detail::throw_errno(err, "gipc: pipe");
    auto re = std::make_shared<detail::read_end>(std::move(r), options.max_message_size);
    auto we = std::make_shared<detail::write_end>(std::move(w), options.max_message_size);
    re->register_open();
    we->register_open();
    return {std::move(re), std::move(we)};
}

} // namespace

std::pair<reader, writer> pipe(pipe_options options)
{
    detail::thread_algorithm(); // every gipc call installs gipc's algorithm where the default runs (API.md)
    check_options(options);
    auto [r, w] = make_ends(options);
    return {reader(std::move(r)), writer(std::move(w))};
}

std::pair<duplex, duplex> duplex_pipe(pipe_options options)
{
    detail::thread_algorithm();
    check_options(options);
    auto [r1, w1] = make_ends(options);
    auto [r2, w2] = make_ends(options);
    return {duplex(std::move(r1), std::move(w2)), duplex(std::move(r2), std::move(w1))};
}

// ---- reader ----------------------------------------------------------------------------------

GIPC_SINGLE_END_HANDLE(reader, detail::read_end, "reader")
std::string reader::get_bytes() { return detail::read_frame_bytes(end_.get(), detail::steady_time::max()); }

// ---- writer ----------------------------------------------------------------------------------

GIPC_SINGLE_END_HANDLE(writer, detail::write_end, "writer")
void writer::put_bytes(std::string_view payload) { detail::put_bytes(end_.get(), payload); }
void writer::flush() { detail::flush(end_.get()); }

// ---- duplex ----------------------------------------------------------------------------------

duplex::duplex() noexcept = default;
duplex::duplex(std::shared_ptr<detail::read_end> in, std::shared_ptr<detail::write_end> out) noexcept
    : in_(std::move(in)), out_(std::move(out))
{
}
duplex::duplex(duplex&& other) noexcept = default;
duplex& duplex::operator=(duplex&& other) noexcept
{
    if (this != &other) {
        detail::destroy_handle(in_.get());
        detail::destroy_handle(out_.get());
        in_ = std::move(other.in_);
        out_ = std::move(other.out_);
    }
    return *this;
}
duplex::~duplex()
{
    detail::destroy_handle(in_.get());
    detail::destroy_handle(out_.get());
}
std::string duplex::get_bytes() { return detail::read_frame_bytes(in_.get(), detail::steady_time::max()); }
void duplex::put_bytes(std::string_view payload) { detail::put_bytes(out_.get(), payload); }
void duplex::flush() { detail::flush(out_.get()); }

void duplex::close()
{
    if (closed())
        throw closed_error("gipc: duplex handle is already closed");
    // Both directions close, or neither does: both are reserved before either is closed.
    using check = end_base::close_check;
    const check in = in_ ? in_->try_reserve_close() : check::already_closed;
    if (in == check::in_use)
        throw locked_error("gipc: cannot close duplex handle: another fiber is using it");
    const check out = out_ ? out_->try_reserve_close() : check::already_closed;
    if (out == check::in_use) {
        if (in == check::ok)
            in_->cancel_close();
        throw locked_error("gipc: cannot close duplex handle: another fiber is using it");
    }
    if (in != check::ok && out != check::ok)
        throw closed_error("gipc: duplex handle is already closed"); // by another thread meanwhile
    if (in == check::ok)
        in_->commit_close();
    if (out == check::ok)
        out_->commit_close();
    if (in == check::ok)
        in_->close();
    if (out == check::ok)
        out_->close();
}

bool duplex::closed() const noexcept { return end_closed(in_.get()) && end_closed(out_.get()); }
native_handle_type duplex::read_handle() const noexcept { return end_fd(in_.get()); }
native_handle_type duplex::write_handle() const noexcept { return end_fd(out_.get()); }

} // namespace gipc
