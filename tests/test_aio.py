"""asyncio: aio.call on pools and interpreters, Queue.get_async/put_async, run_in_executor;
waiting through a readiness descriptor (no polling, no thread per waiter), clean cancellation."""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest

aio = pytest.importorskip("subinterpreters.aio")
from conftest import run_python  # noqa: E402
from subinterpreters import _async, interpreters, lowlevel  # noqa: E402
from subinterpreters.futures import InterpreterPoolExecutor  # noqa: E402
from task_funcs import (  # noqa: E402
    current_id,
    ident,
    mul,
    raise_value_error,
    record,
    rendezvous,
    signal_and_wait,
    size_and_echo,
    sleep_and_return,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module", autouse=True)
def _join_helper_threads(no_pool_threads_left):
    yield


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def _async_half_loaded():
    import sys

    import subinterpreters.futures  # noqa: F401
    import subinterpreters.interpreters  # noqa: F401

    names = ("asyncio", "subinterpreters._async", "subinterpreters.aio")
    return tuple(name for name in names if name in sys.modules)


def test_interpreters_and_the_pool_load_asyncio_only_when_awaited():
    # The awaiting half sits below them but loads on first use (a fresh interpreter that only
    # calls pays nothing for it).
    with interpreters.create() as interp:
        assert interp.call(_async_half_loaded) == ()


def test_fd_waker_signals_puts_and_can_be_removed():
    import os

    q = interpreters.create_queue(maxsize=1)
    unbounded = interpreters.create_queue()
    fd = os.eventfd(0, os.EFD_NONBLOCK)
    try:
        token = lowlevel._queue_add_fd_waker(q.id, fd)
        q.put(1)
        assert os.eventfd_read(fd) == 1
        q.get()  # room freed: signalled too
        assert os.eventfd_read(fd) >= 1
        # An unbounded queue never runs out of room: only puts signal.
        other = lowlevel._queue_add_fd_waker(unbounded.id, fd)
        unbounded.put(1)
        assert os.eventfd_read(fd) == 1
        unbounded.get()
        with pytest.raises(BlockingIOError):
            os.eventfd_read(fd)
        assert lowlevel._queue_remove_waker(unbounded.id, other) is True
        assert lowlevel._queue_remove_waker(q.id, token) is True
        assert lowlevel._queue_remove_waker(q.id, token) is False
        q.put(2)
        with pytest.raises(BlockingIOError):
            os.eventfd_read(fd)
    finally:
        os.close(fd)


def test_fd_waker_bad_input():
    q = interpreters.create_queue()
    with pytest.raises(ValueError):
        lowlevel._queue_add_fd_waker(q.id, -1)
    with pytest.raises(TypeError):
        lowlevel._queue_add_fd_waker(q.id, "3")
    with pytest.raises(interpreters.QueueNotFoundError):
        lowlevel._queue_add_fd_waker(999_999, 0)
    with pytest.raises(ValueError):
        lowlevel._queue_remove_waker(q.id, -5)


def test_call_on_pool(pool):
    async def main():
        a = await aio.call(pool, mul, 6, 7)
        b = await aio.call(pool, current_id)
        many = await asyncio.gather(*(aio.call(pool, mul, i, i) for i in range(200)))
        return a, b, many

    a, b, many = run(main())
    assert a == 42 and b != 0
    assert many == [i * i for i in range(200)]


def test_call_on_pool_raises_original_exception(pool):
    async def main():
        await aio.call(pool, raise_value_error, "boom")

    with pytest.raises(ValueError, match="boom") as info:
        run(main())
    assert isinstance(info.value.__cause__, interpreters.ExecutionFailed)


def test_call_not_shareable(pool):
    x = 1

    async def main():
        await aio.call(pool, lambda: x)

    with pytest.raises(interpreters.NotShareableError):
        run(main())


def test_call_async_on_interpreter():
    interp = interpreters.create()
    try:

        async def main():
            return await interp.call_async(mul, 3, 4), await aio.call(interp, current_id)

        assert run(main()) == (12, interp.id)
    finally:
        interp.close()


def test_pool_call_async(pool):
    async def main():
        return await pool.call_async(mul, 6, 7)

    assert run(main()) == 42


def test_call_async_many_at_once_and_errors():
    interp = interpreters.create()
    try:

        async def main():
            results = await asyncio.gather(*(interp.call_async(mul, i, i) for i in range(50)))
            with pytest.raises(interpreters.ExecutionFailed, match="boom"):
                await interp.call_async(raise_value_error, "boom")  # as Interpreter.call raises it
            with pytest.raises(interpreters.NotShareableError):
                await interp.call_async(mul, threading.Lock(), 1)
            return results, await interp.call_async(mul, "ab", 2)

        results, text = run(main())
        assert results == [i * i for i in range(50)] and text == "abab"
        # Between calls the interpreter is not running: other callers can use it.
        assert not interp.is_running()
        assert interp.call(mul, 2, 3) == 6
    finally:
        interp.close()


def test_call_async_fails_cleanly_when_the_interpreter_cannot_make_calls():
    # The target's half of call_async cannot be imported there: each call fails with the
    # ModuleNotFoundError as ExecutionFailed, none hangs, and the interpreter stays usable.
    interp = interpreters.create()
    try:
        interp.exec("import sys; sys.modules['subinterpreters._protocol'] = None")

        async def main():
            for _ in range(2):
                with pytest.raises(interpreters.ExecutionFailed, match="ModuleNotFoundError"):
                    await interp.call_async(mul, 2, 3)

        run(main())
        lowlevel.run_string(interp.id, "import sys; del sys.modules['subinterpreters._protocol']")
        assert run(interp.call_async(mul, 2, 3)) == 6
    finally:
        interp.close()


def test_serve_queue_runs_each_item_and_stops_at_none():
    interp = interpreters.create()
    qid = lowlevel._queue_create(0, 3, 0)
    try:
        interp.exec("seen = []")
        for item in (1, "two", (3, b"4"), None):
            lowlevel._queue_put(qid, item, 0, False, None)
        # Each run answers on queue rq by leaving (rq, reply) bound to the item's name.
        rq = lowlevel._queue_create(0, 3, 0)
        script = f"seen.append(__item__); __item__ = ({rq}, len(seen))"
        assert lowlevel._serve_queue(interp.id, qid, script, "__item__") is None
        assert interp.call(eval, "seen") == [1, "two", (3, b"4")]
        assert [lowlevel._queue_get(rq, False, None)[0] for _ in range(3)] == [1, 2, 3]
        assert lowlevel._queue_qsize(rq) == 0
        lowlevel._queue_release(rq)
        assert interp.call(eval, "'__item__' in globals()") is False
        # A failing script: the item comes back (the script had not taken it) with the
        # error run_string raises; the items after it stay queued.
        lowlevel._queue_put(qid, 5, 0, False, None)
        lowlevel._queue_put(qid, 6, 0, False, None)
        item, exc = lowlevel._serve_queue(interp.id, qid, "1 / 0", "__item__")
        assert item == 5 and isinstance(exc, lowlevel.RunFailedError)
        assert "ZeroDivisionError" in str(exc)
        # Taken over (unbound from __main__) before failing: it does not come back.
        item, exc = lowlevel._serve_queue(interp.id, qid, "del __item__; 1 / 0", "__item__")
        assert item is None and isinstance(exc, lowlevel.RunFailedError)
        assert lowlevel._queue_qsize(qid) == 0 and not interp.is_running()
    finally:
        lowlevel._queue_release(qid)
        interp.close()


def test_serve_queue_bad_input():
    interp = interpreters.create()
    qid = lowlevel._queue_create(0, 3, 0)
    try:
        with pytest.raises(RuntimeError, match="unrecognized interpreter ID"):
            lowlevel._serve_queue(10**6, qid, "pass", "x")
        with pytest.raises(RuntimeError, match="already running"):
            lowlevel._serve_queue(0, qid, "pass", "x")
        with pytest.raises(interpreters.QueueNotFoundError):
            lowlevel._serve_queue(interp.id, 10**9, "pass", "x")
        with pytest.raises(TypeError):
            lowlevel._serve_queue(interp.id, qid, b"pass", "x")
        with pytest.raises(ValueError, match="null"):
            lowlevel._serve_queue(interp.id, qid, "pass\0", "x")
        # The interpreter is destroyed while an item waits: it comes back with the error.
        other = lowlevel.create()
        lowlevel.destroy(other)
        lowlevel._queue_put(qid, 7, 0, False, None)
        with pytest.raises(RuntimeError, match="unrecognized"):
            lowlevel._serve_queue(other, qid, "pass", "x")
        assert lowlevel._queue_get(qid, False, None) == (7, None)
    finally:
        lowlevel._queue_release(qid)
        interp.close()


def test_call_async_on_closed_interpreter_raises():
    interp = interpreters.create()

    async def main():
        await interp.call_async(mul, 1, 1)  # the runner exists
        interp.close()
        with pytest.raises(interpreters.InterpreterError):
            await interp.call_async(mul, 1, 1)

    run(main())
    assert interp.id not in interpreters._call_runners


def test_call_async_from_several_loops_while_the_interpreter_closes():
    # Two event loops in two threads share one interpreter's runner while a third thread
    # closes it: every call answers, with its result or an InterpreterError; none hangs.
    import time

    interp = interpreters.create()
    outcomes = {}
    started = threading.Barrier(3)

    def loop_thread(k):
        async def main():
            calls = [interp.call_async(mul, i, k) for i in range(300)]
            started.wait()
            return await asyncio.gather(*calls, return_exceptions=True)

        outcomes[k] = asyncio.run(asyncio.wait_for(main(), 30))

    threads = [threading.Thread(target=loop_thread, args=(k,)) for k in (1, 2)]
    for t in threads:
        t.start()
    started.wait()
    time.sleep(0.002)
    interp.close()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    for k, results in outcomes.items():
        assert len(results) == 300
        for i, r in enumerate(results):
            assert r == i * k or isinstance(r, interpreters.InterpreterError), r
    assert interp.id not in interpreters._call_runners


def test_serve_queue_when_the_interpreter_goes_while_it_waits():
    other = interpreters.create()
    qid = lowlevel._queue_create(0, 3, 0)
    out = []
    t = threading.Thread(
        target=lambda: out.append(lowlevel._serve_queue(other.id, qid, "del __x__", "__x__"))
    )
    t.start()
    try:
        other.close()
        lowlevel._queue_put(qid, 8, 0, False, None)
        t.join(30)
        assert not t.is_alive()
        ((item, exc),) = out
        assert item == 8 and isinstance(exc, RuntimeError) and "unrecognized" in str(exc)
    finally:
        lowlevel._queue_put(qid, None, 0, False, None)
        t.join(30)
        lowlevel._queue_release(qid)


def test_close_runs_queued_calls_first():
    interp = interpreters.create()

    async def main():
        calls = [
            asyncio.ensure_future(interp.call_async(sleep_and_return, 0.01, i)) for i in range(5)
        ]
        await asyncio.sleep(0)  # all five queued
        # Closing waits for the runner, which makes them all; their replies, made by the
        # closed interpreter, still arrive.
        interp.close()
        return await asyncio.gather(*calls)

    assert run(main()) == [0, 1, 2, 3, 4]


def test_cancelled_call_async_leaves_the_interpreter_usable():
    interp = interpreters.create()
    try:

        async def main():
            task = asyncio.create_task(interp.call_async(sleep_and_return, 0.2, 1))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return await interp.call_async(mul, 5, 5)

        assert run(main()) == 25
    finally:
        interp.close()


def test_call_async_runner_stops_when_the_interpreter_is_collected():
    held = [interpreters.create()]
    iid = held[0].id

    async def main():
        return await held[0].call_async(mul, 2, 2)

    assert run(main()) == 4
    runner = interpreters._call_runners[iid]
    held.clear()
    gc.collect()
    runner.thread.join(30)
    assert not runner.thread.is_alive() and iid not in interpreters._call_runners
    for interp in interpreters.list_all():  # still there where collecting does not destroy
        if interp.id == iid:
            interp.close()


def test_exit_with_call_async_runners_alive():
    # Interpreters left open with their runners parked: exit stops the runners, then cleans
    # up the interpreters, and the process ends normally.
    proc = run_python(
        """
        import asyncio
        from subinterpreters import interpreters

        def add(a, b):
            return a + b

        interps = [interpreters.create() for _ in range(3)]

        async def main():
            return await asyncio.gather(*(i.call_async(add, i.id, 1) for i in interps))

        print(asyncio.run(main()) == [i.id + 1 for i in interps])
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "Fatal Python error" not in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout.strip() == "True"


def test_call_bad_target():
    with pytest.raises(TypeError):
        run(aio.call(object(), mul, 1, 2))


def test_quick_calls_still_let_the_loop_poll_io(pool):
    # A quick call's reply may be taken right away, but the awaiting task still yields to the
    # loop each time: a stream of quick calls does not keep ready I/O waiting.
    import socket

    async def main():
        loop = asyncio.get_running_loop()
        r, w = socket.socketpair()
        got = []
        loop.add_reader(r, lambda: got.append(r.recv(1)))
        try:
            for i in range(50):  # warm: the worker answers at once
                await pool.call_async(mul, i, 2)
            w.send(b"x")
            for i in range(1000):
                assert await pool.call_async(mul, i, 2) == 2 * i
                if got:
                    return i
            return None
        finally:
            loop.remove_reader(r)
            r.close()
            w.close()

    calls = run(main())
    assert calls is not None and calls < 5


def test_calls_run_concurrently_without_blocking_the_loop(pool):
    async def main():
        qa, qb = interpreters.create_queue(), interpreters.create_queue()
        both = await asyncio.gather(
            aio.call(pool, rendezvous, qa, qb), aio.call(pool, rendezvous, qb, qa)
        )
        # The loop keeps running while a call waits: the item the call waits for is put by
        # this coroutine after the call started (if the loop were blocked, the call would time
        # out).
        feed, back = interpreters.create_queue(), interpreters.create_queue()
        call = asyncio.ensure_future(aio.call(pool, rendezvous, back, feed))
        await asyncio.sleep(0)
        feed.put(2)
        return both, await call

    # warm both workers first
    list(pool.map(sleep_and_return, [0.05, 0.05], [0, 0]))
    both, relayed = run(main())
    assert both == [1, 1]  # the two calls ran at the same time
    assert relayed == 2


def test_cancelled_call_leaves_nothing_behind(pool):
    async def main():
        task = asyncio.create_task(aio.call(pool, sleep_and_return, 0.2, 1))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        sink = _async._sinks[asyncio.get_running_loop()]
        for _ in range(1000):  # until the reply arrives and is dropped (bounded, not timed)
            if not sink.works:
                break
            await asyncio.sleep(0.01)
        return dict(sink.works), await aio.call(pool, mul, 2, 2)

    works, after = run(main())
    assert works == {} and after == 4


def test_pool_call_async_goes_to_the_idle_worker():
    # One worker busy until released: cheap calls awaited meanwhile all return (none waits
    # behind the busy worker), then the busy one is released.
    started, release = interpreters.create_queue(), interpreters.create_queue()

    async def main(p):
        busy = asyncio.create_task(p.call_async(signal_and_wait, started, release))
        while started.empty():
            await asyncio.sleep(0.001)
        quick = [await p.call_async(mul, i, 3) for i in range(20)]
        assert not busy.done()
        release.put(None)
        return quick, await busy

    with InterpreterPoolExecutor(2) as p:
        assert run(main(p)) == ([i * 3 for i in range(20)], "released")


def test_cancelled_call_async_that_had_not_started_never_runs():
    started, release, log = (interpreters.create_queue() for _ in range(3))

    async def main(p):
        busy = asyncio.create_task(p.call_async(signal_and_wait, started, release))
        while started.empty():
            await asyncio.sleep(0.001)
        queued = asyncio.create_task(p.call_async(record, log, 1))
        await asyncio.sleep(0)  # queued in the pool behind the busy call
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        release.put(None)
        assert await busy == "released"
        return await p.call_async(mul, 2, 2)

    with InterpreterPoolExecutor(1) as p:
        assert run(main(p)) == 4
        assert log.empty()  # the cancelled call never ran


@pytest.mark.parametrize("value", [b"y" * 1_000_000, "\u20ac" * 300_000])
def test_large_values_through_call_async(pool, value):
    interp = interpreters.create()
    try:

        async def main():
            return (
                await pool.call_async(size_and_echo, value),
                await interp.call_async(size_and_echo, value),
                await interp.call_async(ident, value),
            )

        assert run(main()) == ((len(value), value), (len(value), value), value)
    finally:
        interp.close()


def test_run_in_executor(pool):
    async def main():
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, mul, 5, 5), await loop.run_in_executor(
            pool, current_id
        )

    value, ident = run(main())
    assert value == 25 and ident != 0


def test_queue_get_async_waits_for_a_put_from_another_interpreter():
    q = interpreters.create_queue()
    interp = interpreters.create()
    try:

        async def main():
            getter = asyncio.create_task(q.get_async())
            await asyncio.sleep(0.05)
            assert not getter.done()
            threads_before = threading.active_count()
            interp.prepare_main(q=q)
            interp.exec("q.put(('from', 'sub'))")
            got = await getter
            return got, threads_before

        got, threads_before = run(main())
        assert got == ("from", "sub")
        assert threading.active_count() <= threads_before
    finally:
        interp.close()


def test_queue_get_async_immediate_and_many_waiters():
    q = interpreters.create_queue()
    q.put(1)

    async def main():
        first = await q.get_async()
        waiters = [asyncio.create_task(aio.queue_get(q)) for _ in range(20)]
        await asyncio.sleep(0.01)
        for i in range(20):
            q.put(i)
        return first, sorted(await asyncio.gather(*waiters))

    first, rest = run(main())
    assert first == 1 and rest == list(range(20))


def test_queue_put_async_waits_for_room():
    q = interpreters.create_queue(1)
    q.put("a")

    async def main():
        putter = asyncio.create_task(q.put_async("b"))
        await asyncio.sleep(0.05)
        assert not putter.done()
        assert q.get() == "a"
        await putter
        return q.get_nowait()

    assert run(main()) == "b"


def test_cancelled_get_async_loses_no_item_and_removes_its_waker():
    q = interpreters.create_queue()

    async def main():
        getter = asyncio.create_task(q.get_async())
        await asyncio.sleep(0.05)
        getter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await getter
        q.put("kept")
        await asyncio.sleep(0.01)
        return q.get_nowait()

    assert run(main()) == "kept"
    assert lowlevel._queue_remove_waker(q.id, 0) is False  # nothing registered any more


def test_get_async_on_destroyed_queue_raises():
    q = interpreters.create_queue()

    async def main():
        getter = asyncio.create_task(q.get_async())
        await asyncio.sleep(0.05)
        lowlevel._queue_destroy(q.id)
        await getter

    with pytest.raises(interpreters.QueueNotFoundError):
        run(main())
