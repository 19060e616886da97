"""The life of an interpreter: create, first call, close, and memory, ours against CPython's.

Ours is ``subinterpreters.interpreters``; theirs is the stdlib's ``concurrent.interpreters`` on
3.14+, elsewhere CPython's private module (``_xxsubinterpreters`` / ``_interpreters``, through
``adapters.theirs()``), whose "first call" is the first ``run_string`` into the interpreter (it
has no call). For 1, 10 and 200 interpreters alive at once, each sample is a fresh process
(``--life-child``) that, after one warm-up life, creates the interpreters, makes one call into
each, reads its RSS growth and closes them: the per-interpreter medians of each step are one
sample, and the sides alternate, A B then B A.

Targets: close <= 1.5 x theirs, first call <= 2 x the stdlib's (3.14+) and < 3 ms
elsewhere, RSS per interpreter <= 1.15 x theirs.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import time

import adapters

COUNTS = (1, 10, 200)
STDLIB = sys.version_info >= (3, 14)
# N=1 repeats a single life this many times in one process (one live interpreter at a time).
SINGLE_LIVES = 20


def _ret():
    return 1


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _Side:
    """create() / first(interp) / close(interp) of one side."""

    def __init__(self, key: str) -> None:
        if key == "ours":
            from subinterpreters import interpreters

            self.create = interpreters.create
            self.first = lambda i: i.call(_ret)
            self.close = lambda i: i.close()
        elif STDLIB:
            from concurrent import interpreters

            self.create = interpreters.create
            self.first = lambda i: i.call(_ret)
            self.close = lambda i: i.close()
        else:
            ad = adapters.theirs()
            self.create = ad.create
            self.first = lambda i: ad.run(i, "pass")
            self.close = ad.destroy


def child(key: str, n: int) -> None:
    """One sample, printed as JSON: per-interpreter medians (seconds) and RSS growth (bytes)."""
    side = _Side(key)
    warm = side.create()  # first-use costs (imports, caches) out of the measure
    side.first(warm)
    side.close(warm)
    gc.collect()
    gc.disable()
    clock = time.perf_counter
    create, first, close = [], [], []
    if n == 1:
        rss = []
        for _ in range(SINGLE_LIVES):
            r0 = _rss()
            t0 = clock()
            i = side.create()
            t1 = clock()
            side.first(i)
            t2 = clock()
            rss.append(_rss() - r0)
            side.close(i)
            t3 = clock()
            create.append(t1 - t0)
            first.append(t2 - t1)
            close.append(t3 - t2)
        per_interp = statistics.median(rss)
    else:
        r0 = _rss()
        interps = []
        for _ in range(n):
            t0 = clock()
            interps.append(side.create())
            create.append(clock() - t0)
        for i in interps:
            t0 = clock()
            side.first(i)
            first.append(clock() - t0)
        per_interp = (_rss() - r0) / n
        for i in interps:
            t0 = clock()
            side.close(i)
            close.append(clock() - t0)
    gc.enable()
    out = {
        "create": statistics.median(create),
        "first": statistics.median(first),
        "close": statistics.median(close),
        "rss": per_interp,
    }
    print(json.dumps(out))


def _sample(key: str, n: int) -> dict:
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--life-child", key, str(n)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(
            f"lifecycle child ({key}, {n}) exited with {out.returncode}: {out.stderr}"
        )
    if "remaining subinterpreters" in out.stderr or "Traceback" in out.stderr:
        raise RuntimeError(f"lifecycle child ({key}, {n}) complained: {out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool) -> dict:
    import bench

    theirs_label = "concurrent.interpreters" if STDLIB else adapters.theirs().label
    rows = []
    for n in COUNTS:
        repeats = (2 if quick else 3) if n == 200 else (3 if quick else 6)
        samples = {"ours": [], "theirs": []}
        for r in range(repeats):
            for key in ("ours", "theirs") if r % 2 == 0 else ("theirs", "ours"):
                samples[key].append(_sample(key, n))
        what = f"{n} live" if n > 1 else "one at a time"
        for step, unit, scale, target in (
            ("create", "ms", 1e3, None),
            ("first", "ms", 1e3, 2.0 if STDLIB else None),
            ("close", "ms", 1e3, 1.5),
            ("rss", "KiB", 1 / 1024, 1.15),
        ):
            label = {"first": "first call", "rss": "RSS per interpreter"}.get(step, step)
            row = bench.ratio_row(
                f"lifecycle {label}, {what}",
                unit,
                scale,
                {k: [x[step] for x in v] for k, v in samples.items()},
                count=n,
            )
            row["target"] = target
            if step == "first" and not STDLIB:
                row["target_ours"] = 3.0
            rows.append(row)
        bench.progress(
            f"lifecycle {n}: close {rows[-2]['ratio']:.2f}, first call {rows[-3]['ratio']:.2f}, "
            f"RSS {rows[-1]['ratio']:.2f}"
        )
    notes = [
        f"Lifecycle: theirs is {theirs_label}"
        + ("" if STDLIB else " (its first call is the first run_string, 'pass')")
        + "; each sample is a fresh process; 'one at a time' is the median of "
        f"{SINGLE_LIVES} lives with one interpreter alive; RSS is /proc/self/statm growth "
        "after the first call, per interpreter."
    ]
    # No "impl": theirs differs by version (the note says who it is).
    return {"rows": rows, "notes": notes}


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--life-child":
        child(sys.argv[2], int(sys.argv[3]))
    else:
        print(json.dumps(run("--quick" in sys.argv), indent=1))
