// SPDX-License-Identifier: MIT
// hello: the first example of gipc's documentation. A fiber of the parent puts a value into
// a pipe; a child process reads and checks it.

#include <gipc/gipc.hpp>

#include <boost/fiber/all.hpp>

#include <cstdio>
#include <string_view>

void writelet(gipc::writer& w) { w.put(0); }                       // a fiber in the parent
int readchild(gipc::reader r) { return r.get<int>() == 0 ? 0 : 1; } // the child process

// usage: hello [--spawn]
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
    auto [readend, writeend] = gipc::pipe();
    boost::fibers::fiber g(writelet, std::ref(writeend));
    gipc::process p = spawn ? gipc::spawn_process(readchild, std::move(readend))
                            : gipc::start_process(readchild, std::move(readend));
    g.join();
    p.join();
    std::printf("child %s exited with code %d\n", p.name().c_str(), *p.exitcode());
    return *p.exitcode();
}
