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

Each interpreter imports this module separately (the first call into a fresh interpreter does),
so it imports little up front: the queue classes (see :mod:`._queues`, which needs the stdlib's
``queue`` and so ``threading``) on first use of any of them, and pickle, marshal and threading
when a call needs them.
"""

import sys as _sys
from _thread import allocate_lock
from _weakref import ref as _weakref

from subinterpreters import _compat
from subinterpreters import _protocol as _p
from subinterpreters import lowlevel as _ll
from subinterpreters._errors import (
    ExecutionFailed,
    InterpreterError,
    InterpreterNotFoundError,
    NotShareableError,
    translate_error,
)
from subinterpreters._errors import excinfo_from_run_failed as _excinfo_from_run_failed

from . import _output, _remote
from ._handle import IdHandle

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
    "wait",
    "wait_async",
]


# ``importlib.reload()`` runs this file again in the same namespace: what lowlevel and other
# modules hold on to (the exception classes, the one Interpreter per id, the call runners) is put
# back over the new definitions, so that the names stay the objects already in use.
# (The exception classes come from subinterpreters._errors, which a reload of this module
# does not run again, so they stay the same objects by themselves.)
_KEPT = (
    "Interpreter",
    "_known",
    "_call_runners",
    "_closing",
    "_call_runners_lock",
    "_call_runners_stop_at_exit",
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


# The queue names, loaded with their module on first use (see __getattr__).
_QUEUES = f"{__name__}._queues"
_QUEUE_NAMES = {
    "Queue": "Queue",
    "QueueEmpty": "QueueEmpty",
    "QueueError": "QueueError",
    "QueueFull": "QueueFull",
    "QueueNotFoundError": "QueueNotFoundError",
    "ItemInterpreterDestroyed": "ItemInterpreterDestroyed",
    "UNBOUND": "UNBOUND",
    "UNBOUND_ERROR": "UNBOUND_ERROR",
    "UNBOUND_REMOVE": "UNBOUND_REMOVE",
    "create_queue": "create",
}


def __getattr__(name):
    attr = _QUEUE_NAMES.get(name)
    if attr is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import _queues  # registers its classes with lowlevel

    value = getattr(_queues, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_QUEUE_NAMES})


def _is_queue(tp):
    # No Queue exists in an interpreter that has not loaded their module.
    queues = _sys.modules.get(_QUEUES)
    return queues is not None and tp is queues.Queue


globals().update(_reloaded)
if _QUEUES in _sys.modules:  # a reload: the kept classes are registered again
    _sys.modules[_QUEUES]._register()


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
    return tp in _SHAREABLE_TYPES or _is_queue(tp)


def _shareable_deep(obj):
    tp = type(obj)
    if tp is tuple:
        return all(_shareable_deep(item) for item in obj)
    return tp in _SHAREABLE_TYPES or _is_queue(tp)


def _not_shareable(obj):
    return NotShareableError(f"{obj!r} does not support cross-interpreter data")


# -- module functions ---------------------------------------------------------------------------


def create(*, forward_output=False):
    """Create a new, idle interpreter and return it.

    The interpreter lives while the returned object (or another Interpreter for the same id, in
    any interpreter) does, or until close() is called.

    With ``forward_output=True`` (from the main interpreter), what the new interpreter writes
    to ``sys.stdout``/``sys.stderr`` goes to the main interpreter's ``sys.stdout``/``sys.stderr``
    as they are at the time (``contextlib.redirect_stdout``, pytest's ``capsys``, a Jupyter
    cell's output), in order; everything an ``exec``/``call`` printed is delivered before it
    returns. Without it, the interpreter writes to the process's file descriptors 1 and 2.
    """
    _p.refuse_while_rerunning_main()
    if forward_output and int(_ll.get_current()) != _MAIN_ID:
        raise InterpreterError("forward_output=True needs create() in the main interpreter")
    handle = _ll.create()
    _compat.give_sys_path_0(handle)
    if forward_output:
        _output.set_up(handle)
    interp = Interpreter._make(int(handle), handle)
    interp._whence = _WHENCE_STDLIB
    if forward_output:
        _output.track(interp)
    return interp


def wait(queues, timeout=None):
    """Block until at least one of ``queues`` has an item, and return those that do.

    The result lists the ready queues in the order given (nothing is taken from them: call their
    ``get_nowait()``); it is ``[]`` once ``timeout`` seconds have passed (``timeout=0`` only
    looks). The wait happens in Rust with the GIL released, woken by the puts themselves, for
    queues made by any interpreter. A queue destroyed before or during the wait counts as ready,
    as a closed pipe is readable: its ``get`` then raises :class:`QueueNotFoundError`. Ctrl-C
    (main thread) and :meth:`Interpreter.interrupt` interrupt the wait.
    """
    return _ll._queue_wait(queues, timeout)


async def wait_async(queues, timeout=None):
    """Await :func:`wait` without blocking the event loop (see :mod:`subinterpreters.aio`)."""
    from subinterpreters import _async

    return await _async.wait(queues, timeout)


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

# Interpreter id -> its call_async runner (see ._runner), and the ids of interpreters being
# closed (no new runner starts for those), both under the lock.
_call_runners: dict = {}
_closing: set = set()
_call_runners_lock = allocate_lock()
_call_runners_stop_at_exit: list = []  # [True] once _stop_call_runners is registered


def call_runner(interp):
    """The call runner of ``interp`` (``Interpreter.call_async``'s): the one registered, or a
    new ``_runner.CallRunner``, registered now. Raises InterpreterError for an interpreter being
    closed or gone. The runner's ``stop()`` is called when the interpreter is closed, and at
    exit."""
    with _call_runners_lock:
        runner = _call_runners.get(interp.id)
        if runner is None:
            if interp.id in _closing:
                raise InterpreterError(f"interpreter {interp.id} is being closed")
            try:
                _ll.is_running(interp._handle)  # raises for an interpreter that is gone
            except RuntimeError as exc:
                raise translate_error(exc, interp.id, "run") from None
            runner = _start_call_runner(interp)
            _call_runners[interp.id] = runner
        return runner


def _start_call_runner(interp):
    # Both loaded already: call_async loads _runner, which loads threading.
    import threading

    from . import _runner

    if not _call_runners_stop_at_exit:
        threading._register_atexit(_stop_call_runners)
        _call_runners_stop_at_exit.append(True)
    return _runner.CallRunner(interp, forget_call_runner)


def _stop_call_runners():
    """Stop every call runner (at exit: each runs the calls queued so far first)."""
    for runner in call_runners():
        runner.stop()


def forget_call_runner(interp_id, runner):
    """Unregister ``runner`` if it is still the one of ``interp_id`` (it has ended). Takes no
    lock: a runner ends while close() may hold the lock joining it; dict operations are atomic."""
    if _call_runners.get(interp_id) is runner:
        _call_runners.pop(interp_id, None)


def call_runners():
    """Every call runner now registered."""
    with _call_runners_lock:
        return list(_call_runners.values())


# One Interpreter per id, while anyone holds it: id -> weak reference (the weakref module
# itself is not imported, to keep this module cheap to load in a fresh interpreter).
_known: dict = {}


def _known_get(n):
    ref = _known.get(n)
    return None if ref is None else ref()


def _forget(ref, n):
    if _known.get(n) is ref:
        del _known[n]


_RUN_PREPARE = f"__import__({_remote.__name__!r}, None, None, ['_']).run_prepare()"


# Run in an interpreter before it is destroyed: the first half of `threading._shutdown`, which
# CPython's finalization runs before joining the non-daemon threads (lowlevel's destroy() joins
# them first, so a thread that waits for such a callback would never end). Each callback runs
# once: `_SHUTTING_DOWN` refuses new ones and the list is emptied for finalization's own call.
# It must not fail and imports nothing: an interpreter that never loaded threading skips it,
# and a failing callback is reported through sys.excepthook, as an uncaught exception is.
_THREADING_SHUTDOWN = """\
import sys as _s
_t = _s.modules.get('threading')
if _t is not None and not getattr(_t, '_SHUTTING_DOWN', True):
    _t._SHUTTING_DOWN = True
    _c = list(_t._threading_atexits)
    _t._threading_atexits.clear()
    while _c:
        try:
            _c.pop()()
        except BaseException as _e:
            print('Exception ignored on threading shutdown:', file=_s.stderr)
            _s.excepthook(type(_e), _e, _e.__traceback__)
            del _e
    del _c
del _s, _t
"""


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
        self = _known_get(n)
        try:
            if self is not None:
                _ll.is_running(n)  # still there?
                return self
            handle = _ll.InterpreterID(n)
        except RuntimeError as exc:
            raise translate_error(exc, n, "find") from None
        return cls._make(n, handle)

    @classmethod
    def _make(cls, n, handle):
        self = _known_get(n)
        if self is None:
            self = object.__new__(cls)
            self._id = n
            # A counted lowlevel handle keeps an interpreter we own alive while we exist.
            self._ownsref = n != _MAIN_ID
            self._handle = handle if self._ownsref else n
            self._whence = None
            _known[n] = _weakref(self, lambda ref, n=n: _forget(ref, n))
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
            raise translate_error(exc, self._id, "query") from None

    def interrupt(self, exc=KeyboardInterrupt):
        """Raise ``exc`` (a built-in exception class) in the code running in this interpreter.

        The exception is raised asynchronously in the thread of ours that runs there (an
        ``exec``/``call``, a pool worker, a ``call_async`` call): pure-Python code sees it at
        once (3.11: when it next gets the shared GIL), a blocking queue ``get``/``put`` or
        :func:`wait` there wakes up and raises it, and other code blocked in C (``time.sleep``,
        a lock) raises it when it returns to Python. The interpreter stays usable. Returns
        whether anything of ours was running there (False: nothing to interrupt; threads the
        interpreter started itself are never interrupted).
        """
        try:
            return _ll.interrupt(self._id, exc)
        except RuntimeError as err:
            raise translate_error(err, self._id, "interrupt") from None

    def _check_ours(self, what):
        # As 3.14 does: only interpreters made by this module (or CPython's own) can be
        # changed; the main one and those made through the C-API are refused.
        if self._whence != _WHENCE_STDLIB:
            if self._whence is None:  # asked once, and a closed one is not found
                try:
                    code = _ll._whence(self._id)
                except RuntimeError as exc:
                    raise translate_error(exc, self._id, "find") from None
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
            runner = _call_runners.pop(self._id, None)
        try:
            if runner is not None:
                runner.stop()  # the call_async calls queued so far run first
            if self._id != int(_ll.get_current()):
                try:
                    # Most interpreters never import threading: no script to compile then.
                    if _ll._uses_threading(self._handle):
                        _ll.run_string(self._handle, _THREADING_SHUTDOWN)
                except (RuntimeError, _ll.RunFailedError):
                    pass  # running, gone, ...: destroy() below says so
            _output.after_run(self._id)  # before its queued writes become UNBOUND
            try:
                _ll.destroy(self._handle)
            except RuntimeError as exc:
                raise translate_error(exc, self._id, "destroy") from None
            _output.forget(self._id)
        finally:
            _closing.discard(self._id)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        """``with interpreters.create() as interp:`` closes the interpreter at the end (ours:
        3.14's Interpreter is no context manager)."""
        self.close()

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
                native[_remote.PREP] = _ll._dumps(other)
            except Exception as exc:
                raise NotShareableError(f"{ns!r} does not support cross-interpreter data") from exc
            script = _RUN_PREPARE
        try:
            _ll.run_string(self._handle, script, native)
        except RuntimeError as exc:
            raise translate_error(exc, self._id, "run") from None

    def exec(self, code, /):
        """Run source text (str or bytes), a code object, or a function in ``__main__``.

        The function or code must take no arguments and return nothing. Nothing is returned;
        an uncaught exception raises ExecutionFailed here. The calling thread waits until the
        code finishes.
        """
        src = _script(code)
        self._check_ours("cannot exec code for")
        status, payload = self._call_in(src, _p.SCRIPT, None, None)
        if status == _p.RAISED:  # the line shows in tracebacks, as 3.14's does
            excinfo = _p.remote_excinfo(payload)
            raise ExecutionFailed(excinfo)
        if status != _p.OK:
            raise _p.decode(status, payload, False)[1]

    def call(self, callable, /, *args, **kwargs):
        """Call ``callable(*args, **kwargs)`` in the interpreter and return its result.

        The callable, arguments and result cross as shareable values, as code (functions that
        need no state) or by pickle. An uncaught exception raises ExecutionFailed here.
        """
        return self._call(callable, args, kwargs)

    async def call_async(self, callable, /, *args, **kwargs):
        """Await ``call(callable, *args, **kwargs)`` (see :mod:`subinterpreters.aio`).

        Cancelling the awaiting coroutine (``asyncio.wait_for``, ``asyncio.timeout``) interrupts
        the call if it runs (``KeyboardInterrupt`` raised in it, in that call only); the
        interpreter then serves the next call as usual."""
        task = call_data(self, callable, args, kwargs)
        # This form stays in C once loaded (a `from` import runs importlib's Python code).
        import subinterpreters.interpreters._runner as runner

        return await runner.call(self, task, call_runner)

    def call_in_thread(self, callable, /, *args, **kwargs):
        """Start a thread that makes the call in the interpreter, and return the thread.

        The result is discarded; an exception is reported as threads report theirs.
        """
        import threading

        thread = threading.Thread(target=self._call, args=(callable, args, kwargs))
        thread.start()
        return thread

    def _call(self, func, args, kwargs):
        ok, value = _p.decode(*self._call_in(*call_data(self, func, args, kwargs)), False)
        if ok:
            return value
        raise value

    def _call_in(self, fdata, akind, adata, mainfile):
        """One call (or script) made here from this thread: its reply's (status, payload)."""
        try:
            return _p.call_in(self._handle, fdata, akind, adata, mainfile)
        except _ll.RunFailedError as exc:  # the call could not even be served
            return _p.FAILED, ExecutionFailed(_excinfo_from_run_failed(exc))
        except RuntimeError as exc:
            raise translate_error(exc, self._id, "run") from None
        finally:
            _output.after_run(self._id)


def call_data(interp, func, args, kwargs):
    """``(fdata, akind, adata, mainfile)`` for a call of ``func(*args, **kwargs)`` in
    ``interp`` (see ``subinterpreters._protocol``); raises as ``Interpreter.call`` does."""
    interp._check_ours("cannot make a call in")
    fdata = _p.function_data(func)
    akind, adata = _p.encode_args(args, kwargs)
    pickled = fdata[:1] != b"\0" or akind == _p.ARGS_PICKLED
    return fdata, akind, adata, (_p.main_file() if pickled else None)


def _script(code):
    """What Interpreter.exec() sends for ``code``: source text, or NUL + marshalled code."""
    tp = type(code)
    if tp is str or tp is bytes:
        if ("\0" if tp is str else b"\0") in code:
            raise SyntaxError("source code string cannot contain null bytes")
        return code
    if tp is _FunctionType:
        reason = _p.stateless_reason(code)
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
# Marshalled code (with its NUL marker) by code object, checked as a script for exec(); bounded.
_scripts: dict = {}


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


globals().update(_reloaded)
del _reloaded
