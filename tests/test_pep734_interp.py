"""subinterpreters.interpreters: the Interpreter half of CPython 3.14's concurrent.interpreters.

Every test takes ``interps``, the module under test: ours on every version and, on 3.14+, CPython's
``concurrent.interpreters`` too, so that differences show. Cases where we differ on purpose carry
``ours_only``.
"""

from __future__ import annotations

import gc
import importlib
import os
import pickle
import subprocess
import sys
import threading
import time

import pytest
from conftest import PY314_PLUS, UNKNOWN, assert_clean_exit, run_python

OURS = "subinterpreters.interpreters"
CPYTHON = "concurrent.interpreters" if PY314_PLUS else None


def pytest_generate_tests(metafunc):  # noqa: D103  (collected by pytest from this module)
    if "interps" not in metafunc.fixturenames:
        return
    impls = ["ours"]
    if CPYTHON is not None and metafunc.definition.get_closest_marker("ours_only") is None:
        impls.append("cpython")
    metafunc.parametrize("interps", impls, indirect=True)


@pytest.fixture
def interps(request):
    name = OURS if request.param == "ours" else CPYTHON
    mod = importlib.import_module(name)
    before = {i.id for i in mod.list_all()}
    yield mod
    gc.collect()
    for interp in mod.list_all():
        if interp.id not in before:
            try:
                interp.close()
            except mod.InterpreterNotFoundError:
                pass


@pytest.fixture
def interp(interps):
    return interps.create()


def is_ours(interps) -> bool:
    return interps.__name__ == OURS


# Stateless functions (no globals, no closure, no defaults): they cross as code.
def add(a, b):
    return a + b


def answer():
    return 42


def fails():
    raise KeyError("missing")


def returns_generator():
    return (i for i in ())


def in_main_of_target():
    import sys

    return sys.modules["__main__"].__dict__.get("spam")


def script_function():
    import sys

    sys.modules["__main__"].__dict__["ran"] = "yes"


def ident_of(x):
    return x


def put_len(queue, value):
    queue.put(len(value))


def read_one(fd):
    import os

    return os.read(fd, 1)


# -- module functions ---------------------------------------------------------------------------


def test_all_names(interps):
    for name in interps.__all__:
        assert hasattr(interps, name), name
    for name in ("create", "Interpreter", "ExecutionFailed", "create_queue", "Queue"):
        assert name in interps.__all__


def test_get_main_and_current(interps):
    main = interps.get_main()
    assert main.id == 0
    assert main.whence == "runtime init"
    assert interps.get_current() is main
    assert repr(main) == "Interpreter(0)"


def test_create_and_list_all(interps):
    a = interps.create()
    b = interps.create()
    assert a.whence == "_interpreters module"
    listed = interps.list_all()
    assert listed[0] is interps.get_main()
    assert a in listed and b in listed
    assert a.id != b.id
    assert [i.id for i in listed] == sorted(i.id for i in listed)


def test_is_shareable(interps):
    for obj in (
        None,
        True,
        False,
        0,
        -(2**100),
        2**100,
        1.5,
        float("nan"),
        "s",
        b"b",
        (),
        (1, "a"),
    ):
        assert interps.is_shareable(obj), obj
    assert interps.is_shareable(memoryview(b"x"))
    for obj in ([], {}, set(), bytearray(), object(), ..., 1j, frozenset(), answer, int):
        assert not interps.is_shareable(obj), obj

    class S(str):
        pass

    class N(int):
        pass

    assert not interps.is_shareable(S("x"))
    assert not interps.is_shareable(N(1))
    assert not interps.is_shareable(interps.get_main())


def test_exception_hierarchy(interps):
    assert issubclass(interps.InterpreterNotFoundError, interps.InterpreterError)
    assert issubclass(interps.ExecutionFailed, interps.InterpreterError)
    assert issubclass(interps.NotShareableError, TypeError)
    assert issubclass(interps.InterpreterError, Exception)


# -- Interpreter objects ------------------------------------------------------------------------


def test_one_object_per_id(interps, interp):
    assert interps.Interpreter(interp.id) is interp
    assert interps.Interpreter(0) is interps.get_main()
    assert hash(interp) == hash(interp.id)
    assert interp != interp.id


@pytest.mark.parametrize("bad", ["1", 1.0, None, [0]])
def test_id_must_be_an_int(interps, bad):
    with pytest.raises(TypeError, match="id must be an int"):
        interps.Interpreter(bad)


def test_bad_ids(interps):
    with pytest.raises(ValueError, match="non-negative"):
        interps.Interpreter(-1)
    with pytest.raises(OverflowError):
        interps.Interpreter(2**64)
    with pytest.raises(
        interps.InterpreterNotFoundError, match=f"unrecognized interpreter ID {UNKNOWN}"
    ):
        interps.Interpreter(UNKNOWN)
    with pytest.raises(TypeError):
        interps.Interpreter(id=0)


def test_read_only_attributes(interps, interp):
    with pytest.raises(AttributeError):
        interp.id = 5
    with pytest.raises(AttributeError):
        interp.whence = "x"


def test_pickle_gives_the_same_object(interps, interp):
    assert interp.__reduce__() == (interps.Interpreter, (interp.id,))
    assert pickle.loads(pickle.dumps(interp)) is interp
    import copy

    assert copy.copy(interp) is interp
    assert copy.deepcopy(interp) is interp


def test_closed_interpreter(interps, interp):
    interp.close()
    for op in (
        lambda: interp.exec("pass"),
        lambda: interp.call(answer),
        interp.is_running,
        interp.close,
        lambda: interp.prepare_main(a=1),
        lambda: interps.Interpreter(interp.id),
        lambda: pickle.loads(pickle.dumps(interp)),
    ):
        with pytest.raises(interps.InterpreterNotFoundError):
            op()
    assert repr(interp) == f"Interpreter({interp.id})"
    assert interp not in interps.list_all()


def test_main_cannot_be_changed(interps):
    main = interps.get_main()
    cases = [
        (lambda: main.exec("pass"), "cannot exec code for unrecognized interpreter 0"),
        (main.close, "cannot destroy unrecognized interpreter 0"),
        (lambda: main.prepare_main(a=1), "cannot update __main__ for unrecognized interpreter 0"),
        (lambda: main.call(answer), "cannot make a call in unrecognized interpreter 0"),
    ]
    for op, message in cases:
        with pytest.raises(interps.InterpreterError) as info:
            op()
        assert str(info.value) == message


def test_garbage_collected_interpreter_is_destroyed(interps):
    interp = interps.create()
    n = interp.id
    del interp
    gc.collect()
    assert n not in [i.id for i in interps.list_all()]


def test_a_second_object_keeps_it_alive(interps):
    interp = interps.create()
    n = interp.id
    interp.exec("import sys; sys.modules['__main__'].keep = 1")
    interp.call(answer)
    assert interps.Interpreter(n) is interp
    interp.close()
    assert n not in [i.id for i in interps.list_all()]


# -- exec ---------------------------------------------------------------------------------------


def test_exec_source_runs_in_main(interps, interp):
    interp.exec("x = 41")
    interp.exec("x += 1")
    assert interp.call(eval, "x") == 42
    interp.exec(b"y = 'bytes source'")
    assert interp.call(eval, "y") == "bytes source"


def test_exec_function_and_code(interps, interp):
    interp.exec(script_function)
    assert interp.call(eval, "ran") == "yes"
    interp.exec("del ran")
    interp.exec(script_function.__code__)
    assert interp.call(eval, "ran") == "yes"


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (add, "code with args not supported"),
        (answer, "code that returns a value is not a script"),
        (lambda: 1, "code that returns a value is not a script"),
        (answer.__code__, "code that returns a value is not a script"),
    ],
)
def test_exec_refuses_non_scripts(interps, interp, code, message):
    with pytest.raises(ValueError, match=message):
        interp.exec(code)


@pytest.mark.parametrize("bad", [5, None, [1], object()])
def test_exec_unsupported(interps, interp, bad):
    with pytest.raises(TypeError, match="unsupported script"):
        interp.exec(bad)


def test_exec_syntax_errors_raise_here(interps, interp):
    with pytest.raises(SyntaxError) as info:
        interp.exec("x = (")
    assert info.value.filename == "<script>"
    with pytest.raises(SyntaxError, match="null bytes"):
        interp.exec("x = 1\0")


def test_exec_failure(interps, interp):
    with pytest.raises(interps.ExecutionFailed) as info:
        interp.exec("1 / 0")
    exc = info.value
    ei = exc.excinfo
    assert ei.type.__name__ == "ZeroDivisionError"
    assert ei.type.__qualname__ == "ZeroDivisionError"
    assert ei.type.__module__ == "builtins"
    assert ei.msg == "division by zero"
    assert ei.formatted == "ZeroDivisionError: division by zero"
    assert ei.errdisplay == (
        "Traceback (most recent call last):\n"
        '  File "<script>", line 1, in <module>\n'
        "ZeroDivisionError: division by zero"
    )
    assert exc.args == ("ZeroDivisionError: division by zero",)
    assert str(exc) == (
        "ZeroDivisionError: division by zero\n\nUncaught in the interpreter:\n\n" + ei.errdisplay
    )


def test_exec_failure_custom_and_nested_types(interps, interp):
    with pytest.raises(interps.ExecutionFailed) as info:
        interp.exec("class O:\n  class In(Exception): pass\nraise O.In(1)")
    ei = info.value.excinfo
    assert (ei.type.__name__, ei.type.__qualname__, ei.type.__module__) == (
        "In",
        "O.In",
        "__main__",
    )
    assert ei.formatted == "O.In: 1"
    with pytest.raises(interps.ExecutionFailed) as info:
        interp.exec("import json; json.loads('x')")
    ei = info.value.excinfo
    assert ei.type.__module__ == "json.decoder"
    assert ei.formatted.startswith("json.decoder.JSONDecodeError: Expecting value")


def test_exec_failure_without_message_and_chained(interps, interp):
    with pytest.raises(interps.ExecutionFailed) as info:
        interp.exec("raise ValueError")
    assert info.value.excinfo.msg == ""
    assert info.value.excinfo.formatted == "ValueError: "
    with pytest.raises(interps.ExecutionFailed) as info:
        interp.exec("try:\n  1/0\nexcept Exception as e:\n  raise ValueError('v') from e")
    assert "direct cause" in info.value.excinfo.errdisplay


@pytest.mark.parametrize("raise_", ["raise SystemExit(3)", "raise KeyboardInterrupt"])
def test_exec_base_exceptions_are_caught(interps, interp, raise_):
    with pytest.raises(interps.ExecutionFailed):
        interp.exec(raise_)
    interp.exec("pass")  # still usable


def test_exec_leaves_no_names_behind(interps, interp):
    interp.exec("pass")
    interp.call(answer)
    names = interp.call(eval, "sorted(k for k in globals() if not k.startswith('__'))")
    assert names == []


def test_exec_positional_only(interps, interp):
    with pytest.raises(TypeError):
        interp.exec(code="pass")


# -- prepare_main -------------------------------------------------------------------------------


def test_prepare_main(interps, interp):
    interp.prepare_main({"a": 1, "b": "two"}, c=None, d=b"4")
    interp.prepare_main([("e", 5)])
    interp.prepare_main(f=1.5, g=True, t=(1, "a", (None, 2.5)), a=-1)
    assert interp.call(eval, "(a, b, c, d, e, f, g, t)") == (
        -1,
        "two",
        None,
        b"4",
        5,
        1.5,
        True,
        (1, "a", (None, 2.5)),
    )
    interp.prepare_main(mv=memoryview(b"abc"))
    assert interp.call(eval, "bytes(mv)") == b"abc"


def test_prepare_main_bad_input(interps, interp):
    for bad in ([1, 2], {"a": 1}, object(), (1, [2]), answer, interp):
        with pytest.raises(
            interps.NotShareableError, match="does not support cross-interpreter data"
        ):
            interp.prepare_main(v=bad)
    with pytest.raises(ValueError, match="non-empty dict"):
        interp.prepare_main()
    with pytest.raises(ValueError, match="non-empty dict"):
        interp.prepare_main({})
    with pytest.raises(TypeError):
        interp.prepare_main({1: 2})
    with pytest.raises(TypeError):
        interp.prepare_main(5)
    with pytest.raises(TypeError):
        interp.prepare_main({"a": 1}, {"b": 2})


# -- call ---------------------------------------------------------------------------------------


def test_call_stateless_function(interps, interp):
    assert interp.call(answer) == 42
    assert interp.call(add, 1, 2) == 3
    assert interp.call(add, "a", b="b") == "ab"
    assert interp.call(add, [1], [2]) == [1, 2]
    assert interp.call(add, 2**70, 1) == 2**70 + 1
    assert interp.call(add, b"x", b"y") == b"xy"
    assert interp.call(lambda: 7) == 7


def test_stateless_function_runs_against_target_main(interps, interp):
    interp.prepare_main(spam="eggs")
    assert interp.call(in_main_of_target) == "eggs"


def test_call_by_reference(interps, interp):
    assert interp.call(sorted, [3, 1, 2], reverse=True) == [3, 2, 1]
    assert interp.call(len, "abc") == 3
    assert interp.call(int, "5") == 5
    assert interp.call(pow, 2, 10) == 1024


def test_call_returns_pickled_objects(interps, interp):
    assert interp.call(dict, a=1) == {"a": 1}
    assert interp.call(eval, "None") is None
    assert interp.call(eval, "(1, 2.5, 'x')") == (1, 2.5, "x")


def test_call_not_callable(interps, interp):
    with pytest.raises(TypeError, match="expected a callable, got 5"):
        interp.call(5)
    with pytest.raises(TypeError):
        interp.call()


def test_call_closure_is_not_shareable(interps, interp):
    z = 1

    def closure():
        return z

    with pytest.raises(interps.NotShareableError, match="only stateless functions are shareable"):
        interp.call(closure)


def test_call_unpicklable_argument(interps, interp):
    with pytest.raises(interps.NotShareableError):
        interp.call(add, threading.Lock(), 1)


def test_call_unpicklable_result(interps, interp):
    with pytest.raises(interps.NotShareableError):
        interp.call(returns_generator)


def test_call_failure(interps, interp):
    with pytest.raises(interps.ExecutionFailed) as info:
        interp.call(fails)
    ei = info.value.excinfo
    assert ei.type.__name__ == "KeyError"
    assert ei.msg == "'missing'"
    assert ei.formatted == "KeyError: 'missing'"
    assert ei.errdisplay.startswith("Traceback (most recent call last):\n")
    assert "in fails" in ei.errdisplay
    assert ei.errdisplay.endswith("KeyError: 'missing'")
    # Only the user's frames: the first one shown is the function's own.
    assert ei.errdisplay.splitlines()[1].startswith(f'  File "{__file__}"')


@pytest.mark.ours_only
def test_execution_failed_pickles(interps, interp):
    with pytest.raises(interps.ExecutionFailed) as info:
        interp.call(fails)
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is interps.ExecutionFailed and str(copy) == str(info.value)
    assert copy.excinfo.type.__name__ == "KeyError"
    assert copy.excinfo.errdisplay == info.value.excinfo.errdisplay


def test_call_wrong_arguments_fail_remotely(interps, interp):
    with pytest.raises(interps.ExecutionFailed) as info:
        interp.call(answer, 1)
    assert info.value.excinfo.type.__name__ == "TypeError"
    assert "takes 0 positional arguments" in info.value.excinfo.msg


def test_call_after_failure_still_works(interps, interp):
    for _ in range(3):
        with pytest.raises(interps.ExecutionFailed):
            interp.call(fails)
        assert interp.call(add, 1, 1) == 2


# -- running, threads ---------------------------------------------------------------------------


def test_busy_interpreter(interps, interp):
    r, w = os.pipe()
    try:
        thread = interp.call_in_thread(read_one, r)
        assert isinstance(thread, threading.Thread)
        deadline = time.monotonic() + 10
        while not interp.is_running():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        for op in (
            lambda: interp.exec("pass"),
            lambda: interp.call(answer),
            lambda: interp.prepare_main(a=1),
        ):
            with pytest.raises(interps.InterpreterError, match="interpreter already running"):
                op()
        with pytest.raises(interps.InterpreterError, match="interpreter running"):
            interp.close()
        os.write(w, b"x")
        thread.join(10)
        assert not thread.is_alive()
        assert not interp.is_running()
    finally:
        os.close(r)
        os.close(w)


def test_calls_from_many_threads(interps):
    workers = [interps.create() for _ in range(3)]
    results = {}
    errors = []

    def work(i, interp):
        try:
            results[i] = [interp.call(add, i, k) for k in range(50)]
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, w)) for i, w in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert results == {i: [i + k for k in range(50)] for i in range(3)}


def test_call_in_thread_failure_is_reported(interps, interp):
    seen = []
    old = threading.excepthook
    threading.excepthook = seen.append
    try:
        interp.call_in_thread(fails).join(10)
    finally:
        threading.excepthook = old
    assert len(seen) == 1
    assert isinstance(seen[0].exc_value, interps.ExecutionFailed)


# -- inside a subinterpreter ----------------------------------------------------------------------


def test_inside_a_subinterpreter(interps, interp):
    name = interps.__name__
    interp.prepare_main(modname=name)
    interp.exec(
        "import importlib\n"
        "m = importlib.import_module(modname)\n"
        "cur = m.get_current()\n"
        "info = (cur.id, cur.whence, m.get_main().id, [i.id for i in m.list_all()])\n"
    )
    cur_id, whence, main_id, listed = interp.call(eval, "info")
    assert (cur_id, whence, main_id) == (interp.id, "_interpreters module", 0)
    assert interp.id in listed and 0 in listed
    with pytest.raises(interps.ExecutionFailed, match="cannot destroy the current interpreter"):
        interp.exec("cur.close()")
    with pytest.raises(interps.ExecutionFailed, match="interpreter already running"):
        interp.exec("cur.exec('pass')")
    with pytest.raises(
        interps.ExecutionFailed, match="cannot exec code for unrecognized interpreter 0"
    ):
        interp.exec("m.get_main().exec('pass')")


def test_nested_interpreter(interps, interp):
    interp.prepare_main(modname=interps.__name__)
    interp.exec(
        "import importlib\n"
        "m = importlib.import_module(modname)\n"
        "inner = m.create()\n"
        "inner.exec('x = 6 * 7')\n"
        "result = inner.call(eval, 'x')\n"
        "inner.close()\n"
    )
    assert interp.call(eval, "result") == 42


@pytest.mark.ours_only
def test_import_in_subinterpreter_is_light(interps, interp):
    interp.exec("import subinterpreters.interpreters")
    interp.exec("import sys; loaded = sorted(sys.modules)")
    loaded = interp.call(eval, "loaded")
    # (threading comes with the stdlib's queue module, whose Empty/Full our queue errors extend.)
    for heavy in ("pickle", "dis"):
        assert heavy not in loaded, heavy


# -- differences from 3.14 we chose -------------------------------------------------------------


@pytest.mark.ours_only
def test_interpreter_id_accepted(interps):
    import subinterpreters.lowlevel as ll

    handle = ll.create()
    interp = interps.Interpreter(handle)
    assert interp.id == int(handle)
    interp.exec("pass")


@pytest.mark.ours_only
def test_big_ints_cross_in_prepare_main(interps, interp):
    # 3.14 says 2**100 is shareable but then refuses it in prepare_main; we pass it (pickled).
    interp.prepare_main(big=2**100)
    assert interp.call(eval, "big") == 2**100


@pytest.mark.ours_only
def test_owned_interpreters_die_with_their_process():
    proc = run_python(
        """
        from subinterpreters import interpreters
        keep = [interpreters.create() for _ in range(2)]
        keep[0].exec("x = 1")
        print("ok")
        """
    )
    assert_clean_exit(proc, expect_stdout="ok")


@pytest.mark.skipif(sys.version_info < (3, 13), reason="CPython records whence from 3.13")
def test_whence_of_an_interpreter_made_elsewhere():
    import _interpreters
    from subinterpreters import interpreters as ours

    made = _interpreters.create()
    try:
        assert ours.Interpreter(made).whence == "_interpreters module"
    finally:
        _interpreters.destroy(made)
    assert ours.get_main().whence == "runtime init"
    mine = ours.create()
    assert mine.whence == "_interpreters module"
    mine.close()
    assert mine.whence == "_interpreters module"  # kept after close, as 3.14 does


# -- behaviour pinned by CPython 3.14's own test_interpreters (scripts/run_cpython_pep734_suite.py)


@pytest.mark.skipif(
    sys.version_info < (3, 12), reason="3.11's isolated interpreters cannot start threads"
)
def test_close_runs_threading_atexit_callbacks_before_joining(interps, interp, tmp_path):
    # A thread that waits for a threading._register_atexit callback: close() must run the
    # callbacks first, as finalization does, or it would wait forever.
    flag = tmp_path / "done"
    interp.exec(
        f"""if True:
        import threading, time
        done = False
        def fini():
            global done
            done = True
            t.join()
        threading._register_atexit(fini)
        def task():
            while not done:
                time.sleep(0.01)
            open({str(flag)!r}, "w").close()
        t = threading.Thread(target=task)
        t.start()
        """
    )
    interp.close()
    assert flag.exists()


@pytest.mark.ours_only
def test_close_of_an_interpreter_that_never_imported_threading(interps, interp):
    # close() looks for threading's shutdown callbacks only where threading was imported.
    from subinterpreters import lowlevel

    assert lowlevel._uses_threading(interp.id) is False
    interp.exec("import threading")
    assert lowlevel._uses_threading(interp.id) is True
    with pytest.raises(RuntimeError, match="already running"):
        lowlevel._uses_threading(lowlevel.get_current())
    with pytest.raises(TypeError):
        lowlevel._uses_threading("1")
    interp.close()
    with pytest.raises(RuntimeError, match="unrecognized"):
        lowlevel._uses_threading(interp.id)


def test_call_builtins_see_the_target_main(interps, interp):
    names = ["__builtins__", "__doc__", "__loader__", "__name__", "__package__", "__spec__"]
    if not PY314_PLUS:  # lazy annotations (PEP 649): no __annotations__ in a fresh __main__
        names.append("__annotations__")
    assert interp.call(dir) == sorted(names)
    assert interp.call(eval, "__name__") == "__main__"
    for func in (globals, locals, vars):  # __main__'s dict holds a module: not shareable
        with pytest.raises(interps.NotShareableError):
            interp.call(func)
    interp.prepare_main(spam=42)
    assert "spam" in interp.call(dir)


def _make_nested():
    def nested(x):
        return x * 2

    return nested


def test_stateless_functions_cross_as_code_both_ways(interps, interp):
    nested = _make_nested()  # not picklable: only its code can cross
    back = interp.call(answer_arg, nested)
    assert back is not nested
    assert back.__code__.co_code == nested.__code__.co_code
    assert back(21) == 42


def answer_arg(arg):
    return arg


def test_memoryview_arguments_and_results(interps, interp):
    res = interp.call(answer_arg, memoryview(b"spam!"))
    assert type(res) is memoryview
    assert res == memoryview(b"spam!")


def test_a_function_using_dunder_name_is_not_stateless(interps, tmp_path):
    # __name__ is a global of the function's module, not the builtin: it crosses by pickle and
    # runs in the caller's main script run again as "<fake __main__>".
    script = tmp_path / "main_script.py"
    script.write_text(
        "import importlib\n"
        f"interpreters = importlib.import_module({interps.__name__!r})\n"
        "def spam():\n"
        "    return __name__\n"
        "if __name__ == '__main__':\n"
        "    print(interpreters.create().call(spam))\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "<fake __main__>"


def test_function_missing_from_the_callers_main_is_not_shareable(interps, interp):
    import __main__

    source = "def _pep734_dynamic():\n    return __name__\n"
    exec(source, vars(__main__))
    try:
        with pytest.raises(interps.NotShareableError):
            interp.call(answer_arg, __main__._pep734_dynamic)
    finally:
        del __main__._pep734_dynamic


def test_list_all_does_not_resurrect_a_collected_interpreter(interps):
    interp = interps.create()
    interpid = interp.id
    cycle = [interp]
    cycle.append(cycle)
    gc.disable()
    try:
        del interp, cycle
    finally:
        gc.enable()
    old = gc.get_threshold()
    gc.set_threshold(1)
    try:
        ids = [i.id for i in interps.list_all()]
    finally:
        gc.set_threshold(*old)
    assert interpid not in ids


def test_exec_failure_is_raised_from_exec(interps, interp):
    with pytest.raises(interps.ExecutionFailed) as info:
        interp.exec("raise RuntimeError('uh-oh!')")
    assert info.value.__context__ is None
    assert info.traceback[-1].name == "exec"


def test_remaining_interpreters_warn_at_exit(interps):
    proc = run_python(
        f"""
        import importlib
        interpreters = importlib.import_module({interps.__name__!r})
        keep = interpreters.create()
        """
    )
    assert_clean_exit(proc)
    assert (
        "RuntimeWarning: remaining subinterpreters; close them with Interpreter.close()"
        in proc.stderr
    )


@pytest.mark.parametrize("value", [b"y" * 1_000_000, "\u20ac" * 300_000, "a" * 1_000_000])
def test_large_bytes_and_str_through_call_and_call_in_thread(interps, interp, value):
    assert interp.call(len, value) == len(value)
    assert interp.call(ident_of, value) == value
    out = interps.create_queue()
    interp.call_in_thread(put_len, out, value).join()
    assert out.get(timeout=30) == len(value)


# -- an interpreter's life at CPython's own cost -----------------------------------------------


def module_names():
    return " ".join(__import__("sys").modules)


def listed(x):
    return [x, x]


_AUDIT_IMPORTS = """if True:
    import os, sys
    def _hook(event, args, fd={fd}):
        if event == "import":
            os.write(fd, (args[0] + "\\n").encode())
    sys.addaudithook(_hook)
    """


@pytest.mark.parametrize("load_threading", [False, True], ids=["bare", "threading"])
def test_close_imports_nothing(interps, load_threading):
    # close() runs the first half of threading's shutdown in the interpreter: it must succeed
    # with no callback registered (it once failed with NameError and imported traceback to
    # report that) and import nothing in the dying interpreter.
    interp = interps.create()
    r, w = os.pipe()
    try:
        interp.exec(_AUDIT_IMPORTS.format(fd=w))
        if load_threading:
            interp.exec("import threading")
        os.write(w, b"closing\n")
        interp.close()
    finally:
        os.close(w)
        with os.fdopen(r) as f:
            seen = f.read().split()
    assert seen[seen.index("closing") :] == ["closing"]


@pytest.mark.ours_only
def test_first_call_imports_nothing(interps):
    # The first call into a fresh interpreter (code with native arguments and result) is made
    # by the extension itself: it loads nothing there, not even this package. A call that
    # returns something else loads the package's protocol and nothing from the stdlib (no
    # pickle, threading, queue, weakref, types): what an interpreter has at start-up.
    from subinterpreters import lowlevel

    bare = lowlevel.create()
    try:
        cid = lowlevel.channel_create()
        lowlevel.run_string(
            bare,
            "import sys; from subinterpreters import lowlevel as ll; "
            "ll.channel_send(cid, ' '.join(sys.modules))",
            {"cid": cid},
        )
        startup = set(lowlevel.channel_recv(cid).split())
        lowlevel.channel_destroy(cid)
    finally:
        lowlevel.destroy(bare)
    assert "subinterpreters.lowlevel" in startup, "the baseline is wrong"
    interp = interps.create()
    assert interp.call(answer) == 42
    assert set(interp.call(module_names).split()) <= startup - {
        m for m in startup if m.split(".")[0] == "subinterpreters"
    }
    assert interp.call(listed, 1) == [1, 1]
    loaded = set(interp.call(module_names).split()) - startup
    assert loaded == {"subinterpreters._protocol"}


@pytest.mark.ours_only
def test_queue_names_load_on_first_use(interps):
    # The queue classes live in a module loaded on first use; every name is there all the same.
    for name in ("Queue", "QueueEmpty", "QueueFull", "UNBOUND", "create_queue"):
        assert name in dir(interps)
        assert getattr(interps, name) is getattr(interps, name)
    with pytest.raises(AttributeError, match="no_such_name"):
        interps.no_such_name  # noqa: B018


@pytest.mark.ours_only
def test_queue_item_reaches_an_interpreter_without_queue_classes(interps):
    # A Queue taken by an interpreter that never loaded the queue module: it is loaded then.
    q = interps.create_queue()
    inner = interps.create_queue()
    q.put(inner)
    interp = interps.create()
    interp.prepare_main(qid=q.id)
    interp.exec(
        "from subinterpreters import lowlevel as ll\n"
        "item = ll._queue_get(qid, True, None)[0]\n"
        "assert type(item).__name__ == 'Queue', item\n"
        f"assert item.id == {inner.id}\n"
    )


@pytest.mark.ours_only
def test_interpreter_as_context_manager_closes_it(interps):
    with interps.create() as interp:
        assert interp.call(answer) == 42
        n = interp.id
    with pytest.raises(interps.InterpreterNotFoundError):
        interps.Interpreter(n)
    # closed also when the block raises, and the exception goes on
    with pytest.raises(ZeroDivisionError), interps.create() as interp:
        n = interp.id
        1 / 0  # noqa: B018
    assert n not in {i.id for i in interps.list_all()}
