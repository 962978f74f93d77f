#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# The peer of gipc_bench's pool_tasks / pool_map figures: trivial tasks per second through
# Python's concurrent.futures.ProcessPoolExecutor with 2 workers, by submit, by map, and by map
# with chunksize=100. Run it beside gipc_bench in the same sitting: python3 bench/python_pool.py
import concurrent.futures
import time


def square(x):
    return x * x


def measure(run, n):
    while True:
        t0 = time.perf_counter()
        run(n)
        s = time.perf_counter() - t0
        if s >= 0.5:
            return n / s
        n = n * 10 if s <= 0.01 else int(n * 0.6 / s) + 1


def main():
    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as ex:
        ex.submit(square, 1).result()

        def by_submit(n):
            for f in [ex.submit(square, i) for i in range(n)]:
                f.result()

        def by_map(n):
            list(ex.map(square, range(n)))

        def by_map_chunked(n):
            list(ex.map(square, range(n), chunksize=100))

        for name, run in (("python_submit", by_submit), ("python_map", by_map),
                          ("python_map_chunksize_100", by_map_chunked)):
            rates = sorted(measure(run, 1000) for _ in range(3))
            print(f"{name}: {rates[1]:.6g} tasks/s")


if __name__ == "__main__":
    main()
