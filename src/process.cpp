// SPDX-License-Identifier: MIT
// start_process: fork, the child bootstrap, exit watching, and process lifetime duties.
#include "errors.hpp"
#include "reactor.hpp"
#include "child_state.hpp"
#include "linux/pidfd.hpp"
#include "pipe_end.hpp"
#include "socket_end.hpp"
#include "posix/fd.hpp"
#include "posix/spawn.hpp"
#include "process_start.hpp"
#include "scheduler.hpp"
#include "thread_safety.hpp"
#include "transfer.hpp"

#include <gipc/process.hpp>

#include <poll.h>
#include <pthread.h>
#include <stdio_ext.h>
#include <sys/eventfd.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>

namespace gipc::detail {

// src/process_handle.cpp's terminate() and kill() send 15 and 9.
static_assert(SIGTERM == 15 && SIGKILL == 9);

namespace {

// The children of this process not yet reaped, and the orphans (whose process object is
// gone) that the reaper thread watches. Allocated once and never destroyed, so that the
// reaper and the exit duties can use it during static destruction.
struct children_registry {
    mutex mtx; // lock order: thread_safety.hpp
    std::vector<std::shared_ptr<child_state>> live GIPC_GUARDED_BY(mtx);
    std::vector<std::shared_ptr<child_state>> orphans GIPC_GUARDED_BY(mtx);
    // Every child_state of this process, reaped or not: a forked child closes all their
    // pidfds. Guarded by all_mtx, not mtx, because a child_state may be destroyed while mtx is
    // held (when unregister_child drops the last reference).
    mutex all_mtx;
    std::vector<child_state*> all GIPC_GUARDED_BY(all_mtx);
    posix::unique_fd reaper_wake GIPC_GUARDED_BY(mtx); // eventfd
    bool reaper_started GIPC_GUARDED_BY(mtx) = false;
    bool exit_duties_registered GIPC_GUARDED_BY(mtx) = false;
};

children_registry* g_children = new children_registry;

} // namespace

child_state::child_state(pid_t pid, posix::unique_fd pidfd, std::string name, bool daemon, bool program, bool group)
    : pid_(pid), pidfd_(std::move(pidfd)), name_(std::move(name)), daemon_(daemon), program_(program), group_(group)
{
    lock_guard lk(g_children->all_mtx);
    g_children->all.push_back(this);
}

child_state::~child_state()
{
    {
        lock_guard lk(g_children->all_mtx);
        auto& all = g_children->all;
        all.erase(std::remove(all.begin(), all.end(), this), all.end());
    }
    if (pidfd_)
        forget_fd(pidfd_.get());
}

namespace {

// Names "Process-N" count from 1 in each process.
std::atomic<unsigned> g_name_counter{0};

// The parent-death pipe: a daemon child holds the read end and dies when it reads EOF, which
// happens when the last holder of the write end, its parent, is gone. Only a parent holds the
// write end: every child closes its inherited copy.
struct death_pipe {
    mutex mtx; // lock order: thread_safety.hpp
    posix::unique_fd read_end GIPC_GUARDED_BY(mtx);
    posix::unique_fd write_end GIPC_GUARDED_BY(mtx);
    unsigned daemons GIPC_GUARDED_BY(mtx) = 0; // live daemon children; the pipe is closed when none is left
    // In a daemon child: the pipe of its own parent. Set and read by the child's bootstrap
    // only, while the child has one thread.
    posix::unique_fd parent_read_end;
};
death_pipe* g_death = new death_pipe;

// daemon_gone and ensure_death_pipe keep the death pipe open exactly while daemons need it.
void release_death_pipe_if_unused() noexcept GIPC_REQUIRES(g_death->mtx)
{
    if (g_death->daemons == 0 && g_death->write_end) {
        g_death->write_end.reset();
        g_death->read_end.reset();
    }
}

void daemon_gone() noexcept
{
    lock_guard lk(g_death->mtx);
    if (g_death->daemons > 0)
        --g_death->daemons;
    release_death_pipe_if_unused();
}

void unregister_child(child_state* s)
{
    lock_guard lk(g_children->mtx);
    auto drop = [&](std::vector<std::shared_ptr<child_state>>& v) {
        v.erase(std::remove_if(v.begin(), v.end(), [&](const auto& p) { return p.get() == s; }), v.end());
    };
    drop(g_children->live);
    drop(g_children->orphans);
}

void reaper_main()
{
    std::vector<pollfd> fds;
    std::vector<std::shared_ptr<child_state>> watched;
    for (;;) {
        int wake_fd;
        {
            lock_guard lk(g_children->mtx);
            if (g_children->orphans.empty()) {
                // Nothing to watch: end, and give the eventfd back. adopt_orphan starts a
                // new reaper when needed.
                g_children->reaper_wake.reset();
                g_children->reaper_started = false;
                return;
            }
            watched = g_children->orphans;
            wake_fd = g_children->reaper_wake.get();
        }
        fds.assign(1, pollfd{wake_fd, POLLIN, 0});
        for (auto& s : watched)
            fds.push_back(pollfd{s->pidfd(), POLLIN, 0});
        if (::poll(fds.data(), fds.size(), -1) < 0) {
            // Let go of the watched children here, not under g_children->mtx at the top of the
            // loop: dropping the last reference forgets a pidfd, which takes the reactor
            // registry (lock order: registry before children, as fork takes them).
            watched.clear();
            continue;
        }
        if (fds[0].revents) {
            std::uint64_t v;
            [[maybe_unused]] auto r = ::read(wake_fd, &v, sizeof v);
        }
        for (std::size_t i = 1; i < fds.size(); ++i) {
            if (!fds[i].revents)
                continue;
            try {
                watched[i - 1]->poll(); // reaping unregisters it
            } catch (const std::system_error&) {
                // Not reapable by us (the program reaped it, or ignores SIGCHLD so that the
                // kernel did): nothing is left to watch.
                unregister_child(watched[i - 1].get());
            }
        }
        watched.clear();
    }
}

// start_reaper_locked starts the reaper thread if orphans wait for it and none runs. When its
// eventfd or its thread cannot be made (EMFILE, a thread limit), the orphans stay listed and
// every later start_process or process destructor tries again: a reaper never runs without
// its wake-up fd, and no orphan is forgotten.
void start_reaper_locked() noexcept GIPC_REQUIRES(g_children->mtx)
{
    if (g_children->reaper_started || g_children->orphans.empty())
        return;
    if (!g_children->reaper_wake) {
        g_children->reaper_wake.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        if (!g_children->reaper_wake)
            return;
    }
    const int err = posix::start_quiet_thread(
        [](void*) -> void* {
            reaper_main();
            return nullptr;
        },
        nullptr);
    if (err == 0)
        g_children->reaper_started = true;
}

// retry_deferred_reaping starts a reaper that could not be started before, if orphans wait.
void retry_deferred_reaping() noexcept
{
    lock_guard lk(g_children->mtx);
    start_reaper_locked();
}

// adopt_orphan hands a running child whose process object is gone to the reaper thread.
void adopt_orphan(std::shared_ptr<child_state> s) noexcept
{
    lock_guard lk(g_children->mtx);
    try {
        g_children->orphans.push_back(std::move(s));
    } catch (const std::bad_alloc&) {
        // Still listed as live: reaped at the latest by the exit duties.
        return;
    }
    if (g_children->reaper_started) {
        std::uint64_t one = 1;
        [[maybe_unused]] auto r = ::write(g_children->reaper_wake.get(), &one, sizeof one);
    } else {
        start_reaper_locked();
    }
}

} // namespace

std::vector<std::shared_ptr<child_state>> live_children()
{
    lock_guard lk(g_children->mtx);
    return g_children->live;
}

namespace {

void register_exit_duties()
{
    lock_guard lk(g_children->mtx);
    if (!g_children->exit_duties_registered) {
        std::atexit(exit_duties);
        g_children->exit_duties_registered = true;
    }
}

// ensure_death_pipe creates this process's parent-death pipe for daemon children and counts
// the daemon about to start (before fork(), so that the pipe cannot close in between).
void ensure_death_pipe()
{
    lock_guard lk(g_death->mtx);
    ++g_death->daemons;
    if (g_death->write_end)
        return;
    if (int err = posix::make_pipe(g_death->read_end, g_death->write_end, false); err < 0) {
        --g_death->daemons;
        throw_errno(err, "gipc: parent-death pipe");
    }
}

// watch_parent_death makes a daemon child die with its parent: SIGKILL through
// PR_SET_PDEATHSIG (which fires when the forking thread ends; gipc's fork thread lives as long
// as the process), and when the parent-death pipe reports EOF (also after an exec of the
// parent, which closes the pipe). The kernel itself delivers the second: the read end is set
// to signal this process with SIGKILL when the pipe changes state (O_ASYNC with F_SETSIG), so
// no thread is needed. Where fcntl refuses that, a thread blocked in read() does it. Throws
// std::system_error when neither can be set up (the child reports that as a setup failure).
void watch_parent_death(pid_t parent)
{
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    const int fd = g_death->parent_read_end.get(); // open as long as the process lives
    const bool signalled_by_kernel = ::fcntl(fd, F_SETOWN, ::getpid()) == 0 &&
                                     ::fcntl(fd, F_SETSIG, SIGKILL) == 0 &&
                                     ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_ASYNC) == 0;
    if (!signalled_by_kernel) {
        const int err = posix::start_quiet_thread(
            [](void* arg) -> void* {
                char c;
                const int pipe_fd = static_cast<int>(reinterpret_cast<std::intptr_t>(arg));
                posix::retry_eintr([&] { return ::read(pipe_fd, &c, 1); }); // EOF: the parent is gone
                ::kill(::getpid(), SIGKILL);
                return nullptr;
            },
            reinterpret_cast<void*>(static_cast<std::intptr_t>(fd)));
        if (err != 0)
            throw_errno(err, "gipc: cannot watch for the parent's death");
    }
    // The parent may have died before the watch began: then no state change is left to signal.
    pollfd hup{fd, POLLIN, 0};
    if (::getppid() != parent || posix::retry_eintr([&] { return ::poll(&hup, 1, 0); }) != 0)
        ::_exit(1);
}

// on_exit_in_child runs when a target calls exit(): registered last (in the child, before the
// target starts), it runs first among the exit handlers, so the parent's atexit handlers and
// static destructors, registered before it, never run in the child. The thread-local
// destructors of the calling thread have already run (exit() runs them first), so the child's
// fiber scheduler is gone: finish_child runs on a new thread, whose own is fresh.
void on_exit_in_child(int status, void*) noexcept
{
    pthread_t thread;
    if (posix::start_quiet_thread(
            [](void*) -> void* {
                finish_child();
                return nullptr;
            },
            nullptr, &thread) == 0) {
        ::pthread_join(thread, nullptr);
    } else {
        // No thread to flush on: queued frames are dropped, children are still seen to.
        exit_duties();
        std::fflush(nullptr);
    }
    ::_exit(status);
}

// run_target runs the target in the child, on the fork thread's copy, which has never run a
// fiber scheduler: no fiber of the parent exists on this thread, and the scheduler and reactor
// are made fresh on first use, like on any thread (the first gipc call installs gipc's), so a
// target that uses neither fibers nor gipc does not pay for them. It never returns.
[[noreturn]] void run_target(start_context& ctx, std::unique_ptr<child_entry> entry)
{
    run_child_target(
        ctx.name, [](void* e) { return static_cast<std::unique_ptr<child_entry>*>(e)->get()->run(); },
        [](void* e) noexcept { static_cast<std::unique_ptr<child_entry>*>(e)->reset(); }, &entry);
}

// take_fork_locks / release_fork_locks hold every gipc lock across fork() (in this order, and
// released in reverse), so that the child never inherits one held by a thread that does not
// exist there. Both the parent and the child release them after the fork.
// GIPC_NO_THREAD_SAFETY_ANALYSIS: the locks are held across fork() from one function to the
// other (and released in the child by the copy of the thread that took them), which the
// analysis cannot follow; the order is the one thread_safety.hpp writes down.
void take_fork_locks(start_context& ctx) GIPC_NO_THREAD_SAFETY_ANALYSIS
{
    end_registry_mutex().lock();
    reactor::lock_registry();
    g_children->mtx.lock();
    g_children->all_mtx.lock();
    const auto& ws = ctx.transfers->writers;
    for (std::size_t i = 0; i < ws.size(); ++i)
        if (std::find(ws.begin(), ws.begin() + i, ws[i]) == ws.begin() + i) // a writer given twice
            ws[i]->lock_for_fork();
    g_death->mtx.lock();
    orphan_writers_mutex().lock();
}

void release_fork_locks(start_context& ctx) GIPC_NO_THREAD_SAFETY_ANALYSIS
{
    orphan_writers_mutex().unlock();
    g_death->mtx.unlock();
    const auto& ws = ctx.transfers->writers;
    for (std::size_t i = 0; i < ws.size(); ++i)
        if (std::find(ws.begin(), ws.begin() + i, ws[i]) == ws.begin() + i)
            ws[i]->unlock_after_fork();
    g_children->all_mtx.unlock();
    g_children->mtx.unlock();
    reactor::unlock_registry();
    end_registry_mutex().unlock();
}

// In a forked child, which has only the thread that forked: forget_parent_children forgets the
// parent's children, reaped or not (keep_exit_duties: the atexit registration of the exit
// duties is inherited, as after a plain fork()); forget_parent_death_pipe closes the copy of
// the parent's death pipe and returns its read end. The inherited objects stay allocated
// (inherited state may refer to them, and their mutexes may have been copied locked).
// GIPC_NO_THREAD_SAFETY_ANALYSIS: they touch the registries without their locks, as a child
// with one thread may.
void forget_parent_children(bool keep_exit_duties) noexcept GIPC_NO_THREAD_SAFETY_ANALYSIS
{
    for (child_state* c : g_children->all)
        c->abandon_after_fork();
    posix::close_fd(g_children->reaper_wake.release());
    const bool duties = g_children->exit_duties_registered;
    g_children = new children_registry;
    if (keep_exit_duties)
        g_children->exit_duties_registered = duties;
    g_name_counter = 0;
}

posix::unique_fd forget_parent_death_pipe() noexcept GIPC_NO_THREAD_SAFETY_ANALYSIS
{
    g_death->write_end.reset();
    g_death->parent_read_end.reset();
    posix::unique_fd read_end = std::move(g_death->read_end);
    g_death = new death_pipe;
    return read_end;
}

// child_bootstrap is all the fork hygiene of a child, in order. Runs right after fork() in
// the child, on the copy of the fork thread (the only thread of the child), with every gipc
// lock held (taken before fork()) and every signal blocked.
[[noreturn]] void child_bootstrap(start_context& ctx)
{
    // 1. Release the locks quiesced across fork(): this thread took them in the parent.
    release_fork_locks(ctx);
    posix::close_fd(ctx.parent_fd);

    // 2. Signals: handlers reset, SIGPIPE ignored, mask cleared.
    posix::reset_signals_in_child();

    // 3. Stdio the parent had buffered is the parent's to write (it flushed before fork;
    //    anything another thread buffered since then is dropped here).
    __fpurge(stdout);
    __fpurge(stderr);

    // 4. The inherited reactors belong to the parent's threads: close their fds without
    //    touching their epoll sets, which the parent shares.
    reactor::discard_all_after_fork();

    // 5. Close every inherited gipc handle that was not transferred by this call; transferred
    //    writers drop their queues, which the parent delivers.
    try {
        std::vector<end_base*> kept;
        // A parent fiber of another thread may have held (or been locking) a transferred end's
        // side lock at fork time: the child's copies start unlocked (kept_after_fork clears
        // the lock's bits).
        for (read_end* r : ctx.transfers->readers)
            r->reset_lock_after_fork();
        for (write_end* w : ctx.transfers->writers)
            w->reset_lock_after_fork();
        for_each_transfer(*ctx.transfers, [&](end_base* e) {
            e->kept_after_fork();
            kept.push_back(e);
        });
        for (write_end* w : ctx.transfers->writers)
            w->keep_in_child();
        // Only written when some end is abandoned: every page the child writes costs it a
        // copy-on-write fault, and a child that inherits no other handle needs none here.
        auto& ends = end_registry();
        bool abandoned = false;
        for (end_base* e : ends)
            if (std::find(kept.begin(), kept.end(), e) == kept.end()) {
                e->abandon_after_fork();
                abandoned = true;
            }
        if (abandoned) {
            ends.clear();
            ends.insert(kept.begin(), kept.end());
        }

        // 6. The parent's children are not this process's: forget them, reaped or not.
        forget_parent_children(false);

        // 7. Parent death: only the parent holds the write end of its death pipe.
        posix::unique_fd read_end = forget_parent_death_pipe();
        if (ctx.options->daemon)
            become_daemon_child(ctx.parent, std::move(read_end));

        // 8. exit() in the target ends the child as a return does (see on_exit_in_child).
        end_on_exit_like_a_child();
    } catch (const std::system_error& e) {
        report_setup_failure(ctx.child_fd, e.code().value(), e.what());
    } catch (const std::bad_alloc&) {
        report_setup_failure(ctx.child_fd, ENOMEM, "gipc: out of memory while starting the child");
    } catch (const std::exception& e) {
        report_setup_failure(ctx.child_fd, EIO, e.what());
    }

    // 9. Wait until the parent holds this child's pidfd (EOF: it could not get one and will
    //    not watch this child, which then must not run), then tell it the target starts.
    char go = 0;
    if (posix::retry_eintr([&] { return ::recv(ctx.child_fd, &go, 1, 0); }) != 1 || go != go_byte)
        ::_exit(127);
    posix::retry_eintr([&] { return ::send(ctx.child_fd, &started_byte, 1, MSG_NOSIGNAL); });
    posix::close_fd(ctx.child_fd);

    // 10. Run the target on this thread, whose fiber world is fresh. (The parent's fork thread
    //     does not exist here: a pthread_atfork handler replaced its object.)
    //     The entry is taken without writing to its owner, which lives on the stack of the
    //     parent's calling thread: this process never returns to that frame, and a write there
    //     would copy the page.
    run_target(ctx, std::unique_ptr<child_entry>(static_cast<std::unique_ptr<child_entry>*>(ctx.way)->get()));
}

// t_in_gipc_fork is true on the fork thread while it forks: the pthread_atfork handlers that
// quiesce gipc's locks around a plain fork() of the program leave them to fork_locked then.
thread_local bool t_in_gipc_fork = false;

// fork_locked forks with gipc's locks quiesced so that the child never inherits one held by
// a thread that does not exist there. Runs on the fork thread, whose signals are all blocked,
// so no handler of the parent runs in the child before child_bootstrap resets them. Returns
// the pid, or -errno; never returns in the child. In the parent, it then closes the parent's
// copy of the child's end of the start socket and, once it holds the child's pidfd (in
// ctx.pidfd, or -errno there), lets the child go on: until then the child cannot exit, so
// nobody else can reap it and its pid cannot be reused before gipc holds its pidfd.
pid_t fork_locked(start_context& ctx)
{
    take_fork_locks(ctx);
    t_in_gipc_fork = true;
    const pid_t pid = ::fork();
    if (pid == 0) {
        t_in_gipc_fork = false;
        child_bootstrap(ctx);
    }
    const int fork_errno = errno;
    t_in_gipc_fork = false;
    release_fork_locks(ctx);
    if (pid < 0)
        return -fork_errno;
    posix::close_fd(std::exchange(ctx.child_fd, -1));
    ctx.pidfd = linux_pidfd::open(pid);
    if (ctx.pidfd >= 0)
        posix::retry_eintr([&] { return ::send(ctx.parent_fd, &go_byte, 1, MSG_NOSIGNAL); });
    return pid;
}

// Around a plain fork() of the program (not gipc's own, which fork_locked handles), gipc's
// process-wide locks are held by the forking thread, so that the child never inherits one held
// by a thread that does not exist there, and the child starts with none of the parent's
// children, no exit duties for them, and no copy of the parent-death pipe (a copy of its write
// end would keep the parent's daemon children from seeing their parent die).
// GIPC_NO_THREAD_SAFETY_ANALYSIS: pthread_atfork's handlers hold the locks from prepare to
// parent/child, across fork(), which the analysis cannot follow; the child's handler touches
// the registries without their locks, as the child has only the forking thread.
void plain_fork_prepare() noexcept GIPC_NO_THREAD_SAFETY_ANALYSIS
{
    if (t_in_gipc_fork)
        return;
    end_registry_mutex().lock();
    reactor::lock_registry();
    g_children->mtx.lock();
    g_children->all_mtx.lock();
    g_death->mtx.lock();
    orphan_writers_mutex().lock();
}

void plain_fork_parent() noexcept GIPC_NO_THREAD_SAFETY_ANALYSIS
{
    if (t_in_gipc_fork)
        return;
    orphan_writers_mutex().unlock();
    g_death->mtx.unlock();
    g_children->all_mtx.unlock();
    g_children->mtx.unlock();
    reactor::unlock_registry();
    end_registry_mutex().unlock();
}

void plain_fork_child() noexcept GIPC_NO_THREAD_SAFETY_ANALYSIS
{
    if (t_in_gipc_fork)
        return; // child_bootstrap does this and more
    plain_fork_parent(); // this thread took the locks
    forget_parent_children(true); // the atexit registration is inherited
    forget_parent_death_pipe();   // its read end closes here
}

[[maybe_unused]] const int g_plain_fork_handlers =
    ::pthread_atfork(plain_fork_prepare, plain_fork_parent, plain_fork_child);

// fork_thread: start_process does not fork on the calling thread but hands the fork to this
// helper thread, started on first use, which does nothing else and never runs a fiber. The
// child's only thread is the copy of the thread that called fork(), so the target runs right
// on it with a fresh scheduler and reactor (made on first use), and no fiber of the parent can
// ever run there.
// (Forking on the calling thread makes the child inherit that thread's scheduler, which Boost
// 1.74 cannot reset, so the child had to run the target on a new thread: that thread's
// creation, its first allocation (a new malloc arena) and its exit cost about half of what a
// start_process costs.) The calling thread blocks meanwhile, as it would in fork() itself.
// The object is never destroyed; a forked child (of gipc or of a plain fork()) makes a new
// one when it first needs it, since the thread is not there, and the object may have been
// locked at fork time.
class fork_thread {
public:
    // current is this process's fork thread (object), made on first use.
    static fork_thread& current()
    {
        fork_thread* t = g_current.load(std::memory_order_acquire);
        if (t)
            return *t;
        auto* made = new fork_thread;
        if (g_current.compare_exchange_strong(t, made, std::memory_order_acq_rel))
            return *made;
        delete made; // another thread made one first; ours never started
        return *t;
    }

    // run runs ctx.start(ctx) (fork_locked, or the exec way of spawn.cpp) on the fork thread;
    // returns the pid or -errno.
    pid_t run(start_context& ctx)
    {
        lock_guard one_at_a_time(users_);
        unique_lock lk(mtx_);
        if (int err = start_locked(); err < 0)
            return err;
        request_ = &ctx;
        posted_.notify_one();
        while (request_ != nullptr)
            finished_.wait(lk);
        return result_;
    }

private:
    int start_locked() GIPC_REQUIRES(mtx_)
    {
        if (started_)
            return 0;
        // The fork thread takes the orphan writers' mutex across fork(), and the first call
        // allocates its helper's state: make it here, on the calling thread, or the fork
        // thread's first fork would give it (and every child after) a malloc arena of its own.
        (void)orphan_writers_mutex();
        // And the registry of open ends, which every child's bootstrap reads: made once here,
        // not in each child (a first use initialises it).
        (void)end_registry();
        if (!g_reset_registered) {
            // Only forget the object in a forked child: the child makes a new one if it
            // starts processes of its own (allocating here would cost every child page faults).
            if (int err = ::pthread_atfork(nullptr, nullptr, [] { g_current.store(nullptr, std::memory_order_relaxed); });
                err != 0)
                return -err;
            g_reset_registered = true;
        }
        // Every signal stays blocked on the fork thread (it inherits the mask it is created
        // with): the process's signals go to the program's threads, and none is handled
        // between fork() and the child's reset of its handlers.
        const int err = posix::start_quiet_thread(
            [](void* self) -> void* {
                static_cast<fork_thread*>(self)->serve();
                return nullptr;
            },
            this);
        if (err != 0)
            return err;
        started_ = true;
        return 0;
    }

    [[noreturn]] void serve()
    {
        // Nothing on this thread allocates: a thread's first allocation gives it a malloc
        // arena of its own, which the child would inherit and keep using instead of the main
        // arena, which glibc frees for it after fork() (a non-main arena grows its heap with
        // an mprotect per extension). For the same reason the Boost.Fiber state of the child
        // is not made here in advance, although that would save each child ~10 us.
        unique_lock lk(mtx_);
        for (;;) {
            while (request_ == nullptr)
                posted_.wait(lk);
            start_context& ctx = *request_;
            lk.unlock();
            const pid_t pid = ctx.start(ctx);
            lk.lock();
            result_ = pid;
            request_ = nullptr;
            finished_.notify_one();
        }
    }

    // Lock order: thread_safety.hpp. condition_variable_any: it waits with the annotated
    // unique_lock (it allocates nothing in wait, only when constructed, on the caller's thread).
    mutex users_; // held by the one caller whose request is in progress
    mutex mtx_;   // guards what follows
    std::condition_variable_any posted_, finished_;
    start_context* request_ GIPC_GUARDED_BY(mtx_) = nullptr; // the request in progress; reset when it is done
    pid_t result_ GIPC_GUARDED_BY(mtx_) = 0;
    bool started_ GIPC_GUARDED_BY(mtx_) = false;

    static std::atomic<fork_thread*> g_current;
    static bool g_reset_registered; // guarded by the mtx_ of the current object
};

std::atomic<fork_thread*> fork_thread::g_current{nullptr};
bool fork_thread::g_reset_registered = false;

} // namespace

void report_setup_failure(int fd, int err, const char* what) noexcept
{
    start_failure_bytes msg;
    start_failure_message(err, what, msg);
    posix::retry_eintr([&] { return ::send(fd, msg, sizeof msg, MSG_NOSIGNAL); });
    ::_exit(127);
}

void become_daemon_child(pid_t parent, posix::unique_fd death_read_end)
{
    g_death->parent_read_end = std::move(death_read_end);
    watch_parent_death(parent);
}

void end_on_exit_like_a_child()
{
    if (::on_exit(on_exit_in_child, nullptr) != 0)
        throw_errno(-ENOMEM, "gipc: on_exit");
}

std::optional<int> child_state::poll()
{
    unique_lock lk(mtx_);
    if (status_ || !pidfd_)
        return status_;
    int status = 0;
    int r = linux_pidfd::try_reap(pidfd_.get(), status);
    if (r == 1 || r == -ECHILD) {
        // ECHILD: someone else reaped the child (SIGCHLD ignored, SA_NOCLDWAIT, a waitpid(-1)
        // elsewhere in the program). It has exited (the pidfd stays valid) and its status is
        // lost: 0, the convention of Python's subprocess.
        reaped(r == 1 ? status : 0);
        const std::optional<int> result = status_;
        lk.unlock();
        unregister_child(this);
        return result;
    }
    if (r < 0)
        throw_errno(r, "gipc: waitid for " + name_);
    return status_;
}

void child_state::wait_blocking()
{
    // The wait happens without mtx_, so that is_alive(), exitcode() and the like on other
    // threads never block behind it; the reap then takes mtx_ as poll() does.
    int fd;
    {
        lock_guard lk(mtx_);
        if (status_ || !pidfd_)
            return;
        fd = pidfd_.get(); // open as long as this object lives
    }
    linux_pidfd::wait_exited(fd); // an error leaves nothing to wait for: poll() says why
    try {
        poll();
    } catch (const std::system_error&) {
        // waitid failed (not our child any more): nothing left to wait for
    }
}

void child_state::reaped(int status)
{
    status_ = status;
    if (daemon_ && !program_)
        daemon_gone();
}

void child_state::signal(int sig)
{
    lock_guard lk(mtx_);
    if (status_ || !pidfd_)
        return; // reaped: the pid may belong to another process by now
    // A group leader is not reaped yet (status_ is empty): its pid is still its group's id.
    int r = group_ ? (::kill(-pid_, sig) == 0 ? 0 : -errno) : linux_pidfd::send_signal(pidfd_.get(), sig);
    if (r < 0 && r != -ESRCH)
        throw_errno(r, "gipc: signal " + name_);
}

namespace {

// reap_unstarted reaps a child that ended (or is about to end) without running its target.
// Blocks only briefly: such a child exits right after its failure report or the parent's EOF.
void reap_unstarted(pid_t pid, int pidfd) noexcept
{
    int status = 0;
    if (pidfd >= 0)
        linux_pidfd::reap_blocking(pidfd, status); // ECHILD: reaped by someone else
    else
        posix::retry_eintr([&] { return ::waitpid(pid, &status, 0); });
}

// receive_start_report reads what the child says before its target starts: 0 once it is
// starting, else the errno of its setup failure (its message in what), or -1 when the child
// ended without a word (killed during its setup).
int receive_start_report(int fd, std::string& what) noexcept
{
    start_failure_bytes msg;
    std::size_t have = 0;
    for (;;) {
        const auto n = posix::retry_eintr([&] { return ::recv(fd, msg + have, sizeof msg - have, 0); });
        if (n <= 0)
            break;
        have += std::size_t(n);
        if (msg[0] == started_byte || have == sizeof msg)
            break;
    }
    return read_start_report(msg, have, what);
}

} // namespace

process spawn(process_options options, std::unique_ptr<child_entry> entry, const transfer_list& transfers)
{
    return process_maker::start(std::move(options), transfers, fork_locked, &entry);
}

pid_t run_on_fork_thread(pid_t (*fn)(void*), void* arg)
{
    struct call {
        pid_t (*fn)(void*);
        void* arg;
    } c{fn, arg};
    start_context ctx{};
    ctx.start = [](start_context& x) {
        auto* cl = static_cast<call*>(x.way);
        return cl->fn(cl->arg);
    };
    ctx.way = &c;
    return fork_thread::current().run(ctx);
}

process process_maker::adopt_program(pid_t pid, posix::unique_fd pidfd, std::string name, bool daemon, bool group)
{
    std::shared_ptr<child_state> state;
    try {
        state = std::make_shared<child_state>(pid, std::move(pidfd), std::move(name), daemon, true, group);
        lock_guard lk(g_children->mtx);
        g_children->live.push_back(state);
    } catch (...) {
        const int fd = state ? state->pidfd() : pidfd.get();
        if (group)
            ::kill(-pid, SIGKILL);
        linux_pidfd::send_signal(fd, SIGKILL);
        reap_unstarted(pid, fd);
        throw;
    }
    return process(std::move(state));
}

void prepare_program_start()
{
    thread_algorithm();
    register_exit_duties();
    retry_deferred_reaping();
}

std::string next_child_name() { return "Process-" + std::to_string(g_name_counter.fetch_add(1) + 1); }

process process_maker::start(process_options options, const transfer_list& transfers,
                             pid_t (*ctx_start)(start_context&), void* way, void (*prepare)(start_context&))
{
    const bool forks = ctx_start == fork_locked;
    const char* const api = forks ? "start_process" : "spawn_process";
    thread_algorithm(); // every gipc call installs gipc's algorithm where the default runs
    register_exit_duties();
    retry_deferred_reaping();
    const std::string name = options.name.empty() ? next_child_name() : options.name;

    // Transferred handles must be open and idle; their queued frames go out first, so that
    // they precede whatever the child writes.
    check_transfers(transfers);
    for (auto* w : transfers.writers)
        flush(w);
    std::fflush(nullptr);

    // The start socket: the child reports on it whether its target starts, and waits on it
    // until gipc holds its pidfd.
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        throw_errno(-errno, std::string("gipc: ") + api + ": socketpair");
    posix::unique_fd parent_end(sv[0]);
    posix::unique_fd child_end(sv[1]);

    // flush() may have let other fibers run: from here to the end no fiber of this thread runs,
    // and none of another thread can start using a transferred end.
    transfer_reservation reserved(transfers);
    struct death_pipe_use {
        bool counted = false;
        ~death_pipe_use()
        {
            if (counted)
                daemon_gone();
        }
    } death_use;
    int death_read_fd = -1;
    if (options.daemon) {
        ensure_death_pipe();
        death_use.counted = true;
        lock_guard lk(g_death->mtx);
        death_read_fd = g_death->read_end.get(); // open while a daemon is counted
    }

    start_context ctx{&options, name, &transfers, ::getpid(), parent_end.get(), child_end.get(), -1,
                      death_read_fd, ctx_start, way};
    if (prepare)
        prepare(ctx);
    const pid_t pid = fork_thread::current().run(ctx);
    if (ctx.child_fd < 0)
        (void)child_end.release(); // the fork thread closed it
    if (pid < 0)
        throw_errno(pid, forks ? std::string("gipc: fork") : std::string("gipc: spawn_process: exec of ") + self_exe_path);
    if (ctx.pidfd < 0) {
        // The child cannot be watched: it waits for a go byte that never comes, sees EOF and
        // ends without running its target. gipc holds no pidfd, so it sends no signal.
        parent_end.reset();
        reap_unstarted(pid, -1);
        throw_errno(ctx.pidfd, std::string("gipc: ") + api + ": pidfd_open (Linux 5.3 or later needed)");
    }
    posix::unique_fd pidfd(ctx.pidfd);

    std::string what;
    const int report = receive_start_report(parent_end.get(), what);
    parent_end.reset();
    if (report != 0) {
        reap_unstarted(pid, pidfd.get());
        if (report > 0)
            throw_errno(-report, "gipc: " + name + " could not start: " + what);
        throw_errno(-ECHILD, "gipc: " + name + " ended before its target started");
    }

    std::shared_ptr<child_state> state;
    try {
        state = std::make_shared<child_state>(pid, std::move(pidfd), name, options.daemon);
        lock_guard lk(g_children->mtx);
        g_children->live.push_back(state);
    } catch (...) {
        // A child that cannot be watched must not be left running: kill it through its pidfd
        // and reap it, and leave the transferred handles open in the parent.
        const int fd = state ? state->pidfd() : pidfd.get();
        linux_pidfd::send_signal(fd, SIGKILL);
        reap_unstarted(pid, fd);
        throw;
    }
    death_use.counted = false; // the child_state counts the daemon from here

    // The transferred handles now belong to the child.
    reserved.commit();
    return process(std::move(state));
}

} // namespace gipc::detail

namespace gipc {

process::~process()
{
    if (!state_)
        return;
    try {
        if (!state_->poll())
            detail::adopt_orphan(std::move(state_));
        else
            detail::retry_deferred_reaping();
    } catch (...) {
        detail::adopt_orphan(std::move(state_));
    }
}

} // namespace gipc
