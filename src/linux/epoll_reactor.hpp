// SPDX-License-Identifier: MIT
#pragma once
// epoll_reactor: the Linux backend of reactor.hpp. Only the backend's own files include this
// header: epoll_reactor.cpp (the loop) and epoll_io.cpp (the operations of io_ops.hpp, which
// try each syscall first and wait here on EAGAIN). One epoll instance and one eventfd per
// thread. Fibers of the owning thread park in wait() until an fd is ready; the thread's
// scheduling algorithm calls poll() on its dispatcher context to collect events and wake them.
// A fiber that nothing else of its thread could run beside (no other fiber ready, no sleeper
// due, no deferred task, no wake-up the dispatcher has not taken) polls the epoll set itself
// instead (wait_alone), as the dispatcher would have: a request/reply exchange then costs no
// fiber switch at all.
// The readiness primitives (wait, wait_any_thread, readiness, call_when_writable) are this
// backend's, not the interface's: an IOCP backend would wait for completions instead. The
// members reactor.hpp declares are documented there.
//
// Registrations are edge-triggered and, for fds gipc owns, persistent: an fd is added once and
// stays in the set while the thread keeps waiting on it, so that a thread's repeated waits on
// an fd cost no epoll_ctl. A registration whose events keep arriving while nothing of the
// thread waits for them (idle_limit in a row, with no wait in between) is taken out of the
// set again, and the next wait adds it back: an fd shared by threads (a handle one thread
// waited on once and another reads all day) would otherwise wake every thread that ever
// waited on it, at every edge. forget_everywhere() runs just before gipc closes an fd. fds of
// users (gipc::wait_readable) are registered for the length of one wait, because gipc cannot
// know when a user closes them.
//
// Fork: a child inherits the reactors of the parent's threads, whose epoll instances and
// eventfds it shares with the parent (both processes would take each other's events). Every
// fork bumps a process-wide generation (after_fork_child, from a pthread_atfork child handler
// that create() installs); a reactor made in an earlier generation is renewed by its own
// thread on its next use in the child (fresh epoll and eventfd, no registrations, its waiting
// fibers woken to try again), and the reactors of threads that did not survive the fork are
// never locked or written to again.

#include "../private.hpp"

#include "posix/fd.hpp"
#include "reactor.hpp"
#include "thread_safety.hpp"

#include <sys/epoll.h>

#include <boost/fiber/condition_variable.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

namespace gipc::detail {

class epoll_reactor final : public reactor {
public:
    // create makes a reactor, or returns nullptr with err set to -errno.
    static std::unique_ptr<epoll_reactor> create(int& err) noexcept;
    ~epoll_reactor() override;
    epoll_reactor(const epoll_reactor&) = delete;
    epoll_reactor& operator=(const epoll_reactor&) = delete;

    // wait parks the calling fiber until an operation on fd in dir can go on (fd became ready
    // after the call began), or until deadline. Only fibers of the owning thread call it. With
    // persistent, the registration outlives the wait and the owner of fd must call
    // forget_everywhere(fd) before closing it. Returns 0 when woken by progress, -ETIMEDOUT,
    // -EBADF when the fd was forgotten during the wait, -EAGAIN when woken without news (the
    // process forked and the registration was left in the parent's epoll set: try the
    // operation, and wait again if it would block), or -errno from epoll_ctl.
    // since: a readiness() count the caller saw with fd drained (see readiness).
    static constexpr std::uint64_t no_readiness = ~std::uint64_t{0};
    int wait(int fd, io_dir dir, steady_time deadline, bool persistent, std::uint64_t since = no_readiness) noexcept
    {
        return wait_impl(fd, dir, deadline, persistent, since, false);
    }
    // wait_any_thread is wait() for fibers of any thread (the relay reactor's waits; see
    // relay.hpp). Another thread's poll() may dispatch fd's progress between the caller's
    // EAGAIN and its registration, so after registering it asks the kernel (poll(2), no
    // timeout) whether fd is ready already, and returns 0 at once if it is.
    int wait_any_thread(int fd, io_dir dir, steady_time deadline, bool persistent) noexcept
    {
        return wait_impl(fd, dir, deadline, persistent, no_readiness, true);
    }
    // wait_alone is wait() (persistent) done by the calling fiber itself: it polls the epoll
    // set, up to until, where the dispatcher would have, for a fiber that nothing else of its
    // thread could run beside (reactor_algorithm::alone_until). The events it collects are
    // dispatched as poll() does; the callbacks due are left to the dispatcher's next poll(),
    // which does not block before it runs them. Returns 0 when fd progressed (or was
    // forgotten meanwhile: the caller's syscall tells), -EAGAIN when the poll ended without
    // news of fd (until passed, a wake(), another fd's event, a fork to recover from: the
    // caller then waits as usual, which hands the thread to the dispatcher), or -errno from
    // epoll_ctl. woken is set when the poll consumed a wake(). Only the owning thread.
    int wait_alone(int fd, io_dir dir, steady_time until, std::uint64_t since, bool& woken) noexcept;
    // readiness counts the readiness events this reactor dispatched for fd and dir, or is
    // no_readiness when it keeps no count for fd: not registered (never, or no longer: see
    // idle_limit) or its peer hung up (end of stream or an error is reported without further
    // events). The count survives a registration dropped and made again, and never goes back
    // while gipc holds the fd. A caller that saw fd drained, and finds the count unchanged
    // later, knows no data arrived in between that it has been told of, and may wait (passing
    // the count as since) without trying first. Only the owning thread.
    std::uint64_t readiness(int fd, io_dir dir) noexcept;
    // call_when_writable registers cb to run once, from poll() on this thread, at the first
    // EPOLLOUT edge of fd after the call. Persistent registration, as for wait(). Only the
    // owning thread calls it. Returns 0 or -errno.
    int call_when_writable(int fd, std::shared_ptr<reactor_callback> cb) noexcept;

    // The members of reactor.hpp, for this backend.
    std::uint64_t id() const noexcept { return id_; }
    void poll(steady_time deadline) noexcept;
    void wake() noexcept;
    static void forget_everywhere(int fd) noexcept;

    // after_fork_child starts a new fork generation: every reactor made before is renewed on
    // its next use by its thread (the thread that forked is the only one left in the child),
    // and the others are left alone. Runs in the child inside fork(), from the pthread_atfork
    // child handler create() installs, possibly while the forking thread holds gipc's locks:
    // it takes no lock and allocates nothing.
    static void after_fork_child() noexcept;

    // discard_all_after_fork closes the epoll and eventfd descriptors of every reactor
    // inherited by a forked child, without touching the registrations (an epoll_ctl on an
    // inherited epoll fd would change the parent's set) and without destroying anything the
    // inherited fibers may refer to. Only in a child right after fork, single-threaded. A
    // discarded reactor that is used all the same is renewed like any other inherited one.
    static void discard_all_after_fork() noexcept; // single-threaded: takes no lock

    // lock_registry / unlock_registry hold the process-wide reactor registry across fork() so
    // that the child never inherits it locked. Holding it also keeps every other thread out
    // of the reactors' mutexes but their own (forget_everywhere is the only way in), which
    // the renewal in the child relies on.
    static void lock_registry() noexcept GIPC_NO_THREAD_SAFETY_ANALYSIS; // held across fork()
    static void unlock_registry() noexcept GIPC_NO_THREAD_SAFETY_ANALYSIS;

    // idle_limit is how many events in a row, with no fiber waiting and no callback, a
    // persistent registration may deliver before it is taken out of the epoll set.
    static constexpr unsigned idle_limit = 4;

private:
    struct entry;
    epoll_reactor(posix::unique_fd epfd, posix::unique_fd evfd) noexcept;
    // open_fds makes an epoll instance with an eventfd in it. Returns 0 or -errno.
    static int open_fds(posix::unique_fd& epfd, posix::unique_fd& evfd) noexcept;
    // renew_if_forked renews the reactor when it was made before the latest fork (two atomic
    // loads otherwise). Only the owning thread, holding neither mtx_ nor the registry.
    void renew_if_forked() noexcept
    {
        if (fork_gen_.load(std::memory_order_relaxed) != current_fork_gen())
            renew();
    }
    static unsigned current_fork_gen() noexcept;
    void renew() noexcept;
    // prune_dead_locked drops from the registry the reactors of threads that did not survive
    // a fork (made in an earlier generation than gen, and not survivor, the forking thread's),
    // and closes the descriptors they share with the parent. Their objects stay: inherited
    // fibers and scheduler state may still refer to them, and those threads never run again.
    // The registry is held.
    static void prune_dead_locked(unsigned gen, const epoll_reactor* survivor) noexcept;
    // wake_orphans wakes the fibers and callbacks that waited in the epoll set of the parent.
    // Only from poll(), on the dispatcher.
    void wake_orphans() noexcept;
    // forget drops fd; gen is the current fork generation.
    void forget(int fd, unsigned gen) noexcept;
    void dispatch(const ::epoll_event* events, int n) noexcept;
    // poll_events is poll(), running the callbacks due only with run_callbacks. Returns true
    // when it consumed a wake().
    bool poll_events(steady_time deadline, bool run_callbacks) noexcept;
    // register_locked finds or creates fd's entry and makes sure epoll reports dir for it.
    // mtx_ must be held. Returns nullptr with err set on failure.
    entry* register_locked(int fd, io_dir dir, bool persistent, int& err) noexcept GIPC_REQUIRES(mtx_);
    // wait_impl is wait(); with recheck, as wait_any_thread().
    int wait_impl(int fd, io_dir dir, steady_time deadline, bool persistent, std::uint64_t since,
                  bool recheck) noexcept;

    posix::unique_fd epfd_;
    posix::unique_fd evfd_;
    std::atomic<bool> wake_pending_{false};
    // on_owner_thread: the caller is the thread that made the reactor (a forked child's
    // surviving thread keeps its id).
    bool on_owner_thread() const noexcept { return std::this_thread::get_id() == owner_; }

    // mtx_ guards table_ and every entry (its fields are not annotated: an entry does not
    // name its reactor); forget() may run on any thread.
    mutex mtx_;
    std::vector<std::shared_ptr<entry>> table_ GIPC_GUARDED_BY(mtx_); // indexed by fd
    std::uint32_t next_gen_ GIPC_GUARDED_BY(mtx_) = 1;
    // Callbacks due, filled by dispatch() and wake_orphans() under mtx_ and run by poll()
    // without it: the owning thread's dispatcher only.
    std::vector<std::shared_ptr<reactor_callback>> due_;
    // Entries registered in the parent's epoll set that had waiters or a callback when this
    // reactor was renewed after a fork; poll() wakes them. The owning thread only (renew()
    // and poll()); changed with mtx_ held, as the entries it holds are.
    std::vector<std::shared_ptr<entry>> orphans_;
    const std::thread::id owner_ = std::this_thread::get_id();
    std::uint64_t id_;
    // The fork generation this reactor's descriptors belong to. Written by the owning thread
    // (renew), read by any thread (wake, forget_everywhere).
    std::atomic<unsigned> fork_gen_;
};

} // namespace gipc::detail
