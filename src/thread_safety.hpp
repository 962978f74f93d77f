// SPDX-License-Identifier: MIT
#pragma once
// Clang's thread-safety annotations (-Wthread-safety, an error in scripts/clang.sh's build),
// empty for other compilers, and the annotated mutex gipc's own data is guarded by. Private
// header: never included from include/gipc/.
//
// GIPC_GUARDED_BY(m) on a member: read or written only with m held. GIPC_REQUIRES(m) on a
// function: called with m held. GIPC_EXCLUDES(m): called without it (the function takes it).
// GIPC_NO_THREAD_SAFETY_ANALYSIS: a function whose locking the analysis cannot follow (a lock
// held across fork(), a forked child that is single-threaded); its comment says why it is right.
//
// Lock order (a thread holding one of these takes only those below it; written here and only
// here):
//
//   1. a handle's side locks (locked_end in pipe_end.hpp: a write_end's and a read_end's; a
//      duplex takes the write side's first). They may be held across suspensions; nothing
//      below is.
//  1a. process.cpp's fork thread: users_, held by the one caller whose fork is in progress
//      while the fork thread takes 2-7 for it (so no thread that holds one of 2-9 may wait for
//      a fork); then the fork thread's mtx_, a leaf held only to post a request or its
//      result, never across the fork.
//   2. the registry of open ends (end_registry_mutex).
//   3. the reactor registry (epoll_reactor.cpp's registry).
//   4. process.cpp's child tables: g_children->mtx, then g_children->all_mtx.
//   5. writers' queue locks (write_end::qlock_; fork takes those of the transferred writers
//      in the order they were given).
//  5a. a child's mutex (process.cpp's child_state::mtx_): poll() reaps under it, and a reaped
//      daemon is counted off under 6. fork does not take it: a forked child never locks
//      the child_states it inherits.
//   6. process.cpp's parent-death watcher mutex (g_death->mtx).
//   7. the orphan writers' helper mutex (orphan_writers_mutex): adopting a writer takes it
//      with the writer's qlock_ held.
//   8. one reactor's mutex (epoll_reactor::mtx_): taken by a writer with its qlock_ held
//      (io::call_when_queue_room), by forget_everywhere and renew under the registry (3),
//      and by the owning thread's operations (their waits, readiness counts) and poll().
//   9. Boost.Fiber's internal spinlocks (a condition variable's, a scheduler's remote queue):
//      a reactor's waits and poll() take them with mtx_ held (wait_until, notify_all).
//
// fork() (process.cpp: take_fork_locks, plain_fork_prepare) takes 2-7 in this order and
// releases them in reverse, so that a child never inherits one held by a thread it does not
// have; reactors' mutexes are not held across fork (see epoll_reactor.hpp on renewal).
// The relay's mutex (relay.cpp) is a leaf like 7: held only briefly, with nothing else taken
// under it but 8. Since pick_next() does no work (deferred tasks run on the dispatcher or at
// gipc's own waits), no lock of gipc's is ever taken with a Boost.Fiber spinlock held.

#include "private.hpp"

#include "assert.hpp"

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>

#ifdef _WIN32
#include "windows/win32.hpp"
#endif

#if defined(__clang__)
#define GIPC_TSA(x) __attribute__((x))
#else
#define GIPC_TSA(x)
#endif

#define GIPC_CAPABILITY(x) GIPC_TSA(capability(x))
#define GIPC_SCOPED_CAPABILITY GIPC_TSA(scoped_lockable)
#define GIPC_GUARDED_BY(x) GIPC_TSA(guarded_by(x))
#define GIPC_PT_GUARDED_BY(x) GIPC_TSA(pt_guarded_by(x))
#define GIPC_REQUIRES(...) GIPC_TSA(requires_capability(__VA_ARGS__))
#define GIPC_EXCLUDES(...) GIPC_TSA(locks_excluded(__VA_ARGS__))
#define GIPC_ACQUIRE(...) GIPC_TSA(acquire_capability(__VA_ARGS__))
#define GIPC_RELEASE(...) GIPC_TSA(release_capability(__VA_ARGS__))
#define GIPC_TRY_ACQUIRE(...) GIPC_TSA(try_acquire_capability(__VA_ARGS__))
#define GIPC_ASSERT_CAPABILITY(x) GIPC_TSA(assert_capability(x))
#define GIPC_NO_THREAD_SAFETY_ANALYSIS GIPC_TSA(no_thread_safety_analysis)

namespace gipc::detail {

// plain_mutex: the lock under gipc's mutexes and its locks of static duration, BasicLockable and
// not annotated (code that holds one across fork() locks it outside the analysis). std::mutex on
// POSIX. On Windows a slim reader/writer lock of the system, taken exclusively: winpthread's
// std::mutex makes an event the first time two threads contend for it and keeps it until the
// mutex is destroyed, which a mutex of static duration never is (an open handle that handle
// counts see appear, depending on timing). Boost.Fiber's condition_variable_any waits with it.
#ifdef _WIN32
class plain_mutex {
public:
    plain_mutex() noexcept = default;
    plain_mutex(const plain_mutex&) = delete;
    plain_mutex& operator=(const plain_mutex&) = delete;
    void lock() noexcept { ::AcquireSRWLockExclusive(&lock_); }
    void unlock() noexcept { ::ReleaseSRWLockExclusive(&lock_); }
    bool try_lock() noexcept { return ::TryAcquireSRWLockExclusive(&lock_) != 0; }

private:
    SRWLOCK lock_ = SRWLOCK_INIT;
};
#else
using plain_mutex = std::mutex;
#endif

// wait_on_word blocks the calling thread while word holds old (it may return early: callers
// look again); wake_word_all wakes every thread blocked on word. std::atomic::wait and
// notify_all (a futex on Linux). On Windows WaitOnAddress and WakeByAddressAll: MinGW-w64's
// libstdc++ (GCC 12) has no futex-like std::atomic::wait, and its fallback, a pool of std::mutex
// and condition variables, loses a wakeup when the notify comes between its check of the value
// and its wait (a thread then slept forever on a free lock).
inline void wait_on_word(std::atomic<std::uint32_t>& word, std::uint32_t old) noexcept
{
#ifdef _WIN32
    static_assert(sizeof(word) == sizeof(old), "the word is its value");
    ::WaitOnAddress(reinterpret_cast<volatile void*>(&word), &old, sizeof old, INFINITE);
#else
    word.wait(old, std::memory_order_relaxed);
#endif
}

inline void wake_word_all(std::atomic<std::uint32_t>& word) noexcept
{
#ifdef _WIN32
    ::WakeByAddressAll(reinterpret_cast<void*>(&word));
#else
    word.notify_all();
#endif
}

// mutex: plain_mutex, annotated, and in builds with assertions aware of the thread that holds
// it, so that "m must be held" is checked (assert_held) as well as annotated.
class GIPC_CAPABILITY("mutex") mutex {
public:
    // Not declared constexpr: it is where std::mutex's constructor is (glibc), and it cannot
    // be with MinGW-w64's winpthread, whose std::mutex has none.
    mutex() noexcept = default;
    mutex(const mutex&) = delete;
    mutex& operator=(const mutex&) = delete;

    void lock() GIPC_ACQUIRE()
    {
        m_.lock();
        set_owner(std::this_thread::get_id());
    }
    void unlock() GIPC_RELEASE()
    {
        set_owner(std::thread::id());
        m_.unlock();
    }
    bool try_lock() GIPC_TRY_ACQUIRE(true)
    {
        if (!m_.try_lock())
            return false;
        set_owner(std::this_thread::get_id());
        return true;
    }

    // assert_held checks (where GIPC_ASSERT is compiled in) that the calling thread holds the
    // mutex, and tells the analysis so.
    void assert_held() const noexcept GIPC_ASSERT_CAPABILITY(this)
    {
#ifndef NDEBUG
        GIPC_ASSERT(owner_.load(std::memory_order_relaxed) == std::this_thread::get_id(),
                    "the calling thread holds the mutex");
#endif
    }

#ifndef _WIN32
    // native is the std::mutex itself, for code that locks it without the analysis (process.cpp
    // holds some of gipc's mutexes across fork()).
    std::mutex& native() noexcept { return m_; }
#endif

private:
    void set_owner([[maybe_unused]] std::thread::id id) noexcept
    {
#ifndef NDEBUG
        owner_.store(id, std::memory_order_relaxed);
#endif
    }

    // On Windows an SRW lock (plain_mutex), not winpthread's std::mutex.
    plain_mutex m_;
#ifndef NDEBUG
    std::atomic<std::thread::id> owner_{};
#endif
};

// lock_guard / unique_lock: std::lock_guard and std::unique_lock for mutex, annotated.
// unique_lock is what a condition variable waits with (Boost.Fiber's condition_variable_any
// unlocks and relocks it around the wait).
class GIPC_SCOPED_CAPABILITY lock_guard {
public:
    explicit lock_guard(mutex& m) GIPC_ACQUIRE(m) : m_(m) { m_.lock(); }
    ~lock_guard() GIPC_RELEASE() { m_.unlock(); }
    lock_guard(const lock_guard&) = delete;
    lock_guard& operator=(const lock_guard&) = delete;

private:
    mutex& m_;
};

class GIPC_SCOPED_CAPABILITY unique_lock {
public:
    explicit unique_lock(mutex& m) GIPC_ACQUIRE(m) : m_(m) { lock(); }
    ~unique_lock() GIPC_RELEASE()
    {
        if (owns_)
            m_.unlock();
    }
    unique_lock(const unique_lock&) = delete;
    unique_lock& operator=(const unique_lock&) = delete;

    void lock() GIPC_ACQUIRE()
    {
        GIPC_ASSERT(!owns_, "a unique_lock is locked once");
        m_.lock();
        owns_ = true;
    }
    void unlock() GIPC_RELEASE()
    {
        GIPC_ASSERT(owns_, "a unique_lock is unlocked once");
        owns_ = false;
        m_.unlock();
    }
    bool owns_lock() const noexcept { return owns_; }

private:
    mutex& m_;
    bool owns_ = false;
};

} // namespace gipc::detail
