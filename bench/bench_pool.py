"""Pools and asyncio: our InterpreterPoolExecutor against ProcessPoolExecutor and, on
3.14+, the standard library's concurrent.futures.InterpreterPoolExecutor, in one process.

Part of `make bench` (bench.py's benchmark "pool", results in bench/results/py3XX.json and the
"Pools and asyncio" section of BENCHMARKS.md). Alone, it prints its results:

    .venv/py312/bin/python bench/bench_pool.py [--quick] [--json out.json]

What it measures, each side warm (pools created once, reused for every round), sides interleaved
round after round (A B C, C B A, ...), medians over rounds:

- trivial-task throughput: submit N calls of a module-level ``ident(x)`` (bench_funcs.py), then
  wait for all; 2 workers each; ours / theirs as the median of per-round speed-ups;
- a CPU-bound ``map`` (8 items of a pure-Python loop) on 1 worker and on 2 workers of ours: the
  speed-up, with our process's CPU time / wall during the 2-worker run (2.0 = both workers ran
  all the time) and the other processes' CPU time / wall over the same window, from /proc/stat
  (our machines are shared: a low speed-up with others busy is a busy machine, a low speed-up
  with our CPU/wall near 1 and the others idle is a lack of parallelism);
- asyncio round trip: the median latency of ``await pool.call_async(ident, j)``, next to
  ``await interp.call_async(...)``, and ``loop.run_in_executor`` with a ProcessPoolExecutor and
  (3.14+) the stdlib's InterpreterPoolExecutor.
"""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import bench_funcs
from timing import progress, rounds, run_batch, spread

HERE = os.path.dirname(os.path.abspath(__file__))
WORKERS = 2
# The pool's targets.
TPUT_VS_PROCS = 5.0  # our trivial-task throughput / ProcessPoolExecutor's, at least
TPUT_VS_STDLIB = 3.0  # ... / 3.14's stdlib InterpreterPoolExecutor's, at least
CPU_SPEEDUP = 1.8  # CPU-bound map, 2 workers / 1 worker (3.12+), at least
AIO_US = 50.0  # median asyncio round trip, below
# And the codec's: lists of small dicts echoed through the pool, ours / theirs per task, at most;
# and the native codec's encode+decode of JSON-like data / pickle.dumps+loads, at most.
ECHO_VS_PROCS = 0.6
ECHO_VS_STDLIB = 0.5
CODEC_VS_PICKLE = 0.7
ECHO_TASKS, ECHO_DICTS = 40, 5000
LABELS = {
    "ours": "subinterpreters.futures.InterpreterPoolExecutor",
    "procs": "concurrent.futures.ProcessPoolExecutor (forkserver)",
    "stdlib": "concurrent.futures.InterpreterPoolExecutor",
}


class Settings:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.tput_rounds = 3 if quick else 7  # interleaved rounds of each side
        self.tput_s = 0.1 if quick else 0.25  # one side's round
        self.cpu_item_s = 0.04 if quick else 0.1  # one map item, alone
        self.cpu_items = 8
        self.cpu_repeats = 3 if quick else 7  # 1-worker and 2-worker runs each, interleaved
        self.aio_rounds = 3 if quick else 5
        self.aio_s = 0.08 if quick else 0.2  # one side's round of round trips
        self.echo_rounds = 3 if quick else 5
        self.codec_rounds = 5 if quick else 11


def make_pools(problems: list[str]) -> dict:
    from subinterpreters.futures import InterpreterPoolExecutor

    pools = {
        "ours": InterpreterPoolExecutor(WORKERS),
        # forkserver (3.14's default on Linux) everywhere: fork() of a process running threads
        # in interpreters is unsafe (and deprecated since 3.12).
        "procs": ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("forkserver")),
    }
    if sys.version_info >= (3, 14):
        try:
            from concurrent.futures import InterpreterPoolExecutor as Stdlib

            pools["stdlib"] = Stdlib(WORKERS)
        except ImportError as exc:
            problems.append(f"no stdlib InterpreterPoolExecutor: {exc}")
    for k, pool in list(pools.items()):  # warm: every worker started, the function imported
        try:
            got = list(pool.map(bench_funcs.ident, range(200)))
            if got != list(range(200)):
                raise RuntimeError(f"map(ident, range(200)) gave {got[:5]}...")
        except Exception as exc:
            problems.append(f"{LABELS[k]}: warm-up failed: {exc!r}")
            pool.shutdown(cancel_futures=True)
            del pools[k]
    return pools


# -- trivial-task throughput --------------------------------------------------------------------


def per_task(pool, n: int) -> float:
    """Seconds per task: submit n trivial tasks, then wait for every result."""
    ident = bench_funcs.ident
    took, results = run_batch(pool, [(ident, (i,)) for i in range(n)])
    if results[-1] != n - 1:
        raise RuntimeError(f"the last trivial task returned {results[-1]!r}, not {n - 1}")
    return took / n


def bench_throughput(s: Settings, pools: dict) -> dict:
    sizes = {}
    for k, pool in pools.items():
        per_task(pool, 200)  # warm-up
        pilot = max(per_task(pool, 500), 1e-7)
        sizes[k] = max(200, min(300_000, int(s.tput_s / pilot)))
    samples = rounds(
        s.tput_rounds, {k: (lambda p=p, n=sizes[k]: per_task(p, n)) for k, p in pools.items()}
    )
    out: dict = {
        "tasks_per_s": {k: 1 / statistics.median(v) for k, v in samples.items()},
        "tasks": sizes,
        "rounds": s.tput_rounds,
        "samples_us": {k: [x * 1e6 for x in v] for k, v in samples.items()},
    }
    for k in ("procs", "stdlib"):
        if k in samples and "ours" in samples:
            # Per round: their time per task / ours (adjacent batches: drift cancels).
            out[f"vs_{k}"] = spread(
                [t / o for o, t in zip(samples["ours"], samples[k], strict=True)]
            )
    return out


# -- ordinary data through the pool, and the codec beside pickle ------------------------------


def json_like(n: int) -> list:
    """A list of n small dicts, as JSON would give them (str keys; str, int, float, bool,
    None and list values)."""
    return [
        {
            "id": i,
            "name": f"item {i}",
            "price": i * 0.25,
            "tags": ["a", "b"],
            "ok": i % 2 == 0,
            "note": None,
        }
        for i in range(n)
    ]


def echo_per_task(pool, data: list) -> float:
    """Seconds per task: ECHO_TASKS echoes of data (each crosses twice), all in flight.

    The heap is collected first, untimed: the garbage the side before left (its echoed lists)
    would otherwise be collected on this side's time, whichever side that is. The collections
    each side's own objects cause stay in its time."""
    ident = bench_funcs.ident
    gc.collect()
    t0 = time.perf_counter()
    fs = [pool.submit(ident, data) for _ in range(ECHO_TASKS)]
    for f in fs:
        back = f.result()
    took = time.perf_counter() - t0
    if back != data:
        raise RuntimeError("an echoed list came back different")
    return took / ECHO_TASKS


def bench_echo(s: Settings, pools: dict) -> dict:
    data = json_like(ECHO_DICTS)
    for pool in pools.values():
        echo_per_task(pool, data)  # warm-up
    samples = rounds(
        s.echo_rounds, {k: (lambda p=p: echo_per_task(p, data)) for k, p in pools.items()}
    )
    out: dict = {
        "ms_per_task": {k: statistics.median(v) * 1e3 for k, v in samples.items()},
        "rounds": s.echo_rounds,
    }
    for k in ("procs", "stdlib"):
        if k in samples and "ours" in samples:
            # Per round: our time per task / theirs (< 1: we are faster).
            out[f"vs_{k}"] = spread(
                [o / t for o, t in zip(samples["ours"], samples[k], strict=True)]
            )
    return out


def bench_codec(s: Settings) -> dict:
    """encode+decode of json_like(1000) through the native codec against pickle's."""
    import pickle

    from subinterpreters import lowlevel

    data = json_like(1000)
    enc, dec = lowlevel._dumps, lowlevel._loads
    if dec(enc(data)) != data:
        raise RuntimeError("the native codec changed the data")

    def timed(f) -> float:
        t0 = time.perf_counter()
        for _ in range(20):
            f()
        return (time.perf_counter() - t0) / 20

    sides = {
        "ours": lambda: timed(lambda: dec(enc(data))),
        "pickle": lambda: timed(lambda: pickle.loads(pickle.dumps(data, 5))),
    }
    for f in sides.values():
        f()
    samples = rounds(s.codec_rounds, sides)
    return {
        "ms": {k: statistics.median(v) * 1e3 for k, v in samples.items()},
        "vs_pickle": spread(
            [o / t for o, t in zip(samples["ours"], samples["pickle"], strict=True)]
        ),
        "rounds": s.codec_rounds,
    }


# -- CPU-bound map, 1 worker against 2 ----------------------------------------------------------


def busy_seconds() -> float | None:
    """All CPUs' non-idle time so far (user, nice, system, irq, softirq, steal), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def others_meter():
    """Start measuring; the returned function gives every other process's CPU time / wall since."""
    b0, c0, t0 = busy_seconds(), time.process_time(), time.perf_counter()

    def stop() -> float | None:
        b1, c1, t1 = busy_seconds(), time.process_time(), time.perf_counter()
        if b0 is None or b1 is None or t1 <= t0:
            return None
        return max(0.0, (b1 - b0) - (c1 - c0)) / (t1 - t0)

    return stop


def cpu_run(pool, items: int, size: int, expect: int) -> dict:
    b0, c0, t0 = busy_seconds(), time.process_time(), time.perf_counter()
    got = list(pool.map(bench_funcs.burn, [size] * items))
    t1, c1, b1 = time.perf_counter(), time.process_time(), busy_seconds()
    if got != [expect] * items:
        raise RuntimeError(f"burn({size}) gave {got[0]!r}, not {expect!r}")
    wall, cpu = t1 - t0, c1 - c0
    others = None
    if b0 is not None and b1 is not None:
        others = max(0.0, (b1 - b0) - cpu) / wall
    return {"wall": wall, "cpu_per_wall": cpu / wall, "others_per_wall": others}


def bench_cpu_map(s: Settings) -> dict:
    from subinterpreters.futures import InterpreterPoolExecutor

    n = 200_000
    t0 = time.perf_counter()
    expect = bench_funcs.burn(n)
    size = max(1000, int(n * s.cpu_item_s / (time.perf_counter() - t0)))
    expect = bench_funcs.burn(size)
    pools = {1: InterpreterPoolExecutor(1), 2: InterpreterPoolExecutor(2)}
    try:
        for pool in pools.values():  # warm: the workers' interpreters exist
            list(pool.map(bench_funcs.burn, [10] * 4))
        samples = rounds(
            s.cpu_repeats,
            {w: (lambda p=p: cpu_run(p, s.cpu_items, size, expect)) for w, p in pools.items()},
        )
    finally:
        for pool in pools.values():
            pool.shutdown()

    def med(w: int, key: str) -> float | None:
        xs = [x[key] for x in samples[w] if x[key] is not None]
        return statistics.median(xs) if xs else None

    return {
        "items": s.cpu_items,
        "size": size,
        "repeats": s.cpu_repeats,
        "wall_1": med(1, "wall"),
        "wall_2": med(2, "wall"),
        "cpu_per_wall_1": med(1, "cpu_per_wall"),
        "cpu_per_wall_2": med(2, "cpu_per_wall"),
        "others_per_wall_2": med(2, "others_per_wall"),
        # Per repeat: the 1-worker wall / the 2-worker wall measured next to it.
        "speedup": spread(
            [a["wall"] / b["wall"] for a, b in zip(samples[1], samples[2], strict=True)]
        ),
        "runs": {str(w): v for w, v in samples.items()},
    }


# -- asyncio round trips ------------------------------------------------------------------------


async def trips(call, n: int) -> float:
    """Median latency of n awaited calls of ident(j)."""
    perf = time.perf_counter
    lat = []
    for j in range(n):
        t0 = perf()
        x = await call(j)
        lat.append(perf() - t0)
        if x != j:
            raise RuntimeError(f"round trip: sent {j!r}, got back {x!r}")
    return statistics.median(lat)


class PingPong:
    """The machine's own wake-up round trip, for scale: two plain threads of this interpreter
    bounce one byte over two pipes (each side blocked in os.read, the GIL released). Every
    cross-thread round trip pays at least this; on an idle virtual machine it is mostly the
    wake-up of an idle CPU."""

    def __init__(self) -> None:
        self.ping_r, self.ping_w = os.pipe()
        self.pong_r, self.pong_w = os.pipe()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            b = os.read(self.ping_r, 1)
            if b != b"p":
                return
            os.write(self.pong_w, b)

    async def trip(self, j: int) -> int:
        os.write(self.ping_w, b"p")
        if os.read(self.pong_r, 1) != b"p":
            raise RuntimeError("ping-pong: lost the other thread")
        return j

    def close(self) -> None:
        os.write(self.ping_w, b"q")
        self.thread.join(10)
        for fd in (self.ping_r, self.ping_w, self.pong_r, self.pong_w):
            os.close(fd)


async def aio_sides(s: Settings, pools: dict, interp) -> dict:
    loop = asyncio.get_running_loop()
    ident = bench_funcs.ident
    calls = {"ours": lambda j: pools["ours"].call_async(ident, j)}
    if interp is not None:
        calls["call_async"] = lambda j: interp.call_async(ident, j)
    for k in ("procs", "stdlib"):
        if k in pools:
            calls[k] = lambda j, p=pools[k]: loop.run_in_executor(p, ident, j)
    pingpong = PingPong()
    calls["wakeup"] = pingpong.trip
    try:
        return await aio_rounds(s, calls)
    finally:
        pingpong.close()


async def aio_rounds(s: Settings, calls: dict) -> dict:
    sizes = {}
    for k, call in calls.items():
        await trips(call, 50)  # warm-up
        pilot = max(await trips(call, 50), 1e-6)
        sizes[k] = max(50, min(20_000, int(s.aio_s / pilot)))
    samples: dict[str, list[float]] = {k: [] for k in calls}
    keys = list(calls)
    for r in range(s.aio_rounds):
        for k in keys if r % 2 == 0 else keys[::-1]:
            samples[k].append(await trips(calls[k], sizes[k]))
    return {
        "median_us": {k: statistics.median(v) * 1e6 for k, v in samples.items()},
        "trips": sizes,
        "rounds": s.aio_rounds,
        "samples_us": {k: [x * 1e6 for x in v] for k, v in samples.items()},
    }


def bench_aio(s: Settings, pools: dict, problems: list[str]) -> dict:
    from subinterpreters import interpreters

    interp = interpreters.create()
    try:
        try:
            interp.exec(f"import sys; sys.path.insert(0, {HERE!r})")
        except Exception as exc:
            problems.append(f"Interpreter.call_async: setting up the interpreter failed: {exc!r}")
            interp.close()
            interp = None
        return asyncio.run(aio_sides(s, pools, interp))
    finally:
        if interp is not None:
            interp.close()


# -- all of it ----------------------------------------------------------------------------------


def targets(r: dict) -> list[dict]:
    """The pool's speed targets, each met (True), missed (False) or not applicable (None, why)."""
    v = sys.version_info[:2]
    tp, cm, ai = r["throughput"], r["cpu_map"], r["aio"]
    out = []

    def add(name: str, target: str, value: str, ok: bool | None, na: str | None = None) -> None:
        out.append({"name": name, "target": target, "value": value, "met": ok, "na": na})

    vs = tp.get("vs_procs")
    add(
        "trivial-task throughput vs ProcessPoolExecutor",
        f"≥ {TPUT_VS_PROCS:g}×",
        f"{vs['median']:.1f}×" if vs else "n/a",
        vs["median"] >= TPUT_VS_PROCS if vs else None,
        None if vs else "not measured",
    )
    vs = tp.get("vs_stdlib")
    add(
        "trivial-task throughput vs stdlib InterpreterPoolExecutor",
        f"≥ {TPUT_VS_STDLIB:g}×",
        f"{vs['median']:.1f}×" if vs else "n/a",
        vs["median"] >= TPUT_VS_STDLIB if vs else None,
        None if vs else ("n/a (no stdlib pool)" if v < (3, 14) else "not measured"),
    )
    sp = cm["speedup"]["median"]
    # CPU per item on 1 and on 2 workers: when the second is larger, the machine ran our
    # workers slower side by side (a shared host), which no pool can make up for.
    per_item = {
        w: statistics.median(x["wall"] * x["cpu_per_wall"] / cm["items"] for x in cm["runs"][w])
        for w in ("1", "2")
    }
    add(
        "CPU-bound map, 2 workers / 1 worker",
        f"≥ {CPU_SPEEDUP:g}× (3.12+)",
        f"{sp:.2f}× (CPU per item {per_item['1'] * 1e3:.0f} / {per_item['2'] * 1e3:.0f} ms on "
        f"1 / 2 workers; CPU/wall {cm['cpu_per_wall_2']:.2f})",
        sp >= CPU_SPEEDUP if v >= (3, 12) else None,
        "n/a (3.11: one GIL)" if v < (3, 12) else None,
    )
    ec = r.get("echo", {})
    for k, bound, label in (
        ("procs", ECHO_VS_PROCS, "ProcessPoolExecutor"),
        ("stdlib", ECHO_VS_STDLIB, "stdlib InterpreterPoolExecutor"),
    ):
        vs = ec.get(f"vs_{k}")
        add(
            f"{ECHO_DICTS:,}-dict lists echoed, ours / {label} per task",
            f"≤ {bound:g}×",
            f"{vs['median']:.2f}×" if vs else "n/a",
            vs["median"] <= bound if vs else None,
            None if vs else ("n/a (no stdlib pool)" if k == "stdlib" else "not measured"),
        )
    cd = r.get("codec", {}).get("vs_pickle")
    add(
        "encode+decode of JSON-like data, native codec / pickle.dumps+loads",
        f"≤ {CODEC_VS_PICKLE:g}×",
        f"{cd['median']:.2f}×" if cd else "n/a",
        cd["median"] <= CODEC_VS_PICKLE if cd else None,
        None if cd else "not measured",
    )
    us = ai["median_us"].get("ours")
    wake = ai["median_us"].get("wakeup")
    add(
        "asyncio round trip, await pool.call_async(f, x) (median)",
        f"< {AIO_US:g} µs",
        (f"{us:.1f} µs" if us is not None else "n/a")
        + (f"; machine's wake-up round trip {wake:.1f} µs" if wake is not None else ""),
        us < AIO_US if us is not None else None,
        None if us is not None else "not measured",
    )
    return out


def run(quick: bool) -> dict:
    s = Settings(quick)
    problems: list[str] = []
    pools = make_pools(problems)
    try:
        others = others_meter()
        tp = bench_throughput(s, pools)
        tp["others_per_wall"] = others()
        progress(
            "pool throughput: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in tp["tasks_per_s"].items())
        )
        ec = bench_echo(s, pools)
        progress(
            "lists of dicts echoed: "
            + ", ".join(f"{k} {v:.1f} ms/task" for k, v in ec["ms_per_task"].items())
        )
        others = others_meter()
        ai = bench_aio(s, pools, problems)
        ai["others_per_wall"] = others()
        progress(
            "asyncio round trip: "
            + ", ".join(f"{k} {v:.1f} us" for k, v in ai["median_us"].items())
        )
    finally:
        for pool in pools.values():
            pool.shutdown(cancel_futures=True)
    cm = bench_cpu_map(s)
    progress(
        f"cpu map: 1 worker {cm['wall_1']:.2f} s, 2 workers {cm['wall_2']:.2f} s, speed-up "
        f"{cm['speedup']['median']:.2f}, cpu/wall {cm['cpu_per_wall_2']:.2f}"
    )
    cd = bench_codec(s)
    progress(f"codec vs pickle: {cd['vs_pickle']['median']:.2f}")
    result = {
        "throughput": tp,
        "cpu_map": cm,
        "aio": ai,
        "echo": ec,
        "codec": cd,
        "workers": WORKERS,
    }
    notes = [
        "Pools: ours = `subinterpreters.futures.InterpreterPoolExecutor`, procs = "
        "`ProcessPoolExecutor` (forkserver start method on every version), stdlib = 3.14's "
        f"`concurrent.futures.InterpreterPoolExecutor`; {WORKERS} workers each, created once "
        "and warmed up, sides interleaved round after round, medians over rounds. Throughput: "
        "submit N calls of a module-level `ident(x)`, then wait for all; the speed-up is the "
        "median over rounds of their time per task / ours. CPU-bound map: "
        f"`pool.map(burn, [n] * {s.cpu_items})` (pure-Python loop) on 1 worker and on 2 "
        "workers of ours; the speed-up is the median over repeats of wall(1) / wall(2). "
        "CPU/wall: our process's CPU time / wall during the 2-worker run (2 = both workers "
        "busy all along); others: every other process's CPU time / wall over the same window "
        "(/proc/stat), so that a busy shared machine can be told from a lack of parallelism; "
        "the same is given for the throughput and asyncio phases as a whole. "
        "asyncio: the median latency of one `await pool.call_async(ident, j)`, next to "
        "`await interp.call_async(ident, j)` (a plain Interpreter: its call-runner thread "
        "enters it for the call) and `loop.run_in_executor(pool, ident, j)` for the others; "
        "and, for scale, the machine's wake-up round trip: two plain threads bounce a byte "
        "over two pipes, each blocked in `os.read` (on an idle virtual machine, waking an idle CPU "
        "costs tens of µs, and every cross-thread round trip pays it twice).",
        f"Echo: {ECHO_TASKS} tasks `ident(data)` in flight, data a list of {ECHO_DICTS:,} "
        "small JSON-like dicts (it crosses both ways); the ratio is the median over rounds of "
        "our time per task / theirs. Codec: `lowlevel._loads(lowlevel._dumps(x))` against "
        "`pickle.loads(pickle.dumps(x, 5))` for 1,000 such dicts, in this process.",
    ]
    return {
        "rows": [],
        "pool": result,
        "targets": targets(result),
        "impl": {k: LABELS[k] for k in ("ours", "procs", "stdlib") if k in tp["tasks_per_s"]},
        "notes": notes,
        "problems": problems,
    }


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short run")
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args()
    t0 = time.perf_counter()
    result = run(args.quick)
    result["seconds"] = time.perf_counter() - t0
    print(f"CPython {sys.version.split()[0]}, {WORKERS} workers, {result['seconds']:.1f} s")
    tp = result["pool"]["throughput"]["tasks_per_s"]
    for k, v in tp.items():
        print(f"  {LABELS[k]}: {v:,.0f} tasks/s")
    for k, v in result["pool"]["aio"]["median_us"].items():
        print(f"  asyncio round trip, {k}: {v:.1f} us")
    for t in result["targets"]:
        verdict = t["na"] or ("met" if t["met"] else "MISSED")
        print(f"  {t['name']}: {t['value']} (target {t['target']}): {verdict}")
    for prob in result["problems"]:
        print(f"  problem: {prob}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
