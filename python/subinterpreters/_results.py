"""Where replies become results: the futures of calls made in other interpreters, the results
queues they come back on (sinks), and what happens to calls whose worker died.

A :class:`Work` is one call handed to another interpreter: its future (a cheap
:class:`Future`, or an asyncio future), its claim (see ``_protocol``), and whom to tell when it
is settled (a pool, which counts its unfinished works). A :class:`Sink` is a results queue
and the works whose replies go there: the pool's own (read by its collector thread) or an event
loop's (``_async``, for ``call_async``). A worker that dies tells each sink with a ``DEAD`` reply
that carries the error itself, so nothing is kept per dead worker.
"""

import _thread
import collections
import itertools
from concurrent.futures import _base

from subinterpreters import _errors
from subinterpreters import _protocol as _p
from subinterpreters import lowlevel as _ll

__all__ = ["Future", "Work", "Sink", "report_dead", "rescue_replies", "next_tid", "work_of_claim"]

next_tid = itertools.count(1).__next__


class _Condition(_thread.RLock):
    """The condition of a :class:`Future`: what ``threading.Condition()`` gives, but the lock is
    the object itself, so ``with``, ``acquire`` and ``release`` are C calls and creating one is a
    single allocation (the pool makes one per task; ``threading.Condition`` costs several times
    more on 3.11 to 3.13, where this was most of a submit)."""

    __slots__ = ("_waiters",)

    def wait(self, timeout=None):
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        waiter = _thread.allocate_lock()
        waiter.acquire()
        waiters = getattr(self, "_waiters", None)
        if waiters is None:
            waiters = self._waiters = collections.deque()
        waiters.append(waiter)
        saved = self._release_save()
        got = False
        try:
            if timeout is None:
                waiter.acquire()
                got = True
            elif timeout > 0:
                got = waiter.acquire(True, timeout)
            else:
                got = waiter.acquire(False)
            return got
        finally:
            self._acquire_restore(saved)
            if not got:
                try:
                    waiters.remove(waiter)
                except ValueError:
                    pass

    def notify(self, n=1):
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        waiters = getattr(self, "_waiters", None)
        while waiters and n > 0:
            waiter = waiters.popleft()
            try:
                waiter.release()
            except RuntimeError:  # released by a timed-out waiter meanwhile
                pass
            n -= 1

    def notify_all(self):
        waiters = getattr(self, "_waiters", None)
        self.notify(len(waiters) if waiters else 0)


class Future(_base.Future):
    """A Future made cheaply (see :class:`_Condition`) that knows its call's claim.

    It is running from the moment a worker takes the claim to start the call (``running()``
    asks the claim, so no message is sent for it), and from then on ``cancel()`` fails. Until
    then ``cancel()`` succeeds wherever the call waits, and the future is at once what
    ``set_running_or_notify_cancel()`` would make it when a worker reached the call
    (``wait()`` and ``as_completed()`` count it done): no worker ever will. ``result()`` raises
    a falsey exception too (CPython gh-132063, fixed in 3.14: before that, an exception whose
    ``__bool__`` or ``__len__`` says false was ignored)."""

    def __init__(self):
        # Everything _base.Future.__init__ sets, with the cheaper condition.
        self._condition = _Condition()
        self._state = _base.PENDING
        self._result = None
        self._exception = None
        self._waiters = []
        self._done_callbacks = []
        self._work = None  # set once the call is queued

    def _look(self):
        """PENDING becomes RUNNING once a worker has taken the call (condition held)."""
        if self._state == _base.PENDING:
            work = self._work
            if work is not None and work.started():
                self._state = _base.RUNNING

    def running(self):
        with self._condition:
            self._look()
            return self._state == _base.RUNNING

    def cancel(self):
        with self._condition:
            work = self._work
            if self._state == _base.PENDING and work is not None and not work.withdraw():
                if not work.withdrawn:
                    # A worker took the claim: the call runs (or ran), as running() says.
                    self._state = _base.RUNNING
                    return False
            # (else another thread withdrew it meanwhile: it is cancelled all the same)
        if not super().cancel():
            return False
        with self._condition:
            self._work = None  # settled (see set_result)
            if self._state == _base.CANCELLED:
                self.set_running_or_notify_cancel()  # tells wait() and as_completed()
        return True

    # A settled future no longer needs its work: dropping it breaks the cycle future -> work
    # -> future, so a result goes as soon as the caller drops the future rather than at the next
    # garbage collection (for large results, the difference between reusing memory and taking
    # fresh pages from the system each time). ``cancel`` does the same.
    def set_result(self, result):
        super().set_result(result)
        self._work = None

    def set_exception(self, exception):
        super().set_exception(exception)
        self._work = None

    def __repr__(self):
        with self._condition:
            self._look()
        return super().__repr__()

    def _Future__get_result(self):
        if self._exception is not None:
            try:
                raise self._exception
            finally:
                self = None  # break the reference cycle with the exception
        else:
            return self._result


class Work:
    """One call handed to another interpreter (or a ``map`` chunk), until it is settled."""

    __slots__ = ("future", "tid", "claim", "sink", "loop", "unwrap", "owner", "key", "withdrawn")

    def __init__(self, future, sink, *, loop=None, unwrap=True, owner=None, key=0, claim=0):
        self.future = future
        self.tid = next_tid()
        self.claim = claim
        self.sink = sink
        self.loop = loop  # set for asyncio futures
        self.unwrap = unwrap  # raise the call's own exception (the pool), or ExecutionFailed
        self.owner = owner  # told with owner._settled(work) once, when settled
        self.key = key  # who serves it, for DEAD replies (0: a pool's shared queue)
        self.withdrawn = False  # its claim taken back: it never runs
        sink.works[self.tid] = self
        if loop is None:
            future._work = self
        else:
            future.add_done_callback(self._loop_future_done)

    def task(self, fdata, akind, adata, mainfile=None):
        """The task tuple that crosses (see ``_protocol``)."""
        return (self.tid, self.claim, self.sink.qid, fdata, akind, adata, mainfile)

    def withdraw(self):
        """Take the call back if no worker has started it: True if it will never run."""
        if not self.claim:
            return False
        if self.loop is None:
            # Under the future's condition: running() never sees the claim gone but not yet
            # marked withdrawn (it would take the call for started).
            with self.future._condition:
                if not _ll._claim_take(self.claim):
                    return False
                self.withdrawn = True
        elif _ll._claim_take(self.claim):
            self.withdrawn = True
        else:
            return False
        self._forget()
        return True

    def started(self):
        """Whether a worker has taken the call's claim: it runs, or ran."""
        return bool(self.claim) and not self.withdrawn and not _ll._claim_is_open(self.claim)

    def _forget(self):
        if self.sink.works.pop(self.tid, None) is self and self.owner is not None:
            self.owner._settled(self)

    def interrupt(self):
        """Interrupt the call if a worker runs it now (see ``_protocol``): True if this did.
        It then fails with ``TaskInterrupted``, unless it returns all the same."""
        return bool(self.claim) and _ll._claim_interrupt(self.claim, _p.INTERRUPT)

    def _loop_future_done(self, fut):
        # The awaiting coroutine was cancelled: skip the call if queued, else interrupt it (its
        # reply, if any, is then ignored); the worker goes on to its next call.
        if fut.cancelled() and not self.withdraw():
            self.interrupt()

    def finish(self, status, payload):
        """Complete the future from a reply (in the sink's thread)."""
        if self.owner is not None:  # first: a caller woken by the result sees it counted
            self.owner._settled(self)
        ok, value = _p.decode(status, payload, self.unwrap)
        fut = self.future
        if self.loop is None:
            with fut._condition:
                if fut._state in (_base.CANCELLED, _base.CANCELLED_AND_NOTIFIED, _base.FINISHED):
                    return
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
        elif not fut.done():
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

    def cancel(self):
        """Cancel the future of a call that will never run (its claim is taken)."""
        self._forget()
        if self.loop is None:
            self.future._work = None
            self.future.cancel()
        else:
            try:
                self.loop.call_soon_threadsafe(self.future.cancel)
            except RuntimeError:  # the loop is closed
                pass

    def fail(self, exc):
        """Fail the future of a call that will never be answered, from any thread."""
        self._forget()
        if self.loop is None:
            with self.future._condition:
                if self.future._state == _base.FINISHED or self.future.cancelled():
                    return
            self.future.set_exception(exc)
        else:
            try:
                self.loop.call_soon_threadsafe(_set_exception_if_pending, self.future, exc)
            except RuntimeError:  # the loop is closed
                pass


def _set_exception_if_pending(fut, exc):
    if not fut.done():
        fut.set_exception(exc)


# Every sink of this interpreter by its queue id (read by threads that rescue replies).
_sinks: dict = {}


class Sink:
    """A results queue and the works whose replies go there."""

    def __init__(self):
        self.qid = _p.new_reply_queue()
        self.works = {}  # tid -> Work
        _sinks[self.qid] = self

    def deliver(self, replies):
        """Complete the works of a batch of replies, in order."""
        works = self.works
        for tid, status, payload, _seconds in replies:
            if status == _p.DEAD:
                self._owner_died(*payload)
                continue
            work = works.pop(tid, None)
            if work is not None:
                work.finish(status, payload)

    def _owner_died(self, key, error):
        for work in [w for w in self.works.values() if w.key == key]:
            if self.works.pop(work.tid, None) is work:
                work.finish(_p.FAILED, error)

    def hand_over(self, replies):
        """Deliver replies taken off this queue by another thread of this interpreter."""
        self.deliver(replies)

    def close(self):
        qid, self.qid = self.qid, None
        if qid is not None:
            _sinks.pop(qid, None)
            try:
                _ll._queue_release(qid)
            except Exception:
                pass


def take_all(qid):
    """Every item now in queue ``qid`` but UNBOUND markers (None), taken off without waiting;
    what there is so far if the queue goes away meanwhile."""
    get = _ll._queue_get
    items = []
    while True:
        try:
            item = get(qid, False, None)[0]
        except RuntimeError:  # a QueueError: empty, or the queue is gone
            return items
        except Exception:  # taken but not rebuilt (MemoryError): the others still count
            continue
        if item is not None:
            items.append(item)


def rescue_replies():
    """Take every reply waiting in this interpreter's results queues and hand it to its sink.

    An item of a queue belongs to the interpreter that put it: destroying that interpreter
    turns the item into an UNBOUND marker, which names no call. A reply taken off the queue is
    an object of this interpreter, safe from that. Called before a worker's interpreter goes."""
    for sink in list(_sinks.values()):
        qid = sink.qid
        if qid is None:
            continue
        batch = take_all(qid)
        if batch:
            sink.hand_over(batch)


def report_dead(key, error):
    """Tell every results queue of this interpreter that the unanswered calls served by
    ``key`` failed with ``error``: a DEAD reply each, after the replies already queued."""
    for sink in list(_sinks.values()):
        if sink.qid is not None:
            try:
                _ll._queue_put(sink.qid, (0, _p.DEAD, (key, error), 0.0), 0, False, None)
            except RuntimeError:  # a QueueError: closed meanwhile, nobody waits on it
                pass
            except Exception:  # the error does not pickle: its text crosses instead
                error = _errors.InterpreterError(f"{type(error).__name__}: {error}")
                try:
                    _ll._queue_put(sink.qid, (0, _p.DEAD, (key, error), 0.0), 0, False, None)
                except RuntimeError:
                    pass


def work_of_claim(claim):
    """The unsettled work, of any results queue of this interpreter, whose call has ``claim``
    (None if it is settled). Scans them all: for the rare worker that died mid-call."""
    for sink in list(_sinks.values()):
        for work in list(sink.works.values()):
            if work.claim == claim:
                return work
    return None


def sink_of(qid):
    """The sink of results queue ``qid`` in this interpreter, or None."""
    return _sinks.get(qid)


_keys = itertools.count(1).__next__


def new_key():
    """A key for something that serves calls (see ``report_dead``)."""
    return _keys()
