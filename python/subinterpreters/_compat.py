"""What differs between the CPython versions this package runs on (3.11 to 3.15), in one place:
the version flags the other modules test, and the shims that make 3.11 behave as 3.12+ do.

Imports nothing of this package but ``lowlevel``, so any module may import it.
"""

import os
import sys

from subinterpreters import lowlevel as _ll

#: CPython 3.11: one GIL shared by every interpreter, and new interpreters start without the
#: main one's first ``sys.path`` entry.
PY311 = sys.version_info < (3, 12)

#: CPython 3.14+: the standard library has ``concurrent.interpreters`` and
#: ``concurrent.futures.InterpreterPoolExecutor``.
PY314 = sys.version_info >= (3, 14)


def process_cpu_count():
    """The CPUs this process may use: ``os.process_cpu_count()`` (3.13+), else
    ``os.cpu_count()``; None if unknown."""
    count = getattr(os, "process_cpu_count", None)
    return count() if count is not None else os.cpu_count()


def sys_path_0():
    """The entry CPython put first on the main interpreter's sys.path at startup (the script's
    directory, the current one for -m, '' for -c and stdin), None with -P/-I. CPython 3.12+
    give every new interpreter that entry too; 3.11 does not (see :func:`give_sys_path_0`)."""
    if sys.flags.safe_path or sys.flags.isolated:
        return None
    argv = getattr(sys, "orig_argv", None) or []
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-c") or arg == "-":
            return ""
        if arg.startswith("-m"):
            return os.getcwd()
        if arg in ("-W", "-X", "--check-hash-based-pycs"):
            i += 2
            continue
        if arg.startswith("-"):
            i += 1
            continue
        return os.path.dirname(os.path.realpath(arg))
    return ""


_PATH0 = """\
import sys
if p is not None and p not in sys.path:
    sys.path.insert(0, p)
del sys, p
"""


def give_sys_path_0(handle):
    """On 3.11, give a new interpreter the first sys.path entry 3.12+ would have given it, so
    that modules of the script's directory (or of the current one, for ``python -m pytest``)
    are found there on every version. No-op on 3.12+."""
    if PY311:
        _ll.run_string(handle, _PATH0, {"p": sys_path_0()})
