// SPDX-License-Identifier: MIT
#pragma once
/// @file
/// Process pools that survive their workers.
///
/// @code{.cpp}
/// int square(int x) { return x * x; }
///
/// gipc::pool workers;                              // one worker per CPU
/// auto f = workers.submit(square, 7);              // never blocks
/// int r = f.get();                                 // 49; blocks only this fiber
/// std::vector<int> all = workers.map(square, std::vector<int>{1, 2, 3}); // {1, 4, 9}
/// @endcode
///
/// A pool runs tasks in worker processes, gipc children started with start_process (or with
/// spawn_process, pool_options::spawn; on Windows, which has no fork, always with spawn_process,
/// whatever pool_options::spawn says) and reached over duplex pipes. Tasks follow the rules of
/// spawn_process: a function pointer or a lambda without captures, arguments msgpack-packable
/// values or gipc handles, the result msgpack-packable or void (checked at compile time); a task and its result travel as data, so the
/// same task runs in forked and in spawned workers. The pool's parent side is one dispatcher
/// fiber per worker on the thread that made the pool: it sends queued tasks to its worker
/// (several at once when more tasks wait than there are workers, which the pipe's write
/// coalescing turns into one write), collects the results and completes the futures. A worker
/// puts each result in memory it shares with the pool (one result too large for it, over 64
/// KiB, goes by the pipe) and tells its dispatcher when it is about to wait for more tasks, so a
/// batch costs one write each way; while a task runs long, the dispatcher looks at the shared
/// memory every few milliseconds, so the results before it are not held up. submit()
/// never blocks and may be called from any fiber of any thread; future::get() blocks only the
/// calling fiber. The pool's thread must let its fibers run (any blocking gipc or Boost.Fiber
/// call does).
///
/// A worker that dies (a signal, a crash, exit() in the task) fails only the task it was
/// running, with worker_lost_error: the results it had given are kept (they are in the shared
/// memory), tasks sent to it that it had not started go back to the queue, the worker is
/// replaced, and every other task completes: the pool never hangs and never breaks as a whole.
/// No task runs twice. A worker that dies between two tasks (killed from outside) fails none,
/// unless workers keep dying that way: the third in a row fails the task it was sent.
///
/// On Windows a worker that dies reports an exit code, never a signal: worker_lost_error's
/// what() names it ("exited with code 3"; -9 or -15 when this process ended the worker with
/// process::kill() or terminate()). The handles given to a task reach its worker by
/// DuplicateHandle (sockets by WSADuplicateSocketW) instead of a Unix socket; the result memory
/// is a section of the paging file instead of a memfd.

#include <gipc/detail/export.hpp>
#include <gipc/error.hpp>
#include <gipc/process.hpp>

#include <boost/fiber/future.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace gipc {

/// pool_options: the options of a pool.
struct pool_options {
    unsigned workers = 0;                     ///< 0: std::thread::hardware_concurrency(), at least 1
    bool spawn = false;                       ///< start workers with spawn_process (else start_process); no difference on Windows: always spawned
    unsigned max_tasks_per_worker = 0;        ///< 0: no limit; else a worker is replaced after this many tasks
    std::chrono::nanoseconds task_timeout{0}; ///< 0: none; else a longer task fails with timeout_error and its worker is replaced
    std::string name = "Pool";                ///< workers are named "<name>-<N>", N counting from 1
};

/// task_error: the task threw; what() is the exception's what().
class GIPC_EXPORT task_error : public error {
public:
    /// Made by the pool from what the worker reported.
    task_error(std::string type, const std::string& what) : error(what), type_(std::move(type)) {}
    /// type is the exception's type name, demangled ("std::out_of_range").
    const std::string& type() const noexcept { return type_; }

private:
    std::string type_;
};

/// worker_lost_error: the worker running the task died; what() names how (exit code or signal).
class GIPC_EXPORT worker_lost_error : public error {
public:
    using error::error;
};

namespace detail {
class pool_state;
template <class F>
struct task_result;
} // namespace detail

/// pool: worker processes that run tasks. Not copyable or movable.
class GIPC_EXPORT pool {
public:
    /// Starts the workers (std::system_error when one cannot be started; gipc::error for a
    /// name that is empty). Call on the thread whose fibers are to dispatch the tasks.
    explicit pool(pool_options options = {});
    /// close(), then join(): every submitted task completes first.
    ~pool();
    pool(const pool&) = delete;
    pool& operator=(const pool&) = delete;

    /// submit queues task(args...) and returns the future of its result (R: the task's return
    /// type; void allowed). Never blocks. A gipc handle argument (by value or std::ref, or a
    /// std::vector of handles) belongs to the pool from here on: the caller's handle is left
    /// closed; the worker that runs the task receives it (over a Unix socket, SCM_RIGHTS, with
    /// any bytes its reader had read ahead, after the parent's queued frames were written), and
    /// it is closed there when the task ends. closed_error for a closed handle argument. Throws gipc::error after close() or terminate(). The
    /// future fails with task_error when the task throws, worker_lost_error when its worker
    /// dies, timeout_error when it runs longer than pool_options::task_timeout, gipc::error when
    /// the pool is terminated first, and std::system_error when its result cannot be decoded.
    template <class F, class... Args>
    [[nodiscard]] boost::fibers::future<typename detail::task_result<F>::type> submit(F task, Args&&... args);

    /// map runs task on every element of inputs and returns the results in input order. After
    /// every task has ended, rethrows the failure of the first one in input order that failed
    /// (a submit refused because the pool was closed counts as the failure of that element;
    /// the tasks queued before it still run, and map waits for them). There is no chunk size
    /// to choose: the tasks are queued one by one and the dispatchers batch them by how long
    /// tasks take. Blocks only the calling fiber.
    template <class F, class Range>
    std::vector<typename detail::task_result<F>::type> map(F task, const Range& inputs);

    /// close refuses new tasks (submit throws gipc::error); the workers end once the queue is
    /// empty. Idempotent.
    void close();
    /// join blocks the calling fiber until every worker has ended (after close() or
    /// terminate(); without either it waits for one).
    void join();
    /// terminate kills the workers now; unfinished tasks fail with gipc::error. join() then
    /// returns at once.
    void terminate();
    /// workers is the number of workers the pool keeps.
    std::size_t workers() const noexcept;

private:
    std::shared_ptr<detail::pool_state> state_;
};

} // namespace gipc

#include <gipc/detail/pool.hpp>
