#!/usr/bin/env python3
"""Run CPython 3.14's and 3.15's tests of `concurrent.interpreters` against ours.

Ours: `subinterpreters.interpreters`.

The tests (Lib/test/test_interpreters/test_api.py and test_queues.py, with the utils.py they share
and Lib/test/_crossinterp_definitions.py and _code_definitions.py, which they import) of each of
CPython 3.14 and 3.15 (both by default; --suite 3.15 for one) are obtained at run time and never
committed here:

1. from a CPython 3.1X on this machine that has them (the running Python, pyenv, python3.1X on
   PATH, or the private copy of ../shared/tools/cpython-from-debian.sh), else
2. from the cache this script fills (~/.cache/subinterpreters/cpython31X-testsuite, or
   $SUBINTERPRETERS_SUITE_CACHE/cpython31X-testsuite), else
3. from Debian's `libpython3.1X-testsuite` package: `apt-get download` (with a throw-away apt
   configuration pointing at the machine's Debian mirror, suite sid, as cpython-from-debian.sh
   does), unpacked with `dpkg-deb -x` into that cache.

If none works the script exits with status 2, or prints "skipped: ..." and exits 0 when
SUBINTERPRETERS_ALLOW_NO_SUITE=1 is set.

The files are rewritten into a package (GENERATED, in a temporary directory) so that the tests
target our module: `concurrent.interpreters` becomes `subinterpreters.interpreters` everywhere
(including the scripts the tests run inside subinterpreters), and CPython's private `_interpreters`
and `_interpqueues` become two small stand-ins written by this script (SHIM_INTERPRETERS,
SHIM_QUEUES). The stand-ins give the test helpers what they need (utils.py's exception capture and
clean-up, the queue tests' tearDown) through our public API, and, where the Python has CPython's
own interpreter module (3.12: `_xxsubinterpreters`, 3.13+: `_interpreters`), hand the tests that
module's `create`, `get_main`, `exec`, `new_config` and `is_running`: so the tests that make
interpreters through CPython's module or its C-API test modules (`_testinternalcapi`, present
where the Python has it) run against ours in one process, as CPython runs them, and check that
both modules see the same interpreters. Tests of CPython's private low-level modules themselves
or of CPython internals are skipped by name with a reason (SKIPS below); a few single lines are
edited the same way (EDITS below).

The selected tests run with unittest in a child process of the Python running this script (3.11
to 3.15), in the files' order, under a per-test watchdog (faulthandler, --test-timeout) and a
whole-run timeout
(--timeout: SIGABRT for stacks, then SIGKILL). On Pythons older than 3.14 the few test.support
helpers the files use and that Python lacks get minimal stand-ins (SUPPORT_SHIMS).

Exit status: 0 if every selected test passed or was skipped; 1 on a failure, error, hang or crash;
2 on a setup problem.

Examples:
    .venv/py314/bin/python scripts/run_cpython_pep734_suite.py
    .venv/py312/bin/python scripts/run_cpython_pep734_suite.py -v -k TestQueueOps
    .venv/py314/bin/python scripts/run_cpython_pep734_suite.py --against-cpython   # 3.14+ only
"""

import importlib
import os
import re
import sys
import unittest

import _suite_common as common
from _suite_common import say

TARGET = "subinterpreters.interpreters"
GENERATED = "cpy_pep734"  # package name of the rewritten copy
SHIM_INTERPRETERS = "pep734_shim_interpreters"  # stands in for _interpreters
SHIM_QUEUES = "pep734_shim_interpqueues"  # stands in for _interpqueues and _crossinterp
SKIP_TAG = "[run_cpython_pep734_suite]"
TEST_FILES = ("test_api.py", "test_queues.py")
# (relative to Lib/test) -> name in the generated package
SOURCES = {
    "test_interpreters/test_api.py": "test_api.py",
    "test_interpreters/test_queues.py": "test_queues.py",
    "test_interpreters/utils.py": "utils.py",
    "_crossinterp_definitions.py": "_crossinterp_definitions.py",
    "_code_definitions.py": "_code_definitions.py",
}

# ---------------------------------------------------------------------------------------------
# Tests skipped by name. Every entry says why; the script fails if an entry no longer names a
# test of the file (so that the list cannot rot silently).

_LOW = "tests CPython's private _interpreters module itself, not the public API"
_LOWQ = "tests CPython's private _interpqueues module itself, not the public API"

SKIPS = {
    # --- test_api.py ---
    "test_api.TestInterpreterCall.test_stateless_funcs": (
        "compares code objects with _testinternalcapi.get_code_var_counts (3.14 internals)"
    ),
    # 3.14 internals.
    "test_queues.TestQueueOps.test_timeout_uses_monotonic_clock": (
        "mocks the time module inside CPython's pure-Python _queues; ours waits in Rust on a "
        "monotonic clock (tests/test_pep734_queues.py)"
    ),
    # Low-level module.
    "test_api.TestInterpreterClose.test_remaining_daemon_threads": (
        _LOW + " (_interpreters.create(config) with allow_daemon_threads, _interpreters.exec)"
    ),
    "test_api.LowLevelTests": _LOW,
    # --- test_queues.py ---
    "test_queues.LowLevelTests": _LOWQ,
}
# Tests of a class skipped above that run all the same: they test the public module.
RUN_ANYWAY = {"test_queues.LowLevelTests.test_highlevel_reloaded"}

# Tests skipped on some Pythons only: (first, last) version -> {test: reason}.
_T311 = (
    "3.11 only: threads in a subinterpreter; 3.11's isolated mode refuses them and 3.11's "
    "run/destroy refuse an interpreter that has threads (README difference 12 of lowlevel)"
)
_CAPI = (
    "makes interpreters through _testinternalcapi.create_interpreter() or "
    "_interpreters.new_config(), which CPython added in 3.13"
)
VERSION_SKIPS = {
    ((3, 11), (3, 12)): {
        "test_api.GetCurrentTests.test_created_with_capi": _CAPI,
        "test_api.ListAllTests.test_created_with_capi": _CAPI,
        "test_api.TestInterpreterIsRunning.test_created_with_capi": _CAPI,
        "test_api.TestInterpreterClose.test_created_with_capi": _CAPI,
        "test_api.TestInterpreterPrepareMain.test_created_with_capi": _CAPI,
        "test_api.TestInterpreterExec.test_created_with_capi": _CAPI,
        "test_api.InterpreterObjectTests.test_whence": _CAPI + " (its C-API sub-test)",
    },
    ((3, 11), (3, 11)): {
        "test_api.TestInterpreterClose.test_remaining_threads": _T311,
        "test_api.TestInterpreterClose.test_subthreads_still_running": _T311,
        "test_api.TestInterpreterExec.test_with_background_threads_still_running": _T311,
        "test_api.TestInterpreterIsRunning.test_with_only_background_threads": _T311,
    },
    ((3, 11), (3, 13)): {
        "test_api.ListAllTests.test_destroyed_by_gc": (
            "OPEN: on 3.12 fails in the full run (passes alone): the collector frees the "
            "interpreter's last Interpreter later than the test expects (3.14's GC differs)"
        ),
    },
}


def active_skips():
    skips = dict(SKIPS)
    for (first, last), tests in VERSION_SKIPS.items():
        if first <= sys.version_info[:2] <= last:
            skips.update(tests)
    return skips


# Edits of the files, each with its reason: (file, label, pattern, replacement, expected number
# of matches, Python versions it applies to as (first, last) or None for all).
_ANY = None
EDITS = (
    (
        "test_api.py",
        "CreateTests.test_in_main: GH-126221 check of _interpreters.create('\\udc80') (low level)",
        r"^\s*self\.assertRaises\(UnicodeEncodeError, _interpreters\.create, '\\udc80'\)\n",
        "",
        1,
        _ANY,
    ),
    # CPython's own differences between versions, which the 3.14 file pins:
    (
        "test_api.py",
        "test_globals_from_builtins: before 3.14 (PEP 649) a fresh __main__ has __annotations__",
        r"(names = interp\.call\(dir\)\n\s*self\.assertEqual\(names, \[\n)",
        r"\1            '__annotations__',\n",
        1,
        ((3, 11), (3, 13)),
    ),
    (
        "test_api.py",
        "test_globals_from_builtins: ... whose value is {}",
        r"(self\.assertEqual\(values, \{\n)(\s*)('__name__': '__main__',)",
        r"\1\2'__annotations__': {},\n\2\3",
        1,
        ((3, 11), (3, 13)),
    ),
    (
        "test_api.py",
        "test_display_preserved_exception: before 3.13 tracebacks omit ~~^^ under whole-line calls",
        r"^ *~+\^+\n",
        "",
        3,
        ((3, 11), (3, 12)),
    ),
)

# ---------------------------------------------------------------------------------------------
# The stand-ins for CPython's private modules, written next to the generated package.

SHIM_INTERPRETERS_SRC = f'''\
"""Stands in for CPython's private _interpreters in CPython's tests (written by
scripts/run_cpython_pep734_suite.py). What the tests use as helpers, through the public API
of {TARGET}; tests of _interpreters itself are skipped by the script. Where the Python has
CPython's own module, the tests get its create/get_main/exec/new_config (3.13+) and is_running
(3.12+): interpreters made and run by CPython, seen by ours, and ours seen by CPython."""

import sys as _sys

try:
    import _interpreters as _cpython
except ImportError:
    # 3.12's; 3.11's refuses an interpreter with threads, which ours run in on 3.11.
    _cpython = __import__("_xxsubinterpreters") if _sys.version_info >= (3, 12) else None

from {TARGET} import (
    Interpreter as _Interpreter,
    ExecutionFailed as _ExecutionFailed,
    InterpreterError,
    InterpreterNotFoundError,
    NotShareableError,
    is_shareable,
)
from subinterpreters import _exceptions

WHENCE_UNKNOWN = 0
WHENCE_RUNTIME = 1
WHENCE_LEGACY_CAPI = 2
WHENCE_CAPI = 3
WHENCE_XI = 4
WHENCE_STDLIB = 5
_WHENCE = {{
    "unknown": WHENCE_UNKNOWN,
    "runtime init": WHENCE_RUNTIME,
    "legacy C-API": WHENCE_LEGACY_CAPI,
    "C-API": WHENCE_CAPI,
    "cross-interpreter C-API": WHENCE_XI,
    "_interpreters module": WHENCE_STDLIB,
}}


def whence(id):
    return _WHENCE[_Interpreter(id).whence]


def is_running(id):
    if _cpython is not None:
        return _cpython.is_running(id)
    return _Interpreter(id).is_running()


def exec(id, code):
    try:
        _Interpreter(id).exec(code)
    except _ExecutionFailed as exc:
        return exc.excinfo
    return None


run_string = exec

if hasattr(_cpython, "new_config"):  # 3.13+
    create = _cpython.create
    get_main = _cpython.get_main
    new_config = _cpython.new_config
    exec = _cpython.exec


def capture_exception(exc=None):
    """What our ExecutionFailed.excinfo would say about exc."""
    import sys
    from types import SimpleNamespace

    if exc is None:
        exc = sys.exception()
    name, qualname, module, msg, formatted, errdisplay = _exceptions._excinfo(exc)
    kind = SimpleNamespace(__name__=name, __qualname__=qualname, __module__=module)
    return SimpleNamespace(type=kind, msg=msg, formatted=formatted, errdisplay=errdisplay)
'''

SHIM_QUEUES_SRC = f'''\
"""Stands in for CPython's private _interpqueues (and concurrent.interpreters._crossinterp) in
CPython's tests (written by scripts/run_cpython_pep734_suite.py): what the tests' tearDown uses,
through the functions behind {TARGET}'s queues."""

from subinterpreters import lowlevel as _ll
from {TARGET} import _queues

# concurrent.interpreters._crossinterp
UNBOUND = _queues.UNBOUND
UNBOUND_ERROR = _queues.UNBOUND_ERROR
UNBOUND_REMOVE = _queues.UNBOUND_REMOVE
_UNBOUND_CONSTANT_TO_FLAG = dict(_queues._FLAG_OF)


def list_all():
    return _ll._queue_list_all()


def destroy(qid):
    _ll._queue_destroy(qid)
'''

# ---------------------------------------------------------------------------------------------
# Rewrites applied to every file (regular expressions on the whole text, so that they also
# reach the scripts run inside subinterpreters). (label, pattern, replacement, files or None)
REWRITES = (
    (
        "from concurrent.interpreters import _queues as queues, _crossinterp",
        r"^from concurrent\.interpreters import _queues as queues, _crossinterp$",
        f"from {TARGET} import _queues as queues\nimport {SHIM_QUEUES} as _crossinterp",
        ("test_queues.py",),
    ),
    ("concurrent.interpreters", r"\bconcurrent\.interpreters\b", TARGET, None),
    (
        "from concurrent import interpreters",
        r"\bfrom concurrent import interpreters\b",
        "from subinterpreters import interpreters",
        None,
    ),
    ("quoted '_interpreters'", r"(?<=['\"])_interpreters(?=['\"])", SHIM_INTERPRETERS, None),
    ("quoted '_interpqueues'", r"(?<=['\"])_interpqueues(?=['\"])", SHIM_QUEUES, None),
    (
        "import _interpreters",
        r"(?<![\w.])import _interpreters\b(?! as)",
        f"import {SHIM_INTERPRETERS} as _interpreters",
        None,
    ),
    (
        "import test._crossinterp_definitions as defs",
        r"\bimport test\._crossinterp_definitions as defs\b",
        f"from {GENERATED} import _crossinterp_definitions as defs",
        None,
    ),
    (
        "from test._code_definitions import *",
        r"\bfrom test\._code_definitions import \*",
        f"from {GENERATED}._code_definitions import *",
        None,
    ),
)
LEFTOVERS = (
    r"\bconcurrent\b",
    r"(?<![\w.])import\s+_interpreters\s*$",
    r"^\s*from\s+_interpreters\s+import\b",
    r"(?<![\w.])import\s+_interpqueues\b",
    r"['\"]_interp(reters|queues)['\"]",
    r"test\._c(rossinterp|ode)_definitions",
)

# test.support helpers the files use that older Pythons lack: minimal stand-ins, installed by the
# generated package's __init__ when missing (the name is printed).
SUPPORT_SHIMS = {
    "Py_GIL_DISABLED": "support.Py_GIL_DISABLED = False",
    "Py_DEBUG": "support.Py_DEBUG = hasattr(sys, 'gettotalrefcount')",
    "force_not_colorized": """\
def _force_not_colorized(func):
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        saved = {k: os.environ.get(k) for k in ("NO_COLOR", "PYTHON_COLORS", "FORCE_COLOR")}
        os.environ["NO_COLOR"] = "1"
        os.environ.pop("FORCE_COLOR", None)
        os.environ.pop("PYTHON_COLORS", None)
        try:
            return func(*args, **kwargs)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return wrapper
support.force_not_colorized = _force_not_colorized""",
    "requires_subprocess": """\
def _requires_subprocess():
    return unittest.skipUnless(hasattr(os, "fork") or sys.platform == "win32", "no subprocess")
support.requires_subprocess = _requires_subprocess""",
    "requires_fork": """\
def _requires_fork():
    return unittest.skipUnless(hasattr(os, "fork"), "requires working os.fork()")
support.requires_fork = _requires_fork""",
    "disable_gc": """\
@contextlib.contextmanager
def _disable_gc():
    import gc
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
support.disable_gc = _disable_gc""",
    "gc_threshold": """\
@contextlib.contextmanager
def _gc_threshold(*args):
    import gc
    old = gc.get_threshold()
    gc.set_threshold(*args)
    try:
        yield
    finally:
        gc.set_threshold(*old)
support.gc_threshold = _gc_threshold""",
}


# ---------------------------------------------------------------------------------------------
# generating the copy


def generate(testdir, against_cpython):
    """Return ({file name: text}, notes)."""
    files, notes = common.read_sources(testdir, SOURCES), []
    if against_cpython:
        for name in files:
            files[name] = re.sub(
                r"\bimport test\._crossinterp_definitions as defs\b",
                f"from {GENERATED} import _crossinterp_definitions as defs",
                files[name],
            )
            files[name] = re.sub(
                r"\bfrom test\._code_definitions import \*",
                f"from {GENERATED}._code_definitions import *",
                files[name],
            )
        return files, ["unmodified, against CPython's concurrent.interpreters"]
    for fname, label, pattern, repl, count, versions in EDITS:
        if versions is not None and not (versions[0] <= sys.version_info[:2] <= versions[1]):
            continue
        text, n = re.subn(pattern, repl, files[fname], flags=re.MULTILINE)
        if n != count:
            raise SystemExit(
                f"error: edit {label!r} matched {n} times in {fname}, not {count}; update EDITS"
            )
        files[fname] = text
        notes.append(f"edited {fname}: {label}")
    notes += common.rewrite_files(files, REWRITES, LEFTOVERS)
    return files, notes


def package_init(against_cpython):
    """The generated package's __init__: test.support stand-ins for older Pythons."""
    lines = [
        f'"""CPython {common.SUITE_VERSION} test_interpreters, rewritten by '
        'scripts/run_cpython_pep734_suite.py."""',
        "import contextlib",
        "import os",
        "import sys",
        "import unittest",
        "from test import support",
        "SHIMMED = []",
    ]
    # assert_funcs_equal() compares _testinternalcapi.get_code_var_counts() (3.14+) of the
    # function it sent and the one it got back: before 3.14, compare what the code declares.
    lines += [
        "try:",
        "    import _testinternalcapi",
        "except ImportError:",
        "    _testinternalcapi = None",
        "if _testinternalcapi is not None and not hasattr(",
        "        _testinternalcapi, 'get_code_var_counts'):",
        "    def _get_code_var_counts(obj):",
        "        code = getattr(obj, '__code__', obj)",
        "        return (code.co_nlocals, code.co_varnames, code.co_cellvars,",
        "                code.co_freevars, code.co_names, code.co_argcount,",
        "                code.co_posonlyargcount, code.co_kwonlyargcount)",
        "    _testinternalcapi.get_code_var_counts = _get_code_var_counts",
        "    SHIMMED.append('_testinternalcapi.get_code_var_counts')",
    ]
    for name, code in SUPPORT_SHIMS.items():
        lines.append(f"if not hasattr(support, {name!r}):")
        lines.extend("    " + ln if ln else "" for ln in code.splitlines())
        lines.append(f"    SHIMMED.append({name!r})")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# the child: runs unittest on the generated copy


def _skip_targets(skips):
    """{module: {class: {method or None: reason}}}"""
    out = {}
    for key, why in skips.items():
        parts = key.split(".")
        mod, cls = parts[0], parts[1]
        meth = parts[2] if len(parts) > 2 else None
        out.setdefault(mod, {}).setdefault(cls, {})[meth] = why
    return out


def child_main(cfg_path):
    """The child of this script and of run_cpython_pool_suite.py."""
    cfg, arm = common.start_child(cfg_path)
    common.use_suite(cfg["suite"])
    if common.import_under_test(cfg["target"]) is None:
        return 2
    package = cfg.get("package", GENERATED)
    pkg = importlib.import_module(package)
    if pkg.SHIMMED:
        say(f"test.support stand-ins for this Python: {', '.join(pkg.SHIMMED)}")

    arm("import of the test files")
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    targets = _skip_targets(cfg["skips"])
    pattern = cfg["pattern"]
    applied, missing = {}, []
    for modname in cfg["test_modules"]:
        tests = importlib.import_module(f"{package}.{modname}")
        for cname, methods in targets.get(modname, {}).items():
            cls = getattr(tests, cname, None)
            if cls is None:
                missing.append(f"{modname}.{cname}")
                continue
            for meth, why in methods.items():
                key = f"{modname}.{cname}" + (f".{meth}" if meth else "")
                if meth is None:
                    for name in loader.getTestCaseNames(cls):
                        if f"{key}.{name}" in RUN_ANYWAY:
                            continue
                        setattr(cls, name, unittest.skip(f"{SKIP_TAG} {why}")(getattr(cls, name)))
                elif hasattr(cls, meth):
                    setattr(cls, meth, unittest.skip(f"{SKIP_TAG} {why}")(getattr(cls, meth)))
                else:
                    missing.append(key)
                    continue
                applied[key] = why
        loaded = loader.loadTestsFromModule(tests)
        for test in _flatten(loaded):
            if pattern and not re.search(pattern, unittest.TestCase.id(test)):
                continue
            suite.addTest(test)
    if missing:
        say(f"error: SKIPS names tests that do not exist (update the list): {missing}")
        return 2

    result = common.run_tests(suite, cfg["verbose"], arm)
    summary = {
        **common.counts(result, SKIP_TAG),
        "passed": result.passed,
        "skipped_methods": applied,
        "failed_ids": [_test_id(t) for t, _ in result.failures + result.errors],
        "skipped_by_file": [
            (unittest.TestCase.id(t), why)
            for t, why in result.skipped
            if not why.startswith(SKIP_TAG)
        ],
    }
    return common.finish_child(cfg, result, summary, arm)


def _test_id(test):
    """The test's id, with the subtest's description for a subtest."""
    case = getattr(test, "test_case", None)
    if case is not None:
        return f"{unittest.TestCase.id(case)} {test._subDescription()}"
    return unittest.TestCase.id(test)


def _flatten(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _flatten(item)
        else:
            yield item


# ---------------------------------------------------------------------------------------------
# the parent


def parse_args(argv):
    """The options of this script and of run_cpython_pool_suite.py."""
    p = common.argument_parser(__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="one line per test")
    p.add_argument("-k", "--pattern", help="run only tests whose id matches this regex")
    p.add_argument(
        "--against-cpython",
        action="store_true",
        help="run the unmodified files against CPython's concurrent.interpreters (3.14+)",
    )
    p.add_argument(
        "--suite-dir", help="the Lib/test directory to take the files from (with one --suite)"
    )
    p.add_argument("--no-download", action="store_true", help="never call apt-get")
    common.add_run_options(
        p,
        timeout=240.0,
        timeout_help="whole run, seconds (240)",
        test_timeout=60.0,
        test_timeout_help="per test, seconds (60)",
    )
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return child_main(args.child)

    pyver = sys.version.split()[0]
    if args.against_cpython and sys.version_info < (3, 14):
        say("error: --against-cpython needs CPython 3.14+ (concurrent.interpreters)")
        return 2
    return common.each_suite(args, lambda: run_suite(args, pyver))


def run_suite(args, pyver):
    """Obtain, generate and run the files of one CPython release (common.SUITE_VERSION)."""
    testdir, how = common.obtain_suite(args, SOURCES, "test_interpreters", skip_hint=True)
    files, notes = generate(testdir, args.against_cpython)
    target = "concurrent.interpreters" if args.against_cpython else TARGET
    say(f"==> CPython {common.SUITE_VERSION} test_interpreters ({testdir}, via {how})")
    say(f"    against {target} on Python {pyver} ({sys.executable})")
    for n in notes:
        say(f"    {n}")

    with common.child_config(
        f"cpython{common.suite_tag()}-pep734-",
        args,
        suite=common.SUITE_VERSION,
        target=target,
        test_modules=[n[:-3] for n in TEST_FILES],
        skips={} if args.against_cpython else active_skips(),
        pattern=args.pattern,
    ) as cfg:
        package = {**files, "__init__.py": package_init(args.against_cpython)}
        common.write_package(cfg["dir"], GENERATED, package)
        if not args.against_cpython:
            for name, src in (
                (SHIM_INTERPRETERS, SHIM_INTERPRETERS_SRC),
                (SHIM_QUEUES, SHIM_QUEUES_SRC),
            ):
                common.write_text(os.path.join(cfg["dir"], name + ".py"), src)
        return run_child(args, cfg, pyver, target)


def run_child(args, cfg, pyver, target):
    """Run the child and print the summary; also used by run_cpython_pool_suite.py, whose
    configuration names its own script and title."""
    script = cfg.get("script", os.path.abspath(__file__))
    rc, timed_out, res, last = common.run_watched(script, cfg, args.timeout)
    title = cfg.get("title", "test_interpreters")
    say(f"\n==> summary: CPython {common.SUITE_VERSION} {title} against {target} on {pyver}")
    if res:
        for name, why in sorted(res["skipped_methods"].items()):
            say(f"    skipped by this script: {name}: {why}")
        for name, why in res["skipped_by_file"]:
            say(f"    skipped by the file: {name}: {why}")
        passed = res["passed"]
        say(
            f"    ran {res['run']}: passed {passed}, failures {res['failures']}, errors "
            f"{res['errors']}, skipped {res['skipped']} ({res['skipped_by_script']} by this "
            f"script, {res['skipped'] - res['skipped_by_script']} by the files)"
        )
        for tid in res["failed_ids"]:
            say(f"    FAILED: {tid}")
    return common.verdict(rc, timed_out, res, last, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
