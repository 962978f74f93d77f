// SPDX-License-Identifier: MIT
// pool_primes: count the primes below N in chunks across a process pool. One chunk's task
// crashes its worker on purpose: only that task fails (worker_lost_error), the pool replaces
// the worker, and the program counts that chunk again and carries on.
//
//   usage: pool_primes [--spawn] [N [CHUNK]]     (default 2000000 100000)
//
// On Windows the workers are always spawned (--spawn makes no difference).

#include <gipc/gipc.hpp>

#include <boost/fiber/all.hpp>

#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

// count_primes counts the primes in [from, to); with crash set, it aborts instead (the worker
// process is killed by SIGABRT, as by a failed assertion). On Windows it ends with exit code 3,
// as the C runtime's abort() does there, by _Exit (abort() may start a debugger first).
long count_primes(long from, long to, bool crash)
{
    if (crash) {
#ifdef _WIN32
        std::_Exit(3);
#else
        std::abort();
#endif
    }
    long count = 0;
    for (long n = from < 2 ? 2 : from; n < to; ++n) {
        bool prime = true;
        for (long d = 2; d * d <= n; ++d)
            if (n % d == 0) {
                prime = false;
                break;
            }
        count += prime ? 1 : 0;
    }
    return count;
}

int main(int argc, char** argv)
{
    gipc::spawn_main(argc, argv); // a spawned worker runs its tasks here
    const bool spawn = argc > 1 && std::string_view(argv[1]) == "--spawn";
    if (spawn) {
        --argc;
        ++argv;
    }
    const long n = argc > 1 ? std::atol(argv[1]) : 2000000;
    const long chunk = argc > 2 ? std::atol(argv[2]) : 100000;

    gipc::pool_options options;
    options.spawn = spawn;
    gipc::pool pool(options);

    struct piece {
        long from, to;
        boost::fibers::future<long> count;
    };
    std::vector<piece> pieces;
    for (long from = 0; from < n; from += chunk) {
        const long to = from + chunk < n ? from + chunk : n;
        const bool crash = pieces.size() == 1; // the second chunk's worker dies
        pieces.push_back({from, to, pool.submit(count_primes, from, to, crash)});
    }
    long total = 0;
    int lost = 0;
    for (auto& p : pieces) {
        try {
            total += p.count.get();
        } catch (const gipc::worker_lost_error& e) {
            ++lost;
            std::printf("lost a chunk: %s\n", e.what());
            total += pool.submit(count_primes, p.from, p.to, false).get(); // again, on a new worker
        }
    }
    std::printf("%ld primes below %ld (%zu chunks on %zu workers, %d worker lost and replaced)\n", total, n,
                pieces.size(), pool.workers(), lost);
    return lost == 1 ? 0 : 1;
}
