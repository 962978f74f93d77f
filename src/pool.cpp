// SPDX-License-Identifier: MIT
// gipc::pool: worker processes reached over duplex pipes, one dispatcher fiber per worker on
// the pool's thread.
//
// A task travels as one frame, a msgpack array [id, invoker, target, handles, arguments]
// (invoker and target as code_location, so forked and spawned workers run it alike; handles
// as handle_header, their fds indices into the fds sent with the task over the worker's
// Unix socket, SCM_RIGHTS, just before the frame); its result comes back
// as [id, true, result] or [id, false, call_failure]. A dispatcher takes a batch of tasks from
// the queue (one task while no more wait than there are workers, else its share, at most
// max_batch and at most batch_budget_seconds of the pool's typical task time), puts them all
// (the writer's coalescing makes that one write), then reads their results in order. A worker
// writes each result before it starts its next task, so when it dies the parent knows which
// task was running: the first without a result. The running task then fails with
// worker_lost_error, and the tasks of the batch it had not started go back to the front of the
// queue.
#include "errors.hpp"
#include "handle_transfer.hpp"
#include "pipe_end.hpp"
#include "posix/fd.hpp"
#include "socket_end.hpp"

#include <gipc/pool.hpp>

#include <gipc/detail/call.hpp>
#include <gipc/pipe.hpp>
#include <gipc/process.hpp>
#include <gipc/runtime.hpp>

#include <boost/fiber/all.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace gipc::detail {

namespace {

constexpr std::size_t max_batch = 64;
// A batch holds at most this much of the pool's typical task time (the tasks behind one that
// runs long wait for it, even while another worker is idle): short tasks go 64 at a time, tasks
// of a millisecond or more one at a time.
constexpr double batch_budget_seconds = 0.0005;

// Locations of code, by address: found once per process (dl_iterate_phdr walks every object).
code_location cached_location(std::uintptr_t address)
{
    static std::mutex mtx;
    static std::map<std::uintptr_t, code_location> known;
    {
        std::lock_guard lk(mtx);
        if (auto it = known.find(address); it != known.end())
            return it->second;
    }
    code_location where = locate_code(address);
    std::lock_guard lk(mtx);
    known.emplace(address, where);
    return where;
}

struct queued_task {
    std::uint64_t id = 0;
    std::string frame;
    std::unique_ptr<pool_sink> sink;
    // Handle arguments: the handles (the pool owns them), their ends in the order the frame's
    // fd indices count, and the writers among them.
    std::vector<std::shared_ptr<void>> keep;
    std::vector<end_base*> ends;
    std::vector<write_end*> writers;
};

constexpr int max_task_fds = 250; // SCM_RIGHTS carries at most 253 fds in one message

// send_fds passes fds over a Unix socket in one message. Throws std::system_error.
void send_fds(int sock, const std::vector<int>& fds)
{
    char byte = 'h';
    iovec iov{&byte, 1};
    std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    if (posix::retry_eintr([&] { return ::sendmsg(sock, &msg, MSG_NOSIGNAL); }) < 0)
        throw_errno(-errno, "gipc: passing a task's handles to its worker");
}

// receive_fds waits (blocking only this fiber) for the fds of one task, close-on-exec.
std::vector<posix::unique_fd> receive_fds(int sock)
{
    for (;;) {
        char byte;
        iovec iov{&byte, 1};
        std::vector<char> control(CMSG_SPACE(sizeof(int) * max_task_fds));
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.data();
        msg.msg_controllen = control.size();
        const ssize_t n = ::recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            gipc::wait_readable(sock);
            continue;
        }
        if (n <= 0)
            throw error("gipc: a pool worker lost its parent's socket while receiving a task's handles");
        std::vector<posix::unique_fd> fds;
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                continue;
            const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (std::size_t i = 0; i < count; ++i) {
                int fd;
                std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                fds.emplace_back(fd);
            }
        }
        if (msg.msg_flags & MSG_CTRUNC)
            throw error("gipc: a task's handles did not all reach its worker");
        return fds;
    }
}

// describe_end says how a process ended, for worker_lost_error.
std::string describe_end(std::optional<int> code)
{
    if (!code)
        return "did not end";
    if (*code < 0) {
        const char* name = ::sigdescr_np(-*code);
        return "was killed by signal " + std::to_string(-*code) + (name ? std::string(" (") + name + ")" : "");
    }
    return "exited with code " + std::to_string(*code);
}

} // namespace

// pool_worker_main is a worker's target: run tasks until the pool closes the pipe. Handles
// given to tasks arrive over fds (SCM_RIGHTS), one message per task that has any.
int pool_worker_main(gipc::duplex d, gipc::net::stream fds)
{
    std::map<std::pair<std::string, std::uint64_t>, std::uintptr_t> found;
    auto address_of = [&](const code_location& where) {
        auto key = std::make_pair(where.object, where.offset);
        if (auto it = found.find(key); it != found.end())
            return it->second;
        const std::uintptr_t a = find_code(where);
        found.emplace(std::move(key), a);
        return a;
    };
    msgpack::sbuffer result;
    msgpack::sbuffer reply;
    for (;;) {
        std::string frame;
        try {
            frame = d.get_bytes();
        } catch (const eof_error&) {
            return 0; // the pool is done with this worker
        }
        const msgpack::object_handle oh = msgpack::unpack(frame.data(), frame.size());
        const msgpack::object& task = oh.get();
        if (task.type != msgpack::type::ARRAY || task.via.array.size != 5)
            throw error("gipc: a pool worker received a malformed task");
        const auto id = task.via.array.ptr[0].as<std::uint64_t>();
        result.clear();
        bool ok = true;
        try {
            auto headers = task.via.array.ptr[3].as<std::vector<handle_header>>();
            spawned_handles handles;
            if (!headers.empty()) {
                std::vector<posix::unique_fd> got = receive_fds(fds.native_handle());
                for (auto& h : headers)
                    for (int& fd : h.fds) {
                        if (fd < 0 || std::size_t(fd) >= got.size() || !got[std::size_t(fd)])
                            throw error("gipc: a pool task's handles did not arrive whole");
                        fd = got[std::size_t(fd)].release();
                    }
                handles = rebuild_handles(headers); // closed when the task is done with them
            }
            auto invoker = reinterpret_cast<pool_invoker>(address_of(task.via.array.ptr[1].as<code_location>()));
            invoker(address_of(task.via.array.ptr[2].as<code_location>()), task.via.array.ptr[4], handles, result);
        } catch (...) {
            ok = false;
            result.clear();
            msgpack::pack(result, describe_current_exception());
        }
        reply.clear();
        msgpack::packer<msgpack::sbuffer> pk(reply);
        pk.pack_array(3);
        pk.pack(id);
        pk.pack(ok);
        reply.write(result.data(), result.size());
        // Written before the next task starts: should that task kill the worker, the parent
        // knows exactly which task was running (the first one without a result).
        d.put_bytes(std::string_view(reply.data(), reply.size()));
        d.flush();
    }
}

class pool_state : public std::enable_shared_from_this<pool_state> {
public:
    explicit pool_state(pool_options o) : options(std::move(o)) {}

    pool_options options;
    std::size_t size = 1;
    boost::fibers::mutex mtx;
    boost::fibers::condition_variable changed;
    std::deque<queued_task> queue;
    std::vector<process*> alive; // the workers' processes, for terminate()
    bool closed = false;
    bool terminated = false;
    unsigned dispatchers = 0;
    unsigned next_worker = 0;
    // The typical time of a task, as the parent sees it (a moving average of the time from one
    // result to the next): what batches are sized by. It starts at a millisecond (one task at a
    // time) and adapts within a few results.
    double task_seconds = 0.001;
    std::uint64_t next_id = 0;

    // worker: one worker process and the parent's end of its pipe.
    struct worker {
        worker(process proc, duplex end, std::shared_ptr<socket_end> sock)
            : p(std::move(proc)), d(std::move(end)), fds(std::move(sock))
        {
        }
        ~worker()
        {
            if (fds)
                fds->close();
        }
        process p;
        duplex d;
        // The parent's end of the Unix socket that carries handles: a registered end, so that
        // forked children (other workers) close their copies.
        std::shared_ptr<socket_end> fds;
        unsigned done = 0;
    };

    // start_worker starts a worker (throws as start_process / spawn_process do).
    std::unique_ptr<worker> start_worker()
    {
        process_options po;
        {
            std::lock_guard lk(mtx);
            po.name = options.name + "-" + std::to_string(++next_worker);
        }
        po.daemon = true; // workers die with the pool's process
        auto [mine, theirs] = duplex_pipe();
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
            throw_errno(-errno, "gipc: pool: socketpair");
        auto parent_sock = std::make_shared<socket_end>(posix::unique_fd(sv[0]), "stream");
        parent_sock->register_open();
        // The worker's end, as a gipc handle (a net::stream) so that it is transferred.
        spawned_handles one;
        one.items.push_back({'s', nullptr, nullptr, std::make_shared<socket_end>(posix::unique_fd(sv[1]), "stream")});
        one.items.back().s->register_open();
        net::stream worker_sock = detail_access::take_spawned<net::stream>(one, 0);
        auto w = std::make_unique<worker>(
            options.spawn ? spawn_process(po, pool_worker_main, std::move(theirs), std::move(worker_sock))
                          : start_process(po, pool_worker_main, std::move(theirs), std::move(worker_sock)),
            std::move(mine), std::move(parent_sock));
        std::lock_guard lk(mtx);
        alive.push_back(&w->p);
        return w;
    }

    // retire ends a worker: the pipe closed (it exits at EOF; killed when kill is set), joined.
    void retire(std::unique_ptr<worker>& w, bool kill)
    {
        if (!w)
            return;
        {
            std::lock_guard lk(mtx);
            alive.erase(std::remove(alive.begin(), alive.end(), &w->p), alive.end());
        }
        if (kill)
            w->p.kill();
        try {
            w->d.close();
        } catch (const std::exception&) {
        }
        if (!w->p.join(std::chrono::seconds(10))) {
            w->p.kill();
            w->p.join();
        }
        w.reset();
    }

    // requeue puts the tasks a worker had not started back at the front of the queue.
    void requeue(std::vector<queued_task>& batch, std::size_t from)
    {
        std::lock_guard lk(mtx);
        for (std::size_t i = batch.size(); i > from; --i)
            queue.push_front(std::move(batch[i - 1]));
        batch.clear();
        changed.notify_all();
    }

    void dispatch(std::unique_ptr<worker> w) noexcept;
};

void pool_state::dispatch(std::unique_ptr<worker> w) noexcept
{
    std::vector<queued_task> batch;
    for (;;) {
        {
            std::unique_lock lk(mtx);
            changed.wait(lk, [&] { return !queue.empty() || closed || terminated; });
            if (terminated || queue.empty())
                break;
            std::size_t take = 1;
            if (queue.size() > size) {
                const double fits = batch_budget_seconds / std::max(task_seconds, 1e-9);
                take = std::min({max_batch, queue.size() / size, std::size_t(std::max(1.0, fits))});
            }
            if (options.max_tasks_per_worker > 0 && w)
                take = std::min<std::size_t>(take, options.max_tasks_per_worker - w->done);
            // A task with handles goes alone: its handles leave the parent when it is sent, so it
            // must never wait behind another task that could lose the worker.
            for (std::size_t i = 0; i < take && !queue.empty(); ++i) {
                if (!queue.front().ends.empty() && !batch.empty())
                    break;
                batch.push_back(std::move(queue.front()));
                queue.pop_front();
                if (!batch.back().ends.empty())
                    break;
            }
        }
        // A worker that died while idle (killed from outside) is replaced before it is sent
        // anything, so that no task is failed for a death it had no part in.
        if (w && !w->p.is_alive())
            retire(w, false);
        if (!w) {
            try {
                w = start_worker();
            } catch (...) {
                // No worker can start now: the first task fails with why, the others wait.
                batch.front().sink->fail(std::current_exception());
                requeue(batch, 1);
                boost::this_fiber::sleep_for(std::chrono::milliseconds(10));
                continue;
            }
        }
        std::size_t i = 0;
        try {
            for (auto& t : batch) {
                if (!t.ends.empty()) {
                    // Frames the parent queued on a transferred writer go first; then the fds
                    // travel, and the parent's copies close.
                    for (write_end* wr : t.writers)
                        flush(wr);
                    std::vector<int> fds;
                    for (end_base* e : t.ends)
                        fds.push_back(e->fd());
                    send_fds(w->fds->fd(), fds);
                    t.keep.clear();
                    t.ends.clear();
                    t.writers.clear();
                }
                w->d.put_bytes(t.frame);
            }
            auto since = std::chrono::steady_clock::now();
            for (; i < batch.size(); ++i) {
                std::string frame = options.task_timeout.count() > 0 ? w->d.get_bytes(options.task_timeout)
                                                                      : w->d.get_bytes();
                {
                    const auto now = std::chrono::steady_clock::now();
                    const double took = std::chrono::duration<double>(now - since).count();
                    since = now;
                    std::lock_guard lk(mtx);
                    task_seconds = 0.8 * task_seconds + 0.2 * took;
                }
                const msgpack::object_handle oh = msgpack::unpack(frame.data(), frame.size());
                const msgpack::object& r = oh.get();
                if (r.type != msgpack::type::ARRAY || r.via.array.size != 3 ||
                    r.via.array.ptr[0].as<std::uint64_t>() != batch[i].id)
                    throw decode_error("gipc: a pool worker sent a malformed result");
                if (r.via.array.ptr[1].as<bool>()) {
                    batch[i].sink->deliver(r.via.array.ptr[2]);
                } else {
                    const auto f = r.via.array.ptr[2].as<call_failure>();
                    batch[i].sink->fail(std::make_exception_ptr(task_error(f.type, f.what)));
                }
                batch[i].sink.reset();
                ++w->done;
            }
            batch.clear();
            if (options.max_tasks_per_worker > 0 && w->done >= options.max_tasks_per_worker)
                retire(w, false); // recycled: the next batch starts a new one
        } catch (const timeout_error&) {
            const std::string name = w->p.name();
            retire(w, true);
            batch[i].sink->fail(std::make_exception_ptr(
                timeout_error("gipc: the task ran longer than the pool's task_timeout; worker " + name + " was killed")));
            requeue(batch, i + 1);
        } catch (const std::exception& e) {
            // The worker died (EOF, a broken pipe) or sent garbage: the task it ran fails.
            const std::string name = w->p.name();
            const pid_t pid = w->p.pid();
            const bool died = w->p.join(std::chrono::seconds(5));
            const std::optional<int> code = died ? w->p.exitcode() : std::nullopt;
            retire(w, true);
            bool was_terminated;
            {
                std::lock_guard lk(mtx);
                was_terminated = terminated;
            }
            if (was_terminated)
                batch[i].sink->fail(std::make_exception_ptr(error("gipc: the pool was terminated")));
            else if (died)
                batch[i].sink->fail(std::make_exception_ptr(worker_lost_error(
                    "gipc: worker " + name + " (pid " + std::to_string(pid) + ") running the task " + describe_end(code))));
            else
                batch[i].sink->fail(std::make_exception_ptr(worker_lost_error(
                    "gipc: worker " + name + " (pid " + std::to_string(pid) + ") failed: " + e.what())));
            requeue(batch, i + 1);
        }
    }
    retire(w, false);
    std::lock_guard lk(mtx);
    if (terminated) {
        for (auto& t : queue)
            t.sink->fail(std::make_exception_ptr(error("gipc: the pool was terminated")));
        queue.clear();
    }
    --dispatchers;
    changed.notify_all();
}

void pool_submit(pool_state& state, pool_request request)
{
    queued_task t;
    msgpack::sbuffer frame;
    msgpack::packer<msgpack::sbuffer> pk(frame);
    pk.pack_array(5);
    std::unique_lock lk(state.mtx, std::defer_lock);
    {
        // The id first: frames of one pool are numbered in submit order.
        std::lock_guard id_lock(state.mtx);
        if (state.closed || state.terminated)
            throw error("gipc: the pool takes no more tasks (closed or terminated)");
        t.id = ++state.next_id;
    }
    pk.pack(t.id);
    pk.pack(cached_location(request.invoker));
    pk.pack(cached_location(request.target));
    // The handles: each end once, numbered in the order its fd is sent.
    if (request.handles.transfers.closed_argument)
        throw closed_error("gipc: cannot give a pool task a handle that is closed or moved from");
    std::vector<handle_header> headers;
    for (const auto& h : request.handles.handles) {
        handle_header hh = describe_handle(h);
        for (std::size_t j = 0; j < h.ends.size(); ++j) {
            end_base* e = h.ends[j];
            if (e->in_use())
                throw locked_error("gipc: cannot give a pool task " + e->name() + ": another fiber is using it");
            auto at = std::find(t.ends.begin(), t.ends.end(), e);
            if (at == t.ends.end()) {
                t.ends.push_back(e);
                if (auto* wr = dynamic_cast<write_end*>(e))
                    t.writers.push_back(wr);
                at = t.ends.end() - 1;
            }
            hh.fds[j] = int(at - t.ends.begin());
        }
        headers.push_back(std::move(hh));
    }
    if (t.ends.size() > std::size_t(max_task_fds))
        throw error("gipc: a pool task can be given at most 250 fds");
    pk.pack(headers);
    frame.write(request.handles.args.data(), request.handles.args.size());
    t.frame.assign(frame.data(), frame.size());
    t.keep = std::move(request.keep);
    t.sink = std::move(request.sink);
    lk.lock();
    if (state.closed || state.terminated)
        throw error("gipc: the pool takes no more tasks (closed or terminated)");
    state.queue.push_back(std::move(t));
    lk.unlock();
    state.changed.notify_all();
}

} // namespace gipc::detail

namespace gipc {

pool::pool(pool_options options)
{
    if (options.name.empty())
        throw error("gipc: pool_options::name must not be empty");
    state_ = std::make_shared<detail::pool_state>(std::move(options));
    auto& st = *state_;
    st.size = st.options.workers > 0 ? st.options.workers : std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::unique_ptr<detail::pool_state::worker>> started;
    try {
        for (std::size_t i = 0; i < st.size; ++i)
            started.push_back(st.start_worker());
    } catch (...) {
        for (auto& w : started)
            st.retire(w, true);
        throw;
    }
    st.dispatchers = unsigned(st.size);
    for (auto& w : started)
        boost::fibers::fiber([s = state_, w = std::move(w)]() mutable { s->dispatch(std::move(w)); }).detach();
}

pool::~pool()
{
    close();
    join();
}

void pool::close()
{
    std::lock_guard lk(state_->mtx);
    state_->closed = true;
    state_->changed.notify_all();
}

void pool::join()
{
    std::unique_lock lk(state_->mtx);
    state_->changed.wait(lk, [&] { return state_->dispatchers == 0; });
}

void pool::terminate()
{
    std::lock_guard lk(state_->mtx);
    state_->terminated = true;
    for (process* p : state_->alive) {
        try {
            p->kill();
        } catch (const std::exception&) {
        }
    }
    state_->changed.notify_all();
}

std::size_t pool::workers() const noexcept { return state_->size; }

} // namespace gipc
