// SPDX-License-Identifier: MIT
// pipeline: `sort | uniq -c` as two external programs, with this process in the middle.
//
// One fiber feeds words into sort's stdin; another copies sort's stdout into uniq's stdin (the
// pipe in the middle runs through gipc's byte streams, so the bytes can be looked at or
// changed on their way); the main fiber reads uniq's output line by line. Every read and write
// blocks only its own fiber and has a timeout, so a stuck program cannot hang the pipeline:
// then both programs are killed and the example exits with 1.
//
//   usage: pipeline [WORDS]     (default 1000; words cycle through a short list)

#include <gipc/gipc.hpp>

#include <boost/fiber/all.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

using namespace std::chrono_literals;

int main(int argc, char** argv)
{
    const int words = argc > 1 ? std::atoi(argv[1]) : 1000;
    const char* list[] = {"pear", "apple", "fig", "apple", "plum", "fig", "apple"};

    gipc::command sort_cmd;
    sort_cmd.argv = {"sort"};
    sort_cmd.in = gipc::stdio::pipe;
    sort_cmd.out = gipc::stdio::pipe;
    sort_cmd.env = std::vector<std::string>{"LC_ALL=C", "PATH=/usr/bin:/bin"};
    sort_cmd.kill_on_drop = true;
    gipc::command uniq_cmd = sort_cmd;
    uniq_cmd.argv = {"uniq", "-c"};

    gipc::program sort = gipc::start_program(sort_cmd);
    gipc::program uniq = gipc::start_program(uniq_cmd);
    std::exception_ptr failure;

    boost::fibers::fiber feeder([&] {
        try {
            std::string text;
            for (int i = 0; i < words; ++i)
                text += std::string(list[i % 7]) + "\n";
            sort.in().write_all(text, 10s);
            sort.in().close(); // sort sees the end of its input and starts writing
        } catch (...) {
            failure = std::current_exception();
        }
    });
    boost::fibers::fiber middle([&] {
        try {
            char buf[4096];
            while (std::size_t n = sort.out().read_some(buf, sizeof buf, 10s))
                uniq.in().write_all(std::string_view(buf, n), 10s);
            uniq.in().close();
        } catch (...) {
            failure = std::current_exception();
        }
    });

    int status = 0;
    try {
        while (true) {
            std::string line = uniq.out().read_line(10s);
            if (line.empty())
                break;
            std::fputs(line.c_str(), stdout);
        }
        if (!sort.join(10s) || !uniq.join(10s))
            throw gipc::timeout_error("the programs did not exit");
        std::printf("sort exited with %d, uniq with %d\n", *sort.exitcode(), *uniq.exitcode());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "pipeline: %s\n", e.what());
        sort.kill();
        uniq.kill();
        status = 1;
    }
    feeder.join();
    middle.join();
    if (failure && status == 0) {
        try {
            std::rethrow_exception(failure);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "pipeline: %s\n", e.what());
        }
        status = 1;
    }
    return status;
}
