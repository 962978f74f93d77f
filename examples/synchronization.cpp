// SPDX-License-Identifier: MIT
// synchronization: the time-synchronization example of gipc's documentation.
//
// Parent and child run a SYN/ACK handshake over a gipc::duplex_pipe(); right after it, both
// are "in sync". The child then sends its clock reading and the parent prints how far it is
// from its own, taken at the same moment.
//
//   usage: synchronization [--spawn]     (on Windows the child is always spawned)

#include <gipc/gipc.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>

double now_seconds()
{
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void writer_process(gipc::duplex cend)
{
    if (cend.get<std::string>() != "SYN")
        throw std::runtime_error("expected SYN");
    cend.put(std::string("ACK"));
    // Now in sync with the parent.
    cend.put(now_seconds());
}

// usage: synchronization [--spawn]
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
    auto [cend, pend] = gipc::duplex_pipe(); // cend for the child, pend for the parent
#ifdef _WIN32
    // Windows has no fork: a child is always spawned there.
    (void)spawn;
    gipc::process p = gipc::spawn_process(writer_process, std::move(cend));
#else
    gipc::process p = spawn ? gipc::spawn_process(writer_process, std::move(cend))
                            : gipc::start_process(writer_process, std::move(cend));
#endif
    // Synchronize with the child.
    pend.put(std::string("SYN"));
    if (pend.get<std::string>() != "ACK")
        return 1;
    // Now in sync with the child.
    const double ptime = now_seconds();
    const double ctime = pend.get<double>();
    p.join();
    std::printf("Time delta: %.8f s.\n", std::fabs(ptime - ctime));
    return *p.exitcode();
}
