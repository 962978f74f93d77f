// SPDX-License-Identifier: MIT
// spawn_process: the exec way into the process-start layer (process_start.hpp), and the
// spawned child's bootstrap, spawn_main.
//
// The parent, on the calling thread (exec_prepare): packs the call (the target's and its
// invoker's locations, the arguments, the handles' kinds, limits and read-ahead bytes), dups
// each fd the child gets above the range it will occupy there, and builds the exec_spec of the
// shared exec path (exec_child.hpp: each fd to its place: the start socket to 3, the handles'
// fds from 4, the parent-death pipe after them; every other fd closed; signal mask cleared)
// and the environment (GIPC_SPAWN_FD=3). On the fork thread (exec_start, which allocates
// nothing): exec_child (clone + execve of /proc/self/exe; the pidfd comes with the clone), and
// the go message carrying the call. The child's spawn_main reads it, sets itself up, reports,
// and runs the target.
#include "errors.hpp"
#include "exec_child.hpp"
#include "pipe_end.hpp"
#include "posix/fd.hpp"
#include "handle_transfer.hpp"
#include "process_start.hpp"
#include "scheduler.hpp"
#include "socket_end.hpp"

#include <gipc/process.hpp>
#include <gipc/program.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>
#include <vector>

extern char** environ;

namespace gipc::detail {

namespace {

constexpr const char* spawn_env = "GIPC_SPAWN_FD";
constexpr int start_fd_in_child = 3;

// exec_plan: what exec_prepare makes for exec_start.
struct exec_plan {
    spawn_request* request;
    std::string message; // the go message: go_byte, length (32-bit, big-endian), header, arguments
    std::vector<posix::unique_fd> staged; // the child's fds, dup'ed above its range
    std::vector<std::string> env_storage;
    std::vector<char*> envp;
    char* argv[2] = {nullptr, nullptr};
    exec_spec spec; // the shared exec path (exec_child.hpp)
};

[[noreturn]] void throw_spawn_errno(int err, const char* what)
{
    throw_errno(-err, std::string("gipc: spawn_process: ") + what);
}

// stage dups fd to the lowest free number at or above floor, close-on-exec: above every place
// the child's fds take, so that no dup2 in the child overwrites a source not yet placed.
posix::unique_fd stage(int fd, int floor)
{
    const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, floor);
    if (copy < 0)
        throw_spawn_errno(errno, "dup of a transferred fd");
    return posix::unique_fd(copy);
}

// exec_prepare runs on the calling thread once the transfers are reserved.
void exec_prepare(start_context& ctx, exec_plan& plan)
{
    spawn_request& req = *plan.request;

    // The child's fds: the start socket, then each transferred end's (once), then the
    // parent-death pipe.
    std::vector<int> sources{ctx.child_fd};
    std::vector<end_base*> ends;
    call_header header;
    header.name = ctx.name;
    header.daemon = ctx.options->daemon;
    header.parent = ctx.parent;
    header.invoker = locate_code(req.invoker);
    header.target = locate_code(req.target);
    header.handles = describe_handles(req.handles, ends, start_fd_in_child + 1);
    for (end_base* e : ends)
        sources.push_back(e->fd());
    if (ctx.death_read_fd >= 0) {
        header.death_fd = start_fd_in_child + int(sources.size());
        sources.push_back(ctx.death_read_fd);
    }
    const int first_free = start_fd_in_child + int(sources.size());

    plan.message = go_message(header, req.args.data(), req.args.size());

    for (int fd : sources)
        plan.staged.push_back(stage(fd, first_free));

    plan.spec.moves.reserve(plan.staged.size());
    for (std::size_t i = 0; i < plan.staged.size(); ++i)
        plan.spec.moves.push_back({plan.staged[i].get(), start_fd_in_child + int(i)});
    plan.spec.close_from = first_free;

    // The environment, with GIPC_SPAWN_FD naming the start socket (and no inherited one).
    const std::size_t env_len = std::strlen(spawn_env);
    for (char** e = environ; e && *e; ++e)
        if (!(std::strncmp(*e, spawn_env, env_len) == 0 && (*e)[env_len] == '='))
            plan.envp.push_back(*e);
    plan.env_storage.push_back(std::string(spawn_env) + "=" + std::to_string(start_fd_in_child));
    plan.envp.push_back(plan.env_storage.back().data());
    plan.envp.push_back(nullptr);
    plan.argv[0] = program_invocation_name;
    plan.spec.path = self_exe_path;
    plan.spec.argv = plan.argv;
    plan.spec.envp = plan.envp.data();
}

// exec_start runs on the fork thread and allocates nothing (see fork_thread in process.cpp).
pid_t exec_start(start_context& ctx)
{
    auto& plan = *static_cast<exec_plan*>(ctx.way);
    const exec_result r = exec_child(plan.spec);
    // The staged copies are the child's now: the parent's copy of the start socket's child end
    // must go, or the parent would never see EOF from a child that ends during its setup.
    for (auto& fd : plan.staged)
        fd.reset();
    if (r.err != 0)
        return -r.err; // exec_child reaped a child whose exec failed
    posix::close_fd(std::exchange(ctx.child_fd, -1));
    ctx.pidfd = r.pidfd; // held since the clone
    if (ctx.pidfd >= 0) {
        const char* p = plan.message.data();
        std::size_t left = plan.message.size();
        while (left > 0) {
            const auto n = posix::retry_eintr([&] { return ::send(ctx.parent_fd, p, left, MSG_NOSIGNAL); });
            if (n <= 0)
                break; // the child is gone: its start report says so
            p += n;
            left -= std::size_t(n);
        }
    }
    return r.pid;
}

// ---- in the child -------------------------------------------------------------------------------

// Set at static initialisation in a spawned child, cleared by spawn_main: a child whose main()
// does not call it stops at its first gipc call or when main() returns.
std::atomic<bool> g_spawn_main_missing{false};

[[noreturn]] void stop_without_spawn_main() noexcept
{
    static const char msg[] = "gipc: a spawned child needs gipc::spawn_main(argc, argv) at the start of main()\n";
    [[maybe_unused]] auto r = ::write(2, msg, sizeof msg - 1);
    ::_exit(70);
}

[[maybe_unused]] const bool g_spawn_check = [] {
    if (std::getenv(spawn_env)) {
        g_spawn_main_missing.store(true, std::memory_order_relaxed);
        std::atexit([] {
            if (g_spawn_main_missing.load(std::memory_order_relaxed))
                stop_without_spawn_main();
        });
    }
    return true;
}();

bool read_exactly(int fd, char* p, std::size_t n) noexcept
{
    while (n > 0) {
        const auto got = posix::retry_eintr([&] { return ::recv(fd, p, n, 0); });
        if (got <= 0)
            return false;
        p += got;
        n -= std::size_t(got);
    }
    return true;
}

} // namespace

process spawn_exec(process_options options, spawn_request& request)
{
    exec_plan plan;
    plan.request = &request;
    return process_maker::start(
        std::move(options), request.transfers, exec_start, &plan,
        [](start_context& ctx) { exec_prepare(ctx, *static_cast<exec_plan*>(ctx.way)); });
}

void check_spawn_main_called() noexcept
{
    if (g_spawn_main_missing.load(std::memory_order_relaxed))
        stop_without_spawn_main();
}

} // namespace gipc::detail

namespace gipc {

void spawn_main(int, char**)
{
    using namespace detail;
    const char* value = std::getenv(spawn_env);
    if (!value)
        return;
    g_spawn_main_missing.store(false, std::memory_order_relaxed);
    const int fd = std::atoi(value);
    ::unsetenv(spawn_env); // grandchildren must not see it
    if (fd != start_fd_in_child) {
        std::fprintf(stderr, "gipc: %s=%s names no start socket of gipc\n", spawn_env, value);
        ::_exit(70);
    }

    // The go message: the parent holds this child's pidfd, and sends the call.
    char head[go_message_head_size];
    if (!read_exactly(fd, head, sizeof head) || head[0] != go_byte)
        ::_exit(127); // the parent could not watch this child: it must not run
    const std::uint32_t size = go_message_length(head);

    // SIGPIPE is ignored in every gipc child (the exec reset handlers and kept ignored signals
    // ignored; exec_child cleared the mask).
    struct sigaction ignore{};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    ::sigaction(SIGPIPE, &ignore, nullptr);

    spawned_call call;
    spawned_handles handles;
    try {
        std::string data(size, '\0');
        if (!read_exactly(fd, data.data(), data.size()))
            ::_exit(127);
        const call_header header = decode_call(data, call);
        if (header.daemon)
            become_daemon_child(pid_t(header.parent), posix::unique_fd(header.death_fd));
        end_on_exit_like_a_child();
        bind_call(header, call, handles);
    } catch (const std::system_error& e) {
        report_setup_failure(fd, e.code().value(), e.what());
    } catch (const std::bad_alloc&) {
        report_setup_failure(fd, ENOMEM, "gipc: out of memory while starting the child");
    } catch (const std::exception& e) {
        report_setup_failure(fd, EIO, e.what());
    }
    posix::retry_eintr([&] { return ::send(fd, &started_byte, 1, MSG_NOSIGNAL); });
    posix::close_fd(fd);

    run_spawned_call(call);
}

} // namespace gipc
