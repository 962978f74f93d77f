// SPDX-License-Identifier: MIT
#include "windows/iocp_reactor.hpp"
#include "windows/win_errors.hpp"

#include "assert.hpp"
#include "platform.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <mutex>
#include <new>

// Thread-local destructors before the thread-local storage goes. MinGW-w64's GCC keeps
// thread_local variables in emulated TLS (libgcc's emutls: one block per variable per thread,
// listed in an array kept under a winpthread key), and libstdc++ runs the destructors of
// thread_local objects from another winpthread key (its __cxa_thread_atexit). At a thread's exit
// winpthread calls the keys' destructors in the order the keys were made, and emutls makes its
// key at the first access to any thread_local, long before libstdc++ makes its own at the first
// thread_local object with a destructor: so emutls frees every thread_local block of the thread
// first, and the destructors then run on freed memory, where each access to a thread_local
// allocates a new, zeroed block. Boost.Fiber's thread-local initializer then reads a count of 0
// and never deletes the thread's scheduler (gipc's algorithm and reactor: a completion port and
// the semaphores of its condition variable, and whatever is in flight there), and gipc's own
// thread-local objects are destroyed with contents they never had. Registering one thread-exit
// destructor before any constructor of the program runs (priority 101, the first a program may
// use; libgipc's objects that contain a reactor are linked into every program that runs gipc's
// runtime) makes libstdc++'s key first, so that a thread's thread_local objects are destroyed
// while their storage is there, as C++ says. (The registration is the initial thread's, whose
// destructor runs at exit and does nothing.)
extern "C" int __cxa_thread_atexit(void (*dtor)(void*), void* obj, void* dso_handle) noexcept;

namespace {
void nothing_at_thread_exit(void*) noexcept {}
__attribute__((constructor(101))) void make_thread_exit_key_first() noexcept
{
    __cxa_thread_atexit(nothing_at_thread_exit, nullptr, nullptr);
}
} // namespace

namespace gipc::detail {

namespace {

std::uint64_t next_reactor_id() noexcept
{
    static std::atomic<std::uint64_t> last{0};
    return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

// The reactors of the process, for post_callback (a reactor is found by its id, never by a
// pointer that may dangle). Never destroyed: threads may end while the process exits.
plain_mutex& registry_mutex()
{
    static plain_mutex* m = new plain_mutex;
    return *m;
}

std::vector<iocp_reactor*>& registry()
{
    static auto* r = new std::vector<iocp_reactor*>;
    return *r;
}

// callback_packet: a callback on its way to another thread's reactor.
struct callback_packet {
    OVERLAPPED ov{};
    std::shared_ptr<reactor_callback> cb;
};

using win::errno_of;

// timeout_ms is GetQueuedCompletionStatusEx's timeout for deadline: rounded up to whole
// milliseconds, so that a wait never ends before its deadline (it would spin until then).
DWORD timeout_ms(steady_time deadline) noexcept
{
    if (deadline == steady_time::max())
        return INFINITE;
    if (deadline == steady_time::min())
        return 0;
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left.count() <= 0)
        return 0;
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    return static_cast<DWORD>(std::min<long long>(ms, INFINITE - 1));
}

} // namespace

iocp_reactor::iocp_reactor(win::completion_port port) noexcept
    : port_(std::move(port)), id_(next_reactor_id())
{
}

std::unique_ptr<iocp_reactor> iocp_reactor::create(int& err) noexcept
{
    win::completion_port port;
    if (const DWORD e = port.create(); e != 0) {
        err = errno_of(e);
        return nullptr;
    }
    std::unique_ptr<iocp_reactor> r(new (std::nothrow) iocp_reactor(std::move(port)));
    if (!r) {
        err = -ENOMEM;
        return nullptr;
    }
    std::lock_guard lk(registry_mutex());
    try {
        registry().push_back(r.get());
    } catch (const std::bad_alloc&) {
        err = -ENOMEM;
        return nullptr;
    }
    err = 0;
    return r;
}

namespace {

// The process's initial thread, whose thread-local destructors run as the process exits.
const DWORD initial_thread = ::GetCurrentThreadId();

// take_leftover takes a packet from the port of a reactor whose thread has ended (its destructor,
// or drain_port): a queued write's completion runs (its memory is its own, and whoever waits for
// room must hear of it); a callback for the thread is dropped; a wake-up means nothing. Any other
// operation was a fiber's of that thread, and every one of them has ended, its memory with it:
// such a packet is dropped, never completed.
void take_leftover(const win::completion& c) noexcept
{
    if (c.key == iocp_reactor::callback_key) {
        delete reinterpret_cast<callback_packet*>(c.overlapped); // its thread is gone
    } else if (c.key == iocp_reactor::io_key || c.key == iocp_reactor::posted_key) {
        if (!iocp::is_heap_operation(c.overlapped))
            return;
        auto* op = reinterpret_cast<overlapped_op*>(c.overlapped);
        const DWORD bytes = c.key == iocp_reactor::io_key ? c.bytes : static_cast<DWORD>(op->ov.InternalHigh);
        op->complete(op, win::io_error(op->ov), bytes);
    }
}

// port_drain: the port of a reactor whose thread ended while queued writes were in flight
// there, with the count of those writes. A write in flight holds bytes the writer took from its
// queue, which cancelling it would lose (a pipe write that has to wait for room is cancelled
// whole under Wine, none of its bytes read), and its reader may be the very thread that waits
// for the ending one (join): so the writes go on, and a thread of its own (drain_port) takes
// their packets, running each write's completion (which hands the room on to whoever waits for
// it), then closes the port and ends.
struct port_drain {
    win::completion_port port;
    std::atomic<long> left{0};
};

void* drain_port(void* context) noexcept
{
    std::unique_ptr<port_drain> d(static_cast<port_drain*>(context));
    while (d->left.load(std::memory_order_acquire) > 0) {
        win::completion packets[64];
        std::size_t n = 0;
        if (const DWORD e = d->port.wait(packets, 64, INFINITE, n); e != 0 && e != WAIT_TIMEOUT)
            fatal_errno(-EIO, "GetQueuedCompletionStatusEx failed on the port of an ended thread");
        for (std::size_t i = 0; i < n; ++i)
            take_leftover(packets[i]);
    }
    return nullptr;
}

} // namespace

iocp_reactor::~iocp_reactor()
{
    {
        std::lock_guard lk(registry_mutex());
        auto& reg = registry();
        reg.erase(std::remove(reg.begin(), reg.end(), this), reg.end());
    }
    // Queued writes in flight own memory that their packets free. On a thread that ends before
    // the process does, they go on and a drain thread takes their packets (port_drain). Where
    // none can be made, and as the process exits, they are cancelled and their packets taken
    // (a cancelled write completes promptly) before the port goes. Callbacks posted here
    // meanwhile are dropped with their packets: their thread is gone.
    if (::GetCurrentThreadId() != initial_thread && heap_ops_.load(std::memory_order_relaxed) > 0) {
        if (auto* d = new (std::nothrow) port_drain) {
            if (iocp::orphan_heap_operations(*this, d->left) > 0) {
                d->port = std::move(port_);
                // One of gipc's own threads (platform.hpp: the kind whose exit cannot deadlock
                // with a program's threads ending meanwhile).
                if (platform::start_quiet_thread(drain_port, d) == 0)
                    return;
                // No thread: back to this reactor, to be cancelled below.
                port_ = std::move(d->port);
                iocp::adopt_heap_operations(*this, d->left);
            }
            delete d;
        }
    }
    iocp::cancel_heap_operations(*this);
    for (int round = 0; round < 100; ++round) {
        const bool waiting = heap_ops_.load(std::memory_order_relaxed) > 0;
        win::completion packets[64];
        std::size_t n = 0;
        port_.wait(packets, 64, waiting ? 20 : 0, n);
        if (n == 0 && !waiting)
            break;
        for (std::size_t i = 0; i < n; ++i)
            take_leftover(packets[i]);
        due_.clear();
    }
}

void iocp_reactor::dispatch(const win::completion* packets, std::size_t n) noexcept
{
    for (std::size_t i = 0; i < n; ++i) {
        const win::completion& c = packets[i];
        switch (c.key) {
        case wake_key:
            // Cleared after the packet is taken: a wake() from now on posts again. Whatever an
            // earlier wake() announced was queued before it, and the dispatcher looks at its
            // queues after poll() returns.
            wake_pending_.store(false, std::memory_order_seq_cst);
            break;
        case io_key:
        case posted_key: {
            GIPC_ASSERT(c.overlapped != nullptr, "an operation's packet carries its OVERLAPPED");
            // A thread-pool wait posts no byte count: the kernel left it in the OVERLAPPED, as
            // it left the status (Internal, InternalHigh), before it signalled the event.
            auto* op = reinterpret_cast<overlapped_op*>(c.overlapped); // its first member
            const DWORD bytes = c.key == io_key ? c.bytes : static_cast<DWORD>(op->ov.InternalHigh);
            op->complete(op, win::io_error(op->ov), bytes);
            break;
        }
        case callback_key: {
            auto* p = reinterpret_cast<callback_packet*>(c.overlapped);
            run_soon(std::move(p->cb));
            delete p;
            break;
        }
        default:
            GIPC_ASSERT(false, "every packet of a reactor's port has one of its keys");
        }
    }
}

void iocp_reactor::poll(steady_time deadline) noexcept
{
    GIPC_ASSERT(on_owner_thread(), "only the owning thread's dispatcher polls");
    win::completion packets[64];
    std::size_t n = 0;
    const DWORD e = port_.wait(packets, 64, due_.empty() ? timeout_ms(deadline) : 0, n);
    // A wait on a port of this reactor's fails only by timing out: anything else would make
    // every poll return at once, forever, a busy loop that never dispatches a packet.
    if (e != 0 && e != WAIT_TIMEOUT)
        fatal_errno(-EIO, "GetQueuedCompletionStatusEx failed, the fiber reactor cannot wait");
    dispatch(packets, n);
    // Callbacks run after the packets, one round at a time: a callback that registers again
    // runs at the next poll, not in a loop here.
    if (!due_.empty()) {
        std::vector<std::shared_ptr<reactor_callback>> running;
        running.swap(due_);
        for (auto& cb : running)
            cb->on_ready();
    }
}

void iocp_reactor::wake() noexcept
{
    if (wake_pending_.exchange(true, std::memory_order_seq_cst))
        return;
    if (port_.post(wake_key) != 0)
        wake_pending_.store(false, std::memory_order_seq_cst); // out of memory: the next wake tries
}

void iocp_reactor::run_soon(std::shared_ptr<reactor_callback> cb) noexcept
{
    GIPC_ASSERT(on_owner_thread(), "only the owning thread queues its callbacks");
    try {
        due_.push_back(std::move(cb));
    } catch (const std::bad_alloc&) {
        // Nothing to do but drop it; the writer it wakes finds its room at its next write.
    }
}

bool iocp_reactor::post_callback(std::uint64_t reactor_id, std::shared_ptr<reactor_callback> cb) noexcept
{
    auto* p = new (std::nothrow) callback_packet;
    if (!p)
        return false;
    p->cb = std::move(cb);
    std::lock_guard lk(registry_mutex());
    for (iocp_reactor* r : registry()) {
        if (r->id_ == reactor_id) {
            if (r->port_.post(callback_key, 0, &p->ov) == 0)
                return true;
            break;
        }
    }
    delete p;
    return false;
}

void iocp_reactor::forget_everywhere(native_fd h) noexcept { iocp::forget_handle(static_cast<HANDLE>(h)); }

// ---- reactor.hpp, implemented by this backend ----------------------------------------------

namespace {
iocp_reactor& self(reactor* r) noexcept { return *static_cast<iocp_reactor*>(r); }
} // namespace

std::unique_ptr<reactor> reactor::create(int& err) noexcept { return iocp_reactor::create(err); }
std::uint64_t reactor::id() const noexcept { return static_cast<const iocp_reactor*>(this)->id(); }
void reactor::poll(steady_time deadline) noexcept { self(this).poll(deadline); }
void reactor::wake() noexcept { self(this).wake(); }
void reactor::forget_everywhere(native_fd fd) noexcept { iocp_reactor::forget_everywhere(fd); }
// No fork on Windows: nothing is inherited, nothing to discard or hold across a fork.
void reactor::discard_all_after_fork() noexcept {}
void reactor::lock_registry() noexcept {}
void reactor::unlock_registry() noexcept {}

} // namespace gipc::detail
