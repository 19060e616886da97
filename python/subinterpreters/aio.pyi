from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from subinterpreters.futures import InterpreterPoolExecutor
from subinterpreters.interpreters import Interpreter, Queue

_T = TypeVar("_T")

__all__ = ["call", "queue_get", "queue_put", "wait"]

async def call(
    target: InterpreterPoolExecutor | Interpreter,
    fn: Callable[..., _T],
    /,
    *args: Any,
    **kwargs: Any,
) -> _T: ...
async def queue_get(queue: Queue) -> Any: ...
async def queue_put(queue: Queue, obj: object, *, unbounditems: object = None) -> None: ...
async def wait(queues: Iterable[Queue], timeout: float | None = None) -> list[Queue]: ...
