"""create(forward_output=True): what the interpreter prints reaches the main interpreter's
current sys.stdout/sys.stderr, in order, before the call returns; without the flag nothing
changes."""

from __future__ import annotations

import asyncio
import contextlib
import io
import sys
import threading

import pytest

ours = pytest.importorskip("subinterpreters.interpreters")


@pytest.fixture
def fwd():
    interp = ours.create(forward_output=True)
    yield interp
    interp.close()


def test_prints_reach_redirect_stdout_and_stderr_before_exec_returns(fwd):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        fwd.exec("import sys\nprint('one')\nprint('oops', file=sys.stderr)\nprint('two', end='')")
        assert out.getvalue() == "one\ntwo"
        assert err.getvalue() == "oops\n"


def test_order_is_kept_across_both_streams(fwd):
    both = io.StringIO()
    code = (
        "import sys\nfor i in range(300):\n    print(i, file=sys.stderr if i % 3 else sys.stdout)"
    )
    with contextlib.redirect_stdout(both), contextlib.redirect_stderr(both):
        fwd.exec(code)
    assert both.getvalue() == "".join(f"{i}\n" for i in range(300))


def test_everything_a_call_printed_is_delivered_before_it_returns(fwd):
    def chatty(n):
        for i in range(n):
            print("line", i)
        return n

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert fwd.call(chatty, 2000) == 2000
        assert out.getvalue().count("\n") == 2000
        assert out.getvalue().endswith("line 1999\n")


def test_call_async_output_is_delivered_before_it_returns(fwd):
    def hello():
        print("from call_async")
        return 1

    async def main():
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            await fwd.call_async(hello)
            return out.getvalue()

    assert asyncio.run(main()) == "from call_async\n"


def test_capsys_sees_the_output(fwd, capsys):
    fwd.exec("print('captured by pytest')")
    assert capsys.readouterr().out == "captured by pytest\n"


def test_output_goes_to_the_streams_current_at_delivery(fwd):
    first, second = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(first):
        fwd.exec("print('a')")
    with contextlib.redirect_stdout(second):
        fwd.exec("print('b')")
    assert (first.getvalue(), second.getvalue()) == ("a\n", "b\n")


@pytest.mark.skipif(sys.version_info < (3, 12), reason="no threads in 3.11's isolated interpreters")
def test_a_thread_of_the_interpreter_is_forwarded_while_no_call_returns(fwd):
    arrived = threading.Event()

    class Stream(io.StringIO):
        def write(self, s):
            n = super().write(s)
            if "background\n" in self.getvalue():
                arrived.set()
            return n

    stream = Stream()
    go = ours.create_queue()
    fwd.prepare_main(go=go)
    with contextlib.redirect_stdout(stream):
        fwd.exec(
            "import threading\n"
            "threading.Thread(target=lambda: (go.get(), print('background'))).start()"
        )
        go.put(1)  # the thread prints after exec has returned
        assert arrived.wait(60)
    assert stream.getvalue() == "background\n"


def test_writer_behaves_as_a_text_stream(fwd):
    out = ours.create_queue()
    fwd.prepare_main(out=out)
    fwd.exec(
        """
import io, sys
try:
    sys.stdout.write(b'bytes')
except TypeError:
    out.put('TypeError')
try:
    sys.stdout.fileno()
except io.UnsupportedOperation:
    out.put('UnsupportedOperation')
out.put((sys.stdout.write('abc'), sys.stdout.isatty(), sys.stdout.writable()))
"""
    )
    assert out.get_nowait() == "TypeError"
    assert out.get_nowait() == "UnsupportedOperation"
    assert out.get_nowait() == (3, False, True)


def test_without_the_flag_nothing_is_forwarded(capfd):
    plain = ours.create()
    try:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            plain.exec("print('to fd 1')")
        assert out.getvalue() == ""
        assert "to fd 1" in capfd.readouterr().out
    finally:
        plain.close()


def test_forward_output_is_refused_outside_the_main_interpreter():
    sub = ours.create()
    try:
        out = ours.create_queue()
        sub.prepare_main(out=out)
        sub.exec(
            "from subinterpreters import interpreters\n"
            "try:\n"
            "    interpreters.create(forward_output=True)\n"
            "except interpreters.InterpreterError as e:\n"
            "    out.put(str(e))\n"
        )
        assert "main interpreter" in out.get_nowait()
    finally:
        sub.close()
