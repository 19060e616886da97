"""The exceptions of :mod:`subinterpreters.interpreters` that a call can end with, the
``excinfo`` data an :class:`ExecutionFailed` carries, and :func:`translate_error` (lowlevel's
``RuntimeError`` about an interpreter as one of them).

They live at the bottom of the package so that the call protocol (``_protocol``), which builds
them from a reply, and the call runners (``interpreters._runner``) need nothing above them.
``subinterpreters.interpreters`` exports them under their public names (their ``__module__``
says so, and pickles name them there).
"""

__all__ = [
    "InterpreterError",
    "InterpreterNotFoundError",
    "NotShareableError",
    "ExecutionFailed",
    "excinfo",
    "excinfo_from_run_failed",
    "translate_error",
]

_PUBLIC = "subinterpreters.interpreters"


class InterpreterError(Exception):
    """An operation on an interpreter failed."""

    __module__ = _PUBLIC


class InterpreterNotFoundError(InterpreterError):
    """No interpreter has the given ID (it was never made, or it was closed)."""

    __module__ = _PUBLIC


class NotShareableError(TypeError):
    """The object cannot be passed to another interpreter."""

    __module__ = _PUBLIC


_EXEC_FAILURE = "{summary}\n\nUncaught in the interpreter:\n\n{display}"


class ExecutionFailed(InterpreterError):
    """Code run by Interpreter.exec() or Interpreter.call() raised an exception it did not catch.

    The exception itself stays behind in the other interpreter; ``excinfo`` describes it:
    ``type`` (with ``__name__``, ``__qualname__``, ``__module__``), ``msg`` (its ``str()``),
    ``formatted`` (``"Type: msg"``) and ``errdisplay`` (the traceback as Python prints it).
    """

    __module__ = _PUBLIC

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


def excinfo(name, qualname, module, msg, formatted, errdisplay):
    """The ``excinfo`` of an :class:`ExecutionFailed`, from the strings that crossed."""
    from types import SimpleNamespace

    kind = SimpleNamespace(__name__=name, __qualname__=qualname, __module__=module)
    return SimpleNamespace(type=kind, msg=msg, formatted=formatted, errdisplay=errdisplay)


def excinfo_from_run_failed(exc):
    """An excinfo built from lowlevel's RunFailedError (when our own code could not report)."""
    type_name = getattr(exc, "type_name", "") or "Exception"
    text = str(exc.args[0]) if exc.args else ""
    # 3.11's summary: "<class 'module.Qualname'>: message".
    msg = text.split(">: ", 1)[1] if ">: " in text else text
    module, _, qualname = type_name.rpartition(".")
    module = module or "builtins"
    name = qualname.rpartition(".")[2]
    trace = getattr(exc, "traceback", "") or ""
    return excinfo(name, qualname, module, msg, f"{type_name}: {msg}", trace.rstrip("\n"))


def translate_error(exc, n, action):
    """Turn lowlevel's RuntimeError about interpreter ``n`` into this module's exception, by the
    kind the extension gives the refusals told apart here (its ``_kind`` attribute)."""
    kind = getattr(exc, "_kind", None)
    if kind == "not_found":
        return InterpreterNotFoundError(str(exc))
    if action == "destroy" and kind == "running":
        return InterpreterError("interpreter running")
    return InterpreterError(str(exc))
