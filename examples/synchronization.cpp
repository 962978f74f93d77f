// SPDX-License-Identifier: MIT
// synchronization: the time-synchronization example of gipc's documentation.
//
// Parent and child run a SYN/ACK handshake over a gipc::duplex_pipe(); right after it, both
// are "in sync". The child then sends its clock reading and the parent prints how far it is
// from its own, taken at the same moment.

#include <gipc/gipc.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

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

int main()
{
    auto [cend, pend] = gipc::duplex_pipe(); // cend for the child, pend for the parent
    gipc::process p = gipc::start_process(writer_process, std::move(cend));
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
