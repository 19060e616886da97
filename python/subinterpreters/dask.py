"""Dask on interpreters: ``dask.compute(..., scheduler=pool)`` and ``distributed`` workers whose
tasks run in a pool of warm interpreters.

The local schedulers accept any :class:`concurrent.futures.Executor`, so an
:class:`~subinterpreters.futures.InterpreterPoolExecutor` needs nothing from this module::

    with InterpreterPoolExecutor(4) as pool:
        dask.compute(graph, scheduler=pool)

A ``distributed`` worker cannot be given that pool directly (``Worker(executor=pool)``): it
submits its own wrapper, ``distributed.worker._run_task_simple``, whose unpickling imports
``distributed`` and so ``psutil`` in the worker interpreter, which refuses it. Give the worker an
:class:`InterpreterTaskExecutor` instead. It recognises that wrapper in the main interpreter,
sends only dask's task object and the values of its dependencies to a worker interpreter (by
cloudpickle, as ``distributed`` sends tasks between processes), runs the task there, and builds
the wrapper's reply (result, timings, ``nbytes``, or the error) back in the main interpreter::

    from distributed import Client, LocalCluster
    from subinterpreters.dask import InterpreterTaskExecutor, InterpreterWorkerPlugin

    # a cluster whose workers run every task in interpreters (one per worker thread)
    with LocalCluster(n_workers=1, threads_per_worker=4, processes=False,
                      executor=InterpreterTaskExecutor(4)) as cluster, Client(cluster) as client:
        client.submit(pow, 2, 10).result()

    # or on the workers of a running cluster: the plugin installs one per worker (as its default
    # executor, or under another name for tasks annotated with
    # ``dask.annotate(executor="interpreters")``)
    client.register_plugin(InterpreterWorkerPlugin())

What a task may do in there: whatever works in an interpreter (pure Python, and extension
modules that support multiple interpreters; numpy does not, before numpy 2.x's isolated builds).
Tasks that need the worker itself (``get_worker()``, ``worker_client()``, ``secede``) do not
belong there: route them to a thread executor with ``dask.annotate(executor=...)``. Calls other
than tasks that the worker makes to its executor (benchmarks at startup, ...) run in a thread of
the main interpreter.
"""

import pickle
import threading
import time
from concurrent.futures import Executor, Future
from concurrent.futures import ThreadPoolExecutor as _Threads

from subinterpreters import _dask_worker
from subinterpreters.futures import InterpreterPoolExecutor

try:
    from distributed import WorkerPlugin as _WorkerPlugin
except ImportError:  # distributed is optional: dask.compute(scheduler=pool) needs none of this
    _WorkerPlugin = object

__all__ = ["InterpreterTaskExecutor", "InterpreterWorkerPlugin"]


def _is_task_wrapper(fn):
    return (
        getattr(fn, "__module__", None) == "distributed.worker"
        and getattr(fn, "__name__", None) == "_run_task_simple"
    )


class InterpreterTaskExecutor(Executor):
    """An executor for ``distributed.Worker(executor=...)`` that runs each task in one of
    ``max_workers`` warm interpreters (an :class:`InterpreterPoolExecutor`; pass ``pool=`` to
    use your own, which this executor then owns and shuts down).

    ``task_interpreters`` maps the key of every task run so far to the id of the interpreter that
    ran it (the last 10,000), for inspection and tests.
    """

    def __init__(self, max_workers=None, *, pool=None, initializer=None, initargs=()):
        if pool is None:
            pool = InterpreterPoolExecutor(
                max_workers,
                thread_name_prefix="Dask-Interpreter-Worker",
                initializer=initializer,
                initargs=initargs,
            )
        self.pool = pool
        self._threads = None
        self._lock = threading.Lock()
        self._shutdown = False
        self.task_interpreters = {}

    def submit(self, fn, /, *args, **kwargs):
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if _is_task_wrapper(fn):
            return self._submit_task(*args, **kwargs)
        with self._lock:
            if self._threads is None:
                self._threads = _Threads(1, thread_name_prefix="Dask-Interpreter-Main")
            threads = self._threads
        return threads.submit(fn, *args, **kwargs)

    submit.__doc__ = Executor.submit.__doc__

    def _submit_task(self, task, data, time_delay):
        import cloudpickle

        outer = Future()
        try:
            payload = cloudpickle.dumps((task, data), 5)
        except Exception as exc:
            if outer.set_running_or_notify_cancel():
                outer.set_result(_failure(exc, time_delay))
            return outer
        inner = self.pool.submit(_dask_worker.run, payload)
        key = getattr(task, "key", None)

        def complete(inner):
            if not outer.set_running_or_notify_cancel():
                return
            try:
                blob, start, stop, ident, interp = inner.result()
                result = pickle.loads(blob)
            except BaseException as exc:  # noqa: B036 - the worker reports it as the task's
                outer.set_result(_failure(exc, time_delay))
                return
            from dask.sizeof import sizeof

            ints = self.task_interpreters
            if len(ints) >= 10_000:
                ints.clear()
            ints[key] = interp
            outer.set_result(
                {
                    "op": "task-finished",
                    "status": "OK",
                    "result": result,
                    "nbytes": sizeof(result),
                    "type": type(result) if result is not None else None,
                    "start": start + time_delay,
                    "stop": stop + time_delay,
                    "thread": ident,
                }
            )

        def cancelled(outer):
            if outer.cancelled():
                inner.cancel()

        outer.add_done_callback(cancelled)
        inner.add_done_callback(complete)
        return outer

    def shutdown(self, wait=True, *, cancel_futures=False):
        self._shutdown = True
        self.pool.shutdown(wait=wait, cancel_futures=cancel_futures)
        with self._lock:
            threads = self._threads
        if threads is not None:
            threads.shutdown(wait=wait, cancel_futures=cancel_futures)

    shutdown.__doc__ = Executor.shutdown.__doc__


def _failure(exc, time_delay):
    """``_run_task_simple``'s reply for a task that raised ``exc``."""
    from distributed.core import error_message

    msg = error_message(exc)
    msg["op"] = "task-erred"
    msg["actual_exception"] = exc
    now = time.time() + time_delay
    msg["start"] = msg["stop"] = now
    msg["thread"] = threading.get_ident()
    return msg


class InterpreterWorkerPlugin(_WorkerPlugin):
    """A ``distributed`` worker plugin giving each worker an :class:`InterpreterTaskExecutor`
    (``max_workers`` interpreters, default: the worker's ``nthreads``) as the executor called
    ``executor``: ``"default"`` (every task, unless annotated otherwise) or another name, for
    tasks submitted under ``dask.annotate(executor=name)``. The executor it replaces is shut
    down without waiting (tasks already running in it finish); ``teardown`` shuts the
    interpreters down.

    ::

        client.register_plugin(InterpreterWorkerPlugin())
    """

    name = "subinterpreters"

    def __init__(self, max_workers=None, executor="default"):
        self.max_workers = max_workers
        self.executor = executor

    def setup(self, worker):
        n = self.max_workers or worker.state.nthreads
        new = InterpreterTaskExecutor(n)
        old = worker.executors.get(self.executor)
        worker.executors[self.executor] = new
        if old is not None and old is not worker.executors.get("offload"):
            old.shutdown(wait=False)

    def teardown(self, worker):
        ex = worker.executors.get(self.executor)
        if isinstance(ex, InterpreterTaskExecutor):
            ex.shutdown(wait=False)
