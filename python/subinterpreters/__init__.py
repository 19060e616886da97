"""Real multi-core parallelism and isolation for Python through CPython's multiple interpreters.

The high-level API (CPython 3.14's ``concurrent.interpreters``) is
:mod:`subinterpreters.interpreters`; the low-level one (CPython 3.11's ``_xxsubinterpreters``,
implemented in Rust) is :mod:`subinterpreters.lowlevel`. This package module is imported in
every interpreter that uses the extension, so it stays light: no imports, no state.
"""

__all__ = ["lowlevel"]
__version__ = "0.1.0"
