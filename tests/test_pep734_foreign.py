"""subinterpreters.interpreters with interpreters it did not create, and beside CPython's modules.

Interpreters made through CPython's C-API (``_testinternalcapi``, 3.13+) or by CPython's own
interpreter module (``_xxsubinterpreters`` on 3.12, ``_interpreters`` on 3.13+) must behave as in
3.14's ``concurrent.interpreters``: listed, refused where 3.14 refuses them, never a crash. Runs
of ours carry CPython's running mark (3.12+), so CPython's modules see them busy, and we refuse an
interpreter CPython's module is running. Where CPython has ``concurrent.interpreters`` (3.14+),
the C-API cases also run against it, so that differences show. Also here: reloading the modules,
and Ctrl-C while an interpreter runs.
"""

from __future__ import annotations

import importlib
import os
import re
import signal
import sys
import threading

import ctrl_c
import pytest
from conftest import PY312_PLUS, PY314_PLUS, TESTS_DIR
from subinterpreters import interpreters as ours

OURS = "subinterpreters.interpreters"
CPYTHON = "concurrent.interpreters" if PY314_PLUS else None

try:
    import _testinternalcapi
except ImportError:
    _testinternalcapi = None
HAS_CAPI = hasattr(_testinternalcapi, "create_interpreter")  # 3.13+

# CPython's own interpreter module, if this Python has one.
if sys.version_info >= (3, 13):
    import _interpreters as cpython_ll
elif PY312_PLUS:
    import _xxsubinterpreters as cpython_ll
else:
    cpython_ll = None

needs_capi = pytest.mark.skipif(not HAS_CAPI, reason="needs _testinternalcapi.create_interpreter")
needs_marks = pytest.mark.skipif(
    not PY312_PLUS, reason="CPython's interpreter module keeps no running mark before 3.12"
)


def pytest_generate_tests(metafunc):  # noqa: D103  (collected by pytest from this module)
    if "interps" not in metafunc.fixturenames:
        return
    impls = ["ours"] + (["cpython"] if CPYTHON is not None else [])
    metafunc.parametrize("interps", impls, indirect=True)


@pytest.fixture
def interps(request):
    return importlib.import_module(OURS if request.param == "ours" else CPYTHON)


@pytest.fixture
def capi_interp():
    interpid = _testinternalcapi.create_interpreter()
    yield interpid
    try:
        _testinternalcapi.destroy_interpreter(interpid)
    except Exception:  # closed by the test
        pass


@pytest.fixture
def ours_interp():
    interp = ours.create()
    yield interp
    try:
        interp.close()
    except ours.InterpreterNotFoundError:
        pass


def ids(mod):
    return [i.id for i in mod.list_all()]


def wait_for_byte(fd):
    assert os.read(fd, 1) == b"x"


# -- interpreters made through the C-API ---------------------------------------------------------


@needs_capi
def test_capi_interpreter_listed_and_refused(interps, capi_interp):
    interp = interps.Interpreter(capi_interp)
    assert capi_interp in ids(interps)
    assert interp.whence == "cross-interpreter C-API"
    assert interp.is_running() is False
    attempts = {
        "cannot exec code for": lambda: interp.exec("x = 1"),
        "cannot make a call in": lambda: interp.call(int),
        "cannot update __main__ for": lambda: interp.prepare_main(x=1),
        "cannot destroy": interp.close,
    }
    for what, attempt in attempts.items():
        with pytest.raises(interps.InterpreterError, match=re.escape(f"{what} unrecognized")):
            attempt()
    # Nothing ran there and nothing was destroyed.
    assert capi_interp in ids(interps)
    assert _testinternalcapi.exec_interpreter(capi_interp, "assert 'x' not in dir()") == 0


@needs_capi
def test_capi_interpreter_refused_by_call_in_thread(interps, capi_interp):
    raised = []
    old_hook = threading.excepthook
    threading.excepthook = lambda args: raised.append(args.exc_value)
    try:
        interps.Interpreter(capi_interp).call_in_thread(int).join()
    finally:
        threading.excepthook = old_hook
    assert len(raised) == 1
    assert isinstance(raised[0], interps.InterpreterError)
    assert "unrecognized interpreter" in str(raised[0])


@needs_capi
def test_capi_interpreter_close_of_lowlevel_never_aborts(capi_interp):
    # lowlevel.destroy() does not restrict by origin (as CPython's _interpreters without
    # restrict=True): the C-API interpreter has no thread state, so one is made to end it.
    from subinterpreters import lowlevel

    lowlevel.destroy(capi_interp)
    assert capi_interp not in ids(ours)


@needs_capi
def test_capi_interpreter_in_use_is_not_destroyed(capi_interp):
    # A thread runs in it through the C-API without CPython's running mark: lowlevel.destroy()
    # must not end the interpreter under that thread.
    from subinterpreters import lowlevel

    r_in, w_in = os.pipe()
    r_out, w_out = os.pipe()
    script = f"import os; os.write({w_out}, b'x'); os.read({r_in}, 1)"
    t = threading.Thread(target=_testinternalcapi.exec_interpreter, args=(capi_interp, script))
    t.start()
    try:
        wait_for_byte(r_out)
        with pytest.raises(RuntimeError):
            lowlevel.destroy(capi_interp)
    finally:
        os.write(w_in, b"x")
        t.join()
        for fd in (r_in, w_in, r_out, w_out):
            os.close(fd)
    assert capi_interp in ids(ours)


def test_interpreter_destroyed_elsewhere_is_not_found():
    # Its origin is first asked when it is already gone: not found, not "unrecognized".
    from subinterpreters import lowlevel

    handle = lowlevel.create()
    interp = ours.Interpreter(int(handle))
    lowlevel.destroy(handle)
    with pytest.raises(ours.InterpreterNotFoundError):
        interp.exec("pass")


@pytest.mark.skipif(
    sys.version_info[:2] != (3, 12),
    reason="only 3.12's module ends one of ours (through its keeper); 3.13+'s aborts on the keeper",
)
def test_one_of_ours_destroyed_by_cpythons_module_is_not_run():
    # Our registry still records it: a run must find it gone from CPython's list (and never
    # use the recorded pointer), and its last ID going only forgets the record.
    from subinterpreters import lowlevel

    handle = lowlevel.create()
    made = int(handle)
    interp = ours.Interpreter(made)
    cpython_ll.destroy(made)
    assert made not in ids(ours)
    with pytest.raises(ours.InterpreterNotFoundError):
        interp.exec("pass")
    with pytest.raises(ours.InterpreterNotFoundError):
        interp.call(int, "1")
    with pytest.raises(RuntimeError, match="unrecognized"):
        lowlevel.run_string(handle, "pass")
    del handle, interp
    assert made not in ids(ours)


# -- interpreters made by CPython's own module ---------------------------------------------------


@needs_marks
def test_stdlib_made_interpreter():
    handle = cpython_ll.create()  # 3.12: the interpreter lives while this object does
    made = int(handle)
    interp = ours.Interpreter(made)
    assert made in ids(ours)
    if sys.version_info < (3, 13):
        # 3.12 records no origin: unknown, so refused as 3.14 refuses what it cannot place.
        assert interp.whence == "unknown"
        with pytest.raises(ours.InterpreterError, match="unrecognized"):
            interp.exec("pass")
        cpython_ll.destroy(handle)
        return
    assert interp.whence == "_interpreters module"
    interp.prepare_main(x=20)
    assert interp.call(int, "22") == 22
    interp.exec("assert x == 20")
    interp.close()
    assert made not in ids(ours)
    assert made not in [i for i, *_ in cpython_ll.list_all()]


# -- running, as CPython's modules see it --------------------------------------------------------


@needs_marks
def test_our_run_is_seen_running_by_cpython(ours_interp):
    r_in, w_in = os.pipe()
    r_out, w_out = os.pipe()
    t = ours_interp.call_in_thread(exec, f"import os; os.write({w_out}, b'x'); os.read({r_in}, 1)")
    try:
        wait_for_byte(r_out)
        assert cpython_ll.is_running(ours_interp.id)
        # The hang: CPython's destroy() went ahead while our code ran.
        with pytest.raises((RuntimeError, getattr(cpython_ll, "InterpreterError", RuntimeError))):
            cpython_ll.destroy(ours_interp.id)
    finally:
        os.write(w_in, b"x")
        t.join()
        for fd in (r_in, w_in, r_out, w_out):
            os.close(fd)
    assert not cpython_ll.is_running(ours_interp.id)
    assert ours_interp.call(int, "7") == 7


@needs_marks
def test_cpython_run_is_refused_by_ours(ours_interp):
    r_in, w_in = os.pipe()
    r_out, w_out = os.pipe()
    script = f"import os; os.write({w_out}, b'x'); os.read({r_in}, 1)"
    run = cpython_ll.exec if sys.version_info >= (3, 13) else cpython_ll.run_string
    t = threading.Thread(target=run, args=(ours_interp.id, script))
    t.start()
    try:
        wait_for_byte(r_out)
        assert ours_interp.is_running()
        with pytest.raises(ours.InterpreterError, match="running"):
            ours_interp.exec("pass")
        with pytest.raises(ours.InterpreterError, match="interpreter running"):
            ours_interp.close()
    finally:
        os.write(w_in, b"x")
        t.join()
        for fd in (r_in, w_in, r_out, w_out):
            os.close(fd)
    assert not ours_interp.is_running()
    assert ours_interp.call(int, "8") == 8


@pytest.mark.skipif(not PY314_PLUS, reason="concurrent.interpreters is 3.14+")
def test_concurrent_interpreters_beside_ours(ours_interp):
    from concurrent import interpreters as theirs

    assert ours_interp.id in ids(theirs)
    mine = theirs.create()
    try:
        assert mine.id in ids(ours)
        assert ours.Interpreter(mine.id).call(int, "5") == 5
        # Ours reach CPython as made through the C-API: its close() refuses them.
        with pytest.raises(theirs.InterpreterError, match="unrecognized"):
            theirs.Interpreter(ours_interp.id).close()
        assert ours_interp.call(int, "6") == 6
    finally:
        mine.close()


# -- reloading -----------------------------------------------------------------------------------


def test_reload_keeps_what_lowlevel_raises_and_returns():
    from subinterpreters.interpreters import _queues

    kept = (
        ours.UNBOUND,
        ours.UNBOUND_ERROR,
        ours.UNBOUND_REMOVE,
        ours.QueueEmpty,
        ours.QueueFull,
        ours.Queue,
        ours.InterpreterError,
        ours.NotShareableError,
    )
    importlib.reload(_queues)
    importlib.reload(ours)
    now = (
        _queues.UNBOUND,
        _queues.UNBOUND_ERROR,
        _queues.UNBOUND_REMOVE,
        _queues.QueueEmpty,
        _queues.QueueFull,
        _queues.Queue,
        ours.InterpreterError,
        ours.NotShareableError,
    )
    assert all(a is b for a, b in zip(now, kept, strict=True)), list(zip(now, kept, strict=True))
    queue = _queues.create(1)
    with pytest.raises(_queues.QueueEmpty):
        queue.get_nowait()
    queue.put(1)
    with pytest.raises(_queues.QueueFull):
        queue.put_nowait(2)
    interp = ours.create()
    with pytest.raises(ours.NotShareableError):
        interp.prepare_main(x=object())
    unbound = _queues.create()
    interp.prepare_main(q=unbound)
    interp.exec("q.put(1)")
    interp.close()
    assert unbound.get_nowait() is _queues.UNBOUND


# -- Ctrl-C --------------------------------------------------------------------------------------


def _interrupt_child(code):
    """Runs ``code`` in a child Python, presses Ctrl-C once it has printed "a", and returns its
    exit status and stderr, which must report the KeyboardInterrupt without a fatal error."""
    proc = ctrl_c.spawn(code, TESTS_DIR)
    try:
        assert ctrl_c.read_byte(proc) == b"a"
        err = ctrl_c.press_until_exit(proc)
    finally:
        ctrl_c.end(proc)
    assert b"KeyboardInterrupt" in err, err
    assert b"Fatal Python error" not in err, err
    return proc.returncode, err


def test_keyboard_interrupt_while_call_in_thread_runs():
    # The main thread waits for the call's thread at exit when SIGINT arrives: the
    # KeyboardInterrupt is reported and the process ends, without hanging or aborting.
    code = """if True:
        import signal  # a parent that ignores SIGINT (a background job) passes that on: undo it
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from subinterpreters import interpreters

        def test():
            import time
            print('a', flush=True, end='')
            time.sleep(10)

        interp = interpreters.create()
        interp.call_in_thread(test)
    """
    returncode, err = _interrupt_child(code)
    assert returncode in (0, -signal.SIGINT), err


def test_keyboard_interrupt_in_main_exits_by_sigint():
    # SIGINT lands in __main__ while a thread still runs in an interpreter: the process ends as
    # CPython ends on an uncaught KeyboardInterrupt (killed by SIGINT), even though our exit
    # cleanup runs code in interpreters after it (which must not reset that record).
    code = """if True:
        import signal, threading, time
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from subinterpreters import interpreters

        interp = interpreters.create()
        t = threading.Thread(target=interp.exec, args=("import time; time.sleep(0.5)",))
        t.start()
        print('a', flush=True, end='')
        time.sleep(60)
    """
    returncode, err = _interrupt_child(code)
    assert returncode == -signal.SIGINT, (returncode, err)
