""":class:`TaskInterrupted`, what a call interrupted through its claim fails with.

It sits low in the package, apart from ``_errors``: the call protocol makes it when it decodes an
``INTERRUPTED`` reply, and its base class comes from ``concurrent.futures``, whose module
(logging, threading) is too heavy for ``_errors``, which every interpreter using
:mod:`subinterpreters.interpreters` loads. :mod:`subinterpreters.futures` exports it.
"""

from concurrent.futures import _base

__all__ = ["TaskInterrupted"]


class TaskInterrupted(_base.CancelledError):
    """A call was interrupted while it ran: by ``shutdown(interrupt=True)``, by the cancellation
    of the coroutine awaiting it, or by Ctrl-C while the pool was waited for. Its
    ``__cause__`` is what the call raised (a ``KeyboardInterrupt``, raised in it)."""

    __module__ = "subinterpreters.futures"
