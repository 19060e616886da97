from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Executor, Future
from concurrent.futures.thread import BrokenThreadPool
from typing import Any, TypeVar

_T = TypeVar("_T")

__all__ = ["InterpreterPoolExecutor", "BrokenInterpreterPool", "TaskInterrupted"]

class BrokenInterpreterPool(BrokenThreadPool): ...

class TaskInterrupted(CancelledError):
    """A call was interrupted while it ran (``shutdown(interrupt=True)``, a cancelled
    ``call_async``, Ctrl-C while the pool was waited for); ``__cause__`` is what it raised."""

class InterpreterPoolExecutor(Executor):
    BROKEN: type[BrokenInterpreterPool]
    def __init__(
        self,
        max_workers: int | None = None,
        thread_name_prefix: str = "",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        *,
        forward_output: bool = False,
    ) -> None: ...
    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]: ...
    async def call_async(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T: ...
    def map(
        self,
        fn: Callable[..., _T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> Iterator[_T]: ...
    def shutdown(
        self, wait: bool = True, *, cancel_futures: bool = False, interrupt: bool = False
    ) -> None: ...
    def __del__(self) -> None: ...

# For subinterpreters.aio.
def submit_for_loop(
    pool: InterpreterPoolExecutor,
    loop: Any,
    sink: Any,
    fn: Callable[..., object],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Queue a call in ``pool`` for an event loop; returns the asyncio future."""
