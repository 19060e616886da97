"""Benchmarks: subinterpreters.lowlevel against CPython's own module, same Python, same run.

Run with the Python to measure (its venv has our module installed):

    .venv/py312/bin/python bench/bench.py                      # everything, JSON to bench/results/
    .venv/py312/bin/python bench/bench.py --quick              # a short run (about a minute)
    .venv/py312/bin/python bench/bench.py --only send_recv,run_string
    python bench/report.py bench/results/py3*.json -o BENCHMARKS.md

Benchmarks: create_destroy, run_string, send_recv, roundtrip, pep734, cpu, memory, pool, stop,
lifecycle (bench_stop.py: interrupt(), interpreters.wait() and forwarded output, ours alone;
bench_lifecycle.py: create, first call, close and RSS of 1, 10 and 200 interpreters,
against concurrent.interpreters on 3.14+ and CPython's private module elsewhere). pep734
compares subinterpreters.interpreters with concurrent.interpreters (3.14+) or PyPI's
backports.interpreters (3.11 to 3.13; skipped, with the reason, where it is not installed). pool
(bench_pool.py) compares subinterpreters.futures.InterpreterPoolExecutor with ProcessPoolExecutor
and (3.14+) concurrent.futures.InterpreterPoolExecutor, and times asyncio round trips.

How it measures. Our machines are shared and noisy, so only ratios measured in one run count:
every benchmark times ours and CPython's module ("theirs") alternately, batch after batch
(A B, B A, A B, ...: the order flips each round so drift hits both sides alike), after a warm-up,
and reports the median time per operation of each side, and the ratio ours / theirs as the median
of the per-round ratios (< 1: we are faster) with their interquartile range, which shows the noise.

Each benchmark runs in a fresh child process (this script with --child), so a crash or hang in
one (a watchdog dumps the stacks and exits) is recorded and the others still run, and the memory
that create+destroy leaks on 3.12+ (CPython gh-110411) does not leak into the next benchmark.

On 3.11, CPython's module deadlocks when an interpreter is destroyed from another thread than the
one that created it (CPython gh-122517), so every interpreter here is created and destroyed on the
main thread; worker threads only run code in them.
"""

from __future__ import annotations

import argparse
import datetime
import faulthandler
import gc
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit

import adapters

BENCHMARKS = (
    "create_destroy",
    "run_string",
    "send_recv",
    "roundtrip",
    "pep734",
    "cpu",
    "memory",
    "pool",
    "stop",
    "lifecycle",
)
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# The targets: ours / theirs, same Python, same run.
TARGETS = {
    "create+destroy": 1.05,
    "run_string(id, 'pass')": 0.8,
    "send+recv int": 0.6,
    "send+recv bytes 16 B": 0.6,
    "send+recv bytes 1 KiB": 0.6,
    "send+recv str 100 chars": 0.6,
    "send+recv bytes 1 MiB": 1.0,
}

# The PEP 734 rows' targets: ours / theirs, by which module "theirs" is.
PEP734_TARGETS = {
    ("PEP 734 queue put+get, small (int)", "concurrent"): 0.5,
    ("PEP 734 interp.call(f, 1)", "concurrent"): 0.5,
    ("PEP 734 interp.call(f, 1)", "backports"): 0.2,
    ("PEP 734 interp.exec('pass')", "concurrent"): 0.5,
}
# And one absolute target: our median round trip main -> sub -> main through two queues, in us.
PEP734_RT_TARGET_US = 30.0


class Settings:
    """Sizes of a run: full (the default) or --quick."""

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.rounds = 6 if quick else 20  # interleaved rounds per micro-benchmark
        self.batch_s = 0.01 if quick else 0.04  # target duration of one timed batch
        self.cd_rounds = 4 if quick else 12  # create+destroy rounds
        self.cd_batch = 2 if quick else 3  # create+destroy pairs per batch
        self.rt_rounds = 4 if quick else 12  # round-trip rounds
        self.rt734_s = 0.15 if quick else 0.3  # PEP 734 round trips: time per side per round
        self.big_rounds = 3 if quick else 6  # 100 MiB transfers per side
        self.cpu_seconds = 0.08 if quick else 0.25  # CPU work per worker
        self.cpu_repeats = 1 if quick else 4
        self.cpu_workers = (1, 2, 4)
        self.mem_repeats = 2 if quick else 5  # child processes per side
        self.mem_n = 10  # live interpreters per child
        self.watchdog_s = 240 if quick else 600  # per benchmark child


# ---------------------------------------------------------------------------------------------
# Statistics and interleaving


def quartiles(xs: list[float]) -> tuple[float, float]:
    if len(xs) < 2:
        return xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]


def interleave(rounds: int, funcs: dict[str, object]) -> dict[str, list[float]]:
    """Call each side's measuring function once per round, A B then B A, ...; collect results."""
    keys = list(funcs)
    out: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(rounds):
        for k in keys if r % 2 == 0 else keys[::-1]:
            out[k].append(funcs[k]())
    return out


def ratio_row(
    name: str, unit: str, scale: float, samples: dict[str, list[float]], **extra
) -> dict[str, object]:
    """A result row from per-round seconds (or bytes) per operation of each side."""
    ours, theirs = samples["ours"], samples["theirs"]
    mo, mt = statistics.median(ours), statistics.median(theirs)
    paired = [a / b for a, b in zip(ours, theirs, strict=True) if b > 0]
    q1, q3 = quartiles(paired) if paired else (float("nan"), float("nan"))
    row = {
        "name": name,
        "unit": unit,
        "ours": mo * scale,
        "theirs": mt * scale,
        # The median of the per-round ratios: each pairs two adjacent batches, so drift in the
        # machine's load cancels out better than in median(ours) / median(theirs), also kept.
        "ratio": statistics.median(paired) if paired else float("nan"),
        "ratio_of_medians": mo / mt if mt > 0 else float("nan"),
        "ratio_q1": q1,
        "ratio_q3": q3,
        "rounds": len(ours),
        "target": TARGETS.get(name),
        "samples_ours": [x * scale for x in ours],
        "samples_theirs": [x * scale for x in theirs],
    }
    row.update(extra)
    return row


def batch_sizes(timers: dict[str, timeit.Timer], target_s: float) -> dict[str, int]:
    """Per side, how many runs make a batch of about target_s (after a warm-up run)."""
    sizes = {}
    for k, t in timers.items():
        t.timeit(1)  # warm-up
        n = 1
        while True:
            took = t.timeit(n)
            if took >= target_s / 10 or n >= 1 << 20:
                break
            n *= 4
        sizes[k] = max(1, int(target_s * n / took)) if took > 0 else n
    return sizes


def timed_rows(
    s: Settings, name: str, unit: str, scale: float, stmts: dict[str, tuple[str, dict]], **extra
) -> dict[str, object]:
    """Interleaved timeit batches of `stmt` (per side: (statement, globals)); seconds per run."""
    timers = {k: timeit.Timer(stmt, globals=g) for k, (stmt, g) in stmts.items()}
    sizes = batch_sizes(timers, s.batch_s)
    for k, t in timers.items():  # warm-up at full size
        t.timeit(sizes[k])
    samples = interleave(
        s.rounds, {k: (lambda t=t, n=sizes[k]: t.timeit(n) / n) for k, t in timers.items()}
    )
    return ratio_row(
        name, unit, scale, samples, batch=sizes["ours"], batch_theirs=sizes["theirs"], **extra
    )


def progress(msg: str) -> None:
    print(f"  {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Benchmarks. Each returns {"rows": [...], "notes": [...], "problems": [...]}.


def bench_create_destroy(s: Settings, impl: dict[str, adapters.Adapter]) -> dict:
    def measure(ad: adapters.Adapter):
        def once() -> float:
            gc.disable()
            try:
                t0 = time.perf_counter()
                for _ in range(s.cd_batch):
                    interp = ad.create()
                    ad.destroy(interp)
                    del interp
                return (time.perf_counter() - t0) / s.cd_batch
            finally:
                gc.enable()

        return once

    funcs = {k: measure(ad) for k, ad in impl.items()}
    for f in funcs.values():
        f()  # warm-up
    samples = interleave(s.cd_rounds, funcs)
    row = ratio_row("create+destroy", "ms", 1e3, samples, batch=s.cd_batch)
    progress(f"create+destroy: ratio {row['ratio']:.2f}")
    return {"rows": [row]}


SHARED_10 = {f"v{k}": (k, f"s{k}", b"b%d" % k, None)[k % 4] for k in range(10)}


def bench_run_string(s: Settings, impl: dict[str, adapters.Adapter]) -> dict:
    interps = {k: ad.create() for k, ad in impl.items()}
    problems = []
    try:
        check = "assert (v0, v1, v2, v3, v9) == (0, 's1', b'b2', None, 's9'), (v0, v1, v2, v3)"
        for k, ad in impl.items():  # correctness: the shared values arrive intact
            try:
                ad.run(interps[k], check, SHARED_10)
            except RuntimeError as exc:
                problems.append(f"{k}: run_string with a 10-item shared dict: {exc}")
        rows = []
        for name, tmpl in (
            ("run_string(id, 'pass')", "RUN"),
            ("run_string + 10 shared", "RUN_SHARED"),
        ):
            stmts = {}
            for k, ad in impl.items():
                g = dict(ad.ns, i=interps[k], code="pass", shared=SHARED_10)
                stmt = getattr(ad, tmpl).format(i="i", code="code", shared="shared")
                stmts[k] = (stmt, g)
            rows.append(timed_rows(s, name, "us", 1e6, stmts))
            progress(f"{name}: ratio {rows[-1]['ratio']:.2f}")
    finally:
        for k, ad in impl.items():
            ad.destroy(interps[k])
    return {"rows": rows, "problems": problems}


MIB = 1 << 20
PAYLOADS = (
    ("send+recv int", 42),
    ("send+recv bytes 16 B", bytes(range(16))),
    ("send+recv bytes 1 KiB", bytes(range(256)) * 4),
    ("send+recv bytes 1 MiB", bytes(range(256)) * (MIB // 256)),
    ("send+recv str 100 chars", "abcdefghij" * 10),
)


def payload_order(row: dict) -> int:
    names = [name for name, _obj in PAYLOADS]
    return names.index(row["name"]) if row["name"] in names else len(names)


def bench_send_recv(s: Settings, impl: dict[str, adapters.Adapter], only_payload=None) -> dict:
    chans = {k: ad.chan_create() for k, ad in impl.items()}
    rows, problems = [], []
    try:
        for name, obj in PAYLOADS:
            if only_payload and only_payload not in name:
                continue
            for k, ad in impl.items():  # correctness: equal value, same type, queue empty after
                ad.send(chans[k], obj)
                got = ad.recv(chans[k])
                if type(got) is not type(obj) or got != obj:
                    problems.append(f"{k}: {name}: received {type(got).__name__} != sent")
                if ad.recv(chans[k], None) is not None:
                    problems.append(f"{k}: {name}: channel not empty after one send + one recv")
            stmts = {}
            for k, ad in impl.items():
                stmt = ad.SEND.format(c="c", obj="obj") + "; " + ad.RECV.format(c="c")
                stmts[k] = (stmt, dict(ad.ns, c=chans[k], obj=obj))
            row = timed_rows(s, name, "ns/pair", 1e9, stmts)
            if isinstance(obj, bytes) and len(obj) >= MIB:
                # Bytes moved per second: one payload per pair.
                row["ours_gbps"] = len(obj) / (row["ours"] / 1e9) / 1e9
                row["theirs_gbps"] = len(obj) / (row["theirs"] / 1e9) / 1e9
            rows.append(row)
            progress(f"{name}: ratio {row['ratio']:.2f}")
    finally:
        for k, ad in impl.items():
            ad.chan_destroy(chans[k])
    return {"rows": rows, "problems": problems}


# The subinterpreter's side of the round trip: echo n items from `req` to `rep`. Receiving polls
# (the low-level recv never blocks, on any version); os.sched_yield() between polls releases the
# GIL, which the shared GIL of 3.11 needs (docs/threads.md#the-shared-gil-on-311: a waiter of
# another interpreter starves), without time.sleep(0)'s 50 us of timer slack.
ECHO_SCRIPT = """\
{sub_import}
import os as _os
_sleep = _os.sched_yield
for _ in range(n):
    while True:
        _x = {recv}
        if _x is not None:
            break
        _sleep()
    {send}
"""

# The main interpreter's side, compiled per implementation so that no wrapper sits in the loop.
TRIP_SOURCE = """\
def trips(n, req, rep, alive):
    sleep = _sleep
    for k in range(n):
        {send}
        spins = 0
        while True:
            x = {recv}
            if x is not None:
                if x != k:
                    raise RuntimeError(f"round trip: sent {{k!r}}, got back {{x!r}}")
                break
            spins += 1
            if spins > 200_000 and not alive():
                raise RuntimeError("the subinterpreter stopped replying")
            sleep()
"""


def bench_roundtrip(s: Settings, impl: dict[str, adapters.Adapter]) -> dict:
    interps = {k: ad.create() for k, ad in impl.items()}
    chans = {k: (ad.chan_create(), ad.chan_create()) for k, ad in impl.items()}
    warm = 50
    problems: list[str] = []

    def make(k: str, ad: adapters.Adapter):
        g = dict(ad.ns, _sleep=os.sched_yield)
        src = TRIP_SOURCE.format(
            send=ad.SEND.format(c="req", obj="k"), recv=ad.RECV_DEFAULT.format(c="rep", d="None")
        )
        exec(src, g)
        trips = g["trips"]
        script = ECHO_SCRIPT.format(
            sub_import=ad.SUB_IMPORT,
            recv=ad.RECV_DEFAULT.format(c="req", d="None"),
            send=ad.SEND.format(c="rep", obj="_x"),
        )
        req, rep = chans[k]

        def one(n: int) -> float:
            errors: list[BaseException] = []

            def drive() -> None:
                try:
                    ad.run(interps[k], script, {"n": warm + n, "req": int(req), "rep": int(rep)})
                except BaseException as exc:  # reported below
                    errors.append(exc)

            th = threading.Thread(target=drive)
            th.start()
            try:
                trips(warm, req, rep, th.is_alive)
                t0 = time.perf_counter()
                trips(n, req, rep, th.is_alive)
                took = time.perf_counter() - t0
            finally:
                th.join()
            if errors:
                raise RuntimeError(f"{k}: the echo script failed: {errors[0]!r}")
            return took / n

        return one

    try:
        ones = {k: make(k, ad) for k, ad in impl.items()}
        # Size rounds from a pilot of each side.
        per_trip = min(one(200) for one in ones.values())
        target = s.batch_s * 2
        n = max(100, min(50_000, int(target / per_trip)))
        samples = interleave(s.rt_rounds, {k: (lambda one=one: one(n)) for k, one in ones.items()})
        row = ratio_row("round trip main <-> sub (int)", "us/trip", 1e6, samples, batch=n)
        progress(f"round trip: ratio {row['ratio']:.2f}")
    finally:
        for k, ad in impl.items():
            ad.destroy(interps[k])
            for c in chans[k]:
                ad.chan_destroy(c)
    notes = [
        "round trip: main sends a small int to a subinterpreter (run by a thread), which "
        "sends it back. Both sides poll recv (the low-level recv never blocks) with "
        "os.sched_yield() between polls, which releases the GIL without sleeping (time.sleep(0) "
        "costs the 50 us timer slack)."
    ]
    if sys.version_info < (3, 12):
        notes.append(
            "3.11 round trip: with one GIL every trip is two GIL hand-overs, and how fast the "
            "waiting thread gets the GIL is scheduler luck that persists for a whole round "
            "(per-round ratios range widely); read this ratio with its IQR."
        )
    return {"rows": [row], "notes": notes, "problems": problems}


# ---------------------------------------------------------------------------------------------
# PEP 734: subinterpreters.interpreters against concurrent.interpreters (3.14+) or PyPI's
# backports.interpreters (3.11 to 3.13). Both sides have the same API, so one source serves both.

# The subinterpreter's side of the PEP 734 round trip: blocking gets, until None arrives.
ECHO_734 = """\
while True:
    _x = qin.get()
    if _x is None:
        break
    qout.put(_x)
"""
# The 100 MiB transfer's receiving side, run by interp.exec() right after the main's put().
GET_BIG = """\
_x = q.get()
assert (type(_x).__name__, len(_x), _x[-1]) == expect, ((type(_x).__name__, len(_x)), expect)
del _x
"""
BIG = 100 * MIB
# A 100 MiB memoryview must cross in constant time (no copy): our median put + get,
# in us, and its ratio to the same with 1 MiB (paired per round), at most.
VIEW_TARGET_US = 50.0
VIEW_CONST_TARGET = 1.5


def pep734_rows_targets(row: dict, kind: str) -> dict:
    row["target"] = PEP734_TARGETS.get((row["name"], kind))
    row["vs"] = kind  # which module the target is against: "concurrent" or "backports"
    return row


def pep734_roundtrip(s: Settings, impl: dict[str, adapters.Pep734]) -> dict:
    """Median latency of put(k) to the sub's queue + get() of its echo, per round and side."""
    sides = {}
    errors: list[str] = []

    def start(k: str, ad: adapters.Pep734):
        m = ad.mod
        interp = m.create()
        qin, qout = m.create_queue(), m.create_queue()
        interp.prepare_main(qin=qin, qout=qout)

        def drive() -> None:
            try:
                interp.exec(ECHO_734)
            except BaseException as exc:  # reported below
                errors.append(f"{k}: the echo loop failed: {exc!r}")

        th = threading.Thread(target=drive)
        th.start()
        return interp, qin, qout, th

    def one(k: str, n: int) -> float:
        _interp, qin, qout, _th = sides[k]
        perf = time.perf_counter
        lat = []
        for j in range(n):
            t0 = perf()
            qin.put(j)
            x = qout.get(timeout=30)
            lat.append(perf() - t0)
            if x != j:
                raise RuntimeError(f"{k}: round trip: sent {j!r}, got back {x!r}")
        return statistics.median(lat)

    try:
        for k, ad in impl.items():
            sides[k] = start(k, ad)
        sizes = {}
        for k in impl:
            one(k, 3)  # warm-up
            pilot = max(one(k, 5), 1e-6)
            sizes[k] = max(5, min(5_000, int(s.rt734_s / pilot)))
        samples = interleave(s.rt_rounds, {k: (lambda k=k: one(k, sizes[k])) for k in impl})
    finally:
        for _interp, qin, _qout, th in sides.values():
            qin.put(None)
            th.join(60)
        for interp, _qin, _qout, _th in sides.values():
            interp.close()
    if errors:
        raise RuntimeError("; ".join(errors))
    row = ratio_row(
        "PEP 734 round trip main -> sub -> main (median)",
        "us",
        1e6,
        samples,
        batch=sizes["ours"],
        batch_theirs=sizes["theirs"],
    )
    row["target_ours"] = PEP734_RT_TARGET_US  # absolute: our median, in the row's unit
    return row


def pep734_big(s: Settings, impl: dict[str, adapters.Pep734], kind: str) -> tuple[dict, list]:
    """100 MiB (bytes or a memoryview of bytes) put in main, got in a subinterpreter."""
    data = bytes(range(256)) * (BIG // 256)
    obj = data if kind == "bytes" else memoryview(data)
    problems, sent = [], {}
    interps, queues = {}, {}
    try:
        for k, ad in impl.items():
            m = ad.mod
            interps[k], queues[k] = m.create(), m.create_queue()
            try:
                queues[k].put(obj)
            except Exception as exc:
                # What a user of this side must do instead: send a bytes copy.
                problems.append(
                    f"{k} ({ad.label}): put() of a 100 MiB {kind} refused "
                    f"({type(exc).__name__}: {exc}); timed with put(bytes(mv)) instead"
                )
                sent[k] = "bytes(mv)"
            else:
                sent[k] = kind
                queues[k].get()
            arrives = type(obj).__name__ if sent[k] == kind else "bytes"
            interps[k].prepare_main(q=queues[k], expect=(arrives, BIG, 255))

        def measure(k: str):
            interp, q = interps[k], queues[k]

            def once() -> float:
                t0 = time.perf_counter()
                q.put(obj if sent[k] == kind else bytes(obj))
                interp.exec(GET_BIG)
                return time.perf_counter() - t0

            return once

        funcs = {k: measure(k) for k in impl}
        for f in funcs.values():
            f()  # warm-up (the subinterpreter checks what arrived: ExecutionFailed if wrong)
        samples = interleave(s.big_rounds, funcs)
    finally:
        for k in interps:
            interps[k].close()
    row = ratio_row(f"PEP 734 queue 100 MiB {kind} to a sub", "ms", 1e3, samples, sent=sent)
    row["ours_gbps"] = BIG / (row["ours"] / 1e3) / 1e9
    row["theirs_gbps"] = BIG / (row["theirs"] / 1e3) / 1e9
    return row, problems


def pep734_views(s: Settings, impl: dict[str, adapters.Pep734]) -> tuple[list[dict], list[str]]:
    """A memoryview of 100 MiB and of 1 MiB put in main, got in a subinterpreter: in constant
    time where the view crosses without a copy (ours, and the stdlib's on 3.14+)."""
    data = bytes(range(256)) * (BIG // 256)
    views = {"100 MiB": memoryview(data), "1 MiB": memoryview(data)[:MIB]}
    problems, sent = [], {}
    interps, queues = {}, {}
    try:
        for k, ad in impl.items():
            m = ad.mod
            interps[k] = m.create()
            queues[k] = m.create_queue()
            try:
                queues[k].put(views["1 MiB"])
                got = queues[k].get()
                if type(got) is not memoryview or bytes(got[:256]) != data[:256]:
                    raise TypeError(f"got back {type(got).__name__}, not the view's bytes")
                del got
            except Exception as exc:
                # What a user of this side must do instead: send a bytes copy.
                problems.append(
                    f"{k} ({ad.label}): put() of a memoryview refused or mangled "
                    f"({type(exc).__name__}: {exc}); timed with put(bytes(mv)) instead"
                )
                sent[k] = "bytes(mv)"
            else:
                sent[k] = "memoryview"
            interps[k].prepare_main(q=queues[k])

        def measure(k: str, size: str):
            interp, q, mv = interps[k], queues[k], views[size]
            copy = sent[k] != "memoryview"
            code = GET_BIG.replace(
                "expect", repr(("bytes" if copy else "memoryview", len(mv), mv[-1]))
            )
            perf = time.perf_counter

            def one() -> float:
                t0 = perf()
                q.put(bytes(mv) if copy else mv)
                interp.exec(code)
                return perf() - t0

            def batch(n: int) -> float:
                return statistics.median(one() for _ in range(n))

            return one, batch

        sides = {(k, size): measure(k, size) for k in impl for size in views}
        sizes = {}
        for key, (one, _batch) in sides.items():
            one()  # warm-up (the subinterpreter checks what arrived: ExecutionFailed if wrong)
            pilot = min(one() for _ in range(3))
            sizes[key] = max(1, min(200, int(s.batch_s / max(pilot, 1e-6))))
        samples = interleave(
            s.big_rounds * 2,
            {key: (lambda b=batch, n=sizes[key]: b(n)) for key, (_one, batch) in sides.items()},
        )
    finally:
        for k in interps:
            interps[k].close()
    rows = []
    for size in ("1 MiB", "100 MiB"):
        row = ratio_row(
            f"PEP 734 queue {size} memoryview to a sub",
            "us",
            1e6,
            {k: samples[(k, size)] for k in impl},
            batch=sizes[("ours", size)],
            batch_theirs=sizes[("theirs", size)],
            sent=sent,
        )
        rows.append(row)
    big = rows[-1]
    paired = [
        a / b for a, b in zip(samples[("ours", "100 MiB")], samples[("ours", "1 MiB")], strict=True)
    ]
    big["const_ratio"] = statistics.median(paired)  # ours: 100 MiB / 1 MiB
    big["const_ratio_theirs"] = statistics.median(
        a / b
        for a, b in zip(samples[("theirs", "100 MiB")], samples[("theirs", "1 MiB")], strict=True)
    )
    big["target_ours"] = VIEW_TARGET_US
    big["target_const"] = VIEW_CONST_TARGET
    if sent["ours"] != "memoryview":
        big["const_ratio"] = None  # a copy: not constant time, the target is missed
    return rows, problems


def bench_pep734(s: Settings, impl: dict[str, adapters.Pep734], why: str) -> dict:
    if "theirs" not in impl:
        progress(f"pep734: skipped: {why}")
        return {"rows": [], "skipped": why}
    kind = impl["theirs"].kind
    import bench_funcs

    rows, problems = [], []
    interps = {k: ad.mod.create() for k, ad in impl.items()}
    try:
        # The small-op rows, each timed alternately in one process.
        stmts_put, stmts_call, stmts_exec = {}, {}, {}
        for k, ad in impl.items():
            i = interps[k]
            # bench_funcs must be importable over there (a callable crosses by name).
            i.exec(f"import sys; sys.path.insert(0, {HERE!r})")
            if i.call(bench_funcs.inc, 1) != 2:
                problems.append(f"{k}: call(inc, 1) != 2")
            q = ad.mod.create_queue()
            q.put(42)
            if q.get() != 42:
                problems.append(f"{k}: put(42) + get() did not give 42 back")
            try:  # (not q.empty(): the backport has no qsize() before 3.13)
                q.get_nowait()
            except ad.mod.QueueEmpty:
                pass
            else:
                problems.append(f"{k}: the queue is not empty after one put + one get")
            stmts_put[k] = ("q.put(obj); q.get()", {"q": q, "obj": 42})
            stmts_call[k] = ("i.call(f, 1)", {"i": i, "f": bench_funcs.inc})
            stmts_exec[k] = ("i.exec(code)", {"i": i, "code": "pass"})
        for name, stmts in (
            ("PEP 734 queue put+get, small (int)", stmts_put),
            ("PEP 734 interp.call(f, 1)", stmts_call),
            ("PEP 734 interp.exec('pass')", stmts_exec),
        ):
            rows.append(pep734_rows_targets(timed_rows(s, name, "us", 1e6, stmts), kind))
            progress(f"{name}: ratio {rows[-1]['ratio']:.2f}")
    finally:
        for i in interps.values():
            i.close()
    rows.insert(0, pep734_roundtrip(s, impl))
    progress(f"{rows[0]['name']}: ours {rows[0]['ours']:.1f} us, theirs {rows[0]['theirs']:.1f} us")
    row, probs = pep734_big(s, impl, "bytes")
    rows.append(row)
    problems += probs
    progress(f"{row['name']}: ratio {row['ratio']:.2f}")
    view_rows, probs = pep734_views(s, impl)
    rows += view_rows
    problems += probs
    for row in view_rows:
        progress(f"{row['name']}: ours {row['ours']:.1f} us, theirs {row['theirs']:.1f} us")
    notes = [
        "PEP 734 rows: ours = `subinterpreters.interpreters`, theirs = `concurrent.interpreters` "
        "(3.14+) or PyPI's `backports.interpreters` (3.11 to 3.13, pure Python over CPython's "
        "private modules; on 3.14+ it only re-exports the standard library's). Round trip: the "
        "subinterpreter runs `while True: x = qin.get(); ...; qout.put(x)` through "
        "`interp.exec` in a thread; the main puts an int and blocks in `qout.get()`; the "
        "row is the median latency of one trip (theirs poll: their blocking `get()` sleeps "
        "10 ms between tries). put+get: one `put(42)` then one `get()` on one queue in the "
        "main interpreter. call: `interp.call(f, 1)` with `f` a module-level function of "
        "bench/bench_funcs.py (on the subinterpreter's sys.path). 100 MiB: `q.put(obj)` in the "
        "main then `interp.exec('x = q.get()...')`, timed together. memoryview: the same with "
        "a view of 100 MiB and of 1 MiB (each row the median over rounds of batch medians, the "
        "sizes interleaved); a side that refuses a memoryview is timed with `put(bytes(mv))`, "
        "the copy its users would have to make. The 100 MiB view's target: constant "
        f"time, i.e. our 100 MiB time / our 1 MiB time (paired per round) <= "
        f"{VIEW_CONST_TARGET:g}, and our median under {VIEW_TARGET_US:g} us.",
    ]
    return {"rows": rows, "problems": problems, "notes": notes}


# CPU-bound work, identical in every mode. `n`, `start_at` (a str: floats are not shareable
# before 3.13) and `_report(line)` are injected.
WORK_SCRIPT = """\
import time as _t
_start = float(start_at)

def _work(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total

while True:
    _d = _start - _t.perf_counter()
    if _d <= 0:
        break
    _t.sleep(_d)
_t0, _c0 = _t.perf_counter(), _t.thread_time()
_r = _work(n)
_c1, _t1 = _t.thread_time(), _t.perf_counter()
_report(f"{_t0!r} {_t1!r} {_c1 - _c0!r} {_r}")
"""
REPORT_FD = "import os as _os\n_report = lambda line: _os.write(fd, line.encode() + b'\\n')\n"
REPORT_PRINT = "_report = print\n"


def calibrate_work(seconds: float) -> int:
    ns: dict = {"start_at": "0", "n": 200_000}
    lines: list[str] = []
    ns["_report"] = lines.append
    best = float("inf")
    for _ in range(3):
        exec(WORK_SCRIPT, ns)
        t0, t1, _cpu, _r = lines[-1].split()
        best = min(best, float(t1) - float(t0))
    return max(1, int(ns["n"] * seconds / best))


def overlap(windows: list[tuple[float, float]]) -> float | None:
    """(sum of durations - union) / (sum of durations - longest): 0 serial, 1 fully concurrent."""
    if len(windows) < 2:
        return None
    durations = [b - a for a, b in windows]
    union, end = 0.0, float("-inf")
    for a, b in sorted(windows):
        if b > end:
            union += b - max(a, end)
            end = b
    denom = sum(durations) - max(durations)
    return (sum(durations) - union) / denom if denom > 0 else None


def run_interpreters(ad: adapters.Adapter, interps: list, n: int) -> list[str]:
    """One thread per (already created) interpreter runs WORK_SCRIPT; results via os.pipe."""
    pipes = [os.pipe() for _ in interps]
    start_at = time.perf_counter() + 0.05 + 0.01 * len(interps)
    errors: list[BaseException] = []

    def drive(interp, w: int) -> None:
        try:
            ad.run(interp, REPORT_FD + WORK_SCRIPT, {"n": n, "start_at": repr(start_at), "fd": w})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=drive, args=(i, w))
        for i, (_r, w) in zip(interps, pipes, strict=True)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    lines = []
    for r, w in pipes:
        os.close(w)
        with os.fdopen(r) as f:
            lines.append(f.read().strip())
    if errors:
        raise RuntimeError(f"{ad.key}: a CPU worker failed: {errors[0]!r}")
    return lines


def run_threads(workers: int, n: int) -> list[str]:
    lines: list[str] = []
    start_at = time.perf_counter() + 0.05 + 0.01 * workers
    code = compile(WORK_SCRIPT, "<work>", "exec")

    def one() -> None:
        exec(code, {"n": n, "start_at": repr(start_at), "_report": lines.append})

    threads = [threading.Thread(target=one) for _ in range(workers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return lines


def run_processes(workers: int, n: int) -> list[str]:
    start_at = time.perf_counter() + 0.1 + 0.05 * workers
    src = f"n = {n}\nstart_at = {start_at!r}\n" + REPORT_PRINT + WORK_SCRIPT
    # -S -E: no site (the 3.11 .pth imports much), same as a bare worker process would be.
    procs = [
        subprocess.Popen([sys.executable, "-S", "-E", "-c", src], stdout=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    lines = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"worker process exited with {p.returncode}")
        lines.append(out.strip())
    return lines


def expected_work(n: int) -> int:
    """What _work(n) returns: i*i % 7 repeats with period 7 (0, 1, 4, 2, 2, 4, 1)."""
    period = (0, 1, 4, 2, 2, 4, 1)
    return n // 7 * sum(period) + sum(period[: n % 7])


def summarize(lines: list[str], n: int, mode: str) -> dict[str, float | None]:
    for line in lines:
        if int(line.split()[3]) != expected_work(n):
            raise RuntimeError(
                f"cpu ({mode}): a worker computed {line.split()[3]}, not {expected_work(n)}"
            )
    recs = [tuple(float(x) for x in line.split()[:3]) for line in lines]
    windows = [(a, b) for a, b, _c in recs]
    wall = max(b for _a, b in windows) - min(a for a, _b in windows)
    cpu = sum(c for _a, _b, c in recs)
    return {
        "wall": wall,
        "cpu_per_wall": cpu / wall if wall > 0 else None,
        "overlap": overlap(windows),
        "mean_worker": statistics.mean(b - a for a, b in windows),
    }


def bench_cpu(s: Settings, impl: dict[str, adapters.Adapter]) -> dict:
    n = calibrate_work(s.cpu_seconds)
    progress(f"cpu: {n} iterations per worker (~{s.cpu_seconds} s)")
    modes = ["ours", "theirs", "threads", "processes"]
    raw: dict[str, dict[int, list[dict]]] = {m: {w: [] for w in s.cpu_workers} for m in modes}
    for rep in range(s.cpu_repeats):
        order = modes if rep % 2 == 0 else modes[::-1]
        for workers in s.cpu_workers:
            for mode in order:
                if mode in impl:
                    ad = impl[mode]
                    interps = [ad.create() for _ in range(workers)]  # on this (the main) thread
                    try:
                        lines = run_interpreters(ad, interps, n)
                    finally:
                        for i in interps:
                            ad.destroy(i)
                        del interps
                elif mode == "threads":
                    lines = run_threads(workers, n)
                else:
                    lines = run_processes(workers, n)
                raw[mode][workers].append(summarize(lines, n, mode))
        progress(f"cpu: repeat {rep + 1}/{s.cpu_repeats} done")

    def med(xs: list[dict], key: str) -> float | None:
        vals = [x[key] for x in xs if x[key] is not None]
        return statistics.median(vals) if vals else None

    table = []
    for workers in s.cpu_workers:
        for mode in modes:
            xs = raw[mode][workers]
            table.append(
                {
                    "mode": mode,
                    "workers": workers,
                    "wall": med(xs, "wall"),
                    "cpu_per_wall": med(xs, "cpu_per_wall"),
                    "overlap": med(xs, "overlap"),
                    "mean_worker": med(xs, "mean_worker"),
                    "repeats": len(xs),
                }
            )
    rows = []
    for workers in s.cpu_workers:
        samples = {m: [x["wall"] for x in raw[m][workers]] for m in ("ours", "theirs")}
        label = f"{workers} interpreter" + ("s" if workers > 1 else "")
        rows.append(ratio_row(f"cpu-bound wall, {label}", "s", 1, samples))
    notes = [
        f"Each worker runs the same pure-Python loop (~{s.cpu_seconds} s of CPU alone). "
        "wall = first start to last end of the work windows (creation excluded); cpu/wall = "
        "sum of the workers' thread CPU time / wall (about the number of cores kept busy); "
        "overlap = (sum of durations - union of windows) / (sum of durations - longest), "
        "0 = serialized, 1 = fully concurrent. Overlap alone does not show parallelism: "
        "GIL-sharing threads interleave every 5 ms, so their windows overlap while cpu/wall "
        "stays near 1.",
        f"Interpreters are created and destroyed on the main thread; one thread per interpreter "
        f"runs the work. Processes are `{os.path.basename(sys.executable)} -S -E -c`.",
    ]
    if sys.version_info < (3, 12):
        notes.append(
            "3.11 has one GIL for all interpreters: interpreters give isolation, not "
            "parallelism; expect cpu/wall near 1 for both modules, like threads."
        )
        ovl = [r["overlap"] for r in table if r["mode"] in impl and r["overlap"] is not None]
        if ovl and max(ovl) < 0.2:
            notes.append(
                "3.11, observed: interpreters of either module ran one after another (overlap "
                f"at most {max(ovl):.2f}), unlike threads, which share the GIL every 5 ms: a "
                "thread waiting for the GIL asks its own interpreter to drop it, and a busy "
                "thread of another interpreter never sees the request (docs/threads.md)."
            )
    return {"rows": rows, "cpu_table": table, "iterations": n, "notes": notes}


def statm_rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_child(key: str, count: int) -> None:
    """In a fresh process: RSS growth per live interpreter; prints JSON."""
    impl = adapters.both()
    ad = impl[key]
    ad.destroy(ad.create())  # first-use costs (imports, caches) out of the measure
    gc.collect()
    rss0 = statm_rss()
    interps = [ad.create() for _ in range(count)]
    gc.collect()
    rss1 = statm_rss()
    for i in interps:
        ad.destroy(i)
    print(json.dumps({"per_interp": (rss1 - rss0) / count, "rss0": rss0, "rss1": rss1}))


def bench_memory(s: Settings, impl: dict[str, adapters.Adapter]) -> dict:
    def measure(key: str):
        def once() -> float:
            out = subprocess.run(
                [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--mem-child",
                    key,
                    "--mem-n",
                    str(s.mem_n),
                ],
                capture_output=True,
                text=True,
                timeout=300,
            )
            if out.returncode != 0:
                raise RuntimeError(
                    f"memory child ({key}) exited with {out.returncode}: {out.stderr}"
                )
            return json.loads(out.stdout.strip().splitlines()[-1])["per_interp"]

        return once

    samples = interleave(s.mem_repeats, {k: measure(k) for k in impl})
    row = ratio_row("memory per live interpreter", "KiB", 1 / 1024, samples, count=s.mem_n)
    progress(f"memory: ratio {row['ratio']:.2f}")
    notes = [
        f"RSS growth (/proc/self/statm) after creating {s.mem_n} interpreters, divided by "
        f"{s.mem_n}, in a fresh process per sample after one warm-up create+destroy."
    ]
    return {"rows": [row], "notes": notes}


RUNNERS = {
    "create_destroy": bench_create_destroy,
    "run_string": bench_run_string,
    "send_recv": bench_send_recv,
    "roundtrip": bench_roundtrip,
    "pep734": bench_pep734,
    "cpu": bench_cpu,
    "memory": bench_memory,
}


# ---------------------------------------------------------------------------------------------
# Driver


def child(name: str, s: Settings, out_path: str, payload: str | None) -> None:
    """Run one benchmark in this process and write its result as JSON to out_path."""
    faulthandler.enable()
    # A hang (in either module) dumps every thread's stack and ends the child.
    faulthandler.dump_traceback_later(s.watchdog_s, exit=True)
    t0 = time.perf_counter()
    if name == "pool":
        import bench_pool

        result = bench_pool.run(s.quick)  # sets result["impl"] itself
    elif name == "stop":
        import bench_stop

        result = bench_stop.run(s.quick)  # sets result["impl"] itself
    elif name == "lifecycle":
        import bench_lifecycle

        result = bench_lifecycle.run(s.quick)  # names its sides in its rows
    else:
        if name == "pep734":
            impl, why = adapters.pep734_both()
            result = bench_pep734(s, impl, why)
        elif name == "send_recv":
            impl = adapters.both()
            result = bench_send_recv(s, impl, payload)
        else:
            impl = adapters.both()
            result = RUNNERS[name](s, impl)
        result["impl"] = {k: ad.label for k, ad in impl.items()}
    result["seconds"] = time.perf_counter() - t0
    result["measured_at"] = now()
    result["ours_build"] = ours_build()
    for row in result["rows"]:
        row["measured_at"] = result["measured_at"]
    with open(out_path, "w") as f:
        json.dump(result, f)
    faulthandler.cancel_dump_traceback_later()


def run_child(name: str, args: argparse.Namespace, s: Settings) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        path = tmp.name
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--child-out", path]
    if args.quick:
        cmd.append("--quick")
    if args.payload:
        cmd += ["--payload", args.payload]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, timeout=s.watchdog_s + 60)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        rc = "timeout"
    try:
        if rc == 0:
            with open(path) as f:
                return json.load(f)
    finally:
        os.unlink(path)
    return {
        "error": f"the benchmark child exited with {rc} (see its stderr above)",
        "seconds": time.perf_counter() - t0,
        "measured_at": now(),
        "rows": [],
    }


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def git_rev() -> str:
    try:
        rev = subprocess.run(
            ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + (" (with uncommitted changes)" if dirty else "")


def machine() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "memory_bytes": mem,
        "platform": platform.platform(),
    }


def ours_build() -> str:
    """Which build of our module this process imported: hash and time of the .so."""
    import subinterpreters.lowlevel as ours

    with open(ours.__file__, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    mtime = datetime.datetime.fromtimestamp(os.path.getmtime(ours.__file__), datetime.UTC)
    return f"{digest} built {mtime.isoformat(timespec='seconds')}"


def meta(args: argparse.Namespace) -> dict[str, object]:
    import subinterpreters.lowlevel as ours

    return {
        "python": platform.python_version(),
        "python_full": sys.version,
        "executable": sys.executable,
        "ours_file": ours.__file__,
        "ours_build": ours_build(),
        "git": git_rev(),
        "date": now(),
        "quick": args.quick,
        "machine": machine(),
        "loadavg_start": os.getloadavg(),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="examples: bench.py --quick; bench.py --only send_recv --payload MiB; "
        "bench.py --only cpu,memory --json /tmp/x.json. Then: report.py -o BENCHMARKS.md",
    )
    p.add_argument("--quick", action="store_true", help="short run: fewer, shorter rounds")
    p.add_argument(
        "--only", help=f"comma-separated benchmarks to run (default all): {', '.join(BENCHMARKS)}"
    )
    p.add_argument("--payload", help="send_recv: only payloads whose name contains this ('1 MiB')")
    p.add_argument(
        "--json",
        help="output file (default bench/results/py3XX.json). With --only, results already in "
        "the file for the other benchmarks are kept.",
    )
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    p.add_argument("--mem-child", help=argparse.SUPPRESS)
    p.add_argument("--mem-n", type=int, default=10, help=argparse.SUPPRESS)
    args = p.parse_args()
    s = Settings(args.quick)

    if args.mem_child:
        memory_child(args.mem_child, args.mem_n)
        return
    if args.child:
        child(args.child, s, args.child_out, args.payload)
        return

    names = list(BENCHMARKS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in BENCHMARKS]
        if unknown:
            p.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    out_path = args.json or os.path.join(
        HERE, "results", f"py{sys.version_info[0]}{sys.version_info[1]}.json"
    )
    data: dict = {"meta": meta(args), "benchmarks": {}}
    if args.only and os.path.exists(out_path):
        with open(out_path) as f:
            old = json.load(f)
        if old.get("meta", {}).get("python") == data["meta"]["python"]:
            data["benchmarks"] = old.get("benchmarks", {})
    print(
        f"CPython {data['meta']['python']}: benchmarks {', '.join(names)}"
        f"{' (quick)' if args.quick else ''}",
        file=sys.stderr,
        flush=True,
    )
    t0 = time.perf_counter()
    for name in names:
        print(f"- {name}", file=sys.stderr, flush=True)
        result = run_child(name, args, s)
        result["quick"] = args.quick
        old = data["benchmarks"].get(name)
        if name == "send_recv" and args.payload and old and not result.get("error"):
            # Only some payloads ran: keep the other rows of the earlier run.
            fresh = {r["name"] for r in result["rows"]}
            kept = [r for r in old.get("rows", []) if r["name"] not in fresh]
            result["rows"] = sorted(kept + result["rows"], key=payload_order)
            result["problems"] = old.get("problems", []) + result.get("problems", [])
        data["benchmarks"][name] = result
        progress(f"{name}: {result['seconds']:.1f} s")
    data["meta"]["loadavg_end"] = os.getloadavg()
    data["meta"]["seconds"] = time.perf_counter() - t0
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(data, f, indent=1)
    import report

    print(report.version_section(data), flush=True)
    print(f"wrote {out_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
