// SPDX-License-Identifier: MIT
// gipc::pool: worker processes reached over duplex pipes, one dispatcher fiber per worker on
// the pool's thread.
//
// A task is a task frame, a msgpack array [id, invoker, target, handles, arguments]
// (invoker and target as code_location, so forked and spawned workers run it alike; handles
// as handle_header, their fds indices into the handles that the worker's pool_link hands over
// right after the frame: on Linux by SCM_RIGHTS over a Unix socket, on Windows duplicated into
// the worker, their values in a frame of their own; see pool_link.hpp). Its result, [id, true,
// result] or [id, false, call_failure], comes back through the worker's result_ring (memory
// shared with the pool, handed over the same link when the worker starts; see result_ring.hpp),
// or as a frame on the pipe when it is too large for the ring.
//
// A dispatcher takes a batch of tasks from the queue (one task while no more wait than there
// are workers, else its share, at most max_batch and at most batch_budget_seconds of the
// pool's typical task time) and puts them in one frame to the worker (the task frames one
// after the other, each after its 4-byte length), then collects their results in order: from
// the ring when the worker says results wait (a one-byte frame it writes before it waits for
// more tasks) and, while a long task runs, every few milliseconds. A result in the ring survives its worker, and the ring says which task
// the worker runs: when a worker dies, the dispatcher collects what the ring holds, fails the
// task the worker was running with worker_lost_error, and puts the tasks of the batch it had
// not started back at the front of the queue. While a task runs long (a millisecond) and
// another dispatcher idles with nothing queued, the tasks behind it in its batch are recalled
// through the ring's gate and go back to the front of the queue too: the idle worker runs them.
#include "errors.hpp"
#include "byte_order.hpp"
#include "handle_transfer.hpp"
#include "pipe_end.hpp"
#include "pool_link.hpp"
#include "reactor.hpp"
#include "result_ring.hpp"

#include <gipc/pool.hpp>

#include <gipc/detail/call.hpp>
#include <gipc/detail/codec.hpp>
#include <gipc/pipe.hpp>
#include <gipc/process.hpp>
#include <gipc/runtime.hpp>

#include <boost/fiber/all.hpp>


#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
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
// While a worker runs a task longer than that, its dispatcher looks into its ring first after
// a millisecond, then at doubling intervals up to the second figure: results the worker put
// before the long task began reach their futures without waiting for it.
constexpr auto first_look = std::chrono::milliseconds(1);
constexpr auto last_look = std::chrono::milliseconds(16);
// A task that has run this long while another worker idles has the tasks queued behind it in
// its batch recalled (result_ring.hpp, the gate), so that the idle worker runs them.
constexpr auto recall_after = std::chrono::milliseconds(1);
// A dispatcher whose workers die this many times in a row before starting the task sent to
// them fails that task instead of trying again.
constexpr unsigned max_unstarted_deaths = 3;

// The frame a worker writes when results wait in its ring (msgpack nil; a result is an array).
constexpr char results_wait = '\xc0';
bool is_results_wait(std::string_view frame) noexcept { return frame.size() == 1 && frame[0] == results_wait; }

// Locations of code, by address: found once per process (dl_iterate_phdr walks every object),
// and remembered per thread for the last few addresses, so that submitting the same task
// again and again takes no lock.
code_location cached_location(std::uintptr_t address)
{
    struct recent {
        std::uintptr_t address = 0;
        code_location where;
    };
    thread_local recent last[2];
    thread_local unsigned next_slot = 0;
    for (const recent& r : last)
        if (r.address == address && address != 0)
            return r.where;
    static plain_mutex mtx;
    static std::map<std::uintptr_t, code_location> known;
    code_location where;
    bool found = false;
    {
        std::lock_guard lk(mtx);
        if (auto it = known.find(address); it != known.end()) {
            where = it->second;
            found = true;
        }
    }
    if (!found) {
        where = locate_code(address);
        std::lock_guard lk(mtx);
        known.emplace(address, where);
    }
    last[next_slot] = {address, where};
    next_slot = (next_slot + 1) % 2;
    return where;
}

void append_be32(std::string& out, std::uint32_t v)
{
    char b[4];
    store_be32(b, v);
    out.append(b, 4);
}

// A frame to a worker holds the frames of several tasks (each after its length) up to this
// size; a task frame larger than that goes alone.
constexpr std::size_t max_batch_frame = std::size_t{1} << 20;

// string_sink lets msgpack pack straight into a std::string.
struct string_sink {
    std::string& out;
    void write(const char* data, std::size_t size) { out.append(data, size); }
};

// task_handles: a task's handle arguments: the handles (the pool owns them), their ends in the
// order the frame's fd indices count, which of those are sockets, and the writers among them.
struct task_handles {
    std::vector<std::shared_ptr<void>> keep;
    std::vector<end_base*> ends;
    std::vector<bool> sockets;
    std::vector<write_end*> writers;
};

struct queued_task {
    std::uint64_t id = 0;
    std::string frame;
    sink_handle sink;
    std::unique_ptr<task_handles> handles; // null for most tasks: none
    std::uint64_t seq = 0;                 // its frame's number on the worker's pipe, once sent
    bool handles_sent = false;             // its handles went to a worker (and left the pool)
};

// At most this many ends go with one task (SCM_RIGHTS carries at most 253 fds in one message).
constexpr int max_task_fds = 250;

// result_envelope: a result's frame, [id, ok, value], opened by hand (msgpack's parser would
// allocate for every result); the value stays packed.
struct result_envelope {
    std::uint64_t id = 0;
    bool ok = false;
    const char* value = nullptr;
    std::size_t value_size = 0;
};

bool open_result(const char* data, std::size_t size, result_envelope& r) noexcept
{
    const auto* p = reinterpret_cast<const unsigned char*>(data);
    if (size < 4 || p[0] != 0x93) // an array of 3
        return false;
    std::size_t at = 1;
    if (p[at] <= 0x7f) {
        r.id = p[at++];
    } else if (p[at] >= 0xcc && p[at] <= 0xcf) {
        const std::size_t n = std::size_t{1} << (p[at] - 0xcc);
        if (size < at + 1 + n + 2)
            return false;
        r.id = load_be(data + at + 1, n);
        at += 1 + n;
    } else {
        return false;
    }
    if (at >= size || (p[at] != 0xc2 && p[at] != 0xc3))
        return false;
    r.ok = p[at++] == 0xc3;
    if (at >= size)
        return false;
    r.value = data + at;
    r.value_size = size - at;
    return true;
}

} // namespace

// pool_worker_main is a worker's target: run tasks until the pool closes the pipe. Handles
// given to tasks arrive over the link (pool_link.hpp), once per task that has any.
int pool_worker_main(gipc::duplex d, pool_link_arg link_arg)
{
    pool_worker_link link(std::move(link_arg));
    // The first thing the link brings is the ring's memory.
    result_ring ring = result_ring::attach(link.receive_memory(d).get());
    transfer_list ends;
    detail_access::add(ends, d);
    read_end* const in = ends.readers.at(0);

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
    bool told = true; // the pool knows of every result in the ring
    msgpack::zone task_zone; // reused from task to task: no zone allocated per task
    // tell writes a frame to the pool. false: the pool has closed the pipe (it is done with this
    // worker, retired or closing while the worker still had something to say), and the worker
    // ends quietly.
    auto tell = [&](std::string_view frame) {
        try {
            d.put_bytes(frame);
            d.flush();
            return true;
        } catch (const std::system_error& e) {
            if (e.code() == std::errc::broken_pipe)
                return false;
            throw;
        }
    };
    // run_task runs one task frame and hands its result over; false when the pool is gone.
    auto run_task = [&](const char* data, std::size_t size) {
        task_zone.clear();
        const msgpack::object task = msgpack::unpack(task_zone, data, size);
        if (task.type != msgpack::type::ARRAY || task.via.array.size != 5)
            throw error("gipc: a pool worker received a malformed task");
        const auto id = task.via.array.ptr[0].as<std::uint64_t>();
        ring.starting(id);
        result.clear();
        bool ok = true;
        try {
            auto headers = task.via.array.ptr[3].as<std::vector<handle_header>>();
            spawned_handles handles;
            if (!headers.empty()) {
                link.receive_handles(headers, d);
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
        // In the ring, the result is the pool's even if the next task kills this worker. One
        // too large for the ring goes by the pipe (the pool collects the ring first, so order
        // holds), which tells the pool of the ring's results too.
        if (ring.put(std::string_view(reply.data(), reply.size()))) {
            told = false;
        } else {
            if (!tell(std::string_view(reply.data(), reply.size())))
                return false;
            told = true;
        }
        ring.finished();
        return true;
    };
    std::uint64_t seq = 0; // the number of the last task frame taken up
    for (;;) {
        // About to wait for tasks (none is buffered): say that results wait, first.
        if (!told && !in->frame_ready()) {
            if (!tell(std::string_view(&results_wait, 1)))
                return 0;
            told = true;
        }
        std::string batch;
        try {
            batch = d.get_bytes();
        } catch (const eof_error&) {
            return 0; // the pool is done with this worker
        }
        // A frame from the pool holds one or more task frames, each after its 4-byte length.
        for (std::size_t at = 0; at < batch.size();) {
            if (batch.size() - at < 4)
                throw error("gipc: a pool worker received a malformed batch of tasks");
            const std::size_t len = load_be32(batch.data() + at);
            if (batch.size() - at - 4 < len)
                throw error("gipc: a pool worker received a malformed batch of tasks");
            // A frame it does not claim was recalled: another worker runs it.
            if (ring.claim(++seq) && !run_task(batch.data() + at + 4, len))
                return 0; // the pool is gone
            at += 4 + len;
        }
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
    unsigned idle = 0; // dispatchers waiting for tasks
    unsigned next_worker = 0;
    // The typical time of a task, as the parent sees it (a moving average of the time from one
    // result to the next): what batches are sized by. It starts at a millisecond (one task at a
    // time) and adapts within a few results.
    double task_seconds = 0.001;
    std::atomic<std::uint64_t> next_id{0};

    // worker: one worker process and the parent's end of its pipe.
    struct worker {
        worker(process proc, duplex end, pool_parent_link l, result_ring r)
            : p(std::move(proc)), d(std::move(end)), link(std::move(l)), ring(std::move(r))
        {
            transfer_list ends;
            detail_access::add(ends, d);
            in = ends.readers.at(0);
        }
        process p;
        duplex d;
        pool_parent_link link; // what carries the ring's memory and tasks' handles to it
        result_ring ring;
        read_end* in = nullptr; // d's reading end
        unsigned done = 0;
        std::uint64_t sent = 0; // task frames sent (the last one's number)
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
        pool_link_arg link_arg;
        pool_parent_link link(link_arg);
        // The link takes the ring's memory over, for the worker to receive first; the parent
        // keeps only the mapping.
        result_ring ring;
        {
            unique_native_fd memory;
            ring = result_ring::create(memory);
            link.give_memory(std::move(memory));
        }
        process proc = start_pool_worker(po, options.spawn, pool_worker_main, std::move(theirs), std::move(link_arg));
        try {
            link.started(proc, mine);
        } catch (...) {
            // A worker that cannot be given its memory must not stay, waiting for it.
            try {
                proc.kill();
                proc.join();
            } catch (...) {
            }
            throw;
        }
        auto w = std::make_unique<worker>(std::move(proc), std::move(mine), std::move(link), std::move(ring));
        std::lock_guard lk(mtx);
        alive.push_back(&w->p);
        return w;
    }

    // stop ends a worker process: the pipe closed (it exits at EOF; killed when kill is set),
    // joined. Its ring stays readable until bury().
    void stop(worker& w, bool kill)
    {
        {
            std::lock_guard lk(mtx);
            alive.erase(std::remove(alive.begin(), alive.end(), &w.p), alive.end());
        }
        if (kill)
            w.p.kill();
        try {
            w.d.close();
        } catch (const std::exception&) {
        }
        if (!w.p.join(std::chrono::seconds(10))) {
            w.p.kill();
            w.p.join();
        }
    }

    // retire stops a worker and frees what is left of it.
    void retire(std::unique_ptr<worker>& w, bool kill)
    {
        if (!w)
            return;
        stop(*w, kill);
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
    msgpack::zone results_zone; // reused: unpacking a result allocates little or nothing
    std::string batch_frame;    // reused: the frame that carries a batch's tasks
    unsigned unstarted_deaths = 0; // workers lost in a row before they began their task
    for (;;) {
        {
            std::unique_lock lk(mtx);
            ++idle;
            changed.wait(lk, [&] { return !queue.empty() || closed || terminated; });
            --idle;
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
                if (queue.front().handles && !batch.empty())
                    break;
                batch.push_back(std::move(queue.front()));
                queue.pop_front();
                if (batch.back().handles)
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
                batch.front().sink.fail(std::current_exception());
                requeue(batch, 1);
                boost::this_fiber::sleep_for(std::chrono::milliseconds(10));
                continue;
            }
        }

        // Results are collected in batch order: i is the first task without one.
        std::size_t i = 0;
        auto since = std::chrono::steady_clock::now(); // when the batch went, or results last came
        // complete gives a result to its task, which must be batch[i], the first without one.
        // With in_order false (a result from the ring), a result of a later task of the batch
        // is left for later: batch[i]'s, too large for the ring, is still on its way by the
        // pipe. Returns whether it took the result.
        auto complete = [&](const char* data, std::size_t size, bool in_order) {
            results_zone.clear();
            result_envelope r;
            if (i == batch.size() || !open_result(data, size, r))
                throw decode_error("gipc: a pool worker sent a malformed result");
            if (r.id != batch[i].id) {
                const bool later = std::any_of(batch.begin() + std::ptrdiff_t(i) + 1, batch.end(),
                                               [&](const queued_task& t) { return t.id == r.id; });
                if (in_order || !later)
                    throw decode_error("gipc: a pool worker sent a malformed result");
                return false;
            }
            const msgpack::object value = unpack_payload(results_zone, r.value, r.value_size);
            if (r.ok) {
                batch[i].sink.deliver(value);
            } else {
                const auto f = value.as<call_failure>();
                batch[i].sink.fail(std::make_exception_ptr(task_error(f.type, f.what)));
            }
            ++i;
            ++w->done;
            return true;
        };
        // collect completes the tasks whose results are in the ring, and learns from how long
        // they took.
        auto collect = [&] {
            const long n = w->ring.drain([&](const char* data, std::size_t size) { return complete(data, size, false); });
            if (n < 0)
                throw decode_error("gipc: a pool worker wrote over its result memory");
            if (n > 0) {
                const auto now = std::chrono::steady_clock::now();
                const double each = std::chrono::duration<double>(now - since).count() / double(n);
                since = now;
                std::lock_guard lk(mtx);
                for (long k = 0; k < n; ++k)
                    task_seconds = 0.8 * task_seconds + 0.2 * each;
            }
            return n > 0;
        };
        // The running task's deadline (task_timeout): from when the ring says it began, or,
        // before the worker began it, from the last news.
        auto deadline_of_running = [&] {
            if (options.task_timeout.count() <= 0)
                return steady_time::max();
            const auto began = w->ring.running() == batch[i].id ? w->ring.running_since() : since;
            return began + options.task_timeout;
        };
        // recall_if_held_up: while the task batch[i] runs long and another worker is idle with
        // nothing queued, the tasks of the batch the worker has not begun go back to the front of
        // the queue, for the idle worker. (A task with handles is always alone in its batch, so
        // it is never recalled.)
        auto recall_if_held_up = [&] {
            if (i + 1 >= batch.size() || w->ring.running() != batch[i].id ||
                std::chrono::steady_clock::now() - w->ring.running_since() < recall_after)
                return;
            {
                std::lock_guard lk(mtx);
                if (idle == 0 || !queue.empty())
                    return;
            }
            const std::uint64_t kept = w->ring.recall(batch[i].seq, batch.back().seq);
            if (kept == 0)
                return;
            std::size_t from = i + 1;
            while (from < batch.size() && batch[from].seq <= kept)
                ++from;
            std::lock_guard lk(mtx);
            for (std::size_t j = batch.size(); j > from; --j)
                queue.push_front(std::move(batch[j - 1]));
            batch.resize(from);
            changed.notify_all();
        };
        try {
            batch_frame.clear();
            for (auto& t : batch) {
                // Frames the parent queued on a transferred writer go first.
                if (t.handles)
                    for (write_end* wr : t.handles->writers)
                        flush(wr);
                t.seq = ++w->sent;
                if (!batch_frame.empty() && batch_frame.size() + 4 + t.frame.size() > max_batch_frame) {
                    w->d.put_bytes(batch_frame);
                    batch_frame.clear();
                }
                append_be32(batch_frame, static_cast<std::uint32_t>(t.frame.size()));
                batch_frame.append(t.frame); // kept: the task may go back to the queue
            }
            w->d.put_bytes(batch_frame);
            if (batch_frame.capacity() > max_batch_frame)
                std::string().swap(batch_frame);
            // Then a task's handles travel, right after the frame that holds it (a task with
            // handles is alone in its batch), and the parent's copies close.
            for (auto& t : batch)
                if (t.handles) {
                    t.handles_sent = true;
                    w->link.send_handles(t.handles->ends, t.handles->sockets, w->d);
                    t.handles.reset();
                }
            since = std::chrono::steady_clock::now();
            auto look = std::chrono::steady_clock::duration(first_look);
            while (i < batch.size()) {
                if (collect())
                    look = first_look;
                if (i == batch.size())
                    break;
                const steady_time task_deadline = deadline_of_running();
                std::string frame;
                try {
                    frame = read_frame_bytes(w->in, std::min(std::chrono::steady_clock::now() + look, task_deadline));
                } catch (const timeout_error&) {
                    if (std::chrono::steady_clock::now() >= deadline_of_running() && !collect())
                        throw; // the running task overran task_timeout
                    look = std::min<std::chrono::steady_clock::duration>(look * 2, last_look);
                    recall_if_held_up();
                    continue;
                }
                if (is_results_wait(frame))
                    continue;
                collect(); // the results put before this one
                complete(frame.data(), frame.size(), true);
                since = std::chrono::steady_clock::now();
            }
            unstarted_deaths = 0;
            batch.clear();
            if (options.max_tasks_per_worker > 0 && w->done >= options.max_tasks_per_worker)
                retire(w, false); // recycled: the next batch starts a new one
        } catch (const timeout_error&) {
            const std::string name = w->p.name();
            stop(*w, true);
            // The task may have ended just before the kill.
            bool finished = false;
            try {
                const std::size_t before = i;
                collect();
                finished = i > before;
            } catch (const std::exception&) {
            }
            w.reset();
            if (!finished) {
                batch[i].sink.fail(std::make_exception_ptr(timeout_error(
                    "gipc: the task ran longer than the pool's task_timeout; worker " + name + " was killed")));
                ++i;
            }
            requeue(batch, i);
        } catch (const std::exception& e) {
            // The worker died (EOF, a broken pipe) or sent garbage. What it finished is in its
            // ring; the task it was running fails, the ones it had not begun go back.
            const std::string name = w->p.name();
            const auto pid = w->p.pid();
            const bool died = w->p.join(std::chrono::seconds(5));
            const std::optional<int> code = died ? w->p.exitcode() : std::nullopt;
            stop(*w, true);
            bool ring_whole = true;
            try {
                collect();
            } catch (const std::exception&) {
                ring_whole = false;
            }
            const bool was_running = i < batch.size() && (!ring_whole || w->ring.running() == batch[i].id);
            w.reset();
            if (i == batch.size()) {
                batch.clear(); // it died after its last result: nothing was lost
                continue;
            }
            // It had not begun the task: another worker runs it, unless the task's handles went
            // with this worker.
            if (!was_running && !batch[i].handles_sent && ++unstarted_deaths < max_unstarted_deaths) {
                requeue(batch, i);
                continue;
            }
            unstarted_deaths = 0;
            bool was_terminated;
            {
                std::lock_guard lk(mtx);
                was_terminated = terminated;
            }
            if (was_terminated)
                batch[i].sink.fail(std::make_exception_ptr(error("gipc: the pool was terminated")));
            else if (died)
                batch[i].sink.fail(std::make_exception_ptr(worker_lost_error(
                    "gipc: worker " + name + " (pid " + std::to_string(pid) + ") running the task " + describe_worker_end(code))));
            else
                batch[i].sink.fail(std::make_exception_ptr(worker_lost_error(
                    "gipc: worker " + name + " (pid " + std::to_string(pid) + ") failed: " + e.what())));
            requeue(batch, i + 1);
        }
    }
    retire(w, false);
    std::lock_guard lk(mtx);
    if (terminated) {
        for (auto& t : queue)
            t.sink.fail(std::make_exception_ptr(error("gipc: the pool was terminated")));
        queue.clear();
    }
    --dispatchers;
    changed.notify_all();
}

msgpack::sbuffer& pool_request::scratch() noexcept
{
    thread_local msgpack::sbuffer buffer(256);
    return buffer;
}

void sink_handle::drop(pool_sink* borrowed) noexcept
{
    borrowed->fail(std::make_exception_ptr(error("gipc: the pool dropped the task")));
}

void pool_submit(pool_state& state, pool_request request)
{
    queued_task t;
    t.id = state.next_id.fetch_add(1, std::memory_order_relaxed) + 1; // unique; the queue keeps the order
    // The handles: each end once, numbered in the order its fd is sent.
    if (request.handles.transfers.closed_argument)
        throw closed_error("gipc: cannot give a pool task a handle that is closed or moved from");
    std::vector<handle_header> headers;
    if (!request.handles.handles.empty()) {
        for (const auto& h : request.handles.handles)
            for (end_base* e : h.ends)
                if (e->in_use())
                    throw locked_error("gipc: cannot give a pool task " + e->name() + ": another fiber is using it");
        t.handles = std::make_unique<task_handles>();
        headers = describe_handles(request.handles.handles, t.handles->ends, 0);
        t.handles->sockets.assign(t.handles->ends.size(), false);
        for (const auto& h : headers)
            if ((h.kind == 's' || h.kind == 'l') && h.fds.size() == 1)
                t.handles->sockets.at(std::size_t(h.fds[0])) = true;
        for (end_base* e : t.handles->ends)
            if (auto* wr = dynamic_cast<write_end*>(e))
                t.handles->writers.push_back(wr);
    }
    if (t.handles && t.handles->ends.size() > std::size_t(max_task_fds))
        throw error("gipc: a pool task can be given at most 250 fds");
    const std::string_view args = request.args();
    t.frame.reserve(48 + args.size());
    string_sink sink{t.frame};
    msgpack::packer<string_sink> pk(sink);
    pk.pack_array(5);
    pk.pack(t.id);
    pk.pack(cached_location(request.invoker));
    pk.pack(cached_location(request.target));
    pk.pack(headers);
    t.frame.append(args);
    if (t.handles)
        t.handles->keep = std::move(request.keep);
    t.sink = std::move(request.sink);
    {
        std::lock_guard lk(state.mtx);
        if (state.closed || state.terminated)
            throw error("gipc: the pool takes no more tasks (closed or terminated)");
        state.queue.push_back(std::move(t));
    }
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
