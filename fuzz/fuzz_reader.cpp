// SPDX-License-Identifier: MIT
// fuzz_reader: libFuzzer target for the read side of a pipe. Arbitrary bytes go into the
// write end of gipc::pipe() and are read back with get<T>() and get_bytes().
//
// Input layout (fuzz/make_corpus.py writes seeds in it):
//   byte 0      options: bit 0: max_message_size 64 KiB (reaches the large-frame path)
//                        instead of 4096; bits 1-3: how many bytes the writer puts into the
//                        pipe at a time (chunk_sizes); bit 4: the writer waits for the pipe
//                        to be drained before each chunk, so the reader sees them one by one;
//                        bits 5-7 all set: the stream is followed by more than 64 KiB (what a
//                        pipe holds) of filler frames of max_message_size, then by itself
//                        again, and written at once (bits 1-4 ignored), so that the reader
//                        falls behind and grows its buffer (small inputs reach that; large
//                        ones, or writing 64 KiB in small chunks, would make fuzzing slow)
//   byte 1      n, the number of op bytes that follow
//   n bytes     the read calls, cycled: op % 8 picks one of op_names
//   the rest    the byte stream written into the pipe, then the write end is closed
//
// Checked for every call:
//   - it returns or throws a gipc::error; any other exception (std::system_error included)
//     aborts: a crash for libFuzzer;
//   - it agrees with a reference model of the framing (4-byte big-endian length, payload):
//     get_bytes returns exactly the next frame's payload, a typed get consumes the frame
//     whether or not it converts, a header over max_message_size throws decode_error and
//     every later call too, a stream ending without a complete frame throws eof_error, and a
//     timed call that times out consumes nothing;
//   - the loop ends: untimed calls either consume a frame or end the stream (a hang is
//     caught by libFuzzer's -timeout), and the number of calls is bounded for timed ones.
// After every input no gipc handle is open and no fd is left over. Replay an input with
// FUZZ_READER_TRACE=1 fuzz_reader <file> to see every call and its outcome.
#include <gipc/detail/test_support.hpp>
#include <gipc/gipc.hpp>

#include <boost/fiber/all.hpp>

#include <cxxabi.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <typeinfo>
#include <vector>

using namespace std::chrono_literals;

namespace {

constexpr std::size_t chunk_sizes[8] = {0 /* all at once */, 1, 3, 7, 64, 511, 4096, 40000};

const char* const op_names[8] = {
    "get<msgpack::object_handle>()", "get<std::string>()", "get<std::vector<int>>()", "get_bytes()",
    "get_bytes(0ms)", "get<msgpack::object_handle>(0ms)",
    "get<std::map<std::string, std::vector<int>>>()",
    "get<std::tuple<int, std::string, std::optional<double>>>()",
};

bool is_timed(unsigned op) { return op == 4 || op == 5; }
bool is_raw(unsigned op) { return op == 3 || op == 4; }

[[noreturn]] void fail(const char* what, const std::string& detail)
{
    std::fprintf(stderr, "fuzz_reader: %s: %s\n", what, detail.c_str());
    std::abort();
}

std::string type_name(const std::type_info& type)
{
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> name(abi::__cxa_demangle(type.name(), nullptr, nullptr, &status),
                                                std::free);
    return status == 0 && name ? name.get() : type.name();
}

// outcome is what one read call did.
struct outcome {
    enum kind_t { value, decode_error, eof_error, timeout_error } kind;
    std::string bytes; // the payload, for raw calls that returned one
    std::string what;
};

const char* kind_name(outcome::kind_t k)
{
    switch (k) {
    case outcome::value: return "a value";
    case outcome::decode_error: return "decode_error";
    case outcome::eof_error: return "eof_error";
    case outcome::timeout_error: return "timeout_error";
    }
    return "?";
}

outcome call(gipc::reader& r, unsigned op)
{
    try {
        switch (op) {
        case 0: (void)r.get<msgpack::object_handle>(); break;
        case 1: (void)r.get<std::string>(); break;
        case 2: (void)r.get<std::vector<int>>(); break;
        case 3: return {outcome::value, r.get_bytes(), {}};
        case 4: return {outcome::value, r.get_bytes(0ms), {}};
        case 5: (void)r.get<msgpack::object_handle>(0ms); break;
        case 6: (void)r.get<std::map<std::string, std::vector<int>>>(); break;
        case 7: (void)r.get<std::tuple<int, std::string, std::optional<double>>>(); break;
        }
        return {outcome::value, {}, {}};
    } catch (const gipc::decode_error& e) {
        return {outcome::decode_error, {}, e.what()};
    } catch (const gipc::eof_error& e) {
        return {outcome::eof_error, {}, e.what()};
    } catch (const gipc::timeout_error& e) {
        return {outcome::timeout_error, {}, e.what()};
    } catch (const gipc::error& e) {
        // closed_error, locked_error: impossible on an open handle used by one fiber.
        fail((std::string(op_names[op]) + " threw " + type_name(typeid(e))).c_str(), e.what());
    } catch (const std::exception& e) {
        fail((std::string(op_names[op]) + " threw " + type_name(typeid(e)) + ", not a gipc::error").c_str(),
             e.what());
    }
    // Anything else (not even a std::exception) escapes: std::terminate, a crash too.
}

// framing_model: where the reader should be in the stream, by the wire format alone.
struct framing_model {
    enum next_t { frame, end, oversize };

    std::string_view stream;
    std::size_t max_size;
    std::size_t pos = 0;
    bool poisoned = false;

    // next says what the next untimed call must meet; for a frame, payload is set.
    next_t next(std::string_view& payload) const
    {
        if (poisoned)
            return oversize;
        const std::size_t left = stream.size() - pos;
        if (left < 4)
            return end;
        const auto* p = reinterpret_cast<const unsigned char*>(stream.data() + pos);
        const std::uint32_t len = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
                                  (std::uint32_t{p[2]} << 8) | p[3];
        if (len > max_size)
            return oversize;
        if (left - 4 < len)
            return end;
        payload = stream.substr(pos + 4, len);
        return frame;
    }
};

// describe_open_fds lists the open fds and what they are, for the report of a leak.
std::string describe_open_fds()
{
    std::string out;
    DIR* d = ::opendir("/proc/self/fd");
    if (!d)
        return out;
    while (const dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.')
            continue;
        char target[256] = {};
        const std::string link = std::string("/proc/self/fd/") + e->d_name;
        if (::readlink(link.c_str(), target, sizeof target - 1) < 0)
            continue;
        out += std::string(" ") + e->d_name + "->" + target;
    }
    ::closedir(d);
    return out;
}

std::size_t count_open_fds()
{
    std::size_t n = 0;
    DIR* d = ::opendir("/proc/self/fd");
    if (!d)
        return 0;
    while (const dirent* e = ::readdir(d))
        if (e->d_name[0] != '.')
            ++n;
    ::closedir(d);
    return n - 1; // the directory stream's own fd
}

int bytes_in_pipe(int fd)
{
    int n = 0;
    return ::ioctl(fd, FIONREAD, &n) == 0 ? n : 0;
}

// write_stream is the writer fiber: it puts stream into the pipe chunk by chunk, yielding
// between chunks, and closes the write end. It gives up when stop is set (the reader is done).
void write_stream(gipc::writer& w, std::string_view stream, std::size_t chunk, bool wait_drained,
                  const bool& stop)
{
    const int fd = w.native_handle();
    std::size_t off = 0;
    while (off < stream.size() && !stop) {
        const std::size_t n = chunk ? std::min(chunk, stream.size() - off) : stream.size() - off;
        const ssize_t k = ::write(fd, stream.data() + off, n);
        if (k > 0) {
            off += static_cast<std::size_t>(k);
            boost::this_fiber::yield();
            while (wait_drained && !stop && bytes_in_pipe(fd) > 0)
                boost::this_fiber::yield();
        } else if (k < 0 && errno == EAGAIN) {
            (void)gipc::wait_writable(fd, 10ms); // a short wait: stop is checked again
        } else if (!(k < 0 && errno == EINTR)) {
            break; // EPIPE: the reader closed early
        }
    }
    w.close();
}

// trace, set by the environment variable FUZZ_READER_TRACE, prints every call and its outcome
// (for replaying an input: FUZZ_READER_TRACE=1 fuzz_reader <file>).
const bool trace = std::getenv("FUZZ_READER_TRACE") != nullptr;

void run(const std::uint8_t* data, std::size_t size)
{
    if (size < 2)
        return;
    const unsigned options = data[0];
    const std::size_t op_count = std::min<std::size_t>(data[1], size - 2);
    const std::uint8_t* ops = data + 2;
    std::string_view stream(reinterpret_cast<const char*>(data + 2 + op_count), size - 2 - op_count);

    gipc::pipe_options popts;
    popts.max_message_size = (options & 1) ? 64 * 1024 : 4096;
    std::size_t chunk = chunk_sizes[(options >> 1) & 7];
    bool wait_drained = (options & 0x10) != 0;
    std::string padded;
    if ((options & 0xe0) == 0xe0) {
        chunk = 0;
        wait_drained = false;
        padded = stream;
        const auto len = static_cast<std::uint32_t>(popts.max_message_size);
        const char header[4] = {char(len >> 24), char(len >> 16), char(len >> 8), char(len)};
        while (padded.size() <= stream.size() + 64 * 1024) {
            padded.append(header, 4);
            padded.append(len, 'f');
        }
        padded += stream;
        stream = padded;
    }

    auto [r, w] = gipc::pipe(popts);
    bool stop = false;
    boost::fibers::fiber writer_fiber(write_stream, std::ref(w), stream, chunk, wait_drained, std::cref(stop));

    framing_model model{stream, popts.max_message_size};
    // Untimed calls consume a frame or end the loop, so stream.size() / 4 + 2 of them
    // suffice; timed ones may time out as often as they like, hence the generous bound.
    const std::size_t max_calls = stream.size() + 64;
    int poisoned_in_a_row = 0;
    bool done = false;
    for (std::size_t i = 0; i < max_calls && !done; ++i) {
        const unsigned op = op_count ? ops[i % op_count] % 8 : 3;
        std::string_view payload;
        const framing_model::next_t next = model.next(payload);
        const outcome got = call(r, op);
        if (trace)
            std::fprintf(stderr, "fuzz_reader: call %zu %s at offset %zu: %s%s%s\n", i, op_names[op], model.pos,
                         kind_name(got.kind), got.what.empty() ? "" : ": ", got.what.c_str());
        auto mismatch = [&](const char* expected) {
            fail("the reader disagrees with the framing model",
                 std::string("call ") + std::to_string(i) + " " + op_names[op] + " at stream offset " +
                     std::to_string(model.pos) + " of " + std::to_string(stream.size()) + ": expected " +
                     expected + ", got " + kind_name(got.kind) + (got.what.empty() ? "" : " (" + got.what + ")"));
        };
        if (got.kind == outcome::timeout_error) {
            if (!is_timed(op) || model.poisoned)
                mismatch("no timeout");
            boost::this_fiber::yield(); // let the writer go on
            continue;
        }
        switch (next) {
        case framing_model::oversize:
            if (got.kind != outcome::decode_error)
                mismatch("decode_error (header over max_message_size)");
            model.poisoned = true;
            done = ++poisoned_in_a_row == 2; // every later call would throw the same
            continue;
        case framing_model::end:
            if (got.kind != outcome::eof_error)
                mismatch("eof_error");
            done = true;
            continue;
        case framing_model::frame:
            if (got.kind == outcome::eof_error)
                mismatch("a frame");
            if (is_raw(op) && (got.kind != outcome::value || got.bytes != payload))
                mismatch("the frame's payload, unchanged");
            model.pos += 4 + payload.size();
            continue;
        }
    }

    stop = true;
    r.close();
    writer_fiber.join();
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***)
{
    // The thread's reactor fds exist from here on, not created by the first input.
    gipc::use_reactor();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    // Counted around each input, not once: libFuzzer itself opens fds between inputs (the
    // pipes to llvm-symbolizer when it reports a new function).
    const std::size_t fds_before = count_open_fds();
    try {
        run(data, size);
    } catch (const std::exception& e) {
        // From creating or closing the pipe, or the writer fiber: none is expected.
        fail(("the harness met " + type_name(typeid(e))).c_str(), e.what());
    }
    if (const std::size_t open = gipc::detail::open_handle_count(); open != 0)
        fail("handles left open", std::to_string(open));
    if (const std::size_t fds = count_open_fds(); fds > fds_before)
        fail("fd leak", std::to_string(fds) + " open fds after the input, " + std::to_string(fds_before) +
                            " before:" + describe_open_fds());
    return 0;
}
