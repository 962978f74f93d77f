// SPDX-License-Identifier: MIT
#include "linux/epoll_reactor.hpp"

#include "assert.hpp"

#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <ctime>

namespace gipc::detail {

namespace {

constexpr std::uint64_t wake_tag = ~std::uint64_t{0};

mutex& registry_mutex()
{
    static mutex m;
    return m;
}

std::vector<epoll_reactor*>& registry()
{
    static std::vector<epoll_reactor*> r;
    return r;
}

std::uint32_t dir_events(io_dir dir) noexcept
{
    return dir == io_dir::read ? (EPOLLIN | EPOLLRDHUP) : EPOLLOUT;
}

std::uint64_t next_reactor_id() noexcept
{
    static std::atomic<std::uint64_t> last{0};
    return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

// The fork generation: how many fork()s lie between this process and the one that loaded
// gipc. Bumped in the child only, so a parent's reactors stay current.
std::atomic<unsigned> fork_gen{0};

// The calling thread's reactor (nullptr when it has none), and the reactor of the thread that
// made the latest fork(): in the child, the only reactor of an earlier generation whose
// thread still exists.
thread_local epoll_reactor* t_own = nullptr;
std::atomic<epoll_reactor*> fork_survivor{nullptr};

} // namespace

struct epoll_reactor::entry {
    std::uint32_t gen = 0;
    std::uint32_t events = 0; // directions registered with epoll
    bool persistent = false;
    bool dead = false; // forgotten while fibers waited on it (possibly by another thread)
    bool hung_up = false; // EPOLLHUP/EPOLLRDHUP/EPOLLERR seen: reads no longer block
    // Events dispatched while no fiber waited and no callback was set, since the last
    // registration (wait() or call_when_writable()); at idle_limit the fd leaves the epoll
    // set (events = 0) but the entry stays, so that seq never goes back while gipc holds fd.
    unsigned unwaited = 0;
    // Left in the parent's epoll set by a fork: waiters return -EAGAIN once woken.
    bool orphaned = false;
    std::uint64_t seq[2] = {0, 0}; // readiness events seen per direction
    unsigned waiters[2] = {0, 0};
    // Fibers polling for fd themselves (wait_alone): waiters with no condition variable to
    // notify, which the owning thread counts while its poll runs.
    unsigned alone = 0;
    boost::fibers::condition_variable_any cv[2];
    std::shared_ptr<reactor_callback> on_writable;
};

int epoll_reactor::open_fds(posix::unique_fd& epfd, posix::unique_fd& evfd) noexcept
{
    epfd.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epfd)
        return -errno;
    evfd.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!evfd) {
        const int err = -errno;
        epfd.reset();
        return err;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = wake_tag;
    if (::epoll_ctl(epfd.get(), EPOLL_CTL_ADD, evfd.get(), &ev) != 0) {
        const int err = -errno;
        epfd.reset();
        evfd.reset();
        return err;
    }
    return 0;
}

std::unique_ptr<epoll_reactor> epoll_reactor::create(int& err) noexcept
{
    posix::unique_fd epfd, evfd;
    err = open_fds(epfd, evfd);
    if (err != 0)
        return nullptr;
    std::unique_ptr<epoll_reactor> r(new (std::nothrow) epoll_reactor(std::move(epfd), std::move(evfd)));
    if (!r) {
        err = -ENOMEM;
        return nullptr;
    }
    lock_guard lk(registry_mutex());
    // Every fork() from now on, plain or gipc's own, starts a new generation in the child.
    static bool at_fork_installed = false;
    if (!at_fork_installed) {
        err = -::pthread_atfork(nullptr, nullptr, [] { after_fork_child(); });
        if (err != 0)
            return nullptr;
        at_fork_installed = true;
    }
    try {
        registry().push_back(r.get());
    } catch (const std::bad_alloc&) {
        err = -ENOMEM;
        return nullptr;
    }
    prune_dead_locked(fork_gen.load(std::memory_order_relaxed),
                      fork_survivor.load(std::memory_order_relaxed));
    t_own = r.get();
    err = 0;
    return r;
}

epoll_reactor::epoll_reactor(posix::unique_fd epfd, posix::unique_fd evfd) noexcept
    : epfd_(std::move(epfd)), evfd_(std::move(evfd)), id_(next_reactor_id()),
      fork_gen_(fork_gen.load(std::memory_order_relaxed))
{
}

epoll_reactor::~epoll_reactor()
{
    if (t_own == this)
        t_own = nullptr;
    epoll_reactor* self = this;
    fork_survivor.compare_exchange_strong(self, nullptr);
    lock_guard lk(registry_mutex());
    auto& r = registry();
    r.erase(std::remove(r.begin(), r.end(), this), r.end());
}

unsigned epoll_reactor::current_fork_gen() noexcept { return fork_gen.load(std::memory_order_acquire); }

void epoll_reactor::after_fork_child() noexcept
{
    // Only this thread exists in the child: its reactor is the one that lives on.
    fork_survivor.store(t_own, std::memory_order_relaxed);
    fork_gen.fetch_add(1, std::memory_order_seq_cst);
}

void epoll_reactor::prune_dead_locked(unsigned gen, const epoll_reactor* survivor) noexcept
{
    registry_mutex().assert_held();
    auto& r = registry();
    r.erase(std::remove_if(r.begin(), r.end(),
                           [&](epoll_reactor* x) {
                               if (x == survivor || x->fork_gen_.load(std::memory_order_relaxed) == gen)
                                   return false;
                               posix::close_fd(x->epfd_.release());
                               posix::close_fd(x->evfd_.release());
                               return true;
                           }),
            r.end());
}

void epoll_reactor::renew() noexcept
{
    // Registry first, then mtx_, as in forget_everywhere. No other thread holds mtx_ here: the
    // threads that did not survive the fork held no reactor's mutex but their own (the
    // registry is held across fork(), which keeps them out of forget_everywhere), and threads
    // made in the child only enter through forget_everywhere.
    lock_guard reg(registry_mutex());
    lock_guard lk(mtx_);
    const unsigned gen = current_fork_gen();
    if (fork_gen_.load(std::memory_order_relaxed) == gen)
        return;
    // The inherited epoll instance and eventfd are the parent's: closed without an epoll_ctl,
    // which would change the parent's set.
    posix::close_fd(epfd_.release());
    posix::close_fd(evfd_.release());
    // The registrations lived in that set. Entries that fibers or callbacks wait on become
    // orphans that the next poll() wakes (from the dispatcher) so that they register again;
    // the others are dropped. A new id tells the owners of readiness counts that the counts
    // are gone.
    for (auto& slot : table_)
        if (slot)
            slot->orphaned = true;
    if (orphans_.empty()) {
        orphans_.swap(table_); // no allocation: entries without waiters go with the next poll
    } else {
        // Orphans of an earlier fork that poll() has not woken yet (the child forked again
        // first): keep both.
        for (auto& slot : table_) {
            if (slot && (slot->waiters[0] + slot->waiters[1] > 0 || slot->on_writable)) {
                try {
                    orphans_.push_back(std::move(slot));
                } catch (const std::bad_alloc&) {
                    // Rare twice over; the fibers wake at their deadline instead.
                }
            }
        }
        table_.clear();
    }
    id_ = next_reactor_id();
    prune_dead_locked(gen, this);
    if (std::find(registry().begin(), registry().end(), this) == registry().end()) {
        // discard_all_after_fork() emptied the registry: join it again, so that fds forgotten
        // from now on leave this reactor too.
        try {
            registry().push_back(this);
        } catch (const std::bad_alloc&) {
        }
    }
    if (open_fds(epfd_, evfd_) != 0)
        return; // EMFILE and the like: poll() sleeps briefly and the next use tries again
    // Announce the renewal as a wake-up: the next poll() returns at once and wakes the orphans,
    // and a wake() skipped by another thread while this reactor was stale is made up for.
    wake_pending_.store(true, std::memory_order_seq_cst);
    std::uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(evfd_.get(), &one, sizeof one);
    fork_gen_.store(gen, std::memory_order_seq_cst);
}

void epoll_reactor::wake_orphans() noexcept
{
    GIPC_ASSERT(on_owner_thread(), "orphans are woken by the owning thread's dispatcher");
    lock_guard lk(mtx_);
    for (auto& e : orphans_) {
        if (!e)
            continue;
        e->cv[0].notify_all();
        e->cv[1].notify_all();
        if (e->on_writable)
            due_.push_back(std::move(e->on_writable));
    }
    orphans_.clear();
}

epoll_reactor::entry* epoll_reactor::register_locked(int fd, io_dir dir, bool persistent, int& err) noexcept
{
    mtx_.assert_held();
    const auto index = static_cast<std::size_t>(fd);
    bool fresh = false;
    try {
        if (index >= table_.size())
            table_.resize(std::max<std::size_t>(index + 1, table_.size() * 2));
        if (!table_[index]) {
            fresh = true;
            table_[index] = std::make_shared<entry>();
            table_[index]->gen = next_gen_++;
            if (next_gen_ == 0)
                next_gen_ = 1;
        }
    } catch (const std::bad_alloc&) {
        err = -ENOMEM;
        return nullptr;
    }
    entry* e = table_[index].get();
    e->persistent = e->persistent || persistent;
    e->unwaited = 0;
    // The first registration asks for both directions, so that a later wait for the other
    // direction costs no EPOLL_CTL_MOD (edge-triggered events nobody waits for cost little).
    const std::uint32_t want = e->events == 0 ? (dir_events(io_dir::read) | dir_events(io_dir::write))
                                              : (e->events | dir_events(dir));
    if (want != e->events) {
        epoll_event ev{};
        ev.events = want | EPOLLET;
        ev.data.u64 = (std::uint64_t{e->gen} << 32) | static_cast<std::uint32_t>(fd);
        const int op = e->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
        if (::epoll_ctl(epfd_.get(), op, fd, &ev) != 0) {
            err = -errno;
            if (fresh)
                table_[index].reset();
            return nullptr;
        }
        e->events = want;
    }
    return e;
}

int epoll_reactor::call_when_writable(int fd, std::shared_ptr<reactor_callback> cb) noexcept
{
    GIPC_ASSERT(on_owner_thread(), "only the owning thread registers callbacks");
    if (fd < 0)
        return -EBADF;
    renew_if_forked();
    lock_guard lk(mtx_);
    int err = 0;
    entry* e = register_locked(fd, io_dir::write, true, err);
    if (!e)
        return err;
    e->on_writable = std::move(cb);
    return 0;
}

std::uint64_t epoll_reactor::readiness(int fd, io_dir dir) noexcept
{
    GIPC_ASSERT(on_owner_thread(), "only the owning thread reads readiness counts");
    renew_if_forked();
    lock_guard lk(mtx_);
    const auto index = static_cast<std::size_t>(fd);
    if (fd < 0 || index >= table_.size() || !table_[index] || !(table_[index]->events & dir_events(dir)) ||
        table_[index]->hung_up)
        return no_readiness;
    return table_[index]->seq[static_cast<unsigned>(dir)];
}

int epoll_reactor::wait_impl(int fd, io_dir dir, steady_time deadline, bool persistent, std::uint64_t since,
                             bool recheck) noexcept
{
    GIPC_ASSERT(recheck || on_owner_thread(), "only fibers of the owning thread wait in a reactor");
    if (fd < 0)
        return -EBADF;
    const unsigned d = static_cast<unsigned>(dir);
    renew_if_forked();
    // mtx_ stays held from the check of the entry's state into the condition variable's wait,
    // which releases it only once the fiber is queued: a forget() on another thread, which
    // sets dead and notifies under mtx_, cannot slip in between and go unnoticed.
    unique_lock lk(mtx_);
    int err = 0;
    if (!register_locked(fd, dir, persistent, err))
        return err;
    std::shared_ptr<entry> e = table_[static_cast<std::size_t>(fd)];
    const std::uint64_t seq0 = since != no_readiness ? since : e->seq[d];
    ++e->waiters[d];

    bool timed_out = false;
    bool ready = false;
    if (recheck) {
        // From seq0 on every edge is counted: readiness the kernel shows now, or a count that
        // moves, both mean ready. An fd the caller closed shows POLLNVAL: ready too, and the
        // caller's syscall reports EBADF.
        pollfd p{fd, static_cast<short>(dir == io_dir::read ? (POLLIN | POLLRDHUP) : POLLOUT), 0};
        ready = posix::retry_eintr([&] { return ::poll(&p, 1, 0); }) > 0;
    }
    while (!ready && e->seq[d] == seq0 && !e->dead && !e->orphaned) {
        if (e->cv[d].wait_until(lk, deadline) == boost::fibers::cv_status::timeout) {
            timed_out = e->seq[d] == seq0 && !e->dead && !e->orphaned;
            break;
        }
    }

    GIPC_ASSERT(e->waiters[d] > 0, "a waiter leaves an entry it was counted in");
    --e->waiters[d];
    const bool dead = e->dead;
    if (!dead && !e->orphaned && !e->persistent && e->waiters[0] + e->waiters[1] + e->alone == 0) {
        // A user's fd: drop the registration, the user may close the fd at any time.
        ::epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, fd, nullptr);
        table_[static_cast<std::size_t>(fd)].reset();
    }
    if (timed_out)
        return -ETIMEDOUT;
    if (ready || e->seq[d] != seq0)
        return 0;
    return dead ? -EBADF : -EAGAIN;
}

void epoll_reactor::dispatch(const epoll_event* events, int n) noexcept
{
    lock_guard lk(mtx_);
    for (int i = 0; i < n; ++i) {
        const std::uint64_t tag = events[i].data.u64;
        if (tag == wake_tag)
            continue;
        const auto fd = static_cast<std::size_t>(tag & 0xffffffffu);
        const auto gen = static_cast<std::uint32_t>(tag >> 32);
        if (fd >= table_.size() || !table_[fd] || table_[fd]->gen != gen)
            continue; // a registration forgotten after the kernel queued its event
        entry& e = *table_[fd];
        const bool unwaited = e.waiters[0] + e.waiters[1] + e.alone == 0 && !e.on_writable;
        const std::uint32_t ev = events[i].events;
        const bool failed = (ev & (EPOLLERR | EPOLLHUP)) != 0;
        if (failed || (ev & EPOLLRDHUP))
            e.hung_up = true;
        if (failed || (ev & (EPOLLIN | EPOLLRDHUP))) {
            ++e.seq[0];
            if (e.waiters[0])
                e.cv[0].notify_all();
        }
        if (failed || (ev & EPOLLOUT)) {
            ++e.seq[1];
            if (e.waiters[1])
                e.cv[1].notify_all();
            if (e.on_writable)
                due_.push_back(std::move(e.on_writable));
        }
        if (unwaited && e.persistent && ++e.unwaited >= idle_limit) {
            // Nothing of this thread has waited on fd for a while: stop hearing of it. fd is
            // still open (gipc forgets an fd, which needs mtx_, before closing it).
            ::epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, static_cast<int>(fd), nullptr);
            e.events = 0;
            e.unwaited = 0;
        }
    }
}

int epoll_reactor::wait_alone(int fd, io_dir dir, steady_time until, std::uint64_t since, bool& woken) noexcept
{
    GIPC_ASSERT(on_owner_thread(), "only fibers of the owning thread wait in a reactor");
    if (fd < 0)
        return -EBADF;
    const unsigned d = static_cast<unsigned>(dir);
    renew_if_forked();
    if (!epfd_ || !orphans_.empty())
        return -EAGAIN; // a fork to recover from: the dispatcher's poll() does it
    std::shared_ptr<entry> e;
    std::uint64_t seq0;
    {
        lock_guard lk(mtx_);
        int err = 0;
        if (!register_locked(fd, dir, true, err))
            return err;
        e = table_[static_cast<std::size_t>(fd)];
        seq0 = since != no_readiness ? since : e->seq[d];
        // Counted while the poll runs: its events are not "unwaited" (idle_limit), and a
        // forget() on another thread marks the entry dead.
        ++e->alone;
    }
    woken = poll_events(until, false);
    lock_guard lk(mtx_);
    GIPC_ASSERT(e->alone > 0, "a waiter leaves an entry it was counted in");
    --e->alone;
    return e->seq[d] != seq0 || e->dead || e->orphaned ? 0 : -EAGAIN;
}

void epoll_reactor::poll(steady_time deadline) noexcept { poll_events(deadline, true); }

bool epoll_reactor::poll_events(steady_time deadline, bool run_callbacks) noexcept
{
    GIPC_ASSERT(on_owner_thread(), "only the owning thread polls");
    renew_if_forked();
    if (!epfd_) {
        // A renewal after fork could not make its descriptors (EMFILE...): wait a little, not
        // spin, and let the next poll try again.
        timespec pause{0, 1000000};
        if (deadline != steady_time::max() &&
            deadline - std::chrono::steady_clock::now() < std::chrono::milliseconds(1))
            pause.tv_nsec = 0;
        ::nanosleep(&pause, nullptr);
        return false;
    }
    if (!orphans_.empty())
        wake_orphans();
    epoll_event events[128];
    timespec ts{};
    const timespec* tsp = &ts;
    if (!due_.empty()) {
        // Callbacks left by a wait_alone(): run them now, not after a sleep.
    } else if (deadline == steady_time::max()) {
        tsp = nullptr;
    } else if (deadline != steady_time::min()) {
        auto left = deadline - std::chrono::steady_clock::now();
        if (left.count() > 0) {
            auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
            ts.tv_sec = static_cast<time_t>(ns / 1000000000);
            ts.tv_nsec = static_cast<long>(ns % 1000000000);
        }
    }
    // epoll_pwait2 (Linux 5.11) takes nanoseconds, so fiber sleeps shorter than a millisecond
    // keep their precision. Where it fails with anything but EINTR (ENOSYS on older kernels;
    // EPERM, ENOSYS or any other errno from seccomp profiles that predate it) the process
    // switches to epoll_wait for good, with the timeout rounded up to whole milliseconds
    // (rounding down would wake early and spin). Retrying a refused epoll_pwait2 instead
    // would return at once, forever: a busy loop that never dispatches an event.
    static std::atomic<bool> have_pwait2{true};
    int n = -1;
    bool fall_back = !have_pwait2.load(std::memory_order_relaxed);
    if (!fall_back) {
        n = ::epoll_pwait2(epfd_.get(), events, 128, tsp, nullptr);
        if (n < 0 && errno != EINTR) {
            have_pwait2.store(false, std::memory_order_relaxed);
            fall_back = true;
        }
    }
    if (fall_back) {
        int ms = -1;
        if (tsp) {
            long long total = (static_cast<long long>(ts.tv_sec) * 1000000000 + ts.tv_nsec + 999999) / 1000000;
            ms = static_cast<int>(std::min<long long>(total, INT_MAX));
        }
        n = ::epoll_wait(epfd_.get(), events, 128, ms);
        // epoll_wait on an epoll instance of this reactor's fails with EINTR only: anything
        // else (EBADF, EINVAL, or a seccomp profile that refuses it) would make every poll
        // return at once, forever, a busy loop that never dispatches an event. Nothing can be
        // done without it.
        if (n < 0 && errno != EINTR)
            fatal_errno(-errno, "epoll_wait failed, the fiber reactor cannot wait");
    }
    // n <= 0: a timeout, or EINTR; the dispatcher simply calls again.
    bool woken = false;
    if (n > 0) {
        for (int i = 0; i < n; ++i) {
            if (events[i].data.u64 == wake_tag) {
                // Drain first, then clear the flag. A wake() between the two finds the flag
                // still set and skips its write, which is fine: whatever it announces was
                // queued before it, and the dispatcher looks at its queues after poll()
                // returns. Clearing first would let the drain swallow that wake()'s write and
                // leave the flag stuck set, silencing every later wake().
                std::uint64_t v;
                [[maybe_unused]] auto r = ::read(evfd_.get(), &v, sizeof v);
                wake_pending_.store(false, std::memory_order_seq_cst);
                woken = true;
                break;
            }
        }
        dispatch(events, n);
    }
    // Callbacks run without mtx_ held: they take locks of their own and may register again.
    // Only on the dispatcher: a fiber polling in wait_alone() may hold what they need.
    if (run_callbacks) {
        for (auto& cb : due_)
            cb->on_ready();
        due_.clear();
    }
    return woken;
}

void epoll_reactor::wake() noexcept
{
    // A reactor from before a fork is either the forking thread's, which renews it before it
    // next blocks (and counts the renewal as a wake-up), or that of a thread the child does
    // not have: its eventfd is the parent's, and writing to it would wake the parent.
    if (fork_gen_.load(std::memory_order_seq_cst) != current_fork_gen())
        return;
    if (wake_pending_.exchange(true, std::memory_order_seq_cst))
        return;
    std::uint64_t one = 1;
    [[maybe_unused]] auto r = posix::retry_eintr([&] { return ::write(evfd_.get(), &one, sizeof one); });
}

void epoll_reactor::forget(int fd, unsigned gen) noexcept
{
    std::shared_ptr<entry> e;
    {
        lock_guard lk(mtx_);
        if (fd < 0 || static_cast<std::size_t>(fd) >= table_.size() || !table_[static_cast<std::size_t>(fd)])
            return;
        e = std::move(table_[static_cast<std::size_t>(fd)]);
        // Before its renewal after a fork, the epoll set is the parent's: leave it be.
        if (e->events != 0 && fork_gen_.load(std::memory_order_relaxed) == gen)
            ::epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, fd, nullptr);
        if (e->waiters[0] + e->waiters[1] + e->alone == 0)
            return;
        e->dead = true;
    }
    // Notified after mtx_ is released, which keeps the hold short (forget runs on any thread,
    // against the owner's poll()). A waiter that saw dead unset is already queued on the
    // condition variable (wait() holds mtx_ until then).
    e->cv[0].notify_all();
    e->cv[1].notify_all();
}

void epoll_reactor::forget_everywhere(int fd) noexcept
{
    lock_guard lk(registry_mutex());
    const unsigned gen = current_fork_gen();
    const epoll_reactor* survivor = fork_survivor.load(std::memory_order_relaxed);
    for (epoll_reactor* r : registry()) {
        // The reactor of a thread that did not survive a fork is never locked: that thread
        // may have held its mutex at fork time, forever.
        if (r == survivor || r->fork_gen_.load(std::memory_order_acquire) == gen)
            r->forget(fd, gen);
    }
}

void epoll_reactor::discard_all_after_fork() noexcept
{
    for (epoll_reactor* r : registry()) {
        posix::close_fd(r->epfd_.release());
        posix::close_fd(r->evfd_.release());
    }
    // The inherited reactors stay allocated: inherited scheduler state may still point at
    // them, and it is never run again in the child.
    registry().clear();
}

void epoll_reactor::lock_registry() noexcept { registry_mutex().lock(); }
void epoll_reactor::unlock_registry() noexcept { registry_mutex().unlock(); }

// ---- reactor.hpp, implemented by this backend ----------------------------------------------

namespace {
epoll_reactor& self(reactor* r) noexcept { return *static_cast<epoll_reactor*>(r); }
} // namespace

std::unique_ptr<reactor> reactor::create(int& err) noexcept { return epoll_reactor::create(err); }
std::uint64_t reactor::id() const noexcept { return static_cast<const epoll_reactor*>(this)->id(); }
void reactor::poll(steady_time deadline) noexcept { self(this).poll(deadline); }
void reactor::wake() noexcept { self(this).wake(); }
void reactor::forget_everywhere(int fd) noexcept { epoll_reactor::forget_everywhere(fd); }
void reactor::discard_all_after_fork() noexcept { epoll_reactor::discard_all_after_fork(); }
void reactor::lock_registry() noexcept { epoll_reactor::lock_registry(); }
void reactor::unlock_registry() noexcept { epoll_reactor::unlock_registry(); }

} // namespace gipc::detail
