#!/usr/bin/env python3
"""Run CPython 3.14's and 3.15's own tests of `concurrent.futures.InterpreterPoolExecutor` against
`subinterpreters.futures.InterpreterPoolExecutor`.

The tests (Lib/test/test_concurrent_futures/test_interpreter_pool.py, with the executor.py and
util.py it imports) of each release (both by default; --suite 3.15 for one) are obtained at run
time exactly as run_cpython_pep734_suite.py obtains test_interpreters (a local CPython 3.1X, the
cache, or Debian's `libpython3.1X-testsuite`, through _suite_common.py), and run the same way
(its child process and summary, imported from that script).

The copy is rewritten to target our modules: the executor class, `BrokenInterpreterPool`,
`concurrent.interpreters` (-> `subinterpreters.interpreters`) and CPython's private
`_interpreters` (-> a stand-in with the two names the file uses, `get_current` and
`NotShareableError`, through our public API). Tests of CPython internals or of the standard
library's own module are skipped by name with a reason (SKIPS); missing `test.support`/
`unittest` helpers on Pythons older than 3.14 get minimal stand-ins (package __init__).

Exit status: 0 if every selected test passed or was skipped; 1 on a failure, error, hang or
crash; 2 on a setup problem.

Examples:
    .venv/py312/bin/python scripts/run_cpython_pool_suite.py
    .venv/py314/bin/python scripts/run_cpython_pool_suite.py -v -k test_map
    .venv/py314/bin/python scripts/run_cpython_pool_suite.py --against-cpython   # 3.14+ only
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _suite_common as common  # noqa: E402
import run_cpython_pep734_suite as base  # noqa: E402

TARGET = "subinterpreters.futures"
GENERATED = "cpy_pool"
SHIM_INTERPRETERS = "pool_shim_interpreters"
TEST_FILES = ("test_interpreter_pool.py",)
SOURCES = {
    "test_concurrent_futures/test_interpreter_pool.py": "test_interpreter_pool.py",
    "test_concurrent_futures/executor.py": "executor.py",
    "test_concurrent_futures/util.py": "util.py",
}

# ---------------------------------------------------------------------------------------------
# Tests skipped by name, each with its reason (the run fails if one no longer exists).

_T = "test_interpreter_pool.InterpreterPoolExecutorTest."
SKIPS = {
    # The standard library's own module, not an executor's behaviour.
    _T + "test_import_interpreter_pool_executor": (
        "tests that concurrent.futures hides its InterpreterPoolExecutor when CPython's private "
        "_interpreters is missing (the standard library's lazy import, not the executor)"
    ),
    # A deliberate difference (README): our class is not a ThreadPoolExecutor subclass, so
    # asyncio's set_default_executor (which demands one) refuses it.
    "test_interpreter_pool.AsyncioTest.test_default_executor": (
        "loop.set_default_executor() accepts only ThreadPoolExecutor subclasses; ours is not "
        "one (Dask and others special-case that class), so pass the pool to run_in_executor "
        "(README, deliberate differences of the pool)"
    ),
}

# ---------------------------------------------------------------------------------------------
# Rewrites (label, pattern, replacement, files or None), regular expressions on the whole text.

REWRITES = (
    (
        "BrokenInterpreterPool",
        r"^from concurrent\.futures\.interpreter import BrokenInterpreterPool$",
        f"from {TARGET} import BrokenInterpreterPool",
        None,
    ),
    (
        "script text: from concurrent.futures import InterpreterPoolExecutor",
        r"\bfrom concurrent\.futures import InterpreterPoolExecutor\b",
        f"from {TARGET} import InterpreterPoolExecutor",
        ("test_interpreter_pool.py",),
    ),
    (
        "futures.InterpreterPoolExecutor (the mixin's executor_type)",
        r"\bfutures\.InterpreterPoolExecutor\b",
        f"__import__({TARGET!r}, None, None, ['_']).InterpreterPoolExecutor",
        ("util.py",),
    ),
    (
        "concurrent.interpreters._queues",
        r"^from concurrent\.interpreters import _queues as queues$",
        "from subinterpreters.interpreters import _queues as queues",
        None,
    ),
    (
        "from concurrent import interpreters",
        r"^from concurrent import interpreters$",
        "from subinterpreters import interpreters",
        None,
    ),
    (
        "test.test_asyncio.utils (via asyncio_utils: Debian-built CPythons lack it)",
        r"^import test\.test_asyncio\.utils as testasyncio_utils$",
        "from . import asyncio_utils as testasyncio_utils",
        ("test_interpreter_pool.py",),
    ),
    (
        "import _interpreters",
        r"^import _interpreters$",
        f"import {SHIM_INTERPRETERS} as _interpreters",
        None,
    ),
)
LEFTOVERS = (
    r"\bconcurrent\.interpreters\b",
    r"\bconcurrent\.futures\.interpreter\b",
    r"^import _interpreters\b",
    r"from concurrent\.futures import InterpreterPoolExecutor",
)

SHIM_INTERPRETERS_SRC = '''\
"""Stands in for CPython's private _interpreters in CPython's pool tests (written by
scripts/run_cpython_pool_suite.py): the two names the tests use, through our public API."""
from subinterpreters.interpreters import NotShareableError, get_current as _get_current


def get_current():
    interp = _get_current()
    return interp.id, interp.whence
'''

# test.support / unittest / asyncio helpers of 3.14 that older Pythons lack.
PACKAGE_INIT = '''\
"""CPython 3.14/3.15 test_interpreter_pool, rewritten by scripts/run_cpython_pool_suite.py."""
import asyncio
import unittest
from test import support

SHIMMED = []
if not hasattr(unittest.TestCase, "assertStartsWith"):
    def _assert_starts_with(self, s, prefix, msg=None):
        if not s.startswith(prefix):
            self.fail(msg or f"{s!r} does not start with {prefix!r}")
    unittest.TestCase.assertStartsWith = _assert_starts_with
    SHIMMED.append("unittest.TestCase.assertStartsWith")
from test.support import warnings_helper
if not hasattr(warnings_helper, "ignore_fork_in_thread_deprecation_warnings"):  # 3.15's
    import contextlib
    import warnings

    @contextlib.contextmanager
    def _ignore_fork_in_thread():
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", ".*fork.*may lead to deadlocks in the child.*", DeprecationWarning
            )
            yield
    warnings_helper.ignore_fork_in_thread_deprecation_warnings = _ignore_fork_in_thread
    SHIMMED.append("warnings_helper.ignore_fork_in_thread_deprecation_warnings")
if not hasattr(support, "Py_GIL_DISABLED"):
    support.Py_GIL_DISABLED = False
    SHIMMED.append("Py_GIL_DISABLED")
if not hasattr(support, "requires_gil_enabled"):
    support.requires_gil_enabled = lambda msg="": (lambda f: f)
    SHIMMED.append("requires_gil_enabled")
_skip_if_sanitizer = getattr(support, "skip_if_sanitizer", None)
try:
    _skip_if_sanitizer("probe", thread=True)
except TypeError:  # before 3.13: no thread= (and we are not under TSAN)
    support.skip_if_sanitizer = lambda *a, **k: (lambda f: f)  # only thread= is used
    SHIMMED.append("skip_if_sanitizer(thread=)")
if not hasattr(support, "maybe_get_event_loop_policy"):
    support.maybe_get_event_loop_policy = lambda: asyncio.events._event_loop_policy
    SHIMMED.append("maybe_get_event_loop_policy")
if not hasattr(asyncio.events, "_set_event_loop_policy"):
    asyncio.events._set_event_loop_policy = asyncio.set_event_loop_policy
    SHIMMED.append("asyncio.events._set_event_loop_policy")
'''


# test.test_asyncio.utils where the running Python has it, else the two names the file uses.
ASYNCIO_UTILS = """\
try:
    from test.test_asyncio.utils import TestCase, run_briefly
except ImportError:
    import asyncio
    import unittest

    class TestCase(unittest.TestCase):
        def set_event_loop(self, loop, *, cleanup=True):
            asyncio.set_event_loop(None)
            if cleanup:
                self.addCleanup(self.close_loop, loop)

        @staticmethod
        def close_loop(loop):
            if loop._default_executor is not None:
                if not loop.is_closed():
                    loop.run_until_complete(loop.shutdown_default_executor())
                else:
                    loop._default_executor.shutdown(wait=True)
            loop.close()

        def tearDown(self):
            asyncio.set_event_loop(None)
            super().tearDown()

    def run_briefly(loop):
        async def once():
            pass

        gen = once()
        t = loop.create_task(gen)
        t._log_destroy_pending = False
        try:
            loop.run_until_complete(t)
        finally:
            gen.close()
"""


def generate(testdir, against_cpython):
    files = common.read_sources(testdir, SOURCES)
    if against_cpython:
        return files, ["unmodified, against CPython's concurrent.futures.InterpreterPoolExecutor"]
    return files, common.rewrite_files(files, REWRITES, LEFTOVERS, require_match=True)


def main(argv=None):
    args = base.parse_args(argv)
    if args.child:
        return base.child_main(args.child)
    pyver = sys.version.split()[0]
    if args.against_cpython and sys.version_info < (3, 14):
        common.say("error: --against-cpython needs CPython 3.14+")
        return 2
    return common.each_suite(args, lambda: run_suite(args, pyver))


def run_suite(args, pyver):
    """Obtain, generate and run the file of one CPython release (common.SUITE_VERSION)."""
    testdir, how = common.obtain_suite(args, SOURCES, "test_interpreter_pool")
    files, notes = generate(testdir, args.against_cpython)
    target = "concurrent.futures" if args.against_cpython else TARGET
    common.say(f"==> CPython {common.SUITE_VERSION} test_interpreter_pool ({testdir}, via {how})")
    common.say(f"    against {target}.InterpreterPoolExecutor on Python {pyver} ({sys.executable})")
    for n in notes:
        common.say(f"    {n}")

    with common.child_config(
        f"cpython{common.suite_tag()}-pool-",
        args,
        suite=common.SUITE_VERSION,
        target=target,
        script=os.path.abspath(__file__),
        package=GENERATED,
        title="test_interpreter_pool",
        test_modules=[n[:-3] for n in TEST_FILES],
        skips={} if args.against_cpython else SKIPS,
        pattern=args.pattern,
    ) as cfg:
        package = {**files, "__init__.py": PACKAGE_INIT, "asyncio_utils.py": ASYNCIO_UTILS}
        common.write_package(cfg["dir"], GENERATED, package)
        shim = os.path.join(cfg["dir"], SHIM_INTERPRETERS + ".py")
        common.write_text(shim, SHIM_INTERPRETERS_SRC)
        return base.run_child(args, cfg, pyver, target)


if __name__ == "__main__":
    sys.exit(main())
