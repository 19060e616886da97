"""Demo: the same CPU-bound pure-Python work in N interpreters at once vs N threads of one.

Three modes run the same function (a calibrated loop, about --seconds of CPU per worker):

  baseline      1 worker: a thread of the main interpreter
  threads       N threads of the main interpreter
  interpreters  N subinterpreters, each created, driven (run_string) and destroyed by its own thread

Every worker records time.perf_counter() (process-wide and monotonic, so comparable across
interpreters) and time.thread_time() around its work. A subinterpreter sends its numbers back
through an os.pipe whose write end is passed as an int in shared={'fd': w}.

Each mode runs --repeat times (default 3) and reports its best round.

Usage: python demo.py [--workers N] [--seconds S] [--repeat R]
"""

import argparse
import os
import sys
import textwrap
import threading
import time

WORK_SOURCE = """
def work(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total
"""

# Run inside a subinterpreter, with `n` and `fd` injected through `shared`.
INTERP_SCRIPT = (
    WORK_SOURCE
    + """
import os as _os
import time as _time

_t0, _c0 = _time.perf_counter(), _time.thread_time()
_result = work(n)
_t1, _c1 = _time.perf_counter(), _time.thread_time()
_os.write(fd, f"{_t0!r} {_t1!r} {_c1 - _c0!r} {_result}\\n".encode())
"""
)


def load_module():
    """Return (module, description). Ours if importable, else CPython's (3.11/3.12 only)."""
    try:
        import subinterpreters.lowlevel as mod
    except ImportError as exc:
        ours_error = exc
    else:
        return mod, "subinterpreters.lowlevel (this project)"
    try:
        import _xxsubinterpreters as mod
    except ImportError:
        sys.exit(
            f"error: subinterpreters.lowlevel is not importable ({ours_error}) and this CPython "
            "has no _xxsubinterpreters to fall back on; build it: scripts/dev.sh build 3.X"
        )
    return mod, (
        "CPython's _xxsubinterpreters (FALLBACK: subinterpreters.lowlevel is not importable: "
        f"{ours_error})"
    )


def compiled_work():
    ns = {}
    exec(WORK_SOURCE, ns)
    return ns["work"]


def calibrate(seconds):
    """Iterations of work() that take about `seconds` here."""
    work = compiled_work()
    n = 100_000
    best = min(_timed(work, n) for _ in range(3))
    return max(1, int(n * seconds / best))


def _timed(work, n):
    t0 = time.perf_counter()
    work(n)
    return time.perf_counter() - t0


class Worker:
    """One worker's record: work window (perf_counter), its CPU time, errors."""

    def __init__(self):
        self.start = self.end = self.cpu = None
        self.error = None

    @property
    def duration(self):
        return self.end - self.start


def thread_worker(rec, n, barrier):
    try:
        work = compiled_work()
        barrier.wait()
        t0, c0 = time.perf_counter(), time.thread_time()
        work(n)
        rec.start, rec.end = t0, time.perf_counter()
        rec.cpu = time.thread_time() - c0
    except BaseException as exc:  # reported by the main thread
        rec.error = exc
        barrier.abort()


def interp_worker(mod, rec, n, barrier, made, destroyed):
    interp = None
    try:
        interp = mod.create()
        made.append(int(interp))
        barrier.wait()
        r, w = os.pipe()
        try:
            mod.run_string(interp, INTERP_SCRIPT, shared={"fd": w, "n": n})
            data = b""
            while not data.endswith(b"\n"):
                chunk = os.read(r, 4096)
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(r)
            os.close(w)
        t0, t1, cpu, _ = data.decode().split()
        rec.start, rec.end, rec.cpu = float(t0), float(t1), float(cpu)
    except BaseException as exc:  # reported by the main thread
        rec.error = exc
        barrier.abort()
    finally:
        if interp is not None:
            mod.destroy(interp)  # same thread that created it (see CPython gh-122517)
            destroyed.append(int(interp))


def run_mode(workers, target, *args):
    recs = [Worker() for _ in range(workers)]
    barrier = threading.Barrier(workers)
    threads = [threading.Thread(target=target, args=(rec, *args, barrier)) for rec in recs]
    w0, c0 = time.perf_counter(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    errors = [r.error for r in recs if r.error is not None]
    if errors:
        # the root cause first: the other workers then fail with BrokenBarrierError
        errors.sort(key=lambda e: isinstance(e, threading.BrokenBarrierError))
        raise errors[0]
    return Mode(recs, wall, cpu)


class Mode:
    def __init__(self, recs, wall, cpu):
        self.recs, self.wall, self.cpu = recs, wall, cpu
        windows = sorted((r.start, r.end) for r in recs)
        union, cur_s, cur_e = 0.0, *windows[0]
        for s, e in windows[1:]:
            if s > cur_e:
                union += cur_e - cur_s
                cur_s, cur_e = s, e
            else:
                cur_e = max(cur_e, e)
        self.union = union + (cur_e - cur_s)
        durations = [r.duration for r in recs]
        total, longest = sum(durations), max(durations)
        self.overlap = (total - self.union) / (total - longest) if len(recs) > 1 else None
        self.mean_duration = total / len(recs)
        # average number of workers computing at once while any of them was
        self.parallelism = sum(r.cpu for r in recs) / self.union

    @property
    def ratio(self):
        return self.cpu / self.wall


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2, help="workers per mode (default 2)")
    p.add_argument("--seconds", type=float, default=0.75, help="CPU seconds of work per worker")
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of all modes; each mode reports its round with the shortest union of work "
        "windows, which filters out other load on a shared machine (default 3)",
    )
    args = p.parse_args()
    if args.workers < 1 or args.seconds <= 0 or args.repeat < 1:
        p.error("--workers and --repeat must be >= 1 and --seconds > 0")

    print(f"Python {sys.version.split()[0]} ({sys.executable})")
    mod, desc = load_module()
    print(f"interpreters module: {desc}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    n = calibrate(args.seconds)
    print(
        f"cores usable: {cores}, load average: {load}, workers: {args.workers}, "
        f"work: {n:,} loop iterations (~{args.seconds:g} s) per worker"
    )
    main_id = int(mod.get_main())
    made, destroyed = [], []

    def interps(rec, n, barrier):
        interp_worker(mod, rec, n, barrier, made, destroyed)

    plan = [
        ("baseline: 1 thread", 1, thread_worker),
        (f"{args.workers} threads, 1 interpreter", args.workers, thread_worker),
        (f"{args.workers} interpreters, 1 thread each", args.workers, interps),
    ]
    best = {}
    for _ in range(args.repeat):
        for name, workers, target in plan:
            m = run_mode(workers, target, n)
            if name not in best or m.union < best[name].union:
                best[name] = m
    modes = [(name, best[name]) for name, _, _ in plan]
    left = [int(i) for i in mod.list_all() if int(i) != main_id]
    for i in left:
        mod.destroy(i)

    print()
    head = (
        f"{'mode':<34}{'wall s':>8}{'CPU s':>8}{'CPU/wall':>10}{'overlap':>9}"
        f"{'parallel':>10}   worker windows (s)"
    )
    print(head)
    print("-" * len(head))
    for name, m in modes:
        overlap = "n/a" if m.overlap is None else f"{m.overlap:.2f}"
        windows = " ".join(f"{r.duration:.2f}" for r in m.recs)
        print(
            f"{name:<34}{m.wall:>8.2f}{m.cpu:>8.2f}{m.ratio:>10.2f}{overlap:>9}"
            f"{m.parallelism:>10.2f}   {windows}"
        )
    legend = [
        "wall s: the whole mode, from starting its threads to joining them (interpreter create "
        "and destroy included). CPU s: process CPU time (time.process_time, all threads) over "
        "the same interval.",
        "overlap: (sum of the worker windows - length of their union) / (sum - longest window); "
        "0 = no two windows overlapped (serial), 1 = they all overlapped completely; n/a for 1 "
        "worker. Threads of one interpreter taking turns on the GIL overlap too.",
        "parallel: sum of the workers' own CPU times (time.thread_time) / union of their "
        "windows = how many workers were computing at once on average (1 = serial or taking "
        "turns, N = fully parallel).",
    ]
    if args.repeat > 1:
        legend.append(f"Each mode: the best of {args.repeat} rounds (shortest union of windows).")
    print()
    for item in legend:
        print(textwrap.fill(item, width=100, subsequent_indent="    "))
    print(
        f"interpreters created: {len(made)}, destroyed by their threads: {len(destroyed)}, "
        f"still alive afterwards: {len(left)}" + (" (destroyed now)" if left else "")
    )
    print()
    print(conclusion(args.workers, cores, modes))
    return 0


def conclusion(workers, cores, modes):
    base, threads, interps = (m for _, m in modes)
    v = sys.version_info
    if v >= (3, 12):
        expect = (
            f"On Python {v.major}.{v.minor} each subinterpreter has its own GIL, so the "
            "interpreters can run Python code in parallel."
        )
    else:
        expect = (
            f"On Python {v.major}.{v.minor} all interpreters share one GIL: subinterpreters give "
            "isolation, not parallelism."
        )
    if workers == 1:
        return textwrap.fill(
            f"{expect} With 1 worker there is nothing to compare: the interpreter took "
            f"{interps.mean_duration:.2f} s of work vs {base.mean_duration:.2f} s for a thread.",
            width=100,
        )
    parallel = interps.parallelism >= 1.5 and interps.ratio >= 1.3
    speedup = threads.union / interps.union
    text = [expect]
    text.append(
        f"Measured: {workers} threads of one interpreter computed {threads.parallelism:.2f} at a "
        f"time (CPU/wall {threads.ratio:.2f}; their windows overlap {threads.overlap:.2f} only "
        f"because they take turns on the GIL, each stretched to {threads.mean_duration:.2f} s "
        f"from {base.mean_duration:.2f} s alone), while {workers} interpreters computed "
        f"{interps.parallelism:.2f} at a time (CPU/wall {interps.ratio:.2f}, overlap "
        f"{interps.overlap:.2f}), finishing the same work {speedup:.2f}x as fast as the threads."
    )
    if parallel:
        text.append("The interpreters ran in parallel")
        if interps.parallelism < min(workers, cores) - 0.5:
            text[-1] += f", though below the {min(workers, cores)} usable cores (a busy machine?)"
        text[-1] += "."
    else:
        text.append("The interpreters did not run in parallel")
        if v >= (3, 12):
            text[-1] += (
                ", which this Python should allow: is the machine busy, or are fewer cores "
                f"usable ({cores}) than workers?"
            )
        else:
            text[-1] += " (expected with the shared GIL)."
            if interps.overlap is not None and interps.overlap < 0.2:
                text[-1] += (
                    " Their windows barely overlap: on 3.11 a thread waiting for the shared GIL "
                    "asks only its own interpreter to drop it, so each interpreter ran its work "
                    "to the end before the next one started."
                )
    if base.ratio < 0.9:
        text.append(
            f"Note: even the 1-thread baseline got only {base.ratio:.2f} of a core (CPU/wall): "
            "the machine is busy, so these numbers understate what the interpreters can do; "
            "try again, or with a higher --repeat."
        )
    return textwrap.fill(" ".join(text), width=100)


if __name__ == "__main__":
    sys.exit(main())
