// SPDX-License-Identifier: MIT
#pragma once
// process.hpp: child processes on Windows. CreateProcessW passes a child exactly the handles
// listed (STARTUPINFOEXW with PROC_THREAD_ATTRIBUTE_HANDLE_LIST), never every inheritable
// handle of the process; a child's exit is watched by a thread-pool wait
// (RegisterWaitForSingleObject) that posts a packet to a completion port; a kill-on-close job
// object ends children that must not outlive their parent. Nothing here throws but
// std::bad_alloc: functions return 0 or a Win32 error code.

#include "handle.hpp"
#include "iocp.hpp"

#include <string>
#include <vector>

namespace gipc::detail::win {

struct spawn_options {
    // The program to run (lpApplicationName), or empty to let CreateProcessW find it from the
    // command line's first word.
    std::wstring application;
    // The whole command line, argv[0] included (cmdline.hpp builds it).
    std::wstring command_line;
    // The handles the child inherits, and no other: each must be inheritable
    // (inheritable_duplicate), or spawn returns ERROR_INVALID_PARAMETER; a handle that is not
    // open gives ERROR_INVALID_HANDLE. Their values are the same in the child.
    std::vector<HANDLE> inherit;
    // The child's standard handles, or nullptr for none (the child then sees whatever its
    // startup gives it). spawn makes inheritable duplicates of them and lists those: the
    // caller's handles need not be inheritable.
    HANDLE std_input = nullptr;
    HANDLE std_output = nullptr;
    HANDLE std_error = nullptr;
    // A job object the child joins before it runs its first instruction (it is created
    // suspended, assigned, then resumed), or nullptr.
    HANDLE job = nullptr;
    // Added to the creation flags (CREATE_NO_WINDOW, CREATE_NEW_PROCESS_GROUP...).
    DWORD extra_flags = 0;
    // The child's environment: a block of NUL-terminated "NAME=value" strings ended by an
    // empty one (UTF-16), or nullptr for a copy of this process's.
    const wchar_t* environment = nullptr;
    // The child's working directory, or empty for this process's.
    std::wstring cwd;
};

// spawn starts a child. On success process owns its process handle and pid is its id.
DWORD spawn(const spawn_options& options, unique_handle& process, DWORD& pid) noexcept;

// exit_code reads a process's exit code (GetExitCodeProcess). STILL_ACTIVE (259) while it runs,
// which is also a code a process could exit with: ask after its handle is signalled.
DWORD exit_code(HANDLE process, DWORD& code) noexcept;

// exit_watch posts one packet (key, 0 bytes, overlapped) to a completion port when a process
// (or any waitable handle) is signalled. The wait runs on the system's thread pool, so the
// reactor's thread only ever waits on its port. Destroying or resetting the watch cancels the
// wait and waits for a callback that is running to return: no packet is posted after that.
// The port must outlive the watch.
class exit_watch {
public:
    exit_watch() noexcept = default;
    exit_watch(const exit_watch&) = delete;
    exit_watch& operator=(const exit_watch&) = delete;
    ~exit_watch() { reset(); }

    // start watches h: on its signal, port.post(key, 0, overlapped). h must stay open until
    // the watch is reset. Returns 0 or a Win32 error code.
    DWORD start(HANDLE h, completion_port& port, ULONG_PTR key, OVERLAPPED* overlapped = nullptr) noexcept;

    // reset cancels the watch (nothing when none is running).
    void reset() noexcept;

    explicit operator bool() const noexcept { return wait_ != nullptr; }

private:
    struct target {
        HANDLE port;
        ULONG_PTR key;
        OVERLAPPED* overlapped;
    };
    static void CALLBACK fire(void* context, BOOLEAN timed_out) noexcept;
    target* target_ = nullptr;
    HANDLE wait_ = nullptr;
};

// make_kill_on_close_job creates a job object with JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE: when
// its last handle closes, including when the process holding it ends however it ends, every
// process in it is terminated. The handle is not inheritable.
DWORD make_kill_on_close_job(unique_handle& job) noexcept;

} // namespace gipc::detail::win
