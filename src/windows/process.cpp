// SPDX-License-Identifier: MIT
#include "process.hpp"

#include <algorithm>
#include <memory>
#include <new>

namespace gipc::detail::win {
namespace {

// attribute_list owns an initialized PROC_THREAD_ATTRIBUTE_LIST.
class attribute_list {
public:
    attribute_list() noexcept = default;
    attribute_list(const attribute_list&) = delete;
    attribute_list& operator=(const attribute_list&) = delete;
    ~attribute_list()
    {
        if (list_)
            ::DeleteProcThreadAttributeList(list_);
    }
    DWORD init(DWORD count) noexcept
    {
        SIZE_T size = 0;
        ::InitializeProcThreadAttributeList(nullptr, count, 0, &size); // fails, giving the size
        storage_.reset(new (std::nothrow) unsigned char[size]);
        if (!storage_)
            return ERROR_NOT_ENOUGH_MEMORY;
        auto* list = reinterpret_cast<LPPROC_THREAD_ATTRIBUTE_LIST>(storage_.get());
        if (!::InitializeProcThreadAttributeList(list, count, 0, &size))
            return ::GetLastError();
        list_ = list;
        return 0;
    }
    LPPROC_THREAD_ATTRIBUTE_LIST get() const noexcept { return list_; }

private:
    std::unique_ptr<unsigned char[]> storage_;
    LPPROC_THREAD_ATTRIBUTE_LIST list_ = nullptr;
};

} // namespace

DWORD spawn(const spawn_options& options, unique_handle& process, DWORD& pid) noexcept
{
    std::vector<HANDLE> inherit;
    std::vector<unique_handle> std_copies;
    try {
        inherit = options.inherit;
        std_copies.reserve(3);
        inherit.reserve(inherit.size() + 3);
    } catch (const std::bad_alloc&) {
        return ERROR_NOT_ENOUGH_MEMORY;
    }
    // A handle listed twice is listed once. A listed handle that is not inheritable is refused
    // here, the same everywhere (Windows refuses it in CreateProcessW).
    std::sort(inherit.begin(), inherit.end());
    inherit.erase(std::unique(inherit.begin(), inherit.end()), inherit.end());
    for (HANDLE h : inherit) {
        long inheritable = is_inheritable(h);
        if (inheritable < 0)
            return static_cast<DWORD>(-inheritable);
        if (inheritable == 0)
            return ERROR_INVALID_PARAMETER;
    }

    STARTUPINFOEXW si{};
    si.StartupInfo.cb = sizeof si;
    HANDLE std_handles[3] = {options.std_input, options.std_output, options.std_error};
    HANDLE* std_slots[3] = {&si.StartupInfo.hStdInput, &si.StartupInfo.hStdOutput,
                            &si.StartupInfo.hStdError};
    bool any_std = false;
    for (int i = 0; i < 3; ++i) {
        if (!std_handles[i])
            continue;
        any_std = true;
        // The same handle for two streams (stdout and stderr to one pipe) is listed once.
        HANDLE copy = nullptr;
        for (int j = 0; j < i; ++j)
            if (std_handles[j] == std_handles[i])
                copy = *std_slots[j];
        if (!copy) {
            unique_handle dup;
            if (DWORD e = inheritable_duplicate(std_handles[i], dup))
                return e;
            copy = dup.get();
            inherit.push_back(copy);
            std_copies.push_back(std::move(dup));
        }
        *std_slots[i] = copy;
    }
    if (any_std)
        si.StartupInfo.dwFlags |= STARTF_USESTDHANDLES;

    // With nothing to inherit there is no list (an empty one is no valid attribute): the child
    // inherits nothing by bInheritHandles = FALSE.
    attribute_list attributes;
    if (!inherit.empty()) {
        if (DWORD e = attributes.init(1))
            return e;
        if (!::UpdateProcThreadAttribute(attributes.get(), 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST,
                                         inherit.data(), inherit.size() * sizeof(HANDLE), nullptr,
                                         nullptr))
            return ::GetLastError();
        si.lpAttributeList = attributes.get();
    }

    // CreateProcessW may write into the command line: it gets a copy.
    std::wstring command_line;
    try {
        command_line = options.command_line;
    } catch (const std::bad_alloc&) {
        return ERROR_NOT_ENOUGH_MEMORY;
    }
    DWORD flags = EXTENDED_STARTUPINFO_PRESENT | CREATE_UNICODE_ENVIRONMENT | options.extra_flags;
    if (options.job)
        flags |= CREATE_SUSPENDED;
    PROCESS_INFORMATION pi{};
    if (!::CreateProcessW(options.application.empty() ? nullptr : options.application.c_str(),
                          command_line.data(), nullptr, nullptr, inherit.empty() ? FALSE : TRUE,
                          flags, const_cast<wchar_t*>(options.environment),
                          options.cwd.empty() ? nullptr : options.cwd.c_str(), &si.StartupInfo, &pi))
        return ::GetLastError();
    unique_handle proc(pi.hProcess);
    unique_handle thread(pi.hThread);
    if (options.job) {
        if (!::AssignProcessToJobObject(options.job, proc.get())) {
            DWORD e = ::GetLastError();
            ::TerminateProcess(proc.get(), 1);
            return e;
        }
        if (::ResumeThread(thread.get()) == static_cast<DWORD>(-1)) {
            DWORD e = ::GetLastError();
            ::TerminateProcess(proc.get(), 1);
            return e;
        }
    }
    process = std::move(proc);
    pid = pi.dwProcessId;
    return 0;
}

DWORD exit_code(HANDLE process, DWORD& code) noexcept
{
    if (!::GetExitCodeProcess(process, &code))
        return ::GetLastError();
    return 0;
}

void CALLBACK exit_watch::fire(void* context, BOOLEAN) noexcept
{
    auto* t = static_cast<target*>(context);
    ::PostQueuedCompletionStatus(t->port, 0, t->key, t->overlapped);
}

DWORD exit_watch::start(HANDLE h, completion_port& port, ULONG_PTR key, OVERLAPPED* overlapped) noexcept
{
    reset();
    auto* t = new (std::nothrow) target{port.get(), key, overlapped};
    if (!t)
        return ERROR_NOT_ENOUGH_MEMORY;
    HANDLE wait = nullptr;
    if (!::RegisterWaitForSingleObject(&wait, h, fire, t, INFINITE,
                                       WT_EXECUTEONLYONCE | WT_EXECUTEINWAITTHREAD)) {
        DWORD e = ::GetLastError();
        delete t;
        return e;
    }
    target_ = t;
    wait_ = wait;
    return 0;
}

void exit_watch::reset() noexcept
{
    if (wait_) {
        // INVALID_HANDLE_VALUE: wait for a running callback to return before going on.
        ::UnregisterWaitEx(wait_, INVALID_HANDLE_VALUE);
        wait_ = nullptr;
    }
    delete target_;
    target_ = nullptr;
}

DWORD make_kill_on_close_job(unique_handle& job) noexcept
{
    unique_handle j(::CreateJobObjectW(nullptr, nullptr));
    if (!j)
        return ::GetLastError();
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION info{};
    info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
    if (!::SetInformationJobObject(j.get(), JobObjectExtendedLimitInformation, &info, sizeof info))
        return ::GetLastError();
    job = std::move(j);
    return 0;
}

} // namespace gipc::detail::win
