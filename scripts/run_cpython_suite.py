#!/usr/bin/env python3
"""Run CPython's own 3.11 test file for `_xxsubinterpreters` against `subinterpreters.lowlevel`.

The test file (Lib/test/test__xxsubinterpreters.py) is read at run time from the machine's CPython
3.11 and never committed here. It is rewritten so that every reference to `_xxsubinterpreters`
(the top-level `import_helper.import_module(...)`, the `import _xxsubinterpreters ...` lines inside
the scripts the tests run in subinterpreters, quoted module names, and the self-import
`import test.test__xxsubinterpreters as helpers`) points at our module and at the rewritten copy.
The copy goes to a temporary directory and the selected test classes run with unittest in a child
process of the Python running this script (3.11, 3.12 or 3.13), under two watchdogs:

* per test: `faulthandler.dump_traceback_later(--test-timeout, exit=True)`, re-armed at every test,
  so a hang prints every thread's stack and ends the child with status 1;
* whole run: `--timeout` seconds, then SIGABRT (faulthandler prints the stacks) and SIGKILL.

The exit status is 0 only if every selected test passed or was skipped; 1 on any failure, error,
hang or crash; 2 on a setup problem (test file or module not found, bad option).

Channel test classes run only when the module under test has `channel_create`; while it does not,
they are reported as skipped, and so are the few methods of the interpreter classes that use
channels (NEEDS_CHANNELS below).

`--against-cpython` runs the file unmodified against CPython's own `_xxsubinterpreters` (3.11 and
3.12 only; 3.13 renamed it `_interpreters` with another API), for comparison. It excludes the
three tests that hang with CPython's module on our machines (CPYTHON_HANGS, CPython gh-122517): a
`.pth` file makes every 3.11 subinterpreter import `threading` while it is created, and
`Py_EndInterpreter` then deadlocks when the interpreter is destroyed from another OS thread. (On
3.12.1 they pass: nothing imports `threading` in a new interpreter there. The exclusion is applied
on both, since the trigger is the machine's site-packages; `--include-cpython-hangs` runs them.)
Our module is expected to pass them (it applies the workaround in docs/threads.md), so they are not
excluded for it.

Examples:
    .venv/py312/bin/python scripts/run_cpython_suite.py
    .venv/py312/bin/python scripts/run_cpython_suite.py -v --classes RunStringTests,DestroyTests
    ~/.pyenv/versions/3.11.7/bin/python3.11 scripts/run_cpython_suite.py --against-cpython
"""

import ast
import glob
import importlib
import os
import re
import shutil
import subprocess
import sys
import unittest

import _suite_common as common
from _suite_common import say

TARGET = "subinterpreters.lowlevel"
CPYTHON_MODULE = "_xxsubinterpreters"
TEST_FILE = "test__xxsubinterpreters.py"
# Module name of the rewritten copy. It must not contain "test__xxsubinterpreters" (the check
# below looks for leftovers of that name).
GENERATED = "cpy311_suite_lowlevel"
SKIP_TAG = "[run_cpython_suite]"

INTERP_CLASSES = (
    "IsShareableTests",
    "ListAllTests",
    "GetCurrentTests",
    "GetMainTests",
    "IsRunningTests",
    "InterpreterIDTests",
    "CreateTests",
    "DestroyTests",
    "RunStringTests",
)
CHANNEL_CLASSES = (
    "ChannelIDTests",
    "ChannelTests",
    "ChannelReleaseTests",
    "ChannelCloseTests",  # not in 3.11.7's file (close tests are in ChannelTests)
    "ExhaustiveChannelTests",  # the file itself skips this class ("take several hours to run")
    "ShareableTypeTests",
)

# Methods of the interpreter classes that need channels; skipped while channel_create is missing.
# (Besides these, TestBase.tearDown calls clean_up_channels(), which uses channel_list_all: the
# child replaces it with a no-op while the module has no channel_list_all.)
NEEDS_CHANNELS = {
    "InterpreterIDTests.test_does_not_exist": (
        "calls channel_create() to find an interpreter id that does not exist"
    ),
}

# Tests that hang (deadlock in Py_EndInterpreter) with CPython's own module on our machines.
CPYTHON_HANGS = {
    "CreateTests.test_in_thread": (
        "hangs with CPython's module (CPython gh-122517): created in a thread, destroyed from main"
    ),
    "DestroyTests.test_from_other_thread": (
        "hangs with CPython's module (CPython gh-122517): destroyed from another thread"
    ),
    # Found by this script: id2 is created inside id1 from a worker thread; when the test method
    # returns, the last InterpreterID of id1 dies, id1 is finalized, its __main__ drops id2's last
    # InterpreterID, and id2 is finalized from the main thread: the same deadlock.
    "CreateTests.test_in_threaded_subinterpreter": (
        "hangs with CPython's module (CPython gh-122517): created in a thread, destroyed from main "
        "when the test's InterpreterIDs die"
    ),
}

# ---------------------------------------------------------------------------------------------
# test.support shims. The file uses a few helpers of test.support, import_helper and
# script_helper; test.support is not a stable API and differs between 3.11, 3.12 and 3.13. For
# every helper the file uses that the running Python lacks, a minimal stand-in is inserted into the
# generated copy (and its name printed). Observed on 3.11.7, 3.12.1 and 3.13.0: only
# `support.temp_dir` is missing (it moved to test.support.os_helper in 3.10); the file uses it only
# in RunStringTests.test_still_running_at_exit, which the file itself skips.
SHIMS = {
    ("support", "SHORT_TIMEOUT"): "support.SHORT_TIMEOUT = 30.0\n",
    ("support", "sleeping_retry"): """\
def _shim_sleeping_retry(timeout, err_msg=None, /, *, init_delay=0.010, max_delay=1.0,
                         error=True):
    import time as _time
    delay = init_delay
    deadline = _time.monotonic() + timeout
    while True:
        yield
        if _time.monotonic() >= deadline:
            if error:
                raise AssertionError(f"timeout ({timeout:.1f} seconds) {err_msg or ''}")
            return
        _time.sleep(delay)
        delay = min(delay * 2, max_delay)
support.sleeping_retry = _shim_sleeping_retry
""",
    ("support", "requires_fork"): """\
def _shim_requires_fork():
    return unittest.skipUnless(hasattr(os, "fork"), "requires working os.fork()")
support.requires_fork = _shim_requires_fork
""",
    ("support", "temp_dir"): """\
try:
    from test.support.os_helper import temp_dir as _shim_temp_dir
except ImportError:
    @contextlib.contextmanager
    def _shim_temp_dir(path=None, quiet=False):
        import tempfile as _tempfile
        with _tempfile.TemporaryDirectory() as _d:
            yield _d
support.temp_dir = _shim_temp_dir
""",
    ("import_helper", "import_module"): """\
def _shim_import_module(name, deprecated=False, *, required_on=()):
    import importlib as _importlib
    try:
        return _importlib.import_module(name)
    except ImportError as _e:
        raise unittest.SkipTest(str(_e))
import_helper.import_module = _shim_import_module
""",
    ("script_helper", "make_script"): """\
def _shim_make_script(script_dir, script_basename, source, omit_suffix=False):
    import importlib as _importlib
    name = script_basename if omit_suffix else script_basename + ".py"
    path = os.path.join(script_dir, name)
    with open(path, "w", encoding="utf-8") as _f:
        _f.write(source)
    _importlib.invalidate_caches()
    return path
script_helper.make_script = _shim_make_script
""",
    ("script_helper", "spawn_python"): """\
def _shim_spawn_python(*args, stdout=None, stderr=None, **kw):
    import subprocess as _subprocess
    return _subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-I", *args],
        stdin=_subprocess.PIPE,
        stdout=_subprocess.PIPE if stdout is None else stdout,
        stderr=_subprocess.STDOUT if stderr is None else stderr,
        **kw,
    )
script_helper.spawn_python = _shim_spawn_python
""",
}
HELPER_MODULES = ("support", "import_helper", "script_helper")

# Rewrites, applied in this order (regular expressions on the whole file text, so they also
# reach the scripts the tests run inside subinterpreters).
REWRITES = (
    # import_helper.import_module('_xxsubinterpreters'), and any quoted module name in a string
    ("quoted module name", r"(?<=['\"])_xxsubinterpreters\b", TARGET),
    (
        "import _xxsubinterpreters as X",
        r"(?<![\w.])import\s+_xxsubinterpreters\s+as\b",
        f"import {TARGET} as",
    ),
    # bare import: keep the name the code then uses
    (
        "import _xxsubinterpreters",
        r"(?<![\w.])import\s+_xxsubinterpreters\b",
        f"import {TARGET} as _xxsubinterpreters",
    ),
    (
        "from _xxsubinterpreters import",
        r"(?<![\w.])from\s+_xxsubinterpreters\s+import\b",
        f"from {TARGET} import",
    ),
    # the test's scripts import the test module itself ("helpers") inside subinterpreters
    ("import test.test__xxsubinterpreters", r"\btest\.test__xxsubinterpreters\b", GENERATED),
)
# Rewrites for a newer CPython whose own behaviour differs from 3.11's in a way the file pins;
# each is (first version it applies to, label, pattern, replacement) and must match exactly once.
VERSION_REWRITES = (
    # 3.14 evaluates annotations lazily (PEP 649): a fresh __main__ has no __annotations__.
    (
        (3, 14),
        "no __annotations__ in a fresh __main__",
        r"^\s*'__annotations__': \{\},\n",
        "",
    ),
)
LEFTOVERS = (
    r"(?<![\w.])import\s+_xxsubinterpreters\s*$",
    r"(?<![\w.])import\s+_xxsubinterpreters\s*[,;]",
    r"(?<![\w.])from\s+_xxsubinterpreters\b",
    r"['\"]_xxsubinterpreters\b",
    r"test__xxsubinterpreters",
)


# ---------------------------------------------------------------------------------------------
# locating the 3.11 test file


def _pyenv_311_prefix():
    if not shutil.which("pyenv"):
        return None
    try:
        out = subprocess.run(
            ["pyenv", "versions", "--bare"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    versions = [v.strip() for v in out.splitlines() if re.fullmatch(r"3\.11\.\d+", v.strip())]
    if not versions:
        return None
    newest = max(versions, key=lambda v: tuple(int(p) for p in v.split(".")))
    try:
        return subprocess.run(
            ["pyenv", "prefix", newest], capture_output=True, text=True, timeout=60, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def find_test_file():
    """Return (path, how it was found) or (None, list of places tried)."""
    tried = []
    prefix = _pyenv_311_prefix()
    if prefix:
        path = os.path.join(prefix, "lib", "python3.11", "test", TEST_FILE)
        if os.path.isfile(path):
            return path, "pyenv prefix"
        tried.append(path)
    else:
        tried.append("pyenv (not found, or no 3.11.x installed)")

    def version_key(p):
        m = re.search(r"/3\.11\.(\d+)/", p)
        return int(m.group(1)) if m else -1

    pattern = os.path.expanduser(f"~/.pyenv/versions/3.11.*/lib/python3.11/test/{TEST_FILE}")
    found = sorted(glob.glob(pattern), key=version_key)
    if found:
        return found[-1], "~/.pyenv/versions"
    tried.append(pattern)
    try:
        path = os.path.join(common.python_stdlib("python3.11"), "test", TEST_FILE)
        if os.path.isfile(path):
            return path, "python3.11 on PATH"
        tried.append(path)
    except (OSError, subprocess.SubprocessError):
        tried.append("python3.11 on PATH (not found or failed)")
    return None, tried


# ---------------------------------------------------------------------------------------------
# generating the copy


def used_helpers(tree):
    """(module alias, attribute) pairs like ('support', 'SHORT_TIMEOUT') used by the file."""
    used = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in HELPER_MODULES
        ):
            used.add((node.value.id, node.attr))
    return used


def missing_helpers(used):
    from test import support
    from test.support import import_helper, script_helper

    modules = {"support": support, "import_helper": import_helper, "script_helper": script_helper}
    return sorted((mod, name) for mod, name in used if not hasattr(modules[mod], name))


def channel_users(tree):
    """'Class.method' of interpreter-class methods whose body mentions a channel function."""
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in INTERP_CLASSES:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name.startswith("test"):
                    for sub in ast.walk(item):
                        name = getattr(sub, "attr", None) or getattr(sub, "id", None)
                        if isinstance(name, str) and (
                            name.startswith("channel_") or name in ("_channel_id", "ChannelID")
                        ):
                            found.add(f"{node.name}.{item.name}")
                            break
    return found


def generate(source, against_cpython):
    """Return (text, notes) of the copy to run."""
    notes = []
    text = source
    if not against_cpython:
        for label, pattern, repl in REWRITES:
            text, n = re.subn(pattern, repl, text, flags=re.MULTILINE)
            notes.append(f"rewrote {n} x {label}")
        for since, label, pattern, repl in VERSION_REWRITES:
            if sys.version_info >= since:
                text, n = re.subn(pattern, repl, text, flags=re.MULTILINE)
                if n != 1:
                    raise SystemExit(f"error: expected one match for {label!r}, found {n}")
                notes.append(f"rewrote {n} x {label} (CPython {since[0]}.{since[1]}+)")
        left = common.leftovers(text, LEFTOVERS)
        if left:
            raise SystemExit(f"error: references to {CPYTHON_MODULE} left after rewriting: {left}")
        if f"import_module('{TARGET}')" not in text and f'import_module("{TARGET}")' not in text:
            raise SystemExit(
                "error: the file no longer imports its module with "
                "import_helper.import_module(...); update this script"
            )

    tree = ast.parse(source)
    missing = missing_helpers(used_helpers(tree))
    unknown = [f"{m}.{n}" for m, n in missing if (m, n) not in SHIMS]
    if unknown:
        raise SystemExit(
            f"error: the test file uses {unknown}, which this Python's test.support "
            "lacks and this script has no shim for"
        )
    if missing:
        names = ", ".join(f"{m}.{n}" for m, n in missing)
        shim = [
            "\n# --- inserted by scripts/run_cpython_suite.py " + "-" * 31 + "\n",
            f"# This Python ({sys.version.split()[0]}) lacks test.support helpers the file uses:\n",
            f"# {names}. Minimal stand-ins follow (test.support differs between versions).\n",
        ]
        shim += [SHIMS[key] for key in missing]
        shim.append("# --- end of inserted shims " + "-" * 50 + "\n\n")
        m = re.search(r"^\w+\s*=\s*import_helper\.import_module\(", text, flags=re.MULTILINE)
        if not m:
            raise SystemExit("error: cannot find where to insert the test.support shims")
        text = text[: m.start()] + "".join(shim) + text[m.start() :]
        notes.append(f"inserted shims for {names}")
    ast.parse(text)  # the result must still be valid Python
    return text, notes


# ---------------------------------------------------------------------------------------------
# the child: runs unittest on the generated copy


def child_main(cfg_path):
    cfg, arm = common.start_child(cfg_path)
    modname = cfg["module"]
    mod = common.import_under_test(modname, build_hint=modname == TARGET)
    if mod is None:
        return 2
    has_channels = hasattr(mod, "channel_create")

    arm("import of the test file")
    tests = importlib.import_module(cfg["test_module"])

    classes, skipped_classes = [], []
    for name in cfg["classes"]:
        if name in CHANNEL_CLASSES and not has_channels:
            skipped_classes.append((name, f"{modname} has no channel_create"))
        else:
            classes.append(name)
    skip_methods = dict(cfg["skip_methods"])
    if not has_channels:
        for name in sorted(set(cfg["channel_users"]) | set(NEEDS_CHANNELS)):
            skip_methods.setdefault(
                name,
                NEEDS_CHANNELS.get(
                    name, "uses channels (found by scanning the file; add it to NEEDS_CHANNELS)"
                ),
            )
    if not hasattr(mod, "channel_list_all"):
        tests.clean_up_channels = lambda: None
        say(
            f"note: {modname} has no channel_list_all: TestBase.tearDown's clean_up_channels() "
            "is replaced by a no-op"
        )
    for name, why in skipped_classes:
        say(f"SKIPPED CLASS {name}: {why}")

    suite = unittest.TestSuite()
    loader = unittest.TestLoader()
    applied = {}
    for cname in classes:
        cls = getattr(tests, cname)
        for key, why in skip_methods.items():
            kc, meth = key.split(".")
            if kc == cname and hasattr(cls, meth):
                setattr(cls, meth, unittest.skip(f"{SKIP_TAG} {why}")(getattr(cls, meth)))
                applied[key] = why
        suite.addTests(loader.loadTestsFromTestCase(cls))
    for key, why in sorted(applied.items()):
        say(f"SKIPPED TEST {key}: {why}")

    result = common.run_tests(suite, cfg["verbose"], arm)
    summary = {
        **common.counts(result, SKIP_TAG),
        "expected_failures": len(result.expectedFailures),
        "unexpected_successes": len(result.unexpectedSuccesses),
        "classes": classes,
        "skipped_classes": skipped_classes,
        "skipped_methods": applied,
        # TestCase.id() called through the class: some tests set an `id` attribute.
        "failed_ids": [unittest.TestCase.id(t) for t, _ in result.failures + result.errors],
    }
    return common.finish_child(cfg, result, summary, arm)


# ---------------------------------------------------------------------------------------------
# the parent


def parse_args(argv):
    p = common.argument_parser(__doc__)
    p.add_argument("--classes", help="comma-separated test classes (default: all of them)")
    p.add_argument("-v", "--verbose", action="store_true", help="one line per test")
    p.add_argument(
        "--against-cpython",
        action="store_true",
        help=f"run the unmodified file against CPython's {CPYTHON_MODULE} (3.11/3.12)",
    )
    p.add_argument(
        "--include-cpython-hangs",
        action="store_true",
        help="with --against-cpython, also run the tests that hang (pair it with a "
        "short --test-timeout)",
    )
    p.add_argument("--test-file", help=f"use this {TEST_FILE} instead of locating CPython 3.11's")
    common.add_run_options(
        p,
        timeout=600.0,
        timeout_help="hard limit for the whole run, seconds (default 600)",
        test_timeout=120.0,
        test_timeout_help="limit per test before stacks are dumped and the run fails (default 120)",
    )
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return child_main(args.child)

    pyver = sys.version.split()[0]
    module = CPYTHON_MODULE if args.against_cpython else TARGET
    if args.against_cpython and sys.version_info >= (3, 13):
        say(
            f"error: CPython {pyver} has no {CPYTHON_MODULE} (3.13 renamed it _interpreters, "
            "with another API); --against-cpython works on 3.11 and 3.12"
        )
        return 2

    if args.test_file:
        path, how = args.test_file, "--test-file"
        if not os.path.isfile(path):
            say(f"error: {path} does not exist")
            return 2
    else:
        path, how = find_test_file()
        if path is None:
            say(f"error: cannot find CPython 3.11's {TEST_FILE}; tried:")
            for t in how:
                say(f"  {t}")
            return 2

    all_classes = INTERP_CLASSES + CHANNEL_CLASSES
    if args.classes:
        classes = [c.strip() for c in args.classes.split(",") if c.strip()]
        unknown = [c for c in classes if c not in all_classes]
        if unknown:
            say(f"error: unknown classes {unknown}; known: {', '.join(all_classes)}")
            return 2
    else:
        classes = list(all_classes)

    with open(path, encoding="utf-8") as f:
        source = f.read()
    tree = ast.parse(source)
    present = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    absent = [c for c in classes if c not in present]
    if absent and args.classes:
        say(f"error: {path} has no classes {absent}")
        return 2
    classes = [c for c in classes if c in present]
    unknown = sorted(n for n in present - set(all_classes) if n.endswith("Tests"))
    text, notes = generate(source, args.against_cpython)

    hangs = args.against_cpython and not args.include_cpython_hangs
    skip_methods = dict(CPYTHON_HANGS) if hangs else {}
    users = channel_users(tree)
    unlisted = sorted(users - set(NEEDS_CHANNELS))
    if unlisted:
        say(
            f"warning: these interpreter tests use channels but are not in NEEDS_CHANNELS: "
            f"{unlisted}"
        )

    say(f"==> CPython 3.11 suite ({path}, found via {how})")
    say(f"    against {module} on Python {pyver} ({sys.executable})")
    if absent:
        say(f"    not in this version of the file: {', '.join(absent)}")
    if unknown:
        say(f"    warning: test classes this script does not know (not run): {unknown}")
    for n in notes:
        say(f"    {n}")

    with common.child_config(
        "cpython311-suite-",
        args,
        module=module,
        test_module=GENERATED,
        classes=classes,
        skip_methods=skip_methods,
        channel_users=sorted(users),
    ) as cfg:
        common.write_text(os.path.join(cfg["dir"], GENERATED + ".py"), text)
        return run_child(args, cfg, pyver, module)


def run_child(args, cfg, pyver, module):
    script = os.path.abspath(__file__)
    rc, timed_out, res, last = common.run_watched(script, cfg, args.timeout)
    say(f"\n==> summary: CPython 3.11 suite against {module} on Python {pyver}")
    if res:
        if res["skipped_classes"]:
            for name, why in res["skipped_classes"]:
                say(f"    skipped class {name}: {why}")
        for name, why in sorted(res["skipped_methods"].items()):
            say(f"    skipped test {name}: {why}")
        say(f"    classes run: {', '.join(res['classes'])}")
        say(
            f"    ran {res['run']}, failures {res['failures']}, errors {res['errors']}, "
            f"skipped {res['skipped']} ({res['skipped_by_script']} by this script, "
            f"{res['skipped'] - res['skipped_by_script']} by the file itself)"
        )
        for tid in res["failed_ids"]:
            say(f"    FAILED: {tid}")
    return common.verdict(rc, timed_out, res, last, args.timeout, args.test_timeout)


if __name__ == "__main__":
    sys.exit(main())
