"""Merge the per-version JSON files of bench/bench.py into a Markdown report (BENCHMARKS.md).

    python bench/report.py bench/results/py311.json bench/results/py312.json \\
        bench/results/py313.json -o BENCHMARKS.md

Without file arguments it reads every bench/results/py3*.json; the wheel size and import time
table comes from bench/results/install-py3*.json (bench/size_import.py). Runs on any Python
>= 3.11 and imports nothing from the project.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import workloads_report  # noqa: E402 - beside this file

ORDER = (
    "create_destroy",
    "run_string",
    "send_recv",
    "roundtrip",
    "pep734",
    "cpu",
    "memory",
    "pool",
    "lifecycle",
)
# Benchmarks of subinterpreters.interpreters (PEP 734) rather than of subinterpreters.lowlevel.
PEP734 = ("pep734", "lifecycle")
# Benchmarks of the pools and asyncio (bench_pool.py) and of interrupt/wait/forwarded output
# (bench_stop.py): no rows, a section of their own each.
POOL = ("pool", "stop")


def num(x: float | None, digits: int = 3) -> str:
    """A short human number: 3 significant digits, thousands separated."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if abs(x) >= 10**digits:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}" if abs(x) >= 1 else f"{x:.{digits - 1}f}"


def fixed(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def rfmt(r: float) -> str:
    """A ratio: 2 decimals, or 2 significant digits below 0.01 (0.00 says nothing)."""
    if isinstance(r, float) and math.isnan(r):
        return "n/a"
    return f"{r:.2f}" if r >= 0.01 or r == 0 else f"{r:.2g}"


def ratio_cell(row: dict) -> str:
    return f"**{rfmt(row['ratio'])}** ({rfmt(row['ratio_q1'])}–{rfmt(row['ratio_q3'])})"


def target_text(row: dict) -> str | None:
    """The row's target in words, or None: a ratio (against whom, for PEP 734 rows) or ours."""
    if row.get("target_const") is not None:
        return (
            f"ours ≤ {row['target_ours']:g} {row['unit']} and constant time "
            f"(÷ the 1 MiB time ≤ {row['target_const']:g})"
        )
    if row.get("target_ours") is not None:
        return f"ours ≤ {row['target_ours']:g} {row['unit']}"
    if row.get("target") is not None:
        vs = {"concurrent": " vs stdlib", "backports": " vs backport"}.get(row.get("vs", ""), "")
        return f"≤ {row['target']}{vs}"
    return None


def met(row: dict) -> bool | None:
    """Whether the row meets its target (None: it has none)."""
    if row.get("target_ours") is not None:
        ok = row["ours"] <= row["target_ours"]
        if row.get("target_const") is not None:
            # Constant time: ours at 100 MiB / ours at 1 MiB (None: it was sent as a copy).
            c = row.get("const_ratio")
            ok = ok and c is not None and c <= row["target_const"]
        return ok
    if row.get("target") is not None:
        return row["ratio"] <= row["target"]
    return None


def status(row: dict) -> str:
    """met / MISSED against the target; else better / worse / even (3% and the IQR)."""
    r, q1, q3 = row["ratio"], row["ratio_q1"], row["ratio_q3"]
    ok = met(row)
    if ok is not None:
        return f"{target_text(row)}: " + ("met" if ok else "**MISSED**")
    if r < 0.97 and q3 < 1:
        return "ours better"
    if r > 1.03 and q1 > 1:
        return "ours worse"
    return "even (within noise)"


def rows_of(data: dict) -> list[dict]:
    out = []
    for name in ORDER:
        out += data["benchmarks"].get(name, {}).get("rows", [])
    return out


def extra_cell(row: dict) -> str:
    # batch: ours' batch size (theirs' is sized to last about as long)
    text = f"{row['rounds']} × {row['batch']:,}" if "batch" in row else f"{row['rounds']}"
    if "ours_gbps" in row:
        text += f"; {row['ours_gbps']:.2f} vs {row['theirs_gbps']:.2f} GB/s"
    return text


def impl_of(data: dict, pep734: bool) -> dict:
    impl: dict = {}
    for name, b in data["benchmarks"].items():
        if name in POOL:
            continue  # its own section, its own sides
        if (name in PEP734) == pep734:
            impl.update(b.get("impl", {}))
    return impl


def version_section(data: dict) -> str:
    """The Markdown section for one Python version's JSON."""
    m = data["meta"]
    impl = impl_of(data, False)
    impl734 = impl_of(data, True)
    p734 = ""
    if impl734:
        p734 = (
            f" PEP 734 rows: ours = `{impl734.get('ours', '?')}`, theirs = "
            f"`{impl734.get('theirs', 'none')}`."
        )
    lines = [
        f"### CPython {m['python']}",
        "",
        f"ours = `{impl.get('ours', 'subinterpreters.lowlevel')}`, theirs = "
        f"`{impl.get('theirs', '?')}`.{p734} Run {m['date']}"
        f"{' (--quick)' if m.get('quick') else ''}, git {m['git']}, our build "
        f"{m.get('ours_build', '?')}, load average "
        f"{m['loadavg_start'][0]:.2f} at start, {m.get('loadavg_end', [float('nan')])[0]:.2f} "
        "at end.",
        "",
        "| benchmark | unit | ours | theirs | ours/theirs (IQR) | verdict "
        "| rounds × batch (ours) |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for row in rows_of(data):
        lines.append(
            f"| {row['name']} | {row['unit']} | {num(row['ours'])} | {num(row['theirs'])} | "
            f"{ratio_cell(row)} | {status(row)} | {extra_cell(row)} |"
        )
    lines.append("")
    cpu = data["benchmarks"].get("cpu", {})
    if cpu.get("cpu_table"):
        lines += [
            f"CPU-bound work ({cpu['iterations']:,} loop iterations per worker), medians of "
            f"{cpu['cpu_table'][0]['repeats']} repeat(s):",
            "",
            "| workers | mode | wall (s) | CPU time / wall | overlap | mean worker (s) |",
            "|---:|---|---:|---:|---:|---:|",
        ]
        names = {
            "ours": "interpreters (ours)",
            "theirs": "interpreters (theirs)",
            "threads": "threads",
            "processes": "processes",
        }
        for r in cpu["cpu_table"]:
            lines.append(
                f"| {r['workers']} | {names[r['mode']]} | {num(r['wall'])} | "
                f"{fixed(r['cpu_per_wall'])} | {fixed(r['overlap'])} | {num(r['mean_worker'])} |"
            )
        lines.append("")
    pool = pool_of(data)
    if pool:
        tp = pool["pool"]["throughput"]["tasks_per_s"]
        ai = pool["pool"]["aio"]["median_us"]
        lines.append(
            "Pools: trivial tasks/s "
            + ", ".join(f"{k} {num(v)}" for k, v in tp.items())
            + "; asyncio round trip (µs) "
            + ", ".join(f"{k} {num(v)}" for k, v in ai.items())
            + "."
        )
        lines.append("")
        for tg in pool["targets"]:
            lines.append(f"- pool: {tg['name']} ({tg['target']}): {verdict(tg)}")
        lines.append("")
    stop = stop_of(data)
    if stop:
        for tg in stop["targets"]:
            lines.append(f"- stop: {tg['name']} ({tg['target']}): {verdict(tg)}")
        lines.append("")
    for name in ORDER:
        b = data["benchmarks"].get(name)
        if not b:
            continue
        if b.get("error"):
            lines.append(f"- **{name} failed**: {b['error']}")
        if b.get("skipped"):
            lines.append(f"- {name} skipped: {b['skipped']}")
        for p in b.get("problems", []):
            lines.append(f"- **problem** ({name}): {p}")
        # Kept from an earlier run by an --only run.
        old = [r["name"] for r in b.get("rows", []) if r.get("measured_at", m["date"]) < m["date"]]
        if old:
            lines.append(f"- from an earlier run of this version: {', '.join(old)}.")
        elif b.get("measured_at", m["date"]) < m["date"]:
            lines.append(f"- {name} comes from an earlier run, at {b['measured_at']}.")
        if bool(b.get("quick", m.get("quick"))) != bool(m.get("quick")):
            lines.append(f"- {name}: {'a --quick' if b.get('quick') else 'a full'} run.")
        if b.get("ours_build", m.get("ours_build")) != m.get("ours_build"):
            lines.append(f"- {name} measured another build of ours: {b['ours_build']}.")
    lines.append("")
    return "\n".join(lines)


def summary_table(runs: list[dict]) -> str:
    """Benchmarks down, versions across: the ratio of each."""
    names: list[str] = []
    for d in runs:
        for row in rows_of(d):
            if row["name"] not in names:
                names.append(row["name"])
    head = "| benchmark | target | " + " | ".join(f"{d['meta']['python']}" for d in runs) + " |"
    lines = [head, "|---|---|" + "---:|" * len(runs)]
    for name in names:
        cells, targets = [], []
        for d in runs:
            row = next((r for r in rows_of(d) if r["name"] == name), None)
            if row is None:
                cells.append("–")
                continue
            t = target_text(row)
            if t and t not in targets:
                targets.append(t)
            mark = " ✗" if met(row) is False else ""
            cell = rfmt(row["ratio"])
            if row.get("target_ours") is not None:
                cell += f" (ours {num(row['ours'])} {row['unit']})"
            cells.append(cell + mark)
        lines.append(f"| {name} | {'; '.join(targets)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets_table(runs: list[dict]) -> str:
    """Every target (issues 7 and 8), met or missed per version."""
    keys: list[tuple[str, str]] = []
    for d in runs:
        for row in rows_of(d):
            t = target_text(row)
            if t and (row["name"], t) not in keys:
                keys.append((row["name"], t))
    head = "| target | " + " | ".join(f"{d['meta']['python']}" for d in runs) + " |"
    lines = [head, "|---|" + "---|" * len(runs)]
    for name, t in keys:
        cells = []
        for d in runs:
            row = next((r for r in rows_of(d) if r["name"] == name and target_text(r) == t), None)
            if row is None:
                cells.append("–")
                continue
            value = (
                f"{num(row['ours'])} {row['unit']}"
                if row.get("target_ours") is not None
                else rfmt(row["ratio"])
            )
            if row.get("target_const") is not None:
                c = row.get("const_ratio")
                value += f", {'a copy' if c is None else f'{c:.2f}× the 1 MiB time'}"
            cells.append(("met" if met(row) else "**missed**") + f" ({value})")
        lines.append(f"| {name}: {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pool_of(data: dict) -> dict | None:
    """The pool benchmark's result (bench_pool.py), if it ran and did not fail."""
    b = data["benchmarks"].get("pool")
    return b if b and b.get("pool") else None


def verdict(t: dict) -> str:
    """A pool target's cell: met / missed (value), or why it does not apply."""
    if t["met"] is None:
        value = f" ({t['value']})" if t["value"] != "n/a" else ""
        return (t["na"] or "n/a") + value
    return ("met" if t["met"] else "**missed**") + f" ({t['value']})"


def stop_of(data: dict) -> dict | None:
    """The stop benchmark's result (bench_stop.py), if it ran and did not fail."""
    b = data["benchmarks"].get("stop")
    return b if b and b.get("stop") else None


def stop_section(runs: list[dict]) -> list[str]:
    """The stop, wait and output targets met or missed per version."""
    have = [d for d in runs if stop_of(d)]
    if not have:
        return []
    head = " | ".join(d["meta"]["python"] for d in runs)
    out = [
        "## Stopping, waiting, output",
        "",
        "`Interpreter.interrupt()`, `interpreters.wait()` and `create(forward_output=True)` "
        "(our targets; ours alone: CPython has none of them), medians. interrupt: from "
        "the call to the interrupted `while True: pass` loop's `except` clause (3.11: the loop "
        "sleeps 0 s each turn, as a pure loop there starves the caller). wait: a main -> sub -> "
        "main echo round trip ending in `interpreters.wait([idle, reply])` against one ending in "
        "`reply.get()`, batches interleaved. Output: `interp.call(f)` where `f` prints one "
        "line, forwarded (to a redirected `sys.stdout`) against plain (to file descriptor 1), "
        "interleaved; the same through `pool.submit(f).result()` in one-worker pools made with "
        "and without `forward_output=True`. See `bench/bench_stop.py`.",
        "",
        f"| target | {head} |",
        "|---|" + "---|" * len(runs),
    ]
    names: list[tuple[str, str]] = []
    for d in have:
        for tg in stop_of(d)["targets"]:
            if (tg["name"], tg["target"]) not in names:
                names.append((tg["name"], tg["target"]))
    for name, target in names:
        cells = []
        for d in runs:
            b = stop_of(d)
            tg = next((x for x in b["targets"] if x["name"] == name), None) if b else None
            cells.append(verdict(tg) if tg else "–")
        out.append(f"| {name}: {target} | " + " | ".join(cells) + " |")
    return out + [""]


def stop_losses(runs: list[dict]) -> list[str]:
    out = []
    for d in runs:
        b = stop_of(d)
        for tg in b["targets"] if b else []:
            if tg["met"] is False:
                out.append(
                    f"- CPython {d['meta']['python']}, **{tg['name']}**: {tg['value']}, "
                    f"target {tg['target']}."
                )
    return out


def pool_section(runs: list[dict]) -> list[str]:
    """The pool's targets met or missed per version, then the measurements behind them."""
    have = [d for d in runs if pool_of(d)]
    if not have:
        return []
    head = " | ".join(d["meta"]["python"] for d in runs)
    out = [
        "## Pools and asyncio",
        "",
        "`subinterpreters.futures.InterpreterPoolExecutor` (ours) against `ProcessPoolExecutor` "
        "and, on 3.14 and 3.15, the standard library's "
        "`concurrent.futures.InterpreterPoolExecutor` (stdlib), 2 workers each, in one process, "
        "sides interleaved round after round, medians (how: see the end).",
        "",
        f"| target | {head} |",
        "|---|" + "---|" * len(runs),
    ]
    names: list[tuple[str, str]] = []
    for d in have:
        for tg in pool_of(d)["targets"]:
            if (tg["name"], tg["target"]) not in names:
                names.append((tg["name"], tg["target"]))
    for name, target in names:
        cells = []
        for d in runs:
            b = pool_of(d)
            tg = next((x for x in b["targets"] if x["name"] == name), None) if b else None
            cell = verdict(tg) if tg else "–"
            others = b["pool"]["cpu_map"].get("others_per_wall_2") if b else None
            if tg and name.startswith("CPU-bound map") and others is not None:
                # How much of the machine others took meanwhile: a busy machine, not our pool.
                cell += f"; others' CPU/wall {others:.2f}"
            cells.append(cell)
        out.append(f"| {name}: {target} | " + " | ".join(cells) + " |")

    def get(d: dict, *path):
        x = pool_of(d)["pool"] if pool_of(d) else None
        for p in path:
            if not isinstance(x, dict) or p not in x:
                return None
            x = x[p]
        return x

    def speedup(d: dict, *path) -> str:
        sp = get(d, *path)
        if sp is None:
            return "–"
        return f"**{sp['median']:.2f}×** ({sp['q1']:.2f}–{sp['q3']:.2f})"

    def value(d: dict, *path, fmt=num) -> str:
        x = get(d, *path)
        return "–" if x is None else fmt(x)

    measures = [
        ("trivial tasks/s, ours", lambda d: value(d, "throughput", "tasks_per_s", "ours")),
        (
            "trivial tasks/s, ProcessPoolExecutor",
            lambda d: value(d, "throughput", "tasks_per_s", "procs"),
        ),
        (
            "trivial tasks/s, stdlib InterpreterPoolExecutor",
            lambda d: value(d, "throughput", "tasks_per_s", "stdlib"),
        ),
        ("ours ÷ ProcessPoolExecutor (IQR)", lambda d: speedup(d, "throughput", "vs_procs")),
        ("ours ÷ stdlib (IQR)", lambda d: speedup(d, "throughput", "vs_stdlib")),
        ("CPU-bound map, 1 worker (s)", lambda d: value(d, "cpu_map", "wall_1")),
        ("CPU-bound map, 2 workers (s)", lambda d: value(d, "cpu_map", "wall_2")),
        ("speed-up 1 → 2 workers (IQR)", lambda d: speedup(d, "cpu_map", "speedup")),
        (
            "our CPU time / wall, 2 workers",
            lambda d: value(d, "cpu_map", "cpu_per_wall_2", fmt=fixed),
        ),
        (
            "other processes' CPU time / wall, during the 2-worker runs",
            lambda d: value(d, "cpu_map", "others_per_wall_2", fmt=fixed),
        ),
        (
            "other processes' CPU time / wall, throughput and asyncio phases",
            lambda d: (
                value(d, "throughput", "others_per_wall", fmt=fixed)
                + " / "
                + value(d, "aio", "others_per_wall", fmt=fixed)
            ),
        ),
        (
            "asyncio: `await pool.call_async(f, x)` (µs)",
            lambda d: value(d, "aio", "median_us", "ours"),
        ),
        (
            "asyncio: `await interp.call_async(f, x)` (µs)",
            lambda d: value(d, "aio", "median_us", "call_async"),
        ),
        (
            "asyncio: `run_in_executor`, ProcessPoolExecutor (µs)",
            lambda d: value(d, "aio", "median_us", "procs"),
        ),
        (
            "asyncio: `run_in_executor`, stdlib pool (µs)",
            lambda d: value(d, "aio", "median_us", "stdlib"),
        ),
        (
            "for scale: two threads' wake-up round trip over pipes (µs)",
            lambda d: value(d, "aio", "median_us", "wakeup"),
        ),
    ]
    out += ["", f"| measure | {head} |", "|---|" + "---:|" * len(runs)]
    for label, cell in measures:
        out.append(f"| {label} | " + " | ".join(cell(d) for d in runs) + " |")
    cores = runs[0]["meta"]["machine"].get("usable_cpus")
    out += [
        "",
        f"CPU time / wall: {cores} usable cores; 2.00 = both workers ran all along. A speed-up "
        "short of 2 with the other processes busy is the shared machine; with our CPU/wall near "
        "1 and the others idle it would be a lack of parallelism. 3.11 has one GIL for all "
        "interpreters (no parallelism, and every hand-over between the event loop and a worker "
        "waits for the GIL).",
        "",
    ]
    return out


def pool_losses(runs: list[dict]) -> list[str]:
    found = []
    for d in runs:
        b = pool_of(d)
        for tg in b["targets"] if b else []:
            if tg["met"] is False:
                busy = ""
                others = b["pool"]["cpu_map"].get("others_per_wall_2")
                if tg["name"].startswith("CPU-bound map") and others is not None:
                    busy = f" (other processes' CPU/wall meanwhile: {others:.2f})"
                found.append(
                    f"- CPython {d['meta']['python']}, **pool: {tg['name']}**: {tg['value']}, "
                    f"target {tg['target']}{busy}."
                )
    return found


def losses(runs: list[dict]) -> list[str]:
    """Where we lose: a missed target, or slower than CPython beyond the noise (IQR above 1)."""
    found = []
    for d in runs:
        for row in rows_of(d):
            target = row.get("target")
            missed = met(row) is False
            slower = row["ratio"] > 1.05 and row["ratio_q1"] > 1
            if not (missed or slower):
                continue
            if row["unit"] == "KiB":
                how = f"{num(row['ours'] - row['theirs'])} KiB more per interpreter"
            elif row["ratio"] >= 2:
                how = f"{row['ratio']:.1f}× CPython's time"
            elif row["ratio"] > 1:
                how = f"{(row['ratio'] - 1) * 100:.0f}% slower"
            else:
                how = f"{(1 - row['ratio']) * 100:.0f}% faster, not enough"
            t = f", target {target_text(row)}" if target_text(row) else ""
            found.append(
                (
                    row["ratio"] / (target or 1) if row.get("target_ours") is None else 0,
                    f"- CPython {d['meta']['python']}, **{row['name']}**: ratio "
                    f"{row['ratio']:.2f} (IQR {row['ratio_q1']:.2f}–{row['ratio_q3']:.2f}{t}): "
                    f"{num(row['ours'])} vs {num(row['theirs'])} {row['unit']}, {how}.",
                )
            )
    found.sort(key=lambda x: -x[0])
    return [text for _k, text in found]


def notes(runs: list[dict]) -> list[str]:
    seen: list[str] = []
    for d in runs:
        for name in ORDER:
            for n in d["benchmarks"].get(name, {}).get("notes", []):
                if n not in seen:
                    seen.append(n)
    return seen


def install_results() -> list[dict]:
    """bench/size_import.py's results (bench/results/install-py3*.json), oldest Python first."""
    found = []
    for path in glob.glob(os.path.join(HERE, "results", "install-py3*.json")):
        with open(path) as f:
            found.append(json.load(f))
    found.sort(key=lambda d: tuple(int(x) for x in d["meta"]["python"].split(".")[:2]))
    return found


def install_section(results: list[dict]) -> list[str]:
    if not results:
        return []

    def ms(d: dict, module: str) -> str:
        t = d["import_seconds"].get(module)
        return "n/a (3.14+)" if t is None else f"{num(t * 1e3)} ms"

    out = [
        "## Wheel size and import time",
        "",
        "The release wheel (`make wheels`; `bench/size_import.py`): its size, the extension's "
        "size inside it, and the time of a first `import` in a fresh process (median of "
        f"{results[0]['meta']['rounds']} processes per module, the two modules alternating; "
        "interpreter startup excluded). In brackets, the machine's 1-minute load average at "
        "the time: compare the two modules on one row, not rows with each other.",
        "",
        "| CPython | wheel | extension (.so) | `import subinterpreters.interpreters` "
        "| `import concurrent.interpreters` |",
        "|---|---:|---:|---:|---:|",
    ]
    for d in results:
        load = d["meta"].get("load")
        out.append(
            f"| {d['meta']['python']}{f' (load {load})' if load is not None else ''} "
            f"| {num(d['wheel_bytes'] / 1024)} KiB "
            f"| {num(d['extension_bytes'] / 1024)} KiB "
            f"| {ms(d, 'subinterpreters.interpreters')} | {ms(d, 'concurrent.interpreters')} |"
        )
    return out + [""]


def render(runs: list[dict]) -> str:
    m = runs[0]["meta"]["machine"]
    mem = m.get("memory_bytes")
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# Benchmarks",
        "",
        "<!-- Generated by bench/report.py from bench/results/*.json; do not edit by hand. -->",
        "",
        "`subinterpreters.lowlevel` (ours) against CPython's own module (theirs: 3.11 "
        "`_xxsubinterpreters`; 3.12 `_xxsubinterpreters` + `_xxinterpchannels`; 3.13, 3.14 "
        "and 3.15 `_interpreters` + `_interpchannels`, through `bench/adapters.py`), and "
        "`subinterpreters.interpreters` (ours, PEP 734) against the standard library's "
        "`concurrent.interpreters` (3.14, 3.15) or PyPI's pure-Python `backports.interpreters` "
        "(3.11 to 3.13) in the rows named PEP 734, in the same process "
        "of the same Python, timed alternately batch after batch (A B, B A, ...) after a "
        "warm-up. Each ratio is ours / theirs, the median over rounds of the ratio of two adjacent "
        "batches: **below 1 we are faster**. In brackets, the interquartile range of those "
        "per-round ratios (the noise). The ours and theirs columns are each side's median time. "
        "Our machines are shared: compare ratios from one run, not absolute times across runs.",
        "",
        "Regenerate: `make bench` (all versions, then this file); one benchmark on one version: "
        "`.venv/py312/bin/python bench/bench.py --only send_recv` then `python bench/report.py "
        "-o BENCHMARKS.md`. Add `--quick` for a short run. The wheel table: "
        "`bench/size_import.py` (run by `make bench` for each version).",
        "",
        f"- Report generated: {today}",
        f"- Machine: {m['cpu']}, {m['cpus']} CPUs ({m['usable_cpus']} usable), "
        f"{num(mem / 2**30) + ' GiB RAM' if mem else 'RAM unknown'}, {m['platform']}",
        "- Runs: "
        + "; ".join(
            f"CPython {d['meta']['python']} at {d['meta']['date']}"
            f"{' (quick)' if d['meta'].get('quick') else ''}, git {d['meta']['git']}"
            for d in runs
        ),
        "",
        "## Ratios (ours / theirs)",
        "",
        summary_table(runs),
        "",
        "✗ = target missed. The PEP 734 round trip's target is our median latency (absolute).",
        "",
        "## Targets",
        "",
        targets_table(runs),
        "",
    ]
    out += install_section(install_results())
    out += pool_section(runs)
    out += workloads_report.section()
    out += stop_section(runs)
    out += [
        "## Where we lose",
        "",
    ]
    lost = losses(runs) + pool_losses(runs) + workloads_report.losses() + stop_losses(runs)
    out += lost or ["Nowhere: every target met, and nothing slower than CPython beyond the noise."]
    problems = []
    for d in runs:
        for name in ORDER:
            b = d["benchmarks"].get(name, {})
            if b.get("error"):
                problems.append(f"- CPython {d['meta']['python']}, {name}: {b['error']}")
            if b.get("skipped"):
                problems.append(f"- CPython {d['meta']['python']}, {name} skipped: {b['skipped']}")
            for p in b.get("problems", []):
                problems.append(f"- CPython {d['meta']['python']}, {name}: {p}")
    if problems:
        out += ["", "## Failures, skips and problems seen while benchmarking", ""] + problems
    out += ["", "## Per version", ""]
    for d in runs:
        out.append(version_section(d))
    out += ["## How each benchmark measures", ""]
    out += [
        "- create+destroy: `create()` then `destroy(id)`, each implementation's default "
        "(isolated: an own GIL on 3.12+).",
        "- run_string: `run_string(id, 'pass')` (3.13+: `_interpreters.run_string`, which returns "
        "None or an excinfo); the shared variant passes 10 items (ints, str, bytes, None).",
        "- send+recv: one send then one recv on one channel in the main interpreter, the "
        "module's functions called directly in a `timeit` loop (3.13+: `send(..., "
        "blocking=False)`, `recv(...)[0]`); ns per pair; GB/s = payload bytes / pair time. "
        "For large bytes CPython copies once: its cross-interpreter data keeps a reference to "
        "the sender's object and copies at recv. Ours copies twice, at send into memory owned "
        "by Rust (so that items outlive their sender, see docs/values.md) and at recv, so about 2× "
        "is the floor of that design at 1 MiB.",
    ]
    out += [f"- {n}" for n in notes(runs)]
    out += [""]
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="*", help="bench.py JSON files (default bench/results/py3*.json)")
    p.add_argument("-o", "--output", help="write here (default: stdout)")
    args = p.parse_args()
    files = args.files or sorted(glob.glob(os.path.join(HERE, "results", "py3*.json")))
    if not files:
        sys.exit("no results: run bench/bench.py first")
    runs = []
    for path in files:
        with open(path) as f:
            runs.append(json.load(f))
    runs.sort(key=lambda d: tuple(int(x) for x in d["meta"]["python"].split(".")[:2]))
    text = render(runs)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        print(text)


if __name__ == "__main__":
    main()
