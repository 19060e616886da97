"""An exception raised in another interpreter keeps its class where the pool returns it (rebuilt
without calling its class: arguments, attributes, notes, cause and context chain), with the
remote traceback in an ``ExecutionFailed`` as its ``__cause__``; ``Interpreter.call`` and its
thread and asyncio forms raise ``ExecutionFailed`` naming it, as 3.14 does. A class the caller
cannot import arrives as ``ExecutionFailed``."""

from __future__ import annotations

import asyncio
import threading

import exc_funcs
import pytest
from exc_funcs import AppError

aio = pytest.importorskip("subinterpreters.aio")
futures = pytest.importorskip("subinterpreters.futures")
interpreters = pytest.importorskip("subinterpreters.interpreters")

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module", autouse=True)
def _join_helper_threads(no_pool_threads_left):
    yield


@pytest.fixture
def interp():
    with interpreters.create() as i:
        yield i


def _submit(pool, fn, *args):
    return pool.submit(fn, *args).result()


def _map(pool, fn, *args):
    return list(pool.map(fn, *([a] for a in args)))


def _aio_call(pool, fn, *args):
    return asyncio.run(aio.call(pool, fn, *args))


def _pool_call_async(pool, fn, *args):
    return asyncio.run(pool.call_async(fn, *args))


POOL_PATHS = [_submit, _map, _aio_call, _pool_call_async]


def _assert_remote_cause(exc, qualname):
    cause = exc.__cause__
    assert type(cause) is interpreters.ExecutionFailed
    assert cause.excinfo.type.__qualname__ == qualname
    assert "Traceback" in cause.excinfo.errdisplay


@pytest.mark.parametrize("path", POOL_PATHS, ids=lambda p: p.__name__.strip("_"))
def test_init_with_other_arguments_keeps_class_and_attributes(pool, path):
    with pytest.raises(AppError) as info:
        path(pool, exc_funcs.app_error, 3, "bad")
    err = info.value
    assert type(err) is AppError
    assert err.args == ("3: bad",)
    assert (err.code, err.detail) == (3, "bad")
    _assert_remote_cause(err, "AppError")
    assert "in app_error" in err.__cause__.excinfo.errdisplay


def test_rebuild_does_not_call_init(pool, monkeypatch):
    monkeypatch.setattr(exc_funcs.Fussy, "made", 1)  # its __init__ would raise here
    with pytest.raises(exc_funcs.Fussy, match="once") as info:
        pool.submit(exc_funcs.fussy).result()
    assert isinstance(info.value, ValueError)


def test_chained_cause_moves_behind_execution_failed(pool):
    with pytest.raises(AppError) as info:
        pool.submit(exc_funcs.chained).result()
    err = info.value
    _assert_remote_cause(err, "AppError")
    original = err.__cause__.__cause__
    assert type(original) is KeyError and original.args == ("key",)
    assert err.__context__ is original  # raised while handling it: the same object crossed


def test_context_and_notes_cross(pool):
    with pytest.raises(AppError) as info:
        pool.submit(exc_funcs.with_context_and_notes).result()
    err = info.value
    assert err.__notes__ == ["first note", "second note"]
    assert type(err.__context__) is ZeroDivisionError
    assert err.__cause__.__cause__ is None  # `from None` had no cause to keep


def test_context_cycle_crosses(pool):
    with pytest.raises(AppError) as info:
        pool.submit(exc_funcs.context_cycle).result()
    a = info.value
    b = a.__context__
    assert a.code == 6 and type(b) is AppError and b.code == 7
    assert b.__context__ is a


def test_builtin_with_own_reduce_keeps_fields(pool, tmp_path):
    missing = str(tmp_path / "missing")
    with pytest.raises(FileNotFoundError) as info:
        pool.submit(exc_funcs.file_not_found, missing).result()
    assert info.value.filename == missing
    _assert_remote_cause(info.value, "FileNotFoundError")


@pytest.mark.parametrize("path", POOL_PATHS, ids=lambda p: p.__name__.strip("_"))
def test_class_unimportable_here_gives_execution_failed(pool, path):
    with pytest.raises(interpreters.ExecutionFailed, match="only over there") as info:
        path(pool, exc_funcs.unimportable_here, "only over there")
    assert info.value.excinfo.type.__qualname__ == "Ghost"
    assert info.value.excinfo.type.__module__ == "exc_funcs_ghost"


# -- Interpreter.call and its forms: ExecutionFailed, as 3.14 --------------------------------


def test_interpreter_call_raises_execution_failed(interp):
    with pytest.raises(interpreters.ExecutionFailed, match="3: bad") as info:
        interp.call(exc_funcs.app_error, 3, "bad")
    assert info.value.excinfo.type.__qualname__ == "AppError"
    assert info.value.excinfo.type.__module__ == "exc_funcs"


def test_interpreter_call_async_raises_execution_failed(interp):
    with pytest.raises(interpreters.ExecutionFailed, match="3: bad") as info:
        asyncio.run(interp.call_async(exc_funcs.app_error, 3, "bad"))
    assert info.value.excinfo.type.__qualname__ == "AppError"


def test_call_in_thread_reports_execution_failed(interp, monkeypatch):
    seen = []
    monkeypatch.setattr(threading, "excepthook", seen.append)
    interp.call_in_thread(exc_funcs.app_error, 3, "bad").join()
    assert len(seen) == 1
    assert seen[0].exc_type is interpreters.ExecutionFailed
    assert seen[0].exc_value.excinfo.type.__qualname__ == "AppError"


def _modules_loaded():
    import sys

    return sorted(sys.modules)


def test_call_that_returns_loads_no_exception_machinery(interp):
    # The first call into a fresh interpreter imports only what it needs: nothing of ours while
    # it runs (a list result loads the protocol to encode it, after the call), and the
    # exception half of the protocol (and pickle, traceback) load when a call raises.
    interp.call(_modules_loaded)
    loaded = set(interp.call(_modules_loaded))
    assert "subinterpreters._protocol" in loaded
    unwanted = {"subinterpreters._errors", "subinterpreters._exceptions", "pickle", "traceback"}
    assert not loaded & unwanted
    with pytest.raises(interpreters.ExecutionFailed):
        interp.call(exc_funcs.app_error, 1, "x")
    assert "subinterpreters._exceptions" in interp.call(_modules_loaded)


def test_exception_still_reported_when_its_encoder_cannot_load(interp):
    interp.exec("import sys; sys.modules['subinterpreters._exceptions'] = None")
    with pytest.raises(interpreters.ExecutionFailed, match="3: bad") as info:
        interp.call(exc_funcs.app_error, 3, "bad")
    assert info.value.excinfo.type.__name__ == "AppError"
