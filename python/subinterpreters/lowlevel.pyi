"""Low-level operations on Python interpreters and the channels between them.

The API of CPython 3.11's ``_xxsubinterpreters``, implemented in Rust (see the README for the
deliberate differences).
"""

from typing import Any, Literal, Self, SupportsIndex, TypeVar, final, overload

from typing_extensions import disjoint_base

_T = TypeVar("_T")

@final
class InterpreterID:
    """Identifies an interpreter and may be used as an int.

    While any InterpreterID of an interpreter made by create() exists, in any interpreter,
    that interpreter stays alive.
    """

    def __new__(cls, id: SupportsIndex, *, force: bool = ...) -> InterpreterID: ...
    def __int__(self) -> int: ...
    def __index__(self) -> int: ...
    def __hash__(self) -> int: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

@final
class ChannelID:
    """A channel ID identifies a channel and may be used as an int."""

    @property
    def end(self) -> Literal["send", "recv", "both"]:
        """'send', 'recv', or 'both'"""

    @property
    def send(self) -> ChannelID:
        """the 'send' end of the channel"""

    @property
    def recv(self) -> ChannelID:
        """the 'recv' end of the channel"""

    def __int__(self) -> int: ...
    def __index__(self) -> int: ...
    def __hash__(self) -> int: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

# Shareable values: exact bytes, str, int (within 64-bit signed), None, and ChannelID.
_Shareable = bytes | str | int | None | ChannelID

class RunFailedError(RuntimeError):
    """The script given to run_string() raised.

    ``args[0]`` is 3.11's summary, e.g. ``"<class 'ValueError'>: boom"``.
    """

    type_name: str
    """The remote exception type's qualified name, e.g. ``"ValueError"``."""
    traceback: str
    """The remote traceback, formatted as ``traceback.format_exception`` does."""

@disjoint_base
class _QueueBase:
    """A handle on a queue (private): the base of ``subinterpreters.interpreters.Queue``."""

    def __new__(cls, id: int, /) -> Self: ...
    @property
    def id(self) -> int:
        """The queue's id, the same in every interpreter."""

    @property
    def _id(self) -> int: ...
    def put(
        self,
        obj: object,
        block: bool = True,
        timeout: float | None = None,
        *,
        unbounditems: object | None = None,
    ) -> None:
        """Add ``obj`` at the end of the queue."""

    def put_nowait(self, obj: object, *, unbounditems: object | None = None) -> None:
        """``put(obj, block=False)``."""

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return the oldest item."""

    def get_nowait(self) -> Any:
        """``get(block=False)``."""

    def qsize(self) -> int:
        """How many items are queued now."""

    def empty(self) -> bool:
        """Whether nothing is queued now."""

    def full(self) -> bool:
        """Whether the queue is bounded and holds ``maxsize`` items now."""

class ChannelError(RuntimeError): ...
class ChannelNotFoundError(ChannelError): ...
class ChannelClosedError(ChannelError): ...
class ChannelEmptyError(ChannelError): ...
class ChannelNotEmptyError(ChannelError): ...

def create(*, isolated: bool | int = True) -> InterpreterID:
    """Create a new interpreter and return its ID."""

def destroy(id: SupportsIndex) -> None:
    """Destroy the identified interpreter."""

def list_all() -> list[InterpreterID]:
    """Return the IDs of every existing interpreter, in ascending order."""

def get_current() -> InterpreterID:
    """Return the ID of the current interpreter."""

def get_main() -> InterpreterID:
    """Return the ID of the main interpreter."""

def is_running(id: SupportsIndex) -> bool:
    """Return whether the identified interpreter is running code."""

def run_string(id: SupportsIndex, script: str, shared: dict[str, _Shareable] | None = None) -> None:
    """Execute the source string in the identified interpreter's __main__ module."""

def interrupt(id: SupportsIndex, exc: type[BaseException]) -> bool:
    """Raise exc (a built-in exception class) asynchronously in the code our run in the
    identified interpreter is executing. Return False if nothing of ours runs there."""

def is_shareable(obj: object) -> bool:
    """Return True if the object's data may be shared between interpreters."""

def channel_create() -> ChannelID:
    """Create a new cross-interpreter channel and return its ID."""

def channel_destroy(cid: SupportsIndex) -> None:
    """Close and forget the channel."""

def channel_list_all() -> list[ChannelID]:
    """Return the IDs of every registered channel, newest first."""

def channel_list_interpreters(cid: SupportsIndex, *, send: bool) -> list[InterpreterID]:
    """Return the IDs of the interpreters associated with one end of the channel."""

def channel_send(cid: SupportsIndex, obj: _Shareable) -> None:
    """Copy the object's data into the channel's queue. Never blocks."""

@overload
def channel_recv(cid: SupportsIndex) -> Any: ...
@overload
def channel_recv(cid: SupportsIndex, default: _T) -> Any | _T: ...
def channel_close(
    cid: SupportsIndex, *, send: bool = False, recv: bool = False, force: bool = False
) -> None:
    """Close the channel for every interpreter."""

def channel_release(
    cid: SupportsIndex, *, send: bool = False, recv: bool = False, force: bool = False
) -> None:
    """Close the chosen end(s) for the current interpreter only."""

def _channel_id(
    id: SupportsIndex,
    *,
    send: bool | None = ...,
    recv: bool | None = ...,
    force: bool = False,
    _resolve: bool = False,
) -> ChannelID:
    """Build a ChannelID for an existing channel (any id with force=True)."""

def _clean_up_at_exit() -> None:
    """Destroy every idle interpreter made by create() (registered with atexit)."""
