from collections.abc import Callable, Hashable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

from distributed import WorkerPlugin

from subinterpreters.futures import InterpreterPoolExecutor

_T = TypeVar("_T")

__all__ = ["InterpreterTaskExecutor", "InterpreterWorkerPlugin"]

class InterpreterTaskExecutor(Executor):
    pool: InterpreterPoolExecutor
    task_interpreters: dict[Hashable, int]
    def __init__(
        self,
        max_workers: int | None = None,
        *,
        pool: InterpreterPoolExecutor | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None: ...
    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]: ...
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...

class InterpreterWorkerPlugin(WorkerPlugin):
    name: str
    max_workers: int | None
    executor: str
    def __init__(self, max_workers: int | None = None, executor: str = "default") -> None: ...
    def setup(self, worker: Any) -> None: ...
    def teardown(self, worker: Any) -> None: ...
