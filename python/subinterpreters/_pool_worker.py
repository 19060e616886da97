"""The half of :mod:`subinterpreters.futures` that runs inside each worker interpreter.

A worker's OS thread enters its interpreter once and stays in :func:`serve`, which takes tasks
from the worker's own queue (a Rust queue: the wait happens with this interpreter's GIL
released) and puts each reply on the queue the task names. Nothing here touches the main
interpreter; the pool reads the replies.

A task is ``(tid, reply_qid, fdata, akind, adata)``:

* ``fdata``: the callable, as NUL + marshalled code (a function that needs no state, bound to
  ``__main__`` as :meth:`Interpreter.call` does) or as a pickle;
* ``akind``: ``ARGS_NONE`` (no arguments), ``ARGS_ONE`` (``adata`` is the only argument, a str or
  an int), ``ARGS_PICKLED`` (``adata`` pickles ``(args, kwargs)``) or ``ARGS_CHUNK`` (``adata``
  pickles a list of argument tuples; the result is the list of results, for ``map``).

A reply is ``(tid, status, payload, seconds)``: ``OK`` (``payload`` is the result, crossed
natively), ``PICKLED`` (a pickled result), ``RAISED`` (``(pickled exception or None, excinfo
tuple)``), ``NOT_SHAREABLE`` (``(message, cause text)``: the task or its result could not
cross). ``seconds`` is how long the call took, for the pool's dispatch depth. Two more
statuses come from ``Interpreter.call_async`` (see ``subinterpreters.aio``): ``CALL`` (the
payload is what ``Interpreter.call`` receives) and ``FAILED`` (the call could not be made: the
payload is the exception to raise).
"""

from time import perf_counter

from subinterpreters import lowlevel as _ll

ARGS_NONE, ARGS_ONE, ARGS_PICKLED, ARGS_CHUNK = 0, 1, 2, 3
OK, PICKLED, RAISED, NOT_SHAREABLE, DEAD, CALL, FAILED = 0, 1, 2, 3, 4, 5, 6

_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_NATIVE = frozenset({type(None), bool, float, str, bytes})

# The main interpreter's main script (set at boot), for pickles of its __main__ functions.
MAIN_FILE = None

# Set by tests (through a task) to make the serve loop fail as a damaged interpreter would.
_damaged = False


def damage():
    """Make this worker's serve loop fail after the current task (for tests)."""
    global _damaged
    _damaged = True


def _safe_str(obj):
    try:
        return str(obj)
    except BaseException:
        return f"<{type(obj).__name__} object>"


def serve(tq, count=-1):
    """Run tasks from queue ``tq`` until a ``None`` task arrives (or ``count`` tasks ran)."""
    import pickle

    from subinterpreters.interpreters import QueueNotFoundError, _remote

    get = _ll._queue_get
    put = _ll._queue_put
    put_get = _ll._queue_put_get
    plain_loads = pickle.loads
    main_loads = _remote._loads

    def loads(data):
        if MAIN_FILE is None:
            return plain_loads(data)
        return main_loads(data, MAIN_FILE)  # plain first, then with the fake __main__

    dumps = pickle.dumps
    function_of = _remote._function
    functions = {}  # pickled function -> function (plain functions only: they hold no state)
    function_types = (type(serve), type(len))
    # The last reply, put when the next task is taken: its reader is woken once this thread
    # has let go of the GIL to wait (on 3.11 it would otherwise wake only to wait for it).
    answer = None
    try:
        while count:
            count -= 1
            if answer is None:
                task = get(tq, True, None)[0]
            else:
                rq, reply = answer
                answer = None
                task = put_get(rq, reply, tq)[0]
            if task is None:
                return
            answer = (task[1], _run(task, loads, dumps, function_of, functions, function_types))
            del task
            if _damaged:
                raise SystemError("worker interpreter damaged")
    finally:
        if answer is not None:
            try:
                put(answer[0], answer[1], 0, False, None)
            except QueueNotFoundError:
                pass  # its event loop is gone: nobody waits for it


def _run(task, loads, dumps, function_of, functions, function_types):
    """Run one task; its reply."""
    tid, rq, fdata, akind, adata = task
    start = perf_counter()
    try:
        func = functions.get(fdata)
        if func is None:
            if fdata[:1] == b"\0":
                func = function_of(fdata)
            else:
                func = loads(fdata)
                if type(func) in function_types:
                    if len(functions) >= 256:
                        functions.clear()
                    functions[fdata] = func
        if akind == ARGS_PICKLED or akind == ARGS_CHUNK:
            adata = loads(adata)
    except BaseException as exc:
        return (tid, NOT_SHAREABLE, ("args not shareable", _unpickle_reason(exc)), 0.0)
    try:
        if akind == ARGS_NONE:
            res = func()
        elif akind == ARGS_ONE:
            res = func(adata)
        elif akind == ARGS_PICKLED:
            res = func(*adata[0], **adata[1])
        else:
            res = [func(*args) for args in adata]
    except BaseException as exc:
        return (tid, RAISED, _raised(exc, dumps), perf_counter() - start)
    seconds = perf_counter() - start
    tp = type(res)
    if tp in _NATIVE or (tp is int and _INT_MIN <= res <= _INT_MAX):
        return (tid, OK, res, seconds)
    try:
        return (tid, PICKLED, dumps(res, 5), seconds)
    except BaseException as exc:
        reason = (
            f"{_safe_repr(res)} does not support cross-interpreter data",
            f"{type(exc).__name__}: {_safe_str(exc)}",
        )
        return (tid, NOT_SHAREABLE, reason, seconds)


def _unpickle_reason(exc):
    return f"object could not be unpickled: {type(exc).__name__}: {_safe_str(exc)}"


def _safe_repr(obj):
    try:
        return repr(obj)
    except BaseException:
        return f"<{type(obj).__name__} object>"


def _raised(exc, dumps):
    """(pickled exception or None, excinfo) for an exception a task raised."""
    from subinterpreters.interpreters import _remote

    tb = exc.__traceback__
    if tb is not None:  # our own frame (serve) is not the user's business
        exc.__traceback__ = tb.tb_next
    try:
        info = _remote._excinfo(exc)[1:]
    except BaseException:
        info = ("Exception", "Exception", "builtins", "", "Exception: ", "")
    try:
        data = dumps(exc, 5)
    except BaseException:
        data = None
    return (data, info)
