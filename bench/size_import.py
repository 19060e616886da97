"""Wheel size and import time, for the size-and-import table of BENCHMARKS.md.

    python bench/size_import.py --wheel dist/subinterpreters-...-cp314-....whl \\
        --json bench/results/install-py314.json

Run with the Python whose venv has that wheel installed (scripts/dev.sh bench does). Each import
is timed in a fresh process (the module cache empty, as for a user's first import), from a
directory outside the source tree; the two modules alternate round by round so that the machine's
noise falls on both; the result is the median over rounds. `concurrent.interpreters` is the
standard library's PEP 734 module (3.14+); below 3.14 only ours is measured.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import zipfile

OURS = "subinterpreters.interpreters"
STDLIB = "concurrent.interpreters"
# The child prints the seconds its one import took (startup excluded).
CHILD = "import time; t = time.perf_counter(); import {mod}; print(time.perf_counter() - t)"


def import_seconds(module: str, cwd: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(mod=module)],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--wheel", required=True, help="the wheel installed in this Python's venv")
    p.add_argument("--rounds", type=int, default=21, help="fresh processes per module")
    p.add_argument("--json", required=True, help="write the result here")
    args = p.parse_args()

    modules = [OURS] + ([STDLIB] if sys.version_info >= (3, 14) else [])
    times: dict[str, list[float]] = {m: [] for m in modules}
    with tempfile.TemporaryDirectory() as cwd:
        for m in modules:  # warm the OS file cache once; not counted
            import_seconds(m, cwd)
        for i in range(args.rounds):
            for m in modules if i % 2 == 0 else modules[::-1]:
                times[m].append(import_seconds(m, cwd))

    with zipfile.ZipFile(args.wheel) as z:
        so = [i for i in z.infolist() if i.filename.endswith(".so")]
    result = {
        "meta": {
            "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "rounds": args.rounds,
            # The machine's 1-minute load average when the run ended: on a busy machine every
            # import takes longer, ours and the standard library's alike.
            "load": round(os.getloadavg()[0], 1),
        },
        "wheel": os.path.basename(args.wheel),
        "wheel_bytes": os.path.getsize(args.wheel),
        "extension_bytes": sum(i.file_size for i in so),
        "import_seconds": {m: statistics.median(t) for m, t in times.items()},
    }
    with open(args.json, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
