// SPDX-License-Identifier: MIT
// External programs: the program handle, communicate, run_program, and the byte streams
// (byte_reader, byte_writer: socket_end's on pipes). start_program, which makes the program and
// its pipes, is the platform's: src/posix/program_start.cpp (the exec path of the
// process-start layer), src/windows/program_start.cpp (CreateProcessW).
#include "errors.hpp"
#include "io_ops.hpp"
#include "platform.hpp"
#include "scheduler.hpp"
#include "socket_end.hpp"

#include <gipc/program.hpp>

#include <boost/fiber/fiber.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <system_error>

namespace gipc {

using detail::socket_end;
using detail::steady_time;

namespace {

// throw_errno_gipc throws err (an errno, positive) with "gipc: " + what.
[[noreturn]] void throw_errno_gipc(int err, const std::string& what)
{
    detail::throw_errno(-err, "gipc: " + what);
}

} // namespace

// ---- byte_reader -----------------------------------------------------------------------------

GIPC_SINGLE_END_HANDLE(byte_reader, socket_end, "byte reader")

std::size_t byte_reader::read_some(void* data, std::size_t size) { return read_some_until(data, size, steady_time::max()); }

std::size_t byte_reader::read_some_until(void* data, std::size_t size, steady_time deadline)
{
    detail::op_guard op(end_.get());
    socket_end& e = *end_;
    if (const std::size_t buffered = e.take_buffered(data, size))
        return buffered;
    const detail::io::slice into{data, size};
    return static_cast<std::size_t>(e.checked(detail::io::read(e.fd(), &into, 1, deadline), "read", "read from"));
}

bool byte_reader::read_more(steady_time deadline)
{
    socket_end& e = *end_;
    // Straight into the buffer's tail: the room the string's growth leaves, at least 512
    // bytes and at most 64 KiB (a default pipe's capacity: the resize zero-fills what it
    // adds, and a read returns no more than the pipe holds).
    const std::size_t old_size = e.buffer.size();
    // A large buffer grows fourfold, not twofold: each growth copies what was read into
    // fresh memory, whose pages fault in, which costs more than the reads themselves.
    // Where the kernel offers transparent huge pages on request, such a buffer asks for
    // them: a 2 MiB page faults in once, not 512 times.
    if (old_size >= (1u << 20) && e.buffer.capacity() - old_size < (64u << 10)) {
        e.buffer.reserve(e.buffer.capacity() * 4);
        constexpr std::uintptr_t huge = std::uintptr_t(2) << 20;
        const auto begin = reinterpret_cast<std::uintptr_t>(e.buffer.data()) + old_size;
        const auto end = reinterpret_cast<std::uintptr_t>(e.buffer.data()) + e.buffer.capacity();
        const std::uintptr_t first = (begin + huge - 1) & ~(huge - 1), last = end & ~(huge - 1);
        if (last > first)
            detail::platform::advise_huge_pages(reinterpret_cast<void*>(first), last - first);
    }
    const std::size_t room = std::clamp<std::size_t>(e.buffer.capacity() - old_size, 512, 64 << 10);
    e.buffer.resize(old_size + room);
    const detail::io::slice into{e.buffer.data() + old_size, room};
    const ssize_t n = detail::io::read(e.fd(), &into, 1, deadline);
    e.buffer.resize(old_size + static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
    return e.checked(n, "read", "read from") > 0;
}

std::string byte_reader::read_line(std::size_t max_length) { return read_line_until(steady_time::max(), max_length); }

std::string byte_reader::read_line_until(steady_time deadline, std::size_t max_length)
{
    detail::op_guard op(end_.get());
    return end_->read_line(max_length, "the stream ended", [&] { return read_more(deadline); });
}

std::string byte_reader::read_all() { return read_all_until(steady_time::max()); }

std::string byte_reader::read_all_until(steady_time deadline)
{
    detail::op_guard op(end_.get());
    socket_end& e = *end_;
    while (read_more(deadline)) {
    }
    std::string all = e.head == 0 ? std::move(e.buffer) : e.buffer.substr(e.head);
    e.buffer = std::string();
    e.head = 0;
    return all;
}


// ---- byte_writer -----------------------------------------------------------------------------

GIPC_SINGLE_END_HANDLE(byte_writer, socket_end, "byte writer")

void byte_writer::write_all(std::string_view data) { write_all_until(data, steady_time::max()); }

void byte_writer::write_all_until(std::string_view data, steady_time deadline)
{
    if (!write_some_until(data, deadline))
        throw timeout_error("gipc: write timed out");
}

bool byte_writer::write_some_until(std::string_view& data, steady_time deadline)
{
    detail::op_guard op(end_.get());
    const auto fd = end_->fd();
    while (!data.empty()) {
        const detail::io::slice from{const_cast<char*>(data.data()), data.size()};
        const ssize_t n = detail::io::write(fd, &from, 1, deadline);
        if (n == -ETIMEDOUT)
            return false;
        if (n < 0)
            throw_errno_gipc(static_cast<int>(-n), "write to " + end_->name());
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}


// ---- program ---------------------------------------------------------------------------------

program::program(process p, bool kill_on_drop) noexcept : process_(std::move(p)), kill_on_drop_(kill_on_drop) {}

program::program(program&& other) noexcept = default;

program& program::operator=(program&& other) noexcept
{
    if (this != &other) {
        let_go();
        in_ = std::move(other.in_);
        out_ = std::move(other.out_);
        err_ = std::move(other.err_);
        process_ = std::move(other.process_);
        kill_on_drop_ = other.kill_on_drop_;
        input_saved_ = other.input_saved_;
        input_ = std::move(other.input_);
        input_offset_ = other.input_offset_;
        out_seen_ = std::move(other.out_seen_);
        err_seen_ = std::move(other.err_seen_);
    }
    return *this;
}

program::~program() { let_go(); }

void program::let_go() noexcept
{
    if (kill_on_drop_ && process_.pid() > 0) {
        try {
            if (process_.is_alive())
                process_.kill();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "gipc: killing %s: %s\n", process_.name().c_str(), e.what());
        }
    }
}

void program::check() const
{
    if (process_.pid() < 0)
        throw error("gipc: program handle is empty (moved from)");
}

pid_t program::pid() const noexcept { return process_.pid(); }
const std::string& program::name() const noexcept { return process_.name(); }
bool program::is_alive()
{
    check();
    return process_.is_alive();
}
std::optional<int> program::exitcode()
{
    check();
    return process_.exitcode();
}
void program::join()
{
    check();
    process_.join();
}
void program::terminate()
{
    check();
    process_.terminate();
}
void program::kill()
{
    check();
    process_.kill();
}

program::output program::communicate(std::string_view input) { return communicate_until(input, steady_time::max()); }

program::output program::communicate_until(std::string_view input, steady_time deadline)
{
    check();
    // The input is written from the caller's memory; only what a timeout leaves unwritten is
    // copied, for a later call to write on.
    std::string_view rest = input;
    if (input_saved_) {
        rest = input_;
        rest.remove_prefix(input_offset_);
    } else if (!input.empty() && in_.closed()) {
        throw error("gipc: communicate: the stdin of " + name() + " is not a pipe (command::in = stdio::pipe)");
    }
    bool timed_out = false;
    std::exception_ptr failure;
    auto feed = [&] {
        try {
            if (in_.closed())
                return;
            try {
                if (!in_.write_some_until(rest, deadline)) {
                    timed_out = true;
                    if (input_saved_) {
                        input_offset_ = input_.size() - rest.size();
                    } else {
                        input_.assign(rest);
                        input_offset_ = 0;
                        input_saved_ = true;
                    }
                    return;
                }
            } catch (const std::system_error& e) {
                if (e.code().value() != EPIPE)
                    throw; // EPIPE: the program exited without reading everything
            }
            in_.close();
            input_saved_ = true; // written: a later call writes nothing
            input_.clear();
            input_offset_ = 0;
        } catch (...) {
            if (!failure)
                failure = std::current_exception();
        }
    };
    auto drain = [&](byte_reader& r, std::string& seen) {
        try {
            if (r.closed())
                return;
            std::string all = r.read_all_until(deadline); // on a timeout, what was read stays in r
            if (seen.empty())
                seen = std::move(all);
            else
                seen += all;
            r.close();
        } catch (const timeout_error&) {
            timed_out = true;
        } catch (...) {
            if (!failure)
                failure = std::current_exception();
        }
    };
    // Each stream on a fiber of its own (but the last, on this one): a program that fills its
    // stdout before reading all of its stdin never deadlocks with us.
    const bool write = !in_.closed(), read_out = !out_.closed(), read_err = !err_.closed();
    std::vector<boost::fibers::fiber> helpers;
    if (write && (read_out || read_err))
        helpers.emplace_back(feed);
    if (read_out && read_err)
        helpers.emplace_back([&] { drain(err_, err_seen_); });
    if (read_out)
        drain(out_, out_seen_);
    else if (read_err)
        drain(err_, err_seen_);
    else if (write)
        feed();
    for (auto& f : helpers)
        f.join();
    if (failure)
        std::rethrow_exception(failure);
    if (timed_out)
        throw timeout_error("gipc: communicate with " + name() + " timed out");
    if (deadline == steady_time::max())
        process_.join();
    else if (!process_.join(deadline - std::chrono::steady_clock::now()))
        throw timeout_error("gipc: communicate with " + name() + " timed out (waiting for it to exit)");
    output o{std::move(out_seen_), std::move(err_seen_)};
    out_seen_.clear();
    err_seen_.clear();
    return o;
}

// ---- start_program / run_program -------------------------------------------------------------

completed run_program(command cmd, std::string_view input)
{
    return run_program_until(std::move(cmd), input, steady_time::max());
}

completed run_program_until(command cmd, std::string_view input, steady_time deadline)
{
    if (!input.empty() && cmd.in == stdio::inherit)
        cmd.in = stdio::pipe;
    program p = start_program(std::move(cmd));
    program::output o;
    try {
        o = p.communicate_until(input, deadline);
    } catch (...) {
        // The program (its group with new_process_group) must not outlive the call.
        try {
            p.kill();
            p.join();
        } catch (...) {
        }
        throw;
    }
    return completed{p.exitcode().value_or(0), std::move(o.out), std::move(o.err)};
}

} // namespace gipc
