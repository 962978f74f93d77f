// SPDX-License-Identifier: MIT
#pragma once
// result_ring: how a pool worker hands its results to the pool, through memory the two
// processes share. One writer (the worker) and one reader (the pool's dispatcher for it).
//
// Why memory and not the pipe: a worker that wrote each result to its pipe paid a write (and
// woke its dispatcher) per task; one that held results back to write several at once would
// lose them if it died holding them. A result put in the ring is the pool's the moment put()
// returns, whatever happens to the worker afterwards: the dispatcher reads the ring after the
// worker's death too. The worker tells its dispatcher that results wait (a one-byte frame on
// the pipe) only when it is about to wait for its next task, so a batch of tasks costs one
// write each way.
//
// The ring also says which task the worker runs (running(), set before the task starts and
// cleared after its result is put), so that the pool knows, when a worker dies, whether it
// died in a task or between two, and when the running task began, for task_timeout.
//
// Layout (shared): a header of three cache lines (the worker's counters, the pool's, the gate), then
// data_size bytes of records: a 4-byte length, 4 bytes of padding, the payload, padding to 8.
// A length of 0xffffffff marks the end of a lap: the next record starts at offset 0. head and
// tail count bytes since the start (never wrapping in practice: 2^64).
//
// The ring also holds the gate through which the pool takes back tasks it sent the worker that
// the worker has not begun (a recall: when another worker is idle and this one's task runs
// long, the tasks behind it are better run there). Frames to a worker are numbered from 1 in
// the order they are sent, on both sides alike. The gate is one word, changed only by
// compare-and-swap: the low half is S, the number of the last frame the worker took up (began,
// or skipped), the high half R: frames numbered up to R that the worker has not taken up are
// recalled, and the worker skips them without a word. Taking up a frame and recalling are each
// one CAS, so exactly the frames after the S the recall saw are the pool's again; the worker
// moves R up with S as it begins frames, so the halves (32 bits, compared modulo 2^32) never
// differ by more than a batch.
//
// The reader trusts nothing it reads: a worker with a memory bug may scribble on the ring, and
// then drain() reports it instead of reading out of bounds.

#include "private.hpp"

#include "assert.hpp"
#include "errors.hpp"
#include "native_fd.hpp"
#include "shared_memory.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <new>
#include <string_view>
#include <utility>

namespace gipc::detail {

class result_ring {
public:
    static constexpr std::size_t data_size = std::size_t{256} * 1024;
    // A result of more than this goes by the pipe (it would take too much of the ring).
    static constexpr std::size_t max_record = data_size / 4;

    result_ring() noexcept = default;
    result_ring(result_ring&& o) noexcept : base_(std::exchange(o.base_, nullptr)) {}
    result_ring& operator=(result_ring&& o) noexcept
    {
        std::swap(base_, o.base_);
        return *this;
    }
    result_ring(const result_ring&) = delete;
    result_ring& operator=(const result_ring&) = delete;
    ~result_ring() { shm::unmap(base_, mapping_size); }

    // create makes a new ring, mapped here; memory is set to its memory's handle, for the
    // worker to attach. Throws std::system_error.
    static result_ring create(unique_native_fd& memory)
    {
        if (const int r = shm::create("gipc-pool-results", mapping_size, memory); r < 0)
            throw_errno(r, "gipc: pool: creating a worker's result memory");
        result_ring ring = attach(memory.get());
        new (ring.base_) header{}; // the counters start at zero, constructed once, here
        return ring;
    }

    // attach maps the ring whose memory's handle is memory (which may be closed afterwards).
    // Throws std::system_error.
    static result_ring attach(native_fd memory)
    {
        int err = 0;
        void* p = shm::map(memory, mapping_size, err);
        if (!p)
            throw_errno(err, "gipc: pool: mapping a worker's result memory");
        result_ring ring;
        ring.base_ = static_cast<char*>(p);
        return ring;
    }

    // The worker's side.

    // put appends a record; false when it does not fit now (too large, or the ring too full):
    // the caller then sends it another way.
    bool put(std::string_view record) noexcept
    {
        if (record.size() > max_record)
            return false;
        const std::uint64_t need = 8 + round8(record.size());
        std::uint64_t h = hdr().head.load(std::memory_order_relaxed);
        const std::uint64_t t = hdr().tail.load(std::memory_order_acquire);
        std::uint64_t pos = h % data_size;
        const std::uint64_t skip = data_size - pos < need ? data_size - pos : 0;
        if (h - t + skip + need > data_size)
            return false;
        if (skip) {
            store32(pos, lap_end);
            h += skip;
            pos = 0;
        }
        store32(pos, static_cast<std::uint32_t>(record.size()));
        std::memcpy(data() + pos + 8, record.data(), record.size());
        hdr().head.store(h + need, std::memory_order_release);
        return true;
    }

    // starting says the worker begins task id now; finished, that it runs none.
    void finished() noexcept { hdr().running.store(0, std::memory_order_release); }
    void starting(std::uint64_t id) noexcept
    {
        GIPC_ASSERT(id != 0, "task ids start at 1");
        const auto now = std::chrono::steady_clock::now().time_since_epoch();
        hdr().started_ns.store(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count(),
                               std::memory_order_relaxed);
        hdr().running.store(id, std::memory_order_release);
    }

    // claim decides, atomically against recall(), whether the worker runs frame seq (true) or
    // skips it (false: the pool recalled it). Frames are claimed in order, each once.
    bool claim(std::uint64_t seq) noexcept
    {
        const auto s32 = static_cast<std::uint32_t>(seq);
        std::uint64_t w = hdr().gate.load(std::memory_order_acquire);
        for (;;) {
            GIPC_ASSERT(static_cast<std::uint32_t>(w) + 1 == s32, "frames are claimed in order");
            const auto r32 = static_cast<std::uint32_t>(w >> 32);
            const bool recalled = static_cast<std::int32_t>(s32 - r32) <= 0;
            const std::uint64_t next = (std::uint64_t{recalled ? r32 : s32} << 32) | s32;
            if (hdr().gate.compare_exchange_weak(w, next, std::memory_order_acq_rel, std::memory_order_acquire))
                return !recalled;
        }
    }

    // The pool's side.

    // recall takes back the frames after the last one the worker took up, up to last (the
    // last frame sent), if the worker has taken up first (the frame of the task whose result
    // the pool waits for) and not yet last. Returns the number of the last frame the worker
    // keeps (the frames after it are recalled), or 0 when it recalled nothing.
    std::uint64_t recall(std::uint64_t first, std::uint64_t last) noexcept
    {
        std::uint64_t w = hdr().gate.load(std::memory_order_acquire);
        for (;;) {
            const auto s32 = static_cast<std::uint32_t>(w);
            const std::uint64_t taken =
                first + static_cast<std::uint64_t>(std::int64_t{static_cast<std::int32_t>(s32 - static_cast<std::uint32_t>(first))});
            if (taken < first || taken >= last)
                return 0;
            const std::uint64_t next = (std::uint64_t{static_cast<std::uint32_t>(last)} << 32) | s32;
            if (hdr().gate.compare_exchange_weak(w, next, std::memory_order_acq_rel, std::memory_order_acquire))
                return taken;
        }
    }

    // running is the id of the task the worker runs, 0 between tasks. A running() read after
    // a drain() that found nothing more describes a task without a result in the ring.
    std::uint64_t running() const noexcept { return hdr().running.load(std::memory_order_acquire); }
    // running_since is when the task running() names began.
    std::chrono::steady_clock::time_point running_since() const noexcept
    {
        return std::chrono::steady_clock::time_point(
            std::chrono::nanoseconds(hdr().started_ns.load(std::memory_order_relaxed)));
    }

    // drain calls f(const char* data, std::size_t size) for each record in order, and frees
    // the record once f returns true; when f returns false, the record stays, and drain
    // returns. Returns the number of records taken, or -1 when the ring is inconsistent (the
    // worker wrote over it): nothing more can be read from it.
    template <class F>
    long drain(F&& f)
    {
        long count = 0;
        std::uint64_t t = hdr().tail.load(std::memory_order_relaxed);
        const std::uint64_t h = hdr().head.load(std::memory_order_acquire);
        if (h - t > data_size || (h - t) % 8)
            return -1;
        while (t != h) {
            const std::uint64_t pos = t % data_size;
            const std::uint32_t len = load32(pos);
            if (len == lap_end) {
                if (data_size - pos > h - t)
                    return -1;
                t += data_size - pos;
                continue;
            }
            const std::uint64_t need = 8 + round8(len);
            if (len > max_record || need > data_size - pos || need > h - t)
                return -1;
            if (!f(static_cast<const char*>(data() + pos + 8), std::size_t{len}))
                break;
            t += need;
            hdr().tail.store(t, std::memory_order_release);
            ++count;
        }
        return count;
    }

private:
    struct header {
        // Written by the worker.
        alignas(64) std::atomic<std::uint64_t> head;
        std::atomic<std::uint64_t> running;
        std::atomic<std::int64_t> started_ns;
        // Written by the pool.
        alignas(64) std::atomic<std::uint64_t> tail;
        // Written by both, by compare-and-swap only.
        alignas(64) std::atomic<std::uint64_t> gate;
    };
    static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "the ring's counters are shared between processes");
    static constexpr std::size_t header_size = 192;
    static_assert(sizeof(header) <= header_size);
    static constexpr std::size_t mapping_size = header_size + data_size;
    static constexpr std::uint32_t lap_end = 0xffffffffu;

    static std::uint64_t round8(std::uint64_t n) noexcept { return (n + 7) & ~std::uint64_t{7}; }
    header& hdr() const noexcept
    {
        GIPC_ASSERT(base_, "a result ring used before it was mapped");
        return *std::launder(reinterpret_cast<header*>(base_));
    }
    char* data() const noexcept { return base_ + header_size; }
    std::uint32_t load32(std::uint64_t pos) const noexcept
    {
        std::uint32_t v;
        std::memcpy(&v, data() + pos, 4);
        return v;
    }
    void store32(std::uint64_t pos, std::uint32_t v) noexcept { std::memcpy(data() + pos, &v, 4); }

    char* base_ = nullptr;
};

} // namespace gipc::detail
