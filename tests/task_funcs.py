"""Module-level functions the pool and asyncio tests send to worker interpreters (a module's
function crosses by reference: each worker imports this module, found on the tests' path)."""

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
