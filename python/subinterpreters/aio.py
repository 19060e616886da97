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
"""

import asyncio
import functools
import os
import threading
import weakref

from subinterpreters import _errors
from subinterpreters import _protocol as _p
from subinterpreters import _results as _r
from subinterpreters import futures as _fut
from subinterpreters import interpreters as _interp
from subinterpreters import lowlevel as _ll

__all__ = ["call", "queue_get", "queue_put", "wait"]


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
        sink = _sink_for(loop)
        fut = _fut.submit_for_loop(target, loop, sink, fn, args, kwargs)
        if not target._crew.forward:
            return await _reply(loop, sink, fut)
        try:
            return await _reply(loop, sink, fut)
        finally:
            _interp._output.deliver()  # what the call printed, before it returns
    if isinstance(target, _interp.Interpreter):
        fdata, akind, adata, mainfile = _interp.call_data(target, fn, args, kwargs)
        sink = _sink_for(loop)
        fut = loop.create_future()
        while True:
            runner = _interp.call_runner(target, _CallRunner)
            work = _r.Work(
                fut, sink, loop=loop, unwrap=False, key=runner.key, claim=_ll._claim_open()
            )
            try:
                _ll._queue_put(runner.qid, work.task(fdata, akind, adata, mainfile), 0, False, None)
                break
            except _interp.QueueNotFoundError:
                # That runner has just ended (its interpreter closed, or collected): look
                # again, which starts a new one or says the interpreter is gone.
                work.withdraw()
                _interp.forget_call_runner(runner.id, runner)
            except BaseException:
                work.withdraw()
                raise
        try:
            return await _reply(loop, sink, fut)
        finally:
            _interp._output.after_run(target.id)  # what the call printed, before it returns
    raise TypeError(f"expected an InterpreterPoolExecutor or an Interpreter, got {target!r}")


async def _reply(loop, sink, fut):
    """The outcome of a call handed over with ``fut`` as its future."""
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
    except _interp.QueueError:  # nothing yet (QueueEmpty), or the queue is gone
        return False
    # The reply's put also signalled the descriptor: drain it first (a reply put after this
    # signals again), or the loop would wake for nothing and find its callbacks due next time.
    _drain(sink.rfd)
    batch = _r.take_all(sink.qid)
    if first is not None:
        batch.insert(0, first)
    sink.deliver(batch)
    return True


class _CallRunner:
    """Makes the ``call_async`` calls of one interpreter: a thread of this interpreter that
    serves a queue of calls with ``_ll._serve_queue``, which waits for each call with no GIL
    held, enters the target interpreter for it (``_protocol.serve_bound``), whose reply goes
    straight to its event loop's results queue, and leaves. Between calls the thread is
    outside the interpreter, which is then not running."""

    def __init__(self, interp):
        self.id = interp.id
        self.key = _r.new_key()  # names this runner in DEAD replies
        self.qid = _p.new_reply_queue()
        self.thread = threading.Thread(
            target=self._serve, name=f"subinterpreters-call-{self.id}", daemon=False
        )
        if not _exit_hook:
            threading._register_atexit(_stop_runners)
            _exit_hook.append(True)
        # Started before it is registered: close() (in any thread) may stop and join it as
        # soon as it can find it.
        self.thread.start()
        weakref.finalize(interp, self.stop)

    def stop(self):
        """Let the queued calls run, then end the thread (and wait for it, unless called from
        it). Then the replies already made are handed to their loops (see
        ``_results.rescue_replies``): this runs before the interpreter is destroyed."""
        try:
            _ll._queue_put(self.qid, None, 0, False, None)
        except _interp.QueueError:
            return  # stopped already
        if self.thread is not threading.current_thread():
            self.thread.join()
            _r.rescue_replies()

    def _serve(self):
        qid = self.qid
        try:
            while True:
                try:
                    # Serves until the stop marker; comes back only for a call it could not
                    # make (see _ll._serve_queue), with the task unless serve_bound had it.
                    out = _ll._serve_queue(self.id, qid, _SERVE_CALL, _p.TASK)
                except Exception as exc:  # the task itself could not be brought back
                    out = (None, exc)
                if out is None:
                    return
                task, exc = out
                if isinstance(exc, _ll.RunFailedError):
                    # Not a call's own exception (serve_bound reports those): the run itself
                    # was interrupted, or the interpreter could not start it.
                    error = _errors.ExecutionFailed(_errors.excinfo_from_run_failed(exc))
                elif isinstance(exc, RuntimeError):
                    error = _interp.translate_error(exc, self.id, "run")
                else:
                    error = exc
                if task is not None:
                    self._fail(task, error)
                else:
                    # The failed call's task is lost with it: every call handed to this
                    # runner and not answered yet fails (on each event loop); the ones still
                    # queued run anyway, their replies then ignored.
                    _r.report_dead(self.key, error)
                if isinstance(error, _interp.InterpreterNotFoundError):
                    return  # destroyed by other means: the calls still queued fail below
        finally:
            _interp.forget_call_runner(self.id, self)
            self._fail_queued(_interp.InterpreterError("the interpreter's call runner stopped"))
            try:
                _ll._queue_release(qid)
            except Exception:
                pass

    def _fail_queued(self, error):
        for task in _r.take_all(self.qid):
            self._fail(task, error)

    @staticmethod
    def _fail(task, error):
        # Handed to the loop as is (this thread is of the loop's interpreter): an exception
        # need not survive a trip through a queue. A call whose claim is gone was cancelled.
        if task[1] and not _ll._claim_take(task[1]):
            return
        sink = _r.sink_of(task[2])
        if sink is not None:
            sink.hand_over([(task[0], _p.FAILED, error, 0.0)])


# Without a fromlist, __import__ returns the top package from sys.modules in C: cheaper than
# the fromlist form, which runs importlib's Python code each time.
_SERVE_CALL = "__import__('subinterpreters._protocol')._protocol.serve_bound()"

_exit_hook = []


def _stop_runners():
    for runner in _interp.call_runners():
        runner.stop()


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
            except _interp.QueueError:
                pass  # destroyed: ready, as the look below says
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
            except _interp.QueueError:
                pass  # destroyed meanwhile
        _close_fds(rfd, wfd)
