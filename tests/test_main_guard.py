"""A main script without ``if __name__ == "__main__":`` that starts interpreters or a pool ends
in one RuntimeError naming the guard: a worker that runs the script to find one of its
functions must not start interpreters of its own (and then fail, or run it again)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(120)

POOL = """
    import math
    from subinterpreters.futures import InterpreterPoolExecutor

    def root(x):  # uses a global: crosses by reference to __main__
        return math.sqrt(x)

    with InterpreterPoolExecutor(2) as pool:
        print(list(pool.map(root, range(8))))
"""

INTERPRETER = """
    import math
    from subinterpreters import interpreters

    def root(x):
        return math.sqrt(x)

    with interpreters.create() as interp:
        print(interp.call(root, 4))
"""

GUARDED = """
    import math
    from subinterpreters.futures import InterpreterPoolExecutor

    def root(x):
        return math.sqrt(x)

    if __name__ == "__main__":
        with InterpreterPoolExecutor(2) as pool:
            print(list(pool.map(root, [4, 9])))
"""


def _run_script(tmp_path, source):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    return subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=100
    )


@pytest.mark.parametrize("source", [POOL, INTERPRETER], ids=["pool", "interpreter"])
def test_missing_main_guard_is_one_runtime_error(tmp_path, source):
    proc = _run_script(tmp_path, source)
    detail = f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode != 0, detail
    assert proc.stdout == "", detail
    errors = [line for line in proc.stderr.splitlines() if line.startswith("RuntimeError: ")]
    assert len(errors) == 1, detail
    assert 'if __name__ == "__main__":' in proc.stderr, detail
    assert str(tmp_path / "script.py") in proc.stderr, detail
    assert proc.stderr.count("Traceback") == 1, detail
    assert len(proc.stderr.splitlines()) <= 40, detail


def test_guarded_script_runs(tmp_path):
    proc = _run_script(tmp_path, GUARDED)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[2.0, 3.0]"
