"""Run code in other interpreters of this process: CPython 3.14's ``concurrent.interpreters``."""

import threading
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, Self, TypeVar, final

from subinterpreters.lowlevel import InterpreterID

from ._queues import UNBOUND as UNBOUND
from ._queues import UNBOUND_ERROR as UNBOUND_ERROR
from ._queues import UNBOUND_REMOVE as UNBOUND_REMOVE
from ._queues import ItemInterpreterDestroyed as ItemInterpreterDestroyed
from ._queues import Queue as Queue
from ._queues import QueueEmpty as QueueEmpty
from ._queues import QueueError as QueueError
from ._queues import QueueFull as QueueFull
from ._queues import QueueNotFoundError as QueueNotFoundError
from ._queues import create as create_queue

_R = TypeVar("_R")

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

class InterpreterError(Exception):
    """An operation on an interpreter failed."""

class InterpreterNotFoundError(InterpreterError):
    """No interpreter has the given ID (it was never made, or it was closed)."""

class NotShareableError(TypeError):
    """The object cannot be passed to another interpreter."""

class _ExcTypeInfo(types.SimpleNamespace):
    __name__: str
    __qualname__: str
    __module__: str

class _ExcInfo(types.SimpleNamespace):
    type: _ExcTypeInfo
    msg: str
    formatted: str
    errdisplay: str

class ExecutionFailed(InterpreterError):
    """Code run by Interpreter.exec() or Interpreter.call() raised an exception it did not catch."""

    excinfo: _ExcInfo
    def __init__(self, excinfo: _ExcInfo) -> None: ...

def is_shareable(obj: object) -> bool:
    """Return True if the object can be passed to another interpreter as it is, without pickle."""

def create(*, forward_output: bool = False) -> Interpreter:
    """Create a new, idle interpreter and return it.

    With ``forward_output=True`` (main interpreter only), what it writes to sys.stdout and
    sys.stderr goes to the main interpreter's current sys.stdout/sys.stderr, in order, and
    what a call printed arrives before the call returns: in Jupyter, the cell's output.
    """

def wait(queues: Iterable[Queue], timeout: float | None = None) -> list[Queue]:
    """Block (GIL released) until at least one of the queues has an item; return those that do,
    in the order given (nothing is taken), or ``[]`` after ``timeout`` seconds. A destroyed queue
    counts as ready (its ``get`` raises QueueNotFoundError)."""

async def wait_async(queues: Iterable[Queue], timeout: float | None = None) -> list[Queue]:
    """Await :func:`wait` without blocking the event loop."""

def list_all() -> list[Interpreter]:
    """Return every existing interpreter, in ascending order of id."""

def get_current() -> Interpreter:
    """Return the interpreter this code runs in."""

def get_main() -> Interpreter:
    """Return the main interpreter."""

@final
class Interpreter:
    """One Python interpreter of this process (one object per id)."""

    def __new__(cls, id: int | InterpreterID, /) -> Interpreter: ...
    def __hash__(self) -> int: ...
    def __reduce__(self) -> tuple[type[Interpreter], tuple[int]]: ...
    @property
    def id(self) -> int:
        """The process-wide id of this interpreter."""
    @property
    def whence(
        self,
    ) -> Literal[
        "unknown",
        "runtime init",
        "legacy C-API",
        "C-API",
        "cross-interpreter C-API",
        "_interpreters module",
    ]:
        """How the interpreter was created."""
    def is_running(self) -> bool:
        """Return whether the interpreter is running code right now (in any thread)."""
    def close(self) -> None:
        """Destroy the interpreter (finalizing it). Refused for the current one."""
    def interrupt(self, exc: type[BaseException] = ...) -> bool:
        """Raise ``exc`` (a built-in exception class, KeyboardInterrupt by default) in the code
        our thread runs in this interpreter: Python code at once, a blocking queue get/put or
        wait() there by waking up, other blocking C calls when they return. Returns whether
        anything of ours was running there."""
    def __enter__(self) -> Self:
        """Return the interpreter itself (ours: 3.14's Interpreter is no context manager)."""
    def __exit__(self, *exc_info: object) -> None:
        """Close the interpreter."""
    def prepare_main(
        self, ns: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None, /, **kwargs: Any
    ) -> None:
        """Bind the given names in the interpreter's ``__main__`` module."""
    def exec(self, code: str | bytes | types.CodeType | Callable[[], None], /) -> None:
        """Run source text, a code object, or a function in the interpreter's ``__main__``."""
    def call(self, callable: Callable[..., _R], /, *args: Any, **kwargs: Any) -> _R:
        """Call ``callable(*args, **kwargs)`` in the interpreter and return its result."""
    async def call_async(self, callable: Callable[..., _R], /, *args: Any, **kwargs: Any) -> _R:
        """Await ``call(callable, *args, **kwargs)`` (see :mod:`subinterpreters.aio`).

        Cancelling the awaiting coroutine interrupts the call if it runs (``KeyboardInterrupt``
        raised in it); the interpreter then serves the next call as usual."""
    def call_in_thread(
        self, callable: Callable[..., object], /, *args: Any, **kwargs: Any
    ) -> threading.Thread:
        """Start a thread that makes the call in the interpreter, and return the thread."""

# For Interpreter.call_async's runners (not part of PEP 734's API).
def call_data(
    interp: Interpreter, func: Callable[..., object], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[bytes, int, object, str | None]:
    """``(fdata, akind, adata, mainfile)`` for a call (see ``subinterpreters._protocol``)."""

def call_runner(interp: Interpreter) -> Any:
    """The call runner of ``interp``: the one registered, or a new one."""

def forget_call_runner(interp_id: int, runner: object) -> None:
    """Unregister ``runner`` if it is still the one of ``interp_id``."""

def call_runners() -> list[Any]:
    """Every call runner now registered."""

def translate_error(exc: RuntimeError, n: int, action: str) -> InterpreterError:
    """Turn lowlevel's RuntimeError about interpreter ``n`` into this module's exception."""
