"""The timing helpers the pool benchmarks share (bench_pool.py, workloads.py): interleaved
rounds of several sides, a timed batch of calls, and the statistics they report.

Sides are measured in one process, round after round with the order reversed every other round
(A B C, C B A, ...), so that a machine getting busier or quieter meanwhile weighs on every
side alike; results are medians over rounds.
"""

from __future__ import annotations

import statistics
import sys
import time


def progress(msg: str) -> None:
    print(f"  {msg}", file=sys.stderr, flush=True)


def rounds(n: int, funcs: dict) -> dict[str, list]:
    """Call each side once per round, the order reversed every other round: what each gave."""
    keys = list(funcs)
    out: dict[str, list] = {k: [] for k in keys}
    for r in range(n):
        for k in keys if r % 2 == 0 else keys[::-1]:
            out[k].append(funcs[k]())
    return out


def run_batch(ex, calls) -> tuple[float, list]:
    """Submit every ``(fn, args)`` of ``calls`` to executor ``ex``, then wait for every
    result: the seconds that took, and the results."""
    t0 = time.perf_counter()
    fs = [ex.submit(fn, *args) for fn, args in calls]
    results = [f.result() for f in fs]
    return time.perf_counter() - t0, results


def quartiles(xs: list[float]) -> tuple[float, float]:
    if len(xs) < 2:
        return xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]


def spread(xs: list[float]) -> dict:
    """Median and quartiles of per-round values."""
    q1, q3 = quartiles(xs)
    return {"median": statistics.median(xs), "q1": q1, "q3": q3, "samples": xs}


def percentile(xs: list[float], p: float) -> float:
    """The ``p``-th percentile of ``xs`` (nearest rank)."""
    xs = sorted(xs)
    i = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
    return xs[i]
