"""Helpers for the channel tests (test_chan_*.py): run channel operations in named interpreters,
and a small Python model of the channel rules in docs/channels.md.

The ``mod`` fixture and interpreter cleanup come from conftest.py. On 3.12 and 3.13 CPython's
channel functions live in another module with other names and wording, so the channel tests run
against CPython's module on 3.11 only: each test file sets ``pytestmark = CHANNEL_TESTS`` (see
below), which conftest honours when it generates the ``cpython`` case.
"""

from __future__ import annotations

import ast
import collections
import contextlib
import threading
import time

import pytest
from conftest import PY311, capture

# conftest generates the `cpython` case unless a test carries `ours_only`. CPython 3.12's
# `_xxsubinterpreters` has no channel functions, so off 3.11 every channel test is ours only.
CHANNEL_TESTS = [] if PY311 else [pytest.mark.ours_only]

CHANNEL_ERRORS = (
    "ChannelError",
    "ChannelNotFoundError",
    "ChannelClosedError",
    "ChannelEmptyError",
    "ChannelNotEmptyError",
)


def channel_ids(mod) -> list[int]:
    """The registered channel ids as plain ints (holding no ChannelID objects afterwards)."""
    return [int(c) for c in mod.channel_list_all()]


def is_registered(mod, cid) -> bool:
    return int(cid) in channel_ids(mod)


def drain(mod, cid) -> list:
    """Receive until the channel is empty; return the items."""
    marker = object()
    items = []
    while (item := mod.channel_recv(cid, marker)) is not marker:
        items.append(item)
    return items


# -- running one operation in a named interpreter --------------------------------------------------

# Defines `_do(expr)` in an interpreter's __main__ (and in a dict in the main interpreter). The
# aliases bind the channel under test, so table rows read `send(b'x')`, `close(send=True)`.
# Results come back as plain data: ("ok", value) or (exception class name, message). Interpreter
# ids are reported by name ("main", "a", "b") so tables do not depend on runtime ids.
_DO_SOURCE = """\
import importlib as _imp
_m = _imp.import_module(_mod_name)
_names = eval(_names_repr)

def _norm(value):
    if type(value) is list:
        return [_norm(v) for v in value]
    if type(value).__name__ == "InterpreterID":
        return _names.get(int(value), int(value))
    if type(value).__name__ == "ChannelID":
        return ("ChannelID", int(value), value.end)
    return value

_kept = {}

_ns = {
    "m": _m,
    "_keep": lambda c: _keep(c),
    "_kept": _kept,
    "cid": _cid,
    "send": lambda obj, **kw: _m.channel_send(_cid, obj, **kw),
    "recv": lambda *a, **kw: _m.channel_recv(_cid, *a, **kw),
    "close": lambda **kw: _m.channel_close(_cid, **kw),
    "release": lambda **kw: _m.channel_release(_cid, **kw),
    "senders": lambda: _m.channel_list_interpreters(_cid, send=True),
    "receivers": lambda: _m.channel_list_interpreters(_cid, send=False),
    "destroy": lambda: _m.channel_destroy(_cid),
    "listed": lambda: _cid in [int(c) for c in _m.channel_list_all()],
}

def _keep(cid):
    # hold a ChannelID here (by id), so that the channel outlives the call
    _kept[int(cid)] = cid
    return int(cid)

def _do(expr):
    try:
        return ("ok", _norm(eval(expr, _ns)))
    except Exception as exc:
        return (type(exc).__name__, str(exc))
"""


class Interps:
    """A channel plus named interpreters ("main" and the given subs) that act on it.

    ``do(name, expr)`` evaluates ``expr`` (see ``_DO_SOURCE`` for the aliases) in that
    interpreter and returns ``("ok", value)`` or ``(exception name, message)``. Use as a context
    manager: on exit the channel is destroyed *before* the subinterpreters are (destroying a
    CPython 3.11 sender with items still queued leaves stray exceptions).
    """

    def __init__(self, mod, subs=("a", "b"), *, isolated=True):
        self.mod = mod
        self.channel = mod.channel_create()
        self.cid = int(self.channel)
        self.interps = {"main": mod.get_main()}
        for name in subs:
            self.interps[name] = mod.create(isolated=isolated)
        names = {int(i): n for n, i in self.interps.items()}
        shared = {"_mod_name": mod.__name__, "_cid": self.cid, "_names_repr": repr(names)}
        self._main_ns = dict(shared)
        exec(_DO_SOURCE, self._main_ns)
        for name in subs:
            mod.run_string(self.interps[name], _DO_SOURCE, shared)

    def do(self, who: str, expr: str):
        if who == "main":
            return self._main_ns["_do"](expr)
        out = capture(self.mod, self.interps[who], f"emit(repr(_do({expr!r})))")
        return ast.literal_eval(out)

    def destroy_interp(self, who: str):
        self.mod.destroy(self.interps.pop(who))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        with contextlib.suppress(self.mod.ChannelNotFoundError):
            self.mod.channel_destroy(self.cid)
        self.channel = None
        for name, interp in list(self.interps.items()):
            if name != "main":
                self.mod.destroy(interp)
        self.interps.clear()


# -- a model of the channel rules (docs/channels.md) -----------------------------------------------


class ModelChannel:
    """One channel per docs/channels.md.

    ``ends[send][interp] = open``; ``closed`` is None, "close" (by close or drain) or "release"
    (by the "open for everyone" rule, 9.4); ``closing`` is set by a deferred send-end close.
    ``open_count[send]`` is 3.11's count of open ends, which is what a release checks: up when an
    interpreter first uses that end, down on every release of a known association, even one
    already released (so a repeated release counts again, and the count can go below zero).
    """

    def __init__(self, cid: int):
        self.cid = cid
        self.queue: list = []
        self.ends: dict[bool, dict[object, bool]] = {True: {}, False: {}}
        self.open_count = {True: 0, False: 0}
        self.closed: str | None = None
        self.closing = False


class Model:
    """The channel registry (docs/channels.md) for one process, to check random operation sequences.

    Every method returns ("ok", value) or (exception class name, message), like ``Interps.do``.
    ``who`` names the calling interpreter. Values must be shareable and compare as plain data.
    """

    def __init__(self):
        self.channels: dict[int, ModelChannel] = {}

    def create(self, cid: int):
        self.channels[cid] = ModelChannel(cid)

    def _lookup(self, cid):
        ch = self.channels.get(cid)
        if ch is None:
            return None, ("ChannelNotFoundError", f"channel {cid} not found")
        return ch, None

    @staticmethod
    def _closed(ch):
        return ("ChannelClosedError", f"channel {ch.cid} closed")

    @staticmethod
    def _associate(ch, who, send: bool):
        if ch.ends[send].get(who) is False:
            return ("ChannelClosedError", "channel already closed")
        if who not in ch.ends[send]:
            ch.open_count[send] += 1
        ch.ends[send][who] = True
        return None

    def send(self, who, cid, obj, *, unshareable: str | None = None):
        """``unshareable``: ``str(obj)`` of a value that fails conversion (after the state checks,
        before association)."""
        ch, err = self._lookup(cid)
        if err:
            return err
        if ch.closed or ch.closing:
            return self._closed(ch)
        if unshareable is not None:
            return ("ValueError", f"{unshareable} does not support cross-interpreter data")
        err = self._associate(ch, who, True)
        if err:
            return err
        ch.queue.append(obj)
        return ("ok", None)

    def recv(self, who, cid, *default):
        ch, err = self._lookup(cid)
        if err:
            return err
        if ch.closed:
            return self._closed(ch)
        err = self._associate(ch, who, False)
        if err:
            return err
        if not ch.queue:
            if default:
                return ("ok", default[0])
            return ("ChannelEmptyError", f"channel {cid} is empty")
        item = ch.queue.pop(0)
        if ch.closing and not ch.queue:
            self._close_now(ch)
        return ("ok", item)

    @staticmethod
    def _close_now(ch):
        ch.closed = "close"
        ch.queue.clear()

    def close(self, who, cid, *, send=False, recv=False, force=False):
        ch, err = self._lookup(cid)
        if err:
            return err
        end = "send" if send and not recv else "recv" if recv and not send else "both"
        if ch.closed == "close":
            return self._closed(ch)
        if ch.closing and not force and end == "send":
            return self._closed(ch)
        if ch.closed == "release":
            return ("ChannelClosedError", "channel already closed")
        if ch.queue and not force:
            if end == "send":
                ch.closing = True
                return ("ok", None)
            return ("ChannelNotEmptyError", "may not be closed if not empty (try force=True)")
        self._close_now(ch)
        return ("ok", None)

    def release(self, who, cid, *, send=False, recv=False, force=False):
        ch, err = self._lookup(cid)
        if err:
            return err
        if ch.closed:
            return self._closed(ch)
        sides = [True] if send and not recv else [False] if recv and not send else [True, False]
        for side in sides:
            if who in ch.ends[side]:
                ch.open_count[side] -= 1
            ch.ends[side][who] = False
        if ch.open_count[True] == 0 and ch.open_count[False] == 0:
            ch.closed = "release"
        return ("ok", None)

    def destroy(self, cid):
        ch, err = self._lookup(cid)
        if err:
            return err
        del self.channels[cid]
        return ("ok", None)

    def list_interpreters(self, cid, *, send):
        ch, err = self._lookup(cid)
        if err:
            return err
        if ch.closed or (send and ch.closing):
            return self._closed(ch)
        return ("ok", [k for k, v in ch.ends[bool(send)].items() if v])


# -- table-driven scenarios ------------------------------------------------------------------------

DESTROY = "<destroy this interpreter>"


def run_scenario(mod, steps, *, isolated=True):
    """Run ``(interpreter, expression, expected)`` steps against one fresh channel.

    ``expected`` is ``("ok", value)`` or ``(exception name, message)``; ``{cid}`` in a message
    stands for the channel's id. The expression ``DESTROY`` destroys that subinterpreter.
    """
    subs = sorted({who for who, _, _ in steps} - {"main"})
    with Interps(mod, subs, isolated=isolated) as env:
        done = []
        for who, expr, expected in steps:
            want = tuple(
                part.format(cid=env.cid, big=env.cid + 1000) if isinstance(part, str) else part
                for part in expected
            )
            got = ("ok", env.destroy_interp(who)) if expr == DESTROY else env.do(who, expr)
            done.append(f"{who}: {expr} -> {got}")
            assert got == want, "\n".join(done) + f"\n  expected {want}"


# -- many senders and receivers at once ------------------------------------------------------------

# Subinterpreter loops sleep briefly now and then: on 3.11 one GIL is shared, and a thread of one
# interpreter spinning never yields to a waiter from another
# (docs/threads.md#the-shared-gil-on-311).
SENDER = """
import time
import {name} as m
i = 0
try:
    while i != count:
        m.channel_send(c, f"{{tag}}:{{i}}")
        i += 1
        if i % 64 == 0:
            time.sleep(0)
except m.ChannelClosedError:
    pass  # `count` is -1 when a close ends the stream
emit(i)
"""

RECEIVER = """
import time
import {name} as m
got = []
marker = object()
try:
    while True:
        item = m.channel_recv(c, marker)
        if item is marker:
            time.sleep(0.0002)
            continue
        if item is None:
            break
        got.append(item)
except m.ChannelClosedError:
    pass
m.channel_send(results, tag + "=" + "\\n".join(got))
"""


def exchange(
    mod,
    *,
    sub_senders,
    sub_receivers,
    main_senders,
    main_receivers,
    count=-1,
    stop="markers",
    isolated=True,
):
    """Move items over one channel with senders and receivers all running at once.

    Senders and receivers in subinterpreters each run in their own thread (an interpreter runs
    one run_string at a time); the main interpreter's are plain threads. Sender ``tag`` sends
    ``"tag:0"``, ``"tag:1"``, ...

    ``stop="markers"``: each sender sends ``count`` items; then one ``None`` per receiver ends
    the receivers. ``stop="close"`` / ``"force-close"``: senders send until the channel is
    closed, which main does 0.15 s in, with ``channel_close(send=True)`` (CLOSING:
    nothing may be lost) or ``channel_close(force=True)`` (the queue is discarded); receivers
    stop at ChannelClosedError.

    Returns ({sender tag: items sent}, {receiver tag: items received in order}).
    """
    c = mod.channel_create()
    results = mod.channel_create()  # one "tag=item\nitem..." string per subinterpreter receiver
    subs_s = [mod.create(isolated=isolated) for _ in range(sub_senders)]
    subs_r = [mod.create(isolated=isolated) for _ in range(sub_receivers)]
    sent: dict[str, int] = {}
    received: dict[str, list[str]] = {}
    errors: list[BaseException] = []
    n_receivers = sub_receivers + main_receivers
    start = threading.Barrier(sub_senders + main_senders + n_receivers + 1)
    sender_script = SENDER.format(name=mod.__name__)
    receiver_script = RECEIVER.format(name=mod.__name__)

    def guarded(fn):
        def run(*args):
            try:
                start.wait(timeout=30)
                fn(*args)
            except BaseException as exc:
                errors.append(exc)

        return run

    @guarded
    def sub_sender(tag, sub):
        out = capture(mod, sub, sender_script, {"c": c, "count": count, "tag": tag})
        sent[tag] = int(out)

    @guarded
    def main_sender(tag):
        i = 0
        try:
            while i != count:
                mod.channel_send(c, f"{tag}:{i}")
                i += 1
                if i % 256 == 0:
                    time.sleep(0)
        except mod.ChannelClosedError:
            pass
        sent[tag] = i

    @guarded
    def sub_receiver(tag, sub):
        mod.run_string(sub, receiver_script, {"c": c, "results": results, "tag": tag})

    @guarded
    def main_receiver(tag):
        got = []
        marker = object()
        try:
            while True:
                item = mod.channel_recv(c, marker)
                if item is marker:
                    time.sleep(0.0002)
                    continue
                if item is None:
                    break
                got.append(item)
        except mod.ChannelClosedError:
            pass
        received[tag] = got

    senders = [threading.Thread(target=sub_sender, args=(f"s{k}", s)) for k, s in enumerate(subs_s)]
    senders += [threading.Thread(target=main_sender, args=(f"m{k}",)) for k in range(main_senders)]
    receivers = [
        threading.Thread(target=sub_receiver, args=(f"r{k}", s)) for k, s in enumerate(subs_r)
    ]
    receivers += [
        threading.Thread(target=main_receiver, args=(f"mr{k}",)) for k in range(main_receivers)
    ]
    for t in senders + receivers:
        t.start()
    start.wait(timeout=30)
    if stop == "markers":
        for t in senders:
            t.join(90)
        for _ in range(n_receivers):
            mod.channel_send(c, None)  # one stop marker per receiver, after every item
    else:
        time.sleep(0.15)
        if stop == "close":
            mod.channel_close(c, send=True)
        else:
            mod.channel_close(c, force=True)
    for t in senders + receivers:
        t.join(90)
    assert not any(t.is_alive() for t in senders + receivers), "a worker hung"
    assert not errors, errors
    if stop == "markers":
        assert mod.channel_recv(c, "empty") == "empty"
    for report in drain(mod, results):
        tag, _, body = report.partition("=")
        received[tag] = body.split("\n") if body else []
    assert len(received) == n_receivers
    assert len(sent) == sub_senders + main_senders
    return sent, received


def _by_sender(received):
    """{sender tag: sorted indices received}, checking per-receiver FIFO order on the way."""
    indices = collections.defaultdict(list)
    for name, items in received.items():
        last: dict[str, int] = {}
        for item in items:
            tag, _, i = item.partition(":")
            assert int(i) > last.get(tag, -1), f"{name} got {item} out of order"
            last[tag] = int(i)
            indices[tag].append(int(i))
    return {tag: sorted(found) for tag, found in indices.items()}


def check_exactly_once(sent, received):
    """Every sent item was received exactly once, each receiver in each sender's order."""
    by_sender = _by_sender(received)
    assert set(by_sender) <= set(sent), set(by_sender) - set(sent)
    for tag, n in sent.items():
        got = by_sender.get(tag, [])
        assert got == list(range(n)), (
            f"{tag}: sent {n}, received {len(got)}, distinct {len(set(got))}"
        )


def check_prefixes(sent, received):
    """Nothing received twice or unsent; per sender, what arrived is a prefix of what was sent
    (a forced close discards the queue, which holds each sender's latest items)."""
    by_sender = _by_sender(received)
    assert set(by_sender) <= set(sent), set(by_sender) - set(sent)
    for tag, n in sent.items():
        got = by_sender.get(tag, [])
        assert got == list(range(len(got))) and len(got) <= n, (
            f"{tag}: sent {n}, received {len(got)}, distinct {len(set(got))}"
        )
