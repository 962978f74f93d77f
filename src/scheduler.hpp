// SPDX-License-Identifier: MIT
#pragma once
// reactor_algorithm: gipc's Boost.Fiber scheduling algorithm. A round-robin ready queue; when
// nothing is ready the dispatcher sleeps in the thread's epoll_reactor until an fd event, the
// next timer of Boost.Fiber's sleep queue, or notify() from another thread.

#include "linux/epoll_reactor.hpp"

#include <boost/fiber/algo/algorithm.hpp>
#include <boost/fiber/context.hpp>
#include <boost/fiber/scheduler.hpp>

#include <memory>
#include <vector>

namespace gipc::detail {

// switch_task: work that must run on a thread before one of its fibers next switches away
// (gipc's write queues flush here). run_before_switch() is called from inside the scheduler,
// so it must not block, suspend, or use Boost.Fiber primitives.
class switch_task {
public:
    virtual void run_before_switch() noexcept = 0;

protected:
    ~switch_task() = default;
};

class reactor_algorithm final : public boost::fibers::algo::algorithm {
public:
    explicit reactor_algorithm(std::unique_ptr<epoll_reactor> reactor) noexcept;
    ~reactor_algorithm() override;

    void awakened(boost::fibers::context* ctx) noexcept override;
    boost::fibers::context* pick_next() noexcept override;
    bool has_ready_fibers() const noexcept override;
    void suspend_until(std::chrono::steady_clock::time_point const& tp) noexcept override;
    void notify() noexcept override;

    epoll_reactor& reactor() noexcept { return *reactor_; }

    // run_before_switch queues task to run once, the next time a fiber of this thread
    // switches away. Only the owning thread calls it.
    void run_before_switch(std::shared_ptr<switch_task> task)
    {
        before_switch_.push_back(std::move(task));
    }

    // current is the calling thread's algorithm, or nullptr when gipc's is not installed.
    static reactor_algorithm* current() noexcept;

private:
    boost::fibers::scheduler::ready_queue_type ready_;
    std::unique_ptr<epoll_reactor> reactor_;
    std::vector<std::shared_ptr<switch_task>> before_switch_;
    std::vector<std::shared_ptr<switch_task>> running_; // reused to avoid allocations
    unsigned switches_since_poll_ = 0;
};

// installed_algorithm installs reactor_algorithm on the calling thread if needed and returns
// it. Throws std::system_error when the reactor cannot be created.
reactor_algorithm& installed_algorithm();

// wait_owned_fd parks the calling fiber until fd, which gipc owns and will forget_fd() before
// closing, is ready for dir after the call began, or until deadline. The caller has just seen
// EAGAIN. Returns 0 (try the syscall again; a wake-up is not a promise that it succeeds),
// -ETIMEDOUT or -errno.
int wait_owned_fd(int fd, io_dir dir, steady_time deadline,
                  std::uint64_t since = epoll_reactor::no_readiness);

// forget_fd must be called before gipc closes an fd that wait_owned_fd may have seen.
inline void forget_fd(int fd) noexcept { epoll_reactor::forget_everywhere(fd); }

} // namespace gipc::detail
