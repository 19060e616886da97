"""The functions tests/test_dask.py hands to Dask. A worker interpreter imports the module of each
function it runs: this one imports neither pytest nor Dask, which the test module does (Dask
imported inside an interpreter can abort CPython 3.12.1 and 3.13.0, docs in test_dask.py)."""


def inc(x):
    return x + 1


def add(x, y):
    return x + y


def where():
    import subinterpreters.lowlevel as ll

    return int(ll.get_current())


def rendezvous(mine, other):
    # Each of two tasks signals that it runs, then waits for the other's signal while still
    # running: both return only if they ran at the same time (no clock, no wall-time bound;
    # run one after the other, the first times out).
    mine.put(where())
    return where(), other.get(timeout=60)


class TaskError(Exception):
    pass


def fail(msg):
    raise TaskError(msg)
