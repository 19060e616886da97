"""The "Real workloads" section of BENCHMARKS.md and its charts, from bench/workloads.py's
results (bench/results/workloads_py3XX.json). Called by bench/report.py; the charts are SVG
written by hand here (no plotting dependency): bench/results/workloads_py3XX.svg."""

from __future__ import annotations

import glob
import json
import os
from xml.sax.saxutils import escape

HERE = os.path.dirname(os.path.abspath(__file__))
ORDER = ("serial", "threads", "procs", "stdlib", "ours")
COLORS = {
    "serial": "#9e9e9e",
    "threads": "#f2a541",
    "procs": "#5b8fd1",
    "stdlib": "#8e6cc4",
    "ours": "#2e9e5b",
}
SHORT = {
    "serial": "serial",
    "threads": "threads",
    "procs": "processes",
    "stdlib": "stdlib interpreter pool",
    "ours": "ours",
}


def load() -> list[tuple[str, dict]]:
    runs = []
    for path in sorted(glob.glob(os.path.join(HERE, "results", "workloads_py3*.json"))):
        with open(path) as f:
            runs.append((path, json.load(f)))
    runs.sort(key=lambda r: tuple(int(x) for x in r[1]["meta"]["python"].split(".")[:2]))
    return runs


def svg(data: dict) -> str:
    """Horizontal grouped bars: each workload's speed relative to the fastest side (1.0 = the
    fastest of all sides for that workload; longer is faster)."""
    w = data["workloads"]
    names = list(w)
    sides = [k for k in ORDER if k in next(iter(w.values()))]
    bar, gap, left, width = 9, 10, 190, 420
    group = bar * len(sides) + gap
    top = 40
    height = top + group * len(names) + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 60}" '
        f'height="{height}" font-family="sans-serif" font-size="11">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="10" y="18" font-size="13" font-weight="bold">CPython '
        f"{escape(data['meta']['python'])}, {data['meta']['workers']} workers: speed relative to "
        f"the fastest side (longer is faster)</text>",
    ]
    for i, k in enumerate(sides):  # legend
        x = 10 + i * 150
        out.append(f'<rect x="{x}" y="24" width="10" height="10" fill="{COLORS[k]}"/>')
        out.append(f'<text x="{x + 14}" y="33">{escape(SHORT[k])}</text>')
    for gi, name in enumerate(names):
        y0 = top + gi * group
        times = {k: w[name][k]["median"] for k in sides}
        fastest = min(times.values())
        out.append(
            f'<text x="{left - 6}" y="{y0 + group / 2}" text-anchor="end">{escape(name)}</text>'
        )
        for si, k in enumerate(sides):
            rel = fastest / times[k] if times[k] > 0 else 0
            y = y0 + si * bar
            out.append(
                f'<rect x="{left}" y="{y}" width="{max(1, rel * width):.1f}" '
                f'height="{bar - 1}" fill="{COLORS[k]}"/>'
            )
            if k == "ours":
                out.append(
                    f'<text x="{left + max(1, rel * width) + 3:.1f}" y="{y + bar - 2}" '
                    f'font-size="9">{rel:.2f}</text>'
                )
    out.append(f'<line x1="{left}" y1="{top - 2}" x2="{left}" y2="{height - 36}" stroke="black"/>')
    out.append(f'<text x="{left + width}" y="{height - 22}" text-anchor="end">1.0 = fastest</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def ms(x: float) -> str:
    x *= 1e3
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def escape_cell(text: str) -> str:
    return text.replace("|", "\\|")


def cpu_table(d: dict, sides: list[str]) -> list[str]:
    """Per CPU-bound workload and side: CPU ms per task, CPUs kept busy, how the side's
    worker threads spent the rounds, CPUs other work used meanwhile (runs that recorded
    them)."""
    rows = [(n, w) for n, w in d["workloads"].items() if "cpus_used" in next(iter(w.values()))]
    if not rows:
        return []

    def pct(u, key):
        return f"{u[key]:.0%}" if key in u else "–"

    out = [
        "",
        "CPU use of the CPU-bound workloads, per side, over all rounds: the CPU time per task, "
        "the CPUs it kept busy, how its worker threads (serial: the calling thread; processes: "
        "each worker's main thread) spent the time (on a CPU, runnable but waiting for one, "
        "idle), and the CPUs all other work on the machine used meanwhile. Workers waiting for "
        "a CPU mean a busy machine; idle workers, gaps of the executor's own.",
        "",
        "| workload | side | CPU ms per task | CPUs busy | workers on a CPU | waiting for a CPU "
        "| idle | CPUs other work used |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, by_side in rows:
        for k in sides:
            u = by_side[k]
            others = u.get("cpus_used_by_others")
            out.append(
                f"| {name} | {SHORT[k]} | {u['cpu_ms_per_task']:.3g} | {u['cpus_used']:.2f} | "
                f"{pct(u, 'workers_on_cpu')} | {pct(u, 'workers_waiting')} | "
                f"{pct(u, 'workers_idle')} | " + ("–" if others is None else f"{others:.2f}") + " |"
            )
    return out


def section(write_charts: bool = True) -> list[str]:
    runs = load()
    if not runs:
        return []
    out = [
        "## Real workloads",
        "",
        "bench/workloads.py: small real programs in our pool against serial, "
        "`ThreadPoolExecutor`, `ProcessPoolExecutor` (forkserver) and, on 3.14+, the standard "
        "library's `InterpreterPoolExecutor`, 2 workers each, in one process, sides interleaved "
        "round after round; medians over the rounds. Times are per task (ms). The CPU-bound "
        "workloads run 16 tasks of some 20-40 ms each per round. The chart shows each side's "
        "speed relative to the fastest side of that workload.",
        "",
        "Our machine has 2 cores, shared with other work: a speed-up over serial needs both "
        "cores free. So the run also measures, for each side of a CPU-bound workload, the CPU "
        "time it used (this process's threads, plus the worker processes of "
        "`ProcessPoolExecutor`) and the CPU time the rest of the machine used meanwhile "
        "(/proc/stat, steal included); the table under each version's shows them, and each "
        "CPU-bound target says how many CPUs other work left free while ours ran.",
        "",
    ]
    for path, d in runs:
        m = d["meta"]
        chart = os.path.splitext(path)[0] + ".svg"
        if write_charts:
            with open(chart, "w") as f:
                f.write(svg(d))
        rel = os.path.relpath(chart, os.path.dirname(HERE))
        sides = [k for k in ORDER if k in m["sides"]]
        out += [
            f"### CPython {m['python']}"
            + (" (quick)" if m.get("quick") else "")
            + f", git {m.get('git')}, {m['when']}",
            "",
            f"![workloads on CPython {m['python']}]({rel})",
            "",
            *(
                [
                    f"Load average (1 min) before / after the run: {m['load_before']:.1f} / "
                    f"{m['load_after']:.1f} on {m['cpus']} CPUs"
                    + (
                        ": the machine was busy with other work, so these numbers are noisy "
                        "and the parallel speed-ups understated."
                        if max(m["load_before"], m["load_after"]) > m["cpus"]
                        else "."
                    ),
                    "",
                ]
                if "load_before" in m and "load_after" in m
                else []
            ),
            "| workload (ms per task) | " + " | ".join(SHORT[k] for k in sides) + " |",
            "|---|" + "---:|" * len(sides),
        ]
        for name, by_side in d["workloads"].items():
            best = min(by_side[k]["median"] for k in sides)
            cells = []
            for k in sides:
                t = by_side[k]["median"]
                cells.append(f"**{ms(t)}**" if t == best else ms(t))
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        lat = d["latency"]
        out.append(
            "| cheap request while a long task runs, p50 / p99 | "
            + " | ".join(
                f"{lat[k]['p50_ms']:.2f} / {lat[k]['p99_ms']:.2f}" if k in lat else "–"
                for k in sides
            )
            + " |"
        )
        mp = d["map"]
        out.append(
            "| map over 100,000 items: items/s, peak RSS growth (MB) | "
            + " | ".join(
                f"{mp[k]['items_per_s']:.0f}, {mp[k]['peak_rss_growth_mb']:.1f}" for k in sides
            )
            + " |"
        )
        out += cpu_table(d, sides)
        out += ["", "| target | value | verdict | evidence |", "|---|---:|---|---|"]
        for t in d["targets"]:
            verdict = {True: "met", False: "**missed**", None: "n/a (3.12+ target)"}[t["met"]]
            note = escape_cell(t.get("note") or "")
            out.append(f"| {t['name']}: {t['target']} | {t['value']} | {verdict} | {note} |")
        for p in d.get("problems", []):
            out.append(f"- problem: {p}")
        out.append("")
    return out


def losses() -> list[str]:
    """The "Where we lose" lines of the workloads: each missed target, with its evidence."""
    found = []
    for _path, d in load():
        for t in d["targets"]:
            if t["met"] is False:
                note = f" ({t['note']})" if t.get("note") else ""
                found.append(
                    f"- CPython {d['meta']['python']}, **workloads: {t['name']}**: {t['value']}, "
                    f"target {t['target']}{note}."
                )
    return found
