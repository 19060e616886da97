"""The half of :mod:`subinterpreters.futures` that runs inside each worker interpreter.

A worker's OS thread enters its interpreter once and stays in :func:`serve`, which takes tasks
from the pool's one task queue (a Rust queue: the wait happens with this interpreter's GIL
released), so a task goes to whichever worker is idle first. Each task is claimed before it
runs (a cancelled one is skipped) and made with ``_protocol.run``; the reply goes to the queue
the task names. Tasks and replies are the call protocol's (see ``_protocol``).
"""

from subinterpreters import _protocol as _p
from subinterpreters import lowlevel as _ll

# The main interpreter's main script (set at boot), for pickles of its __main__ functions.
MAIN_FILE = None

# Set by tests (through a task) to make the serve loop fail as a damaged interpreter would.
_damaged = False


def damage():
    """Make this worker's serve loop fail after the current task (for tests)."""
    global _damaged
    _damaged = True


def serve(tq):
    """Run tasks from queue ``tq`` until a ``None`` task arrives."""
    get = _ll._queue_get
    put = _ll._queue_put
    put_get = _ll._queue_put_get
    take = _ll._claim_take
    run = _p.run
    main_file = MAIN_FILE
    # The last reply, put when the next task is taken: its reader is woken once this thread
    # has let go of the GIL to wait (on 3.11 it would otherwise wake only to wait for it).
    answer = None
    task = None
    try:
        while True:
            if answer is None:
                task = get(tq, True, None)[0]
            else:
                rq, reply = answer
                answer = None
                task = put_get(rq, reply, tq)[0]
            if task is None:
                return
            tid, claim, rq, fdata, akind, adata, mainfile = task
            if claim and not take(claim):
                task = None
                continue  # cancelled while it waited: no reply
            answer = (rq, (tid,) + run(fdata, akind, adata, mainfile or main_file))
            task = None
            if _damaged:
                raise SystemError("worker interpreter damaged")
    except BaseException as exc:
        if task is not None:  # claimed and not answered: answer with what went wrong
            answer = (task[2], (task[0], _p.RAISED, _p.raised(exc), 0.0))
        raise
    finally:
        if answer is not None:
            try:
                put(answer[0], answer[1], 0, False, None)
            except RuntimeError:  # a QueueError: its event loop is gone, nobody waits for it
                pass
