"""Pressing Ctrl-C in a child Python as a user would: again when a press was not noticed.

CPython notices a signal between bytecodes, or when the signal interrupts the blocking call the
main thread is in. A SIGINT that lands after the last check but before the main thread blocks
(in ``time.sleep``, ``Thread.join``) is noticed only when that wait ends, which for the waits
these tests provoke is never. A user presses Ctrl-C again; so do these helpers, after a pause
long enough for a noticed press to have shown its effect.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys

# How long a press may take to show its effect before it counts as lost.
PATIENCE = 5.0
PRESSES = 12


def spawn(code: str, cwd: str) -> subprocess.Popen:
    """A child Python running ``code``, its stdout and stderr piped (read stdout with
    ``read_byte`` only: no buffered reads before ``communicate``)."""
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def read_byte(proc: subprocess.Popen) -> bytes:
    """The next byte the child writes on stdout (b"" once it has closed it)."""
    return os.read(proc.stdout.fileno(), 1)


def press_until_output(proc: subprocess.Popen) -> bytes:
    """Press Ctrl-C until the child writes its next byte on stdout, and return that byte."""
    for _ in range(PRESSES):
        proc.send_signal(signal.SIGINT)
        ready, _, _ = select.select([proc.stdout], [], [], PATIENCE)
        if ready:
            return read_byte(proc)
    raise AssertionError(f"no output after {PRESSES} presses of Ctrl-C")


def press_until_exit(proc: subprocess.Popen) -> bytes:
    """Press Ctrl-C until the child exits; return what it wrote on stderr."""
    for _ in range(PRESSES):
        proc.send_signal(signal.SIGINT)
        try:
            return proc.communicate(timeout=PATIENCE)[1]
        except subprocess.TimeoutExpired:
            continue
    raise AssertionError(f"still running after {PRESSES} presses of Ctrl-C")


def end(proc: subprocess.Popen) -> None:
    """Kill the child if it still runs (a failed test) and reap it."""
    if proc.poll() is None:
        proc.kill()
        proc.communicate()
