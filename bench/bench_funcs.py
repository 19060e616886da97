"""Module-level functions for the benchmarks that run functions in other interpreters.

A callable crossing by reference (pickle) is imported by name in the target interpreter (or
process), so this module must be importable there too: bench.py puts this directory on the
subinterpreter's sys.path first (``interp.exec("import sys; sys.path.insert(0, ...)")``); pool
workers find it on the sys.path they inherit from the main interpreter.
"""


def inc(x):
    return x + 1


def ident(x):
    """The trivial task of the pool benchmarks."""
    return x


def burn(n):
    """The CPU-bound task of the pool benchmarks: pure Python, no allocation to speak of."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total
