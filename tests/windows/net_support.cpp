// SPDX-License-Identifier: MIT
// What tests/test_net.cpp needs on Windows besides pipe_support.cpp's fixture: a warm-up, before
// the tests, of what the process opens once on its first sockets and keeps (Winsock, a
// connection's worth of the provider's own handles, over IPv4 and IPv6, and a name lookup's),
// so that it belongs to every test's baseline of handles. No doctest assertions here: the
// warm-up runs before doctest does (a failure shows in the tests).
#include "win_support.hpp"

#include <gipc/net.hpp>

#include <chrono>
#include <cstdio>
#include <exception>

namespace {

const bool sockets_warmed_up = gipc_win_test::register_warm_up([] {
    using namespace std::chrono_literals;
    namespace net = gipc::net;
    try {
        for (const char* host : {"127.0.0.1", "::1"}) {
            auto server = net::listener::tcp(host, 0);
            auto client = net::stream::connect(host, server.port(), 5s);
            auto conn = server.accept(5s);
            client.write_all("x\n");
            conn.read_line(5s);
        }
        auto server = net::listener::tcp("127.0.0.1", 0);
        auto client = net::stream::connect("localhost", server.port(), 5s);
        auto conn = server.accept(5s);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "warm-up: sockets: %s\n", e.what());
    }
});

} // namespace
