"""The asyncio machinery under :mod:`subinterpreters.aio`: readiness descriptors, each event
loop's results queue, and awaiting a reply or a change of queues.

It sits below everything that awaits (``Interpreter.call_async``, ``Queue.get_async`` and
``put_async``, ``wait_async``, ``InterpreterPoolExecutor.call_async``), so that those need not
import ``aio``, the public module on top, which only hands each call to them. ``aio``'s module
documentation says how waiting works.
"""

import asyncio
import os
import weakref

from subinterpreters import _results as _r
from subinterpreters import lowlevel as _ll

__all__ = ["sink_for", "reply", "wait_queue", "wait"]


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


class _LoopSink(_r.Sink):
    """The results queue of one event loop, read when its descriptor is readable."""

    def __init__(self, loop):
        super().__init__()
        self.loop = loop
        self.rfd, self.wfd = _new_fd()
        self.token = _ll._queue_add_fd_waker(self.qid, self.wfd)
        loop.add_reader(self.rfd, self._ready)

    def _ready(self):
        _drain(self.rfd)  # first: a reply put after the drain below writes again
        self.deliver(_r.take_all(self.qid))

    def hand_over(self, replies):
        """Replies taken off this queue by another thread: delivered in the loop's thread."""
        try:
            self.loop.call_soon_threadsafe(self.deliver, replies)
        except RuntimeError:
            pass  # the loop is closed: nobody waits for these

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


def sink_for(loop):
    """The results queue of ``loop`` (made on first use, closed with the loop)."""
    sink = _sinks.get(loop)
    if sink is None or sink.qid is None:
        sink = _sinks[loop] = _LoopSink(loop)
        weakref.finalize(loop, sink.close)
    return sink


async def reply(loop, sink, fut):
    """The outcome of a call handed over with ``fut`` as its future, its reply due on
    ``sink``."""
    if _wait_briefly(loop, sink):
        await asyncio.sleep(0)  # the loop still gets its turn (I/O, other tasks)
    return await fut


# How long a call's coroutine waits in place for its reply when the loop has nothing else to run.
_BRIEF = 50e-6


def _wait_briefly(loop, sink):
    """Give a quick call the chance to answer before the event loop goes to sleep.

    A sleeping thread costs tens of microseconds to wake on a virtual machine, more than a small
    call takes. So when the loop has no other callback ready (asyncio's own loops tell), wait
    here up to ``_BRIEF`` for a reply, with the GIL released (the worker may need it: on 3.11
    it is the one GIL), and hand what came to the futures at once. Otherwise, or if nothing
    came, the loop waits on the descriptor as usual. I/O and timers are at most that much late,
    and the caller still yields to the loop once. Returns whether replies were handed over.
    """
    if getattr(loop, "_ready", True):  # callbacks are due, or not an asyncio loop we know
        return False
    try:
        first = _ll._queue_get(sink.qid, True, _BRIEF)[0]
    except RuntimeError:  # nothing yet (QueueEmpty), or the queue is gone: a QueueError
        return False
    # The reply's put also signalled the descriptor: drain it first (a reply put after this
    # signals again), or the loop would wake for nothing and find its callbacks due next time.
    _drain(sink.rfd)
    batch = _r.take_all(sink.qid)
    if first is not None:
        batch.insert(0, first)
    sink.deliver(batch)
    return True


async def wait_queue(queue, attempt, fail):
    """Run ``attempt()`` until it does not raise ``fail``, waiting for ``queue`` to change."""
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
            except RuntimeError:  # a QueueError: destroyed meanwhile
                pass
    finally:
        _close_fds(rfd, wfd)


def _wake(fd, waiter):
    _drain(fd)
    if not waiter.done():
        waiter.set_result(None)


async def wait(queues, timeout=None):
    """Await until at least one of ``queues`` has an item; return those that do, in the order
    given, or ``[]`` after ``timeout`` seconds (see ``interpreters.wait``)."""
    queues = list(queues)
    ready = _ll._queue_wait(queues, 0)  # also checks the arguments
    if ready or timeout == 0:
        return ready
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    rfd, wfd = _new_fd()
    tokens = []
    try:
        for queue in queues:
            try:
                tokens.append((queue.id, _ll._queue_add_fd_waker(queue.id, wfd)))
            except RuntimeError:  # a QueueError: destroyed, so ready, as the look below says
                pass
        while True:
            # After registering: a change from now on writes to the descriptor.
            ready = _ll._queue_wait(queues, 0)
            if ready:
                return ready
            waiter = loop.create_future()
            loop.add_reader(rfd, _wake, rfd, waiter)
            timer = None
            if deadline is not None:
                left = deadline - loop.time()
                if left <= 0:
                    loop.remove_reader(rfd)
                    return []
                timer = loop.call_later(left, _wake, rfd, waiter)
            try:
                await waiter
            finally:
                loop.remove_reader(rfd)
                if timer is not None:
                    timer.cancel()
    finally:
        for qid, token in tokens:
            try:
                _ll._queue_remove_waker(qid, token)
            except RuntimeError:  # a QueueError: destroyed meanwhile
                pass
        _close_fds(rfd, wfd)
