// SPDX-License-Identifier: MIT
#pragma once
// reactor_algorithm: gipc's Boost.Fiber scheduling algorithm. A round-robin ready queue; when
// nothing is ready the dispatcher sleeps in the thread's reactor until an fd event, the
// next timer of Boost.Fiber's sleep queue, or notify() from another thread.
//
// gipc installs it only on threads that run Boost.Fiber's default round_robin (see
// thread_algorithm). A thread whose program installed another algorithm keeps it; gipc's
// operations wait there through the relay (relay.hpp).

#include "private.hpp"

#include "reactor.hpp"

#include <boost/fiber/algo/algorithm.hpp>
#include <boost/fiber/context.hpp>
#include <boost/fiber/scheduler.hpp>

#include <memory>
#include <thread>
#include <vector>

namespace gipc::detail {

// deferred_task: work that must run on a thread before another of its fibers runs (gipc's
// write queues flush here). The scheduling algorithm never runs it inside pick_next() on behalf
// of a suspending fiber (which may hold a Boost.Fiber spinlock there): pick_next() only hands
// the thread to its dispatcher, which runs the queued tasks before it picks the next fiber or
// polls (Redis's beforesleep), and gipc's own waits run them before they suspend. So
// run_deferred() may take mutexes and make syscalls, but must not block, suspend, or use
// Boost.Fiber primitives.
class deferred_task {
public:
    virtual void run_deferred() noexcept = 0;

protected:
    ~deferred_task() = default;
};

class reactor_algorithm final : public boost::fibers::algo::algorithm {
public:
    // replaced is the algorithm this one takes over from (Boost.Fiber's round_robin), which it
    // keeps alive: see thread_algorithm in scheduler.cpp.
    reactor_algorithm(std::unique_ptr<detail::reactor> r, boost::fibers::algo::algorithm::ptr_t replaced) noexcept;
    ~reactor_algorithm() override;

    // The algorithm's methods, but notify(), run on the owning thread only (the thread that
    // made it): nothing else shares its ready queue.
    void awakened(boost::fibers::context* ctx) noexcept override;
    boost::fibers::context* pick_next() noexcept override;
    bool has_ready_fibers() const noexcept override;
    void suspend_until(std::chrono::steady_clock::time_point const& tp) noexcept override;
    void notify() noexcept override;

    detail::reactor& reactor() noexcept { return *reactor_; }

    // defer queues task to run once, before the next fiber of this thread runs: when the
    // calling fiber next suspends, pick_next() hands the thread to the dispatcher first, which
    // runs it. Only the owning thread calls it.
    void defer(std::shared_ptr<deferred_task> task);

    // run_deferred runs the queued tasks now. On the owning thread, from its dispatcher or from
    // a fiber at one of gipc's own suspension points (about to wait in the reactor): never
    // from inside a Boost.Fiber primitive.
    void run_deferred() noexcept;

    // alone_until tells whether nothing else of this thread could run before the calling fiber's
    // wait for I/O ends: no deferred task, no other fiber ready, no wake-up from another thread
    // that the dispatcher may not have taken yet, and no sleeping fiber due (a Boost.Fiber
    // sleep or timed wait). If so, until is deadline, or the earliest sleeping fiber's time
    // when that comes first, and the backend may wait for the I/O in the calling fiber itself,
    // up to until, where the dispatcher would have waited for it: no fiber switch to the
    // dispatcher and back. Only the owning thread, from a fiber at one of gipc's own
    // suspension points (never the dispatcher, never inside a Boost.Fiber primitive).
    bool alone_until(steady_time deadline, steady_time& until) noexcept;

    // took_wake tells the algorithm that such a wait in a fiber consumed a wake() (notify())
    // that the dispatcher has not seen: fibers made ready by other threads may be queued, and
    // no fiber waits alone again until the dispatcher has looked.
    void took_wake() noexcept { wake_unseen_ = true; }

    // current is the calling thread's algorithm, or nullptr when gipc's is not installed.
    static reactor_algorithm* current() noexcept;

private:
    boost::fibers::scheduler::ready_queue_type ready_;
    std::unique_ptr<detail::reactor> reactor_;
    std::vector<std::shared_ptr<deferred_task>> deferred_;
    std::vector<std::shared_ptr<deferred_task>> running_; // reused to avoid allocations
    // The thread's dispatcher context, seen in awakened(); nullptr until then.
    boost::fibers::context* dispatcher_ = nullptr;
    unsigned switches_since_poll_ = 0;
    // A poll() may have consumed a wake() since the dispatcher last took the fibers other
    // threads made ready (Boost.Fiber's remote ready queue, which it empties just before it
    // calls pick_next()): until it does, such fibers may be waiting, unannounced.
    bool wake_unseen_ = false;
    const std::thread::id owner_ = std::this_thread::get_id();
    // The round_robin this algorithm replaced, destroyed with it (as the thread's scheduler
    // ends) rather than when it was replaced: another thread may be calling its notify().
    boost::fibers::algo::algorithm::ptr_t replaced_;
};

// thread_algorithm is gipc's algorithm on the calling thread, installed first where the thread
// runs Boost.Fiber's default round_robin (implicitly, or installed explicitly by the program),
// or nullptr where the program installed another algorithm (work_stealing, shared_work, its
// own): gipc leaves that one in place. Every gipc call makes it once. Throws std::system_error
// when the reactor cannot be created.
reactor_algorithm* thread_algorithm();

// installed_algorithm is thread_algorithm() for callers that need gipc's algorithm itself
// (use_reactor, gipc's own helper threads): throws gipc::error where the thread runs another
// algorithm.
reactor_algorithm& installed_algorithm();

// forget_fd must be called before gipc closes an fd that an operation of io_ops.hpp may have
// registered with a reactor.
inline void forget_fd(native_fd fd) noexcept { reactor::forget_everywhere(fd); }

} // namespace gipc::detail
