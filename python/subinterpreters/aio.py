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
``queue_get``/``queue_put`` register such a descriptor on the user's queue while they wait, and
``wait`` one descriptor on every queue it watches.

A quick call need not cost the loop a wake-up at all: when the loop has nothing else ready,
the awaiting coroutine first waits up to 50 µs for the reply in place (GIL released), takes it,
and yields to the loop once before returning, so I/O and other tasks still run between calls.

Cancelling a coroutine waiting here leaves nothing behind: the waker is unregistered, and an
item is only ever taken synchronously, right before it is returned (never lost). A cancelled
call that no worker has started yet never runs (its claim is taken back, see ``_protocol``);
one already running is interrupted (a ``KeyboardInterrupt`` raised in it, through its claim:
that call only, never the next one its worker or interpreter makes), its result dropped, and
its worker or interpreter serves the next call as usual. Python code stops at once (on 3.11
at the next switch of the shared GIL); a call blocked in C stops when that returns.

``aio.call(interp, ...)`` (and ``await interp.call_async(...)``) on a plain
:class:`~subinterpreters.interpreters.Interpreter` queues the call for that interpreter's call
runner: one thread of the calling interpreter, started on the first such call, that waits for
calls in Rust with no GIL held and, for each one, enters the interpreter, makes the call, puts
the reply on its event loop's results queue and leaves (so the interpreter is only "running"
while it makes a call). On 3.12+ it never takes the calling interpreter's GIL meanwhile, so the
event loop never waits for it. The runner stops when the interpreter is closed or collected,
or at exit, after the calls queued so far.

This module is the public face only, on top of the package: the machinery lives below, in
``_async`` (descriptors, results queues, waits), ``interpreters._runner`` (call runners) and the
``call_async`` methods, which need not import this module.
"""

import functools

from subinterpreters import _async
from subinterpreters import futures as _fut
from subinterpreters import interpreters as _interp

__all__ = ["call", "queue_get", "queue_put", "wait"]


async def call(target, fn, /, *args, **kwargs):
    """Await ``fn(*args, **kwargs)`` run in ``target``: an InterpreterPoolExecutor (a warm
    worker) or an Interpreter. Raises as ``Future.result()`` / ``Interpreter.call()`` would."""
    if isinstance(target, (_fut.InterpreterPoolExecutor, _interp.Interpreter)):
        return await target.call_async(fn, *args, **kwargs)
    raise TypeError(f"expected an InterpreterPoolExecutor or an Interpreter, got {target!r}")


async def queue_get(queue):
    """Await the oldest item of ``queue`` (a subinterpreters.interpreters.Queue)."""
    return await _async.wait_queue(queue, queue.get_nowait, _interp.QueueEmpty)


async def queue_put(queue, obj, *, unbounditems=None):
    """Await room in ``queue``, then put ``obj``."""
    attempt = functools.partial(queue.put_nowait, obj, unbounditems=unbounditems)
    return await _async.wait_queue(queue, attempt, _interp.QueueFull)


async def wait(queues, timeout=None):
    """Await until at least one of ``queues`` has an item; return those that do, in the order
    given, or ``[]`` after ``timeout`` seconds (see ``interpreters.wait``)."""
    return await _async.wait(queues, timeout)
