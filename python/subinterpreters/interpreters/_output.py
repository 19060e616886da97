"""Forwarded output: ``create(forward_output=True)`` and
``InterpreterPoolExecutor(forward_output=True)``.

Inside a forwarding interpreter, ``sys.stdout`` and ``sys.stderr`` are :class:`Forward` objects:
each ``write`` puts ``(stream, text)`` on one queue shared by every forwarding interpreter. In the
main interpreter, :func:`deliver` takes what is queued and writes it to ``sys.stdout`` /
``sys.stderr`` as they are at that moment (so ``contextlib.redirect_stdout``, pytest's
``capsys``, Jupyter's and IDLE's streams get it), in the order it was written. It runs

- in the calling thread when an ``exec``/``call`` (and ``call_async``) of a forwarding
  interpreter returns, so everything a call printed is delivered before the call returns;
  for a forwarding pool, by its collector thread before it completes the futures of the
  replies it took (a worker's writes are queued before its reply), and by
  ``await pool.call_async(...)`` before it returns;
- in a daemon thread of the main interpreter that waits on the queue (with the GIL released,
  woken by the puts; it then lets 2 ms of output gather), so what a long call or a thread
  prints shows up while it runs. It lives while forwarding interpreters do, on 3.12+ only: on
  3.11 a thread of the main interpreter would make it refuse ``is_running`` (3.11's "more than
  one thread" rule), so there output arrives when the call returns;
- before a forwarding interpreter is closed, and at exit.

Taking and writing happen under one lock, so two deliveries never reorder the text.
"""

import io
import sys

from subinterpreters import _compat
from subinterpreters import lowlevel as _ll

# In the main interpreter only.
_queue = None  # the Queue every forwarding interpreter puts its writes on
_lock = None
forwarding: set = set()  # ids of the live interpreters made with forward_output=True
_drainer = None  # the delivering thread, while `forwarding` is not empty (3.12+)

_STREAMS = {1: "stdout", 2: "stderr"}

# On 3.11 a thread of the main interpreter makes it "have more than one thread" for
# is_running/get_current (3.11's rule): there output arrives when calls return, not meanwhile.
_LIVE = not _compat.PY311


def queue_id():
    """The id of the output queue, made on first use."""
    global _queue, _lock
    if _queue is None:
        import atexit
        import threading

        from ._queues import create as create_queue

        # Re-entrant: a forwarding interpreter collected during a write (a finalizer running
        # forget() there) delivers again on the same thread.
        _lock = threading.RLock()
        _queue = create_queue()
        atexit.register(deliver)
    return _queue.id


def track(interp):
    """``interp`` forwards its output: deliver it until it is closed or collected."""
    import weakref

    track_id(interp.id)
    weakref.finalize(interp, forget, interp.id)


def track_id(interp_id):
    """Interpreter ``interp_id`` forwards its output (a pool worker's): deliver it until
    :func:`forget` is called for it."""
    global _drainer
    forwarding.add(interp_id)
    if _LIVE and _drainer is None:
        import threading

        _drainer = threading.Thread(
            target=_deliver_forever, name="subinterpreters-output", daemon=True
        )
        _drainer.start()


def forget(interp_id):
    """``interp_id`` is gone: once no forwarding interpreter is left, the thread ends."""
    global _drainer
    if interp_id not in forwarding:
        return
    forwarding.discard(interp_id)
    deliver()
    if not forwarding and _drainer is not None:
        drainer, _drainer = _drainer, None
        try:
            _queue.put_nowait(None)  # wakes it: it sees it is no longer the drainer
        except Exception:
            return
        # Not joined: this may run in a finalizer, on any thread, even the drainer's.
        del drainer


def deliver():
    """Write everything queued so far to this interpreter's current sys.stdout/sys.stderr.

    Not flushed: the streams buffer as they do for this interpreter's own prints (a terminal's
    stdout is line-buffered, Jupyter's streams flush on their own)."""
    if _queue is None:
        return
    queue = _queue
    with _lock:
        while True:
            try:
                n = queue.qsize()
            except Exception:  # the queue is gone (at exit)
                return
            if not n:
                return
            for _ in range(n):
                item = queue.get_nowait()
                if type(item) is not tuple:
                    continue  # the drainer's wake-up, or an UNBOUND marker (its interpreter
                    # was destroyed first)
                stream = getattr(sys, _STREAMS.get(item[0], ""), None)
                if stream is None:
                    continue
                try:
                    stream.write(item[1])
                except Exception:
                    pass  # a broken stream loses this text, not the ones after it


# How long the delivering thread lets output gather after it woke up: calls deliver their own
# output when they return, so a burst of short calls costs it one wake-up, not one each.
_GATHER = 0.002


def _deliver_forever():
    import threading
    import time

    queue = [_queue]
    me = threading.current_thread()
    while _drainer is me:
        _ll._queue_wait(queue, None)  # interpreters.wait
        time.sleep(_GATHER)
        deliver()


def after_run(interp_id):
    """A run of ``interp_id`` ended in this thread: deliver its output if it forwards."""
    if interp_id in forwarding:
        deliver()


class Forward(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` of a forwarding interpreter: each write is queued for the
    main interpreter (see the module documentation)."""

    def __init__(self, qid, stream):
        from ._queues import Queue

        self._put = Queue(qid).put_nowait
        self._stream = stream
        self._name = f"<{_STREAMS[stream]}>"

    @property
    def name(self):
        return self._name

    @property
    def encoding(self):
        return "utf-8"

    @property
    def errors(self):
        return "strict"

    def writable(self):
        return True

    def isatty(self):
        return False

    def write(self, s):
        if type(s) is not str:
            if not isinstance(s, str):
                raise TypeError(f"write() argument must be str, not {type(s).__name__}")
            s = str(s)
        if s:
            self._put((self._stream, s))
        return len(s)

    def flush(self):
        pass


def install(qid):
    """Called in the new interpreter: its sys.stdout and sys.stderr forward from now on."""
    sys.stdout = Forward(qid, 1)
    sys.stderr = Forward(qid, 2)


_INSTALL = """\
__import__('subinterpreters.interpreters._output').interpreters._output.install(qid)
del qid
"""


def set_up(handle):
    """Make the new interpreter ``handle`` forward its output (main interpreter only); then
    :func:`track` its Interpreter object."""
    _ll.run_string(handle, _INSTALL, {"qid": queue_id()})
