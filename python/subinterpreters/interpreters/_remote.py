"""What ``Interpreter.prepare_main`` runs inside the target interpreter (calls and scripts go
through the call protocol, ``subinterpreters._protocol``).

The caller runs a constant script with ``run_string`` (so the compiled script is cached) and
passes the pickled values through ``shared``, which binds a reserved name in ``__main__``;
:func:`run_prepare` pops it again before binding the values.
"""

import sys

# The name the caller binds in __main__ through `shared`.
PREP = "__subinterpreters_prep__"


def run_prepare():
    """Bind the pickled values in ``__main__`` (Interpreter.prepare_main, non-native values)."""
    from subinterpreters import lowlevel

    ns = sys.modules["__main__"].__dict__
    data = ns.pop(PREP)
    ns.update(lowlevel._loads(data))  # the native format or a pickle
