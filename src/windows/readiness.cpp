// SPDX-License-Identifier: MIT
// wait_user_fd (io_ops.hpp) for the I/O completion port backend: gipc::wait_readable and
// wait_writable on a Winsock socket of the program's, given as its SOCKET value cast to int.
//
// A completion port reports completions, not readiness, and associating the program's socket
// with a port of gipc's would be for the socket's whole life (its own overlapped operations
// would complete there). WSAEventSelect would make the socket non-blocking for good. So the
// readiness comes from WSAPoll, run by one process-wide helper thread (the poller) over every
// socket a fiber waits for, plus a loopback UDP socket of its own that a new wait writes a byte
// to (WSAPoll waits on sockets only). When a socket is ready the poller posts the wait's packet
// to the port of the waiting fiber's reactor (its thread's, or the relay's where the program's
// own algorithm runs), and the reactor's dispatch wakes the fiber: the poller never touches a
// fiber. A wait that reaches its deadline takes itself out of the poller's list; if the poller
// claimed it first, its packet is on the way and the fiber waits for it, so the wait's memory
// (on the fiber's stack) is never used after it returns. A wait is checked with a zero-timeout
// WSAPoll first, so a ready socket costs no thread hand-off.
//
// The poller starts on first use and stays until the process ends, as the relay does on
// Windows (platform.hpp: a thread that ran fibers may not end there; this one runs none, but
// its sockets and its start are per process alike).

#include "windows/fiber_completion.hpp"
#include "windows/iocp_reactor.hpp"
#include "windows/socket.hpp"
#include "windows/win_errors.hpp"

#include "io_ops.hpp"
#include "platform.hpp"
#include "relay.hpp"
#include "scheduler.hpp"

#include <cerrno>
#include <cstdint>
#include <mutex>
#include <new>
#include <optional>
#include <vector>

namespace gipc::detail {

namespace {

// ready_wait: one fiber's wait for a socket's readiness, on its stack. Its packet's byte count
// is what WSAPoll reported (bytes).
struct ready_wait final : fiber_completion {
    SOCKET socket = INVALID_SOCKET;
    SHORT events = 0;
    HANDLE port = nullptr;
    std::uint64_t number = 0; // given by the poller at registration (never reused)
};

// poller: the helper thread and its list of waits.
class poller {
public:
    // get is the process's poller, started on first use; nullptr with err set to -errno when
    // its socket or thread cannot be made (a later call tries again).
    static poller* get(int& err) noexcept
    {
        static plain_mutex start_mutex;
        static poller* the_poller = nullptr;
        std::lock_guard lk(start_mutex);
        if (!the_poller) {
            auto* p = new (std::nothrow) poller;
            if (!p) {
                err = -ENOMEM;
                return nullptr;
            }
            if (err = p->start(); err != 0) {
                delete p;
                return nullptr;
            }
            the_poller = p;
        }
        return the_poller;
    }

    // add has the poller watch w (w->socket, w->events), and post w's packet to w->port once
    // it is ready. Returns 0 or -errno.
    int add(ready_wait& w) noexcept
    {
        {
            std::lock_guard lk(m_);
            try {
                waits_.push_back(&w);
            } catch (const std::bad_alloc&) {
                return -ENOMEM;
            }
            w.number = ++numbered_;
        }
        wake();
        return 0;
    }

    // remove takes w out of the list: true when it was still there (no packet will come),
    // false when the poller claimed it (its packet is posted or about to be).
    bool remove(ready_wait& w) noexcept
    {
        std::lock_guard lk(m_);
        for (auto it = waits_.begin(); it != waits_.end(); ++it) {
            if (*it == &w) {
                waits_.erase(it);
                return true;
            }
        }
        return false;
    }

private:
    poller() noexcept = default;

    int start() noexcept
    {
        if (const int e = win::make_socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP, wake_); e != 0)
            return win::socket_errno(static_cast<DWORD>(e));
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int len = sizeof a;
        u_long non_blocking = 1;
        if (::bind(wake_.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0
            || ::getsockname(wake_.get(), reinterpret_cast<sockaddr*>(&wake_address_), &len) != 0
            || ::ioctlsocket(wake_.get(), FIONBIO, &non_blocking) != 0)
            return win::socket_errno(static_cast<DWORD>(::WSAGetLastError()));
        // One of gipc's own threads (platform.hpp); it serves the process's waits until it exits.
        return platform::start_quiet_thread(
            [](void* self) -> void* {
                static_cast<poller*>(self)->run();
                return nullptr;
            },
            this);
    }

    // wake makes the poller's WSAPoll return, so that it polls the new list.
    void wake() noexcept
    {
        const char byte = 0;
        ::sendto(wake_.get(), &byte, 1, 0, reinterpret_cast<const sockaddr*>(&wake_address_),
                 sizeof wake_address_);
    }

    void run() noexcept
    {
        struct polled {
            ready_wait* wait;
            std::uint64_t number;
        };
        std::vector<WSAPOLLFD> fds;
        std::vector<polled> whose;
        for (;;) {
            fds.clear();
            whose.clear();
            try {
                fds.push_back({wake_.get(), POLLRDNORM, 0});
                std::lock_guard lk(m_);
                for (ready_wait* w : waits_) {
                    fds.push_back({w->socket, w->events, 0});
                    whose.push_back({w, w->number});
                }
            } catch (const std::bad_alloc&) {
                ::Sleep(1); // the waits stay listed: try again
                continue;
            }
            // The waits polled here may end meanwhile (a deadline): their pointers are only
            // compared with the list below, with the number that tells a new wait at the same
            // address from the one polled.
            if (::WSAPoll(fds.data(), static_cast<ULONG>(fds.size()), -1) == SOCKET_ERROR) {
                // One socket may have been closed by the program during its wait: find which
                // (they report POLLNVAL), so that the others are not polled in a busy loop.
                for (auto& f : fds) {
                    f.revents = 0;
                    if (::WSAPoll(&f, 1, 0) == SOCKET_ERROR)
                        f.revents = POLLNVAL;
                }
            }
            if (fds[0].revents != 0) {
                char drain[64];
                while (::recv(wake_.get(), drain, sizeof drain, 0) > 0) {
                }
            }
            std::lock_guard lk(m_);
            for (std::size_t i = 0; i < whose.size(); ++i) {
                const SHORT revents = fds[i + 1].revents;
                if (revents == 0)
                    continue;
                for (auto it = waits_.begin(); it != waits_.end(); ++it) {
                    if (*it == whose[i].wait && (*it)->number == whose[i].number) {
                        // Claimed once its packet is posted: the wait then waits for it, so
                        // its memory is there until it comes. A packet that cannot be posted
                        // leaves the wait listed, polled again.
                        if (::PostQueuedCompletionStatus(whose[i].wait->port,
                                                         static_cast<DWORD>(static_cast<USHORT>(revents)),
                                                         iocp_reactor::posted_key, &whose[i].wait->ov))
                            waits_.erase(it);
                        break;
                    }
                }
            }
        }
    }

    win::unique_socket wake_;
    sockaddr_in wake_address_{};
    plain_mutex m_;
    std::vector<ready_wait*> waits_; // guarded by m_
    std::uint64_t numbered_ = 0;     // guarded by m_
};

// outcome is wait_user_fd's answer for what WSAPoll reported.
int outcome(DWORD revents) noexcept
{
    if (revents & POLLNVAL)
        return -EBADF;
    return 1; // ready, hung up or failed: the program's next call says which
}

} // namespace

namespace io {

int wait_user_fd(int fd, io_dir dir, steady_time deadline, bool may_block)
{
    if (fd < 0)
        return -EBADF;
    if (const int e = win::start_winsock(); e != 0)
        return win::socket_errno(static_cast<DWORD>(e));
    const SOCKET s = static_cast<SOCKET>(static_cast<unsigned>(fd));
    const SHORT events = dir == io_dir::read ? POLLRDNORM : POLLWRNORM;
    {
        WSAPOLLFD now{s, events, 0};
        const int n = ::WSAPoll(&now, 1, 0);
        if (n == SOCKET_ERROR)
            return win::socket_errno(static_cast<DWORD>(::WSAGetLastError()));
        if (n > 0)
            return outcome(static_cast<USHORT>(now.revents));
    }
    if (!may_block || steady_time::clock::now() >= deadline)
        return 0;

    // Where the packet goes: this thread's reactor, or the relay's (as every operation of the
    // backend, iocp_io.cpp).
    iocp_reactor* to = nullptr;
    std::optional<relay_lease> relay;
    if (reactor_algorithm* algo = thread_algorithm()) {
        algo->run_deferred();
        to = static_cast<iocp_reactor*>(&algo->reactor());
    } else {
        relay.emplace();
        to = static_cast<iocp_reactor*>(&relay->get());
    }
    int err = 0;
    poller* p = poller::get(err);
    if (!p)
        return err;
    ready_wait w;
    w.socket = s;
    w.events = events;
    w.port = to->port().get();
    if (const int r = p->add(w); r != 0)
        return r;
    if (!w.wait_done(deadline)) {
        if (p->remove(w))
            return 0;
        w.wait_done(steady_time::max()); // claimed: the packet is on its way
    }
    std::lock_guard lk(w.m);
    return outcome(w.bytes);
}

} // namespace io

} // namespace gipc::detail
