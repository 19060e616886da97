"""Stopping calls that run, in pools and call_async: shutdown(interrupt=True), a cancelled
call_async (pool and interpreter), an interrupt that strikes its own call and never the next
one, Ctrl-C twice at exit; and InterpreterPoolExecutor(forward_output=True)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import random
import signal
import threading
from concurrent.futures import CancelledError

import ctrl_c
import pytest
import task_funcs
from conftest import TESTS_DIR
from task_funcs import current_id, mul, print_between, spin

futures = pytest.importorskip("subinterpreters.futures")
interpreters = pytest.importorskip("subinterpreters.interpreters")
lowlevel = pytest.importorskip("subinterpreters.lowlevel")

Pool = futures.InterpreterPoolExecutor
TaskInterrupted = futures.TaskInterrupted
pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module", autouse=True)
def _join_helper_threads(no_pool_threads_left):
    yield


def _interrupted(fut):
    exc = fut.exception(timeout=30)
    assert type(exc) is TaskInterrupted, repr(exc)
    assert isinstance(exc, CancelledError)
    assert type(exc.__cause__) is KeyboardInterrupt
    return True


# -- shutdown(interrupt=True) -------------------------------------------------------------------


def test_shutdown_interrupt_fails_running_cancels_queued_and_closes_workers():
    before_interps = len(lowlevel.list_all())
    before_claims = lowlevel._claim_count()
    started = interpreters.create_queue()
    pool = Pool(2)
    running = [pool.submit(spin, started) for _ in range(2)]
    for _ in running:
        started.get(timeout=30)
    queued = [pool.submit(mul, i, 2) for i in range(3)]
    pool.shutdown(wait=True, cancel_futures=True, interrupt=True)
    assert all(_interrupted(f) for f in running)
    assert all(f.cancelled() for f in queued)
    assert len(lowlevel.list_all()) == before_interps  # the workers' interpreters are closed
    assert lowlevel._claim_count() == before_claims
    with pytest.raises(RuntimeError):
        pool.submit(mul, 1, 1)


def test_shutdown_interrupt_lets_queued_calls_run_without_cancel_futures():
    started = interpreters.create_queue()
    pool = Pool(1)
    runaway = pool.submit(spin, started)
    started.get(timeout=30)
    queued = [pool.submit(mul, i, 3) for i in range(3)]
    pool.shutdown(wait=True, interrupt=True)
    assert _interrupted(runaway)
    assert [f.result(timeout=30) for f in queued] == [0, 3, 6]  # run by the same worker after


def test_shutdown_interrupt_without_wait_returns_at_once():
    started = interpreters.create_queue()
    pool = Pool(1)
    runaway = pool.submit(spin, started)
    started.get(timeout=30)
    pool.shutdown(wait=False, interrupt=True)
    assert _interrupted(runaway)
    pool.shutdown()


def test_task_that_swallows_the_interrupt_returns_its_value():
    code = (
        "def swallow(started):\n"
        "    try:\n"
        "        started.put(1)\n"
        "        while True:\n"
        "            __import__('time').sleep(0.001)\n"
        "    except KeyboardInterrupt:\n"
        "        return 'kept going'\n"
    )
    ns = {}
    exec(code, ns)
    started = interpreters.create_queue()
    pool = Pool(1)
    fut = pool.submit(ns["swallow"], started)
    started.get(timeout=30)
    pool.shutdown(wait=True, interrupt=True)
    assert fut.result(timeout=30) == "kept going"


def test_future_cancel_does_not_interrupt_a_running_call():
    # concurrent.futures' rule: cancel() refuses a call that runs, and leaves it running.
    started, out = interpreters.create_queue(), interpreters.create_queue()
    pool = Pool(1)
    fut = pool.submit(spin, started, out)
    started.get(timeout=30)
    assert fut.cancel() is False
    assert fut.running()
    assert out.empty()
    pool.shutdown(interrupt=True)
    assert _interrupted(fut)


# -- a cancelled call_async ---------------------------------------------------------------------


async def _runaway_then_timeout(target, started, out):
    task = asyncio.ensure_future(target.call_async(spin, started, out))
    await started.get_async()  # it runs
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(task, 0.01)  # never ends by itself: cancelled on timeout
    assert task.cancelled()


def test_wait_for_around_runaway_pool_call_async_then_a_normal_call():
    started, out = interpreters.create_queue(), interpreters.create_queue()

    async def main(pool):
        worker = await pool.call_async(current_id)
        await _runaway_then_timeout(pool, started, out)
        assert await out.get_async() == "interrupted"
        # The same (only) worker serves the next calls.
        assert await pool.call_async(mul, 6, 7) == 42
        assert await pool.call_async(current_id) == worker
        assert pool.submit(mul, 2, 3).result(timeout=30) == 6

    with Pool(1) as pool:
        asyncio.run(main(pool))


def test_asyncio_timeout_around_runaway_interpreter_call_async_then_a_normal_call():
    if not hasattr(asyncio, "timeout"):
        pytest.skip("asyncio.timeout is 3.11+")
    started, out = interpreters.create_queue(), interpreters.create_queue()

    async def main(interp):
        task = asyncio.ensure_future(interp.call_async(spin, started, out))
        await started.get_async()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await task
        assert await out.get_async() == "interrupted"
        assert await interp.call_async(mul, 6, 7) == 42
        assert interp.call(mul, 2, 3) == 6

    with interpreters.create() as interp:
        asyncio.run(main(interp))


def test_wait_for_around_runaway_interpreter_call_async():
    started, out = interpreters.create_queue(), interpreters.create_queue()

    async def main(interp):
        await _runaway_then_timeout(interp, started, out)
        assert await out.get_async() == "interrupted"
        assert await interp.call_async(mul, 7, 7) == 49

    with interpreters.create() as interp:
        asyncio.run(main(interp))


def test_cancelled_queued_call_async_never_runs_and_interrupts_nothing():
    started, out, ran = (interpreters.create_queue() for _ in range(3))

    async def main(pool):
        first = asyncio.ensure_future(pool.call_async(spin, started, out))
        await started.get_async()
        queued = asyncio.ensure_future(pool.call_async(task_funcs.record, ran, "ran"))
        await asyncio.sleep(0)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert out.empty()  # the running call was not touched
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await out.get_async() == "interrupted"
        assert await pool.call_async(mul, 1, 5) == 5
        assert ran.empty()

    with Pool(1) as pool:
        asyncio.run(main(pool))


def test_shutdown_interrupt_fails_a_pool_call_async_with_task_interrupted():
    started = interpreters.create_queue()

    async def main(pool):
        task = asyncio.ensure_future(pool.call_async(spin, started))
        await started.get_async()
        pool.shutdown(wait=False, interrupt=True)
        with pytest.raises(TaskInterrupted):
            await task

    pool = Pool(1)
    asyncio.run(main(pool))
    pool.shutdown()


# -- an interrupt strikes its own call, never the code around it nor the next call --------------

_SERVE = """
import subinterpreters.lowlevel as ll

def work(n):
    total = 0
    i = 0
    while n < 0 or i < n:  # n < 0: until interrupted
        total += i
        i += 1
    return total

try:
    while True:
        item = tasks.get()
        if item is None:
            break
        claim, n = item
        out = ll._claim_run(claim, 0, work, n)
        done.put((claim, out[0], out[2], out[0] and out[1] == sum(range(n)) if n >= 0 else None))
except BaseException as exc:  # struck outside its call: say so at once
    done.put(("struck the loop", repr(exc), None, None))
    raise
"""


def test_claim_interrupt_strikes_only_its_own_call():
    # One thread serves claimed calls in an interpreter, back to back; this thread interrupts
    # each call's claim at a random moment, racing with its end. An interrupt that struck the
    # serving loop would end it (ExecutionFailed); one that struck the next call would show
    # as that call failing though nobody interrupted it.
    rounds = 200
    rng = random.Random(1234)
    tasks, done = interpreters.create_queue(), interpreters.create_queue()
    with interpreters.create() as interp:
        interp.prepare_main(tasks=tasks, done=done)
        failure = []

        def serve():
            try:
                interp.exec(_SERVE)
            except BaseException as exc:
                failure.append(exc)

        server = threading.Thread(target=serve)
        server.start()
        hits = runaways = 0
        for i in range(rounds):
            claim = lowlevel._claim_open()
            n = -1 if i % 10 == 0 else rng.choice((0, 1, 5, 20, 100, 300, 1000))
            runaways += n < 0
            tasks.put((claim, n))
            for _ in range(rng.randrange(0, 50)):  # vary the moment of the first attempt
                pass
            hit = False
            while not hit and not done.qsize():  # until it struck or the call is over
                hit = lowlevel._claim_interrupt(claim, KeyboardInterrupt)
            hits += hit
            got, ok, interrupted, right = done.get(timeout=30)
            assert got == claim, (got, ok)
            assert interrupted == hit  # asked while it ran: it knows
            if not interrupted:
                assert ok and right, (n, ok, right)  # nobody else's interrupt struck it
            assert not lowlevel._claim_interrupt(claim, KeyboardInterrupt)  # over
        tasks.put(None)
        server.join()
    assert not failure, failure
    assert hits >= runaways  # every runaway call was stopped


def test_claim_interrupt_of_a_queued_or_unknown_claim_does_nothing():
    claim = lowlevel._claim_open()
    assert lowlevel._claim_interrupt(claim, KeyboardInterrupt) is False
    assert lowlevel._claim_take(claim) is True
    assert lowlevel._claim_interrupt(claim, KeyboardInterrupt) is False
    assert lowlevel._claim_interrupt(-1, KeyboardInterrupt) is False
    assert lowlevel._claim_run(claim, 0, mul, 2, 3) is None  # cancelled: not run
    with pytest.raises(TypeError):
        lowlevel._claim_interrupt(lowlevel._claim_open(), task_funcs.CustomError)
    with pytest.raises(TypeError):
        lowlevel._claim_run(lowlevel._claim_open(), 0)
    with pytest.raises(ValueError, match="holder"):
        lowlevel._claim_run(lowlevel._claim_open(), -1, mul, 2, 3)


def test_claim_run_reports_outcome():
    claim = lowlevel._claim_open()
    assert lowlevel._claim_run(claim, 0, mul, 2, 3) == (True, 6, False)
    assert lowlevel._claim_run(claim, 0, mul, 2, 3) is None  # once
    held = lowlevel._claim_open()
    holder = 987654321
    assert lowlevel._claim_run(held, holder, lowlevel._claim_is_open, held) == (True, False, False)
    assert lowlevel._claim_release(holder) == held  # taken as its holder in the same trip
    ok, exc, interrupted = lowlevel._claim_run(lowlevel._claim_open(), 0, task_funcs.fail, KeyError)
    assert (ok, type(exc), interrupted) == (False, KeyError, False)


# -- Ctrl-C at exit -----------------------------------------------------------------------------

_EXIT_PRELUDE = """if True:
    import signal, sys, time
    # A parent that ignores SIGINT (a background job) passes that on: undo it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from subinterpreters import interpreters
    from subinterpreters.futures import InterpreterPoolExecutor
    from task_funcs import spin

    # Says when the main thread waits for the pool (inside the wait, so a Ctrl-C from then on
    # lands in it). Not sys._current_frames(): it reads other interpreters' frames while they
    # run, which is not safe with a GIL per interpreter.
    join = InterpreterPoolExecutor._join
    def _join(self):
        print("b", end="", flush=True)
        join(self)
    InterpreterPoolExecutor._join = _join

    def submit(pool):
        started = interpreters.create_queue()
        futs = [pool.submit(spin, started) for _ in range(2)]
        futs.append(pool.submit(spin, started))  # queued behind them
        for f in futs:  # one write per line: callbacks run in several threads
            f.add_done_callback(lambda f: sys.stderr.write("done: %s\\n" % (
                "cancelled" if f.cancelled() else type(f.exception()).__name__)))
        started.get(); started.get()
        print("a", end="", flush=True)
"""

_EXIT_CASES = {
    # The program ends on the first Ctrl-C; at exit the process waits for the pool.
    "at exit": "pool = InterpreterPoolExecutor(2)\nsubmit(pool)\ntime.sleep(60)\n",
    # The first Ctrl-C ends the `with` body; its exit waits for the pool.
    "leaving with": (
        "with InterpreterPoolExecutor(2) as pool:\n    submit(pool)\n    time.sleep(60)\n"
    ),
}


@pytest.mark.parametrize("case", list(_EXIT_CASES))
def test_second_ctrl_c_while_waiting_for_the_pool_interrupts_running_calls(case):
    proc = ctrl_c.spawn(_EXIT_PRELUDE + _EXIT_CASES[case], TESTS_DIR)
    try:
        assert ctrl_c.read_byte(proc) == b"a"
        # The program ends; it waits for the pool.
        assert ctrl_c.press_until_output(proc) == b"b"
        # The running calls are interrupted.
        err = ctrl_c.press_until_exit(proc)
    finally:
        ctrl_c.end(proc)
    text = err.decode()
    assert "Fatal Python error" not in text, text
    assert text.count("done: TaskInterrupted") == 2, text
    assert text.count("done: cancelled") == 1, text
    assert "KeyboardInterrupt" in text, text
    assert proc.returncode == -signal.SIGINT, (proc.returncode, text)


# -- forward_output -----------------------------------------------------------------------------


def test_forwarded_output_of_several_workers_reaches_redirect_stdout_before_futures_complete():
    n = 3
    arrived, go = interpreters.create_queue(), interpreters.create_queue()
    out, err = io.StringIO(), io.StringIO()
    seen = {}
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        with Pool(n, forward_output=True) as pool:
            futs = {}
            for tag in ("t0", "t1", "t2"):
                fut = pool.submit(print_between, tag, arrived, go)
                # Runs once the future completes: what the call printed is there already.
                fut.add_done_callback(lambda f, tag=tag: seen.setdefault(tag, out.getvalue()))
                futs[tag] = fut
            for _ in range(n):
                arrived.get(timeout=30)  # all three run at once: three workers
            for _ in range(n):
                go.put(None)
            ids = {f.result(timeout=30) for f in futs.values()}
    assert len(ids) == n
    for tag in futs:
        assert f"{tag} start\n" in seen[tag] and f"{tag} end\n" in seen[tag], seen
        assert out.getvalue().count(f"{tag} ") == 2
        assert err.getvalue().count(f"{tag} to stderr\n") == 1


def test_forwarded_output_of_pool_call_async_is_delivered_before_it_returns():
    async def main(pool):
        for i in range(5):
            assert await pool.call_async(print, "line", i) is None
            assert out.getvalue().endswith(f"line {i}\n")

    out = io.StringIO()
    with contextlib.redirect_stdout(out), Pool(2, forward_output=True) as pool:
        asyncio.run(main(pool))
        assert pool.submit(print, "sync").result(timeout=30) is None
        assert out.getvalue().endswith("sync\n")


def test_pool_without_forward_output_writes_nothing_to_redirected_stdout():
    out = io.StringIO()
    with contextlib.redirect_stdout(out), Pool(1) as pool:
        assert pool.submit(print, "to fd 1").result(timeout=30) is None
    assert out.getvalue() == ""


def test_forward_output_pool_in_a_subinterpreter_is_refused():
    with interpreters.create() as interp:
        with pytest.raises(interpreters.ExecutionFailed, match="main interpreter"):
            interp.exec(
                "from subinterpreters.futures import InterpreterPoolExecutor\n"
                "InterpreterPoolExecutor(forward_output=True)"
            )
