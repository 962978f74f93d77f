// SPDX-License-Identifier: MIT
#pragma once
// fiber_completion: the part of an operation of the IOCP backend that a fiber waits for, on the
// fiber's stack or the heap (iocp_io.cpp's fiber_op; readiness.cpp's ready_wait). complete()
// runs on the target reactor's thread, which may be another thread than the fiber's (the
// relay's): done and the condition variable carry the news across. Only the backend's own files
// include this header.

#include "../private.hpp"

#include "windows/iocp_reactor.hpp"

#include <boost/fiber/condition_variable.hpp>

#include <mutex>

namespace gipc::detail {

struct fiber_completion : overlapped_op {
    plain_mutex m;
    boost::fibers::condition_variable_any cv;
    bool done = false; // guarded by m
    DWORD error = 0;   // guarded by m: the operation's Win32 error code (0: it succeeded)
    DWORD bytes = 0;   // guarded by m: what it moved (readiness.cpp: the events WSAPoll reported)

    fiber_completion() noexcept { complete = &finish; }

    static void finish(overlapped_op* base, DWORD e, DWORD n) noexcept
    {
        auto* op = static_cast<fiber_completion*>(base);
        // Notified with m held: a waiter on another thread whose wait timed out meanwhile sees
        // done only once it has m, so it cannot return and end the operation's life (its
        // fiber's stack) while notify_all still uses the condition variable. After the unlock
        // nothing here touches the operation.
        std::lock_guard lk(op->m);
        op->done = true;
        op->error = e;
        op->bytes = n;
        op->cv.notify_all();
    }

    // wait_done parks the fiber until the packet came, or deadline (true: it came).
    bool wait_done(steady_time deadline)
    {
        std::unique_lock lk(m);
        while (!done) {
            if (cv.wait_until(lk, deadline) == boost::fibers::cv_status::timeout)
                return done;
        }
        return true;
    }
    void wait_done() { wait_done(steady_time::max()); }
};

} // namespace gipc::detail
