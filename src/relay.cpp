// SPDX-License-Identifier: MIT
#include "relay.hpp"

#include "assert.hpp"
#include "errors.hpp"
#include "platform.hpp"
#include "scheduler.hpp"
#include "thread_safety.hpp"

#include <boost/fiber/condition_variable.hpp>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <new>
#include <system_error>

namespace gipc::detail {

// relay_state: the state of this process's relay thread. One per process: a forked child starts
// with none (the pthread_atfork child handler drops the parent's, whose thread the child does
// not have and whose mutex may have been held by a thread the child does not have either; it
// is never freed, as inherited fibers may still point at it).
struct relay_state {
    // mtx guards every member. Fibers of any thread hold it only briefly (never across a
    // suspension: cv's waits release it), so a std::mutex, which blocks the thread, is fine.
    mutex mtx;
    // cv: starters wait for the thread to serve (or fail); the thread waits on it for
    // relay_linger at a time, to see whether it is still needed.
    boost::fibers::condition_variable_any cv;
    detail::reactor* reactor GIPC_GUARDED_BY(mtx) = nullptr; // the relay thread's, while it serves
    bool running GIPC_GUARDED_BY(mtx) = false;  // a relay thread exists (starting, serving or ending)
    unsigned users GIPC_GUARDED_BY(mtx) = 0;    // relayed waits in progress or starting
    int start_error GIPC_GUARDED_BY(mtx) = 0;   // -errno of the latest start that failed
    steady_time last_use GIPC_GUARDED_BY(mtx){}; // when the latest relayed wait ended
};

namespace {

using relay = relay_state;

std::atomic<relay*> g_relay{nullptr};

void forget_relay_after_fork() noexcept { g_relay.store(nullptr, std::memory_order_relaxed); }

// current_relay is this process's relay state, made on first use.
relay& current_relay()
{
    static const int at_fork = platform::at_fork_child(forget_relay_after_fork);
    if (at_fork != 0)
        throw_errno(at_fork, "gipc: pthread_atfork");
    relay* r = g_relay.load(std::memory_order_acquire);
    while (!r) {
        auto* made = new relay;
        if (g_relay.compare_exchange_strong(r, made, std::memory_order_acq_rel))
            return *made;
        delete made; // another thread made one first: r is it
    }
    return *r;
}

// serve is the relay thread: it installs gipc's algorithm (its dispatcher then sleeps in the
// relay reactor and wakes the relayed waiters) and keeps the thread while waits use it.
void serve(relay& r) noexcept
{
    detail::reactor* reactor = nullptr;
    int err = 0;
    try {
        reactor = &installed_algorithm().reactor();
    } catch (const std::system_error& e) {
        err = -e.code().value();
    } catch (...) {
        err = -ENOMEM;
    }
    unique_lock lk(r.mtx);
    if (!reactor) {
        r.start_error = err < 0 ? err : -ENOMEM;
        r.running = false;
        r.cv.notify_all();
        return;
    }
    r.reactor = reactor;
    r.cv.notify_all();
    for (;;) {
        r.cv.wait_for(lk, relay_linger);
        if (r.users == 0 && std::chrono::steady_clock::now() - r.last_use >= relay_linger)
            break;
    }
    // No wait holds the reactor (users is 0 under mtx): it goes with this thread's scheduler,
    // and the next relayed wait starts a new thread.
    r.reactor = nullptr;
    r.running = false;
}

// start_locked starts the relay thread. r.mtx held. Returns 0 or -errno.
int start_locked(relay& r) noexcept GIPC_REQUIRES(r.mtx)
{
    r.mtx.assert_held();
    const int err = platform::start_quiet_thread(
        [](void* arg) -> void* {
            serve(*static_cast<relay*>(arg));
            return nullptr;
        },
        &r);
    if (err != 0)
        return err;
    r.running = true;
    return 0;
}

} // namespace

relay_lease::relay_lease()
{
    relay& r = current_relay();
    unique_lock lk(r.mtx);
    // Counted from here on: a serving thread does not end while this lease needs it.
    ++r.users;
    // Uncounted again if the constructor throws (the destructor runs only for a lease made).
    struct uncount {
        relay& r;
        unique_lock& lk;
        bool armed = true;
        // lk is r.mtx's lock, which the analysis cannot tell from a reference.
        ~uncount() GIPC_NO_THREAD_SAFETY_ANALYSIS
        {
            if (!armed)
                return;
            if (!lk.owns_lock())
                lk.lock();
            GIPC_ASSERT(r.users > 0, "every relayed operation was counted");
            --r.users;
            r.last_use = std::chrono::steady_clock::now();
        }
    } counted{r, lk};
    if (!r.running) {
        if (const int err = start_locked(r); err != 0)
            throw_errno(err, "gipc: cannot start the relay thread");
    }
    while (!r.reactor && r.running)
        r.cv.wait(lk);
    if (!r.reactor)
        throw_errno(r.start_error, "gipc: cannot create the relay's reactor");
    reactor_ = r.reactor;
    relay_ = &r;
    counted.armed = false;
}

relay_lease::~relay_lease()
{
    relay& r = *relay_; // the one counted in (a forked child has another, made afresh)
    lock_guard lk(r.mtx);
    GIPC_ASSERT(r.users > 0, "every relayed operation was counted");
    --r.users;
    r.last_use = std::chrono::steady_clock::now();
}

} // namespace gipc::detail
