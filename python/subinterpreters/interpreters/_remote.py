"""The half of :mod:`subinterpreters.interpreters` that runs inside the target interpreter.

The caller runs one of a few constant scripts with ``run_string`` (so the compiled script is
cached) and passes its data through ``shared``, which binds reserved names in ``__main__``. The
functions here take those names back out of ``__main__``, do the work, and answer on the
caller's result channel. Nothing is imported at module level beyond what every interpreter
already has: pickle and marshal are loaded the first time they are needed.

Messages on the result channel, one per call (and, for exec, only on failure):

* a plain ``int`` (within 64 bits), ``str`` or ``None``: a call's result, as is;
* ``bytes``: a pickled tuple whose first item is a tag: ``"R"`` (a call's result),
  ``"E"`` (an uncaught exception: type name, qualname, module, message, formatted,
  errdisplay), ``"S"`` (the source did not compile: the SyntaxError's arguments), ``"N"``
  (the result could not be pickled: the reason).
"""

import sys

from subinterpreters import lowlevel as _ll

# Names the caller binds in __main__ through `shared`; popped again before user code runs.
SRC = "__subinterpreters_src__"
FUNC = "__subinterpreters_func__"
ARGS = "__subinterpreters_args__"
CHAN = "__subinterpreters_chan__"
PREP = "__subinterpreters_prep__"

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
    while tb is not None and tb.tb_frame.f_code in _OUR_CODE:
        tb = tb.tb_next
    try:
        lines = traceback.format_exception(tp, exc, tb)
        errdisplay = "".join(lines).rstrip("\n")
    except BaseException:
        errdisplay = formatted
    return ("E", name, qualname, module, msg, formatted, errdisplay)


def _report(cid, exc):
    try:
        info = _excinfo(exc)
    except BaseException:  # keep going: the caller still needs to hear something
        info = ("E", "Exception", "Exception", "builtins", "", "Exception: ", "")
    _send(cid, info)
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
    try:
        if fdata[:1] == b"\0":
            func = _function(fdata)
        else:
            func = _pickle().loads(fdata)
        if args is None:
            res = _invoke(ns, func, (), {})
        elif type(args) is bytes:
            a, kw = _pickle().loads(args)
            res = _invoke(ns, func, a, kw)
        else:
            res = _invoke(ns, func, (args,), {})
    except BaseException as exc:
        try:
            _report(cid, exc)
        except _Reported:
            return
    tp = type(res)
    if res is None or tp is str or (tp is int and _INT_MIN <= res <= _INT_MAX):
        _ll.channel_send(cid, res)
        return
    try:
        data = _pickle().dumps(("R", res), 5)
    except BaseException as exc:
        data = _pickle().dumps(
            ("N", f"{_safe_repr(res)} does not support cross-interpreter data", _safe_str(exc)), 5
        )
    _ll.channel_send(cid, data)


# The call is made from module-level code run with __main__'s dict as globals, so that builtins
# which look at their caller's frame (eval, exec, globals) see __main__, as in 3.14. Our names
# live in a separate locals dict, where they cannot shadow the user's.
_INVOKE_CODE = compile(
    "__subinterpreters_res__ = "
    "__subinterpreters_f__(*__subinterpreters_a__, **__subinterpreters_k__)",
    "<subinterpreters>",
    "exec",
)


def _invoke(ns, func, args, kwargs):
    local = {
        "__subinterpreters_f__": func,
        "__subinterpreters_a__": args,
        "__subinterpreters_k__": kwargs,
    }
    exec(_INVOKE_CODE, ns, local)
    return local["__subinterpreters_res__"]


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


_OUR_CODE = frozenset({run_exec.__code__, run_call.__code__, _INVOKE_CODE})
