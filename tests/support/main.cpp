// SPDX-License-Identifier: MIT
// The main of every test binary. `<binary> --gipc-child <name> [args...]` runs a registered
// child helper instead of the tests; anything else goes to doctest.
#define DOCTEST_CONFIG_IMPLEMENT
#include "test_support.hpp"

#include <gipc/process.hpp>
#include <gipc/runtime.hpp>

#include <cstdlib>
#include <string_view>

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
    // Install the scheduler first so that its epoll and eventfd belong to every test's fd
    // baseline, and start gipc's fork thread (made by the first start_process, it lives as
    // long as the process) so that it belongs to every test's thread baseline. Where children
    // cannot be watched (valgrind lacks pidfd_open) the start fails after the thread exists.
    gipc::use_reactor();
    try {
        gipc::start_process([] {}).join();
    } catch (const std::system_error&) {
    }
    doctest::Context context(argc, argv);
    return context.run();
}
