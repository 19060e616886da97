"""The half of :mod:`subinterpreters.futures` that runs inside each worker interpreter.

A worker's OS thread enters its interpreter once and stays in :func:`serve`, which takes tasks
from the pool's one task queue (a Rust queue: the wait happens with this interpreter's GIL
released), so a task goes to whichever worker is idle first. Each task is claimed before it
runs (a cancelled one is skipped), as this worker's ``holder`` number: from then on the
submitting side sees the call running, and, should the worker die before answering, finds the
call it held (``lowlevel._claim_release``) and fails it at once. Calls are made with
``_protocol.run`` inside ``lowlevel._claim_run``, which takes the claim, so that an interrupt
of that task strikes it and nothing else (the loop here, the next task); the reply goes to the
queue the task names. Tasks and replies are the call protocol's (see ``_protocol``).
"""

from subinterpreters import _protocol as _p
from subinterpreters import lowlevel as _ll

# The main interpreter's main script (set at boot), for pickles of its __main__ functions.
MAIN_FILE = None

# Set by tests (through a task) to make the serve loop fail as a damaged interpreter would:
# "after" the current call's reply is put; "before" it is, the call left unanswered.
_damaged = None


def damage(when="after"):
    """Make this worker's serve loop fail when the current call returns (for tests)."""
    global _damaged
    _damaged = when


def serve(tq, holder):
    """Run tasks from queue ``tq`` until a ``None`` task arrives."""
    get = _ll._queue_get
    put = _ll._queue_put
    put_get = _ll._queue_put_get
    claim_run = _ll._claim_run
    claimed = _p.claimed
    run = _p.run
    main_file = MAIN_FILE
    # The last reply, put when the next task is taken: its reader is woken once this thread
    # has let go of the GIL to wait (on 3.11 it would otherwise wake only to wait for it).
    answer = None
    # The task this worker claimed and has no reply for yet. If the loop ends with one, the
    # claim is kept (not released): the pool's side fails that call (see futures._worker_main).
    task = None
    try:
        while True:
            if answer is None:
                task = get(tq, True, None)[0]
            else:
                # Dropped only once put: an exception in the wait after the put would put it
                # again below, a duplicate its reader ignores.
                task = put_get(answer[0], answer[1], tq)[0]
                answer = None
            if task is None:
                return
            tid, claim, rq, fdata, akind, adata, mainfile = task
            out = claim_run(claim, holder, run, fdata, akind, adata, mainfile or main_file)
            if out is None:
                task = None
                continue  # cancelled while it waited: no reply
            reply = (tid,) + claimed(out)
            if _damaged == "before":
                raise SystemError("worker interpreter damaged")
            answer = (rq, reply)
            task = None
            if _damaged:
                raise SystemError("worker interpreter damaged")
    finally:
        if answer is not None:
            try:
                put(answer[0], answer[1], 0, False, None)
            except RuntimeError:  # a QueueError: its event loop is gone, nobody waits for it
                pass
        if task is None:
            _ll._claim_release(holder)
