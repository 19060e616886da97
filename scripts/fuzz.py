#!/usr/bin/env python3
"""A seeded fuzzer for subinterpreters.lowlevel: random programs, each in a fresh process.

Each trial is a Python program generated deterministically from one integer seed: a list of
operations on a few interpreter slots ``I[k]`` and channel slots ``C[k]`` of the whole lowlevel
API (and ``_serve_queue``, the call runner's loop), from the main thread, from threads of the
main interpreter, from scripts run inside subinterpreters (which destroy, run, send and release
in their turn), and from threads started inside those subinterpreters; with bad inputs, dropped
IDs and work left in flight at exit.
Every operation catches the exceptions the API documents (RuntimeError and its ChannelError
subclasses, TypeError, ValueError, OverflowError), so a correct module runs every trial to a
clean exit. The trial fails if its process dies of a signal, hangs, exits non-zero, or writes
``Fatal Python error``, ``SystemError``, ``Exception ignored`` or a traceback to stderr.

A failure is reported with its seed and shrunk by delta debugging: operations (and the
operations nested in threads and scripts) are dropped while the same failure still reproduces;
the smallest program is printed and written to ``fuzz-failures/seed-N.py``, a standalone script.

    python scripts/fuzz.py --seconds 20 --seed 123 --jobs 2 --trial-timeout 30
    python scripts/fuzz.py --seed 123 --trials 1          # re-run one trial exactly
    python scripts/fuzz.py --replay fuzz-failures/seed-123.py
    python scripts/fuzz.py --seed 123 --print              # show the trial's program

Run it with the Python whose environment has subinterpreters installed (``scripts/dev.sh fuzz``
and ``make fuzz`` do that for every version). Never forks, never calls ``sys._current_frames``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

NI = 4  # interpreter slots I[0..3]
NC = 4  # channel slots C[0..3]

# Exception types a trial may see, raised locally or (as RunFailedError.type_name) remotely.
EXPECTED_REMOTE = (
    "RuntimeError AttributeError TypeError ValueError OverflowError ZeroDivisionError SystemExit "
    "RunFailedError ChannelError ChannelNotFoundError ChannelClosedError ChannelEmptyError "
    "ChannelNotEmptyError"
).split()

# What every script run in a subinterpreter starts with (``P`` in the trial's program; the main
# interpreter runs it too).
SUB_PRELUDE = f"""\
import gc, sys, threading, time
import subinterpreters.lowlevel as L
E = (RuntimeError, TypeError, ValueError, OverflowError, AttributeError)
OK_REMOTE = set({" ".join(EXPECTED_REMOTE)!r}.split())
K = globals().setdefault("K", [])  # objects a subinterpreter keeps alive


def ok(e):
    \"\"\"An expected exception; one from another interpreter must be of an expected type.\"\"\"
    if isinstance(e, L.RunFailedError) and e.type_name.rpartition(".")[2] not in OK_REMOTE:
        print("FUZZ-UNEXPECTED remote", e.type_name, e, e.traceback, file=sys.stderr, flush=True)
"""
assert "'''" not in SUB_PRELUDE

MAIN_PRELUDE = f"""\
import faulthandler

faulthandler.enable()
faulthandler.dump_traceback_later(@WATCHDOG@, exit=True)
P = '''\\
{SUB_PRELUDE}'''
exec(P)
I = [None] * {NI}  # InterpreterIDs
C = [None] * {NC}  # ChannelIDs
T = []  # threads of the main interpreter started by the program


def th(target, daemon):
    t = threading.Thread(target=target, daemon=daemon)
    T.append(t)
    t.start()


def join_all(timeout):
    for t in list(T):
        t.join(timeout)


def S(**kw):
    \"\"\"A shared dict: InterpreterIDs (not shareable) travel as ints.\"\"\"
    return {{k: int(v) if isinstance(v, L.InterpreterID) else v for k, v in kw.items()}}


"""

BODY = "@BODY@"
SUB_BAD_FUNCS = ["destroy", "is_running", "channel_recv", "channel_release"]


@dataclasses.dataclass(frozen=True)
class Op:
    """One statement of a trial; ``text`` holds ``@BODY@`` where its children go, if any."""

    text: str
    children: tuple[Op, ...] = ()
    indent: int = 0  # indentation of the children inside ``text``
    raw: bool = False  # children go inside an r'''...''' literal (a subinterpreter's script)

    def render(self) -> str:
        return "\n".join(line for line, _ in self.lines())

    def lines(self) -> list[tuple[str, bool]]:
        """(line, whether an enclosing block may indent it): the text of a subinterpreter's
        script stays where it is, as it is the content of a string literal."""
        out: list[tuple[str, bool]] = []
        for line in self.text.split("\n"):
            if line != BODY:
                out.append((line, not line.startswith("'''")))
                continue
            inner = [pair for c in self.children for pair in c.lines()] or [("pass", True)]
            pad = " " * self.indent
            for text, movable in inner:
                if self.raw:
                    out.append((text, False))
                else:
                    out.append((pad + text if movable else text, movable))
        return out

    def with_children(self, children) -> Op:
        return dataclasses.replace(self, children=tuple(children))


def guarded(stmt: str) -> Op:
    """A statement whose expected exceptions are caught (and checked) where it runs."""
    if "\n" in stmt:
        inner = "\n".join("    " + line for line in stmt.split("\n"))
        return Op(f"try:\n{inner}\nexcept E as e:\n    ok(e)")
    return Op(f"try: {stmt}\nexcept E as e: ok(e)")


def render_program(ops, watchdog: float, header: str = "") -> str:
    prelude = MAIN_PRELUDE.replace("@WATCHDOG@", repr(round(watchdog, 1)))
    text = header + prelude + "\n".join(op.render() for op in ops) + "\n"
    compile(text, "<trial>", "exec")  # a generator bug must not look like a module bug
    return text


class Gen:
    """Draws one trial's operations from a seeded random generator."""

    def __init__(self, seed: int, n_ops: int):
        self.r = random.Random(seed)
        self.n_ops = n_ops
        self.fn = 0  # counter for function names

    # -- small choices -------------------------------------------------------------------
    def i(self):
        return f"I[{self.r.randrange(NI)}]"

    def c(self):
        return f"C[{self.r.randrange(NC)}]"

    def pick(self, weighted):
        """``weighted``: list of (weight, callable or value)."""
        choice = self.r.choices([v for _, v in weighted], [w for w, _ in weighted])[0]
        return choice() if callable(choice) else choice

    def flags(self, force_ok=True):
        r = self.r
        parts = []
        if r.random() < 0.5:
            parts.append("send=True")
        if r.random() < 0.5:
            parts.append("recv=True")
        if force_ok and r.random() < 0.5:
            parts.append("force=True")
        return ", " + ", ".join(parts) if parts else ""

    def value(self, chan):
        """A value to send or share: mostly shareable, some not. ``chan``: a channel expr."""
        return self.pick(
            [
                (3, lambda: self.r.choice(["b'x'", "b''", "'text'", "'\\u20ac\\U0001f600'"])),
                (3, lambda: self.r.choice(["0", "42", "-1", "2**63 - 1", "-2**63"])),
                (1, "None"),
                (3, lambda: chan()),
                (1, lambda: chan() + self.r.choice([".send", ".recv"])),
                (1, "b'y' * 200_000"),
                (1, lambda: self.r.choice(["object()", "2**64", "1.5", "True", "[1]", "b'x'[:0]"])),
            ]
        )

    def bad(self):
        """An argument that is not a valid ID of the expected kind."""
        return self.r.choice(
            [
                "'x'",
                "-1",
                "2**64",
                "-2**70",
                "1.5",
                "None",
                "object()",
                "10**6",
                "[]",
                "b'1'",
                "L.get_main()",
                "True",
                "I[0]",
                "C[0]",
                "L.InterpreterID(10**6, force=True)",
                "L._channel_id(10**6, force=True)",
            ]
        )

    def name(self, prefix):
        self.fn += 1
        return f"{prefix}{self.fn}"

    # -- the program ---------------------------------------------------------------------
    def program(self):
        # Short programs isolate simple bugs; long ones make interactions.
        n = self.r.randint(max(1, self.n_ops // 6), 2 * self.n_ops)
        ops = [self.main_op(depth=0) for _ in range(n)]
        ops.append(self.epilogue())
        return ops

    def epilogue(self):
        return self.pick(
            [
                (4, Op("# exit with whatever is still in flight")),
                (2, guarded("join_all(5)")),
                (
                    2,
                    guarded(
                        "join_all(5)\nfor k in range(len(I)):\n"
                        "    try: L.destroy(I[k])\n    except E as e: ok(e)"
                    ),
                ),
                (1, guarded("gc.collect(); I[:] = [None] * len(I); gc.collect()")),
            ]
        )

    def main_op(self, depth):
        """An operation of the main interpreter; depth 1 means inside a thread of it."""
        g = [
            (6, self.m_create),
            (5, lambda: guarded(f"L.destroy({self.i()})")),
            (3, self.m_drop_or_copy),
            (3, self.m_query),
            (8, self.m_run),
            (3, self.m_serve),
            (5, self.m_chan_create),
            (8, lambda: guarded(f"L.channel_send({self.c()}, {self.value(self.c)})")),
            (6, self.m_recv),
            (4, lambda: guarded(f"L.channel_close({self.c()}{self.flags()})")),
            (4, lambda: guarded(f"L.channel_release({self.c()}{self.flags()})")),
            (2, lambda: guarded(f"L.channel_destroy({self.c()})")),
            (2, self.m_chan_misc),
            (3, self.m_bad),
            (2, lambda: guarded(f"time.sleep({self.r.choice([0, 0.001, 0.01, 0.05, 0.1])})")),
            (1, lambda: guarded("gc.collect()")),
        ]
        if depth == 0:
            g += [
                (7, self.m_thread),
                (1, lambda: guarded(f"join_all({self.r.choice([0.05, 0.2, 1])})")),
                (0.3, lambda: guarded("L._clean_up_at_exit()")),
            ]
        return self.pick(g)

    def m_create(self):
        iso = self.r.choice(["", "isolated=True", "isolated=False", "isolated=False", "isolated=0"])
        return guarded(f"{self.i()} = L.create({iso})")

    def m_drop_or_copy(self):
        a, b = self.i(), self.i()
        return self.pick(
            [
                (3, guarded(f"{a} = None; gc.collect()")),
                (2, guarded(f"{a} = {b}")),
                (2, guarded(f"{a} = L.InterpreterID({b})")),
                (1, guarded(f"{a} = L.InterpreterID(int({b}), force=True)")),
                (1, guarded(f"L.InterpreterID(int({b})); gc.collect()")),
            ]
        )

    def m_query(self):
        a, b = self.i(), self.i()
        return self.pick(
            [
                (2, guarded("L.list_all()")),
                (1, guarded("L.get_current(); L.get_main()")),
                (3, guarded(f"L.is_running({a})")),
                (1, guarded(f"hash({a}); int({a}); {a} == {b}; str({a})")),
                (1, guarded(f"L.is_shareable({self.value(self.c)})")),
            ]
        )

    def m_run(self):
        """run_string of a generated script in one of the slots, with shared channels and IDs."""
        target = self.i()
        shared = f"S(c={self.c()}, d={self.c()}, i={self.i()}, j={self.i()})"
        n = self.r.randint(1, 5)
        children = tuple(self.sub_op() for _ in range(n))
        if self.r.random() < 0.05:  # a non-dict or unshareable shared=
            shared = self.r.choice(["[]", "{'x': object()}", "{1: 2}"])
        text = (
            f"try: L.run_string({target}, P + r'''\n{BODY}\n''', shared={shared})\n"
            "except E as e: ok(e)"
        )
        return Op(text, children, indent=0, raw=True)

    def m_serve(self):
        """_serve_queue: a generated script run in one of the slots once per queued item (as
        Interpreter.call_async's runner does), the queue always ending in the stop marker."""
        target = self.i()
        n = self.r.randint(1, 4)
        children = tuple(self.sub_op() for _ in range(n))
        items = ", ".join(self.r.choice(["1", "'a'", "(2, b'b')", "None"]) for _ in range(3))
        shared = f"S(c={self.c()}, d={self.c()}, i={self.i()}, j={self.i()})"
        text = (
            "try:\n"
            "    _q = L._queue_create(0, 3, 0)\n"
            f"    for _v in ({items}, None): L._queue_put(_q, _v, 0, False, None)\n"
            "    try:\n"
            f"        _it = {target}  # once: another thread may change the slot meanwhile\n"
            "        L.run_string(_it, 'pass', shared=" + shared + ")  # the names scripts use\n"
            f"        _o = L._serve_queue(_it, _q, P + r'''\n{BODY}\n''', '__x__')\n"
            "        if _o is not None: ok(_o[1])\n"
            "    finally:\n"
            "        L._queue_release(_q)\n"
            "except E as e: ok(e)"
        )
        return Op(text, children, indent=0, raw=True)

    def m_thread(self):
        name = self.name("_t")
        daemon = self.r.random() < 0.5
        n = self.r.randint(1, 4)
        children = tuple(self.main_op(depth=1) for _ in range(n))
        return Op(f"def {name}():\n{BODY}\nth({name}, daemon={daemon})", children, indent=4)

    def m_chan_create(self):
        return guarded(f"{self.c()} = L.channel_create()")

    def m_recv(self):
        a, b = self.c(), self.c()
        return self.pick(
            [
                (3, guarded(f"L.channel_recv({a})")),
                (2, guarded(f"L.channel_recv({a}, None)")),
                (
                    2,
                    guarded(
                        f"v = L.channel_recv({a}, None)\nif isinstance(v, L.ChannelID): {b} = v"
                    ),
                ),
            ]
        )

    def m_chan_misc(self):
        a, b = self.c(), self.c()
        send = self.r.choice(["True", "False"])
        return self.pick(
            [
                (2, guarded("L.channel_list_all()")),
                (2, guarded(f"L.channel_list_interpreters({a}, send={send})")),
                (2, guarded(f"{a} = L._channel_id(int({b}){self.flags()})")),
                (1, guarded(f"{a} = L._channel_id({self.r.choice([10**6, 0, 1])}, force=True)")),
                (2, guarded(f"{a} = {b}.{self.r.choice(['send', 'recv'])}; {b}.end")),
                (2, guarded(f"{a} = None; gc.collect()")),
                (1, guarded(f"{a} = {b}")),
            ]
        )

    def m_bad(self):
        b = self.bad()
        i, c = self.i(), self.c()
        script = self.r.choice(["None", "b'pass'", "1", "object()"])  # not a str
        return guarded(
            self.r.choice(
                [
                    f"L.destroy({b})",
                    f"L.is_running({b})",
                    f"L.run_string({b}, 'pass')",
                    f"L.run_string({i}, {script})",
                    f"L.run_string({i}, 'pass', shared={b})",
                    f"L.run_string({i}, 'pass', {{'x': {b}}})",
                    f"L.InterpreterID({b})",
                    f"L.create({b})",
                    f"L.channel_send({b}, 1)",
                    f"L.channel_recv({b})",
                    f"L.channel_recv({b}, None)",
                    f"L.channel_close({b}, force=True)",
                    f"L.channel_release({b})",
                    f"L.channel_destroy({b})",
                    f"L.channel_list_interpreters({b}, send=True)",
                    f"L.channel_list_interpreters({c})",
                    f"L._channel_id({b})",
                    f"L._channel_id({b}, force=True)",
                    f"L.is_shareable({b})",
                    f"L.destroy({c})",
                    f"L.channel_send({i}, 1)",
                ]
            )
        )

    # -- inside a subinterpreter: names c, d (ChannelIDs or None), i, j (ints or None) -----
    def sc(self):
        return self.r.choice(["c", "d"])

    def si(self):
        return self.r.choice(["i", "j"])

    def sub_op(self, in_thread=False):
        """A statement of a script run in a subinterpreter (or of a thread it started)."""
        r = self.r
        g = [
            (6, lambda: guarded(f"L.channel_send({self.sc()}, {self.value(self.sc)})")),
            (5, lambda: guarded(f"L.channel_recv({self.sc()}, None)")),
            (3, lambda: guarded(f"L.channel_close({self.sc()}{self.flags()})")),
            (3, lambda: guarded(f"L.channel_release({self.sc()}{self.flags()})")),
            (1, lambda: guarded(f"L.channel_destroy({self.sc()})")),
            (2, lambda: guarded(f"L.channel_send({self.sc()}, L.channel_create())")),
            (1, lambda: guarded("K.append(L.channel_create())")),
            (2, lambda: guarded(f"L.is_running({self.si()}); L.list_all(); L.get_current()")),
            (2, lambda: guarded(f"time.sleep({r.choice([0, 0.01, 0.05, 0.2])})")),
            (2, self.s_create),
            (1, lambda: guarded("K.clear(); gc.collect()")),
            (2, lambda: guarded(f"L.run_string({self.si()}, {self.simple_script()!r})")),
            (1, lambda: guarded(f"L.{r.choice(SUB_BAD_FUNCS)}({self.bad_sub()})")),
        ]
        if not in_thread:
            # Waiting operations stay out of threads started in subinterpreters, so that no two
            # threads can wait for each other (destroy() joins the target's threads on 3.12+).
            g += [
                (5, lambda: guarded(f"L.destroy({self.si()})")),
                (2, lambda: guarded(f"K.append(L.InterpreterID({self.si()}))")),
                (4, self.s_thread),
                (1, lambda: Op("1 / 0  # the script fails")),
                (1, self.s_stubborn),
            ]
        return self.pick(g)

    def bad_sub(self):
        return self.r.choice(["'x'", "-1", "2**64", "None", "10**6", "c", "object()"])

    def s_create(self):
        iso = self.r.choice(["", "isolated=False"])
        return self.pick(
            [
                (2, guarded(f"x = L.create({iso}); L.destroy(x)")),
                (1, guarded(f"K.append(L.create({iso}))")),
                (1, guarded(f"L.create({iso}); gc.collect()")),
            ]
        )

    def s_thread(self):
        name = self.name("_s")
        daemon = self.r.random() < 0.5
        n = self.r.randint(1, 4)
        children = tuple(self.sub_op(in_thread=True) for _ in range(n))
        text = (
            f"def {name}():\n{BODY}\n"
            f"try: threading.Thread(target={name}, daemon={daemon}).start()\n"
            "except E as e: ok(e)"
        )
        return Op(text, children, indent=4)

    def s_stubborn(self):
        """Keeps running for a while even when asked to stop with SystemExit (as at exit)."""
        secs = self.r.choice([0.5, 1, 4])
        return Op(
            f"_end = time.time() + {secs}\n"
            "while time.time() < _end:\n"
            "    try: time.sleep(0.05)\n"
            "    except SystemExit: pass"
        )

    def simple_script(self):
        """A script for a run_string made inside a subinterpreter: never waits for anything."""
        return self.r.choice(
            [
                "pass",
                "import time; time.sleep(0.05)",
                "1 / 0",
                "import subinterpreters.lowlevel as L; L.list_all(); L.channel_create()",
                "import subinterpreters.lowlevel as L; L.get_current()",
            ]
        )


# -- running trials ------------------------------------------------------------------------

# In order of precedence: a more specific message printed before faulthandler's "Fatal Python
# error: Aborted" names the failure better.
SIGNATURE_PATTERNS = [
    ("rust panic", re.compile(r"panicked at [^\n]*\n(.*)")),
    ("libc", re.compile(r"^FATAL: (.*)", re.M)),  # e.g. pthread_exit unwinding through Rust
    ("fatal", re.compile(r"Fatal Python error: (.*)")),
    ("systemerror", re.compile(r"(?:^|\W)SystemError\b:? ?(.*)")),
    ("exception-ignored", re.compile(r"Exception ignored (.*)")),
    ("unexpected", re.compile(r"FUZZ-UNEXPECTED (\S+ \S+)")),
    ("traceback", re.compile(r"^(\w*(?:Error|Exception)\b.*)$", re.M)),
]


# faulthandler's "Fatal Python error: <name>" for a signal; sometimes it gets no chance to print
# (the process dies of the signal all the same), so these are reported as the signal.
FAULTHANDLER_SIGNALS = {
    "Segmentation fault": "SIGSEGV",
    "Aborted": "SIGABRT",
    "Bus error": "SIGBUS",
    "Floating point exception": "SIGFPE",
    "Illegal instruction": "SIGILL",
}


@dataclasses.dataclass
class Result:
    failed: bool
    signature: str  # what kind of failure: kept the same while shrinking
    detail: str  # return code and stderr, for the report
    seconds: float


def normalize(msg: str) -> str:
    """The stable part of a message: no addresses, numbers or thread ids."""
    msg = re.sub(r"0x[0-9a-f]+", "ADDR", msg)
    msg = re.sub(r"\d+", "N", msg)
    return msg.strip()[:120]


# The exit cleanup stops daemon threads with an asynchronous SystemExit (docs/threads.md); one
# that lands in a callback CPython runs for a thread (a weakref callback of importlib's module
# locks, say) is printed as "Exception ignored" with nothing wrong. Only that exact report, whose
# exception is SystemExit, is set aside before classifying.
_EXIT_STOP_REPORT = re.compile(
    r"Exception ignored in: [^\n]*\nTraceback \(most recent call last\):\n"
    r"(?:  [^\n]*\n)*SystemExit\b[^\n]*(?:\n|$)"
)


def classify(rc, stderr: str, timed_out: bool) -> tuple[bool, str]:
    stderr = _EXIT_STOP_REPORT.sub("", stderr)
    if timed_out or "Timeout (0:" in stderr:
        return True, "hang"
    for kind, pat in SIGNATURE_PATTERNS[:-1]:
        m = pat.search(stderr)
        if m and not (kind == "fatal" and m.group(1).strip() in FAULTHANDLER_SIGNALS):
            return True, f"{kind}: {normalize(m.group(1))}"
    m = SIGNATURE_PATTERNS[2][1].search(stderr)  # faulthandler's name for the signal
    if m and m.group(1).strip() in FAULTHANDLER_SIGNALS:
        return True, f"signal {FAULTHANDLER_SIGNALS[m.group(1).strip()]}"
    if rc is not None and rc < 0:
        try:
            return True, f"signal {signal.Signals(-rc).name}"
        except ValueError:
            return True, f"signal {-rc}"
    if "Traceback (most recent call last)" in stderr or rc != 0:
        m = SIGNATURE_PATTERNS[-1][1].search(stderr)
        what = normalize(m.group(1)) if m else f"exit status {rc}"
        return True, f"uncaught: {what.split(':')[0]}"
    return False, ""


def run_program(python: str, text: str, timeout: float, workdir: str) -> Result:
    fd, path = tempfile.mkstemp(suffix=".py", prefix="trial-", dir=workdir)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    t0 = time.monotonic()
    timed_out = False
    proc = subprocess.Popen(
        [python, "-X", "faulthandler", path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=workdir,  # never the source tree: the installed package must be the one imported
        start_new_session=True,
        text=True,
        errors="replace",
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    finally:
        os.unlink(path)
    rc = proc.returncode
    failed, sig = classify(rc, err, timed_out)
    detail = f"return code {rc}{' (killed after timeout)' if timed_out else ''}\n"
    detail += "--- stderr (last 40 lines) ---\n" + "\n".join(err.splitlines()[-40:]) + "\n"
    if out.strip():
        detail += "--- stdout (last 10 lines) ---\n" + "\n".join(out.splitlines()[-10:]) + "\n"
    return Result(failed, sig, detail, time.monotonic() - t0)


@dataclasses.dataclass
class Failure:
    seed: int
    ops: list
    result: Result


class Fuzzer:
    def __init__(self, args):
        self.args = args
        self.python = args.python
        self.workdir = tempfile.mkdtemp(prefix="subinterp-fuzz-")
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs)
        self.lock = threading.Lock()

    def program(self, ops, header=""):
        return render_program(ops, self.args.trial_timeout - 2, header)

    def run(self, ops) -> Result:
        return run_program(self.python, self.program(ops), self.args.trial_timeout, self.workdir)

    def trial_ops(self, seed):
        return Gen(seed, self.args.ops).program()

    def reproduces(self, ops, signature) -> bool:
        """Whether the program fails with this signature in one of up to --shrink-tries runs."""
        text = self.program(ops)
        futs = [
            self.pool.submit(run_program, self.python, text, self.args.trial_timeout, self.workdir)
            for _ in range(self.args.shrink_tries)
        ]
        try:
            for fut in concurrent.futures.as_completed(futs):
                res = fut.result()
                if res.failed and res.signature == signature:
                    return True
            return False
        finally:
            for fut in futs:
                fut.cancel()

    # -- delta debugging over the tree of operations -------------------------------------
    def shrink(self, ops, signature, deadline):
        def test(cand):
            if time.monotonic() > deadline:
                return False
            self.tests += 1
            return self.reproduces(cand, signature)

        self.tests = 0
        # The epilogue (last op) is an op like any other: it may go too.
        return self.shrink_list(list(ops), lambda lst: lst, test)

    def shrink_list(self, lst, rebuild, test):
        lst = ddmin(lst, lambda cand: test(rebuild(cand)))
        for k in range(len(lst)):
            op = lst[k]
            if not op.children:
                continue

            def rebuild_child(children, k=k, op=op, lst_ref=lst):
                new = list(lst_ref)
                new[k] = op.with_children(children)
                return rebuild(new)

            children = self.shrink_list(list(op.children), rebuild_child, test)
            lst[k] = op.with_children(children)
        return lst

    # -- the main loop ----------------------------------------------------------------------
    def fuzz(self):
        a = self.args
        deadline = time.monotonic() + a.seconds
        failures: dict[str, Failure] = {}
        counts: dict[str, int] = {}
        n_trials = 0
        total_secs = 0.0
        slowest = 0.0
        t_start = time.monotonic()
        print(
            f"fuzz: {self.python} (CPython {'.'.join(map(str, sys.version_info[:3]))}), "
            f"seeds from {a.seed}, {a.seconds}s, {a.jobs} jobs, {a.ops} ops per trial",
            flush=True,
        )

        def one(seed):
            ops = self.trial_ops(seed)
            return seed, ops, self.run(ops)

        pending = set()
        seed = a.seed
        while True:
            while (
                len(pending) < a.jobs
                and time.monotonic() < deadline
                and (a.trials is None or seed < a.seed + a.trials)
            ):
                pending.add(self.pool.submit(one, seed))
                seed += 1
            if not pending:
                break
            done, pending = concurrent.futures.wait(
                pending, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for fut in done:
                s, ops, res = fut.result()
                n_trials += 1
                total_secs += res.seconds
                slowest = max(slowest, res.seconds)
                if res.failed:
                    counts[res.signature] = counts.get(res.signature, 0) + 1
                    first = res.signature not in failures
                    print(
                        f"FAIL seed {s}: {res.signature}" + ("" if first else " (seen before)"),
                        flush=True,
                    )
                    if first:
                        failures[res.signature] = Failure(s, ops, res)
                        if not a.quiet:
                            print(res.detail, flush=True)
        wall = time.monotonic() - t_start
        print(
            f"fuzz: {n_trials} trials in {wall:.1f}s (mean {total_secs / max(n_trials, 1):.2f}s, "
            f"slowest {slowest:.2f}s per trial), {len(failures)} distinct failure(s)",
            flush=True,
        )
        for sig, fail in failures.items():
            self.report(sig, fail, counts[sig])
        self.pool.shutdown(wait=True)
        return 1 if failures else 0

    def report(self, sig, fail: Failure, count: int):
        a = self.args
        print(f"\n=== failure: {sig}  (seed {fail.seed}, {count} trial(s)) ===", flush=True)
        ops = fail.ops
        if not a.no_shrink:
            t0 = time.monotonic()
            before = count_ops(ops)
            ops = self.shrink(ops, sig, t0 + a.shrink_seconds)
            print(
                f"shrunk from {before} to {count_ops(ops)} operations in "
                f"{time.monotonic() - t0:.0f}s ({self.tests} test runs)",
                flush=True,
            )
        v = ".".join(map(str, sys.version_info[:3]))
        header = (
            f"# subinterpreters fuzz failure: {sig}\n"
            f"# seed {fail.seed}, CPython {v}; reproduce with:\n"
            f"#   python scripts/fuzz.py --replay THIS_FILE     (or run it directly)\n"
            f"#   python scripts/fuzz.py --seed {fail.seed} --trials 1   (the unshrunk trial)\n"
        )
        text = self.program(ops, header)
        os.makedirs(a.out, exist_ok=True)
        path = os.path.join(a.out, f"seed-{fail.seed}.py")
        with open(path, "w") as f:
            f.write(text)
        print(f"--- reproducer ({path}) ---\n{text}--- end of reproducer ---", flush=True)
        res = fail.result
        print(f"--- original run: {res.detail}", flush=True)

    def replay(self, path):
        with open(path) as f:
            text = f.read()
        bad = 0
        for k in range(self.args.replay_runs):
            res = run_program(self.python, text, self.args.trial_timeout, self.workdir)
            status = f"FAIL {res.signature}" if res.failed else "ok"
            print(f"run {k + 1}: {status} ({res.seconds:.2f}s)", flush=True)
            if res.failed:
                bad += 1
                if bad == 1:
                    print(res.detail, flush=True)
        print(f"{bad} of {self.args.replay_runs} runs failed", flush=True)
        return 1 if bad else 0


def count_ops(ops):
    return sum(1 + count_ops(op.children) for op in ops)


def ddmin(items, fails):
    """Zeller's delta debugging: a smaller list for which ``fails`` still holds (1-minimal
    in chunks); ``items`` itself is assumed to fail."""
    n = 2
    while items:
        if fails([]):
            return []
        chunk = max(1, len(items) // n)
        reduced = False
        for start in range(0, len(items), chunk):
            cand = items[:start] + items[start + chunk :]
            if fails(cand):
                items = cand
                n = max(n - 1, 2)
                reduced = True
                break
        if not reduced:
            if chunk == 1:
                break
            n = min(len(items), n * 2)
    return items


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60, help="start trials for this long")
    p.add_argument("--seed", type=int, default=None, help="first trial's seed (default: random)")
    p.add_argument("--trials", type=int, default=None, help="stop after this many trials")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="trials at once")
    p.add_argument("--trial-timeout", type=float, default=30, help="a trial longer hangs")
    p.add_argument("--ops", type=int, default=30, help="top-level operations per trial")
    p.add_argument("--shrink-seconds", type=float, default=300, help="budget per failure")
    p.add_argument("--shrink-tries", type=int, default=3, help="runs per shrinking candidate")
    p.add_argument("--no-shrink", action="store_true", help="report failures unshrunk")
    p.add_argument("--out", default="fuzz-failures", help="where reproducers are written")
    p.add_argument("--replay", metavar="FILE", help="run a reproducer (--replay-runs times)")
    p.add_argument("--replay-runs", type=int, default=5)
    p.add_argument("--print", action="store_true", help="print the program of --seed and exit")
    p.add_argument("--python", default=sys.executable, help="interpreter to run trials with")
    p.add_argument("-q", "--quiet", action="store_true", help="no stderr of each new failure")
    args = p.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(10**9)
    fuzzer = Fuzzer(args)
    if args.print:
        sys.stdout.write(fuzzer.program(fuzzer.trial_ops(args.seed)))
        return 0
    if args.replay:
        return fuzzer.replay(args.replay)
    return fuzzer.fuzz()


if __name__ == "__main__":
    sys.exit(main())
