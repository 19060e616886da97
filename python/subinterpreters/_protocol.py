"""The one call protocol: how a call into another interpreter is encoded, run there, and how
its reply is decoded. ``Interpreter.call``, ``Interpreter.exec``, ``call_in_thread``,
``call_async`` and the pool all use it; both halves live here, since every interpreter imports
this module. It imports nothing of this package at load but ``lowlevel``: ``_errors``,
``_exceptions`` (how a raised exception crosses; it sits below this module), ``_interrupted``,
pickle, marshal and dis load on first use, so that the first call into a fresh interpreter
imports no more than it needs.

A task crosses on a Rust queue as a tuple of natively shareable values::

    (tid, claim, reply_qid, fdata, akind, adata, mainfile)

* ``fdata``, what to run: a pickle of the callable (by reference), NUL + marshalled code of a
  function that needs no state (rebuilt in the target's ``__main__``, as 3.14 runs stateless
  functions), or, with ``akind == SCRIPT``, source text or NUL + marshalled code run as a script
  in ``__main__``;
* ``akind`` and ``adata``, the arguments: ``ARGS_NONE``; ``ARGS_ONE`` (``adata`` is the one
  argument, a native scalar); ``ARGS_TUPLE`` (a tuple of native scalars, positional);
  ``ARGS_PICKLED`` (a pickle of ``(args, kwargs)``); ``ARGS_CHUNK`` (a pickle of a list of
  argument tuples, for ``map``: the result is the list of results). Native scalars are None,
  bool, float, str, bytes and ints within 64 bits: they cross without pickle, and a large
  ``bytes`` is lent by its sender and copied once by the receiver;
* ``claim`` (0 for none): the task runs only if the target takes this claim first, else it was
  cancelled and is skipped with no reply. The target runs it through ``lowlevel._claim_run``,
  so that the caller can interrupt that call and no other (``lowlevel._claim_interrupt``);
* ``mainfile``: the caller's main script, to rebuild pickles that name its ``__main__``.

"Pickled" arguments and results are ``lowlevel._dumps`` streams: ordinary data (lists, dicts,
sets, tuples of plain values) in the native codec's format, anything else a pickle; exceptions
are always pickled.

The reply, put on ``reply_qid``, is ``(tid, status, payload, seconds)``: ``OK`` (the native
result), ``PICKLED`` (a pickled result), ``RAISED`` (``(pickled exception or None, excinfo
strings)``), ``NOT_SHAREABLE`` (``(message, reason)``: the call or its result could not
cross), ``SYNTAX`` (a script's SyntaxError arguments), ``UNGUARDED`` (the message of the
``RuntimeError`` for a main script that started interpreters while it was run here to rebuild
a pickle, see :func:`refuse_while_rerunning_main`), ``INTERRUPTED`` (the payload of ``RAISED``:
the call raised after the caller interrupted it). The caller's side adds ``FAILED`` (the
payload is the exception, made in the caller's interpreter) and ``DEAD`` (``(owner key,
exception)``: every unanswered call of that owner failed with it). :func:`decode` turns a reply
into the result or the exception to raise; :func:`remote_exception` is the one place an
exception raised over there becomes one to raise here.

:func:`call_in` hands its commonest task to ``lowlevel._call_code`` instead of a queue: code
(``fdata`` with NUL) called with ``ARGS_NONE``, ``ARGS_ONE`` or ``ARGS_TUPLE`` arguments, or run
as a script. The extension rebuilds and calls the function in the target as :func:`run` does
and answers ``(OK, result)`` for a native result without loading this module there (a fresh
interpreter's first call imports nothing); an exception or another result is encoded there by
:func:`raised` or :func:`result_reply`, this module loaded only then.
"""

import _thread
import builtins
import sys
from time import perf_counter

from subinterpreters import lowlevel as _ll

ARGS_NONE, ARGS_ONE, ARGS_TUPLE, ARGS_PICKLED, ARGS_CHUNK, SCRIPT = 0, 1, 2, 3, 4, 5
OK, PICKLED, RAISED, NOT_SHAREABLE, SYNTAX, FAILED, DEAD, UNGUARDED = 0, 1, 2, 3, 4, 5, 6, 7
INTERRUPTED = 8

# What a claimed call is interrupted with (a built-in class: every interpreter shares those).
INTERRUPT = KeyboardInterrupt

# Unbound items become UNBOUND markers; items that are not shareable are pickled.
QUEUE_UNBOUND, QUEUE_FALLBACK = 3, 1

# The name under which the caller binds a task's queue (or the task) in the target's __main__;
# popped before user code runs.
TASK = "__subinterpreters_task__"

_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_SCALARS = frozenset({type(None), bool, float, str, bytes})
_FunctionType = type(lambda: None)
_BuiltinType = type(len)
_CACHE_LIMIT = 256


def _pickle():
    import pickle

    return pickle


# Loaded on first use: a call that returns normally needs neither (a fresh interpreter's first
# call imports no more than it must).
def _errors():
    from subinterpreters import _errors

    return _errors


def _exceptions():
    from subinterpreters import _exceptions

    return _exceptions


def _native(value):
    tp = type(value)
    return tp in _SCALARS or (tp is int and _INT_MIN <= value <= _INT_MAX)


def _safe_str(obj):
    try:
        return str(obj)
    except BaseException:
        return f"<{type(obj).__name__} object>"


def _safe_repr(obj):
    try:
        return repr(obj)
    except BaseException:
        return f"<{type(obj).__name__} object>"


def new_reply_queue():
    """A queue for tasks and replies (released with ``lowlevel._queue_release``); it is not
    listed among the user's queues."""
    return _ll._queue_create(0, QUEUE_UNBOUND, QUEUE_FALLBACK, True)


# -- the caller's side: encoding ----------------------------------------------------------------

# Marshalled code (with its NUL marker) by code object, and pool function data by function.
_marshalled: dict = {}
_by_reference: dict = {}


def _marshal_code(code, cache):
    import marshal

    data = b"\0" + marshal.dumps(code)
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[code] = data
    return data


def stateless_reason(func):
    """Why this function cannot cross as its code alone (3.14's "stateless" rule), or None."""
    if func.__closure__ is not None:
        return "closures not supported"
    if func.__defaults__:
        return "defaults not supported"
    if func.__kwdefaults__:
        return "keyword defaults not supported"
    if func.__code__.co_freevars:
        return "closures not supported"
    return None


def marshalled(code):
    """NUL + marshalled ``code`` (cached by code object)."""
    data = _marshalled.get(code)
    return data if data is not None else _marshal_code(code, _marshalled)


def function_data(func, by_reference=False):
    """``fdata`` for a callable: its code if it is a function that needs no state (3.14's
    rule for ``Interpreter.call``), else a pickle. With ``by_reference`` (the pool, as 3.14's
    pool does) a function of an importable module goes by reference first, so it runs with its
    module's globals. Raises ``TypeError`` (not callable) or ``NotShareableError``."""
    if type(func) is _FunctionType:
        if by_reference and func.__module__ != "__main__":
            key = (func, func.__code__)
            data = _by_reference.get(key)
            if data is None:
                try:
                    data = _pickle().dumps(func, 5)
                except Exception:
                    data = function_data(func)
                if len(_by_reference) >= _CACHE_LIMIT:
                    _by_reference.clear()
                _by_reference[key] = data
            return data
        reason = stateless_reason(func)
        if reason is None and uses_only_builtins(func):
            return marshalled(func.__code__)
    elif not callable(func) and not by_reference:  # the pool's call fails over there instead
        raise TypeError(f"expected a callable, got {func!r}")
    else:
        reason = None
    try:
        return _pickle().dumps(func, 5)
    except Exception as exc:
        if reason is not None:
            raise _errors().NotShareableError(
                "only stateless functions are shareable"
            ) from ValueError(reason)
        raise _errors().NotShareableError(
            f"{_safe_repr(func)} does not support cross-interpreter data"
        ) from exc


def encode_args(args, kwargs):
    """``(akind, adata)`` for a call's arguments: natively when they are native scalars given
    by position, else pickled (stateless functions among them as code). Raises
    ``NotShareableError`` naming the argument that could not cross."""
    if not kwargs:
        if not args:
            return ARGS_NONE, None
        if len(args) == 1:
            if _native(args[0]):
                return ARGS_ONE, args[0]
        elif all(_native(a) for a in args):
            return ARGS_TUPLE, args
    try:
        return ARGS_PICKLED, dumps((args, kwargs))
    except Exception as exc:
        bad = next((a for a in (*args, *kwargs.values()) if not _picklable(a)), args)
        raise _errors().NotShareableError(
            f"{_safe_repr(bad)} does not support cross-interpreter data"
        ) from exc


def encode_chunk(chunk):
    """``(ARGS_CHUNK, adata)`` for a list of argument tuples (``map``)."""
    return ARGS_CHUNK, _ll._dumps(list(chunk))  # ordinary data natively, else pickle


def _picklable(value):
    try:
        _pickle().dumps(value, 5)
    except Exception:
        return False
    return True


def main_file():
    """The file of this interpreter's ``__main__``, if it has one (see :func:`_loads`)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return path if type(path) is str else None


# One task-and-reply queue per thread, for calls made while the thread waits (call_in).
_thread_queues = _thread._local()


class _ThreadQueue:
    __slots__ = ("qid",)

    def __init__(self):
        self.qid = new_reply_queue()

    def __del__(self):
        try:
            _ll._queue_release(self.qid)
        except Exception:
            pass


def call_in(handle, fdata, akind, adata, mainfile=None):
    """Make one call (or run one script) in interpreter ``handle`` from this thread, waiting
    for it: its reply's ``(status, payload)``. ``run_string``'s own errors propagate
    (``RunFailedError`` if the interpreter could not even serve the task)."""
    if akind in _DIRECT and type(fdata) is bytes and fdata[:1] == b"\0":
        # Code with native arguments: made by lowlevel itself, which imports nothing in the
        # target unless the call raises or returns a non-native result (None: not code it
        # can call, nothing ran).
        reply = _ll._call_code(handle, fdata, akind, adata)
        if reply is not None:
            return reply
    holder = _thread_queues.__dict__.pop("q", None)
    task = (fdata, akind, adata, mainfile)
    if holder is not None:
        try:
            _ll._queue_put(holder.qid, (0, 0, holder.qid, *task), 0, False, None)
        except RuntimeError:  # a QueueNotFoundError: destroyed by someone listing all queues
            holder = None
    if holder is None:
        holder = _ThreadQueue()
        _ll._queue_put(holder.qid, (0, 0, holder.qid, *task), 0, False, None)
    qid = holder.qid
    try:
        _ll.run_string(handle, _SERVE_MAIN, {TASK: qid})
        reply = _ll._queue_get(qid, False, None)[0]
    except BaseException:
        holder = None  # what is left in it (the task, a reply) goes with it
        raise
    finally:
        if holder is not None:
            _thread_queues.q = holder
    return reply[1], reply[2]


# What lowlevel._call_code makes: a call with native arguments, or code run as a script.
_DIRECT = frozenset((ARGS_NONE, ARGS_ONE, ARGS_TUPLE, SCRIPT))

# Without a fromlist, __import__ returns the top package from sys.modules in C: cheaper than
# the fromlist form, which runs importlib's Python code each time.
_SERVE_MAIN = "__import__('subinterpreters._protocol')._protocol.serve_main()"


# -- the caller's side: decoding ----------------------------------------------------------------


def decode(status, payload, unwrap):
    """``(True, result)`` or ``(False, exception to raise)`` for a reply. With ``unwrap`` (the
    pool) an exception raised by the call is raised as itself, its remote traceback in an
    ``ExecutionFailed`` as its ``__cause__``; else (``Interpreter.call``) as that
    ``ExecutionFailed``."""
    if status == OK:
        return True, payload
    if status == PICKLED:
        try:
            return True, _ll._loads(payload)
        except Exception as exc:
            err = _errors().NotShareableError("result not shareable")
            err.__cause__ = exc
            return False, err
    if status == RAISED:
        return False, remote_exception(payload[0], payload[1], unwrap)
    if status == NOT_SHAREABLE:
        message, reason = payload
        err = _errors().NotShareableError(message)
        err.__cause__ = _errors().NotShareableError(reason)
        return False, err
    if status == SYNTAX:
        return False, SyntaxError(*payload)
    if status == UNGUARDED:
        return False, RuntimeError(payload)
    if status == FAILED:
        return False, payload
    if status == INTERRUPTED:
        from subinterpreters._interrupted import TaskInterrupted

        err = TaskInterrupted("the call was interrupted")
        err.__cause__ = remote_exception(payload[0], payload[1], unwrap)
        return False, err
    return False, _errors().InterpreterError(f"unexpected reply status {status!r}")


def remote_exception(data, info, unwrap):
    """The exception to raise for one raised in another interpreter (see
    :func:`subinterpreters._exceptions.remote_exception`)."""
    return _exceptions().remote_exception(data, info, unwrap)


def remote_excinfo(payload):
    """The ``excinfo`` of an ``ExecutionFailed`` for a ``RAISED`` payload."""
    return _errors().excinfo(*payload[1])


# -- the target's side --------------------------------------------------------------------------

_compiled: dict = {}
_functions: dict = {}  # fdata -> rebuilt function (functions only: they hold no call state)


def run(fdata, akind, adata, mainfile):
    """Make one call (or run one script) here: ``(status, payload, seconds)``."""
    start = perf_counter()
    if akind == SCRIPT:
        return _run_script(fdata, start)
    try:
        func = _functions.get(fdata)
        if func is None:
            func = _function(fdata) if fdata[:1] == b"\0" else _loads(fdata, mainfile)
            if type(func) is _FunctionType:
                if len(_functions) >= _CACHE_LIMIT:
                    _functions.clear()
                _functions[fdata] = func
        if akind == ARGS_PICKLED or akind == ARGS_CHUNK:
            adata = _loads(adata, mainfile)
    except _MainRerun as exc:
        return (UNGUARDED, str(exc), 0.0)
    except BaseException as exc:
        reason = f"object could not be unpickled: {type(exc).__name__}: {_safe_str(exc)}"
        return (NOT_SHAREABLE, ("args not shareable", reason), 0.0)
    try:
        if type(func) is _BuiltinType and func.__self__ is builtins and func in _FRAME_BUILTINS:
            res = _invoke_in_main(func, akind, adata)
        elif akind == ARGS_NONE:
            res = func()
        elif akind == ARGS_ONE:
            res = func(adata)
        elif akind == ARGS_TUPLE:
            res = func(*adata)
        elif akind == ARGS_PICKLED:
            res = func(*adata[0], **adata[1])
        else:
            res = [func(*args) for args in adata]
    except BaseException as exc:
        return (RAISED, raised(exc), perf_counter() - start)
    seconds = perf_counter() - start
    return (*result_reply(res), seconds)


def result_reply(res):
    """``(status, payload)`` for a call's result: ``OK`` (native), ``PICKLED`` or
    ``NOT_SHAREABLE``."""
    if _native(res):
        return (OK, res)
    try:
        return (PICKLED, dumps(res))
    except BaseException as exc:
        reason = (
            f"{_safe_repr(res)} does not support cross-interpreter data",
            f"{type(exc).__name__}: {_safe_str(exc)}",
        )
        return (NOT_SHAREABLE, reason)


def claimed(out):
    """The reply ``(status, payload, seconds)`` of a call made by
    ``lowlevel._claim_run(claim, holder, run, ...)``, from what that returned (not None): a
    call that raised after it was interrupted is ``INTERRUPTED``. (An exception can escape
    ``run`` itself when the interrupt strikes in our code around the user's call: that is the
    call's exception all the same.)"""
    ok, reply, interrupted = out
    if not ok:
        reply = (RAISED, raised(reply), 0.0)
    if interrupted and reply[0] == RAISED:
        return (INTERRUPTED, reply[1], reply[2])
    return reply


def _invoke_in_main(func, akind, adata):
    if akind == ARGS_NONE:
        return _invoke(func, (), {})
    if akind == ARGS_ONE:
        return _invoke(func, (adata,), {})
    if akind == ARGS_TUPLE:
        return _invoke(func, adata, {})
    if akind == ARGS_PICKLED:
        return _invoke(func, adata[0], adata[1])
    return [_invoke(func, args, {}) for args in adata]


def _run_script(src, start):
    ns = sys.modules["__main__"].__dict__
    try:
        if type(src) is bytes and src[:1] == b"\0":  # marshalled code (see the caller)
            code = _function(src).__code__
        else:
            code = _compiled.get(src)
            if code is None:
                code = compile(src, "<script>", "exec")
                if len(_compiled) >= _CACHE_LIMIT:
                    _compiled.clear()
                _compiled[src] = code
    except SyntaxError as exc:
        return (SYNTAX, exc.args, 0.0)
    except BaseException as exc:  # ValueError for NUL bytes on 3.11, MemoryError, ...
        return (RAISED, raised(exc), 0.0)
    try:
        exec(code, ns)
    except BaseException as exc:
        return (RAISED, raised(exc), perf_counter() - start)
    return (OK, None, perf_counter() - start)


def raised(exc):
    """The ``RAISED`` payload for an exception a call raised (see
    :func:`subinterpreters._exceptions.raised`)."""
    try:
        encode = _exceptions().raised
    except BaseException:  # cannot even load it (a damaged interpreter): the bare facts
        name = _safe_str(getattr(type(exc), "__name__", "Exception"))
        text = f"{name}: {_safe_str(exc)}"
        return (None, (name, name, "builtins", _safe_str(exc), text, text))
    return encode(exc, ours)


def serve_main():
    """Serve the one task waiting on the queue bound to ``TASK`` in ``__main__``
    (``Interpreter.call`` and ``exec``): its reply goes to the queue the task names."""
    qid = sys.modules["__main__"].__dict__.pop(TASK)
    tid, _claim, rq, fdata, akind, adata, mainfile = _ll._queue_get(qid, False, None)[0]
    _ll._queue_put(rq, (tid,) + run(fdata, akind, adata, mainfile), 0, False, None)


def serve_bound():
    """Make the call bound to ``TASK`` in ``__main__`` (by ``lowlevel._serve_queue``, for
    ``Interpreter.call_async``) and leave ``(reply_queue, reply)`` bound there for it to put."""
    ns = sys.modules["__main__"].__dict__
    tid, claim, rq, fdata, akind, adata, mainfile = ns.pop(TASK)
    if not claim:
        ns[TASK] = (rq, (tid,) + run(fdata, akind, adata, mainfile))
        return
    out = _ll._claim_run(claim, 0, run, fdata, akind, adata, mainfile)
    ns[TASK] = None if out is None else (rq, (tid,) + claimed(out))  # None: cancelled


# -- rebuilding functions and pickles -------------------------------------------------------------


def _function(data):
    """Rebuild a function from its marshalled code, whose bytes the caller prefixed with NUL.

    No source text starts with NUL (the caller refuses NUL in source), so the marker is
    unambiguous. Functions are bound to ``__main__``, as 3.14 runs stateless functions there.
    """
    func = _functions.get(data)
    if func is None:
        import marshal

        code = marshal.loads(data[1:])
        func = _FunctionType(code, sys.modules["__main__"].__dict__)
        if len(_functions) >= _CACHE_LIMIT:
            _functions.clear()
        _functions[data] = func
    return func


class _StatelessFunction:
    """Stands for a stateless function in a pickle: it crosses as its code, as in 3.14, and is
    rebuilt in the receiving interpreter's ``__main__``."""

    __slots__ = ("data",)

    def __init__(self, data):
        self.data = data

    def __reduce__(self):
        return (_function, (self.data,))


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
        if len(_global_names_of) >= _CACHE_LIMIT:
            _global_names_of.clear()
        _global_names_of[code] = names
    return names


def uses_only_builtins(func):
    """3.14's rule: every global name the function uses resolves to a builtin (a name bound in
    its module, ``__name__`` included, is a global, not a builtin)."""
    names = _global_names(func.__code__)
    if not names:
        return True
    module = func.__globals__
    return all(n not in module and n in vars(builtins) for n in names)


def _swap_stateless(obj):
    """``obj``, or its stand-in when it is a stateless function (top level, or in a tuple)."""
    tp = type(obj)
    if tp is _FunctionType:
        if stateless_reason(obj) is None and uses_only_builtins(obj):
            return _StatelessFunction(marshalled(obj.__code__))
        return obj
    if tp is tuple:
        return tuple(_swap_stateless(x) for x in obj)
    return obj


def dumps(obj):
    """Pickle ``obj`` for another interpreter: stateless functions (at the top level and in
    tuples) cross as code, as in 3.14; memoryviews cross as copies of their bytes."""
    obj = _swap_stateless(obj)
    try:
        return _ll._dumps(obj)  # ordinary data natively, else pickle
    except Exception:
        import io

        pickle = _pickle()

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

        # Named by _exceptions, which sends a class of this module back by that name.
        mod = types.ModuleType(_exceptions().FAKE_MAIN)
        mod.__file__ = filename
        mod.__builtins__ = __builtins__
        with open(filename, "rb") as f:
            code = compile(f.read(), filename, "exec")
        global _rerunning_main
        _rerunning_main = filename
        try:
            exec(code, mod.__dict__)
        finally:
            _rerunning_main = None
        _fake_mains[filename] = mod
    return mod


# The main script this interpreter is running as "<fake __main__>", while it runs.
_rerunning_main = None


class _MainRerun(RuntimeError):
    """Raised where a main script run as "<fake __main__>" starts an interpreter; its message
    crosses as an ``UNGUARDED`` reply."""


_UNGUARDED_MESSAGE = """\
An interpreter was started while another interpreter ran your main script ({file})
only to find a function or class defined in it: the script starts interpreters or a pool
whenever it is imported. Protect its entry point so that importing it starts nothing:

    if __name__ == "__main__":
        main()"""


def refuse_while_rerunning_main():
    """Raise the one error for a script without an ``if __name__ == "__main__":`` guard when
    this interpreter runs it as "<fake __main__>" (``interpreters.create`` and the pool call
    this first): without it each worker would run the script again, and start more."""
    if _rerunning_main is not None:
        raise _MainRerun(_UNGUARDED_MESSAGE.format(file=_rerunning_main))


def _loads(data, mainfile):
    """Unpickle; if that fails and the caller's main script is known, retry with that script
    run as ``__main__`` (in a hidden module, the real ``__main__`` untouched)."""
    try:
        return _ll._loads(data)  # the native format or a pickle
    except Exception:
        if not mainfile:
            raise
    real = sys.modules["__main__"]
    sys.modules["__main__"] = _fake_main(mainfile)
    try:
        return _ll._loads(data)
    finally:
        sys.modules["__main__"] = real


# A call of a builtin that looks at its caller's frame (eval, exec, globals, locals, vars, dir;
# a builtin has no frame of its own) is made from
# module-level code run with __main__'s dict as globals and locals, so that builtins which look
# at their caller's frame (eval, exec, globals, locals, vars, dir) see __main__, as in 3.14.
# The callable, its arguments and a list for the result are constants of the code (a copy of
# this template per call), so no name of ours shows in __main__.
_FRAME_BUILTINS = frozenset(
    (builtins.eval, builtins.exec, builtins.globals, builtins.locals, builtins.vars, builtins.dir)
)
_INVOKE_FILE = "<subinterpreters>"
_INVOKE_KEYS = ("\0S", "\0F", "\0A", "\0K")
_invoke_code: list = []  # the template, compiled on first use


def _invoke_template():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "'str' object is not callable"
        return compile('"\\0S".append("\\0F"(*"\\0A", **"\\0K"))', _INVOKE_FILE, "exec")


def _invoke(func, args, kwargs):
    if not _invoke_code:
        _invoke_code.append(_invoke_template())
    template = _invoke_code[0]
    sink = []
    values = dict(zip(_INVOKE_KEYS, (sink, func, args, kwargs), strict=True))
    consts = tuple(values.get(c, c) if type(c) is str else c for c in template.co_consts)
    exec(template.replace(co_consts=consts), sys.modules["__main__"].__dict__)
    return sink[0]


_OUR_CODE = frozenset(
    f.__code__ for f in (run, _run_script, _invoke, _invoke_in_main, serve_main, serve_bound)
)


def ours(code):
    """Whether ``code`` is the protocol's own, between a call and the user's code: such
    frames are left out of a raised exception's remote traceback (see :func:`raised`)."""
    # The filename first: the invoking code holds a list among its constants (unhashable).
    return code.co_filename == _INVOKE_FILE or code in _OUR_CODE
