"""Real workloads: small real programs run by our InterpreterPoolExecutor against
serial execution, ThreadPoolExecutor, ProcessPoolExecutor and, on 3.14+, the standard library's
InterpreterPoolExecutor, 2 workers each, in one process, sides interleaved round after round
(A B C, C B A, ...), medians over 15 rounds (``--quick``: 2 rounds of quarter-size tasks).

Part of ``make bench`` (results in bench/results/workloads_py3XX.json, rendered with a chart into
the "Real workloads" section of BENCHMARKS.md by bench/report.py). Alone, it prints its results:

    .venv/py312/bin/python bench/workloads.py [--quick] [--json out.json]

The workloads (functions in bench/workload_funcs.py):

- CPU-bound, 16 tasks of some 20-40 ms each (per round: about 0.5 s serial): pure-Python
  primes, a small ray tracer (interleaved rows), JSON generate + parse, regex over generated
  text; and uneven task sizes (16 prime-counting tasks whose sizes spread 40x, 25 ms on
  average, in an order that only dispatch to the first idle worker balances). Tasks of tens
  of milliseconds make the per-task costs of each executor small beside the work, and 16 of
  them on 2 workers leave little idle time at the end of a round, so the medians measure how
  fast each side runs the work in parallel. For every side the run also records the CPU
  time it used (this process's threads, plus the worker processes of ProcessPoolExecutor)
  and the CPU time the rest of the machine used meanwhile (from /proc/stat, steal included):
  a speed-up over serial of 1.8 needs both cores, so a round that shared them with other
  work misses it for that reason alone;
- data in and out, per task: 1 MB ``str`` and 1 MB ``bytes`` as the argument (``len``) and as
  the result, a list of 200 and of 5,000 dicts in and out;
- trivial-task throughput (``ident(i)``, submitted then awaited);
- cheap-request latency: one request at a time (submit, wait) while a long task keeps one
  worker busy; p50 and p99;
- ``map`` over a 100,000-item generator (chunksize 500 where the executor uses it): items/s and
  the peak growth of resident memory during the run (this process, plus the workers' processes
  for ProcessPoolExecutor), sampled every 2 ms.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import workload_funcs as wf  # noqa: E402
from timing import percentile, progress, rounds, run_batch  # noqa: E402

WORKERS = 2
LABELS = {
    "serial": "serial (this thread)",
    "threads": "ThreadPoolExecutor",
    "procs": "ProcessPoolExecutor (forkserver)",
    "stdlib": "concurrent.futures.InterpreterPoolExecutor",
    "ours": "subinterpreters.futures.InterpreterPoolExecutor",
}
SHORT = {"serial": "serial", "threads": "threads", "procs": "processes", "stdlib": "stdlib pool"}
CPU = ("primes", "ray tracer", "JSON generate+parse", "regex over text", "uneven sizes (40x)")
DATA_1MB = ("1 MB str in", "1 MB str out", "1 MB bytes in", "1 MB bytes out")


class Serial:
    """An executor that runs each call at once, in the calling thread."""

    def submit(self, fn, /, *args):
        fut = Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:  # noqa: B036 - as an executor would report it
            fut.set_exception(exc)
        return fut

    def map(self, fn, *iterables, chunksize=1):
        return map(fn, *iterables)

    def shutdown(self, wait=True):
        pass


def make_sides(problems: list[str]) -> dict:
    from subinterpreters.futures import InterpreterPoolExecutor

    sides = {
        "serial": Serial(),
        "threads": ThreadPoolExecutor(WORKERS),
        # forkserver (3.14's default on Linux) everywhere: fork() of a process running threads
        # in interpreters is unsafe.
        "procs": ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("forkserver")),
        "ours": InterpreterPoolExecutor(WORKERS),
    }
    if sys.version_info >= (3, 14):
        try:
            from concurrent.futures import InterpreterPoolExecutor as Stdlib

            sides["stdlib"] = Stdlib(WORKERS)
        except ImportError as exc:
            problems.append(f"no stdlib InterpreterPoolExecutor: {exc}")
    for k, ex in list(sides.items()):  # warm: every worker started, the module imported
        try:
            fs = [ex.submit(wf.spin, 0.05) for _ in range(WORKERS)]
            [f.result() for f in fs]
            assert list(ex.map(wf.ident, range(100))) == list(range(100))
        except Exception as exc:
            problems.append(f"{LABELS[k]}: warm-up failed: {exc!r}")
            ex.shutdown()
            del sides[k]
    return sides


# CPU-bound tasks per round; each costs some 20-40 ms serially (a quarter with --quick).
CPU_TASKS = 16


def tasks_of(quick: bool) -> dict[str, list]:
    k = 4 if quick else 1
    n = CPU_TASKS
    # Primes near a million: consecutive ranges of one width cost nearly alike there.
    base = 1_000_000
    primes_w = 12_000 // k
    unit = 1_000 // k
    # 16 sizes from 1 to 40 units (184 in all), large and small alternating: handing each task
    # to the first idle worker gives both workers 92 units; dealing them out in turn, 157 and 27.
    spread = [40, 1, 30, 2, 24, 4, 20, 8, 16, 1, 12, 3, 10, 6, 5, 2]
    mb = 1_000_000
    s, b = "s" * mb, b"b" * mb
    d200, d5000 = wf.make_dicts(200), wf.make_dicts(5000)
    return {
        "primes": [
            (wf.count_primes, (base + i * primes_w, base + (i + 1) * primes_w)) for i in range(n)
        ],
        "ray tracer": [(wf.render_rows, (i, n, 320, 384 // k)) for i in range(n)],
        "JSON generate+parse": [(wf.json_roundtrip, (i, 3000 // k)) for i in range(n)],
        "regex over text": [(wf.regex_scan, (i, 2000 // k)) for i in range(n)],
        "uneven sizes (40x)": [(wf.count_primes, (base, base + w * unit)) for w in spread],
        "1 MB str in": [(wf.size_of, (s,))] * 20,
        "1 MB str out": [(wf.make_str, (mb,))] * 20,
        "1 MB bytes in": [(wf.size_of, (b,))] * 20,
        "1 MB bytes out": [(wf.make_bytes, (mb,))] * 20,
        "200 dicts in": [(wf.size_of, (d200,))] * 50,
        "200 dicts out": [(wf.make_dicts, (200,))] * 50,
        "5,000 dicts in": [(wf.size_of, (d5000,))] * 10,
        "5,000 dicts out": [(wf.make_dicts, (5000,))] * 10,
        "trivial tasks": [(wf.ident, (i,)) for i in range(2000 // k)],
    }


def summarize(results: list) -> object:
    """What must be equal across sides (big values by length only)."""
    return [r if isinstance(r, int) else len(r) for r in results]


CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def worker_pids(k: str, ex) -> list[int]:
    """The processes besides this one that run a side's tasks."""
    return list(getattr(ex, "_processes", {}) or {}) if k == "procs" else []


def cpu_seconds(pids: list[int]) -> float:
    """The CPU time used so far by this process (every thread) and processes ``pids``."""
    total = time.process_time()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def machine_busy() -> float | None:
    """CPU-seconds the machine's CPUs have been busy so far, every process's (and time the
    hypervisor gave to other machines: steal), or None where /proc/stat is not there."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal: all but idle and iowait
    return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK


def worker_threads(k: str, ex) -> list[str]:
    """The /proc schedstat files of the threads that run a side's tasks: the calling thread
    (serial), the pool's threads, or the main thread of each worker process."""
    if k == "serial":
        ids = [f"self/task/{threading.get_native_id()}"]
    elif k == "procs":
        ids = [str(pid) for pid in worker_pids(k, ex)]
    else:  # ThreadPoolExecutor, and both interpreter pools, keep their threads in _threads
        ids = [f"self/task/{t.native_id}" for t in getattr(ex, "_threads", ())]
    return [f"/proc/{i}/schedstat" for i in ids]


def sched_seconds(paths: list[str]) -> tuple[float, float] | None:
    """The seconds threads ``paths`` spent on a CPU and runnable waiting for one, in all;
    None where the kernel does not say."""
    on_cpu = waiting = 0
    try:
        for path in paths:
            with open(path) as f:
                ran, waited = f.read().split()[:2]
            on_cpu, waiting = on_cpu + int(ran), waiting + int(waited)
    except (OSError, ValueError):
        return None
    return on_cpu / 1e9, waiting / 1e9


def timed(k: str, ex, work) -> tuple[float, object, dict]:
    """One side's round of a workload: its seconds, what must be equal across sides, and the
    CPU seconds the side used, those the whole machine used meanwhile, and how its worker
    threads spent the round (see cpu_use)."""
    pids, threads = worker_pids(k, ex), worker_threads(k, ex)
    cpu0, busy0, sched0 = cpu_seconds(pids), machine_busy(), sched_seconds(threads)
    took, results = run_batch(ex, work)
    cpu, busy, sched = cpu_seconds(pids) - cpu0, machine_busy(), sched_seconds(threads)
    use = {"cpu": cpu, "busy": None if busy0 is None else busy - busy0}
    if sched0 is not None and sched is not None and threads:
        use["workers"] = len(threads)
        use["on_cpu"], use["waiting"] = sched[0] - sched0[0], sched[1] - sched0[1]
    return took, summarize(results), use


def cpu_use(runs: list, n_tasks: int) -> dict:
    """A side's CPU use over its rounds: CPU ms per task, the CPUs it kept busy on average
    (CPU seconds per second of wall time), those other work kept busy meanwhile, and the
    share of its worker threads' time they spent on a CPU, runnable but waiting for one (the
    machine was busy) and idle (nothing to run: the executor's own gaps)."""
    wall = sum(r[0] for r in runs)
    cpu = sum(r[2]["cpu"] for r in runs)
    out = {"cpu_ms_per_task": cpu / (len(runs) * n_tasks) * 1e3, "cpus_used": cpu / wall}
    if all(r[2]["busy"] is not None for r in runs):
        out["cpus_used_by_others"] = max(0.0, sum(r[2]["busy"] for r in runs) - cpu) / wall
    if all("workers" in r[2] for r in runs):
        thread_wall = sum(r[0] * r[2]["workers"] for r in runs)
        on_cpu = sum(r[2]["on_cpu"] for r in runs) / thread_wall
        waiting = sum(r[2]["waiting"] for r in runs) / thread_wall
        out["workers_on_cpu"] = on_cpu
        out["workers_waiting"] = waiting
        out["workers_idle"] = max(0.0, 1 - on_cpu - waiting)
    return out


def bench_tasks(sides: dict, tasks: dict, n_rounds: int, problems: list[str]) -> dict:
    out = {}
    for name, work in tasks.items():
        samples = rounds(
            n_rounds, {k: (lambda k=k, ex=ex, w=work: timed(k, ex, w)) for k, ex in sides.items()}
        )
        expect = samples[next(iter(sides))][0][1]
        for k, runs in samples.items():
            if any(run[1] != expect for run in runs):
                problems.append(f"{name}: {LABELS[k]} gave different results")
        out[name] = {
            k: {
                "median": statistics.median(per_task),
                "samples": per_task,
                **(cpu_use(runs, len(work)) if name in CPU else {}),
            }
            for k, runs in samples.items()
            for per_task in ([run[0] / len(work) for run in runs],)
        }
        best = min(out[name], key=lambda k: out[name][k]["median"])
        progress(f"{name}: fastest {best}")
    return out


def bench_latency(sides: dict, long_s: float, n_rounds: int) -> dict:
    """One cheap request at a time while a long task keeps a worker busy."""

    def requests(ex) -> list[float]:
        lat = []
        long = ex.submit(wf.spin, long_s)
        while not long.done() and len(lat) < 200:
            t0 = time.perf_counter()
            ex.submit(wf.cheap, len(lat)).result()
            lat.append(time.perf_counter() - t0)
        long.result()
        return lat

    # serial cannot run the two at once
    samples = rounds(
        n_rounds, {k: (lambda ex=ex: requests(ex)) for k, ex in sides.items() if k != "serial"}
    )
    lat = {k: [x for run in runs for x in run] for k, runs in samples.items()}
    return {
        k: {"p50_ms": percentile(v, 50) * 1e3, "p99_ms": percentile(v, 99) * 1e3, "n": len(v)}
        for k, v in lat.items()
    }


def rss_bytes(pids: list[int]) -> int:
    total = 0
    page = os.sysconf("SC_PAGE_SIZE")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * page
        except OSError:
            pass
    return total


def bench_map(sides: dict, n: int) -> dict:
    out = {}
    for k, ex in sides.items():
        pids = [os.getpid()]
        if k == "procs":
            pids += list(getattr(ex, "_processes", {}) or {})
        base = rss_bytes(pids)
        peak = [base]
        stop = threading.Event()

        def sample(pids=pids, peak=peak, stop=stop):
            while not stop.wait(0.002):
                peak[0] = max(peak[0], rss_bytes(pids))

        sampler = threading.Thread(target=sample)
        sampler.start()
        t0 = time.perf_counter()
        total = sum(ex.map(wf.cheap, (i for i in range(n)), chunksize=500))
        took = time.perf_counter() - t0
        stop.set()
        sampler.join()
        if total != n * (n + 1) // 2:
            raise RuntimeError(f"{k}: map gave {total}")
        out[k] = {"items_per_s": n / took, "peak_rss_growth_mb": (peak[0] - base) / 2**20}
        progress(f"map: {k} {n / took:.0f} items/s")
    return out


def evidence(a: dict, b: dict) -> str:
    """What two sides' CPU use says about a ratio of their times (see cpu_use)."""

    def pair(key, fmt):
        return f"{fmt(a[key])} / {fmt(b[key])}" if key in a and key in b else None

    parts = [
        ("CPU per task", pair("cpu_ms_per_task", lambda x: f"{x:.1f} ms")),
        ("workers idle", pair("workers_idle", lambda x: f"{x:.0%}")),
        ("waiting for a CPU", pair("workers_waiting", lambda x: f"{x:.0%}")),
        ("CPUs other work used", pair("cpus_used_by_others", lambda x: f"{x:.2f}")),
    ]
    return "; ".join(f"{label} {text}" for label, text in parts if text)


def targets(res: dict) -> list[dict]:
    """The targets (2 workers, 3.12+): one row each, met or missed, with the value."""
    w, out = res["workloads"], []
    has_stdlib = "stdlib" in w["primes"]
    py312 = sys.version_info >= (3, 12)

    def med(name, k):
        return w[name][k]["median"] if k in w[name] else None

    def row(name, target, value, met, note=None):
        out.append({"name": name, "target": target, "value": value, "met": met, "note": note})

    def per_round(name, a, b):
        """The median over rounds of side a's time / side b's in the same round: the machine's
        load changes from round to round, and a ratio within a round cancels most of it."""
        pairs = zip(w[name][a]["samples"], w[name][b]["samples"], strict=True)
        return statistics.median(x / y for x, y in pairs)

    for name in CPU:
        best_k = min((k for k in ("procs", "stdlib") if k in w[name]), key=lambda k: med(name, k))
        ratio = per_round(name, "ours", best_k)
        speedup = per_round(name, "serial", "ours")
        use = w[name]
        row(
            f"{name}: time vs the best of processes/stdlib",
            "≤ 1.05",
            round(ratio, 2),
            ratio <= 1.05,
            f"ours / {SHORT[best_k]}: " + evidence(use["ours"], use[best_k]),
        )
        # What the other parallel sides reached in the same rounds: the machine's ceiling (two
        # tasks running at once on its 2 CPUs each run slower than one alone).
        theirs = ", ".join(
            f"{SHORT[k]} {per_round(name, 'serial', k):.2f}"
            for k in ("procs", "stdlib")
            if k in w[name]
        )
        # And the speed-up a pool with no idle time would reach at the speed our workers' CPUs
        # ran: serial CPU per task / ours, times the workers. Below 2, the machine ran two
        # tasks at once slower than one alone, which no pool can make up for.
        ceiling = WORKERS * use["serial"]["cpu_ms_per_task"] / use["ours"]["cpu_ms_per_task"]
        row(
            f"{name}: speed-up over serial",
            "≥ 1.8",
            round(speedup, 2),
            speedup >= 1.8,
            f"speed-up of {theirs}; at the speed our workers' CPUs ran, a pool never idle "
            f"would reach {ceiling:.2f}; ours / serial: " + evidence(use["ours"], use["serial"]),
        )
    for name in DATA_1MB:
        ours = med(name, "ours")
        r = ours / med(name, "procs")
        row(f"{name}: vs processes", "≤ 0.5", round(r, 2), r <= 0.5)
        if has_stdlib:
            r = ours / med(name, "stdlib")
            row(f"{name}: vs stdlib pool", "≤ 1.1", round(r, 2), r <= 1.1)
    p99 = res["latency"]["ours"]["p99_ms"]
    row("cheap requests while a long task runs: p99 (ms)", "≤ 20", round(p99, 2), p99 <= 20)
    tput = {k: 1 / v["median"] for k, v in w["trivial tasks"].items()}
    r = tput["ours"] / tput["procs"]
    row("trivial-task throughput vs processes", "≥ 5", round(r, 1), r >= 5)
    if has_stdlib:
        r = tput["ours"] / tput["stdlib"]
        row("trivial-task throughput vs stdlib pool", "≥ 3", round(r, 1), r >= 3)
        ours_rss = res["map"]["ours"]["peak_rss_growth_mb"]
        theirs = res["map"]["stdlib"]["peak_rss_growth_mb"]
        row(
            "map over 100,000 items: peak RSS growth (MB) vs stdlib",
            "≤ stdlib",
            f"{ours_rss:.1f} vs {theirs:.1f}",
            ours_rss <= theirs,
        )
    for t in out:
        if not py312:
            t["met"] = None  # the targets are for 3.12+ (3.11's interpreters share one GIL)
    return out


def git_rev() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
        ).stdout.strip()
    except OSError:
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller tasks, fewer rounds")
    ap.add_argument("--json", help="write the results there")
    args = ap.parse_args()
    problems: list[str] = []
    sides = make_sides(problems)
    n_rounds = 2 if args.quick else 15  # CPU rounds swing by 10% on a shared host: many pairs
    try:
        res = {
            "meta": {
                "python": platform.python_version(),
                "when": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
                "git": git_rev(),
                "workers": WORKERS,
                "rounds": n_rounds,
                "quick": args.quick,
                "cpus": os.cpu_count(),
                "sides": {k: LABELS[k] for k in sides},
                "load_before": os.getloadavg()[0],
            },
            "workloads": bench_tasks(sides, tasks_of(args.quick), n_rounds, problems),
            # each round holds a worker of every side for the long task's second: 3 will do
            "latency": bench_latency(sides, 0.5 if args.quick else 1.0, min(n_rounds, 3)),
            "map": bench_map(sides, 100_000),
        }
    finally:
        for ex in sides.values():
            ex.shutdown()
    res["meta"]["load_after"] = os.getloadavg()[0]
    res["targets"] = targets(res)
    res["problems"] = problems
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    for name, by_side in res["workloads"].items():
        cells = "  ".join(f"{k} {v['median'] * 1e3:.3f} ms" for k, v in by_side.items())
        print(f"{name:24} {cells}")
    for k, v in res["latency"].items():
        print(f"latency {k}: p50 {v['p50_ms']:.2f} ms, p99 {v['p99_ms']:.2f} ms")
    for k, v in res["map"].items():
        print(f"map {k}: {v['items_per_s']:.0f} items/s, RSS +{v['peak_rss_growth_mb']:.1f} MB")
    for t in res["targets"]:
        verdict = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        note = f" ({t['note']})" if t.get("note") else ""
        print(f"target {t['name']} ({t['target']}): {t['value']} {verdict}{note}")
    for p in problems:
        print(f"problem: {p}")


if __name__ == "__main__":
    main()
