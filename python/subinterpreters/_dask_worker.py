"""The half of :mod:`subinterpreters.dask` that runs in a pool's worker interpreter.

It must import neither ``distributed`` (which imports ``psutil``, a single-phase extension that
isolated interpreters refuse) nor ``subinterpreters.dask``: a task arrives as a pickle of dask's
own task object (``dask._task_spec``: pure Python) and of its dependencies' values.
"""

import pickle
import threading
import time


def run(payload):
    """Run one pickled ``(task, data)``: ``(pickled result, start, stop, thread ident, id)``."""
    task, data = pickle.loads(payload)
    del payload
    start = time.time()
    result = task(data)
    stop = time.time()
    try:
        blob = pickle.dumps(result, 5)
    except Exception:  # a lambda, a local class, ...: cloudpickle (a dask dependency) by value
        import cloudpickle

        blob = cloudpickle.dumps(result, 5)
    from subinterpreters import lowlevel

    return blob, start, stop, threading.get_ident(), int(lowlevel.get_current())
