// SPDX-License-Identifier: MIT
// hello: the first example of gipc's documentation. A fiber of the parent puts a value into
// a pipe; a child process reads and checks it.

#include <gipc/gipc.hpp>

#include <boost/fiber/all.hpp>

#include <cstdio>

void writelet(gipc::writer& w) { w.put(0); }                       // a fiber in the parent
int readchild(gipc::reader r) { return r.get<int>() == 0 ? 0 : 1; } // the child process

int main()
{
    auto [readend, writeend] = gipc::pipe();
    boost::fibers::fiber g(writelet, std::ref(writeend));
    gipc::process p = gipc::start_process(readchild, std::move(readend));
    g.join();
    p.join();
    std::printf("child %s exited with code %d\n", p.name().c_str(), *p.exitcode());
    return *p.exitcode();
}
