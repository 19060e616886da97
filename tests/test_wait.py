"""interpreters.wait() and wait_async(): several queues at once, items already there or arriving
from another interpreter, timeouts, destroyed queues, bad input."""

from __future__ import annotations

import asyncio
import threading

import pytest

ours = pytest.importorskip("subinterpreters.interpreters")
from subinterpreters import lowlevel as _ll  # noqa: E402


@pytest.fixture
def sub():
    interp = ours.create()
    yield interp
    interp.close()


def test_items_already_present_come_back_in_the_order_given_and_stay_queued():
    a, b, c = ours.create_queue(), ours.create_queue(), ours.create_queue()
    c.put("c")
    a.put("a")
    assert ours.wait([a, b, c]) == [a, c]
    assert ours.wait([c, b, a]) == [c, a]
    assert ours.wait(q for q in (b, c)) == [c]  # any iterable
    assert (a.qsize(), c.qsize()) == (1, 1)  # nothing taken


def test_timeout_zero_only_looks():
    a, b = ours.create_queue(), ours.create_queue()
    assert ours.wait([a, b], 0) == []
    assert ours.wait([], 0) == []
    b.put(1)
    assert ours.wait([a, b], timeout=0) == [b]


def test_timeout_passes_with_every_queue_empty():
    a, b = ours.create_queue(), ours.create_queue()
    assert ours.wait([a, b], 0.05) == []


def test_item_put_later_by_another_interpreter_wakes_the_wait(sub):
    a, b = ours.create_queue(), ours.create_queue()
    sub.prepare_main(b=b)
    got = []
    waiter = threading.Thread(target=lambda: got.append(ours.wait([a, b])))
    waiter.start()
    sub.exec("b.put('from sub')")
    waiter.join()
    assert got == [[b]]
    assert b.get_nowait() == "from sub"


def test_wait_inside_an_interpreter_for_a_queue_of_main(sub):
    a, b = ours.create_queue(), ours.create_queue()
    sub.prepare_main(a=a, b=b)
    done = ours.create_queue()
    sub.prepare_main(done=done)
    runner = threading.Thread(
        target=sub.exec,
        args=(
            "from subinterpreters import interpreters\n"
            "ready = interpreters.wait([a, b])\n"
            "done.put(tuple(q.id for q in ready))\n",
        ),
    )
    runner.start()
    a.put("x")
    runner.join()
    assert done.get(timeout=10) == (a.id,)


def test_destroyed_queue_counts_as_ready_and_its_get_raises():
    a, b = ours.create_queue(), ours.create_queue()
    _ll._queue_destroy(b.id)
    assert ours.wait([a, b]) == [b]
    with pytest.raises(ours.QueueNotFoundError):
        b.get_nowait()


def test_queue_destroyed_while_waiting_wakes_the_wait():
    a, b = ours.create_queue(), ours.create_queue()
    got = []
    waiter = threading.Thread(target=lambda: got.append(ours.wait([a, b])))
    waiter.start()
    _ll._queue_destroy(a.id)
    waiter.join()
    assert got == [[a]]


@pytest.mark.parametrize(
    ("args", "exc"),
    [
        (([1, 2],), TypeError),
        ((None,), TypeError),
        (([], -1), ValueError),
        (([], "soon"), TypeError),
    ],
    ids=repr,
)
def test_bad_input_raises(args, exc):
    with pytest.raises(exc):
        ours.wait(*args)


def test_wait_async_with_items_present_and_arriving(sub):
    a, b = ours.create_queue(), ours.create_queue()
    sub.prepare_main(b=b)

    async def main():
        a.put(0)
        first = await ours.wait_async([a, b])
        a.get_nowait()
        # Nothing there yet: the put comes from another interpreter, on another thread.
        waiting = asyncio.ensure_future(ours.wait_async([a, b]))
        await asyncio.sleep(0)
        assert not waiting.done()
        await asyncio.to_thread(sub.exec, "b.put('later')")
        return first, await waiting

    first, later = asyncio.run(main())
    assert first == [a]
    assert later == [b]


def test_wait_async_timeout_and_destroyed_queue():
    a, b = ours.create_queue(), ours.create_queue()

    async def main():
        empty = await ours.wait_async([a, b], 0.05)
        nothing = await ours.wait_async([a, b], 0)
        pending = asyncio.ensure_future(ours.wait_async([a, b]))
        await asyncio.sleep(0)
        _ll._queue_destroy(b.id)
        return empty, nothing, await pending

    assert asyncio.run(main()) == ([], [], [b])
