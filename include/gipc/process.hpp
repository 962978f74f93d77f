// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// Child processes that start with a fresh fiber world.
///
/// @code{.cpp}
/// auto [r, w] = gipc::pipe();
/// gipc::process p = gipc::start_process([](gipc::reader r) { return r.get<int>(); }, std::move(r));
/// w.put(3);
/// p.join();                       // blocks only the calling fiber
/// assert(p.exitcode() == 3);
/// @endcode
///
/// start_process forks on a helper thread that gipc starts on first use (it blocks every signal
/// and never runs a fiber; a program that has started a child has this one extra thread). The
/// child's only thread is a copy of it, so fibers inherited from the parent never run there:
/// the target runs with a fresh scheduler and reactor, made on first use as on any thread, so
/// every Boost.Fiber and gipc facility works there, including start_process for grandchildren.
///
/// Arguments are decay-copied into the child like std::thread's, so handles are moved in. Every
/// gipc handle (reader, writer, duplex, net::stream, net::listener, byte_reader, byte_writer) passed as an argument, by
/// value or wrapped in std::ref, and every handle in a std::vector passed that way, is
/// transferred: it stays open in the child and is closed in the parent when start_process
/// returns. Every other gipc handle of the parent, on any thread, is closed in the child before
/// the target runs (handles inside other containers or structs are closed too). From its check
/// until the parent closes it, a transferred handle is reserved: a get()/put()/close() starting
/// on another thread meanwhile throws closed_error once the transfer happened, and a handle in
/// use when start_process checks it makes start_process throw locked_error (it stays open).
///
/// Pass handles; do not capture them. A handle captured by the target is not transferred: it is
/// closed in the child, where using it throws closed_error saying it "was not transferred to
/// this child process":
///
/// @code{.cpp}
/// gipc::start_process([r = std::move(r)]() mutable { return r.get<int>(); });   // wrong
/// gipc::start_process([](gipc::reader r) { return r.get<int>(); }, std::move(r)); // right
/// @endcode
///
/// start_process returns once the child is about to run its target. The child first waits until
/// the parent holds its pidfd (so it cannot end and be reaped by someone else before gipc
/// watches it), then reports over a close-on-exec socket whether its setup worked: a setup
/// failure (e.g. a daemon child that cannot watch for its parent's death) makes start_process
/// throw std::system_error with the child's errno; that child never runs its target.
///
/// In the child, every signal with a handler function is reset to its default (ignored signals
/// stay ignored, as across exec; SIGPIPE is always ignored) and the signal mask is cleared.
/// Stdio buffered in the parent at fork time is written once, by the parent.
///
/// Exit: the target's return value is the exit code when it is of an integral type, else 0.
/// An uncaught exception prints `"gipc: process <name> (pid <pid>): uncaught exception:
/// <what()>"` to stderr and exits with 1. Before exiting, the child flushes its writers, waits
/// for its own non-daemon children, terminates its daemon ones, flushes stdio and calls _exit:
/// the parent's atexit handlers and static destructors never run in a child. exit(N) in the
/// target ends the child the same way with status N (once Boost.Fiber's thread-local scheduler
/// has run the child's still-blocked fibers to completion, as exit() does in any Boost.Fiber
/// program); quick_exit(N) and _exit(N) end it at once, dropping queued frames.
///
/// Exit detection uses a pidfd (Linux 5.3 or later) in the reactor: no SIGCHLD handler is
/// installed and waitpid(-1) is never called. No zombie is left, even when the process object
/// is destroyed before the child ends (that neither blocks nor kills the child). When someone
/// else reaps the child (SIGCHLD ignored, SA_NOCLDWAIT, a waitpid(-1) elsewhere), join()
/// returns, is_alive() is false and exitcode() is 0 from then on: the status is lost. Signals
/// go through the pidfd only, never to a pid number.
///
/// Lifetime, as in Python's multiprocessing: at the parent's normal exit (return from main or
/// exit()), daemon children are terminated (SIGTERM) and the others are waited for. A daemon
/// child also dies (SIGKILL) when its parent dies in any way.

#include <gipc/detail/export.hpp>
#include <gipc/detail/handle.hpp>
#include <gipc/error.hpp>
#include <gipc/net.hpp>
#include <gipc/pipe.hpp>

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace gipc {

/// process_options: the options of start_process().
struct process_options {
    std::string name;    ///< default "Process-N", N counting from 1 in each process
    bool daemon = false; ///< terminated at the parent's normal exit; dies with the parent
};

class process;
class byte_reader;
class byte_writer;

namespace detail {
class child_state;
class child_entry;
class process_maker;
struct transfer_list;
// spawn forks and runs entry in the child (process.cpp; <gipc/detail/process.hpp>).
GIPC_EXPORT process spawn(process_options options, std::unique_ptr<child_entry> entry, const transfer_list& transfers);
} // namespace detail

/// start_process starts target(args...) in a child process and returns its handle. Callable
/// from any fiber of any thread, and in a child. Throws closed_error / locked_error when a
/// handle argument is closed / in use by another fiber, std::system_error when the child cannot
/// be started or watched (fork, the start socket or pidfd_open failing: EAGAIN, EMFILE, ENOSYS)
/// or when its setup fails; then no child is left behind and handle arguments passed by
/// std::ref stay open in the parent.
///
/// Not on Windows, which has no fork(): there a call does not compile, and the message names
/// spawn_process, which starts the child as a new run of the program instead.
template <class F, class... Args>
process start_process(process_options options, F&& target, Args&&... args);

/// start_process with default process_options: a non-daemon child named "Process-N".
template <class F, class... Args>
process start_process(F&& target, Args&&... args);

/// process: a child started by start_process. Move-only.
///
/// A moved-from process is empty: pid() is -1, name() is "", daemon() is false, and
/// is_alive(), exitcode(), join(), terminate() and kill() throw gipc::error.
class GIPC_EXPORT process {
public:
    /// Takes over other's child; other is left empty.
    process(process&& other) noexcept;
    /// Move assignment lets go of the child this one held, as the destructor does.
    process& operator=(process&& other) noexcept;
    /// The destructor neither blocks nor kills: an unfinished child is reaped in the background.
    ~process();

    /// pid is the child's process id (-1 when empty).
    pid_t pid() const noexcept;
    /// name is the child's name, from process_options or "Process-N" ("" when empty).
    const std::string& name() const noexcept;
    /// daemon is true for a daemon child (process_options::daemon).
    bool daemon() const noexcept;

    /// is_alive is true until the child has exited. Never blocks.
    bool is_alive();
    /// exitcode: nullopt while running; >= 0 exit status; -N if killed by signal N.
    [[nodiscard]] std::optional<int> exitcode();

    /// join blocks only the calling fiber until the child has exited. Callable from any
    /// fiber of any thread, several at once.
    void join();
    /// join with a timeout: true once the child has exited, false when the timeout expired.
    template <class Rep, class Period>
    [[nodiscard]] bool join(std::chrono::duration<Rep, Period> timeout)
    {
        return join_until(detail::deadline_from(timeout));
    }

    /// terminate sends SIGTERM. A no-op once the child was reaped.
    void terminate();
    /// kill sends SIGKILL. A no-op once the child was reaped.
    void kill();

private:
    friend process detail::spawn(process_options, std::unique_ptr<detail::child_entry>, const detail::transfer_list&);
    friend class detail::process_maker;
    explicit process(std::shared_ptr<detail::child_state> state) noexcept;
    bool join_until(detail::steady_time deadline);
    void check() const;
    std::shared_ptr<detail::child_state> state_;
};

/// spawn_main must be the first statement of main() in a program that calls spawn_process.
/// In a child started by spawn_process it runs the target and ends the child: it never returns
/// there. In any other process it returns at once and costs nothing. A spawned child whose
/// main() does not call it prints "gipc: a spawned child needs gipc::spawn_main(argc, argv) at
/// the start of main()" and exits with 70 at its first gipc call or when main() returns, so a
/// forgotten call never starts children recursively.
///
/// @code{.cpp}
/// int square(int x) { return x * x; }
/// int main(int argc, char** argv)
/// {
///     gipc::spawn_main(argc, argv);
///     gipc::process p = gipc::spawn_process(square, 7);
///     p.join();                   // p.exitcode() == 49
/// }
/// @endcode
GIPC_EXPORT void spawn_main(int argc, char** argv);

/// spawn_process starts target(args...) in a new execution of the program's own file (on Linux
/// /proc/self/exe, started with clone(CLONE_VM | CLONE_VFORK) + execve, never fork(), with the
/// parent's argv[0]), which
/// shares nothing with the parent but stdin, stdout, stderr and the handles it is given: no
/// other fd, no memory, thread or lock. Its static initializers run, then main(), whose
/// spawn_main call runs the target on the child's only thread.
///
/// The target is a function pointer or a lambda without captures (anything else does not
/// compile), of the program or of a shared library it linked. Each argument is either a gipc
/// handle for a parameter of that handle type (reader, writer, duplex, net::stream,
/// net::listener, byte_reader, byte_writer, or a std::vector of one of them; by value or std::ref), which is transferred:
/// open in the child, closed in the parent once spawn_process returns, with its pipe_options
/// and any bytes its reader had read ahead; or a value that converts to the parameter's type,
/// which is packed with msgpack-cxx as that type and arrives converted (numbers, strings,
/// standard containers, pairs, tuples, optionals, enums declared with MSGPACK_ADD_ENUM,
/// classes with MSGPACK_DEFINE; pointers are refused at compile time).
///
/// Everything else is as for start_process: the process handle, names ("Process-N" counts
/// forked and spawned children together), daemons (a daemon child also dies with its parent:
/// PR_SET_PDEATHSIG and the parent-death pipe are set before its target runs), the exit code,
/// the uncaught-exception line, signal rules (handlers are reset by the exec, ignored signals
/// stay ignored, SIGPIPE is ignored, the mask is cleared), exit duties, no zombies, queued frames
/// delivered once. spawn_process blocks the calling thread until the child reports that its
/// target starts (about a millisecond: the exec, the dynamic linker and static initializers).
///
/// On Windows (the only way to start a child there): the program's file from
/// GetModuleFileNameW, started with CreateProcessW (that path as argv[0]) passing exactly the
/// transferred handles and stdin, stdout, stderr; a daemon child is in a kill-on-close job object
/// that its parent holds, so it ends however the parent ends; terminate() and kill() call
/// TerminateProcess, and exitcode() is then -15 and -9; there are no signals to reset.
///
/// Throws std::system_error with the errno of the step that failed when the child cannot be
/// started (EACCES when the exec is refused, EAGAIN at a process limit, EMFILE) or when its
/// setup fails, closed_error / locked_error for a closed / busy handle argument, gipc::error when
/// the target is not in a file the child can load (code made at run time); then no child is
/// left behind and the handle arguments stay open in the parent.
template <class F, class... Args>
process spawn_process(process_options options, F target, Args&&... args);

/// spawn_process with default process_options: a non-daemon child named "Process-N".
template <class F, class... Args>
process spawn_process(F target, Args&&... args);

} // namespace gipc

#include <gipc/detail/process.hpp>
#include <gipc/detail/spawn.hpp>
