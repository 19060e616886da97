"""How an exception raised by a call crosses back to its caller: :func:`raised` encodes it
in the interpreter that ran the call, :func:`remote_exception` makes the exception to raise in
the caller's. ``_protocol`` loads this module only when a call raised, so a call that returns
normally imports none of it (nor ``traceback`` or ``pickle``). It sits below ``_protocol``,
which tells :func:`raised` which frames are its own.

An exception crosses twice: as the strings of an ``ExecutionFailed``'s ``excinfo`` (its type's
names, message and formatted traceback), and as a pickle that rebuilds the exception itself,
with its ``__cause__``/``__context__`` chain, without calling its class (see
:func:`_reduce_exception`). The pool raises the rebuilt exception, with the
``ExecutionFailed`` as its ``__cause__``, when its class can be imported in the caller;
``Interpreter.call`` raises the ``ExecutionFailed``, as 3.14 does.
"""

import sys

from subinterpreters import _errors

# The name of the module in which ``_protocol`` runs the caller's main script again, to find a
# class or function of it that a pickle names (see ``_protocol._fake_main``).
FAKE_MAIN = "<fake __main__>"


def _pickle():
    import pickle

    return pickle


def _safe_str(obj):  # as _protocol's (this module cannot import that one)
    try:
        return str(obj)
    except BaseException:
        return f"<{type(obj).__name__} object>"


# -- the caller's side ---------------------------------------------------------------------------


def remote_exception(data, info, unwrap):
    """The exception to raise for one raised in another interpreter: ``data`` is its pickle
    (or None), ``info`` the strings of its ``excinfo``. An ``ExecutionFailed`` carries the
    remote traceback; with ``unwrap`` the original exception, rebuilt here (see
    :func:`raised`), is raised with that as its ``__cause__``, the original cause moving to
    the ``ExecutionFailed``'s ``__cause__`` (when its class can be imported here; else the
    ``ExecutionFailed`` is raised)."""
    wrapper = _errors.ExecutionFailed(_errors.excinfo(*info))
    if unwrap and data is not None:
        try:
            exc = _pickle().loads(data)
        except Exception:
            exc = None
        if isinstance(exc, BaseException):
            wrapper.__cause__ = exc.__cause__
            wrapper.__suppress_context__ = False
            exc.__cause__ = wrapper
            return exc
    return wrapper


# -- the side that ran the call -------------------------------------------------------------------


def raised(exc, ours):
    """The ``RAISED`` payload for an exception a call raised: ``(its pickle or None, excinfo
    strings)``. The pickle rebuilds each exception of the chain without calling its class
    (see :func:`_reduce_exception`), with its ``__cause__``/``__context__`` chain. The
    traceback leaves out its first frames while ``ours(code)`` says they are the protocol's."""
    try:
        info = _excinfo(exc, ours)
    except BaseException:  # keep going: the caller still needs to hear something
        info = ("Exception", "Exception", "builtins", "", "Exception: ", "")
    try:
        data = _exception_dumps(exc)
    except BaseException:
        data = None
    return (data, info)


# The pickler class for exceptions, made on first use (it subclasses pickle's).
_exception_pickler: list = []


def _exception_dumps(exc):
    if not _exception_pickler:
        import io

        pickle = _pickle()

        class _ExceptionPickler(pickle.Pickler):
            def reducer_override(self, obj):
                if isinstance(obj, BaseException):
                    return _reduce_exception(obj)
                if type(obj) is memoryview:
                    return (memoryview, (obj.tobytes(),))
                if isinstance(obj, type) and getattr(obj, "__module__", None) == FAKE_MAIN:
                    return (_main_global, (obj.__qualname__,))
                return NotImplemented

        def dumps(obj):
            buf = io.BytesIO()
            _ExceptionPickler(buf, 5).dump(obj)
            return buf.getvalue()

        _exception_pickler.append(dumps)
    return _exception_pickler[0](exc)


_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: classes made by class statements (not builtins)


def _reduce_exception(exc):
    """How one exception crosses: rebuilt without calling its class when it pickles the
    default way (a class's own ``__init__`` may take other arguments than its ``args``), else
    by its own ``__reduce__``; its ``__cause__``, ``__context__`` and ``__dict__`` (notes
    included) cross as state, set once the exception exists (so a cycle in the chain is one)."""
    tp = type(exc)
    chain = (exc.__cause__, exc.__context__, exc.__suppress_context__)
    if (
        tp.__reduce_ex__ is BaseException.__reduce_ex__
        and tp.__reduce__ is BaseException.__reduce__
        and tp.__setstate__ is BaseException.__setstate__
    ):
        state = (getattr(exc, "__dict__", None) or None, *chain)
        return (_new_exception, (tp, exc.args), state, None, None, _set_exception_state)
    return (
        _call_reduced,
        (exc.__reduce_ex__(5),),
        (None, *chain),
        None,
        None,
        _set_exception_state,
    )


def _new_exception(tp, args):
    """An exception of class ``tp`` with ``args``, made as its nearest builtin base makes one:
    no code of ``tp``'s own runs."""
    base = next(c for c in tp.__mro__ if not c.__flags__ & _HEAPTYPE)
    exc = base.__new__(tp, *args)
    try:
        base.__init__(exc, *args)  # the fields builtin bases keep apart from args
    except Exception:
        pass
    exc.args = args
    return exc


def _call_reduced(rv):
    """The object an exception's own ``__reduce__`` value describes (pickle's rules for the
    callable, its arguments and a dict or ``__setstate__`` state)."""
    obj = rv[0](*rv[1])
    state = rv[2] if len(rv) > 2 else None
    if state is not None:
        setstate = getattr(obj, "__setstate__", None)
        if setstate is not None:
            setstate(state)
        else:
            obj.__dict__.update(state)
    return obj


def _set_exception_state(exc, state):
    attrs, cause, context, suppress = state
    if not isinstance(exc, BaseException):
        return exc
    if attrs:
        exc.__dict__.update(attrs)
    exc.__cause__ = cause
    exc.__context__ = context
    exc.__suppress_context__ = suppress
    return exc


def _main_global(qualname):
    """A class of ``__main__`` named in a pickle made where it came from a "<fake __main__>"
    module (see :func:`_fake_main`)."""
    obj = sys.modules["__main__"]
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _excinfo(exc, ours=None):
    """The strings 3.14's ExecutionFailed.excinfo carries: name, qualname, module, msg,
    formatted, errdisplay (the traceback, without its first frames while ``ours(code)`` says
    they are the call protocol's)."""
    import traceback

    tp = type(exc)
    name = getattr(tp, "__name__", "?")
    qualname = getattr(tp, "__qualname__", name)
    module = getattr(tp, "__module__", None)
    if module == FAKE_MAIN:  # a class of the caller's main script (see _protocol._fake_main)
        module = "__main__"
    msg = _safe_str(exc)
    if module in (None, "builtins", "__main__"):
        formatted = f"{qualname}: {msg}"
    else:
        formatted = f"{module}.{qualname}: {msg}"
    tb = exc.__traceback__
    while ours is not None and tb is not None and ours(tb.tb_frame.f_code):
        tb = tb.tb_next
    try:
        lines = traceback.format_exception(tp, exc, tb)
        errdisplay = "".join(lines).rstrip("\n")
    except BaseException:
        errdisplay = formatted
    return (name, qualname, module, msg, formatted, errdisplay)
