"""Run code in other interpreters of this process: CPython 3.14's ``concurrent.interpreters``.

``from subinterpreters import interpreters`` is a drop-in for ``from concurrent import
interpreters`` on CPython 3.11 to 3.15, built on :mod:`subinterpreters.lowlevel`::

    from subinterpreters import interpreters

    interp = interpreters.create()
    interp.exec("import math")
    print(interp.call(pow, 2, 10))        # 1024, computed in the other interpreter

What crosses: "shareable" values (see :func:`is_shareable`) and anything picklable. Functions
that need no state (no closure, no defaults, no module globals) cross as their code and run in
the target's ``__main__``; other callables cross by reference, through pickle. An exception
raised over there comes back as :class:`ExecutionFailed`, describing it as data.

Each interpreter imports this module separately, so it imports little up front: pickle, marshal
and threading are loaded on first use.
"""

import weakref
from _thread import _local, allocate_lock

from subinterpreters import lowlevel as _ll

from . import _queues, _remote
from ._handle import IdHandle
from ._queues import (
    UNBOUND,
    UNBOUND_ERROR,
    UNBOUND_REMOVE,
    ItemInterpreterDestroyed,
    Queue,
    QueueEmpty,
    QueueError,
    QueueFull,
    QueueNotFoundError,
)
from ._queues import create as create_queue

__all__ = [
    "get_current",
    "get_main",
    "create",
    "list_all",
    "is_shareable",
    "Interpreter",
    "InterpreterError",
    "InterpreterNotFoundError",
    "ExecutionFailed",
    "NotShareableError",
    "create_queue",
    "Queue",
    "QueueEmpty",
    "QueueFull",
    "QueueError",
    "QueueNotFoundError",
    "ItemInterpreterDestroyed",
    "UNBOUND",
    "UNBOUND_ERROR",
    "UNBOUND_REMOVE",
]


# ``importlib.reload()`` runs this file again in the same namespace: what lowlevel and other
# modules hold on to (the exception classes, the one Interpreter per id, the call runners) is put
# back over the new definitions, so that the names stay the objects already in use.
_KEPT = (
    "InterpreterError",
    "InterpreterNotFoundError",
    "NotShareableError",
    "ExecutionFailed",
    "Interpreter",
    "_known",
    "_channels",
    "_call_runners",
    "_closing",
    "_call_runners_lock",
)
_reloaded = {name: globals()[name] for name in _KEPT if name in globals()}

# -- exceptions ---------------------------------------------------------------------------------


_WHENCE_NAMES = {
    0: "unknown",
    1: "runtime init",
    2: "legacy C-API",
    3: "C-API",
    4: "cross-interpreter C-API",
    5: "_interpreters module",
}
_WHENCE_STDLIB = _WHENCE_NAMES[5]


class InterpreterError(Exception):
    """An operation on an interpreter failed."""


class InterpreterNotFoundError(InterpreterError):
    """No interpreter has the given ID (it was never made, or it was closed)."""


class NotShareableError(TypeError):
    """The object cannot be passed to another interpreter."""


globals().update(_reloaded)
_queues._register()


_EXEC_FAILURE = "{summary}\n\nUncaught in the interpreter:\n\n{display}"


class ExecutionFailed(InterpreterError):
    """Code run by Interpreter.exec() or Interpreter.call() raised an exception it did not catch.

    The exception itself stays behind in the other interpreter; ``excinfo`` describes it:
    ``type`` (with ``__name__``, ``__qualname__``, ``__module__``), ``msg`` (its ``str()``),
    ``formatted`` (``"Type: msg"``) and ``errdisplay`` (the traceback as Python prints it).
    """

    def __init__(self, excinfo):
        summary = excinfo.formatted
        if not summary:
            if excinfo.type and excinfo.msg:
                summary = f"{excinfo.type.__name__}: {excinfo.msg}"
            else:
                summary = excinfo.type.__name__ or excinfo.msg
        super().__init__(summary)
        self.excinfo = excinfo

    def __reduce__(self):
        return (type(self), (self.excinfo,))

    def __str__(self):
        summary = super().__str__()
        try:
            display = self.excinfo.errdisplay
        except Exception:
            return summary
        return _EXEC_FAILURE.format(summary=summary, display=display)


def _excinfo(name, qualname, module, msg, formatted, errdisplay):
    from types import SimpleNamespace

    kind = SimpleNamespace(__name__=name, __qualname__=qualname, __module__=module)
    return SimpleNamespace(type=kind, msg=msg, formatted=formatted, errdisplay=errdisplay)


def _excinfo_from_run_failed(exc):
    """An excinfo built from lowlevel's RunFailedError (when our wrapper could not report)."""
    type_name = getattr(exc, "type_name", "") or "Exception"
    text = str(exc.args[0]) if exc.args else ""
    # 3.11's summary: "<class 'module.Qualname'>: message".
    msg = text.split(">: ", 1)[1] if ">: " in text else text
    module, _, qualname = type_name.rpartition(".")
    module = module or "builtins"
    name = qualname.rpartition(".")[2]
    trace = getattr(exc, "traceback", "") or ""
    return _excinfo(name, qualname, module, msg, f"{type_name}: {msg}", trace.rstrip("\n"))


# -- values -------------------------------------------------------------------------------------

# Exactly these types are shareable as in 3.14 (tuples whatever their items, as 3.14 answers);
# ChannelID, this project's channel handle, is shareable as well.
_SHAREABLE_TYPES = frozenset(
    {type(None), bool, int, float, str, bytes, tuple, memoryview, _ll.ChannelID}
)
# What lowlevel's `shared=` carries as is (ints within 64 bits only).
_NATIVE_TYPES = (str, bytes, type(None))
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


def is_shareable(obj):
    """Return True if the object can be passed to another interpreter as it is, without pickle.

    Shareable: None, bool, int, float, str, bytes, tuple, memoryview, Queue (exact types).
    """
    tp = type(obj)
    return tp in _SHAREABLE_TYPES or tp is Queue


def _shareable_deep(obj):
    tp = type(obj)
    if tp is tuple:
        return all(_shareable_deep(item) for item in obj)
    return tp in _SHAREABLE_TYPES or tp is Queue


def _not_shareable(obj):
    return NotShareableError(f"{obj!r} does not support cross-interpreter data")


def _pickle():
    import pickle

    return pickle


# -- module functions ---------------------------------------------------------------------------


def create():
    """Create a new, idle interpreter and return it.

    The interpreter lives while the returned object (or another Interpreter for the same id, in
    any interpreter) does, or until close() is called.
    """
    handle = _ll.create()
    if _PY311:
        # 3.12+ give a new interpreter the main one's sys.path[0] (the script's directory).
        _ll.run_string(handle, _SYS_PATH_0, {"path0": _main_path0()})
    interp = Interpreter._make(int(handle), handle)
    interp._whence = _WHENCE_STDLIB
    return interp


_PY311 = __import__("sys").version_info < (3, 12)
_SYS_PATH_0 = """\
import sys
if path0 is not None and path0 not in sys.path:
    sys.path.insert(0, path0)
del sys, path0
"""


def _main_path0():
    import sys

    path = getattr(sys, "path", None)
    return path[0] if path and type(path[0]) is str else None


def list_all():
    """Return every existing interpreter, in ascending order of id."""
    found = []
    # Plain ints: the lowlevel handles would keep alive an interpreter whose last Interpreter
    # the garbage collector frees meanwhile.
    for n in [int(i) for i in _ll.list_all()]:
        try:
            found.append(Interpreter(n))
        except InterpreterNotFoundError:  # closed since it was listed
            pass
    return found


def get_current():
    """Return the interpreter this code runs in."""
    return Interpreter(int(_ll.get_current()))


def get_main():
    """Return the main interpreter."""
    return Interpreter(_MAIN_ID)


_MAIN_ID = int(_ll.get_main())


def _warn_remaining():
    """At exit, as CPython 3.14's finalization does: warn about interpreters still alive."""
    if len(_ll.list_all()) > 1:
        import warnings

        warnings.warn_explicit(
            "remaining subinterpreters; close them with Interpreter.close()",
            RuntimeWarning,
            "<sys>",
            0,
        )


if int(_ll.get_current()) == _MAIN_ID and not _reloaded:
    import atexit

    # Registered after lowlevel's exit cleanup, so it runs before it.
    atexit.register(_warn_remaining)

# Interpreter id -> stop() of its call_async runner (see subinterpreters.aio), and the ids of
# interpreters being closed (no new runner starts for those), both under the lock.
_call_runners: dict = {}
_closing: set = set()
_call_runners_lock = allocate_lock()

# One Interpreter per id, while anyone holds it.
_known = weakref.WeakValueDictionary()

# One result channel per thread, taken out while a call uses it (see Interpreter._run).
_channels = _local()

_RUN_EXEC = f"__import__({_remote.__name__!r}, None, None, ['_']).run_exec()"
_RUN_CALL = f"__import__({_remote.__name__!r}, None, None, ['_']).run_call()"
_RUN_PREPARE = f"__import__({_remote.__name__!r}, None, None, ['_']).run_prepare()"


# Run in an interpreter before it is destroyed: the first half of `threading._shutdown`, which
# CPython's finalization runs before joining the non-daemon threads (lowlevel's destroy() joins
# them first, so a thread that waits for such a callback would never end). Each callback runs
# once: `_SHUTTING_DOWN` refuses new ones and the list is emptied for finalization's own call.
_THREADING_SHUTDOWN = """\
import sys as _s
_t = _s.modules.get('threading')
if _t is not None and not getattr(_t, '_SHUTTING_DOWN', True):
    _t._SHUTTING_DOWN = True
    _c = list(_t._threading_atexits)
    _t._threading_atexits.clear()
    for _f in reversed(_c):
        try:
            _f()
        except BaseException:
            print('Exception ignored on threading shutdown:', file=_s.stderr)
            __import__('traceback').print_exc()
    del _c, _f
del _s, _t
"""


def _translate(exc, n, action):
    """Turn lowlevel's RuntimeError into this module's exception."""
    text = str(exc)
    if text.startswith("unrecognized interpreter ID"):
        return InterpreterNotFoundError(text)
    if action == "destroy" and text == "interpreter already running":
        return InterpreterError("interpreter running")
    return InterpreterError(text)


class Interpreter(IdHandle):
    """One Python interpreter of this process.

    There is one object per interpreter id in each interpreter; ``Interpreter(id)`` returns it.
    ``id`` is the process-wide id and ``whence`` says how the interpreter came to be:
    ``"runtime init"`` for the main interpreter, ``"_interpreters module"`` for the others
    (as CPython 3.14 names those made by its own module).

    Only interpreters made by this module (or by :mod:`subinterpreters.lowlevel`, or by
    CPython's own interpreter module) can be changed: close(), prepare_main(), exec() and
    call() refuse the main interpreter and those made through the C-API, as 3.14 does. An
    Interpreter of such an interpreter keeps it alive; when the last one is garbage-collected
    (in every interpreter) the interpreter is destroyed.
    """

    def __new__(cls, id, /, _whence=None, _ownsref=None):
        if not isinstance(id, (int, _ll.InterpreterID)):
            raise TypeError(f"id must be an int, got {id!r}")
        n = int(id)
        if n < 0:
            raise ValueError(f"interpreter ID must be a non-negative int, got {n}")
        if n > _INT_MAX:
            raise OverflowError("int too big to convert")
        self = _known.get(n)
        try:
            if self is not None:
                _ll.is_running(n)  # still there?
                return self
            handle = _ll.InterpreterID(n)
        except RuntimeError as exc:
            raise _translate(exc, n, "find") from None
        return cls._make(n, handle)

    @classmethod
    def _make(cls, n, handle):
        self = _known.get(n)
        if self is None:
            self = object.__new__(cls)
            self._id = n
            # A counted lowlevel handle keeps an interpreter we own alive while we exist.
            self._ownsref = n != _MAIN_ID
            self._handle = handle if self._ownsref else n
            self._whence = None
            _known[n] = self
        return self

    @property
    def id(self):
        """The process-wide id of this interpreter."""
        return self._id

    @property
    def whence(self):
        """How the interpreter was created: "runtime init" (main), "_interpreters module" (made
        by :func:`create`), or what CPython recorded for others ("legacy C-API", "C-API",
        "cross-interpreter C-API"; "unknown" before 3.13, which does not record it)."""
        if self._whence is None:  # asked once: it cannot change, and survives close()
            try:
                code = _ll._whence(self._id)
            except RuntimeError:
                code = 0
            self._whence = _WHENCE_NAMES.get(code, "unknown")
        return self._whence

    def is_running(self):
        """Return whether the interpreter is running code right now (in any thread)."""
        try:
            return _ll.is_running(self._handle)
        except RuntimeError as exc:
            raise _translate(exc, self._id, "query") from None

    def _check_ours(self, what):
        # As 3.14 does: only interpreters made by this module (or CPython's own) can be
        # changed; the main one and those made through the C-API are refused.
        if self._whence != _WHENCE_STDLIB:
            if self._whence is None:  # asked once, and a closed one is not found
                try:
                    code = _ll._whence(self._id)
                except RuntimeError as exc:
                    raise _translate(exc, self._id, "find") from None
                self._whence = _WHENCE_NAMES.get(code, "unknown")
            if self._whence != _WHENCE_STDLIB:
                raise InterpreterError(f"{what} unrecognized interpreter {self._id}")

    def close(self):
        """Destroy the interpreter (finalizing it). Refused for the current one.

        As CPython's finalization does, the callbacks registered with
        ``threading._register_atexit`` run first, then the non-daemon threads are waited for.
        """
        self._check_ours("cannot destroy")
        with _call_runners_lock:
            _closing.add(self._id)
            stop_calls = _call_runners.pop(self._id, None)
        try:
            if stop_calls is not None:
                stop_calls()  # the call_async calls queued so far run first
            if self._id != int(_ll.get_current()):
                try:
                    _ll.run_string(self._handle, _THREADING_SHUTDOWN)
                except (RuntimeError, _ll.RunFailedError):
                    pass  # running, gone, ...: destroy() below says so
            try:
                _ll.destroy(self._handle)
            except RuntimeError as exc:
                raise _translate(exc, self._id, "destroy") from None
        finally:
            _closing.discard(self._id)

    def prepare_main(self, ns=None, /, **kwargs):
        """Bind the given names in the interpreter's ``__main__`` module.

        Takes a mapping (or pairs), keyword arguments, or both. Every value must be shareable
        (see :func:`is_shareable`).
        """
        ns = dict(ns, **kwargs) if ns is not None else kwargs
        if not ns:
            raise ValueError("arg 2 must be a non-empty dict")
        self._check_ours("cannot update __main__ for")
        native = {}
        other = {}
        for key, value in ns.items():
            if type(key) is not str:
                raise TypeError("bad argument type for built-in operation")
            tp = type(value)
            if tp in _NATIVE_TYPES or (tp is int and _INT_MIN <= value <= _INT_MAX):
                native[key] = value
            elif _shareable_deep(value):
                other[key] = value.tobytes() if tp is memoryview else value
            else:
                raise _not_shareable(value)
        script = "pass"
        if other:
            try:
                native[_remote.PREP] = _pickle().dumps(other, 5)
            except Exception as exc:
                raise NotShareableError(f"{ns!r} does not support cross-interpreter data") from exc
            script = _RUN_PREPARE
        try:
            _ll.run_string(self._handle, script, native)
        except RuntimeError as exc:
            raise _translate(exc, self._id, "run") from None

    def exec(self, code, /):
        """Run source text (str or bytes), a code object, or a function in ``__main__``.

        The function or code must take no arguments and return nothing. Nothing is returned;
        an uncaught exception raises ExecutionFailed here. The calling thread waits until the
        code finishes.
        """
        src = _script(code)
        self._check_ours("cannot exec code for")
        _, excinfo = self._run(_RUN_EXEC, {_remote.SRC: src}, False)
        if excinfo is not None:
            if isinstance(excinfo, BaseException):
                raise excinfo
            raise ExecutionFailed(excinfo)

    def call(self, callable, /, *args, **kwargs):
        """Call ``callable(*args, **kwargs)`` in the interpreter and return its result.

        The callable, arguments and result cross as shareable values, as code (functions that
        need no state) or by pickle. An uncaught exception raises ExecutionFailed here.
        """
        return self._call(callable, args, kwargs)

    async def call_async(self, callable, /, *args, **kwargs):
        """Await ``call(callable, *args, **kwargs)`` (see :mod:`subinterpreters.aio`)."""
        from subinterpreters import aio

        return await aio.call(self, callable, *args, **kwargs)

    def call_in_thread(self, callable, /, *args, **kwargs):
        """Start a thread that makes the call in the interpreter, and return the thread.

        The result is discarded; an exception is reported as threads report theirs.
        """
        import threading

        thread = threading.Thread(target=self._call, args=(callable, args, kwargs))
        thread.start()
        return thread

    def _call(self, func, args, kwargs):
        fdata, adata, mainfile = self._call_data(func, args, kwargs)
        shared = {_remote.FUNC: fdata, _remote.ARGS: adata}
        if mainfile is not None:
            shared[_remote.MAINFILE] = mainfile
        reply, excinfo = self._run(_RUN_CALL, shared, True)
        if excinfo is not None:
            if isinstance(excinfo, BaseException):
                raise excinfo
            raise ExecutionFailed(excinfo)
        ok, value = _call_outcome(reply)
        if ok:
            return value
        raise value

    def _call_data(self, func, args, kwargs):
        """(function data, argument data, main script file or None) for a call (see _remote)."""
        self._check_ours("cannot make a call in")
        fdata = _callable_data(func)
        pickled = fdata[:1] != b"\0"
        if not kwargs and len(args) == 1 and _native_arg(args[0]):
            adata = args[0]
        elif args or kwargs:
            try:
                adata = _remote.dumps((args, kwargs))
            except Exception as exc:
                bad = next((a for a in (*args, *kwargs.values()) if not _picklable(a)), args)
                raise _not_shareable(bad) from exc
            pickled = True
        else:
            adata = None
        return fdata, adata, (_main_file() if pickled else None)

    def _run(self, script, shared, wait_reply):
        """Run one of the constant scripts: (the reply for calls, None) or (None, the failure:
        an excinfo for ExecutionFailed, or an exception to raise)."""
        cid = _channels.__dict__.pop("cid", None)
        if cid is None:
            cid = _ll.channel_create()
        shared[_remote.CHAN] = cid
        failure = None
        try:
            _ll.run_string(self._handle, script, shared)
        except _ll.RunFailedError as exc:
            message = _ll.channel_recv(cid, None)
            if type(message) is bytes:
                failure = _reply_error(_pickle().loads(message))
            else:
                failure = _excinfo_from_run_failed(exc)
        except RuntimeError as exc:
            failure = _translate(exc, self._id, "run")
        if failure is not None:
            _channels.cid = cid
            return None, failure
        reply = _ll.channel_recv(cid) if wait_reply else None
        _channels.cid = cid
        return reply, None


def _main_file():
    """The file of the calling interpreter's ``__main__``, if it has one (see _remote._loads)."""
    import sys

    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return path if type(path) is str else None


def _call_outcome(reply):
    """(True, result) or (False, exception to raise) for the reply to a call (see _remote)."""
    if type(reply) is not bytes:
        return True, reply
    message = _pickle().loads(reply)
    if message[0] == "R":
        return True, message[1]
    failure = _reply_error(message)
    if isinstance(failure, BaseException):
        return False, failure
    return False, ExecutionFailed(failure)


def _reply_error(message):
    """The failure a reply describes: an excinfo (for ExecutionFailed) or an exception."""
    tag = message[0]
    if tag == "E":
        return _excinfo(*message[1:])
    if tag == "S":
        return SyntaxError(*message[1])
    if tag == "N":
        exc = NotShareableError("object does not support cross-interpreter data")
        exc.__cause__ = Exception(f"{__name__}.NotShareableError: {message[1]}")
        return exc
    return InterpreterError(f"unexpected reply {message!r}")


def _native_arg(value):
    tp = type(value)
    return tp is str or (tp is int and _INT_MIN <= value <= _INT_MAX)


def _picklable(value):
    try:
        _pickle().dumps(value, 5)
    except Exception:
        return False
    return True


def _script(code):
    """What Interpreter.exec() sends for ``code``: source text, or NUL + marshalled code."""
    tp = type(code)
    if tp is str or tp is bytes:
        if ("\0" if tp is str else b"\0") in code:
            raise SyntaxError("source code string cannot contain null bytes")
        return code
    if tp is _FunctionType:
        reason = _function_reason(code)
        if reason is not None:
            raise ValueError(reason)
        code = code.__code__
    elif tp is not _CodeType:
        if isinstance(code, (bytearray, memoryview)):
            return _script(bytes(code))
        raise TypeError(f"unsupported script {code!r}")
    return _script_code(code)


_FunctionType = type(_script)
_CodeType = type(_script.__code__)
# Marshalled code (with its NUL marker) by code object, checked as a script for exec() or as a
# stateless function for call(); bounded.
_scripts: dict = {}
_marshalled: dict = {}


def _script_code(code):
    data = _scripts.get(code)
    if data is None:
        reason = _code_reason(code) or _script_reason(code)
        if reason is not None:
            raise ValueError(reason)
        data = _marshal_code(code, _scripts)
    return data


def _marshal_code(code, cache):
    import marshal

    data = b"\0" + marshal.dumps(code)
    if len(cache) >= 256:
        cache.clear()
    cache[code] = data
    return data


def _script_reason(code):
    """Why this code cannot be run as a script (it takes arguments or returns a value)."""
    if (
        code.co_argcount
        or code.co_posonlyargcount
        or code.co_kwonlyargcount
        or code.co_flags & 0x0C  # CO_VARARGS | CO_VARKEYWORDS
    ):
        return "code with args not supported"
    if not _returns_only_none(code):
        return "code that returns a value is not a script"
    return None


def _returns_only_none(code):
    import dis

    previous_none = False
    for ins in dis.get_instructions(code):
        if ins.opname in ("RETURN_VALUE", "INSTRUMENTED_RETURN_VALUE"):
            if not previous_none:
                return False
        elif ins.opname == "RETURN_CONST":
            if ins.argval is not None:
                return False
        elif ins.opname not in ("EXTENDED_ARG", "CACHE", "NOP"):
            # 3.15 loads None with LOAD_COMMON_CONSTANT.
            previous_none = (
                ins.opname in ("LOAD_CONST", "LOAD_COMMON_CONSTANT") and ins.argval is None
            )
    return True


def _code_reason(code):
    """Why this code needs state it cannot take along (a closure), or None."""
    if code.co_freevars:
        return "closures not supported"
    return None


def _function_reason(func):
    """Why this function cannot cross as its code alone (3.14's "stateless" rule), or None."""
    if func.__closure__ is not None:
        return "closures not supported"
    if func.__defaults__:
        return "defaults not supported"
    if func.__kwdefaults__:
        return "keyword defaults not supported"
    return _code_reason(func.__code__)


def _callable_data(func):
    """What Interpreter.call() sends for the callable: NUL + marshalled code, or a pickle."""
    if type(func) is _FunctionType:
        reason = _function_reason(func)
        code = func.__code__
        if reason is None and _remote.uses_only_builtins(func):
            data = _marshalled.get(code)
            return data if data is not None else _marshal_code(code, _marshalled)
    elif not callable(func):
        raise TypeError(f"expected a callable, got {func!r}")
    else:
        reason = None
    try:
        return _pickle().dumps(func, 5)
    except Exception as exc:
        if reason is not None:
            raise NotShareableError("only stateless functions are shareable") from ValueError(
                reason
            )
        raise _not_shareable(func) from exc


globals().update(_reloaded)
del _reloaded
