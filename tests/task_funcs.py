"""Module-level functions and classes the pool and asyncio tests send to worker interpreters.

What crosses by reference (a function using module globals, a class) makes each worker import
its module: this one, found on the tests' path, imports nothing heavy. A test module would bring
pytest into every worker interpreter, which CPython 3.12/3.13 do not survive reliably."""

import time


def mul(x, y):
    return x * y


def current_id():
    import subinterpreters.lowlevel as ll

    return int(ll.get_current())


def rendezvous(mine, other):
    # Signals that it runs, then waits for the other task's signal while still running: two of
    # these return only if they ran at the same time (run one after the other, the first times
    # out). No clock and no wall-time bound, so a busy machine cannot fail it.
    mine.put(1)
    return other.get(timeout=60)


def sleep_and_return(seconds, value):
    time.sleep(seconds)
    return value


def ident(x):
    return x


def fail(exctype, msg=None):
    raise exctype(msg)


def raise_value_error(msg):
    raise ValueError(msg)


def get_name():
    return __name__


def thread_name():
    import _thread

    return _thread._get_name()


class CustomError(Exception):
    pass


class Box:
    """A result that a weak reference can watch (a list or dict cannot be)."""

    def __init__(self, value):
        self.value = value


def make_box(value):
    return Box(value)


class PickleShenanigans:
    """Pickles, but does not unpickle."""

    def __init__(self, value):
        if value == 1:
            raise RuntimeError("gotcha")

    def __reduce__(self):
        return (self.__class__, (1,))


INIT_STATE = "uninitialized"


def init_state(value):
    global INIT_STATE
    INIT_STATE = value


def read_state():
    return INIT_STATE


def raise_local():
    class Local(Exception):
        pass

    raise Local("inner")


def get_or_return(queue, value):
    if queue is not None:
        queue.get()  # blocks until the test releases it
    return value


def damage_worker():
    import subinterpreters._pool_worker as w

    w.damage()
    return "damaged"


def kill_worker():
    """Make the serve loop fail before this call's reply is put (a worker dying mid-call)."""
    import subinterpreters._pool_worker as w

    w.damage("before")
    return "never seen"


def signal_and_wait(started, release):
    # Tells the test it runs, then runs until the test releases it.
    started.put(1)
    release.get()
    return "released"


def record(log, value):
    # Leaves a trace of having run: a test counts what ran by what is in `log`.
    log.put(value)
    return value


def nested_pool(n):
    # A pool made inside a worker or interpreter: no daemon thread, everything joined.
    import threading

    from subinterpreters.futures import InterpreterPoolExecutor

    with InterpreterPoolExecutor(2) as pool:
        squares = list(pool.map(mul, range(n), range(n)))
        daemons = [t.name for t in threading.enumerate() if t.daemon]
    return sum(squares), daemons, threading.active_count()


def size_and_echo(data):
    return len(data), data


def spin(started, out=None):
    # A runaway call: says it runs, then loops until interrupted (and says so on `out`). On
    # 3.11 it sleeps a little each turn: a loop that never lets the one shared GIL go keeps
    # other interpreters' threads from running (docs/threads.md).
    import sys

    try:
        started.put(1)  # inside: the interrupt may come right after it
        if sys.version_info >= (3, 12):
            while True:
                pass
        while True:
            time.sleep(0.001)
    except KeyboardInterrupt:
        if out is not None:
            out.put("interrupted")
        raise


def print_between(tag, arrived, go):
    # Prints to both streams, around a barrier: a test runs several of these at once, one per
    # worker. One write per line: the writes of several interpreters interleave (print(a, b)
    # writes a, " ", b and "\n" apart, as it does for threads).
    import sys

    print(f"{tag} start\n", end="")
    arrived.put(tag)
    go.get(timeout=60)
    print(f"{tag} end\n", end="")
    print(f"{tag} to stderr\n", end="", file=sys.stderr)
    return current_id()
