// SPDX-License-Identifier: MIT
// serverclient: the server/client example of gipc's documentation.
//
// 1. A TCP echo server runs in fibers of the parent: for each client it reads one line and
//    writes it back.
// 2. A child started with gipc::start_process runs N clients concurrently, in N fibers.
// 3. Each client sends one line, checks the echo, and disconnects.
// 4. The child prints how long serving all clients took and exits.
// 5. The parent joins the child, then stops the server.
//
//   usage: serverclient [--spawn] [N_CLIENTS]     (default 1000; on Windows the child is always spawned)

#include <gipc/gipc.hpp>

#include <boost/fiber/all.hpp>

#ifndef _WIN32
#include <sys/resource.h>
#endif

#include <chrono>
#include <cstdio>
#include <string_view>
#include <cstdlib>
#include <string>
#include <vector>

using namespace std::chrono_literals;

const std::string message = "HELLO\n";

// Thousands of short-lived fibers: a pooled stack allocator reuses their stacks instead of
// mapping and unmapping one per fiber (Boost.Fiber's default).
boost::fibers::pooled_fixedsize_stack& stacks()
{
    static boost::fibers::pooled_fixedsize_stack pool(64 * 1024);
    return pool;
}

// serve handles one connection: echo one line.
void serve(gipc::net::stream conn)
{
    try {
        conn.write_all(conn.read_line());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "server: %s\n", e.what());
    }
}

// client connects, sends one line and checks the echo.
bool client(std::uint16_t port)
{
    auto conn = gipc::net::stream::connect("127.0.0.1", port);
    conn.write_all(message);
    return conn.read_line() == message;
}

// clientprocess runs in the child.
int clientprocess(std::uint16_t port, int n_clients)
{
    const auto t1 = std::chrono::steady_clock::now();
    int ok = 0;
    std::vector<boost::fibers::fiber> clients;
    clients.reserve(std::size_t(n_clients));
    for (int i = 0; i < n_clients; ++i)
        clients.emplace_back(std::allocator_arg, stacks(), [&] {
            try {
                ok += client(port) ? 1 : 0;
            } catch (const std::exception& e) {
                std::fprintf(stderr, "client: %s\n", e.what());
            }
        });
    for (auto& c : clients)
        c.join();
    const double duration = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    std::printf("%d clients served within %.2f s.\n", n_clients, duration);
    return ok == n_clients ? 0 : 1;
}

int main(int argc, char** argv)
{
    gipc::spawn_main(argc, argv); // a child started with --spawn runs its target here
    // --spawn: start the child with spawn_process (a new execution of this program) instead
    // of start_process (fork).
    const bool spawn = argc > 1 && std::string_view(argv[1]) == "--spawn";
    if (spawn) {
        --argc;
        ++argv;
    }
    const int n_clients = argc > 1 ? std::atoi(argv[1]) : 1000;

#ifndef _WIN32
    // Up to N connections are open at once on each side: allow enough descriptors.
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
#endif

    auto server = gipc::net::listener::tcp("127.0.0.1", 0);
    const std::uint16_t port = server.port();
    bool stop = false;
    boost::fibers::fiber server_fiber([&] {
        std::vector<boost::fibers::fiber> handlers;
        while (!stop) {
            try {
                handlers.emplace_back(std::allocator_arg, stacks(), serve, server.accept(50ms));
            } catch (const gipc::timeout_error&) {
            }
        }
        for (auto& h : handlers)
            h.join();
    });

    // The listener is not an argument, so the child does not inherit it.
#ifdef _WIN32
    (void)spawn; // Windows has no fork: a child is always spawned there
    gipc::process c = gipc::spawn_process(clientprocess, port, n_clients);
#else
    gipc::process c = spawn ? gipc::spawn_process(clientprocess, port, n_clients)
                            : gipc::start_process(clientprocess, port, n_clients);
#endif
    c.join();
    stop = true; // the server fiber ends at its next accept timeout
    server_fiber.join();
    return *c.exitcode();
}
