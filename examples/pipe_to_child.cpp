// SPDX-License-Identifier: MIT
// pipe_to_child: the messaging example of gipc's documentation.
//
// A writer fiber in the parent puts a message into a gipc::pipe() periodically; a child
// process prints every message it gets. On Ctrl-C (SIGINT), or after COUNT messages, the
// parent stops the writer fiber, closes the pipe, terminates the child if it is still
// running, and joins it.
//
//   usage: pipe_to_child [--spawn] [COUNT [INTERVAL_MS]]     (COUNT 0: until Ctrl-C; default 0 1000)
//
// On Windows the child is always spawned, and Ctrl-C arrives through a console control handler.

#include <gipc/gipc.hpp>

#include <boost/fiber/all.hpp>

#ifdef _WIN32
#include <windows.h>

#include <atomic>
#else
#include <sys/signalfd.h>
#include <unistd.h>
#endif

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

using namespace std::chrono_literals;

// child_process runs in the child: print what arrives until the parent closes the pipe.
#ifdef _WIN32
// Ctrl-C: the console control handler (on a thread of the system's) sets this flag.
std::atomic<bool> g_interrupted{false};

BOOL WINAPI on_console_event(DWORD event)
{
    if (event != CTRL_C_EVENT && event != CTRL_BREAK_EVENT)
        return FALSE;
    g_interrupted = true;
    return TRUE;
}
#endif

void child_process(gipc::reader reader)
{
    for (;;) {
        std::string message;
        try {
            message = reader.get<std::string>();
        } catch (const gipc::eof_error&) {
            return;
        }
        std::printf("Child process got message from pipe:\n\t'%s'\n", message.c_str());
        std::fflush(stdout);
    }
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
    const int count = argc > 1 ? std::atoi(argv[1]) : 0;
    const auto interval = std::chrono::milliseconds(argc > 2 ? std::atoi(argv[2]) : 1000);

#ifdef _WIN32
    ::SetConsoleCtrlHandler(on_console_event, TRUE);
    auto interrupted = [] {
        boost::this_fiber::sleep_for(100ms);
        return g_interrupted.load();
    };
#else
    // SIGINT arrives through a signalfd, so a fiber can wait for it like for any fd.
    // (Children start with a clear signal mask: Ctrl-C reaches them as usual.)
    sigset_t sigint;
    sigemptyset(&sigint);
    sigaddset(&sigint, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigint, nullptr);
    const int sigfd = signalfd(-1, &sigint, SFD_CLOEXEC | SFD_NONBLOCK);
    auto interrupted = [&] { return gipc::wait_readable(sigfd, 100ms); };
#endif

    // Not `auto [r, w] = gipc::pipe()`: the writer fiber's lambda uses w, and clang before 16
    // refuses lambdas that capture structured bindings.
    auto ends = gipc::pipe();
    gipc::reader& r = ends.first;
    gipc::writer& w = ends.second;
#ifdef _WIN32
    (void)spawn; // Windows has no fork: a child is always spawned there
    gipc::process child = gipc::spawn_process(child_process, std::move(r));
#else
    gipc::process child =
        spawn ? gipc::spawn_process(child_process, std::move(r)) : gipc::start_process(child_process, std::move(r));
#endif

    bool stop = false;
    boost::fibers::mutex mutex;
    boost::fibers::condition_variable stop_changed;

    boost::fibers::fiber writer([&] {
        for (int sent = 0; count == 0 || sent < count; ++sent) {
            w.put(std::string("written to pipe from a fiber running in the main process"));
            std::unique_lock lock(mutex);
            if (stop_changed.wait_for(lock, interval, [&] { return stop; }))
                return;
        }
    });
    boost::fibers::fiber sigint_watch([&] {
        for (;;) {
            {
                std::lock_guard lock(mutex);
                if (stop)
                    return;
            }
            if (interrupted()) {
                std::lock_guard lock(mutex);
                stop = true;
                stop_changed.notify_all();
            }
        }
    });

    writer.join(); // count reached, or stopped by Ctrl-C
    {
        std::lock_guard lock(mutex);
        stop = true;
        stop_changed.notify_all();
    }
    sigint_watch.join();

    w.close(); // the child reads what is left, then sees EOF
    if (!child.join(2s))
        child.terminate();
    child.join();
    std::printf("Child exited with code %d.\n", *child.exitcode());
#ifndef _WIN32
    close(sigfd);
#endif
    return 0;
}
