"""Interpreters used from several OS threads: who may create, run and destroy; busy interpreters;
parallelism with per-interpreter GILs (3.12+) and serialisation under 3.11's shared GIL."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest
from conftest import (
    PY311,
    PY312_PLUS,
    assert_clean_exit,
    busy,
    capture,
    evaluate,
    ids,
    run_python,
)

JOIN_TIMEOUT = 60.0


class Worker(threading.Thread):
    """A daemon thread that records its target's result or exception, joined with a timeout."""

    def __init__(self, target, *args):
        super().__init__(daemon=True)
        self._fn = target
        self._args = args
        self.result = None
        self.error: BaseException | None = None

    def run(self):
        try:
            self.result = self._fn(*self._args)
        except BaseException as exc:  # re-raised by finish()
            self.error = exc

    def finish(self):
        self.join(JOIN_TIMEOUT)
        assert not self.is_alive(), "worker thread hung"
        if self.error is not None:
            raise self.error
        return self.result


def in_thread(fn, *args):
    worker = Worker(fn, *args)
    worker.start()
    return worker.finish()


# -- any thread may run and destroy -------------------------------------------------------------


def test_run_string_from_another_thread(mod):
    sub = mod.create()
    n = int(sub)
    assert in_thread(capture, mod, n, "emit(40 + 2)") == "42"
    # The state set from the other thread is visible from this one.
    mod.run_string(sub, "x = 1")
    in_thread(mod.run_string, n, "x += 1")
    assert evaluate(mod, sub, "x") == "2"


def test_create_run_destroy_all_in_another_thread(mod):
    def cycle():
        sub = mod.create()
        out = capture(mod, sub, "emit('hi')")
        n = int(sub)
        mod.destroy(sub)
        return n, out

    n, out = in_thread(cycle)
    assert out == "hi"
    assert n not in ids(mod)


def test_threads_running_different_interpreters(mod):
    subs = [mod.create() for _ in range(4)]
    barrier = threading.Barrier(len(subs))

    def job(n):
        barrier.wait(JOIN_TIMEOUT)
        return capture(
            mod, n, f"import time\nfor _ in range(3):\n    time.sleep(0.01)\nemit({n} * 2)"
        )

    workers = [Worker(job, int(s)) for s in subs]
    for w in workers:
        w.start()
    assert [w.finish() for w in workers] == [str(int(s) * 2) for s in subs]


def test_run_string_on_a_busy_interpreter_from_other_threads(mod):
    sub = mod.create()
    n = int(sub)
    with busy(mod, sub):
        for _ in range(2):
            with pytest.raises(RuntimeError) as info:
                in_thread(mod.run_string, n, "pass")
            assert str(info.value) == "interpreter already running"
        assert in_thread(mod.is_running, n) is True
    assert in_thread(mod.is_running, n) is False
    mod.run_string(sub, "pass")


def test_other_interpreters_work_while_one_is_busy(mod):
    a = mod.create()
    b = mod.create()
    with busy(mod, a):
        assert capture(mod, b, "emit('b works')") == "b works"
        mod.destroy(b)
        assert int(b) not in ids(mod)
        c = mod.create()
        assert in_thread(capture, mod, int(c), "emit('c works')") == "c works"


# -- cross-thread create/destroy: CPython deadlocks here (CPython gh-122517), ours must not ----
#
# Each case runs in a child process so that a deadlock fails the test (the child is killed at the
# timeout) instead of hanging pytest. The interpreter imports `threading`, which is what makes
# CPython's own module deadlock when the finalizing thread is not the creating one.

_CROSS_THREAD_PRELUDE = """
import threading
import {name} as m

def ids():
    return [int(i) for i in m.list_all()]

def in_thread(fn, *args):
    box = []
    t = threading.Thread(target=lambda: box.append(fn(*args)))
    t.start()
    t.join()
    return box[0] if box else None

def make():
    sub = m.create()
    m.run_string(sub, "import threading\\nx = threading.current_thread().name")
    return sub
"""


def _cross_thread(mod, body: str, expect: str = "ok"):
    proc = run_python(_CROSS_THREAD_PRELUDE.format(name=mod.__name__) + body, timeout=30)
    assert_clean_exit(proc, expect_stdout=expect)


@pytest.mark.ours_only
def test_create_in_thread_destroy_in_main(mod):
    _cross_thread(
        mod,
        """
sub = in_thread(make)
n = int(sub)
m.destroy(sub)
assert n not in ids()
print("ok")
""",
    )


@pytest.mark.ours_only
def test_destroy_from_another_thread(mod):
    _cross_thread(
        mod,
        """
sub = make()
n = int(sub)
in_thread(m.destroy, n)
assert n not in ids()
print("ok")
""",
    )


@pytest.mark.ours_only
def test_create_and_destroy_in_two_other_threads(mod):
    _cross_thread(
        mod,
        """
subs = [in_thread(make) for _ in range(3)]
numbers = [int(s) for s in subs]
for s in subs:
    in_thread(m.destroy, int(s))
assert not set(numbers) & set(ids())
print("ok")
""",
    )


@pytest.mark.ours_only
def test_last_id_dropped_in_another_thread(mod):
    _cross_thread(
        mod,
        """
holder = [make()]
n = int(holder[0])
in_thread(holder.pop)   # the interpreter's last InterpreterID dies in that thread
assert n not in ids()
print("ok")
""",
    )


@pytest.mark.ours_only
def test_interpreters_alive_at_exit_are_cleaned_up(mod):
    _cross_thread(
        mod,
        """
import os
import sys
idle = [m.create() for _ in range(3)]
legacy = m.create(isolated=False)
from_thread = in_thread(make)
forced = m.InterpreterID(int(idle[0]), force=True)
m.run_string(idle[1], "import atexit, os\\natexit.register(os.write, 1, b'finalized\\\\n')")
print("ok", flush=True)
""",
        expect="finalized",
    )


@pytest.mark.ours_only
def test_dropping_last_id_of_a_running_interpreter(mod):
    # CPython finalizes on the spot and aborts ("thread still has a frame");
    # docs/interpreters.md#counted-lifetime says ours finalizes it once the run has ended.
    _cross_thread(
        mod,
        """
import os, time
started_r, started_w = os.pipe()
release_r, release_w = os.pipe()
sub = m.create()
n = int(sub)
script = f"import os\\nos.write({started_w}, b'1')\\nos.read({release_r}, 1)"
t = threading.Thread(target=m.run_string, args=(n, script))
t.start()
os.read(started_r, 1)
del sub                       # last InterpreterID, while it runs
assert m.is_running(n) is True
os.write(release_w, b"x")
t.join()
deadline = time.monotonic() + 10
while n in ids() and time.monotonic() < deadline:
    time.sleep(0.01)
assert n not in ids(), "not finalized after its run ended"
print("ok")
""",
    )


@pytest.mark.ours_only
def test_dropping_last_id_of_an_interpreter_with_threads(mod):
    # A legacy interpreter that left a thread blocked: dropping its last id must not abort; it is
    # finalized when safe or at exit.
    _cross_thread(
        mod,
        """
import os, time
r, w = os.pipe()
sub = m.create(isolated=False)
n = int(sub)
script = "import os, threading\\nt = threading.Thread(target=os.read, args=(r, 1))\\nt.start()"
m.run_string(sub, script, {"r": r})
del sub
os.write(w, b"x")
time.sleep(0.2)
print("ok")
""",
    )


# -- several interpreters importing the module at the same moment ------------------------------


def test_module_imports_in_several_interpreters_at_once(mod):
    subs = [mod.create(isolated=True) for _ in range(4)]
    barrier = threading.Barrier(len(subs))

    def job(n):
        barrier.wait(JOIN_TIMEOUT)
        return capture(mod, n, f"import {mod.__name__} as m\nemit(int(m.get_current()))")

    workers = [Worker(job, int(s)) for s in subs]
    for w in workers:
        w.start()
    assert [w.finish() for w in workers] == [str(int(s)) for s in subs]


# -- parallelism ----------------------------------------------------------------------------------

_SPIN = """\
import os, time
t0 = time.perf_counter()
x = 0
for i in range(N):
    x += i * i
t1 = time.perf_counter()
os.write(fd, f"{t0!r} {t1!r}".encode())
"""
_SPIN_N = 1_500_000


def _spin_together(mod, subs):
    """Run the CPU-bound script in every interpreter at once, one thread each.

    Returns (overlap fraction, process CPU time per wall time): the fraction is the common part
    of all execution windows divided by the shortest window (1.0 = fully simultaneous, <= 0 =
    one after the other).
    """
    pipes = [os.pipe() for _ in subs]
    barrier = threading.Barrier(len(subs))

    def job(n, w):
        barrier.wait(JOIN_TIMEOUT)
        mod.run_string(n, _SPIN, {"fd": w, "N": _SPIN_N})

    workers = [Worker(job, int(s), w) for s, (_, w) in zip(subs, pipes, strict=True)]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.finish()
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    windows = []
    for r, w in pipes:
        os.close(w)
        with os.fdopen(r, "rb") as f:
            start, end = map(float, f.read().split())
        windows.append((start, end))
    common = min(end for _, end in windows) - max(start for start, _ in windows)
    shortest = min(end - start for start, end in windows)
    return common / shortest, cpu / wall


@pytest.mark.skipif(not PY312_PLUS, reason="3.11 has one GIL for all interpreters")
def test_isolated_interpreters_run_in_parallel(mod):
    subs = [mod.create(isolated=True) for _ in range(2)]
    attempts = []
    for _ in range(5):  # 2 shared cores: one good attempt is proof enough
        overlap, cpu_per_wall = _spin_together(mod, subs)
        attempts.append((round(overlap, 2), round(cpu_per_wall, 2)))
        if overlap >= 0.5 or cpu_per_wall > 1.3:
            return
    pytest.fail(f"no parallel execution seen; (overlap, cpu/wall) per attempt: {attempts}")


@pytest.mark.skipif(not PY311, reason="3.11 only: one GIL shared by all interpreters")
@pytest.mark.parametrize("isolated", [True, False], ids=["isolated", "legacy"])
def test_interpreters_share_one_gil_on_311(mod, isolated):
    # Never in parallel. CPython's module runs them one after the other: a thread waiting for
    # the GIL asks its own interpreter to let go, which the busy one never hears. Runs of ours
    # take turns, nudged (crates/ext/src/interp/nudge.rs).
    subs = [mod.create(isolated=isolated) for _ in range(2)]
    attempts = [_spin_together(mod, subs) for _ in range(2)]
    assert all(cpu_per_wall < 1.25 for _, cpu_per_wall in attempts), attempts
    if mod.__name__ == "subinterpreters.lowlevel":
        assert max(overlap for overlap, _ in attempts) >= 0.5, attempts
    else:
        assert min(overlap for overlap, _ in attempts) <= 0.1, attempts


@pytest.mark.skipif(not PY312_PLUS, reason="legacy interpreters exist as such on 3.12+")
def test_legacy_interpreters_share_the_gil(mod):
    subs = [mod.create(isolated=False) for _ in range(2)]
    overlap, cpu_per_wall = _spin_together(mod, subs)
    assert cpu_per_wall < 1.25, (overlap, cpu_per_wall)


@pytest.mark.ours_only
def test_interpreter_busy_in_a_daemon_thread_at_exit_is_stopped(mod):
    # CPython 3.11/3.12 abort at exit while a subinterpreter remains, and one that is running
    # code cannot be finalized: exit-time cleanup interrupts the run (SystemExit inside it),
    # waits for it to end, then finalizes it.
    proc = run_python(
        f"""
        import threading, time
        import {mod.__name__} as m
        sub = m.create()
        started = threading.Event()
        def busy():
            started.set()
            try:
                m.run_string(sub, "import time\\nwhile True:\\n    time.sleep(0.01)")
            except m.RunFailedError as exc:
                print("interrupted:", exc, flush=True)
        threading.Thread(target=busy, daemon=True).start()
        started.wait()
        time.sleep(0.2)
        print("exiting", flush=True)
        """
    )
    detail = f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 0, detail
    assert "Fatal Python error" not in proc.stderr, detail
    assert "exiting" in proc.stdout, detail


def _cpython_interpreters():
    """CPython's own interpreter module on this version, and how to make it run a script."""
    if sys.version_info >= (3, 13):
        import _interpreters as cpy

        return cpy, lambda i, code: cpy.exec(i, code)
    import _xxsubinterpreters as cpy

    return cpy, cpy.run_string


def test_interpreters_made_by_cpythons_module(mod):
    # Ours sees, runs in, and respects the runs of interpreters that CPython's module made.
    if mod.__name__ != "subinterpreters.lowlevel":
        pytest.skip("about our module's view of CPython's interpreters")
    cpy, run = _cpython_interpreters()
    made = cpy.create()
    n = int(made)
    try:
        assert n in [int(i) for i in mod.list_all()]
        assert mod.is_running(n) is False
        mod.run_string(n, "x = 5")
        started = threading.Event()

        def busy():
            started.set()
            run(n, "import time; time.sleep(0.5)")

        t = threading.Thread(target=busy)
        t.start()
        started.wait()
        deadline = time.monotonic() + 5
        while not mod.is_running(n) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert mod.is_running(n) is True
        with pytest.raises(RuntimeError, match="^interpreter already running$"):
            mod.run_string(n, "pass")
        t.join()
        assert mod.is_running(n) is False
    finally:
        try:
            mod.destroy(n)
        except RuntimeError:
            cpy.destroy(n)  # 3.13 keeps extra thread states ours will not finalize through
    assert n not in [int(i) for i in mod.list_all()]
