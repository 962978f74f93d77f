// SPDX-License-Identifier: MIT
// The operations of io_ops.hpp for the I/O completion port backend (iocp_reactor.hpp), on
// overlapped named pipes (named_pipe.hpp) and process handles. Each starts the overlapped
// operation with the caller's buffer and parks the calling fiber until its packet arrives at
// the reactor of the fiber's thread (gipc's algorithm), or at the relay's (relay.hpp) where the
// program's own algorithm runs.
//
// A handle can be associated with one completion port only, for its whole life, and gipc's
// handles may be used by fibers of any thread. So a handle is associated with the port of the
// first thread of gipc's algorithm that does I/O on it, its home: operations started by fibers
// of that thread complete through the port (no event, no thread-pool wait; one that succeeds at
// once queues no packet, FILE_SKIP_COMPLETION_PORT_ON_SUCCESS). An operation started anywhere
// else (another thread, or the relay serving a thread of the program's algorithm) gives its
// OVERLAPPED an event whose low bit is set, which keeps its completion off the home port, and a
// thread-pool wait on that event (RegisterWaitForSingleObject) posts the operation's packet to
// the caller's reactor. A child's exit comes the same way: a thread-pool wait on the process
// handle posts the packet.
//
// At the deadline an operation in flight is cancelled (CancelIoEx) and its packet still waited
// for: bytes it moved meanwhile are returned, and only an operation that moved none reports
// -ETIMEDOUT (the buffer rule of io_ops.hpp). forget_everywhere cancels what is in flight on a
// handle the same way, and those operations report -EBADF.
//
// queue_write copies what it takes into a buffer of its own and starts one overlapped write at a
// time; the completion of that write is the room call_when_queue_room and wait_queue_room wait
// for. It needs gipc's algorithm on the calling thread (the write's packet goes to that
// thread's reactor): elsewhere it returns -EOPNOTSUPP. (The pipe writer queues frames only on
// such threads; on the others it writes at once.)
//
// Sockets (overlapped, non-inheritable: win::make_socket) go the same way, keyed by their SOCKET
// as a HANDLE: receive and send are one WSARecv/WSASend, accept an AcceptEx into a new socket of
// the listener's family, connect a ConnectEx (the socket bound to its family's wildcard first).
// send_with_fds and receive_with_fds are POSIX-only (io_ops.hpp): not defined here.
//
// Not here: readiness waits on the program's sockets (wait_user_fd), in readiness.cpp.

#include "windows/win_errors.hpp"
#include "windows/fiber_completion.hpp"
#include "windows/iocp_reactor.hpp"
#include "windows/socket.hpp"

#include <mswsock.h>

#include "assert.hpp"
#include "relay.hpp"
#include "scheduler.hpp"

#include <boost/fiber/condition_variable.hpp>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

namespace gipc::detail {

namespace {

iocp_reactor& as_iocp(reactor& r) noexcept { return static_cast<iocp_reactor&>(r); }

using win::errno_of;

// pool_wait: a thread-pool wait on a waitable handle (an operation's event, a process) that
// posts one packet (posted_key, the operation's OVERLAPPED) to a reactor's port when the
// handle is signalled. stop() cancels it and waits for a callback that is running to return;
// it says whether the packet was posted, which the caller must then still take.
class pool_wait {
public:
    pool_wait() noexcept = default;
    pool_wait(const pool_wait&) = delete;
    pool_wait& operator=(const pool_wait&) = delete;
    ~pool_wait() { stop(); }

    DWORD start(HANDLE h, iocp_reactor& to, OVERLAPPED* ov) noexcept { return start(h, to.port().get(), ov); }
    // start on a port given by its handle (a drain thread's, which no reactor owns). A stopped
    // wait may start again.
    DWORD start(HANDLE h, HANDLE port, OVERLAPPED* ov) noexcept
    {
        port_ = port;
        ov_ = ov;
        fired_.store(false, std::memory_order_relaxed);
        if (!::RegisterWaitForSingleObject(&wait_, h, fire, this, INFINITE,
                                           WT_EXECUTEONLYONCE | WT_EXECUTEINWAITTHREAD)) {
            wait_ = nullptr;
            return ::GetLastError();
        }
        return 0;
    }

    // stop: true when the packet was posted (or is, by a callback stop waited for).
    bool stop() noexcept
    {
        if (wait_) {
            // INVALID_HANDLE_VALUE: wait for a running callback to return before going on.
            ::UnregisterWaitEx(wait_, INVALID_HANDLE_VALUE);
            wait_ = nullptr;
        }
        return fired_.load(std::memory_order_acquire);
    }

private:
    static void CALLBACK fire(void* context, BOOLEAN) noexcept
    {
        auto* w = static_cast<pool_wait*>(context);
        w->fired_.store(true, std::memory_order_release);
        ::PostQueuedCompletionStatus(w->port_, 0, iocp_reactor::posted_key, w->ov_);
    }

    HANDLE port_ = nullptr;
    OVERLAPPED* ov_ = nullptr;
    HANDLE wait_ = nullptr;
    std::atomic<bool> fired_{false};
};

// fiber_op: an operation a fiber waits for (read, write, wait_exit), on the fiber's stack or
// the heap (fiber_completion.hpp).
struct fiber_op final : fiber_completion {
    HANDLE handle = nullptr;
    bool is_exit = false;  // a wait for a process's exit (no I/O to cancel)
    bool forgotten = false; // set under the registry's lock by forget_handle
};

struct queue_write_op;

// handle_state: what the registry knows of one handle. Guarded by the registry's lock.
struct handle_state {
    std::uint64_t home = 0; // the reactor whose port the handle is associated with (0: none)
    bool home_tried = false; // an association was attempted (once per handle)
    std::vector<fiber_op*> ops; // fiber operations in flight
    // The queued write in flight (its memory is its own), the error of the latest one that
    // failed (reported by the next queue_write), and who waits for room.
    queue_write_op* writing = nullptr;
    int write_error = 0;
    std::vector<std::pair<std::uint64_t, std::shared_ptr<reactor_callback>>> room_callbacks;
    boost::fibers::condition_variable_any room;
    bool forgotten = false;
};

plain_mutex& registry_mutex()
{
    static plain_mutex* m = new plain_mutex;
    return *m;
}

std::unordered_map<HANDLE, std::shared_ptr<handle_state>>& registry()
{
    static auto* r = new std::unordered_map<HANDLE, std::shared_ptr<handle_state>>;
    return *r;
}

// The queued writes in flight in the process, whichever handle (registered or forgotten) and
// reactor they belong to: what an ending reactor orphans or cancels, and what it may complete.
// Guarded by the registry's lock.
std::vector<queue_write_op*>& writes_in_flight()
{
    static auto* w = new std::vector<queue_write_op*>;
    return *w;
}

// state_locked is h's state, made when new. The registry is held. Throws std::bad_alloc.
handle_state& state_locked(HANDLE h)
{
    auto& slot = registry()[h];
    if (!slot)
        slot = std::make_shared<handle_state>();
    return *slot;
}

// use_port_locked decides how an operation on h started for reactor `to` (by a fiber of its
// own thread when own) completes: true through the port (h's home is `to`, made so when h has
// no home yet), false through an event and a thread-pool wait.
bool use_port_locked(handle_state& st, HANDLE h, iocp_reactor& to, bool own) noexcept
{
    if (!own)
        return false;
    if (!st.home_tried) {
        st.home_tried = true;
        if (to.port().associate(h, iocp_reactor::io_key) == 0)
            st.home = to.id();
    }
    return st.home == to.id();
}

// queue_write_op: a queued write in flight, with its own copy of the bytes.
struct queue_write_op final : overlapped_op {
    std::shared_ptr<handle_state> state;
    HANDLE handle = nullptr;
    // The reactor whose port the packet goes to; nullptr once that reactor's thread ended and
    // left its port to a drain thread (orphan_heap_operations), which then counts the write's
    // end in *orphans. Guarded by the registry's lock.
    iocp_reactor* target = nullptr;
    std::atomic<long>* orphans = nullptr;
    HANDLE drain_port = nullptr; // the port *orphans belongs to, once orphaned
    std::unique_ptr<char[]> data;
    std::size_t size = 0; // bytes in data from offset on, not yet known to be written
    std::size_t offset = 0;
    win::unique_handle event; // set when the write completes through a thread-pool wait
    pool_wait watch;

    queue_write_op() noexcept { complete = &finish; }

    static void finish(overlapped_op* base, DWORD e, DWORD n) noexcept
    {
        static_cast<queue_write_op*>(base)->finish(e, n);
    }

    // restart_orphaned: a write the system cancelled when the thread that started it ended
    // (Windows does so for I/O that completes through an event, started by a thread whose
    // reactor is not the handle's home; a write through the port is treated alike, should a
    // system cancel it too) is started again by the drain thread, which runs this, with what is
    // left of it (under Wine such a cancelled pipe write moved none of its bytes), through an
    // event and a thread-pool wait that posts to the drain's port. True when the write goes on;
    // false when it has ended, e then its result.
    bool restart_orphaned(DWORD& e, DWORD moved) noexcept
    {
        bool orphaned = false, forgotten = false;
        {
            std::lock_guard lk(registry_mutex());
            orphaned = orphans != nullptr;
            forgotten = state->forgotten;
        }
        if (e != ERROR_OPERATION_ABORTED || !orphaned || forgotten || moved >= size)
            return false;
        if (!event) {
            event.reset(::CreateEventW(nullptr, TRUE, FALSE, nullptr));
            if (!event)
                return false;
        }
        offset += moved;
        size -= moved;
        ov = OVERLAPPED{};
        // The low bit keeps the completion off the port the handle may be associated with.
        ov.hEvent = reinterpret_cast<HANDLE>(reinterpret_cast<ULONG_PTR>(event.get()) | 1);
        ::ResetEvent(event.get());
        DWORD n = 0;
        if (::WriteFile(handle, data.get() + offset, static_cast<DWORD>(size), &n, &ov)) {
            e = 0; // taken at once (no packet: the event's low bit)
            return false;
        }
        e = ::GetLastError();
        if (e != ERROR_IO_PENDING)
            return false;
        if (watch.start(event.get(), drain_port, &ov) != 0) {
            DWORD done = 0; // no wait to post the packet: the drain thread waits for the write
            e = ::GetOverlappedResult(handle, &ov, &done, TRUE) ? 0 : ::GetLastError();
            return false;
        }
        return true;
    }

    void finish(DWORD e, DWORD moved) noexcept
    {
        watch.stop();
        if (restart_orphaned(e, moved))
            return;
        std::vector<std::pair<std::uint64_t, std::shared_ptr<reactor_callback>>> callbacks;
        iocp_reactor* to = nullptr;
        std::atomic<long>* orphaned = nullptr;
        {
            std::lock_guard lk(registry_mutex());
            state->writing = nullptr;
            auto& flying = writes_in_flight();
            flying.erase(std::remove(flying.begin(), flying.end(), this), flying.end());
            if (e != 0 && !state->forgotten)
                state->write_error = e == ERROR_OPERATION_ABORTED ? -EIO : errno_of(e);
            callbacks.swap(state->room_callbacks);
            to = target;
            orphaned = orphans;
        }
        state->room.notify_all();
        for (auto& [id, cb] : callbacks) {
            if (to && id == to->id())
                to->run_soon(std::move(cb));
            else
                iocp_reactor::post_callback(id, std::move(cb)); // dropped when that reactor is gone
        }
        if (to)
            to->finished();
        else
            orphaned->fetch_sub(1, std::memory_order_release);
        delete this;
    }
};

// target: where the calling fiber's operation completes, and the relay held for it.
struct target {
    iocp_reactor* reactor = nullptr;
    bool own = false; // gipc's algorithm runs on the calling thread, and reactor is its
    std::optional<relay_lease> relay;

    target()
    {
        if (reactor_algorithm* algo = thread_algorithm()) {
            algo->run_deferred(); // one of gipc's suspension points: no need to go by the dispatcher
            reactor = &as_iocp(algo->reactor());
            own = true;
        } else {
            relay.emplace();
            reactor = &as_iocp(relay->get());
        }
    }
};

// register_op registers op with h's state for forget_handle, and takes it out again.
void register_op(HANDLE h, fiber_op& op)
{
    std::lock_guard lk(registry_mutex());
    state_locked(h).ops.push_back(&op);
}

void unregister_op(HANDLE h, fiber_op& op) noexcept
{
    std::lock_guard lk(registry_mutex());
    auto it = registry().find(h);
    if (it == registry().end())
        return; // forgotten meanwhile
    auto& ops = it->second->ops;
    ops.erase(std::remove(ops.begin(), ops.end(), &op), ops.end());
}

// transfer is one overlapped ReadFile (reading) or WriteFile on h with one buffer, waited for
// as io_ops.hpp says. Returns the bytes moved, or the operation's Win32 error code as
// `error` (0 when it moved bytes), and whether it was cancelled (timed_out; forgotten).
struct transfer_result {
    DWORD bytes = 0;
    DWORD error = 0;
    bool timed_out = false;
    bool forgotten = false;
};

// overlapped_call starts one overlapped operation on h (a pipe or a socket) with start(ov, n),
// which returns 0 when the operation completed at once (n: the bytes it moved), ERROR_IO_PENDING
// when it goes on, or another Win32/Winsock error code, and waits for it as io_ops.hpp says.
template <class Start>
transfer_result overlapped_call(HANDLE h, steady_time deadline, Start&& start)
{
    target to;
    fiber_op op;
    op.handle = h;
    bool port = false;
    {
        std::lock_guard lk(registry_mutex());
        handle_state& st = state_locked(h);
        port = use_port_locked(st, h, *to.reactor, to.own);
        st.ops.push_back(&op);
    }
    struct unregister {
        HANDLE h;
        fiber_op& op;
        ~unregister() { unregister_op(h, op); }
    } unregistered{h, op};

    win::unique_handle event;
    if (!port) {
        event.reset(::CreateEventW(nullptr, TRUE, FALSE, nullptr));
        if (!event)
            return {0, ::GetLastError()};
        // The low bit keeps the completion off the port h may be associated with.
        op.ov.hEvent = reinterpret_cast<HANDLE>(reinterpret_cast<ULONG_PTR>(event.get()) | 1);
    }
    DWORD n = 0;
    if (const DWORD e = start(&op.ov, n); e == 0)
        return {n, 0}; // done at once: no packet (FILE_SKIP_COMPLETION_PORT_ON_SUCCESS, or the event's low bit)
    else if (e != ERROR_IO_PENDING)
        return {0, e};

    pool_wait watch;
    if (!port) {
        if (const DWORD e = watch.start(event.get(), *to.reactor, &op.ov); e != 0) {
            // No wait to post the packet: cancel, and wait for the operation on its event
            // (the buffer is the caller's until then).
            ::CancelIoEx(h, &op.ov);
            DWORD moved = 0;
            ::GetOverlappedResult(h, &op.ov, &moved, TRUE);
            return {moved, moved > 0 ? 0 : e};
        }
    }
    bool cancelled = false;
    if (!op.wait_done(deadline)) {
        // The deadline: cancel, then take the packet all the same. When the operation ended
        // first, CancelIoEx finds nothing (ERROR_NOT_FOUND) and its packet is on its way.
        ::CancelIoEx(h, &op.ov);
        cancelled = true;
        op.wait_done();
    }
    watch.stop();
    std::lock_guard lk(op.m);
    transfer_result r{op.bytes, op.error};
    if (op.error == ERROR_OPERATION_ABORTED) {
        std::lock_guard reg(registry_mutex());
        r.forgotten = op.forgotten;
        r.timed_out = cancelled && !op.forgotten;
        if (r.bytes > 0)
            r.error = 0; // bytes moved before the cancellation are the result
    }
    return r;
}

transfer_result transfer(bool reading, HANDLE h, void* data, DWORD size, steady_time deadline)
{
    return overlapped_call(h, deadline, [&](OVERLAPPED* ov, DWORD& n) -> DWORD {
        const BOOL ok = reading ? ::ReadFile(h, data, size, &n, ov) : ::WriteFile(h, data, size, &n, ov);
        return ok ? 0 : ::GetLastError();
    });
}

// first_slice: the first slice with room (reads and writes move one buffer at a time: an
// overlapped ReadFile/WriteFile takes one).
const io::slice* first_slice(const io::slice* slices, int count) noexcept
{
    GIPC_ASSERT(count == 1 || count == 2, "an operation moves one or two slices");
    for (int i = 0; i < count; ++i)
        if (slices[i].size > 0)
            return &slices[i];
    return nullptr;
}

DWORD clamp_size(std::size_t size) noexcept
{
    return static_cast<DWORD>(std::min<std::size_t>(size, 1u << 30));
}

} // namespace

namespace iocp {

void forget_handle(HANDLE h) noexcept
{
    std::shared_ptr<handle_state> st;
    {
        std::lock_guard lk(registry_mutex());
        auto it = registry().find(h);
        if (it == registry().end())
            return;
        st = std::move(it->second);
        registry().erase(it);
        st->forgotten = true;
        for (fiber_op* op : st->ops) {
            op->forgotten = true;
            if (!op->is_exit)
                ::CancelIoEx(h, &op->ov);
        }
        if (st->writing)
            ::CancelIoEx(h, &st->writing->ov);
        st->ops.clear();
    }
    st->room.notify_all();
}

void cancel_heap_operations(const iocp_reactor& r) noexcept
{
    std::lock_guard lk(registry_mutex());
    for (queue_write_op* w : writes_in_flight())
        if (w->target == &r)
            ::CancelIoEx(w->handle, &w->ov);
}

long orphan_heap_operations(const iocp_reactor& r, std::atomic<long>& orphans) noexcept
{
    std::lock_guard lk(registry_mutex());
    long n = 0;
    for (queue_write_op* w : writes_in_flight()) {
        if (w->target == &r) {
            w->target = nullptr;
            w->orphans = &orphans;
            w->drain_port = r.port().get();
            ++n;
        }
    }
    orphans.fetch_add(n, std::memory_order_relaxed);
    return n;
}

void adopt_heap_operations(iocp_reactor& r, std::atomic<long>& orphans) noexcept
{
    std::lock_guard lk(registry_mutex());
    for (queue_write_op* w : writes_in_flight()) {
        if (w->orphans == &orphans) {
            w->target = &r;
            w->orphans = nullptr;
            w->drain_port = nullptr;
        }
    }
}

bool is_heap_operation(const OVERLAPPED* ov) noexcept
{
    std::lock_guard lk(registry_mutex());
    for (queue_write_op* w : writes_in_flight())
        if (&w->ov == ov)
            return true;
    return false;
}

} // namespace iocp

namespace io {

ssize_t read(native_fd fd, const slice* slices, int count, steady_time deadline, read_hint*)
{
    const slice* s = first_slice(slices, count);
    if (!s)
        return 0;
    for (;;) {
        const transfer_result r = transfer(true, static_cast<HANDLE>(fd), s->data, clamp_size(s->size), deadline);
        if (r.forgotten)
            return -EBADF;
        if (r.timed_out)
            return -ETIMEDOUT;
        if (r.error == ERROR_BROKEN_PIPE || r.error == ERROR_PIPE_NOT_CONNECTED)
            return 0; // the write end is closed: the end of the stream
        if (r.error == ERROR_MORE_DATA)
            return static_cast<ssize_t>(r.bytes); // a message pipe's message, in parts
        if (r.error != 0)
            return errno_of(r.error);
        if (r.bytes > 0)
            return static_cast<ssize_t>(r.bytes);
        // A read of no bytes that succeeds (a writer wrote nothing) is no end of the stream:
        // read again.
    }
}

ssize_t write(native_fd fd, const slice* slices, int count, steady_time deadline, full_handler*)
{
    const slice* s = first_slice(slices, count);
    GIPC_ASSERT(s != nullptr, "a write moves at least one byte");
    const transfer_result r = transfer(false, static_cast<HANDLE>(fd), s->data, clamp_size(s->size), deadline);
    if (r.forgotten)
        return -EBADF;
    if (r.timed_out)
        return -ETIMEDOUT;
    if (r.error != 0)
        return errno_of(r.error);
    return r.bytes > 0 ? static_cast<ssize_t>(r.bytes) : -EIO;
}

ssize_t queue_write(native_fd fd, const void* data, std::size_t len, full_handler*) noexcept
{
    const auto h = static_cast<HANDLE>(fd);
    reactor_algorithm* algo = reactor_algorithm::current();
    if (!algo) {
        // No write starts here; the failure of one that a thread of gipc's algorithm started is
        // still reported.
        std::lock_guard lk(registry_mutex());
        auto it = registry().find(h);
        if (it != registry().end() && it->second->write_error != 0)
            return std::exchange(it->second->write_error, 0);
        return -EOPNOTSUPP;
    }
    iocp_reactor& to = as_iocp(algo->reactor());
    // One write of at most this much at a time: what a pipe's buffer holds many times over.
    constexpr std::size_t most = std::size_t{1} << 20;
    std::size_t done = 0;
    try {
        std::lock_guard lk(registry_mutex());
        auto& slot = registry()[h];
        if (!slot)
            slot = std::make_shared<handle_state>();
        handle_state& st = *slot;
        if (st.write_error != 0)
            return std::exchange(st.write_error, 0);
        if (st.writing)
            return 0;
        const bool port = use_port_locked(st, h, to, true);
        // Room for this write in the list of writes in flight, grown geometrically (reserving
        // one more each time would reallocate at every new write past the capacity).
        if (auto& flying = writes_in_flight(); flying.size() == flying.capacity())
            flying.reserve(std::max<std::size_t>(8, 2 * flying.capacity()));
        while (done < len) {
            const std::size_t take = std::min(len - done, most);
            auto op = std::make_unique<queue_write_op>();
            op->state = slot;
            op->handle = h;
            op->target = &to;
            op->data.reset(new char[take]);
            op->size = take;
            std::copy_n(static_cast<const char*>(data) + done, take, op->data.get());
            if (!port) {
                op->event.reset(::CreateEventW(nullptr, TRUE, FALSE, nullptr));
                if (!op->event)
                    return done > 0 ? static_cast<ssize_t>(done) : -ENOMEM;
                op->ov.hEvent = reinterpret_cast<HANDLE>(reinterpret_cast<ULONG_PTR>(op->event.get()) | 1);
            }
            DWORD n = 0;
            if (::WriteFile(h, op->data.get(), static_cast<DWORD>(take), &n, &op->ov)) {
                done += n; // taken at once: no packet comes
                if (n == 0)
                    break;
                continue;
            }
            const DWORD e = ::GetLastError();
            if (e != ERROR_IO_PENDING) {
                if (done > 0) {
                    st.write_error = errno_of(e);
                    break;
                }
                return errno_of(e);
            }
            if (!port) {
                if (const DWORD w = op->watch.start(op->event.get(), to, &op->ov); w != 0) {
                    // No wait to post the packet: the write goes on, but nothing would say
                    // when. Wait for it here (the thread, briefly: the pipe had room for none
                    // of it only if its reader is slow).
                    DWORD moved = 0;
                    ::GetOverlappedResult(h, &op->ov, &moved, TRUE);
                    done += moved;
                    break;
                }
            }
            writes_in_flight().push_back(op.get()); // reserved above: cannot throw here
            to.started();
            st.writing = op.release();
            done += take;
            break;
        }
    } catch (const std::bad_alloc&) {
        return done > 0 ? static_cast<ssize_t>(done) : -ENOMEM;
    }
    return static_cast<ssize_t>(done);
}

int call_when_queue_room(reactor& loop, native_fd fd, std::shared_ptr<reactor_callback> cb) noexcept
{
    iocp_reactor& r = as_iocp(loop);
    GIPC_ASSERT(r.on_owner_thread(), "only the owning thread registers callbacks");
    try {
        std::lock_guard lk(registry_mutex());
        handle_state& st = state_locked(static_cast<HANDLE>(fd));
        if (st.writing) {
            st.room_callbacks.emplace_back(r.id(), std::move(cb));
            return 0;
        }
    } catch (const std::bad_alloc&) {
        return -ENOMEM;
    }
    r.run_soon(std::move(cb)); // room now: the next poll says so
    return 0;
}

int wait_queue_room(native_fd fd, steady_time deadline)
{
    if (reactor_algorithm* algo = thread_algorithm())
        algo->run_deferred();
    std::unique_lock lk(registry_mutex());
    auto it = registry().find(static_cast<HANDLE>(fd));
    if (it == registry().end())
        return 0;
    std::shared_ptr<handle_state> st = it->second;
    while (st->writing && !st->forgotten) {
        if (st->room.wait_until(lk, deadline) == boost::fibers::cv_status::timeout)
            return st->writing && !st->forgotten ? -ETIMEDOUT : 0;
    }
    return st->forgotten ? -EBADF : 0;
}

int wait_exit(native_fd fd, steady_time deadline)
{
    const auto h = static_cast<HANDLE>(fd);
    if (::WaitForSingleObject(h, 0) == WAIT_OBJECT_0)
        return 0;
    target to;
    fiber_op op;
    op.handle = h;
    op.is_exit = true;
    register_op(h, op);
    struct unregister {
        HANDLE h;
        fiber_op& op;
        ~unregister() { unregister_op(h, op); }
    } unregistered{h, op};
    pool_wait watch;
    if (const DWORD e = watch.start(h, *to.reactor, &op.ov); e != 0)
        return errno_of(e);
    // A forgotten process handle interrupts the wait: forget_handle only marks op (a packet
    // of its own would be a second one for op, which could come after op is gone), so the
    // wait looks at the mark in steps of 50 ms.
    for (;;) {
        const auto step = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
        if (op.wait_done(std::min(deadline, step)))
            return 0;
        bool forgotten;
        {
            std::lock_guard lk(registry_mutex());
            forgotten = op.forgotten;
        }
        if (forgotten || std::chrono::steady_clock::now() >= deadline) {
            if (watch.stop())
                op.wait_done(); // posted meanwhile: take the packet, op is on this stack
            if (forgotten)
                return -EBADF;
            return op.done ? 0 : -ETIMEDOUT;
        }
    }
}

// ---- sockets ---------------------------------------------------------------------------------

namespace {

SOCKET as_socket(native_socket s) noexcept { return static_cast<SOCKET>(s); }
HANDLE socket_handle(SOCKET s) noexcept { return reinterpret_cast<HANDLE>(s); }

// socket_result is what receive and send return for one transfer.
ssize_t socket_result(const transfer_result& r) noexcept
{
    if (r.forgotten)
        return -EBADF;
    if (r.timed_out)
        return -ETIMEDOUT;
    if (r.error != 0)
        return win::socket_errno(r.error);
    return static_cast<ssize_t>(r.bytes);
}

} // namespace

ssize_t receive(native_socket fd, void* data, std::size_t size, steady_time deadline, stream_hint*)
{
    const SOCKET s = as_socket(fd);
    WSABUF buf{static_cast<ULONG>(clamp_size(size)), static_cast<char*>(data)};
    DWORD flags = 0; // read by WSARecv at the call; what it would report back is not asked for
    const transfer_result r = overlapped_call(socket_handle(s), deadline, [&](OVERLAPPED* ov, DWORD& n) -> DWORD {
        flags = 0;
        return ::WSARecv(s, &buf, 1, &n, &flags, ov, nullptr) == 0 ? 0 : static_cast<DWORD>(::WSAGetLastError());
    });
    return socket_result(r); // 0 bytes without an error: the peer shut its side down
}

ssize_t send(native_socket fd, const void* data, std::size_t size, steady_time deadline, stream_hint*)
{
    const SOCKET s = as_socket(fd);
    WSABUF buf{static_cast<ULONG>(clamp_size(size)), const_cast<char*>(static_cast<const char*>(data))};
    const transfer_result r = overlapped_call(socket_handle(s), deadline, [&](OVERLAPPED* ov, DWORD& n) -> DWORD {
        return ::WSASend(s, &buf, 1, &n, 0, ov, nullptr) == 0 ? 0 : static_cast<DWORD>(::WSAGetLastError());
    });
    const ssize_t n = socket_result(r);
    return n == 0 ? -EIO : n;
}

native_socket accept(native_socket fd, steady_time deadline)
{
    const SOCKET listener = as_socket(fd);
    const int family = win::socket_family(listener);
    if (family < 0)
        return win::socket_errno(static_cast<DWORD>(-family));
    LPFN_ACCEPTEX accept_ex = nullptr;
    if (const int e = win::extension_function(listener, WSAID_ACCEPTEX, reinterpret_cast<void**>(&accept_ex)))
        return win::socket_errno(static_cast<DWORD>(e));
    for (;;) {
        win::unique_socket conn;
        if (const int e = win::make_socket(family, SOCK_STREAM, 0, conn))
            return win::socket_errno(static_cast<DWORD>(e));
        // AcceptEx writes both addresses, each with 16 bytes more than the largest address.
        char addresses[2 * (sizeof(sockaddr_storage) + 16)];
        const transfer_result r = overlapped_call(socket_handle(listener), deadline, [&](OVERLAPPED* ov, DWORD& n) -> DWORD {
            return accept_ex(listener, conn.get(), addresses, 0, sizeof(sockaddr_storage) + 16,
                             sizeof(sockaddr_storage) + 16, &n, ov)
                       ? 0
                       : static_cast<DWORD>(::WSAGetLastError());
        });
        if (r.forgotten)
            return -EBADF;
        if (r.timed_out)
            return -ETIMEDOUT;
        const int err = r.error != 0 ? win::socket_errno(r.error) : 0;
        if (err == -ECONNRESET)
            continue; // the peer gave up while its connection was queued
        if (err != 0)
            return err;
        // The accepted socket takes the listener's properties (getsockname, shutdown... work).
        ::setsockopt(conn.get(), SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, reinterpret_cast<const char*>(&listener),
                     sizeof listener);
        if (family == AF_INET || family == AF_INET6) {
            const BOOL one = TRUE;
            ::setsockopt(conn.get(), IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<const char*>(&one), sizeof one);
        }
        return static_cast<native_socket>(conn.release());
    }
}

int connect(native_socket fd, const ::sockaddr* addr, unsigned addr_len, steady_time deadline, stream_hint*)
{
    const SOCKET s = as_socket(fd);
    // ConnectEx needs a bound socket: the wildcard address of addr's family, any port.
    sockaddr_storage local{};
    local.ss_family = addr->sa_family;
    const int local_len = addr->sa_family == AF_INET6 ? static_cast<int>(sizeof(sockaddr_in6))
                                                      : static_cast<int>(sizeof(sockaddr_in));
    if (::bind(s, reinterpret_cast<const sockaddr*>(&local), local_len) != 0)
        return win::socket_errno(static_cast<DWORD>(::WSAGetLastError()));
    LPFN_CONNECTEX connect_ex = nullptr;
    if (const int e = win::extension_function(s, WSAID_CONNECTEX, reinterpret_cast<void**>(&connect_ex)))
        return win::socket_errno(static_cast<DWORD>(e));
    const transfer_result r = overlapped_call(socket_handle(s), deadline, [&](OVERLAPPED* ov, DWORD& n) -> DWORD {
        return connect_ex(s, addr, static_cast<int>(addr_len), nullptr, 0, &n, ov)
                   ? 0
                   : static_cast<DWORD>(::WSAGetLastError());
    });
    if (r.forgotten)
        return -EBADF;
    if (r.timed_out)
        return -ETIMEDOUT;
    if (r.error != 0)
        return win::socket_errno(r.error);
    // The connected socket takes its state (getpeername, shutdown... work).
    ::setsockopt(s, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, nullptr, 0);
    return 0;
}

} // namespace io

} // namespace gipc::detail
