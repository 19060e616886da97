"""asyncio for interpreters: await calls and queues without polling and without a thread per
waiting coroutine.

::

    from subinterpreters import aio, interpreters
    from subinterpreters.futures import InterpreterPoolExecutor

    async def main(pool, queue):
        x = await aio.call(pool, pow, 2, 10)           # in a warm pool interpreter
        item = await aio.queue_get(queue)              # or: await queue.get_async()
        await aio.queue_put(queue, item)               # or: await queue.put_async(item)
        y = await asyncio.get_running_loop().run_in_executor(pool, pow, 3, 3)

How waiting works: every event loop that uses this module gets one results queue (a Rust queue)
and one readiness file descriptor (an ``eventfd`` on Linux, else a pipe) registered with
``loop.add_reader``. The queue's waker writes to the descriptor from whichever thread put a
reply, with no lock and no GIL, so the loop wakes exactly when a reply arrives. A pool worker
puts the reply of ``aio.call(pool, ...)`` straight on that queue: a round trip is one queue put
each way and one loop wake-up, no thread of the main interpreter in between.
``queue_get``/``queue_put`` register such a descriptor on the user's queue while they wait.

Cancelling a coroutine waiting here leaves nothing behind: the waker is unregistered, and an
item is only ever taken synchronously, right before it is returned (never lost). A call already
handed to a worker still runs; its result is dropped.

``aio.call(interp, ...)`` on a plain :class:`~subinterpreters.interpreters.Interpreter` runs the
call in a thread of a small shared thread pool and completes through
``loop.call_soon_threadsafe`` (which also wakes the loop through its own descriptor): running
code in one given interpreter needs an OS thread for as long as it runs, and keeping one parked
in it (as pool workers are) would make the interpreter look busy to everyone else.
"""

import asyncio
import functools
import os
import weakref

from subinterpreters import futures as _fut
from subinterpreters import interpreters as _interp
from subinterpreters import lowlevel as _ll

__all__ = ["call", "queue_get", "queue_put"]


def _new_fd():
    """(read end, write end) of a non-blocking readiness descriptor."""
    if hasattr(os, "eventfd"):
        fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        return fd, fd
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    return r, w


def _close_fds(r, w):
    os.close(r)
    if w != r:
        os.close(w)


def _drain(fd):
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


class _LoopSink(_fut._Sink):
    """The results queue of one event loop, read when its descriptor is readable."""

    def __init__(self, loop):
        super().__init__()
        self.loop = loop
        self.rfd, self.wfd = _new_fd()
        self.token = _ll._queue_add_fd_waker(self.qid, self.wfd)
        loop.add_reader(self.rfd, self._ready)

    def _ready(self):
        _drain(self.rfd)  # first: a reply put after the drain below writes again
        get = _ll._queue_get
        qid = self.qid
        while True:
            try:
                reply = get(qid, False, None)[0]
            except _interp.QueueEmpty:
                return
            if reply is not None:  # None: UNBOUND, a reply whose interpreter was destroyed
                self.deliver(reply)

    def close(self):
        if self.qid is None:
            return
        try:
            if not self.loop.is_closed():
                self.loop.remove_reader(self.rfd)
        except Exception:
            pass
        try:
            _ll._queue_remove_waker(self.qid, self.token)
        except Exception:
            pass
        _close_fds(self.rfd, self.wfd)
        super().close()


_sinks = weakref.WeakKeyDictionary()  # loop -> _LoopSink


def _sink_for(loop):
    sink = _sinks.get(loop)
    if sink is None or sink.qid is None:
        sink = _sinks[loop] = _LoopSink(loop)
        weakref.finalize(loop, sink.close)
    return sink


async def call(target, fn, /, *args, **kwargs):
    """Await ``fn(*args, **kwargs)`` run in ``target``: an InterpreterPoolExecutor (a warm
    worker) or an Interpreter. Raises as ``Future.result()`` / ``Interpreter.call()`` would."""
    loop = asyncio.get_running_loop()
    if isinstance(target, _fut.InterpreterPoolExecutor):
        fdata, akind, adata = _fut._encode(fn, args, kwargs)
        fut = loop.create_future()
        target._enqueue(_fut._Work(fut, fdata, akind, adata, _sink_for(loop), loop))
        return await fut
    if isinstance(target, _interp.Interpreter):
        job = functools.partial(target.call, fn, *args, **kwargs)
        return await loop.run_in_executor(_call_threads(), job)
    raise TypeError(f"expected an InterpreterPoolExecutor or an Interpreter, got {target!r}")


_threads = None


def _call_threads():
    global _threads
    if _threads is None:
        from concurrent.futures import ThreadPoolExecutor

        _threads = ThreadPoolExecutor(thread_name_prefix="subinterpreters-aio")
    return _threads


async def _wait_queue(queue, attempt, fail):
    """Run ``attempt()`` until it does not raise ``fail``, waiting for the queue to change."""
    try:
        return attempt()
    except fail:
        pass
    loop = asyncio.get_running_loop()
    rfd, wfd = _new_fd()
    try:
        token = _ll._queue_add_fd_waker(queue.id, wfd)
        try:
            while True:
                # After registering: a change from now on writes to the descriptor.
                try:
                    return attempt()
                except fail:
                    pass
                waiter = loop.create_future()
                loop.add_reader(rfd, _wake, rfd, waiter)
                try:
                    await waiter
                finally:
                    loop.remove_reader(rfd)
        finally:
            try:
                _ll._queue_remove_waker(queue.id, token)
            except _interp.QueueError:
                pass  # destroyed meanwhile
    finally:
        _close_fds(rfd, wfd)


def _wake(fd, waiter):
    _drain(fd)
    if not waiter.done():
        waiter.set_result(None)


async def queue_get(queue):
    """Await the oldest item of ``queue`` (a subinterpreters.interpreters.Queue)."""
    return await _wait_queue(queue, queue.get_nowait, _interp.QueueEmpty)


async def queue_put(queue, obj, *, unbounditems=None):
    """Await room in ``queue``, then put ``obj``."""
    attempt = functools.partial(queue.put_nowait, obj, unbounditems=unbounditems)
    return await _wait_queue(queue, attempt, _interp.QueueFull)
