"""The half of :mod:`subinterpreters.interpreters` that runs inside the target interpreter.

The caller runs one of a few constant scripts with ``run_string`` (so the compiled script is
cached) and passes its data through ``shared``, which binds reserved names in ``__main__``. The
functions here take those names back out of ``__main__``, do the work, and answer on the
caller's result channel. Nothing is imported at module level beyond what every interpreter
already has and two small modules of this package: pickle and marshal are loaded the first
time they are needed.

Messages on the result channel, one per call (and, for exec, only on failure):

* a plain ``int`` (within 64 bits), ``str`` or ``None``: a call's result, as is;
* ``bytes``: a pickled tuple whose first item is a tag: ``"R"`` (a call's result),
  ``"E"`` (an uncaught exception: type name, qualname, module, message, formatted,
  errdisplay), ``"S"`` (the source did not compile: the SyntaxError's arguments), ``"N"``
  (the result could not be pickled: the reason).
"""

import sys
from types import FunctionType as _FunctionType

from subinterpreters import lowlevel as _ll
from subinterpreters._pool_worker import CALL as _CALL

# Names the caller binds in __main__ through `shared`; popped again before user code runs.
SRC = "__subinterpreters_src__"
FUNC = "__subinterpreters_func__"
ARGS = "__subinterpreters_args__"
CHAN = "__subinterpreters_chan__"
PREP = "__subinterpreters_prep__"
MAINFILE = "__subinterpreters_mainfile__"
TASK = "__subinterpreters_task__"

_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1

# Compiled scripts and rebuilt stateless functions, by source text / marshalled code.
_compiled: dict = {}
_functions: dict = {}
_CACHE_LIMIT = 256


class _Reported(Exception):
    """Raised after the failure was sent, so that run_string fails and the caller reads it."""


def _pickle():
    import pickle

    return pickle


def _send(cid, obj):
    _ll.channel_send(cid, _pickle().dumps(obj, 5))


def _safe_str(exc):
    try:
        return str(exc)
    except BaseException:
        return "<exception str() failed>"


def _excinfo(exc):
    """The data 3.14's ExecutionFailed.excinfo carries, as a tuple of strings."""
    import traceback

    tp = type(exc)
    name = getattr(tp, "__name__", "?")
    qualname = getattr(tp, "__qualname__", name)
    module = getattr(tp, "__module__", None)
    msg = _safe_str(exc)
    if module in (None, "builtins", "__main__"):
        formatted = f"{qualname}: {msg}"
    else:
        formatted = f"{module}.{qualname}: {msg}"
    # Drop our own frames (the wrappers below) from the outermost traceback.
    tb = exc.__traceback__
    while tb is not None and (
        tb.tb_frame.f_code in _OUR_CODE or tb.tb_frame.f_code.co_filename == _INVOKE_FILE
    ):
        tb = tb.tb_next
    try:
        lines = traceback.format_exception(tp, exc, tb)
        errdisplay = "".join(lines).rstrip("\n")
    except BaseException:
        errdisplay = formatted
    return ("E", name, qualname, module, msg, formatted, errdisplay)


def _safe_excinfo(exc):
    try:
        return _excinfo(exc)
    except BaseException:  # keep going: the caller still needs to hear something
        return ("E", "Exception", "Exception", "builtins", "", "Exception: ", "")


def _not_rebuilt(exc):
    """The message for a call whose function or arguments could not be rebuilt here (as in
    3.14: what cannot be rebuilt was not shareable)."""
    return ("N", f"{_safe_str(exc)}", _safe_str(exc))


def _report(cid, exc):
    _send(cid, _safe_excinfo(exc))
    raise _Reported


def _compile(src):
    code = _compiled.get(src)
    if code is None:
        code = compile(src, "<script>", "exec")
        if len(_compiled) >= _CACHE_LIMIT:
            _compiled.clear()
        _compiled[src] = code
    return code


def run_exec():
    """Run the source text or marshalled code in ``__main__`` (Interpreter.exec)."""
    ns = sys.modules["__main__"].__dict__
    src = ns.pop(SRC)
    cid = ns.pop(CHAN)
    if type(src) is bytes and src[:1] == b"\0":  # marshalled code (see the caller)
        code = _function(src).__code__
    else:
        try:
            code = _compile(src)
        except SyntaxError as exc:
            _send(cid, ("S", exc.args))
            raise _Reported from None
        except BaseException as exc:  # ValueError for NUL bytes on 3.11, MemoryError, ...
            _report(cid, exc)
    try:
        exec(code, ns)
    except BaseException as exc:
        _report(cid, exc)


def _function(data):
    """Rebuild a function from its marshalled code, whose bytes the caller prefixed with NUL.

    No source text starts with NUL (the caller refuses NUL in source), so the marker is
    unambiguous. Functions are bound to ``__main__``, as 3.14 runs stateless functions there.
    """
    func = _functions.get(data)
    if func is None:
        import marshal

        code = marshal.loads(data[1:])
        func = type(_function)(code, sys.modules["__main__"].__dict__)
        if len(_functions) >= _CACHE_LIMIT:
            _functions.clear()
        _functions[data] = func
    return func


def run_call():
    """Call the function with the arguments and send the result back (Interpreter.call)."""
    ns = sys.modules["__main__"].__dict__
    fdata = ns.pop(FUNC)
    args = ns.pop(ARGS)
    cid = ns.pop(CHAN)
    mainfile = ns.pop(MAINFILE, None)
    _ll.channel_send(cid, _call_reply(ns, fdata, args, mainfile))


def serve_call():
    """Make one call of ``Interpreter.call_async``: the task bound to ``TASK`` in ``__main__``
    (by ``_serve_queue``), ``(tid, reply_queue, fdata, adata, mainfile)``. Its reply,
    ``(tid, CALL, message, 0.0)`` in the pool's reply format (see ``_pool_worker``), where
    ``message`` is what ``run_call`` would send, is left bound to ``TASK`` as
    ``(reply_queue, reply)``: ``_serve_queue`` puts it there once the run is over."""
    ns = sys.modules["__main__"].__dict__
    tid, rq, fdata, args, mainfile = ns.pop(TASK)
    ns[TASK] = (rq, (tid, _CALL, _call_reply(ns, fdata, args, mainfile), 0.0))


def _call_reply(ns, fdata, args, mainfile):
    """What ``run_call`` sends for one call, as a value."""
    try:
        func, a, kw = _rebuild_call(fdata, args, mainfile)
    except BaseException as exc:
        return _pickle().dumps(_not_rebuilt(exc), 5)
    try:
        res = _invoke(ns, func, a, kw)
    except BaseException as exc:
        return _pickle().dumps(_safe_excinfo(exc), 5)
    return _result_reply(res)


def _rebuild_call(fdata, args, mainfile):
    """(function, args, kwargs) from a call's data."""
    if fdata[:1] == b"\0":
        func = _function(fdata)
    else:
        func = _loads(fdata, mainfile)
    if args is None:
        return func, (), {}
    if type(args) is bytes:
        a, kw = _loads(args, mainfile)
        return func, a, kw
    return func, (args,), {}


def _result_reply(res):
    """A call's result as its reply: as is when native, else pickled."""
    tp = type(res)
    if res is None or tp is str or (tp is int and _INT_MIN <= res <= _INT_MAX):
        return res
    try:
        return dumps(("R", res))
    except BaseException as exc:
        return _pickle().dumps(
            ("N", f"{_safe_repr(res)} does not support cross-interpreter data", _safe_str(exc)), 5
        )


# -- values that cross by pickle ------------------------------------------------------------


class _StatelessFunction:
    """Stands for a stateless function in a pickle: it crosses as its code, as in 3.14, and is
    rebuilt in the receiving interpreter's ``__main__``."""

    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data

    def __reduce__(self):
        return (_function, (self.data,))


def _stateless_data(func):
    """NUL + marshalled code of a function that needs no state, or None."""
    if func.__closure__ is not None or func.__defaults__ or func.__kwdefaults__:
        return None
    code = func.__code__
    if code.co_freevars or not uses_only_builtins(func):
        return None
    import marshal

    return b"\0" + marshal.dumps(code)


# The global names a code object (with its nested code) uses; by code object, bounded.
_global_names_of: dict = {}


def _global_names(code):
    names = _global_names_of.get(code)
    if names is None:
        import dis

        found = set()
        todo = [code]
        while todo:
            c = todo.pop()
            for ins in dis.get_instructions(c):
                if ins.opname in ("LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL", "LOAD_NAME"):
                    found.add(ins.argval)
            todo.extend(k for k in c.co_consts if type(k) is type(code))
        names = frozenset(found)
        if len(_global_names_of) >= 256:
            _global_names_of.clear()
        _global_names_of[code] = names
    return names


def uses_only_builtins(func):
    """3.14's rule: every global name the function uses resolves to a builtin (a name bound in
    its module, ``__name__`` included, is a global, not a builtin)."""
    import builtins

    names = _global_names(func.__code__)
    if not names:
        return True
    module = func.__globals__
    return all(n not in module and n in vars(builtins) for n in names)


def _swap_stateless(obj):
    """``obj``, or its stand-in when it is a stateless function (top level, or in a tuple)."""
    tp = type(obj)
    if tp is type(_swap_stateless):
        data = _stateless_data(obj)
        return obj if data is None else _StatelessFunction(data)
    if tp is tuple:
        return tuple(_swap_stateless(x) for x in obj)
    return obj


def dumps(obj):
    """Pickle ``obj`` for another interpreter: stateless functions (at the top level and in
    tuples) cross as code, as in 3.14; memoryviews cross as copies of their bytes."""
    obj = _swap_stateless(obj)
    pickle = _pickle()
    try:
        return pickle.dumps(obj, 5)
    except Exception:
        import io

        class _Pickler(pickle.Pickler):
            def reducer_override(self, o):
                if type(o) is memoryview:
                    return (memoryview, (o.tobytes(),))
                return NotImplemented

        buf = io.BytesIO()
        _Pickler(buf, 5).dump(obj)
        return buf.getvalue()


# Modules made by running the calling interpreter's main script as "<fake __main__>", by file
# name: 3.14 does this when a pickle refers to a __main__ function this interpreter lacks.
_fake_mains: dict = {}


def _fake_main(filename):
    mod = _fake_mains.get(filename)
    if mod is None:
        import types

        mod = types.ModuleType("<fake __main__>")
        mod.__file__ = filename
        mod.__builtins__ = __builtins__
        with open(filename, "rb") as f:
            code = compile(f.read(), filename, "exec")
        exec(code, mod.__dict__)
        _fake_mains[filename] = mod
    return mod


def _loads(data, mainfile):
    """Unpickle; if that fails and the caller's main script is known, retry with that script
    run as ``__main__`` (in a hidden module, the real ``__main__`` untouched)."""
    pickle = _pickle()
    try:
        return pickle.loads(data)
    except Exception:
        if not mainfile:
            raise
    real = sys.modules["__main__"]
    sys.modules["__main__"] = _fake_main(mainfile)
    try:
        return pickle.loads(data)
    finally:
        sys.modules["__main__"] = real


# A call of anything but a Python function (which gets a frame of its own) is made from
# module-level code run with __main__'s dict as globals and locals, so that builtins which look
# at their caller's frame (eval, exec, globals, locals, vars, dir) see __main__, as in 3.14.
# The callable, its arguments and a list for the result are constants of the code (a copy of
# this template per call), so no name of ours shows in __main__.
_INVOKE_FILE = "<subinterpreters>"
_INVOKE_KEYS = ("\0S", "\0F", "\0A", "\0K")


def _invoke_template():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "'str' object is not callable"
        return compile('"\\0S".append("\\0F"(*"\\0A", **"\\0K"))', _INVOKE_FILE, "exec")


_invoke_code: list = []  # the template, compiled on first use


def _invoke(ns, func, args, kwargs):
    if type(func) is _FunctionType:  # runs in a frame of its own, with its own globals
        return func(*args, **kwargs)
    if not _invoke_code:
        _invoke_code.append(_invoke_template())
    template = _invoke_code[0]
    sink = []
    values = dict(zip(_INVOKE_KEYS, (sink, func, args, kwargs), strict=True))
    consts = tuple(values.get(c, c) if type(c) is str else c for c in template.co_consts)
    exec(template.replace(co_consts=consts), ns)
    return sink[0]


def _safe_repr(obj):
    try:
        return repr(obj)
    except BaseException:
        return f"<{type(obj).__name__} object>"


def run_prepare():
    """Bind the pickled values in ``__main__`` (Interpreter.prepare_main, non-native values)."""
    ns = sys.modules["__main__"].__dict__
    data = ns.pop(PREP)
    ns.update(_pickle().loads(data))


_OUR_CODE = frozenset(f.__code__ for f in (run_exec, run_call, _call_reply, _invoke))
