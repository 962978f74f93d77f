// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// External programs with cooperative stdin, stdout and stderr, as Python's `subprocess` and
/// gevent's `gevent.subprocess` offer them, without ever blocking the thread.
///
/// @code{.cpp}
/// gipc::completed r = gipc::run_program({.argv = {"sort"}, .in = gipc::stdio::pipe,
///                                        .out = gipc::stdio::pipe}, "b\na\n", std::chrono::seconds(5));
/// assert(r.exitcode == 0 && r.out == "a\nb\n");
///
/// gipc::program p = gipc::start_program({.argv = {"cat"}, .in = gipc::stdio::pipe,
///                                        .out = gipc::stdio::pipe});
/// p.in().write_all("hello\n");
/// p.in().close();
/// std::string line = p.out().read_line();   // "hello\n", blocking only this fiber
/// p.join();
/// @endcode
///
/// start_program never forks a copy of the caller: the child is made with
/// clone(CLONE_VM | CLONE_VFORK) and execve (the exec path spawn_process uses too), on gipc's
/// fork thread, so its cost does not grow with the caller's memory and a lock held forever by
/// another thread of the caller cannot hang it. The program gets stdin, stdout and stderr as the
/// command asks and no other fd; handled signals start at their default, ignored ones stay
/// ignored except SIGPIPE (at its default), and the signal mask is empty.
///
/// Exit watching and reaping are those of gipc::process (which see): a pidfd in the reactor, no
/// SIGCHLD handler, no waitpid(-1), no zombie, and destroying a program object never blocks.
/// At this process's normal exit a daemon program is SIGKILLed and reaped; other programs are
/// left running (as Python's subprocess leaves them), never waited for.
///
/// On Windows the program starts with CreateProcessW, its command line quoted so that
/// CommandLineToArgvW gives back argv exactly; argv[0] without '/', '\' or ':' is found with
/// SearchPathW (".exe" added when it has no extension) in the environment's PATH; it inherits its
/// three streams and no other handle; a daemon program is in a kill-on-close job object, and with
/// new_process_group it leads a job that terminate() and kill() end whole (exitcode() -15, -9).

#include <gipc/detail/export.hpp>
#include <gipc/detail/handle.hpp>
#include <gipc/error.hpp>
#include <gipc/process.hpp>

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gipc {

namespace detail {
class socket_end;
}

/// stdio: what one of a program's standard streams is connected to.
enum class stdio {
    inherit, ///< this process's own stdin, stdout or stderr
    pipe,    ///< a pipe to this process: program::in(), out() or err()
    null,    ///< /dev/null
    merge,   ///< for command::err only: the same as stdout (2>&1)
};

/// command: the program to start and how (start_program, run_program).
struct command {
    /// argv[0] names the program: a path when it holds a '/', else looked up in the PATH of
    /// the program's environment (env's when given, `/bin:/usr/bin` when env has no PATH; else
    /// this process's), skipping matches that are not executable. Must not be empty.
    std::vector<std::string> argv;
    /// "NAME=value" entries that replace the environment; nullopt: this process's environment.
    std::optional<std::vector<std::string>> env;
    /// The program's working directory; "": this process's.
    std::string cwd;
    stdio in = stdio::inherit;  ///< the program's stdin (merge is refused)
    stdio out = stdio::inherit; ///< the program's stdout (merge is refused)
    stdio err = stdio::inherit; ///< the program's stderr (merge: into its stdout)
    /// The program leads a new process group: terminate() and kill() signal the whole group,
    /// and so does run_program's timeout.
    bool new_process_group = false;
    /// The program is SIGKILLed when this process ends, normally or not (PR_SET_PDEATHSIG on
    /// gipc's fork thread, which lives as long as the process), not when the thread that
    /// started it ends.
    bool daemon = false;
    /// Destroying (or assigning over) the program object SIGKILLs a program still running (its
    /// group with new_process_group); it is still reaped in the background, never blocking.
    bool kill_on_drop = false;
    /// The program's name in messages and program::name(); default: argv[0].
    std::string name;
};

/// completed: how run_program's program ended and what it wrote.
struct completed {
    int exitcode;    ///< as program::exitcode(): -N when killed by signal N
    std::string out; ///< its stdout, when piped
    std::string err; ///< its stderr, when piped
};

class program;
GIPC_EXPORT program start_program(command cmd);
[[nodiscard]] GIPC_EXPORT completed run_program_until(command cmd, std::string_view input, detail::steady_time deadline);

/// byte_reader: unframed bytes from a pipe, e.g. a program's stdout. A move-only gipc handle:
/// non-blocking and close-on-exec, closed by its destructor, transferred to a start_process /
/// spawn_process child when passed as an argument and closed in children otherwise. Every
/// blocking call blocks only the calling fiber, on any thread. One fiber at a time may read.
///
/// Timeouts lose no data: bytes read_line or read_all received before their timeout stay in
/// the reader and come first on the next call.
class GIPC_EXPORT byte_reader {
public:
    /// A default-constructed byte_reader is closed.
    byte_reader() noexcept;
    /// Takes over the other reader's pipe; that one is left closed.
    byte_reader(byte_reader&&) noexcept;
    /// Move assignment closes the pipe this one held, like the destructor.
    byte_reader& operator=(byte_reader&&) noexcept;
    /// The destructor closes an open pipe.
    ~byte_reader();

    /// read_some reads up to size bytes, blocking until at least one arrives; 0 at end of stream.
    std::size_t read_some(void* data, std::size_t size);
    /// read_some with a timeout: timeout_error when no byte arrived before it expired.
    template <class Rep, class Period>
    std::size_t read_some(void* data, std::size_t size, std::chrono::duration<Rep, Period> timeout)
    {
        return read_some_until(data, size, detail::deadline_from(timeout));
    }
    /// read_line returns the next line including its `\n`, as net::stream::read_line: "" at
    /// the end of the stream, eof_error when it ends in the middle of a line, gipc::error for a
    /// line longer than max_length.
    std::string read_line(std::size_t max_length = 1 << 20);
    /// read_line with a timeout bounding the whole call: timeout_error when it expires.
    template <class Rep, class Period>
    std::string read_line(std::chrono::duration<Rep, Period> timeout, std::size_t max_length = 1 << 20)
    {
        return read_line_until(detail::deadline_from(timeout), max_length);
    }
    /// read_all returns every byte until the end of the stream.
    std::string read_all();
    /// read_all with a timeout bounding the whole call: timeout_error when it expires.
    template <class Rep, class Period>
    std::string read_all(std::chrono::duration<Rep, Period> timeout)
    {
        return read_all_until(detail::deadline_from(timeout));
    }

    /// close closes the pipe. closed_error if already closed; locked_error (it stays open)
    /// while another fiber is blocked on it.
    void close();
    /// closed is true when the pipe is closed: by close(), moved from, default-constructed, not
    /// piped by the command, or transferred to a child process.
    bool closed() const noexcept;
    /// native_handle is the pipe's fd, or -1 when closed (on Windows its HANDLE, or
    /// INVALID_HANDLE_VALUE).
    native_handle_type native_handle() const noexcept;

private:
    friend struct detail::detail_access;
    friend class program;
    friend program start_program(command cmd);
    explicit byte_reader(std::shared_ptr<detail::socket_end> end) noexcept;
    std::size_t read_some_until(void* data, std::size_t size, detail::steady_time deadline);
    std::string read_line_until(detail::steady_time deadline, std::size_t max_length);
    std::string read_all_until(detail::steady_time deadline);
    // read_more appends what the pipe holds to the reader's buffer, waiting for it until the
    // deadline (timeout_error); false at end of stream.
    bool read_more(detail::steady_time deadline);
    std::shared_ptr<detail::socket_end> end_;
};

/// byte_writer: unframed bytes into a pipe, e.g. a program's stdin. A move-only gipc handle
/// like byte_reader. Writing to a pipe whose reader is gone throws std::system_error with
/// EPIPE (never SIGPIPE).
class GIPC_EXPORT byte_writer {
public:
    /// A default-constructed byte_writer is closed.
    byte_writer() noexcept;
    /// Takes over the other writer's pipe; that one is left closed.
    byte_writer(byte_writer&&) noexcept;
    /// Move assignment closes the pipe this one held, like the destructor.
    byte_writer& operator=(byte_writer&&) noexcept;
    /// The destructor closes an open pipe.
    ~byte_writer();

    /// write_all writes every byte of data, blocking only the calling fiber while the pipe is full.
    void write_all(std::string_view data);
    /// write_all with a timeout bounding the whole call: timeout_error when it expires, when a
    /// prefix of data may have been written.
    template <class Rep, class Period>
    void write_all(std::string_view data, std::chrono::duration<Rep, Period> timeout)
    {
        write_all_until(data, detail::deadline_from(timeout));
    }

    /// close closes the pipe (the reader sees the end of the stream). closed_error if already
    /// closed; locked_error (it stays open) while another fiber is blocked on it.
    void close();
    /// closed is true when the pipe is closed: by close(), moved from, default-constructed, not
    /// piped by the command, or transferred to a child process.
    bool closed() const noexcept;
    /// native_handle is the pipe's fd, or -1 when closed (on Windows its HANDLE, or
    /// INVALID_HANDLE_VALUE).
    native_handle_type native_handle() const noexcept;

private:
    friend struct detail::detail_access;
    friend class program;
    friend program start_program(command cmd);
    explicit byte_writer(std::shared_ptr<detail::socket_end> end) noexcept;
    void write_all_until(std::string_view data, detail::steady_time deadline);
    // write_some_until writes from data, advancing it, until it is all written (true) or the
    // deadline passed (false).
    bool write_some_until(std::string_view& data, detail::steady_time deadline);
    std::shared_ptr<detail::socket_end> end_;
};

/// program: an external program started by start_program. Move-only.
///
/// pid(), name(), is_alive(), exitcode(), join() and the rest behave as for gipc::process (a
/// moved-from program throws gipc::error from them), except that terminate() and kill()
/// signal the program's whole group with command::new_process_group.
class GIPC_EXPORT program {
public:
    /// Takes over other's program and streams; other is left empty.
    program(program&& other) noexcept;
    /// Move assignment lets go of the program this one held, as the destructor does.
    program& operator=(program&& other) noexcept;
    /// The destructor closes the streams and never blocks; a program still running is left
    /// running (SIGKILLed with command::kill_on_drop) and reaped in the background.
    ~program();

    /// pid is the program's process id (-1 when empty).
    pid_t pid() const noexcept;
    /// name is command::name, or argv[0] ("" when empty).
    const std::string& name() const noexcept;
    /// is_alive is true until the program has exited. Never blocks.
    bool is_alive();
    /// exitcode: nullopt while running; >= 0 exit status; -N if killed by signal N.
    [[nodiscard]] std::optional<int> exitcode();
    /// join blocks only the calling fiber until the program has exited.
    void join();
    /// join with a timeout: true once the program has exited, false when the timeout expired.
    template <class Rep, class Period>
    [[nodiscard]] bool join(std::chrono::duration<Rep, Period> timeout)
    {
        check();
        return process_.join(timeout);
    }
    /// terminate sends SIGTERM (to the group with new_process_group). A no-op once reaped.
    void terminate();
    /// kill sends SIGKILL (to the group with new_process_group). A no-op once reaped.
    void kill();

    /// in is the program's stdin: closed unless command::in was stdio::pipe.
    byte_writer& in() noexcept { return in_; }
    /// out is the program's stdout: closed unless command::out was stdio::pipe.
    byte_reader& out() noexcept { return out_; }
    /// err is the program's stderr: closed unless command::err was stdio::pipe.
    byte_reader& err() noexcept { return err_; }

    /// output: what communicate read from the program's stdout and stderr.
    struct output {
        std::string out; ///< the program's stdout ("" unless piped)
        std::string err; ///< the program's stderr ("" unless piped or merged into a piped stdout)
    };
    /// communicate writes input to in() and closes it, reads out() and err() to their ends at
    /// the same time (never deadlocking on a full pipe), joins, and returns what was read.
    /// Only piped streams are used; input for a program whose stdin is not piped is a
    /// gipc::error. A program that exits without reading its input is not an error (EPIPE is
    /// ignored).
    output communicate(std::string_view input = {});
    /// communicate with a timeout bounding the whole call: timeout_error when it expires; the
    /// program keeps running, and a later communicate goes on where this one stopped (the
    /// first call's input is written on, its input argument ignored) and returns all the
    /// output, including what this one read.
    template <class Rep, class Period>
    output communicate(std::string_view input, std::chrono::duration<Rep, Period> timeout)
    {
        return communicate_until(input, detail::deadline_from(timeout));
    }

private:
    friend program start_program(command cmd);
    friend completed run_program_until(command cmd, std::string_view input, detail::steady_time deadline);
    program(process p, bool kill_on_drop) noexcept;
    void check() const;
    void let_go() noexcept;
    output communicate_until(std::string_view input, detail::steady_time deadline);

    process process_;
    bool kill_on_drop_ = false;
    byte_writer in_;
    byte_reader out_;
    byte_reader err_;
    // communicate's progress, kept across a timeout.
    bool input_saved_ = false;
    std::string input_;
    std::size_t input_offset_ = 0;
    std::string out_seen_, err_seen_;
};

/// start_program starts cmd's program and returns at once (it does not wait for the program to
/// do anything). Callable from any fiber of any thread, and in a child. Throws std::system_error
/// with the errno of the failed step when the program cannot be started (execve's:
/// std::errc::no_such_file_or_directory, permission_denied, ...; chdir's for a bad cwd;
/// EAGAIN, EMFILE) after which no child is left behind; gipc::error for an empty argv or
/// stdio::merge for in or out.
GIPC_EXPORT program start_program(command cmd);

/// run_program starts cmd, communicates input (stdin is piped when input is not empty and
/// cmd.in is stdio::inherit), and returns once the program has exited.
[[nodiscard]] GIPC_EXPORT completed run_program(command cmd, std::string_view input = {});

/// run_program_until is run_program with an absolute deadline (see the timeout overload).
[[nodiscard]] GIPC_EXPORT completed run_program_until(command cmd, std::string_view input, detail::steady_time deadline);

/// run_program with a timeout bounding the whole call: when it expires, the program (its
/// whole group with new_process_group) is SIGKILLed and reaped, and timeout_error is thrown,
/// even when a grandchild outside the group still holds the program's stdout open.
template <class Rep, class Period>
[[nodiscard]] GIPC_EXPORT completed run_program(command cmd, std::string_view input, std::chrono::duration<Rep, Period> timeout)
{
    return run_program_until(std::move(cmd), input, detail::deadline_from(timeout));
}

} // namespace gipc
