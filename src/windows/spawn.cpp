// SPDX-License-Identifier: MIT
// spawn_process on Windows, the platform's process-start layer (src/process.cpp and
// src/spawn.cpp are the POSIX one), and the process handle's members there.
//
// The parent, on the calling thread: checks and reserves the transferred ends (transfer.hpp),
// makes an inheritable duplicate of each end's HANDLE but the sockets', makes the start pipe (a
// duplex named pipe, both ends synchronous), and starts the program's own file with
// CreateProcessW passing exactly the duplicates and the start pipe's child end
// (PROC_THREAD_ATTRIBUTE_HANDLE_LIST; stdin, stdout and stderr as the parent's), the environment
// naming the start pipe's handle in GIPC_SPAWN_FD, a daemon in a kill-on-close job object of its
// own (so it dies with the parent however the parent ends). Then, for the child that now exists,
// each socket's WSADuplicateSocketW information, and the go message (go_byte, a 32-bit
// big-endian length, the header and the arguments: handle_transfer.hpp's header as on POSIX,
// with the duplicates' values, which are the same in the child). It reads the start report:
// started_byte, or failed_byte and a setup_failure, or the end of the pipe when the child died
// during its setup. Only then are the transferred ends closed in the parent.
//
// The child's spawn_main reads the call, rebuilds the handles (made non-inheritable), reports,
// and runs the target on its only thread; then the uncaught-exception line, the arguments
// destroyed (their handles flush and close), its writers flushed, its exit duties, and
// ExitProcess with the target's code.
//
// A child's exit is its process handle's signal: join() parks the fiber in io::wait_exit (a
// thread-pool wait posting to the fiber's reactor), exitcode() asks without waiting. Windows has
// no zombies: the handle closes with the last process object once the child has exited (a running
// child's stays listed for the exit duties until it exits).
#include "windows/win32.hpp"

#include "windows/child_state.hpp"
#include "windows/cmdline.hpp"
#include "windows/handle.hpp"
#include "windows/named_pipe.hpp"
#include "windows/process.hpp"
#include "windows/spawn.hpp"
#include "windows/win_errors.hpp"

#include "errors.hpp"
#include "child_call.hpp"
#include "handle_transfer.hpp"
#include "io_ops.hpp"
#include "pipe_end.hpp"
#include "platform.hpp"
#include "scheduler.hpp"
#include "socket_os.hpp"
#include "transfer.hpp"

#include <gipc/process.hpp>

#include <boost/fiber/context.hpp>

#include <msgpack.hpp>

#include <algorithm>
#include <climits>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace gipc::detail {

namespace {

constexpr const char* spawn_env = "GIPC_SPAWN_FD";
constexpr const wchar_t* spawn_env_w = L"GIPC_SPAWN_FD";

// The exit codes terminate() and kill() end a child with: exitcode() reports them as -15 and
// -9 when that call ended the child (as Python's multiprocessing does on Windows).
constexpr DWORD terminated_base = 0x10000;

[[noreturn]] void throw_win32(DWORD e, const std::string& what)
{
    throw_errno(win::errno_of(e), "gipc: spawn_process: " + what + " (Win32 error " + std::to_string(e) + ")");
}

std::wstring as_wide(const std::u16string& s) { return std::wstring(s.begin(), s.end()); }

// own_program is the path of this program's file.
std::wstring own_program()
{
    std::wstring path(260, L'\0');
    for (;;) {
        const DWORD n = ::GetModuleFileNameW(nullptr, path.data(), DWORD(path.size()));
        if (n == 0)
            throw_win32(::GetLastError(), "GetModuleFileNameW");
        if (n < path.size()) {
            path.resize(n);
            return path;
        }
        path.resize(path.size() * 2);
    }
}

// child_environment is GIPC_SPAWN_FD=value, then this process's environment without
// GIPC_SPAWN_FD, as a CreateProcessW block.
std::wstring child_environment(const std::wstring& value)
{
    const std::wstring name = std::wstring(spawn_env_w) + L"=";
    std::wstring block = name + value;
    block.push_back(L'\0');
    if (wchar_t* env = ::GetEnvironmentStringsW()) {
        for (const wchar_t* e = env; *e; e += std::wcslen(e) + 1) {
            const std::size_t len = std::wcslen(e);
            // Names are case-insensitive on Windows.
            if (len >= name.size() && ::_wcsnicmp(e, name.c_str(), name.size()) == 0)
                continue;
            block.append(e, len);
            block.push_back(L'\0');
        }
        ::FreeEnvironmentStringsW(env);
    }
    block.push_back(L'\0');
    return block;
}

// write_all writes to a synchronous pipe handle. false: the reader is gone.
bool write_all(HANDLE h, const char* p, std::size_t n) noexcept
{
    while (n > 0) {
        DWORD done = 0;
        const DWORD chunk = n > 0x10000000 ? 0x10000000 : DWORD(n);
        if (!::WriteFile(h, p, chunk, &done, nullptr) || done == 0)
            return false;
        p += done;
        n -= done;
    }
    return true;
}

// read_exactly reads n bytes from a synchronous pipe handle. false: the writer is gone first.
bool read_exactly(HANDLE h, char* p, std::size_t n) noexcept
{
    while (n > 0) {
        DWORD got = 0;
        const DWORD chunk = n > 0x10000000 ? 0x10000000 : DWORD(n);
        if (!::ReadFile(h, p, chunk, &got, nullptr) || got == 0)
            return false;
        p += got;
        n -= got;
    }
    return true;
}

// receive_start_report reads what the child says before its target starts: 0 once it is
// starting, else the errno of its setup failure (its message in what), or -1 when the child
// ended without a word.
int receive_start_report(HANDLE h, std::string& what) noexcept
{
    char first = 0;
    if (!read_exactly(h, &first, 1))
        return -1;
    if (first == started_byte)
        return 0;
    start_failure_bytes msg;
    msg[0] = first;
    if (!read_exactly(h, msg + 1, sizeof msg - 1))
        return -1;
    return read_start_report(msg, sizeof msg, what);
}

} // namespace

namespace {

// The running children of this process, for the exit duties. Allocated once and never
// destroyed, so that the exit duties can use it during static destruction.
struct children_registry {
    plain_mutex mtx;
    std::vector<std::shared_ptr<child_state>> live;
    bool exit_duties_registered = false;
};

children_registry* const g_children = new children_registry;
std::atomic<unsigned> g_name_counter{0};

void unregister_child(child_state* s) noexcept
{
    std::lock_guard lk(g_children->mtx);
    auto& live = g_children->live;
    auto at = std::find_if(live.begin(), live.end(), [&](const auto& p) { return p.get() == s; });
    if (at != live.end())
        live.erase(at);
}

} // namespace

std::vector<std::shared_ptr<child_state>> live_children()
{
    std::lock_guard lk(g_children->mtx);
    return g_children->live;
}

namespace {

void register_exit_duties()
{
    std::lock_guard lk(g_children->mtx);
    if (!g_children->exit_duties_registered) {
        std::atexit(exit_duties);
        g_children->exit_duties_registered = true;
    }
}

std::string next_child_name() { return "Process-" + std::to_string(g_name_counter.fetch_add(1) + 1); }

} // namespace

std::optional<int> child_state::poll()
{
    std::unique_lock lk(mtx_);
    if (code_)
        return code_;
    const DWORD w = ::WaitForSingleObject(process_.get(), 0);
    if (w == WAIT_TIMEOUT)
        return std::nullopt;
    if (w != WAIT_OBJECT_0)
        throw_errno(win::errno_of(::GetLastError()), "gipc: wait for " + name_);
    DWORD code = 0;
    if (const DWORD e = win::exit_code(process_.get(), code); e != 0)
        throw_errno(win::errno_of(e), "gipc: exit code of " + name_);
    if (ended_by_ != 0 && code == terminated_base + DWORD(ended_by_))
        code_ = -ended_by_;
    else
        code_ = static_cast<int>(code);
    if (!group_)
        job_.reset(); // nothing left in it to end
    const std::optional<int> result = code_;
    lk.unlock();
    unregister_child(this);
    return result;
}

void child_state::signal(int sig)
{
    std::lock_guard lk(mtx_);
    if (code_ || ::WaitForSingleObject(process_.get(), 0) == WAIT_OBJECT_0)
        return; // it has exited: its exit code stays its own
    if (ended_by_ == 0)
        ended_by_ = sig;
    const bool ended = group_ && job_ ? ::TerminateJobObject(job_.get(), terminated_base + DWORD(ended_by_))
                                      : ::TerminateProcess(process_.get(), terminated_base + DWORD(ended_by_));
    if (!ended) {
        const DWORD e = ::GetLastError();
        if (::WaitForSingleObject(process_.get(), 0) == WAIT_OBJECT_0)
            return; // it exited meanwhile (TerminateProcess of an ending process is refused)
        throw_errno(win::errno_of(e), "gipc: terminate " + name_);
    }
}

// process_maker wraps a started child in a process handle (the handle's friend).
class process_maker {
public:
    static process wrap(std::shared_ptr<child_state> state) noexcept { return process(std::move(state)); }
};

void prepare_program_start()
{
    thread_algorithm();
    register_exit_duties();
}

process adopt_program(win::unique_handle proc, DWORD pid, std::string name, bool daemon, win::unique_handle job,
                      bool group)
{
    std::shared_ptr<child_state> state;
    try {
        state = std::make_shared<child_state>(std::move(proc), pid, std::move(name), daemon, std::move(job), true, group);
        std::lock_guard lk(g_children->mtx);
        g_children->live.push_back(state);
    } catch (...) {
        HANDLE h = state ? state->handle() : proc.get();
        ::TerminateProcess(h, 127);
        ::WaitForSingleObject(h, INFINITE);
        throw;
    }
    return process_maker::wrap(std::move(state));
}

process spawn_exec(process_options options, spawn_request& request)
{
    thread_algorithm(); // every gipc call installs gipc's algorithm where the default runs
    register_exit_duties();
    const std::string name = options.name.empty() ? next_child_name() : options.name;

    // Transferred handles must be open and idle; their queued frames go out first, so that
    // they precede whatever the child writes.
    check_transfers(request.transfers);
    for (auto* w : request.transfers.writers)
        flush(w);
    std::fflush(nullptr);

    // The start pipe: synchronous at both ends (this thread blocks on it; so does the child's
    // spawn_main, before anything else runs there).
    win::unique_handle start_parent, start_child;
    win::duplex_options start_options;
    start_options.first_overlapped = false;
    start_options.second_overlapped = false;
    start_options.buffer_size = 4096;
    if (const DWORD e = win::make_duplex_pipe(start_parent, start_child, start_options); e != 0)
        throw_win32(e, "the start pipe");

    // flush() may have let other fibers run: from here to the end no fiber of this thread runs,
    // and none of another thread can start using a transferred end.
    transfer_reservation reserved(request.transfers);

    // The call, with each end's inheritable duplicate as its handle in the child.
    call_header header;
    header.name = name;
    header.invoker = locate_code(request.invoker);
    header.target = locate_code(request.target);
    std::vector<end_base*> ends;
    header.handles = describe_handles(request.handles, ends, 0);
    // Sockets go by WSADuplicateSocketW once the child exists (an inherited duplicate of a
    // socket is not always a socket in the child: Wine 8 refuses accepted ones, WSAENOTSOCK);
    // every other end by an inheritable duplicate of its handle.
    std::vector<bool> is_socket(ends.size(), false);
    for (const auto& h : header.handles)
        if (h.kind == 's' || h.kind == 'l')
            is_socket.at(std::size_t(h.fds.at(0))) = true;
    std::vector<win::unique_handle> copies(ends.size());
    win::spawn_options spawn;
    for (std::size_t i = 0; i < ends.size(); ++i) {
        if (is_socket[i])
            continue;
        if (const DWORD e = win::inheritable_duplicate(static_cast<HANDLE>(ends[i]->fd()), copies[i]); e != 0)
            throw_win32(e, "duplicate of " + ends[i]->name());
        spawn.inherit.push_back(copies[i].get());
    }
    std::vector<std::size_t> socket_of(header.handles.size(), SIZE_MAX); // a socket handle's end
    for (std::size_t k = 0; k < header.handles.size(); ++k)
        for (int& value : header.handles[k].fds) {
            const auto index = std::size_t(value);
            if (is_socket.at(index)) {
                socket_of[k] = index;
                value = -1;
            } else {
                value = platform::transfer_value(copies.at(index).get());
            }
        }
    win::unique_handle start_copy;
    if (const DWORD e = win::inheritable_duplicate(start_child.get(), start_copy); e != 0)
        throw_win32(e, "duplicate of the start pipe");
    start_child.reset();
    spawn.inherit.push_back(start_copy.get());

    // The program's own file, with its path as argv[0], the parent's standard handles, and the
    // environment naming the start pipe.
    spawn.application = own_program();
    std::u16string command_line;
    {
        std::string program_utf8;
        if (win::utf16_to_utf8(std::u16string_view(reinterpret_cast<const char16_t*>(spawn.application.data()),
                                                   spawn.application.size()),
                               program_utf8) != 0)
            throw error("gipc: spawn_process: the program's path is not valid UTF-16");
        if (const unsigned long e = win::command_line_utf16({program_utf8}, command_line); e != 0)
            throw_win32(DWORD(e), "the command line");
    }
    spawn.command_line = as_wide(command_line);
    const std::wstring environment =
        child_environment(std::to_wstring(platform::transfer_value(start_copy.get())));
    spawn.environment = environment.c_str();
    for (auto [which, slot] : {std::pair{STD_INPUT_HANDLE, &spawn.std_input}, std::pair{STD_OUTPUT_HANDLE, &spawn.std_output},
                               std::pair{STD_ERROR_HANDLE, &spawn.std_error}}) {
        HANDLE h = ::GetStdHandle(which);
        if (h != nullptr && h != INVALID_HANDLE_VALUE)
            *slot = h;
    }
    win::unique_handle job;
    if (options.daemon) {
        if (const DWORD e = win::make_kill_on_close_job(job); e != 0)
            throw_win32(e, "the job object of a daemon child");
        spawn.job = job.get();
    }

    win::unique_handle proc;
    DWORD pid = 0;
    if (const DWORD e = win::spawn(spawn, proc, pid); e != 0)
        throw_win32(e, "CreateProcessW of the program's file");
    // The child has its copies now; the parent's must go, or it would never see the start
    // pipe's end from a child that dies during its setup.
    copies.clear();
    start_copy.reset();

    // The sockets, for the child that now exists; then the call.
    std::string what;
    int report = -1;
    try {
        for (std::size_t k = 0; k < header.handles.size(); ++k) {
            if (socket_of[k] == SIZE_MAX)
                continue;
            if (const int r = win::duplicate_socket_for(static_cast<SOCKET>(fd_socket(ends[socket_of[k]]->fd())), pid,
                                                        header.handles[k].socket_info);
                r != 0)
                throw_errno(win::errno_of(DWORD(r)),
                            "gipc: spawn_process: WSADuplicateSocketW of " + ends[socket_of[k]]->name());
        }
        const std::string message = go_message(header, request.args.data(), request.args.size());
        if (write_all(start_parent.get(), message.data(), message.size()))
            report = receive_start_report(start_parent.get(), what);
    } catch (...) {
        ::TerminateProcess(proc.get(), 127);
        ::WaitForSingleObject(proc.get(), INFINITE);
        throw;
    }

    start_parent.reset();
    if (report != 0) {
        // A child that cannot run its target ends at once; one that does not must not stay.
        if (::WaitForSingleObject(proc.get(), 10000) != WAIT_OBJECT_0) {
            ::TerminateProcess(proc.get(), 127);
            ::WaitForSingleObject(proc.get(), INFINITE);
        }
        if (report > 0)
            throw_errno(-report, "gipc: " + name + " could not start: " + what);
        throw_errno(-ECHILD, "gipc: " + name + " ended before its target started");
    }

    std::shared_ptr<child_state> state;
    try {
        state = std::make_shared<child_state>(std::move(proc), pid, name, options.daemon, std::move(job));
        std::lock_guard lk(g_children->mtx);
        g_children->live.push_back(state);
    } catch (...) {
        // A child that cannot be watched must not be left running.
        HANDLE h = state ? state->handle() : proc.get();
        ::TerminateProcess(h, 127);
        ::WaitForSingleObject(h, INFINITE);
        throw;
    }

    // The transferred handles now belong to the child.
    reserved.commit();
    return process_maker::wrap(std::move(state));
}

// ---- in the child -------------------------------------------------------------------------------

namespace {

// Set at static initialisation in a spawned child, cleared by spawn_main: a child whose main()
// does not call it stops at its first gipc call or when main() returns.
std::atomic<bool> g_spawn_main_missing{false};

[[noreturn]] void stop_without_spawn_main() noexcept
{
    std::fputs("gipc: a spawned child needs gipc::spawn_main(argc, argv) at the start of main()\n", stderr);
    std::fflush(stderr);
    ::ExitProcess(70);
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

[[noreturn]] void report_setup_failure(HANDLE start, int err, const char* what) noexcept
{
    start_failure_bytes msg;
    start_failure_message(err, what, msg);
    write_all(start, msg, sizeof msg);
    ::ExitProcess(127);
}

} // namespace

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
    const char* found = std::getenv(spawn_env);
    if (!found)
        return;
    g_spawn_main_missing.store(false, std::memory_order_relaxed);
    const std::string value = found; // _putenv below frees what getenv returned
    char* end = nullptr;
    const long long number = std::strtoll(value.c_str(), &end, 10);
    const bool parsed = end != value.c_str() && *end == '\0';
    // Grandchildren must not see it.
    ::SetEnvironmentVariableW(spawn_env_w, nullptr);
    ::_putenv((std::string(spawn_env) + "=").c_str());
    HANDLE start = reinterpret_cast<HANDLE>(static_cast<std::intptr_t>(number));
    if (!parsed || win::set_inheritable(start, false) != 0) {
        std::fprintf(stderr, "gipc: %s=%s names no start pipe of gipc\n", spawn_env, value.c_str());
        std::fflush(stderr);
        ::ExitProcess(70);
    }

    char head[go_message_head_size];
    if (!read_exactly(start, head, sizeof head) || head[0] != go_byte)
        ::ExitProcess(127); // the parent could not start this child: it must not run
    const std::uint32_t size = go_message_length(head);

    spawned_call call;
    spawned_handles handles;
    try {
        std::string data(size, '\0');
        if (!read_exactly(start, data.data(), data.size()))
            ::ExitProcess(127);
        call_header header = decode_call(data, call);
        // The sockets, from the parent's WSADuplicateSocketW.
        for (auto& h : header.handles) {
            if (h.socket_info.empty())
                continue;
            win::unique_socket sock;
            const int r = h.fds.size() == 1 ? win::socket_from_duplicate(h.socket_info, sock) : WSAEINVAL;
            if (r == WSAEINVAL)
                throw error("gipc: a spawned child received a malformed socket");
            if (r != 0)
                throw_errno(win::errno_of(DWORD(r)), "gipc: WSASocketW of a transferred socket");
            h.fds[0] = platform::transfer_value(socket_fd(native_socket(sock.release())));
        }
        bind_call(header, call, handles);
        // exit() in the target still sees to what a return does (queued frames, children) before
        // the program's own exit handlers run: registered last, this runs first. This thread's
        // Boost.Fiber state (its main context and scheduler) is made before it: MinGW-w64 ends
        // the initial thread's thread_local objects among the exit handlers, the last made
        // first, and finish_child's flushes wait through that scheduler.
        (void)boost::fibers::context::active();
        if (std::atexit(finish_child) != 0)
            throw_errno(-ENOMEM, "gipc: atexit");
    } catch (const std::system_error& e) {
        report_setup_failure(start, e.code().value(), e.what());
    } catch (const std::bad_alloc&) {
        report_setup_failure(start, ENOMEM, "gipc: out of memory while starting the child");
    } catch (const std::exception& e) {
        report_setup_failure(start, EIO, e.what());
    }
    write_all(start, &started_byte, 1);
    ::CloseHandle(start);

    run_spawned_call(call);
}

// ---- the process handle -------------------------------------------------------------------------

process::~process()
{
    if (!state_)
        return;
    try {
        state_->poll(); // an exited child leaves the registry (and its handle closes with state_)
    } catch (...) {
    }
}

} // namespace gipc
