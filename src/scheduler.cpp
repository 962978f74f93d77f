// SPDX-License-Identifier: MIT
#include "scheduler.hpp"

#include "assert.hpp"
#include "errors.hpp"

#include <gipc/error.hpp>

#include <boost/fiber/algo/round_robin.hpp>
#include <boost/fiber/operations.hpp>

#include <cerrno>
#include <iterator>
#include <typeinfo>

namespace gipc::detail {

namespace {

thread_local reactor_algorithm* t_current = nullptr;

// How many fiber switches with fibers still ready go by between non-blocking polls of the
// reactor. The dispatcher is itself queued round-robin with the fibers, so fibers that stay
// ready (yield loops) cannot starve I/O: every this-many rounds the reactor is polled.
constexpr unsigned poll_every = 8;

// Which algorithm a thread runs. Boost.Fiber 1.74 offers no way to ask a scheduler for its
// algorithm: scheduler::algo_ is private, and the algorithm's type is all that tells Boost's
// implicit default (round_robin) from one the program installed. The member is read through a
// pointer to it formed in an explicit instantiation: access checking does not apply to the
// names used in an explicit instantiation ([temp.spec.general]/6 in C++20), so naming
// &scheduler::algo_ there is well-formed, and the friend function the instantiated class
// defines hands the pointer out. Reading the member through it is ordinary member access: no
// layout guess, no cast, nothing undefined. (Boost 1.75+ keeps the same private member; a
// build against a Boost that renamed it fails to compile here rather than misbehave.)
//
// One template serves every such member: a tag type declares the friend function that
// returns the member pointer, and the explicit instantiation of expose_member for that tag
// and member defines it.
template <typename Tag, auto Member>
struct expose_member {
    friend auto member_pointer(Tag) noexcept { return Member; }
};

struct algo_member_tag {
    friend auto member_pointer(algo_member_tag) noexcept;
};
template struct expose_member<algo_member_tag, &boost::fibers::scheduler::algo_>;

// The same for the scheduler's sleep queue (the fibers in a Boost.Fiber sleep or timed wait,
// ordered by their time) and a context's time in it, which alone_until reads: the earliest
// time the dispatcher would have woken up for. The types are Boost's private ones, hence the
// deduced return types.
struct sleep_queue_member_tag {
    friend auto member_pointer(sleep_queue_member_tag) noexcept;
};
template struct expose_member<sleep_queue_member_tag, &boost::fibers::scheduler::sleep_queue_>;

struct context_time_member_tag {
    friend auto member_pointer(context_time_member_tag) noexcept;
};
template struct expose_member<context_time_member_tag, &boost::fibers::context::tp_>;

// default_algorithm is the calling thread's algorithm when it is Boost.Fiber's round_robin
// itself (not a type derived from it: a program's own algorithm is kept whatever its base),
// nullptr otherwise. Makes the thread's fiber scheduler first if it has none, as any
// Boost.Fiber call does.
boost::fibers::algo::algorithm::ptr_t default_algorithm() noexcept
{
    boost::fibers::scheduler* sched = boost::fibers::context::active()->get_scheduler();
    GIPC_ASSERT(sched != nullptr, "every active fiber context has a scheduler");
    const boost::fibers::algo::algorithm::ptr_t& algo = sched->*member_pointer(algo_member_tag{});
    const boost::fibers::algo::algorithm* raw = algo.get();
    if (raw && typeid(*raw) == typeid(boost::fibers::algo::round_robin))
        return algo;
    return nullptr;
}

} // namespace

reactor_algorithm::reactor_algorithm(std::unique_ptr<detail::reactor> r,
                                     boost::fibers::algo::algorithm::ptr_t replaced) noexcept
    : reactor_(std::move(r)), replaced_(std::move(replaced))
{
    GIPC_ASSERT(reactor_ != nullptr, "a reactor_algorithm owns a reactor");
    t_current = this;
}

reactor_algorithm::~reactor_algorithm()
{
    if (t_current == this)
        t_current = nullptr;
}

reactor_algorithm* reactor_algorithm::current() noexcept { return t_current; }

void reactor_algorithm::awakened(boost::fibers::context* ctx) noexcept
{
    GIPC_ASSERT(std::this_thread::get_id() == owner_, "awakened runs on the algorithm's thread");
    // Boost moves the ready fibers of the algorithm being replaced with
    // `while (old->has_ready_fibers()) awakened(old->pick_next())`: an old algorithm whose ready
    // queue other threads also take from can say yes and then find nothing, and hand nullptr
    // here. gipc never replaces such an algorithm (see thread_algorithm), but a nullptr is
    // not a fiber to queue whatever its source.
    if (!ctx)
        return;
    GIPC_ASSERT(!ctx->ready_is_linked(), "a fiber is queued at most once");
    if (ctx->is_context(boost::fibers::type::dispatcher_context))
        dispatcher_ = ctx;
    ctx->ready_link(ready_);
}

boost::fibers::context* reactor_algorithm::pick_next() noexcept
{
    GIPC_ASSERT(std::this_thread::get_id() == owner_, "pick_next runs on the algorithm's thread");
    // pick_next runs whenever a context of this thread switches away: a fiber that suspends,
    // possibly inside a Boost.Fiber primitive that holds its spinlock, or the dispatcher
    // looking for work. Only the dispatcher does work here (runs deferred tasks, polls); a
    // fiber that leaves tasks behind hands the thread to the dispatcher, ahead of the fibers
    // queued before it, which then runs them and picks the fiber that was next.
    const bool on_dispatcher = boost::fibers::context::active()->is_context(boost::fibers::type::dispatcher_context);
    if (on_dispatcher) {
        // The dispatcher took the remote ready queue just before calling here.
        wake_unseen_ = false;
        run_deferred();
    } else if (!deferred_.empty() && dispatcher_ && dispatcher_->ready_is_linked()) {
        dispatcher_->ready_unlink();
        return dispatcher_;
    }
    if (ready_.empty())
        return nullptr;
    // Poll the reactor only from the dispatcher: waking waiters from inside a fiber that is
    // suspending within a Boost.Fiber primitive deadlocks.
    if (++switches_since_poll_ >= poll_every && on_dispatcher) {
        switches_since_poll_ = 0;
        reactor_->poll(steady_time::min());
        wake_unseen_ = true; // it may have taken a wake(): the queue is looked at next round
    }
    boost::fibers::context* ctx = &ready_.front();
    ready_.pop_front();
    return ctx;
}

bool reactor_algorithm::alone_until(steady_time deadline, steady_time& until) noexcept
{
    GIPC_ASSERT(std::this_thread::get_id() == owner_, "alone_until runs on the algorithm's thread");
    if (wake_unseen_ || !deferred_.empty())
        return false;
    // While a fiber runs, the dispatcher is queued as ready (Boost.Fiber keeps it there so
    // that the queue is never empty): anything else queued is a fiber that could run.
    if (!ready_.empty() && (&ready_.front() != dispatcher_ || std::next(ready_.begin()) != ready_.end()))
        return false;
    boost::fibers::context* active = boost::fibers::context::active();
    if (active->is_context(boost::fibers::type::dispatcher_context))
        return false;
    until = deadline;
    const auto& sleepers = active->get_scheduler()->*member_pointer(sleep_queue_member_tag{});
    if (!sleepers.empty()) {
        const steady_time first = (*sleepers.begin()).*member_pointer(context_time_member_tag{});
        if (first < until)
            until = first;
    }
    // A sleeper that is due already (or the caller's own deadline) is the dispatcher's to
    // handle. The clock is read only when a time is set.
    return until == steady_time::max() || until > std::chrono::steady_clock::now();
}

void reactor_algorithm::run_deferred() noexcept
{
    GIPC_ASSERT(std::this_thread::get_id() == owner_, "deferred tasks run on the algorithm's thread");
    if (deferred_.empty())
        return;
    GIPC_ASSERT(running_.empty(), "deferred tasks never run them again themselves");
    running_.swap(deferred_);
    for (auto& task : running_)
        task->run_deferred();
    running_.clear();
}

bool reactor_algorithm::has_ready_fibers() const noexcept
{
    GIPC_ASSERT(std::this_thread::get_id() == owner_, "has_ready_fibers runs on the algorithm's thread");
    return !ready_.empty();
}

void reactor_algorithm::suspend_until(std::chrono::steady_clock::time_point const& tp) noexcept
{
    GIPC_ASSERT(std::this_thread::get_id() == owner_, "suspend_until runs on the algorithm's thread");
    reactor_->poll(tp);
    switches_since_poll_ = 0; // just polled: no need to poll again soon
}

void reactor_algorithm::notify() noexcept { reactor_->wake(); }

void reactor_algorithm::defer(std::shared_ptr<deferred_task> task)
{
    GIPC_ASSERT(std::this_thread::get_id() == owner_, "deferred tasks are queued by the algorithm's thread");
    GIPC_ASSERT(task != nullptr, "a deferred task is an object");
    deferred_.push_back(std::move(task));
}

void check_spawn_main_called() noexcept; // spawn.cpp

reactor_algorithm* thread_algorithm()
{
    if (t_current)
        return t_current;
    check_spawn_main_called(); // a spawned child whose main() forgot spawn_main stops here
    boost::fibers::algo::algorithm::ptr_t replaced = default_algorithm();
    if (!replaced)
        return nullptr;
    int err = 0;
    auto r = reactor::create(err);
    if (!r)
        throw_errno(err, "gipc: cannot create the fiber reactor");
    // The round_robin being replaced must outlive the switch, so the new algorithm keeps it.
    // Fibers of this thread may already wait in Boost.Fiber primitives that fibers of other
    // threads signal (gipc's own: the fiber mutexes of an end's read and write sides, taken
    // before anything installs the algorithm; or the program's), and a fiber of another thread
    // that wakes one of them (scheduler::schedule_from_remote) queues it under the scheduler's
    // spinlock but then calls algo_->notify() after releasing it, with no lock against
    // set_algo(). Had set_algo() destroyed the round_robin, such a notify() would run on freed
    // memory: the waker crashed or hung forever in the freed round_robin's condition variable,
    // and with it every fiber waiting for a mutex it held. Kept alive, the late notify() only
    // signals a condition variable nobody waits on, and loses nothing: the woken fiber is in
    // the scheduler's remote ready queue already, which this thread's dispatcher empties before
    // it next picks a fiber or waits in the reactor (the switch runs in a fiber, never in the
    // dispatcher's own wait), and a waker that takes the spinlock after this thread's
    // dispatcher did sees the new algorithm, whose notify() wakes the reactor.
    boost::fibers::use_scheduling_algorithm<reactor_algorithm>(std::move(r), std::move(replaced));
    GIPC_ASSERT(t_current != nullptr, "the algorithm just installed is the thread's");
    return t_current;
}

reactor_algorithm& installed_algorithm()
{
    if (reactor_algorithm* algo = thread_algorithm())
        return *algo;
    throw error("gipc: this thread runs a Boost.Fiber scheduling algorithm of the program's, which gipc "
                "keeps (gipc installs its own only in place of the default round_robin); gipc's calls "
                "work there without it");
}

} // namespace gipc::detail
