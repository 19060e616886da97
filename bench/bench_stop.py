"""Stopping work, waiting on several queues, forwarded output.

Part of `make bench` (bench.py's benchmark "stop", results in bench/results/py3XX.json and the
"Stopping, waiting, output" section of BENCHMARKS.md). Alone, it prints its results:

    .venv/py312/bin/python bench/bench_stop.py [--quick]

What it measures (medians):

- interrupt: a thread runs ``while True: pass`` in an interpreter; the time from calling
  ``interp.interrupt()`` to the loop's ``except KeyboardInterrupt`` (both read
  ``time.perf_counter()``, one clock for the whole process). On 3.11, where a pure loop holds
  the one shared GIL, the caller first has to get the GIL back at all (our nudger makes the loop
  let it go, docs/threads.md): how long its ``time.sleep(0.002)`` overran is given too. The
  loop stops
  at its next check between bytecodes if its thread is on a CPU; on a machine with more runnable
  threads than CPUs it often is not, and then waits for the scheduler (milliseconds), so the
  fastest times and the load average are given with the median;
- wait: an interpreter echoes what it gets on one queue to another; a round trip from main is
  ``req.put(i)`` then either ``rep.get()`` or ``interpreters.wait([idle, rep])`` +
  ``rep.get_nowait()``, batches of each interleaved; the ratio wait / get;
- output: ``interp.call(f)`` where ``f`` prints one line, in an interpreter made with
  ``forward_output=True`` (main's sys.stdout redirected to /dev/null) and in a plain one (its
  file descriptor 1 pointed at /dev/null), interleaved; the ratio forwarded / plain;
- pool output: the same with ``pool.submit(f).result()``, in a one-worker
  ``InterpreterPoolExecutor(1, forward_output=True)`` and a plain one.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import threading
import time

from subinterpreters import interpreters

# The targets.
INTERRUPT_MS = 5.0
WAIT_VS_GET = 2.0
OUTPUT_VS_PLAIN = 2.0
SWITCH_MS = sys.getswitchinterval() * 1e3  # 3.11: interrupt() within the shared GIL's interval

PY312 = sys.version_info >= (3, 12)
LOOP = "while True: pass"
LOOP_CODE = f"""
import time
try:
    started.put(1)
    {LOOP}
except KeyboardInterrupt:
    stopped.put(time.perf_counter())
"""


def interrupt_ms(n: int) -> list[tuple[float, float]]:
    interp = interpreters.create()
    started, stopped = interpreters.create_queue(), interpreters.create_queue()
    interp.prepare_main(started=started, stopped=stopped)
    out = []
    try:
        for _ in range(n):
            t = threading.Thread(target=interp.exec, args=(LOOP_CODE,))
            t.start()
            started.get()
            s0 = time.perf_counter()
            time.sleep(0.002)  # well inside the loop
            t0 = time.perf_counter()
            interp.interrupt()
            t1 = stopped.get(timeout=30)
            t.join()
            out.append(((t1 - t0) * 1e3, (t0 - s0) * 1e3 - 2.0))
    finally:
        interp.close()
    return out


ECHO = """
while True:
    x = req.get()
    if x is None:
        break
    rep.put(x)
"""


def wait_vs_get(rounds: int, batch: int) -> dict:
    interp = interpreters.create()
    req, rep, idle = (interpreters.create_queue() for _ in range(3))
    interp.prepare_main(req=req, rep=rep)
    t = threading.Thread(target=interp.exec, args=(ECHO,))
    t.start()

    def by_get() -> float:
        t0 = time.perf_counter()
        for i in range(batch):
            req.put(i)
            rep.get()
        return (time.perf_counter() - t0) / batch

    watched = [idle, rep]

    def by_wait() -> float:
        t0 = time.perf_counter()
        for i in range(batch):
            req.put(i)
            interpreters.wait(watched)
            rep.get_nowait()
        return (time.perf_counter() - t0) / batch

    try:
        return interleave(rounds, by_get, by_wait)
    finally:
        req.put(None)
        t.join()
        interp.close()


def one_line():
    print("a line of output")


@contextlib.contextmanager
def _quiet():
    """File descriptor 1 (where a plain interpreter writes) and main's sys.stdout (where a
    forwarding one's output goes) both point at /dev/null meanwhile."""
    sys.stdout.flush()
    saved = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


def _batches(call, batch: int):
    def run() -> float:
        t0 = time.perf_counter()
        for _ in range(batch):
            call()
        return (time.perf_counter() - t0) / batch

    return run


def output_vs_plain(rounds: int, batch: int) -> dict:
    with _quiet():
        plain = interpreters.create()
        fwd = interpreters.create(forward_output=True)
        try:
            return interleave(
                rounds,
                _batches(lambda: plain.call(one_line), batch),
                _batches(lambda: fwd.call(one_line), batch),
            )
        finally:
            plain.close()
            fwd.close()


def pool_output_vs_plain(rounds: int, batch: int) -> dict:
    from subinterpreters.futures import InterpreterPoolExecutor

    with _quiet():
        with (
            InterpreterPoolExecutor(1) as plain,
            InterpreterPoolExecutor(1, forward_output=True) as fwd,
        ):
            return interleave(
                rounds,
                _batches(lambda: plain.submit(one_line).result(), batch),
                _batches(lambda: fwd.submit(one_line).result(), batch),
            )


def interleave(rounds: int, a, b) -> dict:
    """Batches of ``a`` and ``b`` alternately (A B, B A, ...) after a warm-up; medians of each
    (µs) and of the per-round ratios b / a."""
    a(), b()
    ta, tb, ratios = [], [], []
    for r in range(rounds):
        if r % 2:
            y, x = b(), a()
        else:
            x, y = a(), b()
        ta.append(x)
        tb.append(y)
        ratios.append(y / x)
    return {
        "a_us": statistics.median(ta) * 1e6,
        "b_us": statistics.median(tb) * 1e6,
        "ratio": statistics.median(ratios),
    }


def targets(r: dict) -> list[dict]:
    out = []

    def add(name: str, target: str, value: str, ok: bool | None, na: str | None = None) -> None:
        out.append({"name": name, "target": target, "value": value, "met": ok, "na": na})

    ms = r["interrupt_ms"]
    every = sorted(r["interrupt_ms_all"])
    load = os.getloadavg()[0]
    add(
        "interrupt() to a stopped pure-Python loop (median)",
        f"≤ {INTERRUPT_MS:g} ms" if PY312 else f"≤ {SWITCH_MS:g} ms (3.11: the switch interval)",
        f"{ms:.3g} ms; fastest {every[0]:.3g} ms, lower quartile "
        f"{every[len(every) // 4]:.3g} ms; load average {load:.1f} on {os.cpu_count()} CPUs",
        ms <= INTERRUPT_MS if PY312 else ms <= SWITCH_MS,
    )
    if not PY312:
        regain = r["regain_ms"]
        add(
            "3.11: the caller's wait for the GIL the loop holds (median)",
            f"≤ {2 * SWITCH_MS:g} ms (two switch intervals)",
            f"{regain:.3g} ms",
            regain <= 2 * SWITCH_MS,
        )
    w = r["wait"]
    add(
        "wait() wake-up round trip / blocking get round trip",
        f"≤ {WAIT_VS_GET:g}×",
        f"{w['ratio']:.2f}× ({w['b_us']:.1f} vs {w['a_us']:.1f} µs)",
        w["ratio"] <= WAIT_VS_GET,
    )
    o = r["output"]
    add(
        "call printing one line: forwarded / plain",
        f"≤ {OUTPUT_VS_PLAIN:g}×",
        f"{o['ratio']:.2f}× ({o['b_us']:.1f} vs {o['a_us']:.1f} µs)",
        o["ratio"] <= OUTPUT_VS_PLAIN,
    )
    p = r.get("pool_output")
    if p is not None:
        add(
            "pool call printing one line: forwarded / plain",
            f"≤ {OUTPUT_VS_PLAIN:g}×",
            f"{p['ratio']:.2f}× ({p['b_us']:.1f} vs {p['a_us']:.1f} µs)",
            p["ratio"] <= OUTPUT_VS_PLAIN,
        )
    return out


def run(quick: bool) -> dict:
    n = 15 if quick else 41
    rounds = 7 if quick else 21
    batch = 200 if quick else 500
    pairs = interrupt_ms(n)
    ms = [a for a, _ in pairs]
    result = {
        "interrupt_ms": statistics.median(ms),
        "interrupt_ms_all": ms,
        "regain_ms": statistics.median(b for _, b in pairs),
        "wait": wait_vs_get(rounds, batch),
        "output": output_vs_plain(rounds, batch // 2),
        "pool_output": pool_output_vs_plain(rounds, batch // 2),
    }
    return {
        "rows": [],
        "stop": result,
        "targets": targets(result),
        "impl": {"ours": "subinterpreters.interpreters"},
    }


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short run")
    args = p.parse_args()
    result = run(args.quick)
    print(f"CPython {sys.version.split()[0]}")
    for t in result["targets"]:
        verdict = t["na"] or ("met" if t["met"] else "MISSED")
        print(f"  {t['name']}: {t['value']} (target {t['target']}): {verdict}")


if __name__ == "__main__":
    main()
