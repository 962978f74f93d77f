// SPDX-License-Identifier: MIT
#pragma once
// iocp_reactor: the Windows backend of reactor.hpp, an I/O completion port per thread (iocp.hpp).
// Only the backend's own files include this header: iocp_reactor.cpp (the loop) and
// iocp_io.cpp (the operations of io_ops.hpp, which start overlapped I/O and park the calling
// fiber until its packet arrives here). The members reactor.hpp declares are documented there.
//
// Every packet the port delivers is one of:
// - a wake-up (wake(): PostQueuedCompletionStatus from any thread), which only makes poll()
//   return;
// - the completion of an overlapped operation (an overlapped_op): either through the port the
//   handle is associated with (io_key; only this reactor's thread starts such operations) or
//   posted by a thread-pool wait on the operation's event or on a process handle (posted_key;
//   any thread may start those, see iocp_io.cpp);
// - a callback another thread handed to this one (post_callback).
// Each runs on the dispatcher, from poll(). The timers of the thread's scheduler are poll()'s
// timeout (GetQueuedCompletionStatusEx waits whole milliseconds: a deadline is rounded up, so
// that a fiber never wakes before its time).
//
// Windows has no fork: the fork hooks of reactor.hpp do nothing here.

#include "../private.hpp"

#include "reactor.hpp"
#include "thread_safety.hpp"
#include "windows/iocp.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

namespace gipc::detail {

// overlapped_op: an operation whose completion arrives as one packet on a reactor's port. A
// standard-layout struct whose first member is the OVERLAPPED, so that the packet's
// OVERLAPPED* is a pointer to the operation (no virtual function: a vtable pointer would come
// first). An operation type derives from it and sets complete.
struct overlapped_op {
    OVERLAPPED ov{};
    // complete runs once, on the reactor's thread from poll(), when the packet arrives: error is
    // the operation's Win32 error code (0: it succeeded), bytes what it moved. It must not
    // block or suspend; it may notify fibers of any thread and delete the operation.
    void (*complete)(overlapped_op* op, DWORD error, DWORD bytes) noexcept = nullptr;
};
static_assert(std::is_standard_layout_v<overlapped_op>, "an OVERLAPPED* is a pointer to its operation");

class iocp_reactor final : public reactor {
public:
    // The completion keys of the port's packets.
    static constexpr ULONG_PTR wake_key = 1;     // wake()
    static constexpr ULONG_PTR io_key = 2;       // I/O on a handle associated with this port
    static constexpr ULONG_PTR posted_key = 3;   // a thread-pool wait posting an operation's end
    static constexpr ULONG_PTR callback_key = 4; // post_callback

    // create makes a reactor, or returns nullptr with err set to -errno.
    static std::unique_ptr<iocp_reactor> create(int& err) noexcept;
    ~iocp_reactor() override;
    iocp_reactor(const iocp_reactor&) = delete;
    iocp_reactor& operator=(const iocp_reactor&) = delete;

    // The members of reactor.hpp, for this backend.
    std::uint64_t id() const noexcept { return id_; }
    void poll(steady_time deadline) noexcept;
    void wake() noexcept;
    static void forget_everywhere(native_fd h) noexcept;

    win::completion_port& port() noexcept { return port_; }
    const win::completion_port& port() const noexcept { return port_; }
    bool on_owner_thread() const noexcept { return std::this_thread::get_id() == owner_; }

    // run_soon has cb run from this reactor's next poll() (the current one, when called from a
    // packet's completion). Only the owning thread.
    void run_soon(std::shared_ptr<reactor_callback> cb) noexcept;

    // post_callback has cb run from the next poll() of the reactor whose id is given, on its
    // thread. Any thread. false when no such reactor exists (any more) or the packet could not
    // be posted: cb is then dropped.
    static bool post_callback(std::uint64_t reactor_id, std::shared_ptr<reactor_callback> cb) noexcept;

    // started / finished count the operations allocated on the heap (the queued writes of
    // iocp_io.cpp) whose packet comes to this reactor. The destructor cancels those still in
    // flight (cancel_heap_operations) and takes their packets before the port closes.
    void started() noexcept { heap_ops_.fetch_add(1, std::memory_order_relaxed); }
    void finished() noexcept { heap_ops_.fetch_sub(1, std::memory_order_relaxed); }

private:
    explicit iocp_reactor(win::completion_port port) noexcept;
    // dispatch runs what the packets of one wait bring.
    void dispatch(const win::completion* packets, std::size_t n) noexcept;

    win::completion_port port_;
    std::atomic<bool> wake_pending_{false};
    std::atomic<long> heap_ops_{0};
    // Callbacks due, run by poll() after the packets (the owning thread only).
    std::vector<std::shared_ptr<reactor_callback>> due_;
    const std::thread::id owner_ = std::this_thread::get_id();
    const std::uint64_t id_;
};

// The handle registry of iocp_io.cpp, for the reactor.
namespace iocp {
// forget_handle is forget_everywhere: operations in flight on h are cancelled and return
// -EBADF; what the registry knows of h is dropped.
void forget_handle(HANDLE h) noexcept;
// cancel_heap_operations cancels the queued writes whose packets go to reactor r (its
// destructor then takes their packets).
void cancel_heap_operations(const iocp_reactor& r) noexcept;
// orphan_heap_operations hands the queued writes whose packets go to reactor r, whose thread
// is ending, to whoever takes r's port from then on: their completions count down orphans
// (added to here) instead of r's count, and post the callbacks that wait for room to their
// reactors. Returns how many there were.
long orphan_heap_operations(const iocp_reactor& r, std::atomic<long>& orphans) noexcept;
// adopt_heap_operations undoes orphan_heap_operations: r takes those writes back.
void adopt_heap_operations(iocp_reactor& r, std::atomic<long>& orphans) noexcept;
// is_heap_operation: ov is the OVERLAPPED of a queued write in flight (an operation whose memory
// is its own, not a fiber's).
bool is_heap_operation(const OVERLAPPED* ov) noexcept;
} // namespace iocp

} // namespace gipc::detail
