"""``InterpreterPoolExecutor``: a :class:`concurrent.futures.Executor` running each call in one
of a few warm interpreters of this process (in parallel on CPython 3.12+, each has its own GIL).

It has CPython 3.14's ``concurrent.futures.InterpreterPoolExecutor`` signature and behaviour on
CPython 3.11 to 3.15::

    from subinterpreters.futures import InterpreterPoolExecutor

    with InterpreterPoolExecutor(max_workers=4) as pool:
        print(list(pool.map(pow, range(10), range(10), chunksize=4)))

How it works (see ``_pool_worker`` for the other half): each worker is one interpreter, created
when a call finds no idle worker and reused, and one OS thread that enters it once and stays
there. The submitting thread encodes a task with the call protocol (``_protocol``) and puts it
on the pool's one task queue (a Rust queue), which every idle worker waits on: a task goes to
the first worker free to start it, never behind a busy one. The worker puts the reply on a
results queue that one collector thread of the pool reads (or, for ``await
pool.call_async(...)``, on the event loop's own results queue, which wakes the loop through a
file descriptor). No thread of the main interpreter sits between a task and its interpreter.

Cancellation is exact, as in ``concurrent.futures``: each task carries a claim that the worker
takes before it starts the call. ``Future.cancel()`` and ``shutdown(cancel_futures=True)`` take
the claims of calls still queued (those are then skipped), and fail only for calls a worker has
started. A pool that has stopped leaves no future pending.

Stopping calls that run (ours; ``concurrent.futures`` cannot): ``shutdown(interrupt=True)``, a
cancelled ``await pool.call_async(...)`` and Ctrl-C while the pool is waited for interrupt them
through their claim (``lowlevel._claim_interrupt``), which strikes that call and nothing else:
not the worker's loop, not the call it makes next. An interrupted call fails with
:class:`TaskInterrupted`; its worker goes on serving.
"""

import collections
import itertools
import threading
import time
import weakref
from concurrent.futures import _base
from concurrent.futures.thread import BrokenThreadPool

from subinterpreters import _compat, _errors
from subinterpreters import _protocol as _p
from subinterpreters import _results as _r
from subinterpreters import lowlevel as _ll
from subinterpreters._interrupted import TaskInterrupted

__all__ = ["InterpreterPoolExecutor", "BrokenInterpreterPool", "TaskInterrupted"]

_BrokenStdlib = None
if _compat.PY314:
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

# The script each worker thread runs in its interpreter (compiled once there, then cached).
_SERVE = "__import__('subinterpreters._pool_worker', None, None, ['_']).serve(tq, holder)"

# At most this many replies are delivered per batch by the collector.
_BATCH = 256


def _encode(fn, args, kwargs):
    """(fdata, akind, adata) for a pool call; NotShareableError if it cannot cross."""
    fdata = _p.function_data(fn, by_reference=True)
    try:
        akind, adata = _p.encode_args(args, kwargs)
    except _errors.NotShareableError as exc:
        raise _errors.NotShareableError("args not shareable") from exc
    return fdata, akind, adata


def submit_for_loop(pool, loop, sink, fn, args, kwargs):
    """Queue ``fn(*args, **kwargs)`` in ``pool`` for an event loop: its reply goes to ``sink``
    (that loop's results queue). Returns the asyncio future (``call_async``)."""
    fdata, akind, adata = _encode(fn, args, kwargs)
    fut = loop.create_future()
    pool._enqueue(fut, sink, loop, fdata, akind, adata)
    return fut


# -- the executor -------------------------------------------------------------------------------

_pools = weakref.WeakSet()
_global_shutdown = False
_global_lock = threading.Lock()


def _python_exit():
    """At exit: stop every pool and wait for the calls already queued or running, as
    ``concurrent.futures`` does. Ctrl-C meanwhile interrupts the running calls and cancels the
    queued ones (a runaway call would keep the process from exiting), then the wait goes on."""
    global _global_shutdown
    with _global_lock:
        _global_shutdown = True
    stop = False
    while True:
        try:
            for pool in list(_pools):
                pool.shutdown(wait=False, cancel_futures=stop, interrupt=stop)
            for pool in list(_pools):
                pool._join()
            return
        except KeyboardInterrupt:
            stop = True


threading._register_atexit(_python_exit)


class _Crew:
    """What a pool shares with its threads, so that the last worker out ends the collector
    and settles what is left even after the pool object itself was collected."""

    def __init__(self, lock, sink, forward):
        self.lock = lock
        self.sink = sink
        self.forward = forward  # the workers forward their output (see interpreters._output)
        self.tq = _p.new_reply_queue()
        self.live = 0  # worker threads not yet finished
        self.collector = False  # a collector thread was started
        self.swept = False

    def worker_finished(self, pool):
        with self.lock:
            self.live -= 1
            if self.live == 0 and (pool is None or pool._shutdown or pool._broken):
                self.stopped(None if pool is None else pool._works)

    def stopped(self, works):
        """Every worker has ended (lock held): settle what is left, once the collector has
        delivered every reply put before now."""
        if self.collector:
            if self.sink.qid is not None and not self.swept:
                _ll._queue_put(self.sink.qid, None, 0, False, None)
        else:
            self.sweep(works)

    def sweep(self, works):
        """No worker will take another task: cancel every call still queued; fail any a worker
        claimed and never answered (its interpreter was lost); drop the task queue. ``works``
        is the pool's (None if it is gone: then its own sink's)."""
        with self.lock:
            if self.swept:
                return
            self.swept = True
            left = list((works if works is not None else self.sink.works).values())
            tq, self.tq = self.tq, None
        lost = _errors.InterpreterError("the pool's worker ended without answering")
        for work in left:
            if work.withdraw():
                work.cancel()
            elif work.loop is None:
                work.fail(lost)
        if tq is not None:
            try:
                _ll._queue_release(tq)
            except Exception:
                pass


def _default_workers():
    return min(32, (_compat.process_cpu_count() or 1) + 4)


class InterpreterPoolExecutor(_base.Executor):
    """An executor running calls in a pool of at most ``max_workers`` interpreters.

    ``max_workers`` defaults to ``min(32, cpu count + 4)``, as 3.14's pool does. Each worker
    interpreter is created when a call finds no idle worker and kept for the pool's life;
    ``initializer(*initargs)`` runs in each one first (a failure breaks the pool:
    :class:`BrokenInterpreterPool`). Worker threads are named ``thread_name_prefix`` + ``_N``.

    What crosses: a function that needs no state crosses as its code and runs in the worker's
    ``__main__``; other callables by pickle; arguments and results that are None, bool, int,
    float, str or bytes cross as they are (a large ``bytes`` is copied once, by its receiver),
    others by pickle. A call that cannot cross fails with
    :class:`~subinterpreters.interpreters.NotShareableError`; one that raises fails with the
    original exception (unpickled), whose ``__cause__`` is an
    :class:`~subinterpreters.interpreters.ExecutionFailed` with the remote traceback.

    With ``forward_output=True`` (a pool made in the main interpreter) what the workers write
    to ``sys.stdout``/``sys.stderr`` goes to the main interpreter's ``sys.stdout``/
    ``sys.stderr`` as they are at the time (``contextlib.redirect_stdout``, pytest's
    ``capsys``, a Jupyter cell), as ``interpreters.create(forward_output=True)`` does;
    everything a call printed is written before its future completes.
    """

    BROKEN = BrokenInterpreterPool
    _counter = itertools.count().__next__

    def __init__(
        self,
        max_workers=None,
        thread_name_prefix="",
        initializer=None,
        initargs=(),
        *,
        forward_output=False,
    ):
        _p.refuse_while_rerunning_main()
        if max_workers is None:
            max_workers = _default_workers()
        if max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if forward_output and int(_ll.get_current()) != int(_ll.get_main()):
            raise _errors.InterpreterError(
                "forward_output=True needs the pool made in the main interpreter"
            )
        self._max_workers = max_workers
        self._thread_name_prefix = (
            thread_name_prefix or f"InterpreterPoolExecutor-{self._counter()}"
        )
        self._initializer = initializer
        self._initargs = initargs
        self._lock = threading.RLock()
        self._shutdown_lock = self._lock  # ThreadPoolExecutor's name, for code that peeks
        self._sink = _r.Sink()
        self._crew = _Crew(self._lock, self._sink, bool(forward_output))
        self._tq = self._crew.tq  # the task queue every idle worker waits on
        self._works = {}  # tid -> Work not settled yet (queued or running)
        self._workers = 0  # worker threads started
        self._threads = set()
        self._stops = 0  # stop markers put on the task queue
        self._shutdown = False
        self._broken = False
        self._collector = None
        _pools.add(self)

    # -- submitting ---------------------------------------------------------------------------

    def submit(self, fn, /, *args, **kwargs):
        """Schedule ``fn(*args, **kwargs)`` in a worker interpreter; return its Future."""
        future = _r.Future()
        try:
            fdata, akind, adata = _encode(fn, args, kwargs)
        except _errors.NotShareableError as exc:
            self._check_open()
            future.set_exception(exc)
            return future
        self._enqueue(future, self._sink, None, fdata, akind, adata)
        return future

    submit.__doc__ = _base.Executor.submit.__doc__

    async def call_async(self, fn, /, *args, **kwargs):
        """Await ``fn(*args, **kwargs)`` run in a worker (``subinterpreters.aio.call``): the
        reply wakes the event loop through a file descriptor, with no thread in between.
        Cancelling the awaiting coroutine interrupts the call if it runs (see ``shutdown``);
        the worker then serves the next call as usual."""
        # Loaded here, not with this module (they load asyncio). This form of import stays in
        # C once the module is loaded (a `from` import runs importlib's Python code).
        import asyncio

        import subinterpreters._async as _async

        loop = asyncio.get_running_loop()
        sink = _async.sink_for(loop)
        fut = submit_for_loop(self, loop, sink, fn, args, kwargs)
        if not self._crew.forward:
            return await _async.reply(loop, sink, fut)
        from subinterpreters.interpreters import _output

        try:
            return await _async.reply(loop, sink, fut)
        finally:
            _output.deliver()  # what the call printed, before it returns

    def _check_open(self):
        if self._broken:
            raise self.BROKEN(self._broken)
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if _global_shutdown:
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    def _enqueue(self, future, sink, loop, fdata, akind, adata):
        with self._lock:
            self._check_open()
            if loop is None and self._collector is None:
                self._start_collector()
            work = _r.Work(future, sink, loop=loop, owner=self, claim=_ll._claim_open())
            self._works[work.tid] = work
            try:
                _ll._queue_put(self._tq, work.task(fdata, akind, adata), 0, False, None)
            except BaseException:
                work.withdraw()
                raise
            # One worker per unsettled call, up to the maximum: a call never waits for a
            # worker to finish another while the pool could start one for it.
            if self._workers < self._max_workers and len(self._works) > self._workers:
                self._add_worker()

    def _settled(self, work):
        """A work is answered or withdrawn (any thread; a dict pop is atomic)."""
        self._works.pop(work.tid, None)

    def _add_worker(self):
        index = self._workers
        name = f"{self._thread_name_prefix or self}_{index}"
        thread = threading.Thread(
            name=name,
            target=_worker_main,
            args=(weakref.ref(self), self._crew, self._initializer, self._initargs),
        )
        self._workers += 1
        self._threads.add(thread)
        self._crew.live += 1
        thread.start()

    def _start_collector(self):
        # Not a daemon: a pool works inside an interpreter, which allows no daemon threads
        # (3.12+); the collector ends once every worker has (see _Crew.stopped).
        thread = threading.Thread(
            name=f"{self._thread_name_prefix}_collector",
            target=_collect,
            args=(self._sink, self._crew, weakref.ref(self)),
        )
        self._collector = thread
        self._crew.collector = True
        thread.start()

    @property
    def _live(self):
        return self._crew.live

    def _stop_workers(self):
        """Put a stop marker for each worker not yet told (lock held): each worker takes one,
        after the tasks queued before it."""
        while self._stops < self._workers:
            _ll._queue_put(self._tq, None, 0, False, None)
            self._stops += 1  # after: an interrupted put is made again, never missed
        if self._crew.live == 0:
            self._crew.stopped(self._works)

    def _break(self, reason):
        with self._lock:
            if self._broken:
                return
            self._broken = reason
            works = list(self._works.values())
            self._stop_workers()
        for work in works:
            if work.withdraw():
                work.fail(self.BROKEN(reason))

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
        fdata = _p.function_data(fn, by_reference=True)
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
        future = _r.Future()
        try:
            akind, adata = _p.encode_chunk(chunk)
        except Exception as exc:
            self._check_open()
            err = _errors.NotShareableError("args not shareable")
            err.__cause__ = exc
            future.set_exception(err)
            return future
        self._enqueue(future, self._sink, None, fdata, akind, adata)
        return future

    # -- shutdown -----------------------------------------------------------------------------

    def shutdown(self, wait=True, *, cancel_futures=False, interrupt=False):
        """Stop accepting calls, end the workers and close their interpreters once the calls
        queued so far are done.

        ``cancel_futures``: cancel the calls no worker has started. ``interrupt``: interrupt
        the calls running now (a ``KeyboardInterrupt`` raised in them, in their interpreter);
        their futures fail with :class:`TaskInterrupted`. Python code stops at once (on 3.11
        at the next switch of the shared GIL); a call blocked in C (``time.sleep``, a lock)
        stops when that returns. ``wait``: return once the workers have ended. Ctrl-C during
        that wait interrupts the running calls and cancels the queued ones, then raises.
        """
        withdrawn = []
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                # Every call no worker has started, wherever it waits, never runs.
                withdrawn = [w for w in list(self._works.values()) if w.withdraw()]
            self._stop_workers()
            running = list(self._works.values()) if interrupt else ()
        for work in withdrawn:
            work.cancel()
        for work in running:
            work.interrupt()  # nothing for those still queued, or answered meanwhile
        if wait:
            try:
                self._join()
            except KeyboardInterrupt:
                self.shutdown(wait=False, cancel_futures=True, interrupt=True)
                raise

    def _join(self):
        """Wait for the workers and the collector to end."""
        for thread in list(self._threads):
            thread.join()
        collector = self._collector
        if collector is not None and collector is not threading.current_thread():
            collector.join()

    def __del__(self):
        try:
            if not self._shutdown:
                self.shutdown(wait=False)
        except Exception:
            pass


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


def _collect(sink, crew, pool_ref):
    """The collector thread: completes the pool's futures from its results queue, taking
    whatever replies have arrived as one batch, until the stop marker; then settles what is
    left (see ``_sweep``)."""
    get = _ll._queue_get
    qid = sink.qid
    deliver = sink.deliver
    if crew.forward:
        from subinterpreters.interpreters import _output

        def deliver(batch, _replies=deliver, _output=_output.deliver):
            _output()  # what the calls printed (queued before their replies), first
            _replies(batch)

    try:
        while True:
            batch = []
            item = get(qid, True, None)
            stop = False
            while True:
                reply, unbound = item
                if reply is not None:
                    batch.append(reply)
                elif unbound is None:  # the stop marker: deliver what came before it
                    stop = True
                    break
                # else: a reply whose interpreter was destroyed first (not expected)
                if len(batch) >= _BATCH:
                    break
                try:
                    item = get(qid, False, None)
                except RuntimeError:  # QueueEmpty
                    break
            deliver(batch)
            del batch, item
            if stop:
                return
    finally:
        pool = pool_ref()
        crew.sweep(None if pool is None else pool._works)
        del pool
        sink.close()


def _boot(handle, forward):
    # The main script's file: a pickle naming a __main__ function this interpreter lacks is
    # retried with that script run as "<fake __main__>", as 3.14 does.
    shared = {"mf": _p.main_file()}
    _compat.give_sys_path_0(handle)
    if forward:
        from subinterpreters.interpreters import _output

        _output.set_up(handle)
        _output.track_id(int(handle))
    _ll.run_string(handle, _BOOT, shared)


_BOOT = "__import__('subinterpreters._pool_worker', None, None, ['_']).MAIN_FILE = mf"


def _worker_main(pool_ref, crew, initializer, initargs):
    handle = None
    # This thread's number as the holder of the claims it takes (unique among live threads):
    # the call it started and never answered is found by it (see _pool_worker).
    holder = threading.get_ident()
    try:
        handle = _start_interpreter(pool_ref, initializer, initargs)
        while handle is not None:
            failure = None
            try:
                _ll.run_string(handle, _SERVE, {"tq": crew.tq, "holder": holder})
            except _ll.RunFailedError as exc:
                failure = exc
            except BaseException as exc:  # noqa: B036 - the interpreter could not run serve
                _fail_held(holder, pool_ref, exc)
                _break_pool(pool_ref, f"a worker interpreter failed: {exc!r}")
                return
            if failure is None:
                return  # told to stop
            # The interpreter is damaged: fail the call it had started (if its reply was not
            # put), then carry on with a fresh interpreter.
            info = _errors.excinfo_from_run_failed(failure)
            _fail_held(holder, pool_ref, _errors.ExecutionFailed(info))
            _base.LOGGER.warning(
                "a pool worker's interpreter failed; replacing it: %s", info.formatted
            )
            _retire(handle, crew.forward)
            handle = None
            handle = _start_interpreter(pool_ref, initializer, initargs)
    finally:
        _ll._claim_release(holder)
        if handle is not None:
            _retire(handle, crew.forward)
        crew.worker_finished(pool_ref())


def _fail_held(holder, pool_ref, cause):
    """Fail, at once, the call the worker ``holder`` had started and not answered, if any."""
    claim = _ll._claim_release(holder)
    if not claim:
        return
    work = _r.work_of_claim(claim)
    if work is None:
        return
    pool = pool_ref()
    broken = (BrokenInterpreterPool if pool is None else pool.BROKEN)(
        f"the worker interpreter running this call failed before it answered: {cause}"
    )
    broken.__cause__ = cause
    work.fail(broken)


def _break_pool(pool_ref, reason):
    pool = pool_ref()
    if pool is not None:
        pool._break(reason)


def _retire(handle, forward):
    """Destroy a worker's interpreter, its replies and output still queued taken off first
    (they would turn into UNBOUND markers, being items of that interpreter)."""
    _r.rescue_replies()
    if forward:
        from subinterpreters.interpreters import _output

        _output.deliver()
    try:
        _ll.destroy(handle)
    except Exception:
        pass
    if forward:
        _output.forget(int(handle))


def _start_interpreter(pool_ref, initializer, initargs):
    """Create and boot a worker's interpreter and run the initializer; None if the pool broke
    or went away."""
    pool = pool_ref()
    if pool is None:
        return None
    forward = pool._crew.forward
    handle = None
    try:
        handle = _ll.create()
        _boot(handle, forward)
    except BaseException as exc:  # noqa: B036 - the pool must hear of it
        _base.LOGGER.critical("Exception creating a worker interpreter:", exc_info=exc)
        pool._break(f"creating a worker interpreter failed: {exc}")
        if handle is not None:
            _retire(handle, forward)
        return None
    if initializer is not None:
        error = _run_initializer(handle, initializer, initargs)
        if error is not None:
            _base.LOGGER.critical("Exception in initializer:", exc_info=error)
            pool._break(_BROKEN_MESSAGE)
            _retire(handle, forward)
            return None
    return handle


def _run_initializer(handle, initializer, initargs):
    """Run the initializer in the interpreter; the exception it failed with, or None."""
    try:
        fdata, akind, adata = _encode(initializer, tuple(initargs), {})
        status, payload = _p.call_in(handle, fdata, akind, adata, _p.main_file())
    except _ll.RunFailedError as exc:
        return _errors.ExecutionFailed(_errors.excinfo_from_run_failed(exc))
    except BaseException as exc:  # noqa: B036
        return exc
    ok, value = _p.decode(status, payload, True)
    return None if ok else value
