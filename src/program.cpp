// SPDX-License-Identifier: MIT
// start_program: external programs through the exec path of the process-start layer
// (exec_child.hpp), watched like gipc's own children (process_start.hpp), with their stdin,
// stdout and stderr as gipc handles (byte_reader, byte_writer: socket_end's on pipes).
//
// The calling thread resolves the program in PATH, builds argv and the environment, and makes
// (and registers) the handle objects of the parent's pipe ends, still without fds. The fork
// thread makes the pipes, gives the parent's ends their fds and clones the child: no gipc fork
// can come between the pipes' creation and the ends' registration, so a start_process child
// never inherits a program's pipe unnoticed (it would hold the program's stdin or stdout open).
#include "errors.hpp"
#include "exec_child.hpp"
#include "posix/fd.hpp"
#include "process_start.hpp"
#include "reactor.hpp"
#include "scheduler.hpp"
#include "sigpipe.hpp"
#include "socket_end.hpp"

#include <gipc/program.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/fiber/fiber.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <system_error>

extern char** environ;

namespace gipc {

using detail::socket_end;
using detail::steady_time;

namespace {

// throw_errno_gipc throws err (an errno, positive) with "gipc: " + what.
[[noreturn]] void throw_errno_gipc(int err, const std::string& what)
{
    detail::throw_errno(-err, "gipc: " + what);
}

std::shared_ptr<socket_end> unopened_end(const char* kind)
{
    auto end = std::make_shared<socket_end>(posix::unique_fd(), kind);
    end->register_open();
    return end;
}

// find_in_path resolves argv[0] as execvpe would, in the PATH of the program's environment.
std::string find_in_path(const command& cmd)
{
    const std::string& name = cmd.argv[0];
    if (name.find('/') != std::string::npos)
        return name;
    if (name.empty())
        detail::throw_errno(-ENOENT, "gipc: start_program: argv[0] is empty");
    std::string path = "/bin:/usr/bin";
    if (cmd.env) {
        for (const auto& e : *cmd.env)
            if (e.compare(0, 5, "PATH=") == 0) {
                path = e.substr(5);
                break;
            }
    } else if (const char* p = std::getenv("PATH")) {
        path = p;
    }
    bool denied = false;
    std::size_t from = 0;
    for (;;) {
        const std::size_t colon = path.find(':', from);
        std::string dir = path.substr(from, colon == std::string::npos ? std::string::npos : colon - from);
        if (dir.empty())
            dir = ".";
        std::string candidate = dir + "/" + name;
        struct stat st{};
        if (::stat(candidate.c_str(), &st) == 0) {
            if (S_ISREG(st.st_mode) && ::access(candidate.c_str(), X_OK) == 0)
                return candidate;
            denied = true; // a directory, or not executable: skipped
        } else if (errno == EACCES) {
            denied = true;
        }
        if (colon == std::string::npos)
            break;
        from = colon + 1;
    }
    detail::throw_errno(denied ? -EACCES : -ENOENT,
                       "gipc: start_program: cannot execute " + name +
                                (denied ? ": no executable match in PATH" : ": not found in PATH"));
}

// launch: one start_program call, handed to the fork thread.
struct launch {
    detail::exec_spec spec;
    stdio kinds[3] = {stdio::inherit, stdio::inherit, stdio::inherit};
    int move_at[3] = {-1, -1, -1};          // index in spec.moves of the stream's placement
    socket_end* parent_end[3] = {nullptr, nullptr, nullptr}; // for piped streams
    detail::exec_result result;
};

// launch_on_fork_thread makes the program's pipes and the child. Allocates nothing.
pid_t launch_on_fork_thread(void* arg)
{
    auto& l = *static_cast<launch*>(arg);
    int child_side[3] = {-1, -1, -1};
    int parent_side[3] = {-1, -1, -1};
    auto close_all = [&](int* fds) {
        for (int i = 0; i < 3; ++i)
            posix::close_fd(std::exchange(fds[i], -1));
    };
    int err = 0;
    for (int i = 0; i < 3 && err == 0; ++i) {
        if (l.kinds[i] == stdio::pipe) {
            int p[2];
            if (::pipe2(p, O_CLOEXEC) != 0) {
                err = errno;
                break;
            }
            child_side[i] = i == 0 ? p[0] : p[1];
            parent_side[i] = i == 0 ? p[1] : p[0];
            // A larger pipe (up to 1 MiB, where the per-user limit allows) moves bulk data
            // with fewer reads, writes and wake-ups; a refusal leaves the default.
            posix::grow_pipe(p[0], 1 << 20);
            if (const int r = posix::set_nonblocking(parent_side[i], true); r < 0)
                err = -r;
        } else if (l.kinds[i] == stdio::null) {
            child_side[i] = ::open("/dev/null", O_RDWR | O_CLOEXEC);
            if (child_side[i] < 0)
                err = errno;
        }
        // Above the child's range, so that no placement overwrites a source not yet placed.
        if (err == 0 && child_side[i] >= 0 && child_side[i] < l.spec.close_from) {
            const int staged = ::fcntl(child_side[i], F_DUPFD_CLOEXEC, l.spec.close_from);
            if (staged < 0)
                err = errno;
            posix::close_fd(child_side[i]);
            child_side[i] = staged;
        }
        if (l.move_at[i] >= 0)
            l.spec.moves[std::size_t(l.move_at[i])].from = child_side[i];
    }
    if (err != 0) {
        close_all(child_side);
        close_all(parent_side);
        l.result.err = err;
        l.result.step = detail::exec_step::none;
        return -err;
    }
    l.result = detail::exec_child(l.spec);
    close_all(child_side);
    if (l.result.err != 0) {
        close_all(parent_side);
        return -l.result.err;
    }
    for (int i = 0; i < 3; ++i)
        if (l.parent_end[i])
            l.parent_end[i]->set_fd(std::exchange(parent_side[i], -1));
    return l.result.pid;
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
            ::madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
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
    const int fd = end_->fd();
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

program start_program(command cmd)
{
    detail::prepare_program_start();
    if (cmd.argv.empty())
        throw error("gipc: start_program: command::argv is empty");
    if (cmd.in == stdio::merge || cmd.out == stdio::merge)
        throw error("gipc: start_program: stdio::merge is for command::err only");
    detail::ignore_sigpipe();
    const std::string path = find_in_path(cmd);
    std::string name = cmd.name.empty() ? cmd.argv[0] : cmd.name;

    std::vector<char*> argv;
    argv.reserve(cmd.argv.size() + 1);
    for (auto& a : cmd.argv)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<char*> envp;
    if (cmd.env) {
        envp.reserve(cmd.env->size() + 1);
        for (auto& e : *cmd.env)
            envp.push_back(e.data());
    } else {
        for (char** e = environ; e && *e; ++e)
            envp.push_back(*e);
    }
    envp.push_back(nullptr);

    launch l;
    l.spec.path = path.c_str();
    l.spec.argv = argv.data();
    l.spec.envp = envp.data();
    l.spec.close_from = 3;
    l.spec.cwd = cmd.cwd.empty() ? nullptr : cmd.cwd.c_str();
    l.spec.new_process_group = cmd.new_process_group;
    l.spec.death_parent = cmd.daemon ? ::getpid() : 0;
    l.spec.sigpipe_default = true;
    l.kinds[0] = cmd.in;
    l.kinds[1] = cmd.out;
    l.kinds[2] = cmd.err == stdio::merge ? stdio::inherit : cmd.err;
    l.spec.moves.reserve(3);
    std::shared_ptr<socket_end> ends[3];
    for (int i = 0; i < 3; ++i) {
        if (l.kinds[i] == stdio::pipe || l.kinds[i] == stdio::null) {
            l.move_at[i] = int(l.spec.moves.size());
            l.spec.moves.push_back({-1, i});
        }
        if (l.kinds[i] == stdio::pipe) {
            ends[i] = unopened_end(i == 0 ? "byte writer" : "byte reader");
            l.parent_end[i] = ends[i].get();
        }
    }
    if (cmd.err == stdio::merge)
        l.spec.moves.push_back({1, 2});

    const pid_t pid = detail::run_on_fork_thread(launch_on_fork_thread, &l);
    if (pid < 0) {
        const int err = -pid;
        switch (l.result.step) {
        case detail::exec_step::execve:
            throw_errno_gipc(err, "start_program: cannot execute " + path);
        case detail::exec_step::chdir:
            throw_errno_gipc(err, "start_program: cannot change to directory " + cmd.cwd + " for " + name);
        case detail::exec_step::none:
            throw_errno_gipc(err, "start_program: cannot start " + name);
        default:
            throw_errno_gipc(err, std::string("start_program: ") + detail::exec_step_name(l.result.step) + " for " + name +
                                 " failed");
        }
    }
    process p = detail::process_maker::adopt_program(pid, posix::unique_fd(l.result.pidfd), name, cmd.daemon,
                                                     cmd.new_process_group);
    program prog(std::move(p), cmd.kill_on_drop);
    prog.in_ = byte_writer(std::move(ends[0]));
    prog.out_ = byte_reader(std::move(ends[1]));
    prog.err_ = byte_reader(std::move(ends[2]));
    return prog;
}

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
