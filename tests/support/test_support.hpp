// SPDX-License-Identifier: MIT
#pragma once
// Shared test support: the leak-checking fixture every test case runs under, child-helper
// registration (the test binary is its own child), and small utilities.

#include <doctest/doctest.h>

#include <boost/fiber/operations.hpp>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <sys/types.h>
#include <vector>

namespace gipc_test {

// open_fds lists the descriptors open in this process (without the one used to list them).
std::set<int> open_fds();

// describe_fd is what /proc/self/fd/N links to.
std::string describe_fd(int fd);

// child_pids lists the live or zombie children of this process.
std::vector<pid_t> child_pids();

// zombie_children lists the children of this process in state Z.
std::vector<pid_t> zombie_children();

// thread_count is the number of threads of this process.
std::size_t thread_count();

// leak_check: constructed before and destroyed after each test case. It fails the test when
// the case leaves an fd open, a gipc handle open, a child process or a thread behind.
// Children and threads get a grace period to be reaped and to end, since exit watching is
// asynchronous. (The test main starts gipc's fork thread, which lives as long as the process,
// before any test: it belongs to every test's baseline.) On Windows (the pipe tests of
// tests/windows/, built with tests/windows/pipe_support.cpp) it fails the test when the case
// leaves a gipc handle or a handle of the process open.
struct os_leak_check;
struct leak_check {
    leak_check();
    ~leak_check();
    leak_check(const leak_check&) = delete;
    leak_check& operator=(const leak_check&) = delete;

private:
    std::set<int> fds_;
    std::size_t handles_;
    std::size_t threads_;
    std::unique_ptr<os_leak_check> os_; // Windows: the process's handles
};

// fork_with_busy_threads_deadlocks is true in AddressSanitizer builds. The ASan runtime of
// GCC 12 and Clang 14 does not lock its allocator around fork(): a child forked while another
// thread is inside malloc inherits the allocator's lock held by a thread that does not exist in
// the child, and its first malloc that needs the shared allocator hangs forever. Tests that fork
// while other threads allocate are skipped in those builds (and only there); README.md,
// "Reliability", lists them.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool fork_with_busy_threads_deadlocks = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool fork_with_busy_threads_deadlocks = true;
#else
inline constexpr bool fork_with_busy_threads_deadlocks = false;
#endif
#else
inline constexpr bool fork_with_busy_threads_deadlocks = false;
#endif

// raise_fd_limit raises RLIMIT_NOFILE's soft limit to its hard limit.
void raise_fd_limit();

// refuse_ipv6_sockets installs a seccomp filter on the calling process (for a child of a
// test: it cannot be undone) under which socket(AF_INET6, ...) fails with EAFNOSUPPORT, as
// on a kernel without IPv6. False when the kernel refuses the filter.
bool refuse_ipv6_sockets();

// helper_result: how a child helper ended, and what it printed.
struct helper_result {
    int status = -1;    // exit status, -N when killed by signal N, -1000 when it timed out
    std::string output; // stdout and stderr
};

// run_helper runs `<this binary> --gipc-child name args...` in a process group of its own, with
// stdout and stderr to a pipe, and kills the group (its children too) when it has not ended
// within timeout.
helper_result run_helper(const std::string& name, std::vector<std::string> args = {},
                         std::chrono::seconds timeout = std::chrono::seconds(30));

// seconds_since is the time since start in seconds, as a double.
inline double seconds_since(std::chrono::steady_clock::time_point start)
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// wait_until polls pred every millisecond, sleeping the calling fiber (the other fibers of its
// thread run meanwhile), until pred holds or timeout has passed; returns pred's last value.
// For waits on other threads and fibers that a bug could make endless: the case then fails
// instead of hanging the test binary until the suite's timeout.
template <class Pred>
bool wait_until(Pred&& pred, std::chrono::steady_clock::duration timeout)
{
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
        if (std::chrono::steady_clock::now() >= deadline)
            return pred();
        boost::this_fiber::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

// settle_or_abort is wait_until for what has to happen before a case can go on at all: threads
// and fibers that use the case's locals ending, so that they can be joined. When pred still
// fails after timeout, they are stuck for good as far as the case can tell, and neither
// joining them nor returning past them is possible: it prints what on stderr and aborts the
// process, which fails the test binary at once instead of hanging it.
template <class Pred>
void settle_or_abort(Pred&& pred, std::chrono::steady_clock::duration timeout, const char* what)
{
    if (wait_until(pred, timeout))
        return;
    std::fprintf(stderr, "gipc test: still not done after %.0f s, giving up on the test binary: %s\n",
                 std::chrono::duration<double>(timeout).count(), what);
    std::fflush(stderr);
    std::abort();
}

// A child helper is a named function the test binary runs instead of its tests when started
// as `<binary> --gipc-child <name> [args...]`; its return value is the exit status.
using child_main = std::function<int(std::vector<std::string> args)>;
bool register_child(const char* name, child_main fn);

// self_exe is the path of the running test binary, for re-executing it as a child helper.
std::string self_exe();

} // namespace gipc_test

#define GIPC_TEST_CONCAT2(a, b) a##b
#define GIPC_TEST_CONCAT(a, b) GIPC_TEST_CONCAT2(a, b)

// GIPC_TEST(name [* decorators]): a doctest test case run under the leak_check fixture.
#define GIPC_TEST(...) TEST_CASE_FIXTURE(gipc_test::leak_check, __VA_ARGS__)

// GIPC_TEST_CHILD(name) { body using `args` }: registers a child helper.
#define GIPC_TEST_CHILD(name)                                                                      \
    static int GIPC_TEST_CONCAT(gipc_child_fn_, __LINE__)(std::vector<std::string> args);          \
    static const bool GIPC_TEST_CONCAT(gipc_child_reg_, __LINE__) =                                \
        gipc_test::register_child(name, GIPC_TEST_CONCAT(gipc_child_fn_, __LINE__));               \
    static int GIPC_TEST_CONCAT(gipc_child_fn_, __LINE__)([[maybe_unused]] std::vector<std::string> args)

namespace gipc_test {
// run_child runs the child helper called name; 127 when there is none.
int run_child(const std::string& name, std::vector<std::string> args);
} // namespace gipc_test
