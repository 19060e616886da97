"""Throughput of trivial tasks: InterpreterPoolExecutor vs ProcessPoolExecutor and (3.14+) the
stdlib InterpreterPoolExecutor; CPU-bound map scaling 1 -> 2 workers; asyncio round-trip
latency of aio.call.  Run: python bench/bench_pool.py [--tasks N]"""

import argparse
import asyncio
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from subinterpreters import aio
from subinterpreters.futures import InterpreterPoolExecutor


def ident(x):
    return x


def burn(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


def throughput(pool, n):
    pool.submit(ident, 0).result()
    list(pool.map(ident, range(100)))
    start = time.perf_counter()
    fs = [pool.submit(ident, i) for i in range(n)]
    for f in fs:
        f.result()
    return n / (time.perf_counter() - start)


def cpu_map(workers, items, size):
    with InterpreterPoolExecutor(workers) as pool:
        list(pool.map(burn, [10] * workers))
        start = time.perf_counter()
        list(pool.map(burn, [size] * items))
        return time.perf_counter() - start


async def latency(pool, n):
    for _ in range(100):
        await aio.call(pool, ident, 1)
    start = time.perf_counter()
    for _ in range(n):
        await aio.call(pool, ident, 1)
    return (time.perf_counter() - start) / n


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    n, w = args.tasks, args.workers
    print(f"CPython {sys.version.split()[0]}, {w} workers, {n} trivial tasks")
    with InterpreterPoolExecutor(w) as pool:
        ours = throughput(pool, n)
        lat = asyncio.run(latency(pool, 2000))
    with ProcessPoolExecutor(w) as pool:
        procs = throughput(pool, n)
    print(f"ours:                   {ours:10.0f} tasks/s")
    print(f"ProcessPoolExecutor:    {procs:10.0f} tasks/s   ratio {ours / procs:.1f}x")
    if sys.version_info >= (3, 14):
        from concurrent.futures import InterpreterPoolExecutor as Stdlib

        with Stdlib(w) as pool:
            std = throughput(pool, n)
        print(f"stdlib InterpreterPool: {std:10.0f} tasks/s   ratio {ours / std:.1f}x")
    one = cpu_map(1, 8, 1_000_000)
    two = cpu_map(2, 8, 1_000_000)
    print(f"CPU-bound map: 1 worker {one:.2f} s, 2 workers {two:.2f} s, speed-up {one / two:.2f}x")
    print(f"asyncio round trip (aio.call): {lat * 1e6:.1f} us")


if __name__ == "__main__":
    main()
