"""subinterpreters.futures.InterpreterPoolExecutor: 3.14's InterpreterPoolExecutor behaviour
(Lib/test/test_concurrent_futures/test_interpreter_pool.py and the executor tests it inherits)
on every version."""

from __future__ import annotations

import _thread
import gc
import logging
import sys
import threading
import weakref
from concurrent.futures import CancelledError, Executor, as_completed, wait
from concurrent.futures import TimeoutError as FuturesTimeout

import pytest
import task_funcs
from conftest import assert_clean_exit, run_python
from task_funcs import (
    CustomError,
    PickleShenanigans,
    current_id,
    damage_worker,
    fail,
    get_name,
    get_or_return,
    ident,
    init_state,
    kill_worker,
    make_box,
    mul,
    nested_pool,
    raise_local,
    read_state,
    record,
    rendezvous,
    signal_and_wait,
    size_and_echo,
    sleep_and_return,
    thread_name,
)

futures = pytest.importorskip("subinterpreters.futures")
interpreters = pytest.importorskip("subinterpreters.interpreters")
lowlevel = pytest.importorskip("subinterpreters.lowlevel")

Pool = futures.InterpreterPoolExecutor
pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module", autouse=True)
def _join_helper_threads(no_pool_threads_left):
    yield


@pytest.fixture
def pool():
    with Pool(2) as p:
        yield p


# -- basics -------------------------------------------------------------------------------------


def test_is_an_executor_and_not_named_like_a_thread_pool():
    from concurrent.futures import ThreadPoolExecutor

    assert issubclass(Pool, Executor)
    assert not issubclass(Pool, ThreadPoolExecutor)
    assert "ThreadPoolExecutor" not in Pool.__name__
    assert "ThreadPoolExecutor" not in str(Pool)


def test_submit_runs_in_another_interpreter(pool):
    assert pool.submit(mul, 6, 7).result() == 42
    assert pool.submit(current_id).result() != 0
    assert pool.submit(mul, "ab", 2).result() == "abab"
    assert pool.submit(ident, [1, {2: 3}]).result() == [1, {2: 3}]
    assert pool.submit(ident, 2**100).result() == 2**100
    assert pool.submit(sorted, [3, 1, 2], reverse=True).result() == [3, 2, 1]


def test_lambda_and_stateless_functions_cross_as_code(pool):
    assert pool.submit(lambda: 5).result() == 5
    assert pool.submit(lambda x, y: x + y, 1, y=1).result() == 2


def test_function_with_globals_crosses_by_reference(pool):
    assert pool.submit(get_name).result() == "task_funcs"


def test_interpreters_are_reused():
    with Pool(1) as p:
        ids = {p.submit(current_id).result() for _ in range(20)}
        assert len(ids) == 1
        assert len(p._threads) == 1


def test_idle_worker_is_reused_rather_than_a_new_one_made():
    with Pool() as p:
        for _ in range(3):
            p.submit(mul, 2, 3).result()
        assert len(p._threads) == 1


def test_saturation_creates_max_workers():
    blocker = interpreters.create_queue()
    p = Pool(4)
    for _ in range(15 * 4):
        p.submit(blocker.get)
    assert len(p._threads) == 4
    for _ in range(15 * 4):
        blocker.put_nowait(None)
    p.shutdown(wait=True)


def test_blocking_tasks_with_limited_workers():
    ready = interpreters.create_queue()
    blocker = interpreters.create_queue()

    def run(taskid, ready, blocker):
        ready.put_nowait(taskid)
        blocker.get()

    with Pool(4) as p:
        fs = [p.submit(run, i, ready, blocker) for i in range(10)]
        pending = 10
        while pending:
            done = 0
            for _ in range(pending):
                try:
                    ready.get(timeout=1)
                except interpreters.QueueEmpty:
                    pass
                else:
                    done += 1
            pending -= done
            for _ in range(done):
                blocker.put_nowait(None)
    assert all(f.done() for f in fs)


def test_runs_in_parallel():
    from subinterpreters import interpreters

    qa, qb = interpreters.create_queue(), interpreters.create_queue()
    with Pool(2) as p:
        [f.result() for f in [p.submit(sleep_and_return, 0.05, i) for i in range(2)]]  # warm
        fa, fb = p.submit(rendezvous, qa, qb), p.submit(rendezvous, qb, qa)
        assert (fa.result(timeout=120), fb.result(timeout=120)) == (1, 1)


def test_thread_name_prefix():
    with Pool(1, thread_name_prefix="spam") as p:
        assert p.submit(current_id).result()
        assert [t.name for t in p._threads] == ["spam_0"]
    with Pool(1) as p:
        assert p._thread_name_prefix.startswith("InterpreterPoolExecutor-")


@pytest.mark.skipif(not hasattr(_thread, "_get_name"), reason="no _thread._get_name (< 3.14)")
def test_os_thread_name_seen_inside_the_interpreter():
    with Pool(1) as p:
        assert p.submit(thread_name).result().startswith("InterpreterPoolExecutor-"[:15])


def test_works_from_many_threads(pool):
    results = []

    def client(n):
        results.append(sum(pool.submit(mul, i, n).result() for i in range(50)))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted(sum(i * n for i in range(50)) for n in range(8))


def test_as_completed_and_wait(pool):
    fs = [pool.submit(sleep_and_return, 0.01 * (5 - i), i) for i in range(5)]
    assert sorted(f.result() for f in as_completed(fs, timeout=10)) == list(range(5))
    done, not_done = wait(fs, timeout=10)
    assert len(done) == 5 and not not_done


def test_future_callbacks_run(pool):
    got = []
    event = threading.Event()

    def cb(f):
        got.append(f.result())
        event.set()

    pool.submit(mul, 3, 3).add_done_callback(cb)
    assert event.wait(10)
    assert got == [9]


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, -1])
def test_max_workers_must_be_positive(n):
    with pytest.raises(ValueError, match="max_workers must be greater than 0"):
        Pool(n)


def test_initializer_must_be_callable():
    with pytest.raises(TypeError, match="initializer must be a callable"):
        Pool(initializer=5)


def test_closure_task_is_not_shareable(pool):
    spam = True

    def task():
        return spam

    fut = pool.submit(task)
    with pytest.raises(interpreters.NotShareableError):
        fut.result()


def test_local_class_and_bound_method_are_not_shareable(pool):
    class Spam:
        def run(self):
            return True

    with pytest.raises(interpreters.NotShareableError):
        pool.submit(Spam).result()
    with pytest.raises(interpreters.NotShareableError):
        pool.submit(Spam().run).result()


def test_unpicklable_argument_is_not_shareable(pool):
    fut = pool.submit(ident, threading.Lock())
    with pytest.raises(interpreters.NotShareableError, match="args not shareable"):
        fut.result()


def test_unpicklable_result_is_not_shareable(pool):
    def make_lock():
        import threading

        return threading.Lock()

    with pytest.raises(interpreters.NotShareableError):
        pool.submit(make_lock).result()


def test_pickle_errors_propagate(pool):
    fut = pool.submit(PickleShenanigans(0))
    with pytest.raises(interpreters.NotShareableError, match="args not shareable") as info:
        fut.result()
    assert "unpickled" in str(info.value.__cause__)


def test_not_callable_raises_type_error_remotely(pool):
    with pytest.raises(TypeError, match="not callable"):
        pool.submit(5).result()


# -- exceptions ---------------------------------------------------------------------------------


def test_exception_keeps_type_and_cause(pool):
    fut = pool.submit(fail, ValueError, "spam")
    with pytest.raises(ValueError, match="spam") as info:
        fut.result()
    assert type(info.value) is ValueError
    cause = info.value.__cause__
    assert type(cause) is interpreters.ExecutionFailed
    assert cause.excinfo.type.__name__ == "ValueError"
    assert cause.excinfo.msg == "spam"
    assert "Uncaught in the interpreter" in str(cause)
    assert "in fail" in cause.excinfo.errdisplay


def test_custom_exception_class(pool):
    with pytest.raises(CustomError, match="x") as info:
        pool.submit(fail, CustomError, "x").result()
    assert info.value.__cause__.excinfo.type.__qualname__ == "CustomError"


def test_base_exceptions_do_not_kill_the_worker():
    with Pool(1) as p:
        before = p.submit(current_id).result()
        with pytest.raises(SystemExit):
            p.submit(fail, SystemExit, 3).result()
        with pytest.raises(KeyboardInterrupt):
            p.submit(fail, KeyboardInterrupt).result()
        assert p.submit(current_id).result() == before


def test_unpicklable_exception_gives_execution_failed(pool):
    # A module-level function (it crosses by reference: its class body reads the global
    # __name__, so it is not stateless) raising an exception of a class that cannot be pickled.
    with pytest.raises(interpreters.ExecutionFailed, match="inner"):
        pool.submit(raise_local).result()


# -- initializer --------------------------------------------------------------------------------


def test_initializer_runs_in_each_worker():
    with Pool(2, initializer=init_state, initargs=("initialized",)) as p:
        assert p.submit(read_state).result() == "initialized"
    assert task_funcs.INIT_STATE == "uninitialized"


def broken_pool():
    """A pool its initializer broke, as its first task found out."""
    p = Pool(2, initializer=fail, initargs=(Exception, "spam"))
    fut = p.submit(mul, 1, 2)
    with pytest.raises(futures.BrokenInterpreterPool):
        fut.result(timeout=30)
    return p


def test_failing_initializer_breaks_the_pool(caplog):
    with caplog.at_level(logging.CRITICAL, logger="concurrent.futures"):
        p = broken_pool()
        with pytest.raises(futures.BrokenInterpreterPool):
            p.submit(mul, 1, 2)
        p.shutdown(wait=True)
    text = caplog.text
    assert "Exception in initializer" in text
    assert "ExecutionFailed: Exception: spam" in text
    assert "Uncaught in the interpreter:" in text


def test_shutdown_after_the_broken_pools_workers_ended_returns(caplog):
    # The workers of a pool broken by its initializer may all have ended before shutdown() is
    # called; shutdown must still stop the collector (it used to wait for it forever).
    with caplog.at_level(logging.CRITICAL, logger="concurrent.futures"):
        p = broken_pool()
        for thread in list(p._threads):
            thread.join(30)
        assert p._live == 0
        p.shutdown(wait=True)
        assert not p._collector.is_alive()


def test_unshareable_initializer_breaks_the_pool(caplog):
    count = 0

    def init():
        assert count == 0

    with caplog.at_level(logging.CRITICAL, logger="concurrent.futures"):
        with Pool(initializer=init) as p:
            fut = p.submit(lambda: None)
    assert "NotShareableError" in caplog.text
    with pytest.raises(futures.BrokenInterpreterPool):
        fut.result()


def test_broken_pool_is_a_broken_thread_pool():
    from concurrent.futures.thread import BrokenThreadPool

    assert issubclass(futures.BrokenInterpreterPool, BrokenThreadPool)


# -- map ----------------------------------------------------------------------------------------


def test_map(pool):
    assert list(pool.map(mul, range(10), range(10))) == [i * i for i in range(10)]
    assert list(pool.map(mul, [], [])) == []


@pytest.mark.parametrize("chunksize", [1, 2, 3, 7, 100])
def test_map_chunksize(pool, chunksize):
    assert list(pool.map(mul, range(20), range(20), chunksize=chunksize)) == [
        i * i for i in range(20)
    ]


def test_map_chunksize_with_lambda(pool):
    assert list(pool.map(lambda x: x + 1, range(10), chunksize=4)) == list(range(1, 11))


def test_map_bad_chunksize(pool):
    with pytest.raises(ValueError):
        pool.map(mul, [1], [2], chunksize=0)


def test_map_buffersize(pool):
    assert list(pool.map(ident, range(30), buffersize=3)) == list(range(30))
    with pytest.raises(ValueError):
        pool.map(ident, [1], buffersize=0)
    with pytest.raises(TypeError):
        pool.map(ident, [1], buffersize=1.5)


def test_map_exception(pool):
    it = pool.map(fail, [ValueError, KeyError], ["a", "b"])
    with pytest.raises(ValueError):
        next(it)


def test_map_exception_in_chunk(pool):
    it = pool.map(lambda x: 1 // x, [1, 0, 2], chunksize=3)
    with pytest.raises(ZeroDivisionError):
        list(it)


def test_map_timeout(pool):
    # The third call blocks until released (no sleep racing the deadline); the first two have
    # the whole timeout, generous for a busy machine, to finish.
    list(pool.map(sleep_and_return, [0.05, 0.05], [0, 0]))  # both workers made
    blocker = interpreters.create_queue()
    results = []
    try:
        with pytest.raises(FuturesTimeout):
            for r in pool.map(get_or_return, [None, None, blocker], "abc", timeout=3):
                results.append(r)
    finally:
        blocker.put(None)
    assert results == ["a", "b"]


# -- shutdown -----------------------------------------------------------------------------------


def test_submit_after_shutdown_raises():
    p = Pool(1)
    p.shutdown()
    with pytest.raises(RuntimeError, match="after shutdown"):
        p.submit(mul, 1, 2)


def test_shutdown_waits_for_pending_work():
    p = Pool(2)
    fs = [p.submit(sleep_and_return, 0.05, i) for i in range(6)]
    p.shutdown(wait=True)
    assert [f.result(timeout=0) for f in fs] == list(range(6))
    assert not any(t.is_alive() for t in p._threads)


def test_shutdown_no_wait_still_completes():
    p = Pool(1)
    fs = [p.submit(sleep_and_return, 0.05, i) for i in range(3)]
    p.shutdown(wait=False)
    assert [f.result(timeout=10) for f in fs] == [0, 1, 2]


def test_shutdown_cancel_futures():
    p = Pool(2)
    fs = [p.submit(sleep_and_return, 0.1, i) for i in range(50)]
    p.shutdown(cancel_futures=True)
    cancelled = [f for f in fs if f.cancelled()]
    assert len(cancelled) > 20
    for f in fs:
        if not f.cancelled():
            assert f.result(timeout=0) in range(50)
    with pytest.raises(CancelledError):
        cancelled[0].result()


def test_cancel_a_pending_future():
    blocker = interpreters.create_queue()
    with Pool(1) as p:
        first = p.submit(blocker.get)
        more = [p.submit(mul, i, 1) for i in range(20)]
        assert more[-1].cancel()
        blocker.put(None)
        assert more[-1].cancelled()
        assert [f.result() for f in more[:-1]] == list(range(19))
        first.result()


def test_context_manager_shuts_down():
    with Pool(1) as p:
        p.submit(mul, 1, 1).result()
    assert p._shutdown
    assert not any(t.is_alive() for t in p._threads)


def test_interpreters_are_closed_after_shutdown():
    before = {i.id for i in interpreters.list_all()}
    with Pool(2) as p:
        list(p.map(sleep_and_return, [0.05, 0.05], [1, 2]))
    after = {i.id for i in interpreters.list_all()}
    assert after <= before


def test_garbage_collected_pool_stops_its_workers():
    p = Pool(1)
    p.submit(mul, 1, 1).result()
    threads = list(p._threads)
    del p
    gc.collect()
    for t in threads:
        t.join(10)
        assert not t.is_alive()


# -- dispatch to idle workers, exact cancellation -----------------------------------------------


def _drain(queue):
    items = []
    while True:
        try:
            items.append(queue.get_nowait())
        except interpreters.QueueEmpty:
            return items


def test_an_idle_worker_takes_the_next_task_while_another_is_busy():
    started, release = interpreters.create_queue(), interpreters.create_queue()
    with Pool(2) as p:
        busy = p.submit(signal_and_wait, started, release)
        started.get(timeout=60)
        quick = [p.submit(mul, i, 2) for i in range(20)]
        # Each returns while the busy task still runs: none waits behind it (a task queued
        # behind the busy worker would never finish before the release below).
        assert [f.result(timeout=60) for f in quick] == [i * 2 for i in range(20)]
        assert busy.running() or not busy.done()
        release.put(None)
        assert busy.result() == "released"


def test_a_future_is_running_from_the_moment_a_worker_starts_it():
    started, release = interpreters.create_queue(), interpreters.create_queue()
    with Pool(1) as p:
        busy = p.submit(signal_and_wait, started, release)
        queued = p.submit(mul, 3, 4)
        started.get(timeout=60)
        try:
            # No reply has come yet: the worker's claim on the call says it runs.
            assert busy.running() and not busy.done()
            assert "state=running" in repr(busy)
            assert not queued.running() and "state=pending" in repr(queued)
            assert not busy.cancel()
            assert not busy.cancelled()
        finally:
            release.put(None)
        assert busy.result() == "released"
        assert queued.result() == 12
        assert not busy.running() and not queued.running()


def test_a_cancelled_call_counts_done_for_wait_and_as_completed():
    started, release = interpreters.create_queue(), interpreters.create_queue()
    with Pool(1) as p:
        busy = p.submit(signal_and_wait, started, release)
        started.get(timeout=60)
        queued = [p.submit(mul, i, 2) for i in range(3)]
        try:
            assert queued[0].cancel()
            assert queued[0].cancel()  # again: still cancelled
            done, not_done = wait(queued[:1], timeout=60)
            assert done == {queued[0]} and not not_done
            assert list(as_completed(queued[:1], timeout=60)) == queued[:1]
            p.shutdown(wait=False, cancel_futures=True)
            done, _ = wait(queued, timeout=60)
            assert done == set(queued) and all(f.cancelled() for f in queued)
        finally:
            release.put(None)
        assert busy.result() == "released"


def test_an_idle_worker_takes_map_chunks_while_another_is_busy():
    started, release = interpreters.create_queue(), interpreters.create_queue()
    with Pool(2) as p:
        busy = p.submit(signal_and_wait, started, release)
        started.get(timeout=60)
        assert list(p.map(mul, range(40), range(40), chunksize=8)) == [i * i for i in range(40)]
        release.put(None)
        assert busy.result() == "released"


def test_cancel_futures_cancels_every_call_not_started():
    started, release, log = (interpreters.create_queue() for _ in range(3))
    p = Pool(2)
    busy = [p.submit(signal_and_wait, started, release) for _ in range(2)]
    started.get(timeout=60)
    started.get(timeout=60)
    queued = [p.submit(record, log, i) for i in range(20)]
    chunked = p.map(record, [log] * 6, range(6), chunksize=3)
    p.shutdown(wait=False, cancel_futures=True)
    # Cancelled at once, wherever they waited; the two running calls are not.
    assert sum(f.cancelled() for f in queued) == 20
    assert not any(f.cancelled() for f in busy)
    assert [f.cancel() for f in busy] == [False, False]
    assert all(f.running() for f in busy)
    release.put(None)
    release.put(None)
    p.shutdown(wait=True)
    assert [f.result() for f in busy] == ["released", "released"]
    with pytest.raises(CancelledError):
        list(chunked)
    assert _drain(log) == []  # none of the cancelled calls ran
    assert not any(t.is_alive() for t in p._threads)


def test_shutdown_without_wait_leaves_no_future_pending_once_stopped():
    started, release, log = (interpreters.create_queue() for _ in range(3))
    p = Pool(2)
    forever = p.submit(signal_and_wait, started, release)  # runs until released
    started.get(timeout=60)
    fs = [p.submit(record, log, i) for i in range(10)]
    p.shutdown(wait=False)
    # The other worker runs everything queued before the shutdown.
    assert [f.result(timeout=60) for f in fs] == list(range(10))
    # Counted, not compared: the other worker may have ended already, its items then UNBOUND.
    assert len(_drain(log)) == 10
    assert not forever.done()
    release.put(None)
    for thread in list(p._threads):
        thread.join()
    p._collector.join()
    assert forever.result() == "released"


def test_shutdown_without_wait_cancelling_leaves_only_the_running_call():
    started, release, log = (interpreters.create_queue() for _ in range(3))
    p = Pool(1)
    forever = p.submit(signal_and_wait, started, release)
    started.get(timeout=60)
    fs = [p.submit(record, log, i) for i in range(10)]
    p.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in fs)
    assert not forever.done()
    release.put(None)
    for thread in list(p._threads):
        thread.join()
    p._collector.join()
    assert all(f.done() for f in [forever, *fs])
    assert _drain(log) == []


def test_cancel_works_on_any_call_not_yet_started():
    started, release, log = (interpreters.create_queue() for _ in range(3))
    with Pool(1) as p:
        busy = p.submit(signal_and_wait, started, release)
        started.get(timeout=60)
        queued = [p.submit(record, log, i) for i in range(5)]
        assert queued[2].cancel() and queued[2].cancelled()
        assert not busy.cancel()  # started: it runs to the end
        release.put(None)
        assert [f.result() for f in queued if f is not queued[2]] == [0, 1, 3, 4]
        assert busy.result() == "released"
        # Before the shutdown: items of a destroyed worker's interpreter become UNBOUND.
        assert sorted(_drain(log)) == [0, 1, 3, 4]


def test_a_stopped_pool_leaves_no_claim_open():
    before = lowlevel._claim_count()
    started, release, log = (interpreters.create_queue() for _ in range(3))
    p = Pool(1)
    p.submit(signal_and_wait, started, release)
    started.get(timeout=60)
    fs = [p.submit(record, log, i) for i in range(10)]
    fs[0].cancel()
    release.put(None)
    p.shutdown(wait=True)
    assert all(f.done() for f in fs)
    assert lowlevel._claim_count() == before


def _freed_without_gc(make_future, pool=None):
    """Whether a future made by ``make_future`` and what it settled with (a result or an
    exception, each weakly referenceable) are freed as soon as the caller drops them, with
    the garbage collector off: no reference cycle holds them. With ``pool``, a second call is
    made first: once it is answered, the collector thread has let go of the first."""
    gc.collect()
    gc.disable()
    try:
        fut = make_future()
        refs = [weakref.ref(fut)]
        if not fut.cancelled():
            refs.append(weakref.ref(fut.exception(timeout=60) or fut.result()))
        if pool is not None:
            pool.submit(ident, None).result(timeout=60)
        del fut
        return all(ref() is None for ref in refs)
    finally:
        gc.enable()


def test_a_settled_future_is_freed_as_soon_as_it_is_dropped(pool):
    pool.submit(ident, 0).result()  # a warm worker
    assert _freed_without_gc(lambda: pool.submit(make_box, [1, 2, 3]), pool)
    assert _freed_without_gc(lambda: pool.submit(fail, CustomError, "no"), pool)


def test_a_cancelled_future_is_freed_as_soon_as_it_is_dropped():
    started, release = interpreters.create_queue(), interpreters.create_queue()
    with Pool(1) as p:
        p.submit(signal_and_wait, started, release)
        started.get(timeout=60)

        def cancelled():
            fut = p.submit(ident, 1)
            assert fut.cancel()
            return fut

        try:
            freed = _freed_without_gc(cancelled)
        finally:
            release.put(None)
    assert freed


# -- nesting ------------------------------------------------------------------------------------


@pytest.mark.skipif(sys.version_info < (3, 12), reason="3.11's interpreters share one GIL")
def test_a_pool_works_inside_an_interpreter():
    interp = interpreters.create()
    try:
        total, daemons, threads_left = interp.call(nested_pool, 10)
        assert total == sum(i * i for i in range(10))
        assert daemons == []  # an interpreter allows none (3.12+)
        assert threads_left == 1  # the pool's threads were all joined
    finally:
        interp.close()


@pytest.mark.skipif(sys.version_info < (3, 12), reason="3.11's interpreters share one GIL")
def test_a_pool_works_inside_a_pool_worker():
    with Pool(1) as p:
        total, daemons, _ = p.submit(nested_pool, 5).result()
        assert total == sum(i * i for i in range(5)) and daemons == []


# -- large values -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [b"y" * 1_000_000, "\u20ac" * 300_000, "a" * 1_000_000])
def test_large_bytes_and_str_round_trip(pool, value):
    assert pool.submit(size_and_echo, value).result() == (len(value), value)
    assert list(pool.map(len, [value] * 3)) == [len(value)] * 3
    assert pool.submit(ident, value).result() == value


def test_large_bytes_cross_without_pickle():
    from subinterpreters import _protocol

    data = b"y" * 1_000_000
    assert _protocol.encode_args((data,), {}) == (_protocol.ARGS_ONE, data)
    assert _protocol.encode_args((data, "s", 1), {})[0] == _protocol.ARGS_TUPLE
    status, payload, _ = _protocol.run(
        _protocol.function_data(ident), _protocol.ARGS_ONE, data, None
    )
    assert status == _protocol.OK and payload is data


# -- damaged worker -----------------------------------------------------------------------------


def test_damaged_worker_is_replaced():
    with Pool(1) as p:
        before = p.submit(current_id).result()
        assert p.submit(damage_worker).result() == "damaged"
        after = p.submit(current_id).result()
        assert after != before
        assert p.submit(mul, 2, 21).result() == 42
        assert len(p._threads) == 1


def test_a_damaged_worker_leaves_nothing_behind():
    from subinterpreters import _results

    claims, sinks = lowlevel._claim_count(), set(_results._sinks)
    with Pool(1) as p:
        for _ in range(3):
            assert p.submit(damage_worker).result() == "damaged"
        assert p.submit(mul, 2, 3).result() == 6
    assert lowlevel._claim_count() == claims
    assert set(_results._sinks) == sinks


def test_a_worker_dying_mid_call_fails_that_call_at_once():
    from subinterpreters import _results

    claims, sinks = lowlevel._claim_count(), set(_results._sinks)
    with Pool(1) as p:
        assert p.submit(mul, 2, 3).result() == 6
        dying = p.submit(kill_worker)
        # While the pool runs on (a worker's call is otherwise failed only at shutdown).
        with pytest.raises(futures.BrokenInterpreterPool, match="failed before it answered") as ei:
            dying.result(timeout=60)
        assert isinstance(ei.value.__cause__, interpreters.ExecutionFailed)
        assert "SystemError" in str(ei.value.__cause__)
        # The worker is replaced and nothing of the dead one is kept.
        assert p.submit(mul, 2, 21).result() == 42
        assert len(p._threads) == 1
        assert p._works == {}
    assert lowlevel._claim_count() == claims
    assert set(_results._sinks) == sinks


def test_a_worker_dying_mid_call_fails_an_awaited_call_at_once():
    import asyncio

    with Pool(1) as p:

        async def main():
            with pytest.raises(futures.BrokenInterpreterPool):
                await p.call_async(kill_worker)
            return await p.call_async(mul, 6, 7)

        assert asyncio.run(main()) == 42
        assert p._works == {}


def test_an_interpreter_that_cannot_serve_breaks_the_pool(monkeypatch):
    # As if the worker's interpreter failed below Python (run_string raising something other
    # than RunFailedError) after taking a call: that call fails at once, and the pool breaks.
    class Lowlevel:
        def __getattr__(self, name):
            return getattr(lowlevel, name)

        @staticmethod
        def run_string(handle, script, shared=None):
            try:
                return lowlevel.run_string(handle, script, shared)
            except lowlevel.RunFailedError:
                raise interpreters.InterpreterError("lost below Python") from None

    monkeypatch.setattr(futures, "_ll", Lowlevel())
    claims = lowlevel._claim_count()
    p = Pool(1)
    with pytest.raises(futures.BrokenInterpreterPool, match="failed before it answered"):
        p.submit(kill_worker).result(timeout=60)
    p.shutdown(wait=True)
    with pytest.raises(futures.BrokenInterpreterPool, match="lost below Python"):
        p.submit(mul, 1, 2)
    assert p._works == {}
    assert lowlevel._claim_count() == claims


def test_a_worker_dying_fails_only_its_own_call():
    started, release = interpreters.create_queue(), interpreters.create_queue()
    with Pool(2) as p:
        busy = p.submit(signal_and_wait, started, release)
        started.get(timeout=60)
        with pytest.raises(futures.BrokenInterpreterPool):
            p.submit(kill_worker).result(timeout=60)
        assert busy.running()
        release.put(None)
        assert busy.result(timeout=60) == "released"


# -- exit ---------------------------------------------------------------------------------------


def test_pool_left_open_at_exit():
    proc = run_python(
        """
        from subinterpreters.futures import InterpreterPoolExecutor
        def f(x):
            return x * 2
        pool = InterpreterPoolExecutor(2)
        futs = [pool.submit(f, i) for i in range(100)]
        print(sum(f.result() for f in futs))
        """
    )
    assert_clean_exit(proc, expect_stdout=str(sum(i * 2 for i in range(100))))
