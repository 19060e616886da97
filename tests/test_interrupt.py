"""Interpreter.interrupt(): a pure-Python loop, time.sleep, a blocking queue get/put and wait()
inside the interpreter, an interpreter running nothing, bad input; the interpreter stays usable.
"""

from __future__ import annotations

import threading
import time

import pytest
from conftest import run_python

ours = pytest.importorskip("subinterpreters.interpreters")

# A runaway loop. On 3.11 it holds the one shared GIL; the thread that interrupts it gets the GIL
# back because our nudger (crates/ext/src/interp/nudge.rs) makes the loop let go.
LOOP = "while True: pass"


@pytest.fixture
def sub():
    interp = ours.create()
    yield interp
    interp.close()


class Run:
    """``interp.exec(code)`` in a thread; ``code`` first puts something on ``started``."""

    def __init__(self, interp, code, **shared):
        self.started = ours.create_queue()
        interp.prepare_main(started=self.started, **shared)
        self.outcome = None
        self.thread = threading.Thread(target=self._run, args=(interp, code))
        self.thread.start()
        self.started.get(timeout=30)  # the code is running

    def _run(self, interp, code):
        try:
            interp.exec(code)
            self.outcome = "finished"
        except ours.ExecutionFailed as exc:
            self.outcome = exc.excinfo.type.__name__

    def result(self):
        self.thread.join()
        return self.outcome


def test_interrupts_a_pure_python_loop_and_the_interpreter_stays_usable(sub):
    run = Run(sub, "started.put(1)\n" + LOOP)
    assert sub.interrupt() is True
    assert run.result() == "KeyboardInterrupt"
    assert sub.call(pow, 2, 5) == 32
    assert not sub.is_running()


def test_a_busy_run_leaves_the_other_interpreters_threads_running():
    # The run spins in pure Python until the main interpreter has put five items, each after a
    # sleep that gives the GIL away: on 3.11 only the nudger gets it back for this thread.
    busy = ours.create()
    q = ours.create_queue()
    run = Run(busy, "started.put(1)\nwhile q.qsize() < 5: pass\nq.put('done')", q=q)
    for i in range(5):
        time.sleep(0.002)
        assert busy.is_running()  # a nudger's passing thread state is not a thread of its own
        q.put(i)
    assert run.result() == "finished"
    assert [q.get_nowait() for _ in range(6)] == [0, 1, 2, 3, 4, "done"]
    busy.close()  # right after a busy run: nothing of a nudger is left in it
    assert busy.id not in [i.id for i in ours.list_all()]


def test_closing_after_a_busy_run_while_the_main_interpreter_spins():
    # The closing thread waits for the nudgers of the run that just ended while this thread
    # spins in pure Python; on 3.11 it must still get the GIL back (it asks every interval).
    for _ in range(8):
        interp = ours.create()
        closed = []

        def work(interp=interp, closed=closed):
            interp.exec(
                "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 0.03: pass"
            )
            interp.close()
            closed.append(True)

        t = threading.Thread(target=work)
        t.start()
        while not closed:
            pass
        t.join()


def test_a_forked_child_interrupts_a_pure_loop_too():
    # The parent's watcher and nudger threads do not exist in a forked child: the child starts
    # its own (3.11), so interrupt() reaches a pure loop there as well.
    proc = run_python(
        """
        import os, threading
        from subinterpreters import interpreters as ours
        interp = ours.create()
        interp.exec("import time\\nt = time.monotonic()\\nwhile time.monotonic() - t < 0.05: pass")
        interp.close()
        pid = os.fork()
        if pid == 0:
            interp = ours.create()
            started = ours.create_queue()
            interp.prepare_main(started=started)
            out = []
            def run():
                try:
                    interp.exec("started.put(1)\\nwhile True: pass")
                except ours.ExecutionFailed as exc:
                    out.append(exc.excinfo.type.__name__)
            t = threading.Thread(target=run)
            t.start()
            started.get()
            interp.interrupt()
            t.join()
            interp.close()
            os._exit(0 if out == ["KeyboardInterrupt"] else 3)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "child 0" in proc.stdout, (proc.stdout, proc.stderr)


def test_the_exception_class_is_the_one_given(sub):
    run = Run(sub, "started.put(1)\n" + LOOP)
    assert sub.interrupt(TimeoutError)
    assert run.result() == "TimeoutError"


def test_interrupt_is_raised_once_and_can_be_caught(sub):
    out = ours.create_queue()
    code = """
try:
    started.put(1)
    LOOP
except KeyboardInterrupt:
    out.put('caught')
total = 0
for i in range(200_000):  # checks between bytecodes: a second strike would show here
    total += i
out.put(total)
"""
    run = Run(sub, code.replace("LOOP", LOOP), out=out)
    sub.interrupt()
    assert run.result() == "finished"
    assert out.get_nowait() == "caught"
    assert out.get_nowait() == sum(range(200_000))


def test_time_sleep_stops_when_it_returns(sub):
    run = Run(sub, "import time\nstarted.put(1)\ntime.sleep(0.3)\n" + LOOP)
    assert sub.interrupt()
    assert run.result() == "KeyboardInterrupt"
    assert sub.call(int, "7") == 7


def test_blocking_queue_get_inside_wakes_up_and_raises_taking_nothing(sub):
    q = ours.create_queue()
    run = Run(sub, "started.put(1)\nq.get()", q=q)
    assert sub.interrupt()
    assert run.result() == "KeyboardInterrupt"
    q.put("kept")
    assert q.get_nowait() == "kept"


def test_blocking_queue_put_inside_wakes_up_and_raises(sub):
    q = ours.create_queue(1)
    q.put("full")
    run = Run(sub, "started.put(1)\nq.put('no room')", q=q)
    assert sub.interrupt()
    assert run.result() == "KeyboardInterrupt"
    assert q.get_nowait() == "full"
    assert q.empty()


def test_wait_inside_wakes_up_and_raises(sub):
    a, b = ours.create_queue(), ours.create_queue()
    code = "from subinterpreters import interpreters\nstarted.put(1)\ninterpreters.wait([a, b])"
    run = Run(sub, code, a=a, b=b)
    assert sub.interrupt(SystemExit)
    assert run.result() == "SystemExit"


def test_a_second_run_is_not_struck_by_an_earlier_interrupt(sub):
    run = Run(sub, "started.put(1)\n" + LOOP)
    # One interrupt: a second one may land after the first was delivered, inside the run's own
    # handling of it, which is a second interrupt of that run, not a stale one.
    sub.interrupt()
    assert run.result() == "KeyboardInterrupt"
    out = ours.create_queue()
    sub.prepare_main(out=out)
    sub.exec("for i in range(100_000): pass\nout.put('done')")
    assert out.get_nowait() == "done"


def test_an_interpreter_running_nothing_returns_false(sub):
    assert sub.interrupt() is False
    assert sub.call(pow, 3, 2) == 9
    assert ours.get_main().interrupt() is False


@pytest.mark.parametrize(
    "exc",
    [KeyboardInterrupt(), "KeyboardInterrupt", int, None, type("Custom", (Exception,), {})],
    ids=repr,
)
def test_bad_exception_argument_is_refused(sub, exc):
    with pytest.raises(TypeError):
        sub.interrupt(exc)


def test_closed_interpreter_raises_not_found():
    interp = ours.create()
    interp.close()
    with pytest.raises(ours.InterpreterNotFoundError):
        interp.interrupt()
