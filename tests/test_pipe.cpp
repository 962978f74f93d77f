// SPDX-License-Identifier: MIT
// Pipes within one process: framing, codecs, errors, closing, timeouts, sharing, delivery.
#include "test_support.hpp"
#ifndef _WIN32
#include "small_stack.hpp"
#endif

#include <gipc/detail/test_support.hpp>
#include <gipc/gipc.hpp>

#include <boost/fiber/all.hpp>

// The Windows build (tests/windows/meson.build) compiles every case but those in the blocks
// marked POSIX only.
#ifdef _WIN32
#include <windows.h>
#include <psapi.h> // after windows.h
#else
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <tuple>
#include <vector>

using namespace std::chrono_literals;
using gipc_test::seconds_since;
#ifndef _WIN32
using namespace gipc_test::small_stack;

extern char** environ;
#endif

#if GIPC_TEST_ASAN
// The ASan runtime's count of bytes allocated and not freed (GCC 12 ships no header declaring it).
extern "C" std::size_t __sanitizer_get_current_allocated_bytes();
#endif

// A pair whose ends a lambda uses is held in a named variable and its ends are bound to
// references, not unpacked with `auto [r, w]`: clang before 16 refuses lambdas that capture
// structured bindings (scripts/clang.sh builds the tests with clang).

namespace {

struct point {
    int x = 0;
    std::string label;
    std::vector<double> values;
    MSGPACK_DEFINE(x, label, values)
    bool operator==(const point&) const = default;
};

// closed_handle is what native_handle() of a closed end returns (-1 on POSIX).
const gipc::native_handle_type closed_handle = gipc::detail::closed_native_handle();

// patience bounds the cases' waits for other fibers and threads, so that a lost wake-up fails a
// case instead of hanging the test binary: a get() that waits for another fiber's or thread's
// message waits at most this long, and the cases that run threads give them a few times as
// long to finish (gipc_test::wait_until, settle_or_abort). A whole case takes well under a
// second.
constexpr auto patience = 10s;

#ifdef _WIN32
// raw_transfer is one ReadFile or WriteFile on a pipe end opened for overlapped I/O, waited for
// on an event of its own (whose low bit keeps the completion off the completion port that gipc
// associated the handle with). The bytes moved.
DWORD raw_transfer(bool reading, HANDLE h, char* data, DWORD size)
{
    HANDLE event = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
    REQUIRE(event != nullptr);
    OVERLAPPED ov{};
    ov.hEvent = reinterpret_cast<HANDLE>(reinterpret_cast<ULONG_PTR>(event) | 1);
    DWORD n = 0;
    BOOL ok = reading ? ::ReadFile(h, data, size, &n, &ov) : ::WriteFile(h, data, size, &n, &ov);
    if (!ok && ::GetLastError() == ERROR_IO_PENDING) {
        ::WaitForSingleObject(event, INFINITE);
        ok = ::GetOverlappedResult(h, &ov, &n, FALSE);
    }
    const DWORD error = ok ? 0 : ::GetLastError();
    ::CloseHandle(event);
    REQUIRE_MESSAGE(ok, (reading ? "ReadFile" : "WriteFile") << " failed: " << error);
    return n;
}
#endif

// raw_write writes bytes straight into a writer's fd, bypassing gipc's framing.
void raw_write(gipc::native_handle_type fd, const std::string& bytes)
{
#ifdef _WIN32
    std::string copy = bytes;
    REQUIRE(raw_transfer(false, fd, copy.data(), DWORD(copy.size())) == copy.size());
#else
    REQUIRE(::write(fd, bytes.data(), bytes.size()) == ssize_t(bytes.size()));
#endif
}

// raw_read reads what the pipe has (at least a byte) from a reader's fd, at most size bytes.
std::string raw_read(gipc::native_handle_type fd, std::size_t size)
{
    std::string out(size, '\0');
#ifdef _WIN32
    out.resize(raw_transfer(true, fd, out.data(), DWORD(size)));
#else
    const ssize_t n = ::read(fd, out.data(), size);
    REQUIRE(n > 0);
    out.resize(std::size_t(n));
#endif
    return out;
}

// handle_open: fd is an open fd (a handle) of this process.
bool handle_open(gipc::native_handle_type fd)
{
#ifdef _WIN32
    DWORD flags = 0;
    return ::GetHandleInformation(fd, &flags) != 0;
#else
    return gipc_test::open_fds().count(fd) != 0;
#endif
}

std::string be32(std::uint32_t v)
{
    return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
}

template <class T>
std::string packed(const T& v)
{
    msgpack::sbuffer sb;
    msgpack::pack(sb, v);
    return {sb.data(), sb.size()};
}

// yielding converts from msgpack by yielding its fiber first, so that another fiber of the
// thread decodes while this conversion still reads its unpacked value.
struct yielding {
    std::string text;
};

} // namespace

namespace msgpack {
MSGPACK_API_VERSION_NAMESPACE(MSGPACK_DEFAULT_API_NS)
{
    namespace adaptor {
    template <>
    struct convert<yielding> {
        const msgpack::object& operator()(const msgpack::object& o, yielding& v) const
        {
            boost::this_fiber::yield();
            v.text = o.as<std::string>();
            return o;
        }
    };
    } // namespace adaptor
}
} // namespace msgpack

namespace {

// bytes_in_pipe is how many bytes the pipe holds for the reader whose fd is fd.
int bytes_in_pipe(gipc::native_handle_type fd)
{
#ifdef _WIN32
    DWORD n = 0;
    REQUIRE(::PeekNamedPipe(fd, nullptr, 0, nullptr, &n, nullptr));
    return int(n);
#else
    int n = -1;
    REQUIRE(::ioctl(fd, FIONREAD, &n) == 0);
    return n;
#endif
}

} // namespace

// POSIX only (glibc's heap counts, stacks guarded with mmap, child helpers started with
// posix_spawn): the memory bounds and small fiber stacks below.
#ifndef _WIN32
namespace {

// heap_in_use is what the program has allocated and not freed, in bytes, as the allocator
// counts it: glibc's arenas and its mmap'd blocks, or AddressSanitizer's own count. Measured
// around calls on one thread while no other thread runs, its growth is what the calls kept.
// Under valgrind, whose allocator replaces glibc's, mallinfo2 sees nothing (valgrind 3.19
// replaces mallinfo only): the first call finds that out and reads mallinfo from then on.
// heap_probe_sink keeps the probes below from being optimised away (a compiler may drop a
// new/delete pair whose memory never escapes).
void* volatile heap_probe_sink = nullptr;

long long glibc_heap_count()
{
    const struct mallinfo2 info = ::mallinfo2();
    return static_cast<long long>(info.uordblks + info.hblkhd);
}

// glibc_counts_heap: glibc's allocator is the program's (not replaced by valgrind's).
bool glibc_counts_heap()
{
    static const bool counts = [] {
        const long long before = glibc_heap_count();
        auto probe = std::make_unique<char[]>(std::size_t{1} << 20);
        heap_probe_sink = probe.get();
        return glibc_heap_count() - before >= (1ll << 20);
    }();
    return counts;
}

long long heap_in_use()
{
#if GIPC_TEST_ASAN
    return static_cast<long long>(__sanitizer_get_current_allocated_bytes());
#else
    if (glibc_counts_heap())
        return glibc_heap_count();
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    const struct mallinfo info = ::mallinfo();
#pragma GCC diagnostic pop
    return static_cast<long long>(static_cast<unsigned>(info.uordblks)) +
           static_cast<long long>(static_cast<unsigned>(info.hblkhd));
#endif
}

// large_message_size: 128 MiB; 32 MiB under valgrind, whose memcheck makes every byte copied
// through the pipe tens of times slower (the bound checked, 1 MiB, is far below either).
std::size_t large_message_size()
{
    return GIPC_TEST_ASAN || glibc_counts_heap() ? std::size_t{128} << 20 : std::size_t{32} << 20;
}

// on_fresh_thread runs fn on a new thread and joins it: a memory check there starts from no
// thread-local state of earlier tests (scratch builder, msgpack zone), and nothing else runs
// while it measures (this thread waits in join).
template <class F>
void on_fresh_thread(F&& fn)
{
    std::string failure;
    std::thread([&] {
        try {
            fn();
        } catch (const std::exception& e) {
            failure = e.what();
        }
    }).join();
    CHECK_MESSAGE(failure.empty(), "exception on the measuring thread: " << failure);
}

// check_heap_counter makes sure heap_in_use sees a large allocation (a tool that replaces the
// allocator without keeping glibc's counts would make every memory check pass).
void check_heap_counter()
{
    const long long before = heap_in_use();
    auto block = std::make_unique<char[]>(std::size_t{16} << 20);
    heap_probe_sink = block.get();
    CHECK(heap_in_use() - before >= (16ll << 20));
}

} // namespace

// Every call of the pipe API, on fibers whose stacks are small_stack_size bytes: both ends of a
// pipe at once, so that puts block on a full pipe and gets on an empty one.
GIPC_TEST_CHILD("small_stack_put_bytes")
{
    std::size_t deepest = 0;
    // The first gipc call of the thread (which installs the scheduler) is on a small stack too.
    std::optional<std::pair<gipc::reader, gipc::writer>> ends;
    small_stack_fiber(&deepest, [&] { guarded("pipe", [&] { ends.emplace(gipc::pipe()); }); }).join();
    if (!ends)
        return 1;
    gipc::reader& r = ends->first;
    gipc::writer& w = ends->second;
    const std::string largest_queued(16 * 1024 - 4, 'q');
    small_stack_fiber(&deepest, [&] {
        guarded("put_bytes", [&] {
            w.put_bytes("small");
            w.put_bytes("");
            w.put_bytes(largest_queued);
            w.flush();
        });
    }).join();
    guarded("get_bytes", [&] {
        SMALL_STACK_EXPECT(r.get_bytes(5s) == "small");
        SMALL_STACK_EXPECT(r.get_bytes(5s) == "");
        SMALL_STACK_EXPECT(r.get_bytes(5s) == largest_queued);
    });
    return report_small_stack("put_bytes", deepest);
}

GIPC_TEST_CHILD("small_stack_pipe")
{
    std::size_t deepest = 0;
    std::optional<std::pair<gipc::reader, gipc::writer>> ends;
    small_stack_fiber(&deepest, [&] { guarded("pipe", [&] { ends.emplace(gipc::pipe()); }); }).join();
    if (!ends)
        return 1;
    gipc::reader& r = ends->first;
    gipc::writer& w = ends->second;
    std::string big(3 << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i)
        big[i] = char(i * 131 % 251);
    const std::vector<int> big_values(300'000, 1 << 20); // a 1.5 MB msgpack frame
    const point p{3, "p", {0.5, 1.5}};
    const std::map<std::string, std::vector<std::string>> nested{{"a", {"x", "y"}}, {"b", {}}};
    constexpr int small_puts = 100'000; // 5-byte frames: the queue fills and put() waits

    auto writer = small_stack_fiber(&deepest, [&] {
        guarded("writer", [&] {
            w.put_bytes("small");
            w.put_bytes(big); // written straight from big, waiting for the reader
            w.put(7);
            w.put(std::string("text"));
            w.put(p);
            w.put(nested);
            w.put(big_values); // packed, then written past the queue
            for (int i = 0; i < small_puts; ++i)
                w.put(std::uint8_t(i));
            w.flush();
            w.put(std::string(big.size(), 's')); // a large value, then close() writes the rest
            for (int i = 0; i < 1000; ++i)
                w.put(i);
            w.close();
            SMALL_STACK_THROWS(w.put(1), gipc::closed_error);
            SMALL_STACK_THROWS(w.close(), gipc::closed_error);
        });
    });
    auto reader = small_stack_fiber(&deepest, [&] {
        guarded("reader", [&] {
            SMALL_STACK_EXPECT(r.get_bytes() == "small");
            SMALL_STACK_EXPECT(r.get_bytes(10s) == big);
            SMALL_STACK_EXPECT(r.get<int>() == 7);
            SMALL_STACK_EXPECT(r.get<std::string>(10s) == "text");
            SMALL_STACK_EXPECT(r.get<point>() == p);
            SMALL_STACK_EXPECT((r.get<std::map<std::string, std::vector<std::string>>>(10s) == nested));
            SMALL_STACK_EXPECT(r.get<std::vector<int>>() == big_values);
            for (int i = 0; i < small_puts; ++i)
                if (r.get<std::uint8_t>(10s) != std::uint8_t(i)) {
                    small_stack_fail("small frames arrive in order");
                    break;
                }
            SMALL_STACK_EXPECT(r.get<msgpack::object_handle>(10s).get().via.str.size == big.size());
            for (int i = 0; i < 1000; ++i)
                if (r.get<int>(10s) != i) {
                    small_stack_fail("frames written by close() arrive in order");
                    break;
                }
            SMALL_STACK_THROWS(r.get<int>(10s), gipc::eof_error);
            SMALL_STACK_THROWS(r.get_bytes(), gipc::eof_error);
            r.close();
            SMALL_STACK_THROWS(r.get<int>(), gipc::closed_error);
        });
    });
    writer.join();
    reader.join();

    // Errors thrown and caught on small stacks: timeouts, decode errors, oversize puts, a
    // destructor that writes out queued frames.
    small_stack_fiber(&deepest, [&] {
        guarded("errors", [&] {
            auto [r2, w2] = gipc::pipe({.max_message_size = 64});
            SMALL_STACK_THROWS(r2.get<int>(10ms), gipc::timeout_error);
            SMALL_STACK_THROWS(r2.get_bytes(0ms), gipc::timeout_error);
            SMALL_STACK_THROWS(w2.put_bytes(std::string(65, 'x')), gipc::error);
            SMALL_STACK_THROWS(w2.put(std::string(65, 'x')), gipc::error);
            w2.put(std::string("not a number"));
            SMALL_STACK_THROWS(r2.get<int>(5s), gipc::decode_error);
            {
                gipc::writer doomed = std::move(w2);
                doomed.put(5);
            }
            SMALL_STACK_EXPECT(r2.get<int>(5s) == 5);
            SMALL_STACK_THROWS(r2.get<int>(5s), gipc::eof_error);
            SMALL_STACK_THROWS(w2.put(1), gipc::closed_error);
        });
    }).join();

    // The fd waits of <gipc/runtime.hpp>.
    small_stack_fiber(&deepest, [&] {
        guarded("wait_readable", [&] {
            auto [r3, w3] = gipc::pipe();
            SMALL_STACK_EXPECT(!gipc::wait_readable(r3.native_handle(), 10ms));
            SMALL_STACK_EXPECT(gipc::wait_writable(w3.native_handle(), 5s));
            gipc::wait_writable(w3.native_handle());
            w3.put(1);
            w3.flush();
            gipc::wait_readable(r3.native_handle());
            SMALL_STACK_EXPECT(gipc::wait_readable(r3.native_handle(), 5s));
            SMALL_STACK_EXPECT(r3.get<int>() == 1);
        });
    }).join();
    return report_small_stack("pipe", deepest);
}

GIPC_TEST_CHILD("small_stack_duplex")
{
    std::size_t deepest = 0;
    std::optional<std::pair<gipc::duplex, gipc::duplex>> ends;
    small_stack_fiber(&deepest, [&] { guarded("duplex_pipe", [&] { ends.emplace(gipc::duplex_pipe()); }); }).join();
    if (!ends)
        return 1;
    gipc::duplex& a = ends->first;
    gipc::duplex& b = ends->second;
    const std::string big(2 << 20, 'd');
    auto echo = small_stack_fiber(&deepest, [&] {
        guarded("echo", [&] {
            for (;;) {
                std::string v;
                try {
                    v = b.get_bytes(10s);
                } catch (const gipc::eof_error&) {
                    break;
                }
                b.put_bytes(v);
                b.put(v.size());
            }
            b.close();
        });
    });
    auto client = small_stack_fiber(&deepest, [&] {
        guarded("client", [&] {
            for (const std::string& v : {std::string("ping"), big, std::string(16 * 1024 - 4, 'm')}) {
                a.put_bytes(v);
                a.flush();
                SMALL_STACK_EXPECT(a.get_bytes() == v);
                SMALL_STACK_EXPECT(a.get<std::size_t>(10s) == v.size());
            }
            a.put(std::string("value"));
            SMALL_STACK_EXPECT(a.get<std::string>() == "value"); // the echo sent the frame back unchanged
            SMALL_STACK_EXPECT(a.get<std::size_t>() == packed(std::string("value")).size());
            SMALL_STACK_THROWS(a.get<int>(10ms), gipc::timeout_error);
            SMALL_STACK_THROWS(a.get_bytes(10ms), gipc::timeout_error);
            a.close();
            SMALL_STACK_THROWS(a.close(), gipc::closed_error);
        });
    });
    client.join();
    echo.join();
    return report_small_stack("duplex", deepest);
}

#endif // _WIN32

TEST_SUITE("pipe") {

// ---- values and raw bytes (Python gipc: TestComm, TestPipeCodecs) ----------------------------

GIPC_TEST("values of every kind msgpack-cxx supports round-trip")
{
    auto [r, w] = gipc::pipe();
    w.put(0);
    w.put(-7);
    w.put(std::uint64_t{1} << 63);
    w.put(true);
    w.put(2.5);
    w.put(std::string("hello"));
    w.put(std::vector<int>{1, 2, 3});
    w.put(std::map<std::string, int>{{"a", 1}, {"b", 2}});
    w.put(std::tuple<int, std::string, bool>{4, "four", false});
    w.put(std::optional<int>{});
    w.put(std::optional<int>{9});
    w.put(point{3, "p", {0.5, 1.5}});
    w.put(std::vector<std::string>{"x", std::string("\0y", 2)});
    CHECK(r.get<int>() == 0);
    CHECK(r.get<int>() == -7);
    CHECK(r.get<std::uint64_t>() == std::uint64_t{1} << 63);
    CHECK(r.get<bool>() == true);
    CHECK(r.get<double>() == 2.5);
    CHECK(r.get<std::string>() == "hello");
    CHECK(r.get<std::vector<int>>() == std::vector<int>{1, 2, 3});
    CHECK(r.get<std::map<std::string, int>>() == std::map<std::string, int>{{"a", 1}, {"b", 2}});
    CHECK(r.get<std::tuple<int, std::string, bool>>() == std::tuple<int, std::string, bool>{4, "four", false});
    CHECK(r.get<std::optional<int>>() == std::nullopt);
    CHECK(r.get<std::optional<int>>() == 9);
    CHECK(r.get<point>() == point{3, "p", {0.5, 1.5}});
    CHECK(r.get<std::vector<std::string>>() == std::vector<std::string>{"x", std::string("\0y", 2)});
}

GIPC_TEST("every encoding of a scalar decodes exactly as msgpack-cxx decodes it")
{
    // The decoder reads lone scalars itself (msgpack's parser allocates on every call): each
    // format, at its boundaries, must give the object msgpack-cxx gives, and a scalar with
    // bytes after it must still be refused.
    std::vector<std::string> payloads;
    auto add = [&](auto value) {
        msgpack::sbuffer b;
        msgpack::pack(b, value);
        payloads.emplace_back(b.data(), b.size());
    };
    for (std::int64_t v : {std::int64_t{0}, std::int64_t{1}, std::int64_t{127}, std::int64_t{128}, std::int64_t{255},
                           std::int64_t{256}, std::int64_t{65535}, std::int64_t{65536}, std::int64_t{4294967295},
                           std::int64_t{4294967296}, std::int64_t{-1}, std::int64_t{-32}, std::int64_t{-33},
                           std::int64_t{-128}, std::int64_t{-129}, std::int64_t{-32768}, std::int64_t{-32769},
                           std::int64_t{-2147483648LL}, std::int64_t{-2147483649LL},
                           std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max()})
        add(v);
    add(std::numeric_limits<std::uint64_t>::max());
    add(true);
    add(false);
    add(msgpack::type::nil_t());
    add(1.5f);
    add(-0.25);
    add(std::numeric_limits<double>::infinity());
    // Signed formats holding values >= 0, and unsigned formats holding small values, as other
    // msgpack writers produce them.
    using namespace std::string_literals; // literals that keep their NUL bytes
    for (const std::string& raw : {"\xd0\x05"s, "\xd1\x00\x05"s, "\xd2\x00\x00\x00\x05"s,
                                   "\xd3\x00\x00\x00\x00\x00\x00\x00\x05"s, "\xcc\x05"s, "\xcd\x00\x05"s,
                                   "\xce\x00\x00\x00\x05"s, "\xd0\xff"s, "\xd1\xff\xff"s, "\xd0\x00"s,
                                   "\xcf\x00\x00\x00\x00\x00\x00\x00\x00"s})
        payloads.push_back(raw);
    for (const std::string& p : payloads) {
        INFO("payload of " << p.size() << " bytes, first byte " << int(static_cast<unsigned char>(p[0])));
        const msgpack::object_handle expected = msgpack::unpack(p.data(), p.size());
        msgpack::zone zone;
        const msgpack::object got = gipc::detail::unpack_payload(zone, p.data(), p.size());
        CHECK(got.type == expected.get().type);
        CHECK(got == expected.get());
        const std::string longer = p + '\x01';
        CHECK_THROWS_WITH_AS((void)gipc::detail::unpack_payload(zone, longer.data(), longer.size()),
                             doctest::Contains("trailing"), gipc::decode_error);
        if (p.size() > 1) {
            const std::string shorter = p.substr(0, p.size() - 1);
            CHECK_THROWS_AS((void)gipc::detail::unpack_payload(zone, shorter.data(), shorter.size()), gipc::decode_error);
        }
    }
}

GIPC_TEST("get<msgpack::object_handle> returns the dynamic value")
{
    auto [r, w] = gipc::pipe();
    w.put(std::map<std::string, std::vector<int>>{{"k", {1, 2}}});
    msgpack::object_handle h = r.get<msgpack::object_handle>();
    REQUIRE(h.get().type == msgpack::type::MAP);
    auto m = h.get().as<std::map<std::string, std::vector<int>>>();
    CHECK(m.at("k") == std::vector<int>{1, 2});
}

GIPC_TEST("raw frames carry bytes unchanged, including NULs and empty payloads")
{
    auto [r, w] = gipc::pipe();
    const std::string nul("a\0b\0\0c", 6);
    std::string all(256, '\0');
    for (int i = 0; i < 256; ++i)
        all[size_t(i)] = char(i);
    w.put_bytes(nul);
    w.put_bytes("");
    w.put_bytes(all);
    CHECK(r.get_bytes() == nul);
    CHECK(r.get_bytes() == "");
    CHECK(r.get_bytes() == all);
}

GIPC_TEST("the wire format is a 4-byte big-endian length, then the payload")
{
    auto [r, w] = gipc::pipe();
    w.put_bytes("xyz");
    w.put(300);
    w.flush();
    const std::string wire = raw_read(r.native_handle(), 64);
    CHECK(wire == be32(3) + "xyz" + be32(std::uint32_t(packed(300).size())) + packed(300));
}

GIPC_TEST("a reader chooses per call how to read the next frame")
{
    auto [r, w] = gipc::pipe();
    w.put(std::string("value"));
    w.flush(); // before writing beside gipc's queue
    raw_write(w.native_handle(), be32(1) + packed(7)); // a msgpack frame written by hand
    w.put_bytes("raw");
    CHECK(r.get_bytes() == packed(std::string("value")));
    CHECK(r.get<int>() == 7);
    CHECK_THROWS_AS((void)r.get<std::string>(), gipc::decode_error); // "raw" is not msgpack
}

GIPC_TEST("TestComm: one writer, two readers: each large message arrives whole")
{
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    const std::vector<int> m(999999, 1); // far larger than the pipe
    boost::fibers::fiber writer([&] {
        w.put(m);
        w.put(m);
    });
    std::vector<int> got1, got2;
    boost::fibers::fiber reader1([&] { got1 = r.get<std::vector<int>>(patience); });
    boost::fibers::fiber reader2([&] { got2 = r.get<std::vector<int>>(patience); });
    writer.join();
    reader1.join();
    reader2.join();
    CHECK(got1 == m);
    CHECK(got2 == m);
}

GIPC_TEST("TestComm: two writers, one reader: large messages never interleave")
{
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    const std::vector<int> m1(999999, 1), m2(999999, 2);
    boost::fibers::fiber writer1([&] { w.put(m1); });
    boost::fibers::fiber writer2([&] { w.put(m2); });
    auto a = r.get<std::vector<int>>(patience);
    auto b = r.get<std::vector<int>>(patience);
    writer1.join();
    writer2.join();
    CHECK(((a == m1 && b == m2) || (a == m2 && b == m1)));
}

GIPC_TEST("TestComm: the registry counts 2 handles per pipe and 4 per duplex pipe")
{
    const auto before = gipc::detail::open_handle_count();
    auto [r, w] = gipc::pipe();
    CHECK(gipc::detail::open_handle_count() == before + 2);
    auto [a, b] = gipc::duplex_pipe();
    CHECK(gipc::detail::open_handle_count() == before + 6);
    a.close();
    CHECK(gipc::detail::open_handle_count() == before + 4);
}

GIPC_TEST("many messages arrive in order")
{
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    constexpr int n = 200000;
    boost::fibers::fiber writer([&] {
        for (int i = 0; i < n; ++i)
            w.put(i);
        w.close();
    });
    int expected = 0;
    for (int i = 0; i < n; ++i)
        if (r.get<int>(patience) == i)
            ++expected;
    CHECK(expected == n);
    CHECK_THROWS_AS((void)r.get<int>(), gipc::eof_error);
    writer.join();
}

GIPC_TEST("a 10 MB message arrives whole")
{
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    std::string big(10 * 1000 * 1000, '\0');
    for (size_t i = 0; i < big.size(); ++i)
        big[i] = char(i * 7 + (i >> 13));
    std::vector<std::uint32_t> big_values(2'500'000);
    for (size_t i = 0; i < big_values.size(); ++i)
        big_values[i] = std::uint32_t(i * 2654435761u);
    boost::fibers::fiber writer([&] {
        w.put_bytes(big);
        w.put(big_values);
        w.put(1);
    });
    CHECK(r.get_bytes(patience) == big);
    CHECK(r.get<std::vector<std::uint32_t>>(patience) == big_values);
    CHECK(r.get<int>(patience) == 1);
    writer.join();
}

// ---- bad input ---------------------------------------------------------------------------------

GIPC_TEST("a header over max_message_size throws decode_error and poisons the stream")
{
    auto [r, w] = gipc::pipe({.max_message_size = 100});
    raw_write(w.native_handle(), be32(101) + std::string(101, 'x'));
    w.put(1);
    CHECK_THROWS_WITH_AS((void)r.get<int>(), doctest::Contains("max_message_size"), gipc::decode_error);
    CHECK_THROWS_AS((void)r.get<int>(), gipc::decode_error);
    CHECK_THROWS_AS((void)r.get_bytes(), gipc::decode_error);
}

GIPC_TEST("put of a payload over max_message_size throws gipc::error and writes nothing")
{
    auto [r, w] = gipc::pipe({.max_message_size = 10});
    CHECK_THROWS_AS(w.put(std::string(20, 'x')), gipc::error);
    CHECK_THROWS_AS(w.put_bytes(std::string(11, 'x')), gipc::error);
    w.put_bytes(std::string(10, 'y'));
    w.put(5);
    CHECK(r.get_bytes() == std::string(10, 'y'));
    CHECK(r.get<int>() == 5);
    CHECK_THROWS_AS((void)r.get<int>(10ms), gipc::timeout_error);
}

GIPC_TEST("an invalid msgpack payload throws decode_error for that frame only")
{
    auto [r, w] = gipc::pipe();
    raw_write(w.native_handle(), be32(1) + "\xc1"); // 0xc1 is never used in msgpack
    raw_write(w.native_handle(), be32(2) + "\x92\x01"); // array of 2 with one element
    raw_write(w.native_handle(), be32(2) + "\x01\x02"); // two values in one frame
    w.put(42);
    CHECK_THROWS_AS((void)r.get<int>(), gipc::decode_error);
    CHECK_THROWS_WITH_AS((void)r.get<msgpack::object_handle>(), doctest::Contains("truncated"), gipc::decode_error);
    CHECK_THROWS_WITH_AS((void)r.get<int>(), doctest::Contains("trailing"), gipc::decode_error);
    CHECK(r.get<int>() == 42);
}

GIPC_TEST("a value of the wrong type throws decode_error and the next frame reads fine")
{
    auto [r, w] = gipc::pipe();
    w.put(std::string("not a number"));
    w.put(300);
    w.put(-1);
    w.put(7);
    CHECK_THROWS_WITH_AS((void)r.get<int>(), doctest::Contains("int"), gipc::decode_error);
    CHECK_THROWS_AS((void)r.get<std::uint8_t>(), gipc::decode_error); // 300 does not fit
    CHECK_THROWS_AS((void)r.get<unsigned>(), gipc::decode_error);      // -1 is negative
    CHECK(r.get<int>() == 7);
}

GIPC_TEST("fibers whose conversions interleave on one thread each get their own value")
{
    // f1 unpacks a and yields; f2 unpacks b and yields; f1 finishes a and decodes c, which
    // is long enough to overwrite b if f2's value were in memory f1 reuses; f2 finishes b.
    auto ends1 = gipc::pipe();
    gipc::reader& r1 = ends1.first;
    gipc::writer& w1 = ends1.second;
    auto ends2 = gipc::pipe();
    gipc::reader& r2 = ends2.first;
    gipc::writer& w2 = ends2.second;
    const std::string a(300, 'a'), b(300, 'b'), c(2000, 'c');
    w1.put(a);
    w1.put(c);
    w2.put(b);
    w1.flush();
    w2.flush();
    std::string got_a, got_b, got_c;
    boost::fibers::fiber f1([&] {
        got_a = r1.get<yielding>(patience).text;
        got_c = r1.get<std::string>(patience);
    });
    boost::fibers::fiber f2([&] { got_b = r2.get<yielding>(patience).text; });
    f1.join();
    f2.join();
    CHECK(got_a == a);
    CHECK(got_b == b);
    CHECK(got_c == c);
}

GIPC_TEST("a small hostile frame cannot make the reader allocate without bound")
{
    auto [r, w] = gipc::pipe();
    // Headers of containers announcing 2^32-1 elements / bytes in a 5-byte payload.
    for (std::string hostile : {std::string("\xdd\xff\xff\xff\xff", 5), std::string("\xdf\xff\xff\xff\xff", 5),
                                std::string("\xdb\xff\xff\xff\xff", 5), std::string("\xc6\xff\xff\xff\xff", 5)})
        raw_write(w.native_handle(), be32(5) + hostile);
    std::string deep(2000, '\x91'); // 2000 nested one-element arrays
    deep += '\x01';
    raw_write(w.native_handle(), be32(std::uint32_t(deep.size())) + deep);
    w.put(1);
    for (int i = 0; i < 5; ++i)
        CHECK_THROWS_AS((void)r.get<msgpack::object_handle>(), gipc::decode_error);
    CHECK(r.get<int>() == 1);
}

GIPC_TEST("a header alone costs the reader no memory; the payload it announces still arrives whole")
{
    auto resident_bytes = [] {
#ifdef _WIN32
        PROCESS_MEMORY_COUNTERS counters{};
        REQUIRE(::GetProcessMemoryInfo(::GetCurrentProcess(), &counters, sizeof counters));
        return std::size_t(counters.WorkingSetSize);
#else
        std::ifstream statm("/proc/self/statm");
        std::size_t size = 0, resident = 0;
        statm >> size >> resident;
        return resident * std::size_t(::sysconf(_SC_PAGESIZE));
#endif
    };
    auto [r, w] = gipc::pipe();
    // A header announcing just under 1 GiB (max_message_size allows it), and nothing more.
    const std::size_t before = resident_bytes();
    raw_write(w.native_handle(), be32((std::uint32_t{1} << 30) - 1));
    CHECK_THROWS_AS((void)r.get_bytes(50ms), gipc::timeout_error);
    CHECK(resident_bytes() - before < (std::size_t{64} << 20));
    r.close();

    // A large payload that arrives in pieces is assembled whole, and what follows it is intact.
    auto ends2 = gipc::pipe();
    gipc::reader& r2 = ends2.first;
    gipc::writer& w2 = ends2.second;
    std::string big(std::size_t{5} << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i)
        big[i] = char(i * 131 % 251);
    boost::fibers::fiber writer([&] {
        w2.put_bytes(big);
        w2.put(std::string("after"));
        w2.flush();
    });
    CHECK(r2.get_bytes(10s) == big);
    CHECK(r2.get<std::string>(10s) == "after");
    writer.join();
}

GIPC_TEST("a frame cut short by EOF is an eof_error that says so")
{
    auto [r, w] = gipc::pipe();
    w.put(1);
    w.flush();
    raw_write(w.native_handle(), be32(10) + "abc");
    w.close();
    CHECK(r.get<int>() == 1);
    CHECK_THROWS_WITH_AS((void)r.get<int>(), doctest::Contains("cut short"), gipc::eof_error);
}

GIPC_TEST("after every write end is closed, remaining messages come first, then eof_error")
{
    auto [r, w] = gipc::pipe();
    w.put(1);
    w.put(2);
    w.put_bytes("three");
    w.close();
    CHECK(r.get<int>() == 1);
    CHECK(r.get<int>() == 2);
    CHECK(r.get_bytes() == "three");
    CHECK_THROWS_WITH_AS((void)r.get<int>(), doctest::Contains("every write end is closed"), gipc::eof_error);
    CHECK_THROWS_AS((void)r.get_bytes(), gipc::eof_error);
}

// ---- timeouts (Python gipc: TestGetTimeout) --------------------------------------------------

GIPC_TEST("a zero-timeout get returns a message that arrived after the pipe was drained")
{
    // A fiber that keeps yielding keeps the scheduler from polling the reactor at every
    // switch, so the reactor may not yet know of data written since the pipe was drained; a get
    // must read it all the same.
    auto [r, w] = gipc::pipe();
    bool stop = false;
    boost::fibers::fiber busy([&] {
        while (!stop)
            boost::this_fiber::yield();
    });
    int wrong = 0;
    for (int i = 0; i < 1000; ++i) {
        w.put(i);
        w.flush();
        try {
            if (r.get<int>(0ms) != i)
                ++wrong;
        } catch (const gipc::timeout_error&) {
            ++wrong;
        }
    }
    stop = true;
    busy.join();
    CHECK(wrong == 0);
    CHECK_THROWS_AS((void)r.get<int>(0ms), gipc::timeout_error);
}

GIPC_TEST("get with a timeout throws timeout_error after the timeout")
{
    auto [r, w] = gipc::pipe();
    auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_AS((void)r.get<int>(50ms), gipc::timeout_error);
    double elapsed = seconds_since(start);
    CHECK(elapsed >= 0.05);
    CHECK(elapsed < 1.0);
    CHECK_THROWS_AS((void)r.get_bytes(0ms), gipc::timeout_error);
    w.put(3);
    w.put(4);
    CHECK(r.get<int>(1s) == 3);
    CHECK(r.get<int>(std::chrono::hours(1'000'000)) == 4); // huge timeouts saturate
}

GIPC_TEST("a timeout in the middle of a message loses no data")
{
    auto [r, w] = gipc::pipe();
    const std::string payload = packed(std::string(1000, 'q'));
    const std::string frame = be32(std::uint32_t(payload.size())) + payload;
    // Half a frame, written by hand on the write end's fd.
    raw_write(w.native_handle(), frame.substr(0, frame.size() / 2));
    CHECK_THROWS_AS((void)r.get<std::string>(30ms), gipc::timeout_error);
    raw_write(w.native_handle(), frame.substr(frame.size() / 2));
    CHECK(r.get<std::string>(1s) == std::string(1000, 'q'));
    // And a timeout inside the header.
    raw_write(w.native_handle(), frame.substr(0, 2));
    CHECK_THROWS_AS((void)r.get_bytes(20ms), gipc::timeout_error);
    raw_write(w.native_handle(), frame.substr(2));
    CHECK(r.get_bytes(1s) == payload);
}

#ifndef _WIN32 // POSIX only: non-blocking ::write and wait_writable on the fd
GIPC_TEST("a timeout in the middle of a large message loses no data")
{
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    std::string payload(300000, '\0');
    for (size_t i = 0; i < payload.size(); ++i)
        payload[i] = char(i % 251);
    const std::string frame = be32(std::uint32_t(payload.size())) + payload;
    // Raw bytes into the non-blocking write end, waiting cooperatively while it is full.
    auto write_raw = [&](std::string_view bytes) {
        while (!bytes.empty()) {
            ssize_t n = ::write(w.native_handle(), bytes.data(), bytes.size());
            if (n > 0)
                bytes.remove_prefix(size_t(n));
            else
                gipc::wait_writable(w.native_handle());
        }
    };
    boost::fibers::fiber writer([&] {
        write_raw(std::string_view(frame).substr(0, 100000));
        boost::this_fiber::sleep_for(150ms);
        write_raw(std::string_view(frame).substr(100000));
        w.put(7);
    });
    CHECK_THROWS_AS((void)r.get_bytes(50ms), gipc::timeout_error);
    CHECK_THROWS_AS((void)r.get<std::string>(10ms), gipc::timeout_error);
    CHECK(r.get_bytes(5s) == payload);
    CHECK(r.get<int>(5s) == 7);
    writer.join();
}

#endif // _WIN32

GIPC_TEST("large and small frames interleave, by bytes and by value")
{
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    boost::fibers::fiber writer([&] {
        for (int i = 0; i < 50; ++i) {
            w.put_bytes(std::string(size_t(40000 + i * 1000), char('a' + i % 26)));
            w.put(i);
            w.put(std::vector<int>(size_t(10000 + i), i));
        }
    });
    bool all_ok = true;
    for (int i = 0; i < 50; ++i) {
        all_ok &= r.get_bytes(patience) == std::string(size_t(40000 + i * 1000), char('a' + i % 26));
        all_ok &= r.get<int>(patience) == i;
        all_ok &= r.get<std::vector<int>>(patience) == std::vector<int>(size_t(10000 + i), i);
    }
    writer.join();
    CHECK(all_ok);
}

GIPC_TEST("a large frame cut short by EOF is an eof_error that says so")
{
    auto [r, w] = gipc::pipe();
    raw_write(w.native_handle(), be32(200000) + std::string(50000, 'x'));
    w.close();
    CHECK_THROWS_WITH_AS((void)r.get_bytes(), doctest::Contains("cut short"), gipc::eof_error);
}

GIPC_TEST("a timed get waiting behind another reader times out")
{
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    boost::fibers::fiber blocked([&] { CHECK(r.get<int>(patience) == 1); });
    boost::this_fiber::yield();
    CHECK_THROWS_AS((void)r.get<int>(30ms), gipc::timeout_error);
    w.put(1);
    blocked.join();
}

// ---- closing (Python gipc: TestClose, TestContextManager) ------------------------------------

GIPC_TEST("close twice throws closed_error; a closed handle refuses use")
{
    auto [r, w] = gipc::pipe();
    CHECK_FALSE(r.closed());
    CHECK(r.native_handle() != closed_handle);
    r.close();
    w.close();
    CHECK(r.closed());
    CHECK(w.closed());
    CHECK(r.native_handle() == closed_handle);
    CHECK(w.native_handle() == closed_handle);
    CHECK_THROWS_AS(r.close(), gipc::closed_error);
    CHECK_THROWS_AS(w.close(), gipc::closed_error);
    CHECK_THROWS_AS((void)r.get<int>(), gipc::closed_error);
    CHECK_THROWS_AS((void)r.get_bytes(), gipc::closed_error);
    CHECK_THROWS_AS(w.put(1), gipc::closed_error);
    CHECK_THROWS_AS(w.put_bytes("x"), gipc::closed_error);
    CHECK_THROWS_AS(w.flush(), gipc::closed_error);
}

GIPC_TEST("a moved-from handle is closed")
{
    auto [r, w] = gipc::pipe();
    gipc::reader r2 = std::move(r);
    gipc::writer w2(std::move(w));
    CHECK(r.closed());
    CHECK(w.closed());
    CHECK(r.native_handle() == closed_handle);
    CHECK_THROWS_AS((void)r.get<int>(), gipc::closed_error);
    CHECK_THROWS_AS(w.put(1), gipc::closed_error);
    CHECK_THROWS_AS(r.close(), gipc::closed_error);
    CHECK_THROWS_AS(w.close(), gipc::closed_error);
    w2.put(5);
    CHECK(r2.get<int>() == 5);
    // Move assignment closes what the target held.
    auto [r3, w3] = gipc::pipe();
    const auto before = gipc::detail::open_handle_count();
    r2 = std::move(r3);
    CHECK(gipc::detail::open_handle_count() == before - 1);
    w3.put(6);
    CHECK(r2.get<int>() == 6);
    gipc::reader default_constructed;
    CHECK(default_constructed.closed());
}

GIPC_TEST("the destructor closes handles, like gipc's with-block")
{
    const auto before = gipc::detail::open_handle_count();
    gipc::native_handle_type rfd, wfd;
    {
        auto [r, w] = gipc::pipe();
        rfd = r.native_handle();
        wfd = w.native_handle();
        CHECK(gipc::detail::open_handle_count() == before + 2);
        CHECK(handle_open(rfd));
    }
    CHECK(gipc::detail::open_handle_count() == before);
    CHECK_FALSE(handle_open(rfd));
    CHECK_FALSE(handle_open(wfd));
}

GIPC_TEST("close while another fiber is blocked in get throws locked_error and keeps the handle open")
{
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    int got = 0;
    boost::fibers::fiber reader_fiber([&] { got = r.get<int>(patience); });
    boost::this_fiber::yield();
    CHECK_THROWS_AS(r.close(), gipc::locked_error);
    CHECK_FALSE(r.closed());
    w.put(11);
    reader_fiber.join();
    CHECK(got == 11);
    r.close();
    CHECK(r.closed());
}

GIPC_TEST("close while another fiber is blocked in put throws locked_error")
{
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    const std::string big(4 * 1024 * 1024, 'b'); // more than a pipe holds
    boost::fibers::fiber writer_fiber([&] { w.put_bytes(big); });
    boost::this_fiber::yield();
    CHECK_THROWS_AS(w.close(), gipc::locked_error);
    CHECK_FALSE(w.closed());
    CHECK(r.get_bytes(patience) == big);
    writer_fiber.join();
}

GIPC_TEST("close and the destructor write out queued frames")
{
    auto [r, w] = gipc::pipe();
    for (int i = 0; i < 1000; ++i)
        w.put(i);
    CHECK(bytes_in_pipe(r.native_handle()) == 0); // still queued
    w.close();
    for (int i = 0; i < 1000; ++i)
        CHECK(r.get<int>() == i);
    CHECK_THROWS_AS((void)r.get<int>(), gipc::eof_error);

    auto [r2, w2] = gipc::pipe();
    {
        gipc::writer scoped = std::move(w2);
        scoped.put(std::string("last words"));
    }
    CHECK(r2.get<std::string>() == "last words");
}

GIPC_TEST("close blocks cooperatively while the pipe is full and a reader exists")
{
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    constexpr int n = 300000; // more than the pipe and the queue hold
    std::vector<int> got;
    boost::fibers::fiber reader_fiber([&] {
        boost::this_fiber::sleep_for(20ms);
        for (;;) {
            try {
                got.push_back(r.get<int>(patience));
            } catch (const gipc::eof_error&) {
                return;
            }
        }
    });
    for (int i = 0; i < n; ++i)
        w.put(i);
    w.close();
    reader_fiber.join();
    REQUIRE(got.size() == size_t(n));
    CHECK(got.back() == n - 1);
}

// ---- broken pipes ------------------------------------------------------------------------------

GIPC_TEST("writing after every reader is gone throws broken_pipe and never kills the process")
{
    auto [r, w] = gipc::pipe();
    r.close();
    w.put(1); // may be queued
    try {
        w.flush();
        FAIL("flush did not throw");
    } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::broken_pipe);
    }
    try {
        w.put_bytes(std::string(100000, 'x')); // large: written at once
        FAIL("put_bytes did not throw");
    } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::broken_pipe);
    }
    w.put(2);
    CHECK_NOTHROW(w.close()); // undeliverable frames are dropped without an error
}

GIPC_TEST("an error met while flushing in the background is thrown by the next put or flush")
{
    auto [r, w] = gipc::pipe();
    w.put(1);               // queued
    r.close();
    boost::this_fiber::yield(); // the queue is written at the switch, and fails
    try {
        w.put(2);
        w.flush();
        FAIL("no error reported");
    } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::broken_pipe);
    }
}

// ---- delivery ----------------------------------------------------------------------------------

GIPC_TEST("a queued frame reaches the pipe when the writing fiber yields")
{
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    int seen_before = -1, seen_after = -1;
    boost::fibers::fiber writer_fiber([&] {
        w.put(1);
        seen_before = bytes_in_pipe(r.native_handle());
        boost::this_fiber::yield();
        seen_after = bytes_in_pipe(r.native_handle());
    });
    writer_fiber.join();
    CHECK(seen_before == 0);
    CHECK(seen_after == 5);
    CHECK(r.get<int>() == 1);
}

GIPC_TEST("a queued frame is in the pipe before the next fiber of the thread runs")
{
    // The writer's queue is written by the dispatcher, which the yielding fiber hands the
    // thread to ahead of the fibers already ready (pick_next() itself does no work).
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    int seen_by_next = -1;
    boost::fibers::fiber writer_fiber([&] {
        w.put(1);
        boost::this_fiber::yield();
    });
    boost::fibers::fiber next_fiber([&] { seen_by_next = bytes_in_pipe(r.native_handle()); });
    writer_fiber.join();
    next_fiber.join();
    CHECK(seen_by_next == 5);
    CHECK(r.get<int>() == 1);
}

GIPC_TEST("a queued frame reaches the pipe when the writing fiber blocks, sleeps or ends")
{
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    std::vector<int> got;
    boost::fibers::fiber reader_fiber([&] {
        for (int i = 0; i < 3; ++i)
            got.push_back(r.get<int>(2s));
    });
    boost::fibers::fiber writer_fiber([&] {
        w.put(1);
        boost::this_fiber::sleep_for(1ms); // sleeps
        boost::fibers::mutex m;
        boost::fibers::condition_variable cv;
        bool flag = false;
        w.put(2);
        boost::fibers::fiber helper([&] {
            std::lock_guard lk(m);
            flag = true;
            cv.notify_all();
        });
        {
            std::unique_lock lk(m);
            cv.wait(lk, [&] { return flag; }); // blocks
        }
        helper.join();
        w.put(3); // ends
    });
    writer_fiber.join();
    reader_fiber.join();
    CHECK(got == std::vector<int>{1, 2, 3});
}

GIPC_TEST("a frame is readable by another thread after flush()")
{
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    std::atomic<int> got{0};
    std::thread other([&] {
        try {
            got = r.get<int>(5s);
        } catch (const gipc::timeout_error&) {
            got = -1;
        }
    });
    w.put(77);
    w.flush();
    // Block the thread, not a fiber: no switch happens here, so only flush() delivered.
    other.join();
    CHECK(got == 77);
}

namespace {
// program_algorithm: a scheduling algorithm of the program's own (gipc keeps it in place, and
// its calls wait through the relay there).
struct program_algorithm : boost::fibers::algo::round_robin {};
} // namespace

GIPC_TEST("put, flush and close work on a thread of the program's own scheduling algorithm")
{
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    const std::string large(20000, 'L'); // over the direct-write threshold; all of it fits the pipe
    std::thread([&, w = std::move(ends.second)]() mutable {
        boost::fibers::use_scheduling_algorithm<program_algorithm>();
        w.put(1);
        w.put_bytes(large);
        w.put(std::string("small"));
        w.flush();
        w.put(3);
        w.close(); // writes out what a put left queued
    }).join();
    CHECK(r.get<int>() == 1);
    CHECK(r.get_bytes() == large);
    CHECK(r.get<std::string>() == "small");
    CHECK(r.get<int>() == 3);
    CHECK_THROWS_AS((void)r.get<int>(), gipc::eof_error);
}

GIPC_TEST("put blocks while the pipe is full and the queue is over its bound")
{
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    std::atomic<long> sent{0};
    constexpr long total = 1'000'000;
    boost::fibers::fiber writer_fiber([&] {
        for (long i = 0; i < total; ++i) {
            w.put(std::uint8_t(i));
            ++sent;
        }
    });
    boost::this_fiber::sleep_for(100ms);
    const long stalled_at = sent;
    // 5-byte frames: a pipe of at most 1 MiB plus a 256 KiB queue hold ~270,000.
    MESSAGE("writer stalled after " << stalled_at << " messages");
    CHECK(stalled_at < 400'000);
    CHECK(stalled_at > 1000);
    for (long i = 0; i < total; ++i)
        if (r.get<std::uint8_t>(patience) != std::uint8_t(i)) {
            FAIL("message " << i << " out of order");
            break;
        }
    writer_fiber.join();
    CHECK(sent == total);
}

namespace {

// fill_and_end runs a thread that puts frames on w until the pipe and then the queue behind it
// are full (the writer grows the pipe as far as it may first; ten puts in a row that add nothing
// to the pipe leave over 64 KiB queued that put() found no room for), and then ends. Returns the
// number of frames it put.
long fill_and_end(gipc::writer& w, gipc::native_handle_type read_fd, const std::string& frame)
{
    long sent = 0;
    std::thread([&] {
        int last_bytes = -1, unchanged = 0;
        while (unchanged < 10 && sent < 1000) {
            w.put_bytes(frame);
            ++sent;
            const int bytes = bytes_in_pipe(read_fd);
            unchanged = bytes == last_bytes ? unchanged + 1 : 0;
            last_bytes = bytes;
        }
        boost::this_fiber::sleep_for(1ms); // the switch tries the pipe and finds it full
    }).join();
    return sent;
}

// wait_for_fds waits (at most 5 s) until this process has no more fds open than `count`: a
// helper thread that gipc starts for a while holds a reactor's fds until it ends.
void wait_for_fds([[maybe_unused]] std::size_t count)
{
#ifdef _WIN32
    // Windows: the fixture waits for the process's handles to be closed.
#else
    const auto start = std::chrono::steady_clock::now();
    while (gipc_test::open_fds().size() > count && seconds_since(start) < 5)
        std::this_thread::sleep_for(1ms);
#endif
}

// open_fd_count is how many fds this process has open (Windows: 0, see wait_for_fds).
std::size_t open_fd_count()
{
#ifdef _WIN32
    return 0;
#else
    return gipc_test::open_fds().size();
#endif
}

} // namespace

GIPC_TEST("frames queued behind a full pipe by a thread that has ended still go out")
{
    // A thread fills the pipe, leaves frames queued behind it (the writer then waits for the
    // pipe in that thread's reactor) and ends. Frames the main thread queues afterwards, and
    // the thread's, must reach the reader as it makes room.
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    const std::size_t fds_with_pipe = open_fd_count();
    const std::string frame(8 * 1024, 'q');
    const gipc::native_handle_type fd = r.native_handle();
    long from_thread = 0;
    std::thread([&] {
        // The writer grows the pipe when it finds it full, as far as it may; then frames
        // stay queued. Stop when ten puts in a row added nothing to the pipe: the queue then
        // holds over 64 KiB, which put() tried to write out, and found no room for.
        int last_bytes = -1, unchanged = 0;
        while (unchanged < 10 && from_thread < 1000) {
            w.put_bytes(frame);
            ++from_thread;
            const int bytes = bytes_in_pipe(fd);
            unchanged = bytes == last_bytes ? unchanged + 1 : 0;
            last_bytes = bytes;
        }
        boost::this_fiber::sleep_for(1ms); // the switch tries the pipe and finds it full
    }).join();
    REQUIRE(from_thread < 1000);

    constexpr long from_main = 5; // with the thread's, below the queue's bound: put() does not wait
    for (long i = 0; i < from_main; ++i)
        w.put_bytes(frame);
    long got = 0;
    boost::fibers::fiber reader([&] {
        try {
            for (; got < from_thread + from_main; ++got)
                if (r.get_bytes(5s) != frame)
                    break;
        } catch (const gipc::timeout_error&) {
        }
    });
    reader.join();
    CHECK(got == from_thread + from_main);
    wait_for_fds(fds_with_pipe); // the helper thread that took the ended thread's frames ends
}

GIPC_TEST("frames queued behind a full pipe by a thread that has ended go out with no further call on the writer")
{
    // Nothing calls the writer after the thread ended: the frames still queued must reach a
    // reader (on another thread) as it makes room.
    const std::size_t fds_before = open_fd_count();
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    const std::string frame(8 * 1024, 'q');
    const long from_thread = fill_and_end(w, r.native_handle(), frame);
    REQUIRE(from_thread < 1000);
    REQUIRE(long(bytes_in_pipe(r.native_handle())) < from_thread * long(frame.size() + 4));
    long got = 0;
    std::thread([&] {
        try {
            for (; got < from_thread; ++got)
                if (r.get_bytes(5s) != frame)
                    break;
        } catch (const gipc::timeout_error&) {
        }
    }).join();
    CHECK(got == from_thread);
    r.close();
    w.close();
    wait_for_fds(fds_before);
}

GIPC_TEST("a writer destroyed by the thread that filled its pipe delivers every frame to a reader draining meanwhile")
{
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    const gipc::native_handle_type read_fd = r.native_handle();
    const std::string frame(8 * 1024, 'd');
    std::atomic<long> sent{0};
    long got = 0;
    std::thread reader([&] {
        boost::this_fiber::sleep_for(100ms); // the writer fills the pipe and the queue first
        try {
            for (;; ++got)
                if (r.get_bytes(5s) != frame)
                    break;
        } catch (const gipc::eof_error&) {
        } catch (const gipc::timeout_error&) {
        }
        // A reader that gave up ends the writer's wait for room, which would otherwise last as
        // long as the read end is open: the writer's thread, joined first, then fails the case
        // instead of hanging it.
        r.close();
    });
    std::thread([&, w = std::move(ends.second)]() mutable {
        int last_bytes = -1, unchanged = 0;
        while (unchanged < 10 && sent < 1000) {
            w.put_bytes(frame);
            ++sent;
            const int bytes = bytes_in_pipe(read_fd);
            unchanged = bytes == last_bytes ? unchanged + 1 : 0;
            last_bytes = bytes;
        }
        // w's destructor writes out the queue, waiting while the reader makes room.
    }).join();
    reader.join();
    CHECK(got == sent);
}

#ifndef _WIN32 // POSIX only: F_SETPIPE_SZ
GIPC_TEST("a large put waiting for a full pipe keeps its own frame while another fiber puts")
{
    // put() packs into a per-thread scratch buffer. A large value waits for its pipe to take
    // the frames queued before it; another fiber of the thread that puts meanwhile packs into
    // that same buffer, so the waiting put must own its frame before it waits.
    auto ends1 = gipc::pipe();
    gipc::reader& r1 = ends1.first;
    gipc::writer& w1 = ends1.second;
    auto [r2, w2] = gipc::pipe();
    // Fill the first pipe at its largest size, so that gipc cannot grow it either.
    const int size = ::fcntl(w1.native_handle(), F_SETPIPE_SZ, 1 << 20);
    REQUIRE(size > 0);
    const std::string filler(std::size_t(size), 'f');
    raw_write(w1.native_handle(), filler);
    REQUIRE(bytes_in_pipe(r1.native_handle()) == size);
    w1.put(1); // queued: the pipe is full
    // Frames past the direct-write threshold (16 KiB) wait for the queue; small ones queue.
    const std::vector<int> mine(10000, 1000), other(1000, 9); // 30003 and 1003 bytes

    bool put_done = false;
    std::string put_error;
    boost::fibers::fiber large([&] {
        try {
            w1.put(mine); // writes the queued frame first: waits for room
        } catch (const std::exception& e) {
            put_error = e.what();
        }
        put_done = true;
    });
    boost::this_fiber::yield(); // the large put starts and waits
    CHECK_FALSE(put_done);
    w2.put(other); // packs into the same thread's scratch buffer
    w2.put(std::vector<int>(8000, 1000)); // a large one too
    // Free the first pipe: read the filler past gipc, then the frames.
    std::string got(filler.size(), '\0');
    REQUIRE(::read(r1.native_handle(), got.data(), got.size()) == ssize_t(got.size()));
    CHECK(r1.get<int>(5s) == 1);
    large.join();
    CHECK(put_error == "");
    CHECK(r1.get<std::vector<int>>(5s) == mine);
    CHECK(r2.get<std::vector<int>>(5s) == other);
    CHECK(r2.get<std::vector<int>>(5s) == std::vector<int>(8000, 1000));
}

#endif // _WIN32

// ---- sharing between fibers and threads --------------------------------------------------------

GIPC_TEST("4 threads of fibers share one writer; 2 reader fibers get every message whole, once")
{
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    constexpr int threads = 4, fibers_per_thread = 5, per_fiber = 400;
    constexpr int total = threads * fibers_per_thread * per_fiber;
    using message = std::tuple<int, int, int, std::string>; // thread, fiber, seq, padding

    auto padding = [](int t, int f, int s) {
        // Sizes vary from a few bytes to past the direct-write threshold.
        size_t len = size_t((t * 7919 + f * 104729 + s * 31) % 40000);
        if (s % 50 != 0)
            len %= 300;
        return std::string(len, char('a' + (t * 5 + f + s) % 26));
    };

    std::atomic<int> writers_done{0}, put_errors{0};
    std::vector<std::thread> writers;
    for (int t = 0; t < threads; ++t)
        writers.emplace_back([&, t] {
            std::vector<boost::fibers::fiber> fs;
            for (int f = 0; f < fibers_per_thread; ++f)
                fs.emplace_back([&, t, f] {
                    try {
                        for (int s = 0; s < per_fiber; ++s) {
                            w.put(message{t, f, s, padding(t, f, s)});
                            if (s % 10 == 0)
                                boost::this_fiber::yield();
                        }
                    } catch (const std::exception&) {
                        ++put_errors; // the read end closed under a stuck case (below)
                    }
                });
            for (auto& f : fs)
                f.join();
            try {
                w.flush();
            } catch (const std::exception&) {
                ++put_errors;
            }
            ++writers_done;
        });

    std::set<std::tuple<int, int, int>> seen;
    int duplicates = 0, corrupt = 0, timeouts = 0, readers_done = 0;
    boost::fibers::mutex seen_mutex;
    auto read_loop = [&] {
        for (;;) {
            message m;
            try {
                m = r.get<message>(patience);
            } catch (const gipc::eof_error&) {
                break;
            } catch (const gipc::timeout_error&) {
                ++timeouts;
                break;
            }
            std::lock_guard lk(seen_mutex);
            auto [t, f, s, pad] = m;
            if (pad != padding(t, f, s))
                ++corrupt;
            if (!seen.insert({t, f, s}).second)
                ++duplicates;
        }
        ++readers_done;
    };
    boost::fibers::fiber reader1(read_loop), reader2(read_loop);
    // Wait without blocking the thread: the reader fibers run on it.
    const bool written = gipc_test::wait_until([&] { return writers_done == threads; }, 3 * patience);
    CHECK_MESSAGE(written, "only " << writers_done.load() << " of " << threads << " writer threads finished");
    if (!written) {
        // Make the writers end: once the readers gave up, closing the read end fails the puts
        // that wait for room (EPIPE).
        gipc_test::settle_or_abort([&] { return readers_done == 2; }, 2 * patience,
                                   "4 threads share one writer: the reader fibers never ended");
        r.close();
        gipc_test::settle_or_abort([&] { return writers_done == threads; }, patience,
                                   "4 threads share one writer: writer threads stuck with the read end closed");
    }
    for (auto& t : writers)
        t.join();
    w.close();
    gipc_test::settle_or_abort([&] { return readers_done == 2; }, 2 * patience,
                               "4 threads share one writer: the reader fibers never saw the end of the stream");
    reader1.join();
    reader2.join();
    CHECK(timeouts == 0);
    CHECK(put_errors.load() == 0);
    CHECK(seen.size() == size_t(total));
    CHECK(duplicates == 0);
    CHECK(corrupt == 0);
}

GIPC_TEST("fibers on several threads share one reader")
{
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
    constexpr int n = 20000, threads = 3;
    std::atomic<long> sum{0};
    std::atomic<int> count{0}, timeouts{0}, readers_done{0};
    std::vector<std::thread> readers;
    for (int t = 0; t < threads; ++t)
        readers.emplace_back([&] {
            std::vector<boost::fibers::fiber> fs;
            for (int f = 0; f < 3; ++f)
                fs.emplace_back([&] {
                    for (;;) {
                        try {
                            sum += r.get<int>(patience);
                            ++count;
                        } catch (const gipc::eof_error&) {
                            return;
                        } catch (const gipc::timeout_error&) {
                            ++timeouts;
                            return;
                        }
                    }
                });
            for (auto& f : fs)
                f.join();
            ++readers_done;
        });
    // The writes run in a fiber, so that this one can bound the wait for the readers.
    bool written = false;
    std::string write_error;
    boost::fibers::fiber writer([&] {
        try {
            for (int i = 1; i <= n; ++i)
                w.put(i);
            w.close();
        } catch (const std::exception& e) {
            write_error = e.what();
        }
        written = true;
    });
    const bool read = gipc_test::wait_until([&] { return readers_done == threads; }, 3 * patience);
    CHECK_MESSAGE(read, "only " << readers_done.load() << " of " << threads << " reader threads finished");
    gipc_test::settle_or_abort([&] { return readers_done == threads; }, patience,
                               "several threads share one reader: the reader threads never ended");
    if (!written)
        r.close(); // the readers gave up: a put or close waiting for room fails (EPIPE) and ends
    gipc_test::settle_or_abort([&] { return written; }, patience,
                               "several threads share one reader: the writer fiber is stuck");
    writer.join();
    for (auto& t : readers)
        t.join();
    CHECK(write_error == "");
    CHECK(timeouts.load() == 0);
    CHECK(count.load() == n);
    CHECK(sum.load() == long(n) * (n + 1) / 2);
}

#ifndef _WIN32 // POSIX only: run_helper
namespace {

// thread_scheduling_algorithm is the calling thread's Boost.Fiber algorithm (Boost's round_robin
// until something installs another), made with the thread's scheduler on first use. Boost 1.74
// has no accessor: the private member is read as src/scheduler.cpp does, through a member
// pointer formed in an explicit instantiation, where access checking does not apply.
template <typename Tag, auto Member>
struct expose_member {
    friend auto member_pointer(Tag) noexcept { return Member; }
};
struct algo_member_tag {
    friend auto member_pointer(algo_member_tag) noexcept;
};
template struct expose_member<algo_member_tag, &boost::fibers::scheduler::algo_>;

boost::fibers::algo::algorithm* thread_scheduling_algorithm()
{
    return (boost::fibers::context::active()->get_scheduler()->*member_pointer(algo_member_tag{})).get();
}

} // namespace

// A thread's first gipc call replaces Boost.Fiber's round_robin with gipc's algorithm, while
// fibers of the thread may wait in a Boost.Fiber primitive that fibers of other threads signal
// (the fiber mutex of a writer that threads share: put() takes it before anything installs the
// algorithm). Such a wake-up queues the fiber and then calls notify() on the thread's
// algorithm, outside any lock against the switch: it may reach the replaced round_robin after
// the switch. This helper makes that late call, from another thread, on purpose; a replaced
// algorithm destroyed at the switch makes it a call on freed memory (a crash, or a hang in its
// condition variable: the helper runs bounded, as a child).
GIPC_TEST_CHILD("late_notify_of_replaced_algorithm")
{
    auto ends = gipc::pipe();
    gipc::writer& w = ends.second;
    bool switched = false;
    std::thread([&] {
        boost::fibers::algo::algorithm* before = thread_scheduling_algorithm();
        w.put(1); // the thread's first gipc call: gipc's algorithm takes over
        switched = thread_scheduling_algorithm() != before;
        std::thread([before] { before->notify(); }).join();
        boost::this_fiber::yield();
    }).join();
    if (!switched) {
        std::fprintf(stderr, "gipc's algorithm was not installed by put()\n");
        return 1;
    }
    return ends.first.get<int>(5s) == 1 ? 0 : 1;
}

GIPC_TEST("a wake-up that reaches a thread's replaced round_robin after gipc's algorithm took over is harmless")
{
    const auto result = gipc_test::run_helper("late_notify_of_replaced_algorithm", {}, 30s);
    INFO(result.output);
    CHECK(result.status == 0);
}
#endif // _WIN32

// ---- duplex (Python gipc: TestDuplexHandleBasic) -----------------------------------------------

GIPC_TEST("duplex ends each read what the other writes")
{
    auto [a, b] = gipc::duplex_pipe();
    a.put(std::string("to b"));
    b.put(std::string("to a"));
    b.put_bytes("raw to a");
    CHECK(b.get<std::string>() == "to b");
    CHECK(a.get<std::string>() == "to a");
    CHECK(a.get_bytes() == "raw to a");
    CHECK_THROWS_AS((void)a.get<int>(20ms), gipc::timeout_error);
    CHECK(a.read_handle() != closed_handle);
    CHECK(a.write_handle() != closed_handle);
}

GIPC_TEST("duplex close closes both directions; again throws closed_error")
{
    auto [a, b] = gipc::duplex_pipe();
    a.put(1);
    a.close();
    CHECK(a.closed());
    CHECK(a.read_handle() == closed_handle);
    CHECK(a.write_handle() == closed_handle);
    CHECK_THROWS_AS(a.close(), gipc::closed_error);
    CHECK_THROWS_AS((void)a.get<int>(), gipc::closed_error);
    CHECK_THROWS_AS(a.put(1), gipc::closed_error);
    CHECK(b.get<int>() == 1);
    CHECK_THROWS_AS((void)b.get<int>(), gipc::eof_error);
    b.put(1);
    CHECK_THROWS_AS(b.flush(), std::system_error);
}

GIPC_TEST("duplex close while another fiber is blocked in get throws locked_error; both stay open")
{
    auto ends = gipc::duplex_pipe();
    gipc::duplex& a = ends.first;
    gipc::duplex& b = ends.second;
    boost::fibers::fiber blocked([&] { CHECK(a.get<int>(patience) == 5); });
    boost::this_fiber::yield();
    CHECK_THROWS_AS(a.close(), gipc::locked_error);
    CHECK_FALSE(a.closed());
    a.put(9); // the write direction is still open
    CHECK(b.get<int>() == 9);
    b.put(5);
    blocked.join();
    a.close();
}

GIPC_TEST("duplex close racing puts on another thread closes both directions or neither")
{
    // One thread puts on a duplex end while another closes it: close() either throws
    // locked_error and leaves both directions open, or closes both.
    const auto start = std::chrono::steady_clock::now();
    long rounds = 0, refused = 0;
    while (rounds < 20000 && seconds_since(start) < 1.0) {
        ++rounds;
        auto ends = gipc::duplex_pipe();
        gipc::duplex& d = ends.first;
        std::atomic<bool> go{false};
        std::thread putter([&] {
            while (!go.load()) {
            }
            try {
                for (int i = 0; i < 200; ++i)
                    d.put(i);
            } catch (const gipc::closed_error&) {
            }
        });
        go = true;
        for (;;) {
            try {
                d.close();
                break;
            } catch (const gipc::locked_error&) {
                ++refused;
                if (d.read_handle() == closed_handle || d.write_handle() == closed_handle) {
                    FAIL_CHECK("close refused, but one direction was closed");
                    break;
                }
            }
        }
        putter.join();
        if (d.read_handle() != closed_handle || d.write_handle() != closed_handle || !d.closed()) {
            FAIL_CHECK("close returned with a direction still open (round " << rounds << ")");
            break;
        }
    }
    MESSAGE(rounds << " rounds, close refused " << refused << " times");
}

GIPC_TEST("a duplex end can ping-pong with itself through fibers")
{
    auto ends = gipc::duplex_pipe();
    gipc::duplex& a = ends.first;
    gipc::duplex& b = ends.second;
    boost::fibers::fiber echo([&] {
        for (;;) {
            int v;
            try {
                v = b.get<int>(patience);
            } catch (const gipc::eof_error&) {
                return;
            }
            b.put(v + 1);
        }
    });
    int v = 0;
    for (int i = 0; i < 1000; ++i) {
        a.put(v);
        v = a.get<int>(patience);
    }
    a.close();
    echo.join();
    CHECK(v == 1000);
}

#ifndef _WIN32 // POSIX only: glibc's heap counts; guarded stacks and posix_spawned helpers
// ---- memory bounds (API.md, "Hostile environments") ---------------------------------------------

GIPC_TEST("a reader keeps at most 1 MiB of buffer after returning a 128 MiB message (32 MiB under valgrind)")
{
    on_fresh_thread([&] {
        check_heap_counter();
        const std::string big(large_message_size(), 'm');
        auto ends = gipc::pipe();
        gipc::reader& r = ends.first;
        gipc::writer& w = ends.second;
        // The reader's buffer, the thread's msgpack zone and scratch builder exist before measuring.
        w.put(std::string("warm"));
        w.put_bytes("warm");
        w.flush();
        CHECK(r.get<std::string>() == "warm");
        CHECK(r.get_bytes() == "warm");
        for (const bool as_bytes : {false, true}) {
            CAPTURE(as_bytes);
            boost::fibers::fiber writer([&] {
                if (as_bytes)
                    w.put_bytes(big);
                else
                    w.put(big);
                w.flush();
            });
            const long long before = heap_in_use();
            {
                const std::string got = as_bytes ? r.get_bytes(120s) : r.get<std::string>(120s);
                CHECK(got == big);
            }
            writer.join();
            const long long kept = heap_in_use() - before;
            MESSAGE(std::string(as_bytes ? "get_bytes" : "get<std::string>") << ": the reader kept " << kept << " bytes");
            CHECK(kept <= (1ll << 20) + (16ll << 10));
        }
    });
}

GIPC_TEST("a refused put keeps no memory")
{
    on_fresh_thread([&] {
        check_heap_counter();
        auto ends = gipc::pipe({.max_message_size = 1 << 20});
        gipc::reader& r = ends.first;
        gipc::writer& w = ends.second;
        const std::string big(std::size_t{64} << 20, 'x');
        const std::vector<std::string> many(64, std::string(std::size_t{1} << 20, 'v')); // 64 MiB in pieces
        w.put(1); // the thread's scratch builder exists before measuring
        w.flush();
        CHECK(r.get<int>() == 1);
        const long long before = heap_in_use();
        CHECK_THROWS_AS(w.put(big), gipc::error);
        CHECK_THROWS_AS(w.put(many), gipc::error);
        CHECK_THROWS_AS(w.put_bytes(big), gipc::error);
        const long long kept = heap_in_use() - before;
        MESSAGE("refused puts kept " << kept << " bytes");
        CHECK(kept <= (16ll << 10));
        w.put(2); // the writer still works
        CHECK(r.get<int>(5s) == 2);
    });
}

GIPC_TEST("a put failing on a broken pipe keeps no memory")
{
    on_fresh_thread([&] {
        // A frame large enough to be written straight from the thread's builder, on a writer with
        // an error pending (every reader gone).
        check_heap_counter();
        const std::string big(std::size_t{64} << 20, 'x');
        auto ends2 = gipc::pipe();
        gipc::writer& w2 = ends2.second;
        ends2.first.close();
        w2.put(1);
        CHECK_THROWS_AS(w2.flush(), std::system_error);
        w2.put(2);
        boost::this_fiber::yield(); // the frame fails to go out: the error waits for the next put
        const long long before = heap_in_use();
        CHECK_THROWS_AS(w2.put(big), std::system_error);
        const long long kept = heap_in_use() - before;
        MESSAGE("a put failing on a broken pipe kept " << kept << " bytes");
        CHECK(kept <= (16ll << 10));
    });
}

// ---- small fiber stacks (API.md, "Hostile environments") -------------------------------------

GIPC_TEST("put_bytes works on a 16 KiB fiber stack")
{
    CHECK(run_small_stack_helper("small_stack_put_bytes") == 0);
}

GIPC_TEST("every pipe call works on a 16 KiB fiber stack: puts, gets, timeouts, errors, flush, close, fd waits")
{
    CHECK(run_small_stack_helper("small_stack_pipe") == 0);
}

GIPC_TEST("every duplex call works on a 16 KiB fiber stack")
{
    CHECK(run_small_stack_helper("small_stack_duplex") == 0);
}

#endif // _WIN32

// ---- options -----------------------------------------------------------------------------------

GIPC_TEST("pipe options are validated")
{
    CHECK_THROWS_AS(gipc::pipe({.max_message_size = 0}), gipc::error);
    CHECK_THROWS_AS(gipc::duplex_pipe({.max_message_size = std::size_t{1} << 33}), gipc::error);
}

#ifdef _WIN32
GIPC_TEST("all pipe handles are not inheritable")
{
    auto [r, w] = gipc::pipe();
    auto [a, b] = gipc::duplex_pipe();
    for (HANDLE h : {r.native_handle(), w.native_handle(), a.read_handle(), a.write_handle()}) {
        DWORD flags = 0;
        REQUIRE(::GetHandleInformation(h, &flags));
        CHECK((flags & HANDLE_FLAG_INHERIT) == 0);
    }
}
#else
GIPC_TEST("all pipe fds are close-on-exec and non-blocking")
{
    auto [r, w] = gipc::pipe();
    auto [a, b] = gipc::duplex_pipe();
    for (int fd : {r.native_handle(), w.native_handle(), a.read_handle(), a.write_handle()}) {
        CHECK((::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
        CHECK((::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
    }
}
#endif // _WIN32

} // TEST_SUITE
