// SPDX-License-Identifier: MIT
// Overlapped named pipes and their completions on a port.
#include "win_support.hpp"

#include "windows/iocp.hpp"
#include "windows/named_pipe.hpp"

#include <winternl.h>

#include <cstring>
#include <string>
#include <vector>

namespace win = gipc::detail::win;

namespace {

// A pipe whose ends are both associated with a port: the read end with key 1, the write end
// with key 2.
struct port_pipe {
    win::completion_port port;
    win::unique_handle r, w;
    port_pipe()
    {
        REQUIRE(port.create() == 0);
        REQUIRE(win::make_pipe(r, w) == 0);
        REQUIRE(port.associate(r.get(), 1) == 0);
        REQUIRE(port.associate(w.get(), 2) == 0);
    }
    // nothing_queued: no packet is on the port.
    bool nothing_queued()
    {
        win::completion c[1];
        std::size_t n = 0;
        return port.wait(c, 1, 0, n) == WAIT_TIMEOUT;
    }
    // next waits up to 5 s for one packet.
    win::completion next()
    {
        win::completion c[1];
        std::size_t n = 0;
        REQUIRE(port.wait(c, 1, 5000, n) == 0);
        REQUIRE(n == 1);
        return c[0];
    }
};

// write_now writes data through an overlapped handle associated with a port, expecting the
// write to complete at once (the pipe has room).
void write_now(HANDLE h, const std::string& data)
{
    OVERLAPPED ov{};
    DWORD n = 0;
    REQUIRE(::WriteFile(h, data.data(), static_cast<DWORD>(data.size()), &n, &ov));
    CHECK(n == data.size());
}

} // namespace

WIN_TEST("a read of an empty pipe pends and completes through the port when data comes")
{
    port_pipe p;
    char buf[64];
    OVERLAPPED ov{};
    REQUIRE_FALSE(::ReadFile(p.r.get(), buf, sizeof buf, nullptr, &ov));
    REQUIRE(::GetLastError() == ERROR_IO_PENDING);
    CHECK(p.nothing_queued());
    write_now(p.w.get(), "abc");
    win::completion c = p.next();
    CHECK(c.key == 1);
    CHECK(c.overlapped == &ov);
    CHECK(c.bytes == 3);
    CHECK(win::io_error(ov) == 0);
    CHECK(std::string(buf, 3) == "abc");
    // The write succeeded at once: FILE_SKIP_COMPLETION_PORT_ON_SUCCESS queued no packet for it.
    CHECK(p.nothing_queued());
}

WIN_TEST("a read of a pipe holding data succeeds at once and queues no packet")
{
    port_pipe p;
    write_now(p.w.get(), "hello");
    char buf[64];
    OVERLAPPED ov{};
    DWORD n = 0;
    REQUIRE(::ReadFile(p.r.get(), buf, sizeof buf, &n, &ov));
    CHECK(n == 5);
    CHECK(std::string(buf, n) == "hello");
    CHECK(p.nothing_queued());
}

WIN_TEST("the end of a pipe is ERROR_BROKEN_PIPE, for a pending read and for a new one")
{
    port_pipe p;
    char buf[64];
    OVERLAPPED ov{};
    REQUIRE_FALSE(::ReadFile(p.r.get(), buf, sizeof buf, nullptr, &ov));
    REQUIRE(::GetLastError() == ERROR_IO_PENDING);
    p.w.reset();
    win::completion c = p.next();
    CHECK(c.overlapped == &ov);
    CHECK(c.bytes == 0);
    CHECK(win::io_error(ov) == ERROR_BROKEN_PIPE);
    OVERLAPPED again{};
    DWORD n = 0;
    CHECK_FALSE(::ReadFile(p.r.get(), buf, sizeof buf, &n, &again));
    CHECK(::GetLastError() == ERROR_BROKEN_PIPE);
    CHECK(p.nothing_queued());
}

WIN_TEST("data written before the write end closed is read before the end")
{
    port_pipe p;
    write_now(p.w.get(), "last words");
    p.w.reset();
    char buf[64];
    OVERLAPPED ov{};
    DWORD n = 0;
    REQUIRE(::ReadFile(p.r.get(), buf, sizeof buf, &n, &ov));
    CHECK(std::string(buf, n) == "last words");
    CHECK_FALSE(::ReadFile(p.r.get(), buf, sizeof buf, &n, &ov));
    CHECK(::GetLastError() == ERROR_BROKEN_PIPE);
}

WIN_TEST("a write to a pipe whose read end is closed fails")
{
    port_pipe p;
    p.r.reset();
    OVERLAPPED ov{};
    DWORD n = 0;
    CHECK_FALSE(::WriteFile(p.w.get(), "x", 1, &n, &ov));
    DWORD e = ::GetLastError();
    CHECK_MESSAGE((e == ERROR_NO_DATA || e == ERROR_BROKEN_PIPE), "error " << e);
    CHECK(p.nothing_queued());
}

WIN_TEST("a pending read cancelled with CancelIoEx completes with ERROR_OPERATION_ABORTED")
{
    port_pipe p;
    char buf[16];
    OVERLAPPED ov{};
    REQUIRE_FALSE(::ReadFile(p.r.get(), buf, sizeof buf, nullptr, &ov));
    REQUIRE(::GetLastError() == ERROR_IO_PENDING);
    REQUIRE(::CancelIoEx(p.r.get(), &ov));
    win::completion c = p.next();
    CHECK(c.overlapped == &ov);
    CHECK(win::io_error(ov) == ERROR_OPERATION_ABORTED);
    // The pipe still works after the cancellation, and nothing was lost.
    write_now(p.w.get(), "after");
    DWORD n = 0;
    OVERLAPPED ov2{};
    REQUIRE(::ReadFile(p.r.get(), buf, sizeof buf, &n, &ov2));
    CHECK(std::string(buf, n) == "after");
}

WIN_TEST("1 MiB written through the port arrives whole and in order at a synchronous reader thread")
{
    win::completion_port port;
    REQUIRE(port.create() == 0);
    win::unique_handle r, w;
    win::pipe_options options;
    options.read_overlapped = false;
    REQUIRE(win::make_pipe(r, w, options) == 0);
    REQUIRE(port.associate(w.get(), 2) == 0);

    std::vector<unsigned char> data(1 << 20);
    for (std::size_t i = 0; i < data.size(); ++i)
        data[i] = static_cast<unsigned char>((i * 7 + i / 251) % 256);
    std::vector<unsigned char> got;
    DWORD reader_error = 0;
    gipc_win_test::native_thread reader([&] {
        std::vector<unsigned char> buf(70000);
        for (;;) {
            DWORD n = 0;
            if (!::ReadFile(r.get(), buf.data(), static_cast<DWORD>(buf.size()), &n, nullptr)) {
                reader_error = ::GetLastError();
                return;
            }
            got.insert(got.end(), buf.begin(), buf.begin() + n);
        }
    });

    OVERLAPPED ov{};
    DWORD written = 0;
    if (::WriteFile(w.get(), data.data(), static_cast<DWORD>(data.size()), &written, &ov)) {
        CHECK(written == data.size());
    } else {
        REQUIRE(::GetLastError() == ERROR_IO_PENDING);
        win::completion c[1];
        std::size_t n = 0;
        REQUIRE(port.wait(c, 1, 20000, n) == 0);
        REQUIRE(n == 1);
        CHECK(c[0].overlapped == &ov);
        CHECK(win::io_error(ov) == 0);
        CHECK(c[0].bytes == data.size());
    }
    w.reset();
    reader.join();
    CHECK(reader_error == ERROR_BROKEN_PIPE);
    REQUIRE(got.size() == data.size());
    CHECK(got == data);
}

WIN_TEST("a duplex pipe carries bytes both ways")
{
    win::completion_port port;
    REQUIRE(port.create() == 0);
    win::unique_handle a, b;
    REQUIRE(win::make_duplex_pipe(a, b) == 0);
    REQUIRE(port.associate(a.get(), 1) == 0);
    REQUIRE(port.associate(b.get(), 2) == 0);
    write_now(a.get(), "ping");
    write_now(b.get(), "pong");
    char buf[16];
    DWORD n = 0;
    OVERLAPPED ov{};
    REQUIRE(::ReadFile(b.get(), buf, sizeof buf, &n, &ov));
    CHECK(std::string(buf, n) == "ping");
    REQUIRE(::ReadFile(a.get(), buf, sizeof buf, &n, &ov));
    CHECK(std::string(buf, n) == "pong");
    b.reset();
    CHECK_FALSE(::ReadFile(a.get(), buf, sizeof buf, &n, &ov));
    CHECK(::GetLastError() == ERROR_BROKEN_PIPE);
}

WIN_TEST("pipe ends are not inheritable, and each pipe is a pipe of its own")
{
    win::unique_handle r1, w1, r2, w2;
    REQUIRE(win::make_pipe(r1, w1) == 0);
    REQUIRE(win::make_pipe(r2, w2) == 0);
    for (HANDLE h : {r1.get(), w1.get(), r2.get(), w2.get()}) {
        CHECK(win::is_inheritable(h) == 0);
        CHECK(::GetFileType(h) == FILE_TYPE_PIPE);
    }
    DWORD n = 0;
    OVERLAPPED ov{};
    REQUIRE(::WriteFile(w2.get(), "2", 1, &n, &ov));
    DWORD avail1 = 99, avail2 = 99;
    REQUIRE(::PeekNamedPipe(r1.get(), nullptr, 0, nullptr, &avail1, nullptr));
    REQUIRE(::PeekNamedPipe(r2.get(), nullptr, 0, nullptr, &avail2, nullptr));
    CHECK(avail1 == 0);
    CHECK(avail2 == 1);
}

namespace {

// pipe_name is the name of a pipe end as the object manager knows it (ObjectNameInformation),
// e.g. \Device\NamedPipe\gipc-<pid>-<counter>; empty when it cannot be read.
std::wstring pipe_name(HANDLE h)
{
    alignas(8) unsigned char buf[2048];
    ULONG len = 0;
    if (::NtQueryObject(h, static_cast<OBJECT_INFORMATION_CLASS>(1), buf, sizeof buf, &len) != 0)
        return {};
    auto* name = reinterpret_cast<const UNICODE_STRING*>(buf);
    return std::wstring(name->Buffer, name->Length / sizeof(wchar_t));
}

} // namespace

WIN_TEST("a pipe's name is gipc-<pid>-<counter>, and nobody else can open or create it")
{
    win::unique_handle r, w;
    REQUIRE(win::make_pipe(r, w) == 0);
    std::wstring full = pipe_name(r.get());
    auto slash = full.find_last_of(L'\\');
    REQUIRE(slash != std::wstring::npos);
    std::wstring leaf = full.substr(slash + 1);
    std::wstring prefix = L"gipc-" + std::to_wstring(::GetCurrentProcessId()) + L"-";
    CAPTURE(std::string(leaf.begin(), leaf.end()));
    REQUIRE(leaf.compare(0, prefix.size(), prefix) == 0);
    CHECK(leaf.size() > prefix.size());
    CHECK(leaf.find_first_not_of(L"0123456789", prefix.size()) == std::wstring::npos);

    std::wstring path = L"\\\\.\\pipe\\" + leaf;
    // One instance, already connected: another client is turned away...
    HANDLE other = ::CreateFileW(path.c_str(), GENERIC_WRITE, 0, nullptr, OPEN_EXISTING, 0, nullptr);
    DWORD e = ::GetLastError();
    if (other != INVALID_HANDLE_VALUE)
        ::CloseHandle(other);
    CHECK(other == INVALID_HANDLE_VALUE);
    CHECK_MESSAGE(e == ERROR_PIPE_BUSY, "error " << e);
    // ...and no second instance can be made under the name.
    HANDLE second = ::CreateNamedPipeW(path.c_str(), PIPE_ACCESS_INBOUND, PIPE_TYPE_BYTE, 1, 4096,
                                       4096, 0, nullptr);
    e = ::GetLastError();
    if (second != INVALID_HANDLE_VALUE)
        ::CloseHandle(second);
    CHECK(second == INVALID_HANDLE_VALUE);
    CHECK_MESSAGE((e == ERROR_ACCESS_DENIED || e == ERROR_PIPE_BUSY), "error " << e);

    // Each pipe gets a name of its own.
    win::unique_handle r2, w2;
    REQUIRE(win::make_pipe(r2, w2) == 0);
    CHECK(pipe_name(r2.get()) != full);
    CHECK_FALSE(pipe_name(r2.get()).empty());
}
