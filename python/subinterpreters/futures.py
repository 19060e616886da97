"""``InterpreterPoolExecutor``: a :class:`concurrent.futures.Executor` running each call in one
of a few warm interpreters of this process (in parallel on CPython 3.12+, each has its own GIL).

It has CPython 3.14's ``concurrent.futures.InterpreterPoolExecutor`` signature and behaviour on
CPython 3.11 to 3.15::

    from subinterpreters.futures import InterpreterPoolExecutor

    with InterpreterPoolExecutor(max_workers=4) as pool:
        print(list(pool.map(pow, range(10), range(10), chunksize=4)))

How it works (see ``_pool_worker`` for the other half): each worker is one interpreter, created
on first need and reused, and one OS thread that enters it once and stays there, serving tasks
from the worker's own Rust queue. The submitting thread encodes a task (stateless functions as
their code, other callables and arguments by pickle) and puts it straight on a worker's queue;
the worker puts the reply on a results queue that one collector thread of the pool reads (or,
for ``await pool.call_async(...)``, on the event loop's own results queue, which wakes the loop
through a file descriptor). No thread of the main interpreter sits between a task and its
interpreter, so the main interpreter's GIL is needed only to submit and to complete futures.

Tasks wait in the pool (cancellable) until a worker has room; a worker is given a few tasks
ahead (enough for about 10 ms of work, at least 1), so that it never waits for the collector.
A task handed to a worker is ``running()`` and can no longer be cancelled.
"""

import _thread
import collections
import itertools
import os
import sys
import threading
import time
import weakref
from concurrent.futures import _base
from concurrent.futures.thread import BrokenThreadPool

from subinterpreters import _pool_worker as _w
from subinterpreters import interpreters as _interp
from subinterpreters import lowlevel as _ll

__all__ = ["InterpreterPoolExecutor", "BrokenInterpreterPool"]

_BrokenStdlib = None
if sys.version_info >= (3, 14):
    try:
        from concurrent.futures.interpreter import BrokenInterpreterPool as _BrokenStdlib
    except ImportError:  # built without _interpreters
        _BrokenStdlib = None

if _BrokenStdlib is not None:
    # One class for both pools: code catching 3.14's exception catches ours.
    BrokenInterpreterPool = _BrokenStdlib
else:

    class BrokenInterpreterPool(BrokenThreadPool):
        """Raised when a worker of an InterpreterPoolExecutor failed initializing."""


_BROKEN_MESSAGE = "A thread initializer failed, the thread pool is not usable anymore"
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_tids = itertools.count(1)
_QUEUE_UNBOUND, _PICKLE_FALLBACK = 3, 1

# Scripts the worker thread runs in its interpreter (compiled once there, then cached).
_SERVE = "__import__('subinterpreters._pool_worker', None, None, ['_']).serve(tq)"
_SERVE_ONE = "__import__('subinterpreters._pool_worker', None, None, ['_']).serve(tq, 1)"

# How much work (in seconds) a worker is given ahead, and the bounds on that depth.
_AHEAD_SECONDS = 0.01
_MIN_DEPTH, _MAX_DEPTH = 1, 1024

# At most this many replies are delivered under one take of the pool's lock.
_BATCH = 256


def _pickle():
    import pickle

    return pickle


# -- encoding tasks -----------------------------------------------------------------------------

_FunctionType = type(_pickle)
_fdata_cache: dict = {}


def _function_data(fn):
    """The callable as the worker receives it: NUL + marshalled code, or a pickle."""
    if type(fn) is _FunctionType:
        key = (fn, fn.__code__)
        data = _fdata_cache.get(key)
        if data is None:
            data = None
            if fn.__module__ != "__main__":
                # A module's function runs with its module's globals: by reference (as 3.14's
                # pool sends it), when it can be found by name.
                try:
                    data = _pickle().dumps(fn, 5)
                except Exception:
                    data = None
            if data is None:
                data = _interp._callable_data(fn)
            if len(_fdata_cache) >= 256:
                _fdata_cache.clear()
            _fdata_cache[key] = data
        return data
    try:
        return _dumps(fn)
    except Exception as exc:
        raise _interp.NotShareableError(
            f"{_safe_repr(fn)} does not support cross-interpreter data"
        ) from exc


def _dumps(obj):
    return _pickle().dumps(obj, 5)


def _safe_repr(obj):
    try:
        return repr(obj)
    except Exception:
        return f"<{type(obj).__name__} object>"


def _encode(fn, args, kwargs):
    """(fdata, akind, adata) for a call; raises NotShareableError."""
    fdata = _function_data(fn)
    if not kwargs:
        if not args:
            return fdata, _w.ARGS_NONE, None
        if len(args) == 1:
            arg = args[0]
            tp = type(arg)
            if tp is str or (tp is int and _INT_MIN <= arg <= _INT_MAX):
                return fdata, _w.ARGS_ONE, arg
    try:
        return fdata, _w.ARGS_PICKLED, _dumps((args, kwargs))
    except Exception as exc:
        raise _interp.NotShareableError("args not shareable") from exc


# -- replies ------------------------------------------------------------------------------------


def _outcome(status, payload):
    """(ok, value): the result, or the exception to raise, for one reply."""
    if status == _w.OK:
        return True, payload
    if status == _w.PICKLED:
        try:
            return True, _pickle().loads(payload)
        except Exception as exc:
            err = _interp.NotShareableError("result not shareable")
            err.__cause__ = exc
            return False, err
    if status == _w.RAISED:
        data, info = payload
        wrapper = _interp.ExecutionFailed(_interp._excinfo(*info))
        if data is not None:
            try:
                exc = _pickle().loads(data)
            except Exception:
                exc = None
            if isinstance(exc, BaseException):
                exc.__cause__ = wrapper
                return False, exc
        return False, wrapper
    if status == _w.CALL:
        return _interp._call_outcome(payload)
    if status == _w.FAILED:
        return False, payload
    if status == _w.NOT_SHAREABLE:
        message, cause = payload
        err = _interp.NotShareableError(message)
        err.__cause__ = _interp.NotShareableError(cause)
        return False, err
    return False, _interp.InterpreterError(f"unexpected reply status {status!r}")


class _Condition(_thread.RLock):
    """The condition of a :class:`_Future`: what ``threading.Condition()`` gives, but the lock is
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


class _Future(_base.Future):
    """A Future made cheaply (see :class:`_Condition`) whose ``result()`` raises a falsey
    exception too (CPython gh-132063, fixed in 3.14: before that, an exception whose
    ``__bool__`` or ``__len__`` says false was ignored)."""

    __slots__ = ()

    def __init__(self):
        # Everything _base.Future.__init__ sets, with the cheaper condition.
        self._condition = _Condition()
        self._state = _base.PENDING
        self._result = None
        self._exception = None
        self._waiters = []
        self._done_callbacks = []

    def _Future__get_result(self):
        if self._exception is not None:
            try:
                raise self._exception
            finally:
                self = None  # break the reference cycle with the exception
        else:
            return self._result


class _Work:
    """One submitted call (or map chunk), from submit to completion."""

    __slots__ = ("future", "fdata", "akind", "adata", "sink", "worker", "loop")

    def __init__(self, future, fdata, akind, adata, sink, loop=None):
        self.future = future
        self.fdata = fdata
        self.akind = akind
        self.adata = adata
        self.sink = sink
        self.worker = None
        self.loop = loop  # set for asyncio futures

    def claim(self):
        """Called once, when a worker takes it: False if it was cancelled meanwhile."""
        if self.loop is None:
            return self.future.set_running_or_notify_cancel()
        return not self.future.done()

    def finish(self, ok, value):
        """Complete the future (in the sink's thread: the collector, or the event loop)."""
        fut = self.future
        if self.loop is None:
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
        elif not fut.done():
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

    def fail(self, exc):
        """Fail the future from any thread."""
        if self.loop is None:
            if not self.future.done():
                self.future.set_exception(exc)
        else:
            try:
                self.loop.call_soon_threadsafe(_set_exception_if_pending, self.future, exc)
            except RuntimeError:  # the loop is closed
                pass

    def cancel(self):
        if self.loop is None:
            self.future.cancel()
        else:
            try:
                self.loop.call_soon_threadsafe(self.future.cancel)
            except RuntimeError:
                pass


def _set_exception_if_pending(fut, exc):
    if not fut.done():
        fut.set_exception(exc)


class _Sink:
    """A results queue and the works whose replies go there."""

    def __init__(self):
        self.qid = _ll._queue_create(0, _QUEUE_UNBOUND, _PICKLE_FALLBACK)
        self.works = {}  # tid -> _Work

    def deliver(self, replies):
        """Complete the works of a batch of replies, in order: each pool's lock is taken once
        for the batch (taking it per reply made the collector and a submitting thread hand the
        GIL to each other for every task)."""
        done = []  # (work, status, payload)
        counts = {}  # pool -> [(worker, seconds)]
        for tid, status, payload, seconds in replies:
            if status == _w.DEAD:
                self._finish(done, counts)
                done, counts = [], {}
                self._worker_died(payload)
                continue
            work = self.works.pop(tid, None)
            if work is None:
                continue
            worker = work.worker
            pool = worker.pool()
            if pool is not None:
                counts.setdefault(pool, []).append((worker, seconds))
            else:
                worker.inflight -= 1
            done.append((work, status, payload))
        self._finish(done, counts)

    @staticmethod
    def _finish(done, counts):
        for pool, finished in counts.items():
            pool._tasks_done(finished)
        for work, status, payload in done:
            ok, value = _outcome(status, payload)
            work.finish(ok, value)

    def _worker_died(self, key):
        entry = _dead_workers.get(key)
        if entry is None:
            return
        worker, error = entry
        lost = [tid for tid, work in self.works.items() if work.worker is worker]
        for tid in lost:
            work = self.works.pop(tid)
            pool = worker.pool()
            if pool is not None:
                pool._tasks_done([(worker, 0.0)])
            work.finish(False, error)

    def close(self):
        qid, self.qid = self.qid, None
        if qid is not None:
            try:
                _ll._queue_release(qid)
            except Exception:
                pass


# key -> (worker, error) for workers whose interpreter failed (read by every sink).
_dead_workers: dict = {}
_dead_keys = itertools.count(1)


def _report_dead(worker, error, sinks):
    """Tell each results queue in ``sinks`` that ``worker``'s unanswered works failed with
    ``error`` (a DEAD marker each sink resolves against its own works)."""
    key = next(_dead_keys)
    _dead_workers[key] = (worker, error)
    for sink in sinks:
        if sink.qid is not None:
            try:
                _ll._queue_put(sink.qid, (0, _w.DEAD, key, 0.0), 0, False, None)
            except _interp.QueueError:
                pass  # closed meanwhile: nobody waits on it


class _Worker:
    """One interpreter and the OS thread serving it."""

    def __init__(self, pool, index):
        self.pool = weakref.ref(pool)
        self.index = index
        self.qid = _ll._queue_create(0, _QUEUE_UNBOUND, _PICKLE_FALLBACK)
        self.inflight = 0
        self.ready = False
        self.stopping = False
        self.sinks = set()
        self.thread = None


# -- the executor -------------------------------------------------------------------------------

_pools = weakref.WeakSet()
_global_shutdown = False
_global_lock = threading.Lock()


def _python_exit():
    global _global_shutdown
    with _global_lock:
        _global_shutdown = True
    for pool in list(_pools):
        pool.shutdown(wait=False)
    for pool in list(_pools):
        for thread in list(pool._threads):
            thread.join()


threading._register_atexit(_python_exit)


def _default_workers():
    count = os.process_cpu_count() if hasattr(os, "process_cpu_count") else os.cpu_count()
    return min(32, (count or 1) + 4)


class InterpreterPoolExecutor(_base.Executor):
    """An executor running calls in a pool of at most ``max_workers`` interpreters.

    ``max_workers`` defaults to ``min(32, cpu count + 4)``, as 3.14's pool does. Each worker
    interpreter is created when a call finds no idle worker and kept for the pool's life;
    ``initializer(*initargs)`` runs in each one first (a failure breaks the pool:
    :class:`BrokenInterpreterPool`). Worker threads are named ``thread_name_prefix`` + ``_N``.

    What crosses: a function that needs no state crosses as its code and runs in the worker's
    ``__main__``; other callables, the arguments and the result cross by pickle. A call that
    cannot cross fails with :class:`~subinterpreters.interpreters.NotShareableError`; one that
    raises fails with the original exception (unpickled), whose ``__cause__`` is an
    :class:`~subinterpreters.interpreters.ExecutionFailed` with the remote traceback.
    """

    BROKEN = BrokenInterpreterPool
    _counter = itertools.count().__next__

    def __init__(self, max_workers=None, thread_name_prefix="", initializer=None, initargs=()):
        if max_workers is None:
            max_workers = _default_workers()
        if max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._max_workers = max_workers
        self._thread_name_prefix = (
            thread_name_prefix or f"InterpreterPoolExecutor-{self._counter()}"
        )
        self._initializer = initializer
        self._initargs = initargs
        self._lock = threading.RLock()
        self._replied = threading.Condition(self._lock)  # a reply was delivered
        self._shutdown_lock = self._lock  # ThreadPoolExecutor's name, for code that peeks
        self._pending = collections.deque()
        self._workers = []
        self._threads = set()
        self._shutdown = False
        self._broken = False
        self._live = 0  # worker threads not yet finished
        self._seconds = 0.0  # moving average of a task's duration
        self._depth = _MIN_DEPTH
        self._sink = _Sink()
        self._collector = None
        _pools.add(self)

    # -- submitting ---------------------------------------------------------------------------

    def submit(self, fn, /, *args, **kwargs):
        """Schedule ``fn(*args, **kwargs)`` in a worker interpreter; return its Future."""
        future = _Future()
        try:
            fdata, akind, adata = _encode(fn, args, kwargs)
        except _interp.NotShareableError as exc:
            self._check_open()
            future.set_exception(exc)
            return future
        self._enqueue(_Work(future, fdata, akind, adata, self._sink))
        return future

    submit.__doc__ = _base.Executor.submit.__doc__

    async def call_async(self, fn, /, *args, **kwargs):
        """Await ``fn(*args, **kwargs)`` run in a worker (``subinterpreters.aio.call``): the
        reply wakes the event loop through a file descriptor, with no thread in between."""
        from subinterpreters import aio

        return await aio.call(self, fn, *args, **kwargs)

    def _check_open(self):
        if self._broken:
            raise self.BROKEN(self._broken)
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if _global_shutdown:
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    def _enqueue(self, work):
        with self._lock:
            self._check_open()
            if self._collector is None and work.loop is None:
                self._start_collector()
            grow = len(self._workers) < self._max_workers and not self._has_idle()
            self._pending.append(work)
            self._dispatch()
            if grow:
                self._adjust_workers()

    def _has_idle(self):
        return any(w.ready and w.inflight == 0 for w in self._workers)

    def _adjust_workers(self):
        worker = _Worker(self, len(self._workers))
        name = f"{self._thread_name_prefix or self}_{worker.index}"
        thread = threading.Thread(
            name=name, target=_worker_main, args=(worker, self._initializer, self._initargs)
        )
        worker.thread = thread
        self._workers.append(worker)
        self._threads.add(thread)
        self._live += 1
        thread.start()

    def _start_collector(self):
        thread = threading.Thread(
            name=f"{self._thread_name_prefix}_collector",
            target=_collect,
            args=(self._sink,),
            daemon=True,
        )
        self._collector = thread
        thread.start()

    def _dispatch(self):
        """Hand pending works to workers with room (lock held)."""
        pending = self._pending
        if not pending:
            return
        depth = self._depth
        put = _ll._queue_put
        workers = [w for w in self._workers if w.ready and not w.stopping]
        while pending and workers:
            best = min(workers, key=_inflight)
            if best.inflight >= depth:
                return
            work = pending.popleft()
            if not work.claim():
                continue
            tid = next(_tids)
            work.worker = best
            best.inflight += 1
            sink = work.sink
            sink.works[tid] = work
            best.sinks.add(sink)
            put(best.qid, (tid, sink.qid, work.fdata, work.akind, work.adata), 0, False, None)
        if not pending:
            self._maybe_stop()

    def _tasks_done(self, finished):
        """Account for finished tasks ((worker, seconds) pairs) and refill the workers."""
        with self._lock:
            avg = self._seconds
            stopping = False
            for worker, seconds in finished:
                worker.inflight -= 1
                stopping = stopping or worker.stopping
                avg = avg * 0.8 + seconds * 0.2
            self._seconds = avg
            if stopping:
                self._replied.notify_all()
            depth = _AHEAD_SECONDS / avg if avg > 0 else _MAX_DEPTH
            self._depth = int(max(_MIN_DEPTH, min(_MAX_DEPTH, depth)))
            if self._pending:
                self._dispatch()
            elif self._shutdown:
                self._maybe_stop()

    def _maybe_stop(self):
        """After shutdown, once nothing waits in the pool: tell the workers to stop."""
        if not self._shutdown or self._pending:
            return
        for w in self._workers:
            if not w.stopping:
                w.stopping = True
                _ll._queue_put(w.qid, None, 0, False, None)
        if self._live == 0:
            # No worker thread left to stop it when it finishes (none started, or all ended
            # already, e.g. after a failed initializer broke the pool before this shutdown).
            self._stop_collector()

    def _stop_collector(self):
        if self._sink.qid is None:
            return
        if self._collector is not None:
            _ll._queue_put(self._sink.qid, None, 0, False, None)
        else:
            self._sink.close()

    def _wait_replies_taken(self, worker, timeout=30.0):
        """Wait until every reply ``worker`` sent has been taken off its results queue (bounded:
        a sink whose event loop no longer runs never takes them). Destroying the worker's
        interpreter earlier would turn replies still queued into UNBOUND markers (its items are
        bound to it), losing results."""
        with self._lock:
            self._replied.wait_for(lambda: worker.inflight <= 0, timeout)

    def _worker_finished(self, worker):
        with self._lock:
            self._live -= 1
            if self._live == 0 and self._shutdown:
                self._stop_collector()

    def _break(self, reason):
        with self._lock:
            if self._broken:
                return
            self._broken = reason
            pending = list(self._pending)
            self._pending.clear()
            workers = list(self._workers)
        for work in pending:
            work.fail(self.BROKEN(reason))
        for w in workers:
            w.stopping = True
            _ll._queue_put(w.qid, None, 0, False, None)

    # -- map ----------------------------------------------------------------------------------

    def map(self, fn, *iterables, timeout=None, chunksize=1, buffersize=None):
        """Return an iterator equivalent to ``map(fn, *iterables)``, computed in the pool.

        ``chunksize`` > 1 sends that many calls per task (fewer, larger messages: faster for
        small calls). ``timeout`` bounds the wait for the whole iteration, from this call
        (``TimeoutError``); ``buffersize`` bounds how many tasks are submitted ahead of the
        consumer (None: all at once), as in 3.14.
        """
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        if buffersize is not None and not isinstance(buffersize, int):
            raise TypeError("buffersize must be an integer or None")
        if buffersize is not None and buffersize < 1:
            raise ValueError("buffersize must be None or > 0")
        if chunksize == 1:
            return self._map(fn, iterables, timeout, buffersize, None)
        fdata = _function_data(fn)
        chunks = _batched(zip(*iterables, strict=False), chunksize)
        results = self._map(None, (chunks,), timeout, buffersize, fdata)
        return itertools.chain.from_iterable(results)

    def _map(self, fn, iterables, timeout, buffersize, chunk_fdata):
        if timeout is not None:
            end_time = timeout + time.monotonic()
        zipped = zip(*iterables, strict=False)
        if chunk_fdata is None:

            def submit(args):
                return self.submit(fn, *args)
        else:

            def submit(args):
                return self._submit_chunk(chunk_fdata, args[0])

        if buffersize:
            fs = collections.deque(submit(args) for args in itertools.islice(zipped, buffersize))
        else:
            fs = collections.deque(submit(args) for args in zipped)
        pool_ref = weakref.ref(self)

        def result_iterator():
            try:
                fs.reverse()
                while fs:
                    if buffersize and pool_ref() is not None:
                        args = next(zipped, None)
                        if args is not None:
                            fs.appendleft(submit(args))
                    if timeout is None:
                        yield _result_or_cancel(fs.pop())
                    else:
                        yield _result_or_cancel(fs.pop(), end_time - time.monotonic())
            finally:
                for future in fs:
                    future.cancel()

        return result_iterator()

    def _submit_chunk(self, fdata, chunk):
        future = _Future()
        try:
            adata = _pickle().dumps(list(chunk), 5)
        except Exception as exc:
            self._check_open()
            err = _interp.NotShareableError("args not shareable")
            err.__cause__ = exc
            future.set_exception(err)
            return future
        self._enqueue(_Work(future, fdata, _w.ARGS_CHUNK, adata, self._sink))
        return future

    # -- shutdown -----------------------------------------------------------------------------

    def shutdown(self, wait=True, *, cancel_futures=False):
        """Stop accepting calls; let the queued ones finish (or cancel them), then end the
        workers and their interpreters. With ``wait``, return once all of that is done."""
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                pending = list(self._pending)
                self._pending.clear()
            else:
                pending = ()
            self._maybe_stop()
        for work in pending:
            work.cancel()
        if wait:
            for thread in list(self._threads):
                thread.join()
            collector = self._collector
            if collector is not None and collector is not threading.current_thread():
                collector.join()

    shutdown.__doc__ = _base.Executor.shutdown.__doc__

    def __del__(self):
        try:
            if not self._shutdown:
                self.shutdown(wait=False)
        except Exception:
            pass


def _inflight(worker):
    return worker.inflight


def _batched(iterable, n):
    it = iter(iterable)
    while batch := tuple(itertools.islice(it, n)):
        yield batch


def _result_or_cancel(fut, timeout=None):
    try:
        try:
            return fut.result(timeout)
        finally:
            fut.cancel()
    finally:
        del fut


# -- threads ------------------------------------------------------------------------------------


def _collect(sink):
    """The collector thread: completes the pool's futures from its results queue, taking
    whatever replies have arrived as one batch."""
    get = _ll._queue_get
    qid = sink.qid
    deliver = sink.deliver
    empty = _interp.QueueEmpty
    try:
        while True:
            batch = []
            item = get(qid, True, None)
            while True:
                reply, unbound = item
                if reply is not None:
                    batch.append(reply)
                elif unbound is None:  # the stop marker: deliver what came before it
                    deliver(batch)
                    return
                # else: a reply whose interpreter was destroyed first (not expected)
                if len(batch) >= _BATCH:
                    break
                try:
                    item = get(qid, False, None)
                except empty:
                    break
            deliver(batch)
    finally:
        sink.close()


def _boot(handle):
    # The main script's file: a pickle naming a __main__ function this interpreter lacks is
    # retried with that script run as "<fake __main__>", as 3.14 does.
    shared = {"mf": _interp._main_file()}
    if sys.version_info < (3, 12):
        path0 = _sys_path_0()
        if path0 is not None:
            _ll.run_string(handle, _PATH0, {"p": path0})
    _ll.run_string(handle, _BOOT, shared)


_BOOT = "__import__('subinterpreters._pool_worker', None, None, ['_']).MAIN_FILE = mf"
_PATH0 = "import sys\nif p not in sys.path: sys.path.insert(0, p)"


def _sys_path_0():
    """The entry CPython put first on the main interpreter's sys.path at startup (the script's
    directory, the current one for -m, '' for -c and stdin), None with -P/-I. CPython 3.12+
    give every new interpreter that entry too; 3.11 does not, so the pool adds it there, and
    modules of the script's directory (or of the current one, for ``python -m pytest``) are
    found by the workers on every version."""
    if sys.flags.safe_path or sys.flags.isolated:
        return None
    argv = getattr(sys, "orig_argv", None) or []
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-c") or arg == "-":
            return ""
        if arg.startswith("-m"):
            return os.getcwd()
        if arg in ("-W", "-X", "--check-hash-based-pycs"):
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        return os.path.dirname(os.path.realpath(arg))
    return ""


def _worker_main(worker, initializer, initargs):
    handle = None
    try:
        handle = _start_interpreter(worker, initializer, initargs)
        if handle is None:
            return
        while True:
            try:
                _ll.run_string(handle, _SERVE, {"tq": worker.qid})
                return  # told to stop
            except _ll.RunFailedError as exc:
                failure = exc
            # The interpreter is damaged: give its queued tasks back, fail the one it was
            # running, and carry on with a fresh interpreter.
            handle = _replace(worker, handle, failure, initializer, initargs)
            if handle is None:
                return
    finally:
        if handle is not None:
            pool = worker.pool()
            if pool is not None:
                pool._wait_replies_taken(worker)
            del pool
            try:
                _ll.destroy(handle)
            except Exception:
                pass
        try:
            _ll._queue_release(worker.qid)
        except Exception:
            pass
        pool = worker.pool()
        if pool is not None:
            pool._worker_finished(worker)


def _start_interpreter(worker, initializer, initargs):
    """Create and boot the worker's interpreter and run the initializer; None if the pool broke
    or went away."""
    pool = worker.pool()
    if pool is None:
        return None
    try:
        handle = _ll.create()
        _boot(handle)
    except BaseException as exc:  # noqa: B036 - the pool must hear of it
        _base.LOGGER.critical("Exception creating a worker interpreter:", exc_info=exc)
        pool._break(f"creating a worker interpreter failed: {exc}")
        return None
    if initializer is not None:
        error = _run_initializer(handle, initializer, initargs)
        if error is not None:
            _base.LOGGER.critical("Exception in initializer:", exc_info=error)
            pool._break(_BROKEN_MESSAGE)
            _ll.destroy(handle)
            return None
    with pool._lock:
        worker.ready = True
        pool._dispatch()
        if pool._shutdown:
            pool._maybe_stop()
    return handle


def _run_initializer(handle, initializer, initargs):
    """Run the initializer in the interpreter; the exception it failed with, or None."""
    try:
        fdata, akind, adata = _encode(initializer, tuple(initargs), {})
    except BaseException as exc:  # noqa: B036
        return exc
    qid = _ll._queue_create(0, _QUEUE_UNBOUND, _PICKLE_FALLBACK)
    try:
        _ll._queue_put(qid, (0, qid, fdata, akind, adata), 0, False, None)
        try:
            _ll.run_string(handle, _SERVE_ONE, {"tq": qid})
        except _ll.RunFailedError as exc:
            return _interp.ExecutionFailed(_interp._excinfo_from_run_failed(exc))
        _tid, status, payload, _seconds = _ll._queue_get(qid, False, None)[0]
        ok, value = _outcome(status, payload)
        return None if ok else value
    finally:
        _ll._queue_release(qid)


def _replace(worker, handle, failure, initializer, initargs):
    pool = worker.pool()
    error = _interp.ExecutionFailed(_interp._excinfo_from_run_failed(failure))
    stop = False
    if pool is not None:
        with pool._lock:
            worker.ready = False
            requeue = []
            while True:
                try:
                    task = _ll._queue_get(worker.qid, False, None)[0]
                except _interp.QueueEmpty:
                    break
                if task is None:
                    stop = True
                    continue
                tid, rq = task[0], task[1]
                for sink in worker.sinks:
                    if sink.qid == rq:
                        work = sink.works.pop(tid, None)
                        if work is not None:
                            worker.inflight -= 1
                            work.worker = None
                            requeue.append(work)
            # Works given back were claimed already: put them first, marked as such.
            for work in reversed(requeue):
                pool._pending.appendleft(_Reclaimed(work))
        _report_dead(worker, error, list(worker.sinks))
    try:
        _ll.destroy(handle)
    except Exception:
        pass
    if stop or pool is None:
        if stop:
            _ll._queue_put(worker.qid, None, 0, False, None)
        return None
    del pool
    return _start_interpreter(worker, initializer, initargs)


class _Reclaimed(_Work):
    """A work given back by a damaged worker: already claimed, so never refused."""

    __slots__ = ()

    def __init__(self, work):
        for name in _Work.__slots__:
            setattr(self, name, getattr(work, name))

    def claim(self):
        return True
