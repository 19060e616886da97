"""subinterpreters.interpreters queues: values, blocking, timeouts, handles, unbound items, bad
input. On 3.14+ the cases that describe shared behaviour also run against concurrent.interpreters.
"""

from __future__ import annotations

import pickle
import sys
import threading
import time

import pytest

ours = pytest.importorskip("subinterpreters.interpreters")

IMPLS = [ours]
if sys.version_info >= (3, 14):
    from concurrent import interpreters as stdlib

    IMPLS.append(stdlib)


@pytest.fixture(params=IMPLS, ids=lambda m: m.__name__.split(".")[0])
def impl(request):  # noqa: N802 - reads like the module it stands for
    return request.param


@pytest.fixture
def sub():
    interp = ours.create()
    yield interp
    interp.close()


VALUES = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    2**100,
    -(2**90) + 7,
    1.5,
    float("inf"),
    "",
    "text \u20ac \U0001f600",
    b"",
    b"\x00bytes",
    (),
    (1, ("nested", b"x"), None, 2.5),
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_shareable_values_round_trip(impl, value):
    q = impl.create_queue()
    q.put(value)
    got = q.get()
    assert got == value
    assert type(got) is type(value)


def test_other_values_cross_by_pickle(impl):
    q = impl.create_queue()
    item = {"a": [1, 2], "b": {3}}
    q.put(item)
    got = q.get()
    assert got == item and got is not item


def test_unpicklable_value_raises_not_shareable_and_queues_nothing():
    q = ours.create_queue()
    with pytest.raises(ours.NotShareableError) as info:
        q.put(lambda: 1)
    assert "does not support cross-interpreter data" in str(info.value)
    assert isinstance(info.value.__cause__, pickle.PicklingError | AttributeError | TypeError)
    assert q.qsize() == 0


def test_fifo_sizes_and_flags(impl):
    q = impl.create_queue(maxsize=3)
    assert (q.maxsize, q.qsize(), q.empty(), q.full()) == (3, 0, True, False)
    for i in range(3):
        q.put_nowait(i)
    assert (q.qsize(), q.empty(), q.full()) == (3, False, True)
    with pytest.raises(impl.QueueFull):
        q.put_nowait(3)
    assert [q.get_nowait() for _ in range(3)] == [0, 1, 2]
    with pytest.raises(impl.QueueEmpty):
        q.get_nowait()


def test_queue_errors_are_stdlib_queue_errors(impl):
    import queue

    q = impl.create_queue(maxsize=1)
    q.put(1)
    with pytest.raises(queue.Full):
        q.put(2, block=False)
    q.get()
    with pytest.raises(queue.Empty):
        q.get(block=False)


def test_get_timeout_honours_fractions_of_a_second():
    q = ours.create_queue()
    start = time.monotonic()
    with pytest.raises(ours.QueueEmpty, match=r"^queue \d+ is empty$"):
        q.get(timeout=0.2)
    elapsed = time.monotonic() - start
    assert 0.2 <= elapsed < 1.0  # 3.14's queues round a timeout to whole seconds


def test_put_timeout_on_a_full_queue():
    q = ours.create_queue(maxsize=1)
    q.put(1)
    start = time.monotonic()
    with pytest.raises(ours.QueueFull, match=r"^queue \d+ is full$"):
        q.put(2, timeout=0.15)
    assert 0.15 <= time.monotonic() - start < 1.0
    assert q.qsize() == 1


def test_negative_timeout_is_refused(impl):
    q = impl.create_queue()
    with pytest.raises(ValueError, match="timeout value must be non-negative"):
        q.get(timeout=-1)
    with pytest.raises(ValueError, match="timeout value must be non-negative"):
        q.put(1, timeout=-1)


def test_blocked_get_wakes_at_once_on_put():
    q = ours.create_queue()
    got = []
    t = threading.Thread(target=lambda: got.append((q.get(), time.monotonic())))
    t.start()
    time.sleep(0.1)
    sent = time.monotonic()
    q.put("x")
    t.join(5)
    assert got and got[0][0] == "x"
    assert got[0][1] - sent < 0.05  # no polling interval


def test_blocked_put_wakes_when_room_is_made():
    q = ours.create_queue(maxsize=1)
    q.put(0)
    done = threading.Event()
    t = threading.Thread(target=lambda: (q.put(1), done.set()))
    t.start()
    time.sleep(0.1)
    assert not done.is_set()
    assert q.get() == 0
    assert done.wait(5)
    assert q.get() == 1
    t.join()


def test_round_trips_through_another_interpreter(sub):
    requests, replies = ours.create_queue(), ours.create_queue()
    sub.prepare_main(requests=requests, replies=replies)
    worker = sub.call_in_thread(
        exec,
        "while (item := requests.get()) is not None:\n    replies.put((item, item * 2))",
    )
    try:
        for i in range(500):
            requests.put(i)
            assert replies.get(timeout=10) == (i, 2 * i)
    finally:
        requests.put(None)
        worker.join(10)
    assert not worker.is_alive()


def test_queue_crosses_as_the_same_queue(sub):
    outer, inner = ours.create_queue(), ours.create_queue()
    outer.put(inner)
    assert outer.get() is inner
    sub.prepare_main(outer=outer)
    outer.put(inner)
    sub.exec("q = outer.get(timeout=5)\nq.put(('from sub', q.id))")
    assert inner.get(timeout=5) == ("from sub", inner.id)


def test_one_handle_per_id_and_pickling(impl):
    q = impl.create_queue()
    assert impl.Queue(q.id) is q
    assert pickle.loads(pickle.dumps(q)) is q
    assert hash(q) == hash(q.id)
    assert repr(q) == f"Queue({q.id})"


def test_unknown_and_bad_ids(impl):
    with pytest.raises(TypeError):
        impl.Queue("1")
    # 3.14 keeps QueueNotFoundError in its _queues submodule; we export it.
    not_found = getattr(impl, "QueueNotFoundError", None) or impl._queues.QueueNotFoundError
    with pytest.raises(not_found):
        impl.Queue(10**9)


def test_queue_is_destroyed_with_its_last_handle():
    q = ours.create_queue()
    qid = q.id
    q.put("left behind")
    del q
    with pytest.raises(ours.QueueNotFoundError, match=f"^queue {qid} not found$"):
        ours.Queue(qid)


def test_items_of_a_destroyed_interpreter_follow_their_rule():
    q = ours.create_queue()
    interp = ours.create()
    interp.prepare_main(q=q)
    interp.exec(
        "from subinterpreters import interpreters as I\n"
        "q.put('replace')\n"
        "q.put('remove', unbounditems=I.UNBOUND_REMOVE)\n"
        "q.put('error', unbounditems=I.UNBOUND_ERROR)\n"
    )
    q.put("mine")
    assert q.qsize() == 4
    interp.close()
    assert q.qsize() == 3
    assert q.get() is ours.UNBOUND
    with pytest.raises(ours.ItemInterpreterDestroyed):
        q.get()
    assert q.get() == "mine"


# The same 1 MiB-ish value built here and in the sub: bytes, and str of 1-, 2- and 4-byte units.
LARGE_VALUES = [
    "bytes(range(256)) * 4096",
    "'axyz' * 100_000",
    "'\\u20acxyz' * 100_000",
    "'\\U0001f600xyz' * 100_000",
]


@pytest.mark.parametrize("expr", LARGE_VALUES)
def test_large_values_cross_intact_both_ways_and_die_with_their_sender(expr):
    # From 8 KiB a bytes item, or a str item of 8 Ki code units, borrows the putter's object
    # (the getter copies it once).
    big = eval(expr)
    q = ours.create_queue()
    q.put(big)
    q.put(("tuple", big[:9000]))
    assert q.get() == big
    assert q.get() == ("tuple", big[:9000])
    interp = ours.create()
    try:
        interp.prepare_main(q=q)
        q.put(big)  # main -> sub: the sub copies it, main lets go of its object later
        interp.exec("got = q.get(timeout=5)\nq.put((len(got), got[:3], got[-3:]))")
        assert q.get(timeout=5) == (len(big), big[:3], big[-3:])
        interp.exec(f"data = {expr}\nq.put(data)\nq.put(data[:20000])")
        got = q.get(timeout=5)  # sub -> main
        assert got == big and type(got) is type(big)
        assert q.qsize() == 1  # the sub's second item, still borrowing its object
    finally:
        interp.close()
    # Closing the sub unbinds its item (the borrow goes with it, in the sub, before it is gone).
    assert q.get() is ours.UNBOUND
    assert q.empty()


def test_bad_unbounditems_is_refused(impl):
    with pytest.raises(NotImplementedError):
        impl.create_queue(unbounditems="nope")
    q = impl.create_queue()
    with pytest.raises(NotImplementedError):
        q.put(1, unbounditems=object())
    assert q.qsize() == 0


def test_unbound_constants_are_exported():
    assert ours.create_queue().unbounditems is ours.UNBOUND
    q = ours.create_queue(unbounditems=ours.UNBOUND_ERROR)
    assert q.unbounditems is ours.UNBOUND_ERROR
    assert {"UNBOUND", "UNBOUND_ERROR", "UNBOUND_REMOVE"} <= set(ours.__all__)


class _PythonQueue:
    """3.14's Queue method signatures, as plain Python methods: their argument errors are the
    reference for ours, which run in Rust without a frame."""

    def put(self, obj, block=True, timeout=None, *, unbounditems=None):
        pass

    def put_nowait(self, obj, *, unbounditems=None):
        pass

    def get(self, block=True, timeout=None):
        pass

    def get_nowait(self):
        pass

    def qsize(self):
        pass

    def empty(self):
        pass


BAD_CALLS = [
    ("put", (), {}),
    ("put", (1, True, None, 4), {}),
    ("put", (1, True, None, 4), {"unbounditems": None}),
    ("put", (1,), {"obj": 2}),
    ("put", (1,), {"timeout": 1, "block": True, "nope": 3}),
    ("put_nowait", (), {}),
    ("put_nowait", (1, 2), {}),
    ("put_nowait", (1, 2), {"unbounditems": None}),
    ("put_nowait", (1,), {"block": False}),
    ("get", (True, None, 3), {}),
    ("get", (True,), {"block": False}),
    ("get_nowait", (1,), {}),
    ("get_nowait", (), {"block": False}),
    ("qsize", (1,), {}),
    ("empty", (), {"x": 1}),
]


@pytest.mark.parametrize(("method", "args", "kwargs"), BAD_CALLS, ids=repr)
def test_argument_errors_read_as_a_python_methods(method, args, kwargs):
    q = ours.create_queue()
    with pytest.raises(TypeError) as expected:
        getattr(_PythonQueue(), method)(*args, **kwargs)
    with pytest.raises(TypeError) as got:
        getattr(q, method)(*args, **kwargs)
    want = str(expected.value).replace("_PythonQueue.", "Queue.")
    # 3.14+ appends a spelling suggestion ("Did you mean ...?") to unknown keywords.
    assert want.startswith(str(got.value))
    assert q.qsize() == 0


def test_methods_take_their_arguments_by_keyword_too():
    q = ours.create_queue()
    q.put(obj=1, block=False, timeout=None, unbounditems=ours.UNBOUND_REMOVE)
    q.put_nowait(obj=2, unbounditems=ours.UNBOUND_ERROR)
    q.put(3, unbounditems=None)
    assert (q.qsize(), q.empty(), q.full()) == (3, False, False)
    assert q.get(block=False) == 1
    assert q.get(timeout=0.5) == 2
    assert q.get(True, 0.5) == 3
    assert q.empty()


def test_queue_methods_of_a_destroyed_queue_raise_not_found():
    from subinterpreters import lowlevel

    q = ours.create_queue()
    lowlevel._queue_destroy(q.id)
    for call in (q.qsize, q.empty, q.full, q.get_nowait, lambda: q.put(1), lambda: q.get()):
        with pytest.raises(ours.QueueNotFoundError, match=f"^queue {q.id} not found$"):
            call()


def test_queue_subclass_keeps_its_handle():
    class Sub(ours.Queue):
        __slots__ = ("extra",)

    from subinterpreters import lowlevel

    qid = lowlevel._queue_create(0, 3, 1)
    q = Sub._adopt(qid)
    assert type(q) is Sub and isinstance(q, ours.Queue) and ours.Queue(qid) is q
    q.extra = "kept"
    q.put("x")
    assert q.get() == "x"
    del q
    with pytest.raises(ours.QueueNotFoundError):
        ours.Queue(qid)


def test_many_threads_lose_and_duplicate_nothing():
    q = ours.create_queue(maxsize=16)
    per, producers = 2000, 4
    seen = []
    lock = threading.Lock()

    def consume():
        while (item := q.get(timeout=10)) is not None:
            with lock:
                seen.append(item)

    consumers = [threading.Thread(target=consume) for _ in range(producers)]
    for t in consumers:
        t.start()
    makers = [
        threading.Thread(target=lambda p=p: [q.put((p, i)) for i in range(per)])
        for p in range(producers)
    ]
    for t in makers:
        t.start()
    for t in makers:
        t.join()
    for _ in consumers:
        q.put(None)
    for t in consumers:
        t.join(30)
    assert sorted(seen) == [(p, i) for p in range(producers) for i in range(per)]


@pytest.mark.parametrize("call", ["q.get()", "q.put(2)"])
def test_ctrl_c_interrupts_a_blocked_call_in_the_main_thread(call):
    import signal
    import subprocess

    script = (
        # Python keeps SIGINT ignored if its parent ignored it (a background job): undo that.
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "import sys, time\n"
        "from subinterpreters import interpreters as I\n"
        "q = I.create_queue(maxsize=1)\n"
        f"{'q.put(1)' if 'put' in call else 'pass'}\n"
        "print('blocking', flush=True)\n"
        "start = time.monotonic()\n"
        "try:\n"
        f"    {call}\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', round(time.monotonic() - start, 3), flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "blocking"
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        # The wait checks for signals every 100 ms: the timeout only bounds a hang.
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert out.startswith("interrupted"), (out, err)
    assert proc.returncode == 0, err


def test_put_get_answers_then_waits_for_the_next_item():
    from subinterpreters import lowlevel

    answers, tasks = ours.create_queue(), ours.create_queue()
    got = []

    def worker():
        got.append(lowlevel._queue_put_get(answers.id, "first answer", tasks.id))

    t = threading.Thread(target=worker)
    t.start()
    # The answer arrives while the worker waits for its next task.
    assert answers.get(timeout=10) == "first answer"
    assert t.is_alive()
    tasks.put(("next", 2))
    t.join(10)
    assert got == [(("next", 2), None)]
    # An item already waiting is taken at once; an answer for a queue that is gone is
    # dropped; a missing task queue raises, as _queue_get does, before anything is put.
    tasks.put(3)
    gone = lowlevel._queue_create(0, 3, 0)
    lowlevel._queue_destroy(gone)
    assert lowlevel._queue_put_get(gone, "dropped", tasks.id) == (3, None)
    with pytest.raises(ours.QueueNotFoundError):
        lowlevel._queue_put_get(answers.id, "x", gone)
    with pytest.raises(TypeError):
        lowlevel._queue_put_get(answers.id, "x")
    assert answers.empty()


def test_containers_round_trip_through_an_interpreter_and_exit_cleanly():
    # CPython 3.12.1 corrupts its heap when pickle.loads(..., buffers=...) runs in a
    # subinterpreter, which the queues' pickle fallback once did for every dict, list and
    # bytearray: the process then aborted at exit. A fresh process shows the exit status.
    from conftest import assert_clean_exit, run_python

    proc = run_python(
        """
        from subinterpreters import interpreters
        q, r = interpreters.create_queue(), interpreters.create_queue()
        with interpreters.create() as interp:
            interp.prepare_main(q=q, r=r)
            sent = [{"a": [1, 2, {"b": bytearray(b"xy")}]}, [{"k": i} for i in range(100)]]
            for item in sent:
                q.put(item)
            interp.exec("r.put(q.get()); r.put(q.get())")
            assert [r.get(), r.get()] == sent
        print("done")
        """
    )
    assert_clean_exit(proc, expect_stdout="done")
