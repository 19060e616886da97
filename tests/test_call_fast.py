"""The call protocol's fast path (``lowlevel._call_code``): a function that crosses as its code,
called with native arguments, made by the extension itself so that a fresh interpreter's first
call imports nothing there. Each case is also made the protocol's ordinary way (``serve_main``,
forced by emptying ``_protocol._DIRECT``) and both must agree: results, their types, exceptions
and what they carry; interrupts, busy and closed interpreters behave as for any run.
"""

from __future__ import annotations

import marshal
import re
import sys
import threading

import pytest

interpreters = pytest.importorskip("subinterpreters.interpreters")
from subinterpreters import _protocol as _p  # noqa: E402
from subinterpreters import lowlevel as _ll  # noqa: E402

# Whether the runaway loop spins without pause: on 3.11 it sleeps a little each turn, letting
# the shared GIL go (see test_interrupt.py).
SPINS = sys.version_info >= (3, 12)


# Stateless functions (builtins only, no defaults or closure): they cross as code.
def loaded():
    import sys

    return ",".join(sorted(m for m in sys.modules if m.split(".")[0] == "subinterpreters"))


def answer():
    return 42


def echo(x):
    return x


def echo_all(*args):
    return args


def typed(*args):
    return ",".join(type(a).__name__ for a in args)


def listed(x):
    return [x, x]


def huge():
    return 2**100


def generator():
    return (i for i in ())


def fails():
    raise KeyError("missing")


def app_error():
    import exc_funcs

    exc_funcs.app_error(7, "custom")


def main_global():
    return globals()["spam"]


def set_main_global():
    globals()["made_here"] = "yes"


def made_here():
    return globals().get("made_here")


def put_spam():
    globals()["out"].put(globals()["spam"])


def exits():
    raise SystemExit(3)


def spin():
    spins = globals()["spins"]
    globals()["started"].put(1)
    while True:
        if not spins:
            __import__("time").sleep(0.001)


@pytest.fixture
def interp():
    interp = interpreters.create()
    yield interp
    interp.close()


@pytest.fixture
def fast_calls(monkeypatch):
    """The number of calls the fast path made so far (a one-item list)."""
    count = [0]
    real = _ll._call_code

    def counted(*args):
        count[0] += 1
        return real(*args)

    monkeypatch.setattr(_ll, "_call_code", counted)
    return count


def _plain(text):
    return None if text is None else re.sub(r" at 0x[0-9a-f]+", "", text)


def outcome(interp, func, *args):
    """What ``interp.call(func, *args)`` gives, as data to compare (object addresses cut)."""
    try:
        value = interp.call(func, *args)
    except Exception as exc:
        cause = exc.__cause__
        info = getattr(exc, "excinfo", None)
        return (
            "raised",
            type(exc),
            _plain(str(exc)),
            None if info is None else (info.type.__name__, info.msg, info.formatted),
            None if info is None else info.errdisplay,
            type(cause),
            None if cause is None else _plain(str(cause)),
        )
    return ("ok", type(value), value)


def slow_outcome(monkeypatch, func, *args):
    """``outcome`` in a fresh interpreter, the ordinary way."""
    with monkeypatch.context() as m:
        m.setattr(_p, "_DIRECT", frozenset())
        with interpreters.create() as other:
            return outcome(other, func, *args)


def test_a_first_call_imports_nothing_in_the_target(interp, fast_calls):
    assert interp.call(answer) == 42
    assert interp.call(loaded) == ""
    assert interp.call(echo, "again") == "again"
    assert interp.call(loaded) == ""
    assert fast_calls[0] == 4
    # A result that is not native is encoded by the protocol, loaded there only now.
    assert interp.call(listed, 1) == [1, 1]
    assert "subinterpreters._protocol" in interp.call(loaded).split(",")


SCALARS = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    1.5,
    float("inf"),
    "",
    "text",
    "ünïcødé ☃ \U0001f600",
    "\ud800",  # a lone surrogate
    b"",
    b"\0bytes",
    b"x" * 100_000,  # lent by the caller, copied once
    "y" * 100_000,
]


@pytest.mark.parametrize("value", SCALARS, ids=lambda v: type(v).__name__ + repr(v)[:12])
def test_native_arguments_and_results_agree_with_the_protocol(
    interp, fast_calls, monkeypatch, value
):
    got = outcome(interp, echo, value)
    assert fast_calls[0] == 1
    assert got == slow_outcome(monkeypatch, echo, value)
    assert got == ("ok", type(value), value)


def test_several_arguments_keep_their_types(interp, fast_calls, monkeypatch):
    args = (None, True, 3, 2.5, "s", b"b")
    assert outcome(interp, typed, *args) == slow_outcome(monkeypatch, typed, *args)
    assert interp.call(typed, *args) == "NoneType,bool,int,float,str,bytes"
    assert interp.call(echo_all, *args) == args
    assert fast_calls[0] == 3


@pytest.mark.parametrize(
    ("func", "args"),
    [
        (huge, ()),  # an int beyond 64 bits: pickled
        (listed, (1,)),  # a list: the native codec
        (echo_all, (1, "two")),  # a tuple: the native codec
        (echo, (2**100,)),  # a big int argument: pickled, never the fast path
        (generator, ()),  # not shareable at all
        (fails, ()),
        (app_error, ()),  # a class of an importable module, rebuilt as itself
        (exits, ()),  # SystemExit stays inside the call
    ],
    ids=lambda x: getattr(x, "__name__", ""),
)
def test_other_outcomes_agree_with_the_protocol(interp, monkeypatch, func, args):
    assert outcome(interp, func, *args) == slow_outcome(monkeypatch, func, *args)


def test_an_exception_keeps_its_class_and_cause(interp, fast_calls):
    with pytest.raises(interpreters.ExecutionFailed) as info:
        interp.call(app_error)
    assert fast_calls[0] == 1
    assert info.value.excinfo.type.__name__ == "AppError"
    assert "in app_error" in info.value.excinfo.errdisplay
    assert interp.call(answer) == 42  # still usable


def test_the_function_runs_with_the_targets_main_globals(interp, fast_calls):
    interp.prepare_main(spam="from main")
    assert interp.call(main_global) == "from main"
    interp.exec(set_main_global)
    assert interp.call(made_here) == "yes"
    interp.prepare_main(made_here="no")
    interp.exec(set_main_global.__code__)
    assert interp.call(made_here) == "yes"
    assert fast_calls[0] == 5
    assert interp.call(loaded) == ""


def test_exec_of_code_that_raises_fails_as_before(interp, fast_calls, monkeypatch):
    with pytest.raises(interpreters.ExecutionFailed) as fast:
        interp.exec(fails)
    assert fast_calls[0] == 1
    with monkeypatch.context() as m:
        m.setattr(_p, "_DIRECT", frozenset())
        with pytest.raises(interpreters.ExecutionFailed) as slow:
            interp.exec(fails)
    assert fast_calls[0] == 1
    assert str(fast.value) == str(slow.value)
    assert fast.value.excinfo.errdisplay == slow.value.excinfo.errdisplay


class Spin:
    """``interp.call(spin)`` in a thread, started once it has put on ``started``."""

    def __init__(self, interp):
        self.started = interpreters.create_queue()
        interp.prepare_main(started=self.started, spins=SPINS)
        self.outcome = None
        self.thread = threading.Thread(target=self._run, args=(interp,))
        self.thread.start()
        self.started.get(timeout=30)

    def _run(self, interp):
        try:
            interp.call(spin)
            self.outcome = "returned"
        except interpreters.ExecutionFailed as exc:
            self.outcome = exc.excinfo.type.__name__

    def result(self):
        self.thread.join()
        return self.outcome


def test_interrupt_stops_a_running_call(interp, fast_calls):
    run = Spin(interp)
    assert interp.is_running()
    assert interp.interrupt() is True
    assert run.result() == "KeyboardInterrupt"
    assert fast_calls[0] == 1
    assert not interp.is_running()
    assert interp.call(answer) == 42


def test_a_running_interpreter_refuses_as_before(interp, fast_calls, monkeypatch):
    run = Spin(interp)
    try:
        with pytest.raises(interpreters.InterpreterError) as fast:
            interp.call(answer)
        with monkeypatch.context() as m:
            m.setattr(_p, "_DIRECT", frozenset())
            with pytest.raises(interpreters.InterpreterError) as slow:
                interp.call(answer)
        assert (type(fast.value), str(fast.value)) == (type(slow.value), str(slow.value))
    finally:
        interp.interrupt()
        assert run.result() == "KeyboardInterrupt"
    assert fast_calls[0] == 2


def test_a_closed_interpreter_refuses_as_before(monkeypatch):
    interp = interpreters.create()
    interp.close()
    with pytest.raises(interpreters.InterpreterNotFoundError) as fast:
        interp.call(answer)
    with monkeypatch.context() as m:
        m.setattr(_p, "_DIRECT", frozenset())
        with pytest.raises(interpreters.InterpreterNotFoundError) as slow:
            interp.call(answer)
    assert str(fast.value) == str(slow.value)


def test_call_in_thread_takes_the_fast_path(interp, fast_calls):
    interp.prepare_main(spam="seen")
    out = interpreters.create_queue()
    interp.prepare_main(out=out)
    interp.call_in_thread(put_spam).join()
    assert out.get(timeout=10) == "seen"
    assert fast_calls[0] == 1


def test_call_code_directly():
    handle = _ll.create()
    try:
        code = _p.marshalled(answer.__code__)
        assert _ll._call_code(handle, code, _p.ARGS_NONE, None) == (_p.OK, 42)
        assert _ll._call_code(handle, _p.marshalled(echo.__code__), _p.ARGS_ONE, 2.5) == (
            _p.OK,
            2.5,
        )
        # Not code of a function it can build: None, nothing ran.
        assert _ll._call_code(handle, b"\0" + marshal.dumps(12), _p.ARGS_NONE, None) is None
        assert _ll._call_code(handle, b"\0garbage", _p.ARGS_NONE, None) is None
        closure = (lambda x: lambda: x)(1)
        freevars = b"\0" + marshal.dumps(closure.__code__)
        assert _ll._call_code(handle, freevars, _p.ARGS_NONE, None) is None
        with pytest.raises(ValueError):
            _ll._call_code(handle, marshal.dumps(answer.__code__), _p.ARGS_NONE, None)
        with pytest.raises(ValueError):
            _ll._call_code(handle, "\0text", _p.ARGS_NONE, None)
        with pytest.raises(ValueError):
            _ll._call_code(handle, code, _p.ARGS_PICKLED, b"")
        with pytest.raises(interpreters.NotShareableError):
            _ll._call_code(handle, code, _p.ARGS_ONE, [1])
        with pytest.raises(TypeError):
            _ll._call_code(handle, code, "0", None)
        with pytest.raises(TypeError):
            _ll._call_code(handle, code)
        with pytest.raises(RuntimeError):
            _ll._call_code(_ll.get_current(), code, _p.ARGS_NONE, None)
    finally:
        _ll.destroy(handle)
    with pytest.raises(RuntimeError):
        _ll._call_code(handle, code, _p.ARGS_NONE, None)
