// SPDX-License-Identifier: MIT
#include "byte_order.hpp"
#include "errors.hpp"
#include "pipe_end.hpp"
#include "pipe_os.hpp"
#include "platform.hpp"

#include <gipc/detail/test_support.hpp>
#include <gipc/pipe.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include <boost/fiber/operations.hpp>

namespace gipc::detail {

namespace {

// (Frames up to write_end::direct_threshold are queued and coalesced; larger ones are written
// straight from the caller's buffer, after the queue, so they are never copied.)
// (A queue of write_end::flush_at bytes is written at once, without waiting for the fiber to
// suspend.)
// put() blocks while the pipe is full and the queue is over this bound.
constexpr std::size_t queue_bound = 256 * 1024;
// Read buffers start here and grow, up to read_end::read_buffer_max, while reads keep filling
// them.
constexpr std::size_t read_buffer_min = 64 * 1024;
// Payloads from this size on are read straight into a string of their own, which get_bytes
// hands out without copying; only a little of what follows is read along into the buffer.
constexpr std::size_t large_frame = 32 * 1024;
constexpr std::size_t large_read_ahead = 4096;
// A large frame's string starts at most this big and doubles as its payload arrives, so that a
// header alone (a peer that announces a gigabyte and sends nothing) costs no memory.
constexpr std::size_t large_initial = 1024 * 1024;

std::string oversize_message(std::size_t size, std::size_t max)
{
    return "gipc: message of " + std::to_string(size) + " bytes is over max_message_size (" +
           std::to_string(max) + ")";
}

} // namespace

// ---- registry ------------------------------------------------------------------------------

plain_mutex& end_registry_mutex() noexcept
{
    static plain_mutex m;
    return m;
}

std::unordered_set<end_base*>& end_registry() noexcept
{
    static std::unordered_set<end_base*> r;
    return r;
}

void register_end(end_base* end)
{
    std::lock_guard lk(end_registry_mutex());
    end_registry().insert(end);
}

void unregister_end(end_base* end) noexcept
{
    std::lock_guard lk(end_registry_mutex());
    end_registry().erase(end);
}

std::size_t open_handle_count() noexcept
{
    std::lock_guard lk(end_registry_mutex());
    return end_registry().size();
}

// ---- end_base ------------------------------------------------------------------------------

end_base::end_base(unique_native_fd fd, const char* kind, std::size_t max_message_size) noexcept
    : fd_(std::move(fd)), kind_(kind), max_size_(max_message_size)
{
}

end_base::~end_base()
{
    if (registered_)
        unregister_end(this);
}

std::string end_base::name() const
{
    return std::string(kind_) + " (" + pipe_os::describe(fd_.get()) + ")";
}

std::string end_base::closed_message(const char* what) const
{
    std::string msg = "gipc: " + std::string(kind_) + " " + what;
    if (abandoned_in_child_)
        msg += ": it was not transferred to this child process (a handle is transferred only when "
               "passed to start_process as an argument; one captured by the target is closed in "
               "the child)";
    return msg;
}

std::uint32_t end_base::settled_state() const noexcept
{
    std::uint32_t s = state_.load(std::memory_order_acquire);
    while (s & closing_bit) {
        std::this_thread::yield(); // another thread is closing a duplex, a few instructions away
        s = state_.load(std::memory_order_acquire);
    }
    return s;
}

void end_base::begin_op_slow()
{
    std::uint32_t s = settled_state();
    for (;;) {
        if (s & closed_bit)
            throw closed_error(closed_message("is closed"));
        GIPC_ASSERT((s & count_mask) < count_mask, "the operation count stays below the state bits");
        if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel))
            return;
        if (s & closing_bit)
            s = settled_state();
    }
}

end_base::close_check end_base::try_set_idle_state(std::uint32_t to) noexcept
{
    std::uint32_t s = state_.load(std::memory_order_acquire);
    for (;;) {
        if ((s & ~queue_bits) == 0) {
            if (state_.compare_exchange_weak(s, s | to, std::memory_order_acq_rel, std::memory_order_acquire))
                return close_check::ok;
            continue;
        }
        if (!(s & closing_bit))
            return (s & closed_bit) ? close_check::already_closed : close_check::in_use;
        s = settled_state();
    }
}

end_base::close_check end_base::try_mark_closed() noexcept { return try_set_idle_state(closed_bit); }
end_base::close_check end_base::try_reserve_close() noexcept { return try_set_idle_state(closing_bit); }

void end_base::forget_from_everywhere() noexcept
{
    if (registered_) {
        unregister_end(this);
        registered_ = false;
    }
    if (fd_)
        forget_fd(fd_.get());
}

void end_base::release_fd() noexcept
{
    forget_from_everywhere();
    fd_.reset();
}

void end_base::abandon_after_fork() noexcept
{
    state_.store(closed_bit, std::memory_order_release);
    abandoned_in_child_ = true;
    registered_ = false; // the child clears the registry itself
    fd_.reset();
}

op_guard::op_guard(end_base* end) : end_(end)
{
    if (!end)
        throw closed_error("gipc: handle is closed");
    end->begin_op();
}

// ---- locked_end, byte_queue -----------------------------------------------------------------

bool locked_end::lock_op_slow(steady_time deadline)
{
    begin_op(); // closed_error; waits out another thread's reservation
    if (take_lock_bit(false))
        return true;
    try {
        std::unique_lock lk(wait_mutex_);
        for (;;) {
            if (take_lock_bit(true))
                return true;
            if (deadline == steady_time::max()) {
                waiters_.wait(lk);
            } else if (waiters_.wait_until(lk, deadline) == boost::fibers::cv_status::timeout) {
                // A last try: the unlock may have come with the deadline. A failed one leaves
                // waiting_bit, which only costs the holder's unlock a notify.
                if (take_lock_bit(true))
                    return true;
                lk.unlock();
                end_op();
                return false;
            }
        }
    } catch (...) {
        end_op();
        throw;
    }
}

void locked_end::wake_one() noexcept
{
    // Taking wait_mutex_ orders the notify after the wait of a fiber that set waiting_bit: it
    // holds wait_mutex_ from then until it waits. Boost.Fiber's mutex throws only for misuse
    // (a fiber locking it twice), which never happens here.
    std::lock_guard lk(wait_mutex_);
    waiters_.notify_one();
}

void byte_queue::grow(std::size_t n)
{
    const std::size_t cap = std::max({2 * cap_, size_ + n, std::size_t{4096}});
    std::unique_ptr<char[]> bigger(new char[cap]);
    if (size_)
        std::memcpy(bigger.get(), data_.get(), size_);
    data_ = std::move(bigger);
    cap_ = cap;
}

// ---- read_end ------------------------------------------------------------------------------

read_end::read_end(unique_native_fd fd, std::size_t max_message_size) noexcept
    : locked_end(std::move(fd), "reader", max_message_size)
{
}

std::string read_end::unread_bytes() const
{
    std::string bytes;
    // A large frame being assembled (a get() timed out in it) goes first, header included; a
    // whole one was returned already (released by the next get()).
    if (large_active_ && large_filled_ < large_len_) {
        const char header[4] = {char(large_len_ >> 24), char(large_len_ >> 16), char(large_len_ >> 8),
                                char(large_len_)};
        bytes.append(header, 4);
        bytes.append(large_.data(), large_filled_);
    }
    if (tail_ > head_)
        bytes.append(buf_.get() + head_, tail_ - head_);
    return bytes;
}

bool read_end::frame_ready() const noexcept
{
    if (!poison_.empty() || large_active_ || tail_ - head_ < 4)
        return false;
    return tail_ - head_ >= 4 + std::size_t{load_be32(buf_.get() + head_)};
}

void read_end::preload(std::string_view bytes)
{
    if (bytes.empty())
        return;
    reserve_for(bytes.size());
    std::memcpy(buf_.get() + tail_, bytes.data(), bytes.size());
    tail_ += bytes.size();
}

void read_end::reserve_for(std::size_t needed)
{
    if (cap_ - head_ >= needed)
        return;
    const std::size_t have = tail_ - head_;
    if (cap_ >= needed) {
        // Enough room once the unread bytes move to the front.
        std::memmove(buf_.get(), buf_.get() + head_, have);
    } else {
        std::size_t cap = std::max(needed, read_buffer_min);
        std::unique_ptr<char[]> bigger(new char[cap]);
        if (have)
            std::memcpy(bigger.get(), buf_.get() + head_, have);
        buf_ = std::move(bigger);
        cap_ = cap;
    }
    head_ = 0;
    tail_ = have;
}

std::pair<const char*, std::size_t> read_end::next_frame(steady_time deadline, std::string* take)
{
    if (!poison_.empty())
        throw decode_error(poison_);
    release_returned_frame();
    for (;;) {
        if (large_active_) {
            read_large(deadline); // throws on timeout, EOF or error; keeps what it read
            if (take) {
                *take = std::move(large_);
                large_.clear();
                large_active_ = false;
                return {nullptr, take->size()};
            }
            return {large_.data(), large_.size()};
        }
        const std::size_t have = tail_ - head_;
        std::size_t needed = 4;
        if (have >= 4) {
            const std::uint32_t len = load_be32(buf_.get() + head_);
            if (len > max_size_) {
                poison_ = "gipc: " + name() + ": frame header announces " + std::to_string(len) +
                          " bytes, over max_message_size (" + std::to_string(max_size_) +
                          "); the stream is unusable";
                throw decode_error(poison_);
            }
            needed = 4 + std::size_t{len};
            if (have >= needed) {
                const char* payload = buf_.get() + head_ + 4;
                head_ += needed;
                if (head_ == tail_)
                    head_ = tail_ = 0;
                return {payload, len};
            }
            if (len >= large_frame && !eof_) {
                // Move what arrived of the payload into a string of its own; read the rest
                // straight into it.
                large_len_ = len;
                large_filled_ = have - 4;
                large_.resize(std::min<std::size_t>(len, std::max(large_initial, large_filled_)));
                std::memcpy(large_.data(), buf_.get() + head_ + 4, large_filled_);
                head_ = tail_ = 0;
                large_active_ = true;
                continue;
            }
        }
        if (eof_) {
            if (have == 0)
                throw eof_error("gipc: " + name() + ": end of stream: every write end is closed");
            throw eof_error("gipc: " + name() + ": end of stream: a message was cut short (" +
                            std::to_string(have) + " of " + std::to_string(needed) + " bytes arrived)");
        }
        // Read as much as is there: many frames per read.
        std::size_t want = std::max(needed, std::min(std::max(cap_, read_buffer_min), read_buffer_max));
        reserve_for(want);
        const io::slice into{buf_.get() + tail_, cap_ - tail_};
        const std::size_t n = read_some(&into, 1, deadline, &hint_);
        tail_ += n;
        if (n > 0) {
            if (tail_ == cap_ && cap_ < read_buffer_max && head_ == 0) {
                // The reader is behind: grow so that later reads take more at once.
                reserve_for(std::min(cap_ * 2, read_buffer_max));
            }
        }
    }
}

std::size_t read_end::read_some(const io::slice* slices, int count, steady_time deadline, io::read_hint* hint)
{
    const ssize_t n = io::read(fd_.get(), slices, count, deadline, hint);
    if (n == -ETIMEDOUT)
        throw timeout_error("gipc: " + name() + ": get() timed out");
    if (n < 0)
        throw_errno(static_cast<int>(n), "gipc: read from pipe");
    if (n == 0)
        eof_ = true;
    return static_cast<std::size_t>(n);
}

void read_end::release_returned_frame_slow() noexcept
{
    if (large_active_ && large_filled_ == large_len_) {
        // The large frame returned last is done with: its memory goes now, not when the next
        // one comes (a reader keeps at most read_buffer_max bytes once it returned a message).
        large_active_ = false;
        std::string().swap(large_);
    }
    if (head_ == tail_ && cap_ > read_buffer_max) {
        buf_.reset();
        cap_ = head_ = tail_ = 0;
    }
}

void read_end::read_large(steady_time deadline)
{
    // The buffer is empty while a large frame is assembled; what follows the frame lands in
    // it, at most large_read_ahead bytes per read.
    reserve_for(large_read_ahead);
    while (large_filled_ < large_len_) {
        if (eof_)
            throw eof_error("gipc: " + name() + ": end of stream: a message was cut short (" +
                            std::to_string(large_filled_ + 4) + " of " + std::to_string(large_len_ + 4) +
                            " bytes arrived)");
        if (large_filled_ == large_.size())
            large_.resize(std::min(large_len_, 2 * large_.size()));
        const std::size_t rest = large_.size() - large_filled_;
        // Bytes past the frame go to the buffer, but only once the string spans the frame.
        const std::size_t ahead = large_.size() == large_len_ ? std::min(large_read_ahead, cap_ - tail_) : 0;
        const io::slice into[2] = {{large_.data() + large_filled_, rest}, {buf_.get() + tail_, ahead}};
        // No read_hint: next_frame's is about its own reads, and these never wait first.
        const std::size_t got = read_some(into, ahead ? 2 : 1, deadline, nullptr);
        large_filled_ += std::min(got, rest);
        if (got > rest)
            tail_ += got - rest;
    }
}

void read_end::close()
{
    release_fd();
    buf_.reset();
    cap_ = head_ = tail_ = 0;
    large_.clear();
    large_.shrink_to_fit();
    large_active_ = false;
}

void read_end::abandon_after_fork() noexcept
{
    end_base::abandon_after_fork();
}

// ---- write_end -----------------------------------------------------------------------------

write_end::write_end(unique_native_fd fd, std::size_t max_message_size) noexcept
    : locked_end(std::move(fd), "writer", max_message_size)
{
    const int size = pipe_os::pipe_size(fd_.get());
    pipe_size_ = size > 0 ? size : 65536;
}

bool write_end::grow_pipe_locked() noexcept
{
    if (grow_refused_ || pipe_size_ >= pipe_os::pipe_max_size())
        return false;
    // Grow on demand only: pipe buffers are charged to the user, and an unprivileged user's
    // pipes past the soft limit may not grow at all (EPERM), which is fine.
    int r = pipe_os::grow_pipe(fd_.get(), pipe_size_ * 4);
    if (r <= pipe_size_) {
        grow_refused_ = true;
        return false;
    }
    pipe_size_ = r;
    return true;
}

bool write_end::pipe_grower::on_full() noexcept
{
    if (lock_held_) {
        w_.qlock_.assert_held();
        return w_.grow_pipe_locked();
    }
    queue_guard lk(w_.qlock_);
    return w_.grow_pipe_locked();
}

std::size_t write_end::write_queued() noexcept
{
    if (qhead_ < q_.size()) {
        pipe_grower grow(*this, true);
        const ssize_t n = io::queue_write(fd_.get(), q_.data() + qhead_, q_.size() - qhead_, &grow);
        if (n == -EOPNOTSUPP) {
            // The backend writes no queue from this thread (Windows, on a thread of the
            // program's own algorithm): the caller writes it with direct writes
            // (write_queue_direct).
            direct_only_ = true;
            return q_.size() - qhead_;
        }
        if (n < 0) {
            // A pipe error drops what is queued: it can never be delivered.
            error_ = static_cast<int>(n);
            q_.clear();
            qhead_ = 0;
            return 0;
        }
        qhead_ += static_cast<std::size_t>(n);
        if (qhead_ < q_.size())
            return q_.size() - qhead_;
    }
    q_.clear();
    qhead_ = 0;
    return 0;
}

// ---- writers whose thread ended ------------------------------------------------------------
//
// A writer that finds its pipe full registers a writable callback with the calling thread's
// reactor (after_stall), which writes the queue out as the reader makes room. A thread that ends
// destroys its reactor, and the callback with it: what the thread queued would then wait for
// the next call on the writer, which may never come. So every thread remembers the writers that
// stalled on its reactor, and when it ends, those still stalled there are adopted by a helper
// thread with a reactor of its own, which carries on until none is stalled on it, then ends.

namespace {

// thread_ending: the calling thread is running its thread-local destructors. A trivially
// destructible thread_local, so that it can be read at any point of the thread's exit.
thread_local bool thread_ending = false;

// The helper thread's state. Never destroyed: the detached thread may use it while the process
// exits.
struct orphan_helper {
    mutex m;
    std::vector<std::shared_ptr<write_end>> pending GIPC_GUARDED_BY(m); // adopted, not yet taken by the thread
    bool running GIPC_GUARDED_BY(m) = false;
    unsigned long pid GIPC_GUARDED_BY(m) = 0; // the process the thread runs in (a forked child has no helper thread)
};

orphan_helper& helper() noexcept
{
    static orphan_helper* h = new orphan_helper;
    return *h;
}

} // namespace

#ifndef _WIN32
std::mutex& orphan_writers_mutex() noexcept { return helper().m.native(); }
#endif

namespace {

// The helper thread looks for new writers and for the end of its work this often; the queues
// themselves are written by its reactor as soon as their pipes take data.
constexpr std::chrono::milliseconds helper_period{10};

void run_helper() noexcept
{
    orphan_helper& h = helper();
    std::vector<std::shared_ptr<write_end>> adopted;
    std::uint64_t id = 0;
    try {
        id = installed_algorithm().reactor().id();
    } catch (...) {
        std::vector<std::shared_ptr<write_end>> dropped; // destroyed after h.m is released
        lock_guard lk(h.m);
        dropped.swap(h.pending); // no reactor: nothing can be done for them
        h.running = false;
        return;
    }
    for (;;) {
        std::vector<std::shared_ptr<write_end>> fresh;
        {
            lock_guard lk(h.m);
            fresh.swap(h.pending);
        }
        for (auto& w : fresh) {
            w->on_writable(); // writes what fits; registers with this thread's reactor if full
            adopted.push_back(std::move(w));
        }
        std::erase_if(adopted, [id](const std::shared_ptr<write_end>& w) { return !w->stalled_on(id); });
        if (adopted.empty()) {
            lock_guard lk(h.m);
            if (h.pending.empty()) {
                h.running = false;
                return;
            }
            continue;
        }
        boost::this_fiber::sleep_for(helper_period); // the reactor runs the callbacks meanwhile
    }
}

// adopt gives w to the helper thread, starting it if needed. Callable from a deferred task and
// with w's qlock_ held: takes only the helper's mutex, never a fiber primitive.
void adopt(std::shared_ptr<write_end> w) noexcept
{
    orphan_helper& h = helper();
    // Writers dropped here are destroyed after h.m is released (closing one takes the registry
    // of open ends, which comes before h.m in the lock order of fork).
    std::vector<std::shared_ptr<write_end>> inherited, dropped;
    lock_guard lk(h.m);
    if (h.pid != pipe_os::process_id()) {
        // A forked child: the writers listed belong to the parent's helper thread, which the
        // child does not have (its copies of them were closed or keep no queue).
        inherited.swap(h.pending);
        h.running = false;
    }
    try {
        h.pending.push_back(std::move(w));
    } catch (...) {
        return; // no memory: the frames wait for the next call on the writer, as without the helper
    }
    if (h.running && h.pid == pipe_os::process_id())
        return;
    // One of gipc's own threads (platform.hpp): it blocks the process's signals, and on Windows
    // ends without deadlocking with the program's threads.
    const int e = platform::start_quiet_thread(
        [](void*) -> void* {
            run_helper();
            return nullptr;
        },
        nullptr);
    if (e != 0) {
        // No thread: the frames wait for the next call on the writer, as they would without
        // the helper.
        dropped.swap(h.pending);
        h.running = false;
        return;
    }
    h.running = true;
    h.pid = pipe_os::process_id();
}

// stalled_writers: the writers that stalled on this thread's reactor. Its destructor, at the
// thread's exit, hands those still stalled there to the helper thread. Not on the main thread,
// whose thread-local destructors run when the process exits.
class stalled_writers {
public:
    void add(const std::shared_ptr<write_end>& w, std::uint64_t reactor_id) noexcept
    {
        try {
            if (writers_.size() >= prune_at_) {
                std::erase_if(writers_, [](const auto& e) { return e.first.expired(); });
                prune_at_ = std::max<std::size_t>(16, 2 * writers_.size());
            }
            writers_.emplace_back(w, reactor_id);
        } catch (...) {
            // Out of memory: this writer waits for the next call on it if the thread ends.
        }
    }

    ~stalled_writers()
    {
        thread_ending = true;
        if (pipe_os::on_main_thread())
            return;
        for (auto& [weak, id] : writers_)
            if (auto w = weak.lock())
                w->hand_over_if_stalled_on(id);
    }

private:
    std::vector<std::pair<std::weak_ptr<write_end>, std::uint64_t>> writers_;
    std::size_t prune_at_ = 16;
};

} // namespace

bool write_end::stalled_on(std::uint64_t reactor_id) noexcept
{
    queue_guard lk(qlock_);
    return stalled_on_ == reactor_id && fd_ && !closed();
}

void write_end::hand_over_if_stalled_on(std::uint64_t reactor_id) noexcept
{
    {
        queue_guard lk(qlock_);
        if (stalled_on_ != reactor_id || !fd_ || closed())
            return;
        stalled_on_ = 0; // the reactor that held the callback is going away
    }
    adopt(shared_from_this());
}

void write_end::after_stall() noexcept
{
    // Called with qlock_ held, on the calling thread, whose reactor then holds the callback.
    reactor_algorithm* algo = reactor_algorithm::current();
    if (!algo)
        return;
    if (thread_ending) {
        // The thread's reactor is about to go, or gone, with what it holds.
        if (!pipe_os::on_main_thread())
            adopt(shared_from_this());
        return;
    }
    reactor& loop = algo->reactor();
    if (stalled_on_ == loop.id())
        return;
    if (io::call_when_queue_room(loop, fd_.get(), shared_from_this()) == 0) {
        stalled_on_ = loop.id();
        if (pipe_os::thread_exit_destroys_locals()) {
            thread_local stalled_writers stalled;
            stalled.add(shared_from_this(), loop.id());
        }
    }
}

void write_end::run_deferred() noexcept
{
    queued_on_.store(nullptr, std::memory_order_relaxed);
    queue_guard lk(qlock_);
    if (!fd_ || closed())
        return;
    if (write_queued() > 0)
        after_stall();
}

void write_end::on_ready() noexcept { on_writable(); }

void write_end::on_writable() noexcept
{
    queue_guard lk(qlock_);
    stalled_on_ = 0;
    if (!fd_ || closed())
        return;
    if (write_queued() > 0)
        after_stall();
}

void write_end::throw_pending()
{
    int err;
    {
        queue_guard lk(qlock_);
        err = std::exchange(error_, 0);
    }
    if (err)
        throw_errno(err, "gipc: write to pipe");
}

bool write_end::write_queued_or_direct(std::size_t& left) noexcept
{
    queue_guard lk(qlock_);
    direct_only_ = false;
    left = write_queued();
    return std::exchange(direct_only_, false);
}

void write_end::write_queue_direct()
{
    // A queued write that a thread of gipc's algorithm left in flight goes first (its failure,
    // if it failed, is thrown); then what is queued, taken out of the queue, from this fiber.
    if (const int w = io::wait_queue_room(fd_.get(), steady_time::max()); w != 0)
        throw_errno(w, "gipc: wait for pipe");
    if (const int e = pipe_os::settle_queue(fd_.get()); e != 0)
        throw_errno(e, "gipc: write to pipe");
    std::string bytes;
    {
        queue_guard lk(qlock_);
        bytes.assign(q_.data() + qhead_, q_.size() - qhead_);
        q_.clear();
        qhead_ = 0;
    }
    if (!bytes.empty()) {
        const io::slice from{bytes.data(), bytes.size()};
        write_all_direct(&from, 1);
    }
}

void write_end::flush_blocking()
{
    for (;;) {
        std::size_t left;
        const bool direct = write_queued_or_direct(left);
        throw_pending();
        if (direct) {
            write_queue_direct();
            continue;
        }
        if (left == 0) {
            if (const int e = pipe_os::settle_queue(fd_.get()); e != 0)
                throw_errno(e, "gipc: write to pipe");
            return;
        }
        const int w = io::wait_queue_room(fd_.get(), steady_time::max());
        if (w != 0)
            throw_errno(w, "gipc: wait for pipe");
    }
}

void write_end::put_large_frame(frame_builder& frame)
{
    const std::size_t size = frame.size();
    // The frame lives in this thread's scratch builder, which another fiber of the thread packs
    // its own frame into as soon as this one suspends: take it over before anything here can
    // suspend (flush_blocking below waits while the pipe is full), and before anything can
    // throw, so that a failed put leaves the thread no large buffer.
    const std::unique_ptr<char[]> owned = frame.take();
    throw_pending();
    flush_blocking();
    const io::slice from{owned.get(), size};
    write_all_direct(&from, 1);
}

void write_end::queue_frame(std::string_view head, std::string_view body)
{
    // One lock for the whole of it: an error an earlier write of the queue met is thrown
    // instead of queuing the frame (as throw_pending would), and one this frame's write meets
    // is thrown after it.
    std::size_t queued = 0;
    int err;
    {
        queue_guard lk(qlock_);
        err = std::exchange(error_, 0);
        if (err == 0) {
            q_.append(head.data(), head.size());
            q_.append(body.data(), body.size());
            queued = q_.size() - qhead_;
            if (queued >= flush_at && stalled_on_ == 0) {
                queued = write_queued();
                err = std::exchange(error_, 0);
            }
        }
    }
    if (err)
        throw_errno(err, "gipc: write to pipe");
    if (queued >= queue_bound) {
        flush_blocking();
    } else if (queued > 0) {
        reactor_algorithm* algo = thread_algorithm();
        if (!algo) {
            // Another algorithm runs this thread: nothing would write the queue when the fiber
            // suspends (the deferred task needs gipc's algorithm), so put() writes at once.
            flush_blocking();
        } else if (queued_on_.load(std::memory_order_relaxed) != algo) {
            queued_on_.store(algo, std::memory_order_relaxed);
            algo->defer(shared_from_this());
        }
    }
}

void write_end::put_payload(std::string_view payload)
{
    if (payload.size() > max_size_)
        throw error(oversize_message(payload.size(), max_size_));
    char header[4];
    store_be32(header, static_cast<std::uint32_t>(payload.size()));
    if (payload.size() + 4 <= direct_threshold) {
        // Header and payload go to the queue separately: no copy of the frame on the fiber's
        // stack, which may be as small as 16 KiB.
        queue_frame({header, 4}, payload);
        return;
    }
    throw_pending();
    flush_blocking();
    const io::slice from[2] = {{header, 4}, {const_cast<char*>(payload.data()), payload.size()}};
    write_all_direct(from, 2);
}

void write_end::write_all_direct(const io::slice* slices, int count)
{
    io::slice left[2];
    std::copy(slices, slices + count, left);
    int first = 0;
    pipe_grower grow(*this, false);
    while (first < count) {
        const ssize_t n = io::write(fd_.get(), left + first, count - first, steady_time::max(), &grow);
        if (n < 0)
            throw_errno(static_cast<int>(n), "gipc: write to pipe");
        auto done = static_cast<std::size_t>(n);
        while (first < count && done >= left[first].size) {
            done -= left[first].size;
            ++first;
        }
        if (first < count) {
            left[first].data = static_cast<char*>(left[first].data) + done;
            left[first].size -= done;
        }
    }
}

void write_end::close()
{
    // Out of the registry and the reactors first, without qlock_ (see release_fd); then the
    // fd closes under qlock_, which a deferred task on another thread holds while it writes.
    auto release = [this] {
        forget_from_everywhere();
        queue_guard lk(qlock_);
        fd_.reset();
        q_.release();
        qhead_ = 0;
    };
    // Write out what is queued; frames no reader can receive any more are dropped.
    try {
        for (;;) {
            std::size_t left;
            bool direct;
            {
                queue_guard lk(qlock_);
                direct_only_ = false;
                left = write_queued();
                direct = std::exchange(direct_only_, false);
                if (error_) {
                    error_ = 0;
                    left = 0;
                }
            }
            if (direct) {
                try {
                    write_queue_direct();
                } catch (const std::system_error&) {
                    break; // frames no reader can receive
                }
                continue;
            }
            if (left == 0) {
                pipe_os::settle_queue(fd_.get()); // its failure: frames no reader can receive
                break;
            }
            if (io::wait_queue_room(fd_.get(), steady_time::max()) != 0)
                break;
        }
    } catch (...) {
        release(); // no reactor to wait in (it could not be made): the end closes all the same
        throw;
    }
    release();
}

void write_end::keep_in_child() noexcept
{
    q_.clear();
    qhead_ = 0;
    error_ = 0;
    stalled_on_ = 0; // the callback was registered with an inherited reactor
    queued_on_.store(nullptr, std::memory_order_relaxed);
}

void write_end::abandon_after_fork() noexcept
{
    // The parent delivers what is queued; the child never writes it again. The queue is left
    // untouched: another thread of the parent may have been changing it at fork time, and a
    // closed end never reads it.
    end_base::abandon_after_fork();
}

// ---- template support ------------------------------------------------------------------------

namespace {

// read_lock holds r's read side for one get (see locked_end): closed_error when r is null or
// closed, timeout_error when another reader holds it past deadline.
class read_lock {
public:
    read_lock(read_end* r, steady_time deadline) : r_(r)
    {
        if (!r)
            throw closed_error("gipc: handle is closed");
        if (deadline == steady_time::max())
            r->lock_op();
        else if (!r->lock_op_until(deadline))
            throw timeout_error("gipc: " + r->name() + ": get() timed out waiting for another reader");
    }
    ~read_lock() { r_->unlock_op(); }
    read_lock(const read_lock&) = delete;
    read_lock& operator=(const read_lock&) = delete;

private:
    read_end* r_;
};

} // namespace

void read_frame(read_end* r, steady_time deadline, frame_visitor visit, void* context)
{
    read_lock lk(r, deadline);
    auto [data, size] = r->next_frame(deadline);
    // The payload is done with once visited, whether it decoded or not.
    struct release_guard {
        read_end* r;
        ~release_guard() { r->release_returned_frame(); }
    } guard{r};
    visit(context, data, size);
}

bool try_read_scalar(read_end* r, msgpack::object& out) noexcept { return r && r->try_next_scalar(out); }

std::string read_frame_bytes(read_end* r, steady_time deadline)
{
    read_lock lk(r, deadline);
    std::string out;
    auto [data, size] = r->next_frame(deadline, &out);
    if (data)
        out.assign(data, size);
    return out;
}

write_session::write_session(write_end* w) : w_(w)
{
    if (!w)
        throw closed_error("gipc: handle is closed");
    w->lock_op();
}

write_session::~write_session() { w_->unlock_op(); }

frame_builder& write_session::frame()
{
    frame_builder& f = scratch_builder();
    f.reset(w_->max_message_size());
    return f;
}

void write_session::commit(frame_builder& frame)
{
    const std::size_t payload = frame.size() - 4;
    if (payload > w_->max_message_size()) { // frame() set the builder's limit: never true
        frame.release();
        throw error(oversize_message(payload, w_->max_message_size()));
    }
    store_be32(frame.data(), static_cast<std::uint32_t>(payload));
    w_->put_frame(frame);
}

void put_small_frame(write_end* w, char* frame, std::size_t size)
{
    const std::size_t payload = size - 4;
    store_be32(frame, static_cast<std::uint32_t>(payload));
    if (w && w->try_put_small({frame, size}))
        return;
    write_session session(w);
    if (payload > w->max_message_size()) // as frame_builder refuses it
        throw error("gipc: message is over max_message_size (" + std::to_string(w->max_message_size()) + " bytes)");
    w->queue_small_frame({frame, size});
}

void put_bytes(write_end* w, std::string_view payload)
{
    side_lock lk(w);
    w->put_payload(payload);
}

void flush(write_end* w)
{
    side_lock lk(w);
    w->throw_pending();
    w->flush_blocking();
}

} // namespace gipc::detail
