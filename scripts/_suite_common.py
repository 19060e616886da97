"""Code shared by the runners of CPython's own tests (run_cpython_suite.py,
run_cpython_pep734_suite.py, run_cpython_pool_suite.py; each imports it from sys.path[0]).

It owns: the options they share; finding CPython's test files (the 3.11 stdlib, or CPython 3.14's
and 3.15's files from a local install, the cache or Debian's libpython3.1X-testsuite); rewriting
them; the
temporary directory and the child's configuration; the child's watchdog, unittest run and result
file; the parent's watched child (SIGABRT, then SIGKILL), and the RESULT line and exit status.
"""

import argparse
import contextlib
import faulthandler
import glob
import importlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

# A parent that ignores SIGINT (a background job, some CI runners) passes that on through exec,
# and Python then leaves it ignored: CPython's Ctrl-C tests would wait for an interrupt that never
# comes. A handler of our own is reset to the default in every child, so children start normally.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# The CPython releases whose test files the PEP 734 and pool runners take, each run in turn.
SUITE_VERSIONS = ("3.14", "3.15")
# The one being obtained and run now (see use_suite).
SUITE_VERSION = "3.14"
DEBIAN_PACKAGE = "libpython3.14-testsuite"


def use_suite(version):
    """Make ``version`` ("3.14", "3.15") the release whose test files are found and named."""
    global SUITE_VERSION, DEBIAN_PACKAGE
    SUITE_VERSION = version
    DEBIAN_PACKAGE = f"libpython{version}-testsuite"


def suite_tag():
    """ "314" for 3.14: the suffix of the generated package and cache names."""
    return SUITE_VERSION.replace(".", "")


def say(*args):
    print(*args, flush=True)


# ---------------------------------------------------------------------------------------------
# options


def argument_parser(doc):
    """A parser described by the first paragraph of the script's docstring."""
    return argparse.ArgumentParser(
        description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )


def add_run_options(p, *, timeout, timeout_help, test_timeout, test_timeout_help):
    """The options every runner ends with: both watchdogs, --keep-temp and the hidden --child."""
    p.add_argument("--timeout", type=float, default=timeout, help=timeout_help)
    p.add_argument("--test-timeout", type=float, default=test_timeout, help=test_timeout_help)
    p.add_argument("--keep-temp", action="store_true", help="keep the generated copy")
    p.add_argument(
        "--suite",
        action="append",
        choices=SUITE_VERSIONS,
        help="the CPython release whose test files run (repeatable; default: all of "
        + ", ".join(SUITE_VERSIONS)
        + ")",
    )
    p.add_argument("--child", help=argparse.SUPPRESS)


# ---------------------------------------------------------------------------------------------
# locating CPython's test files


def python_stdlib(exe):
    """The standard library directory of the Python `exe`; raises OSError/SubprocessError."""
    return subprocess.run(
        [exe, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()


def has_files(testdir, sources):
    """Whether the Lib/test directory `testdir` holds every file of `sources` (relative paths)."""
    return all(os.path.isfile(os.path.join(testdir, rel)) for rel in sources)


def _local_candidates():
    """Lib/test directories of CPython SUITE_VERSION installs on this machine."""
    found = []
    v = SUITE_VERSION
    if "{}.{}".format(*sys.version_info[:2]) == v:
        import sysconfig

        found.append(os.path.join(sysconfig.get_path("stdlib"), "test"))
    home = os.path.expanduser("~")
    found += sorted(glob.glob(f"{home}/.pyenv/versions/{v}.*/lib/python{v}/test"), reverse=True)
    pythons = os.environ.get("PYTHONS_DIR", f"{home}/.cache/cpython-debian")
    found.append(f"{pythons}/{v}/usr/lib/python{v}/test")
    exe = shutil.which(f"python{v}")
    if exe:
        try:
            found.append(os.path.join(python_stdlib(exe), "test"))
        except (OSError, subprocess.SubprocessError):
            pass
    return found


def _cache_dir():
    default = os.path.join(os.path.expanduser("~"), ".cache", "subinterpreters")
    name = f"cpython{suite_tag()}-testsuite"
    return os.path.join(os.environ.get("SUBINTERPRETERS_SUITE_CACHE", default), name)


def _apt_options(workdir):
    """apt-get options for a throw-away configuration: the machine's Debian mirror, suite sid."""
    pythons = os.environ.get("PYTHONS_DIR", os.path.expanduser("~/.cache/cpython-debian"))
    apt_dir = os.path.join(pythons, ".apt")
    if not os.path.isfile(os.path.join(apt_dir, "ready")):
        # cpython-from-debian.sh has not prepared one: make our own (same recipe).
        apt_dir = os.path.join(workdir, "apt")
        os.makedirs(os.path.join(apt_dir, "lists", "partial"), exist_ok=True)
        os.makedirs(os.path.join(apt_dir, "cache", "archives", "partial"), exist_ok=True)
        uri = None
        for path in glob.glob("/etc/apt/sources.list.d/*.sources"):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    if line.startswith("URIs:") and "security" not in line:
                        uri = uri or line.split(":", 1)[1].split()[0]
        if uri is None and os.path.isfile("/etc/apt/sources.list"):
            with open("/etc/apt/sources.list", encoding="utf-8") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) > 2 and parts[0] == "deb" and "security" not in parts[1]:
                        uri = parts[1]
                        break
        if uri is None:
            raise RuntimeError("no Debian mirror found in /etc/apt")
        with open(os.path.join(apt_dir, "sources.list"), "w", encoding="utf-8") as f:
            f.write(
                f"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {uri} sid main\n"
            )
    opts = [
        "-o",
        f"Dir::Etc::SourceList={apt_dir}/sources.list",
        "-o",
        "Dir::Etc::SourceParts=/dev/null",
        "-o",
        f"Dir::State::Lists={apt_dir}/lists",
        "-o",
        f"Dir::Cache={apt_dir}/cache",
        "-o",
        "Debug::NoLocking=1",
        "-o",
        "APT::Sandbox::User=root",
    ]
    if not os.path.isfile(os.path.join(apt_dir, "ready")):
        subprocess.run(["apt-get", *opts, "update", "-qq"], check=True, timeout=300)
        open(os.path.join(apt_dir, "ready"), "w").close()
    return opts


def _from_debian(cache, sources):
    """Download and unpack Debian's test-suite package; copy ``sources`` (relative to Lib/test)
    into cache/VERSION, next to files other runners copied there; return that directory."""
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        raise RuntimeError("apt-get/dpkg-deb not available")
    os.makedirs(cache, exist_ok=True)
    work = tempfile.mkdtemp(prefix="pep734-deb-", dir=cache)
    try:
        opts = _apt_options(work)
        subprocess.run(
            ["apt-get", *opts, "download", "-qq", DEBIAN_PACKAGE],
            cwd=work,
            check=True,
            timeout=600,
        )
        debs = glob.glob(os.path.join(work, f"{DEBIAN_PACKAGE}_*.deb"))
        if not debs:
            raise RuntimeError(f"apt-get download produced no {DEBIAN_PACKAGE} package")
        version = os.path.basename(debs[0]).split("_")[1]
        unpacked = os.path.join(work, "root")
        subprocess.run(["dpkg-deb", "-x", debs[0], unpacked], check=True, timeout=300)
        src = os.path.join(unpacked, "usr", "lib", f"python{SUITE_VERSION}", "test")
        if not has_files(src, sources):
            raise RuntimeError(f"{debs[0]} does not contain the expected files")
        dest = os.path.join(cache, version)
        for rel in sources:
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            shutil.copy2(os.path.join(src, rel), os.path.join(dest, rel))
        return dest, f"Debian {DEBIAN_PACKAGE} {version} (cached in {cache})"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def find_suite(sources, no_download=False):
    """Return (CPython SUITE_VERSION's Lib/test directory holding ``sources``, how it was found) or
    (None, list of reasons)."""
    tried = []
    for cand in _local_candidates():
        if has_files(cand, sources):
            return cand, f"CPython {SUITE_VERSION} install"
        tried.append(f"{cand}: not there, or lacks some of the test files")
    cache = _cache_dir()
    cached = sorted(
        (d for d in glob.glob(os.path.join(cache, "*")) if has_files(d, sources)),
        key=lambda d: [int(p) if p.isdigit() else 0 for p in re.split(r"[.\-+~]", d)],
    )
    if cached:
        return cached[-1], f"cache ({DEBIAN_PACKAGE} {os.path.basename(cached[-1])})"
    tried.append(f"{cache}: empty")
    if no_download:
        tried.append("download disabled (--no-download)")
        return None, tried
    try:
        return _from_debian(cache, sources)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        tried.append(f"Debian {DEBIAN_PACKAGE}: {exc}")
    return None, tried


def each_suite(args, run_one):
    """Call ``run_one()`` with each selected release (--suite, else SUITE_VERSIONS) made the
    current one (use_suite); the worst exit status wins (2, then 1, then 0)."""
    versions = args.suite or SUITE_VERSIONS
    if args.suite_dir and len(versions) > 1:
        say("error: --suite-dir needs exactly one --suite")
        return 2
    worst = 0
    for version in versions:
        use_suite(version)
        try:
            rc = run_one()
        except SystemExit as exc:  # obtain_suite's verdicts
            rc = exc.code if isinstance(exc.code, int) else 2
        if rc == 2 or (rc and worst != 2):
            worst = rc
    return worst


def obtain_suite(args, sources, name, skip_hint=False):
    """The Lib/test directory to take ``sources`` from (--suite-dir, else find_suite), as
    (directory, how). When there is none, print why and raise SystemExit: status 2, or 0 with
    "skipped: ..." when SUBINTERPRETERS_ALLOW_NO_SUITE is set. ``name`` is the suite's name in
    the message; ``skip_hint`` adds a line naming that variable."""
    if args.suite_dir:
        if not has_files(args.suite_dir, sources):
            say(f"error: {args.suite_dir} lacks some of {', '.join(sources)}")
            raise SystemExit(2)
        return args.suite_dir, "--suite-dir"
    testdir, how = find_suite(sources, args.no_download)
    if testdir is None:
        reason = f"cannot obtain CPython {SUITE_VERSION}'s {name}; tried: " + "; ".join(how)
        if os.environ.get("SUBINTERPRETERS_ALLOW_NO_SUITE"):
            say(f"skipped: {reason}")
            raise SystemExit(0)
        say(f"error: {reason}")
        if skip_hint:
            say("  (set SUBINTERPRETERS_ALLOW_NO_SUITE=1 to skip instead of failing)")
        raise SystemExit(2)
    return testdir, how


# ---------------------------------------------------------------------------------------------
# rewriting the copy


def read_sources(testdir, sources):
    """{name in the generated copy: text} of ``sources`` ({path relative to testdir: name})."""
    files = {}
    for rel, name in sources.items():
        with open(os.path.join(testdir, rel), encoding="utf-8") as f:
            files[name] = f.read()
    return files


def leftovers(text, patterns):
    """What the regular expressions ``patterns`` still match in ``text`` (multi-line mode)."""
    return [m.group(0) for p in patterns for m in re.finditer(p, text, flags=re.MULTILINE)]


def rewrite_files(files, rewrites, patterns_left, require_match=False):
    """Apply ``rewrites`` ((label, pattern, replacement, file names or None for all), regular
    expressions on the whole text, so that they also reach the scripts run inside
    subinterpreters) to ``files`` ({name: text}) in place; return the notes "rewrote N x label".
    Raise SystemExit if ``patterns_left`` still match, or, with ``require_match``, if a rewrite
    matched nothing."""
    notes, matched = [], {}
    for label, pattern, repl, only in rewrites:
        for name in files:
            if only is not None and name not in only:
                continue
            files[name], n = re.subn(pattern, repl, files[name], flags=re.MULTILINE)
            matched[label] = matched.get(label, 0) + n
    for label, n in matched.items():
        if require_match and n == 0:
            raise SystemExit(f"error: rewrite {label!r} matched nothing; update REWRITES")
        notes.append(f"rewrote {n} x {label}")
    for name, text in files.items():
        left = leftovers(text, patterns_left)
        if left:
            raise SystemExit(f"error: {name}: references left after rewriting: {left}")
    return notes


# ---------------------------------------------------------------------------------------------
# the parent: the generated copy, the configuration, the watched child, the verdict


def write_text(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def write_package(directory, package, files):
    """Write the package ``package`` ({file name: text}, with its __init__.py) in ``directory``."""
    pkgdir = os.path.join(directory, package)
    os.makedirs(pkgdir)
    for name, text in files.items():
        write_text(os.path.join(pkgdir, name), text)


def _config_path(cfg):
    return os.path.join(cfg["dir"], "config.json")


@contextlib.contextmanager
def child_config(prefix, args, **fields):
    """A temporary directory for the generated copy, holding the child's configuration:
    ``fields`` and what every child reads. Yields the configuration (its "dir" is the directory);
    the directory is removed afterwards unless --keep-temp."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    try:
        cfg = {
            "dir": tmp,
            **fields,
            "verbose": args.verbose,
            "test_timeout": args.test_timeout,
            "status_file": os.path.join(tmp, "status.txt"),
            "result_file": os.path.join(tmp, "result.json"),
        }
        with open(_config_path(cfg), "w", encoding="utf-8") as f:
            json.dump(cfg, f)
        yield cfg
    finally:
        if args.keep_temp:
            say(f"generated copy kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run_watched(script, cfg, timeout):
    """Run ``script --child CONFIG`` under the whole-run watchdog (after ``timeout`` seconds,
    SIGABRT so that faulthandler prints the stacks, then SIGKILL). Return (exit status, timed
    out?, the child's result or None, the last line of its status file)."""
    env = dict(os.environ)
    # PYTHONPATH, not just sys.path: subinterpreters build their sys.path from the configuration,
    # and the tests import the generated copy inside them too.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (cfg["dir"], env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-u", script, "--child", _config_path(cfg)]
    proc = subprocess.Popen(cmd, cwd=cfg["dir"], env=env, start_new_session=True)
    timed_out = False
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        say(f"\nTIMEOUT: the run took more than {timeout:.0f} s; SIGABRT for stacks")
        os.killpg(proc.pid, signal.SIGABRT)
        try:
            rc = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()

    try:
        with open(cfg["result_file"], encoding="utf-8") as f:
            res = json.load(f)
    except (OSError, ValueError):
        res = None
    last = ""
    try:
        with open(cfg["status_file"], encoding="utf-8") as f:
            lines = f.read().splitlines()
            last = lines[-1] if lines else ""
    except OSError:
        pass
    return rc, timed_out, res, last


def verdict(rc, timed_out, res, last, timeout, test_timeout=None):
    """Print the RESULT line and return the exit status: 0 if the child passed, 1 on a failure,
    hang or crash, 2 on a setup problem. ``test_timeout``, if given, is named in a hang's line."""
    ok = rc == 0 and res is not None and res["ok"] and res["run"] > 0
    if ok:
        say("    RESULT: OK")
        return 0
    if timed_out:
        why = f"hard timeout ({timeout:.0f} s) while in: {last}"
    elif res is None and rc == 1:
        per_test = "" if test_timeout is None else f" ({test_timeout:.0f} s)"
        why = f"hang past the per-test timeout{per_test}, or an exception (see above) in: {last}"
    elif rc < 0:
        why = f"killed by signal {-rc} while in: {last}"
    elif res is None:
        why = f"child exited with status {rc} while in: {last}"
    elif res["ok"] and last == "interpreter shutdown":
        why = f"tests passed, but the process exited with status {rc} at shutdown"
    else:
        why = "test failures/errors"
    say(f"    RESULT: FAIL ({why})")
    return 2 if rc == 2 and res is None else 1


# ---------------------------------------------------------------------------------------------
# the child: runs unittest on the generated copy


def start_child(cfg_path):
    """Load the configuration, put the generated copy's directory in place of sys.path[0] (this
    script's directory) and enable faulthandler. Return (configuration, arm): arm(what) records
    ``what`` in the status file and re-arms the per-test watchdog, which ends the child with
    status 1 after printing every thread's stack. It is armed first for "import"."""
    with open(cfg_path, encoding="utf-8") as f:
        cfg = json.load(f)
    sys.path[0] = cfg["dir"]
    faulthandler.enable()
    status = open(cfg["status_file"], "w", encoding="utf-8")
    test_timeout = cfg["test_timeout"]

    def arm(what):
        status.write(what + "\n")
        status.flush()
        faulthandler.dump_traceback_later(test_timeout, exit=True)

    arm("import")
    return cfg, arm


def import_under_test(name, build_hint=True):
    """Import and name the module under test; on failure say why and return None."""
    try:
        mod = importlib.import_module(name)
    except ImportError as e:
        say(f"error: cannot import {name} on Python {sys.version.split()[0]}: {e}")
        if build_hint:
            say("  (build and install it: scripts/dev.sh build 3.X)")
        return None
    say(f"module under test: {name} from {getattr(mod, '__file__', '?')}")
    return mod


def run_tests(suite, verbose, arm):
    """Run ``suite`` with unittest's text runner, arming the watchdog at every test. The result
    counts its successes in ``passed``."""

    class Result(unittest.TextTestResult):
        passed = 0

        def startTest(self, test):
            arm(test.id())
            super().startTest(test)

        def addSuccess(self, test):
            self.passed += 1
            super().addSuccess(test)

    runner = unittest.TextTestRunner(
        stream=sys.stdout, verbosity=2 if verbose else 1, resultclass=Result
    )
    return runner.run(suite)


def counts(result, skip_tag):
    """The counts every summary has; skips whose reason starts with ``skip_tag`` are the
    script's."""
    return {
        "run": result.testsRun,
        "failures": len(result.failures),
        "errors": len(result.errors),
        "skipped": len(result.skipped),
        "skipped_by_script": sum(1 for _, why in result.skipped if why.startswith(skip_tag)),
        "ok": result.wasSuccessful(),
    }


def finish_child(cfg, result, summary, arm):
    """Write the summary for the parent; return the child's exit status."""
    with open(cfg["result_file"], "w", encoding="utf-8") as f:
        json.dump(summary, f)
    # Keep the watchdog armed through interpreter shutdown: a hang at exit is a failure too.
    arm("interpreter shutdown")
    return 0 if result.wasSuccessful() and result.testsRun else 1
