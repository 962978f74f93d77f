// SPDX-License-Identifier: MIT
#include "scheduler.hpp"

#include <boost/fiber/operations.hpp>

#include <cerrno>
#include <system_error>

namespace gipc::detail {

namespace {

thread_local reactor_algorithm* t_current = nullptr;

// How many fiber switches with fibers still ready go by between non-blocking polls of the
// reactor. The dispatcher is itself queued round-robin with the fibers, so fibers that stay
// ready (yield loops) cannot starve I/O: every this-many rounds the reactor is polled.
constexpr unsigned poll_every = 8;

} // namespace

reactor_algorithm::reactor_algorithm(std::unique_ptr<epoll_reactor> reactor) noexcept
    : reactor_(std::move(reactor))
{
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
    ctx->ready_link(ready_);
}

boost::fibers::context* reactor_algorithm::pick_next() noexcept
{
    // pick_next runs whenever a fiber of this thread switches away, so this is the place where
    // work that must happen "before the fiber suspends" (flushing write queues) is done.
    if (!before_switch_.empty()) {
        running_.swap(before_switch_);
        for (auto& task : running_)
            task->run_before_switch();
        running_.clear();
    }
    if (ready_.empty())
        return nullptr;
    // Poll the reactor only from the dispatcher: pick_next also runs inside a fiber that is
    // suspending within a Boost.Fiber primitive and still holds its spinlock, and waking
    // waiters from there deadlocks.
    if (++switches_since_poll_ >= poll_every &&
        boost::fibers::context::active()->is_context(boost::fibers::type::dispatcher_context)) {
        switches_since_poll_ = 0;
        reactor_->poll(steady_time::min());
    }
    boost::fibers::context* ctx = &ready_.front();
    ready_.pop_front();
    return ctx;
}

bool reactor_algorithm::has_ready_fibers() const noexcept { return !ready_.empty(); }

void reactor_algorithm::suspend_until(std::chrono::steady_clock::time_point const& tp) noexcept
{
    reactor_->poll(tp);
    switches_since_poll_ = 0; // just polled: no need to poll again soon
}

void reactor_algorithm::notify() noexcept { reactor_->wake(); }

reactor_algorithm& installed_algorithm()
{
    if (t_current)
        return *t_current;
    int err = 0;
    auto reactor = epoll_reactor::create(err);
    if (!reactor)
        throw std::system_error(-err, std::system_category(), "gipc: cannot create the fiber reactor");
    boost::fibers::use_scheduling_algorithm<reactor_algorithm>(std::move(reactor));
    return *t_current;
}

int wait_owned_fd(int fd, io_dir dir, steady_time deadline, std::uint64_t since)
{
    const int r = installed_algorithm().reactor().wait(fd, dir, deadline, true, since);
    // -EAGAIN (woken without news, after a fork) is what 0 already asks of the caller: try the
    // syscall, and wait again if it would block.
    return r == -EAGAIN ? 0 : r;
}

} // namespace gipc::detail
