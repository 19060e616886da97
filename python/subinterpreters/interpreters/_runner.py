"""``Interpreter.call_async``: each interpreter's call runner, and a call handed to it.

A call runner is one thread of the calling interpreter, started on the first such call, that
waits for calls in Rust with no GIL held (``lowlevel._serve_queue``) and, for each one, enters
the interpreter, makes the call (``_protocol.serve_bound``), puts the reply on its event loop's
results queue and leaves. The registry of runners (one per interpreter, stopped when it is
closed) is :mod:`subinterpreters.interpreters`'s; this module is loaded with the first
``call_async``, and imports nothing above it.
"""

import asyncio
import threading
import weakref

from subinterpreters import _async, _errors
from subinterpreters import _protocol as _p
from subinterpreters import _results as _r
from subinterpreters import lowlevel as _ll

from . import _output
from ._queues import QueueError, QueueNotFoundError

__all__ = ["CallRunner", "call"]


async def call(interp, task, runner_of):
    """Await the call ``task`` (``(fdata, akind, adata, mainfile)``, see ``call_data``) made
    in ``interp`` by its call runner, which ``runner_of(interp)`` gives (registered, or
    started now)."""
    loop = asyncio.get_running_loop()
    sink = _async.sink_for(loop)
    fut = loop.create_future()
    while True:
        runner = runner_of(interp)
        work = _r.Work(fut, sink, loop=loop, unwrap=False, key=runner.key, claim=_ll._claim_open())
        try:
            _ll._queue_put(runner.qid, work.task(*task), 0, False, None)
            break
        except QueueNotFoundError:
            # That runner has just ended (its interpreter closed, or collected): look
            # again, which starts a new one or says the interpreter is gone.
            work.withdraw()
            runner.forget(runner.id, runner)
        except BaseException:
            work.withdraw()
            raise
    try:
        return await _async.reply(loop, sink, fut)
    finally:
        _output.after_run(interp.id)  # what the call printed, before it returns


class CallRunner:
    """Makes the ``call_async`` calls of one interpreter: a thread of this interpreter that
    serves a queue of calls with ``_ll._serve_queue``, which waits for each call with no GIL
    held, enters the target interpreter for it (``_protocol.serve_bound``), whose reply goes
    straight to its event loop's results queue, and leaves. Between calls the thread is
    outside the interpreter, which is then not running. ``forget(id, runner)`` unregisters it
    once it has ended."""

    def __init__(self, interp, forget):
        self.id = interp.id
        self.forget = forget
        self.key = _r.new_key()  # names this runner in DEAD replies
        self.qid = _p.new_reply_queue()
        self.thread = threading.Thread(
            target=self._serve, name=f"subinterpreters-call-{self.id}", daemon=False
        )
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
        except QueueError:
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
                except Exception as lost:  # the task itself could not be brought back
                    out = (None, lost)
                if out is None:
                    return
                task, exc = out
                if isinstance(exc, _ll.RunFailedError):
                    # Not a call's own exception (serve_bound reports those): the run itself
                    # was interrupted, or the interpreter could not start it.
                    error = _errors.ExecutionFailed(_errors.excinfo_from_run_failed(exc))
                elif isinstance(exc, RuntimeError):
                    error = _errors.translate_error(exc, self.id, "run")
                else:
                    error = exc
                if task is not None:
                    self._fail(task, error)
                else:
                    # The failed call's task is lost with it: every call handed to this
                    # runner and not answered yet fails (on each event loop); the ones still
                    # queued run anyway, their replies then ignored.
                    _r.report_dead(self.key, error)
                if isinstance(error, _errors.InterpreterNotFoundError):
                    return  # destroyed by other means: the calls still queued fail below
        finally:
            self.forget(self.id, self)
            self._fail_queued(_errors.InterpreterError("the interpreter's call runner stopped"))
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
