"""Module-level functions for the PEP 734 benchmarks' ``interp.call(f, 1)``.

A callable crossing by reference (pickle) is imported by name in the target interpreter, so this
module must be importable there too: bench.py puts this directory on the subinterpreter's
sys.path first (``interp.exec("import sys; sys.path.insert(0, ...)")``).
"""


def inc(x):
    return x + 1
