// SPDX-License-Identifier: MIT
// The main of every test binary that runs child helpers, on both platforms.
// `<binary> --gipc-child <name> [args...]` runs a registered child helper instead of the tests;
// anything else goes to doctest.
#ifndef _WIN32
#define DOCTEST_CONFIG_IMPLEMENT // on Windows, in win_support.cpp (tests/windows/)
#endif
#include "test_support.hpp"

#ifdef _WIN32
#include "win_support.hpp"
#endif

#include <gipc/process.hpp>
#include <gipc/runtime.hpp>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace gipc_test {

namespace {

std::map<std::string, child_main>& children()
{
    static std::map<std::string, child_main> m;
    return m;
}

} // namespace

bool register_child(const char* name, child_main fn)
{
    children()[name] = std::move(fn);
    return true;
}

int run_child(const std::string& name, std::vector<std::string> args)
{
    auto it = children().find(name);
    if (it == children().end()) {
        std::fprintf(stderr, "no child helper named %s\n", name.c_str());
        return 127;
    }
    return it->second(std::move(args));
}

} // namespace gipc_test

int main(int argc, char** argv)
{
    // A child started by spawn_process runs its target here. (The spawn suite's check of a
    // forgotten call sets GIPC_TEST_SKIP_SPAWN_MAIN: "return" ends main at once, anything else
    // goes on to the first gipc call below.)
    if (const char* skip = std::getenv("GIPC_TEST_SKIP_SPAWN_MAIN")) {
        if (std::string_view(skip) == "return")
            return 0;
    } else {
        gipc::spawn_main(argc, argv);
    }
    if (argc >= 3 && std::string_view(argv[1]) == "--gipc-child")
        return gipc_test::run_child(argv[2], std::vector<std::string>(argv + 3, argv + argc));
#ifdef _WIN32
    // What the process opens once and keeps (the scheduler, the relay, the first sockets...)
    // belongs to every test's handle baseline.
    gipc_win_test::warm_up();
#else
    // Install the scheduler first so that its epoll and eventfd belong to every test's fd
    // baseline, and start gipc's fork thread (made by the first start_process, it lives as
    // long as the process) so that it belongs to every test's thread baseline. Where children
    // cannot be watched (valgrind lacks pidfd_open) the start fails after the thread exists.
    gipc::use_reactor();
    try {
        gipc::start_process([] {}).join();
    } catch (const std::system_error&) {
    }
#endif
    doctest::Context context(argc, argv);
    return context.run();
}
