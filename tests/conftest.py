"""Shared fixtures for the interpreter tests.

Every test that takes the ``mod`` fixture runs once per implementation of the 3.11 API:

* ``ours``: ``subinterpreters.lowlevel`` (this project), on every supported CPython;
* ``cpython``: CPython's own ``_xxsubinterpreters`` (3.11 and 3.12 only; 3.13 removed it).

Running the same case against both shows where we diverge. Cases where we differ from CPython on
purpose (docs/differences.md), or that would crash or hang CPython's
module, carry ``@pytest.mark.ours_only`` and are never generated for ``cpython``.

While ``subinterpreters.lowlevel`` is not built yet the ``ours`` cases are skipped with a
reason, and the terminal summary says so in one line. Set ``SUBINTERPRETERS_REQUIRE_OURS=1`` to
make a missing module an error instead (any import failure other than "module not found"
already fails).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import operator
import os
import select
import subprocess
import sys
import textwrap
import threading

import pytest

OURS = "subinterpreters.lowlevel"
CPYTHON = "_xxsubinterpreters" if sys.version_info < (3, 13) else None

PY311 = sys.version_info[:2] == (3, 11)
PY312_PLUS = sys.version_info >= (3, 12)
PY314_PLUS = sys.version_info >= (3, 14)

# Attributes of our RunFailedError carrying the remote exception as data (see
# docs/module.md#exceptions). Kept here so a rename touches one place.
RUNFAILED_TYPE_NAME = "type_name"
RUNFAILED_TRACEBACK = "traceback"

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))

# Why `ours` could not be imported, if it could not; reported once at the end of the run.
_ours_missing: str | None = None


def _import_ours():
    """Import our module, or return None with the reason recorded when it is simply not built."""
    global _ours_missing
    try:
        return importlib.import_module(OURS)
    except ModuleNotFoundError as exc:
        if exc.name not in ("subinterpreters", OURS):
            raise  # a dependency of ours is missing: that is a real failure
        if os.environ.get("SUBINTERPRETERS_REQUIRE_OURS"):
            raise
        _ours_missing = (
            f"{OURS} is not importable on {sys.executable} ({exc}); build and install it "
            f"with `scripts/dev.sh build {sys.version_info[0]}.{sys.version_info[1]}`"
        )
        return None


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "ours_only: a deliberate difference from CPython, or a case that crashes/hangs CPython's "
        "module; generated only for the `ours` implementation",
    )


def pytest_generate_tests(metafunc):
    if "mod" not in metafunc.fixturenames:
        return
    impls = ["ours"]
    if CPYTHON is not None and metafunc.definition.get_closest_marker("ours_only") is None:
        impls.append("cpython")
    metafunc.parametrize("mod", impls, indirect=True)


def pytest_report_header(config):
    ours = "missing" if _import_ours() is None else "importable"
    return f"implementations: ours={OURS} ({ours}), cpython={CPYTHON or 'none on this version'}"


def pytest_terminal_summary(terminalreporter):
    if _ours_missing is not None:
        terminalreporter.write_line(f"NOT TESTED: {_ours_missing}", yellow=True, bold=True)


@pytest.fixture
def mod(request):
    """The module under test: ours or CPython's (see the module docstring)."""
    if request.param == "cpython":
        return importlib.import_module(CPYTHON)
    m = _import_ours()
    if m is None:
        pytest.skip(_ours_missing)
    return m


def is_ours(mod) -> bool:
    return mod.__name__ == OURS


def speaks_311(mod) -> bool:
    """True where 3.11's wording is expected: ours on every version, CPython's module on 3.11."""
    return is_ours(mod) or PY311


def ids(mod) -> list[int]:
    """The live interpreter ids as plain ints (holding no InterpreterID objects)."""
    return [int(i) for i in mod.list_all()]


@pytest.fixture(autouse=True)
def _destroy_new_interpreters(request):
    """After each test, destroy every interpreter the test left behind (using the same module).

    Only interpreters that did not exist before the test are touched, so a leak under one
    implementation is never cleaned up through the other. A leftover that cannot be destroyed
    (still busy, say) fails the test in teardown.
    """
    if "mod" not in request.fixturenames:
        yield
        return
    m = request.getfixturevalue("mod")
    before = set(ids(m))
    yield
    gc.collect()  # tracebacks and cycles may still hold InterpreterIDs
    problems = []
    for n in ids(m):
        if n in before:
            continue
        try:
            m.destroy(n)
        except RuntimeError as exc:
            if "unrecognized interpreter ID" not in str(exc):
                problems.append(f"interpreter {n}: {exc}")
    assert not problems, f"could not clean up after the test: {problems}"


# -- output capture ---------------------------------------------------------------------------

_EMIT_PRELUDE = """\
import os as _cap_os
def emit(*parts):
    _cap_os.write(_cap_fd, "".join(map(str, parts)).encode("utf-8", "surrogatepass"))
"""


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def capture(mod, interp, script: str, shared=None) -> str:
    """Run ``script`` in ``interp`` and return what it passed to ``emit(...)``.

    The write end of an ``os.pipe`` goes to the subinterpreter as an int through ``shared``;
    ``emit`` is defined in its ``__main__`` by a first ``run_string`` so the script's own line
    numbers stay intact.
    """
    r, w = os.pipe()
    try:
        mod.run_string(interp, _EMIT_PRELUDE, {"_cap_fd": w})
        mod.run_string(interp, script, shared)
    finally:
        os.close(w)
        try:
            data = _read_all(r)
        finally:
            os.close(r)
    return data.decode("utf-8", "surrogatepass")


def evaluate(mod, interp, expr: str) -> str:
    """``repr(expr)`` evaluated inside ``interp``."""
    return capture(mod, interp, f"emit(repr({expr}))")


# -- keeping an interpreter busy --------------------------------------------------------------


def _wait_readable(fd: int, timeout: float) -> bool:
    readable, _, _ = select.select([fd], [], [], timeout)
    return bool(readable)


@contextlib.contextmanager
def busy(mod, interp, *, timeout: float = 30.0):
    """Keep ``interp`` inside ``run_string`` (in a helper thread) for the duration of the block.

    The script signals that it started, then blocks reading a pipe until the block exits. The
    thread is given a plain int id so it holds no InterpreterID of its own. Any exception from
    the helper's ``run_string`` is re-raised on exit.
    """
    started_r, started_w = os.pipe()
    release_r, release_w = os.pipe()
    errors: list[BaseException] = []
    n = int(interp)
    script = f"import os\nos.write({started_w}, b'1')\nos.read({release_r}, 1)\n"

    def target():
        try:
            mod.run_string(n, script)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            os.write(started_w, b"e")  # unblock the waiter if the script never started

    thread = threading.Thread(target=target, name=f"busy-{n}", daemon=True)
    thread.start()
    try:
        assert _wait_readable(started_r, timeout), "busy helper never started"
        if os.read(started_r, 1) != b"1":
            thread.join(timeout)
            raise AssertionError(f"busy helper failed to start: {errors!r}")
        yield thread
    finally:
        os.write(release_w, b"x")
        thread.join(timeout)
        alive = thread.is_alive()
        if not alive:
            for fd in (started_r, started_w, release_r, release_w):
                os.close(fd)
    assert not alive, "busy helper did not finish after release"
    if errors:
        raise errors[0]


# -- subprocesses -----------------------------------------------------------------------------


def run_python(code: str, *, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter process (for cases that could crash or hang pytest).

    A crash shows as a non-zero return code, a hang as a stack dump on stderr and a non-zero
    return code (``subprocess.TimeoutExpired`` if even that fails).
    """
    # Dump every thread's stack and exit shortly before the timeout, so a hang shows where.
    watchdog = (
        f"import faulthandler; faulthandler.dump_traceback_later({timeout * 0.8}, exit=True)\n"
    )
    return subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", watchdog + textwrap.dedent(code)],
        cwd=TESTS_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_clean_exit(proc: subprocess.CompletedProcess, *, expect_stdout: str | None = None):
    detail = f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 0, detail
    assert "Fatal Python error" not in proc.stderr, detail
    assert "Traceback" not in proc.stderr, detail
    if expect_stdout is not None:
        assert proc.stdout.strip().splitlines()[-1:] == [expect_stdout], detail


# -- ID-like argument values shared by the interpreter and channel tests -----------------------

UNKNOWN = 999_999  # an id no interpreter or channel reaches within one test process


class Neg:
    def __index__(self):
        return -1

    def __repr__(self):
        return "Neg()"


class Huge:
    def __index__(self):
        return 2**70


class IndexRaises:
    def __index__(self):
        raise KeyError("idx")


class IndexNotInt:
    def __index__(self):
        return "x"


def _message_of(func, arg):
    try:
        func(arg)
    except TypeError as exc:
        return str(exc)
    raise AssertionError(f"{func!r} accepted {arg!r}")


# CPython's own wording for a bad `__index__` result, which changed in 3.15 ("I.__index__() must
# return an int, not str"): our module passes CPython's error through, so the version decides.
INDEX_NOT_INT_MESSAGE = _message_of(operator.index, IndexNotInt())


class StrWithIndex(str):
    def __index__(self):
        return UNKNOWN


class IntSub(int):
    pass


@pytest.fixture(scope="module")
def no_pool_threads_left():
    """Joins the helper threads pool and asyncio tests leave in the main interpreter.

    On 3.11 an interpreter with threads of its own counts as "more than one thread" for
    `is_running`, `destroy` and `run_string` (main included), so later modules' tests would see
    a different main interpreter than they expect.
    """
    yield
    gc.collect()  # pools nobody shut down stop their collectors when collected
    interps = sys.modules.get("subinterpreters.interpreters")
    if interps is not None:
        interps._stop_call_runners()  # the call_async runners of interpreters still open
    for t in threading.enumerate():
        if t.name.startswith("subinterpreters-"):
            t.join(30)


@pytest.fixture(scope="module")
def pool(no_pool_threads_left):
    """A two-worker InterpreterPoolExecutor shared by one module's tests (a module may
    define its own)."""
    from subinterpreters.futures import InterpreterPoolExecutor

    with InterpreterPoolExecutor(2) as p:
        yield p


# Modules whose tests leave helper threads in the main interpreter (pool collectors of pools
# that are still referenced, call_async runners) run after every other module: on 3.11
# those threads change what `is_running(main)` and friends answer.
_RUN_LAST = (
    "test_aio.py",
    "test_dask.py",
    "test_exceptions.py",
    "test_futures.py",
    "test_stop.py",
)


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.fspath.basename in _RUN_LAST)
