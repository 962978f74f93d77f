// SPDX-License-Identifier: MIT
// start_program on POSIX: external programs through the exec path of the process-start layer
// (exec_child.hpp), watched like gipc's own children (process_start.hpp), with their stdin,
// stdout and stderr as gipc handles (byte_reader, byte_writer: socket_end's on pipes; the rest
// of them is src/program.cpp's).
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
#include "scheduler.hpp"
#include "sigpipe.hpp"
#include "socket_end.hpp"

#include <gipc/program.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>
#include <vector>

extern char** environ;

namespace gipc {

using detail::socket_end;

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

} // namespace gipc
