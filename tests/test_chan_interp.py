"""Channels across interpreters: round trips through subinterpreters, the process-global registry
and sharing ChannelIDs, the object count across interpreters, interpreter
destruction, and several interpreters and threads on shared channels at once. The rules are
in docs/channels.md.
"""

from __future__ import annotations

import importlib
import sys

import pytest
from chan_helpers import (
    CHANNEL_TESTS,
    DESTROY,
    check_exactly_once,
    drain,
    exchange,
    is_registered,
    run_scenario,
)
from conftest import UNKNOWN, assert_clean_exit, capture, evaluate, is_ours, run_python

pytestmark = CHANNEL_TESTS

OK = ("ok", None)


def ok(value):
    return ("ok", value)


def _import(mod):
    return f"import {mod.__name__} as m\n"


# -- main -> subinterpreter -> main ----------------------------------------------------------------

ECHO = """
import {name} as m
n = 0
while True:
    item = m.channel_recv(inbox)
    if item == "stop":
        break
    if type(item) is bytes:
        item = item[::-1]
    elif type(item) is str:
        item = item.upper()
    elif type(item) is int:
        item = -item
    m.channel_send(outbox, item)
    n += 1
m.channel_send(outbox, "done")
"""


@pytest.mark.parametrize("isolated", [True, False], ids=["isolated", "legacy"])
def test_round_trip_through_a_subinterpreter(mod, isolated):
    inbox, outbox = mod.channel_create(), mod.channel_create()
    other = mod.channel_create()
    items = [b"abc", "xyz", 7, -(2**63) + 1, None, b"", "\U0001f600", other.send, other.recv]
    for item in items:
        mod.channel_send(inbox, item)
    mod.channel_send(inbox, "stop")
    sub = mod.create(isolated=isolated)
    mod.run_string(sub, ECHO.format(name=mod.__name__), {"inbox": inbox, "outbox": outbox})
    got = drain(mod, outbox)
    assert got == [
        b"cba",
        "XYZ",
        -7,
        2**63 - 1,
        None,
        b"",
        "\U0001f600",
        other.send,
        other.recv,
        "done",
    ]
    assert [getattr(x, "end", None) for x in got[7:9]] == ["send", "recv"]
    assert [int(i) for i in mod.channel_list_interpreters(outbox, send=True)] == [int(sub)]
    assert [int(i) for i in mod.channel_list_interpreters(inbox, send=False)] == [int(sub)]


def test_hop_through_a_chain_of_interpreters(mod):
    # main -> a -> b -> c -> main, each hop on its own channel.
    subs = [mod.create() for _ in range(3)]
    chans = [mod.channel_create() for _ in range(4)]
    for i in range(50):
        mod.channel_send(chans[0], i)
    mod.channel_send(chans[0], "stop")
    relay = _import(mod) + (
        "while (x := m.channel_recv(src)) != 'stop':\n"
        "    m.channel_send(dst, x + 1)\n"
        "m.channel_send(dst, 'stop')\n"
    )
    for k, sub in enumerate(subs):
        mod.run_string(sub, relay, {"src": chans[k], "dst": chans[k + 1]})
    assert drain(mod, chans[3]) == [i + 3 for i in range(50)] + ["stop"]


# -- one registry for every interpreter (docs/channels.md#the-registry) ----------------------------


def test_a_channel_made_in_a_sub_gets_the_next_global_id(mod):
    first = mod.channel_create()
    sub = mod.create()
    made = capture(mod, sub, _import(mod) + "mine = m.channel_create()\nemit(int(mine))")
    assert int(made) == int(first) + 1
    assert is_registered(mod, int(made))
    assert int(mod.channel_create()) == int(first) + 2
    # used from main by its number; the sub's object keeps it alive
    mod.channel_send(int(made), b"from main")
    assert evaluate(mod, sub, "m.channel_recv(mine)") == "b'from main'"
    assert evaluate(mod, sub, "[int(c) for c in m.channel_list_all()][:3]") == str(
        [int(c) for c in mod.channel_list_all()][:3]
    )


def test_closing_from_a_sub_is_seen_everywhere(mod):
    c = mod.channel_create()
    mod.channel_send(c, 1)
    sub = mod.create()
    mod.run_string(sub, _import(mod) + "m.channel_close(c, force=True)", {"c": c})
    with pytest.raises(mod.ChannelClosedError, match=f"^channel {int(c)} closed$"):
        mod.channel_recv(c)


# -- sharing a ChannelID (docs/channels.md#sharing-a-channelid) ------------------------------------


@pytest.mark.parametrize("end", ["both", "send", "recv"])
def test_shared_channel_id_keeps_id_and_end(mod, end):
    c = mod.channel_create()
    x = c if end == "both" else getattr(c, end)
    sub = mod.create()
    out = capture(
        mod,
        sub,
        _import(mod)
        + "same = m._channel_id(c, **({} if c.end == 'both' else {c.end: True}))\n"
        + "emit(type(c) is m.ChannelID, ' ', repr(c), ' ', c.end, ' ', c == same)",
        {"c": x},
    )
    assert out == f"True {x!r} {end} True"


@pytest.mark.parametrize("end", ["both", "send", "recv"])
def test_channel_id_sent_to_a_sub_keeps_id_and_end(mod, end):
    c = mod.channel_create()
    x = c if end == "both" else getattr(c, end)
    carrier = mod.channel_create()
    mod.channel_send(carrier, x)
    sub = mod.create()
    out = capture(
        mod,
        sub,
        _import(mod)
        + "got = m.channel_recv(carrier)\nemit(type(got) is m.ChannelID, repr(got), got.end)",
        {"carrier": carrier},
    )
    assert out == f"True{x!r}{end}"
    # and back again
    mod.run_string(sub, _import(mod) + "m.channel_send(carrier, got)", {"carrier": carrier})
    back = mod.channel_recv(carrier)
    assert back == x and back.end == end


def _resolved_class_name(end):
    """What 3.11 turns a `_resolve=True` send/recv ID into when it arrives (docs/channels.md)."""
    for name in ("interpreters", "test.support.interpreters"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        cls = getattr(module, "SendChannel" if end == "send" else "RecvChannel", None)
        return None if cls is None else cls.__name__
    return None


@pytest.mark.parametrize("how", ["channel", "shared"])
@pytest.mark.parametrize("end", ["send", "recv"])
def test_resolved_channel_ids_arrive_as_high_level_ends(mod, end, how):
    c = mod.channel_create()
    x = mod._channel_id(c, _resolve=True, **{end: True})
    sub = mod.create()
    if how == "channel":
        carrier = mod.channel_create()
        mod.channel_send(carrier, x)
        script = _import(mod) + "got = m.channel_recv(carrier)\n"
        shared = {"carrier": carrier}
    else:
        script = "got = x\n"
        shared = {"x": x}
    out = capture(mod, sub, script + "emit(type(got).__name__, ' ', repr(got))", shared)
    # Ours resolves only into its own high-level module, which does not exist yet (README,
    # deliberate difference 13: CPython's high-level classes drive CPython's registry).
    cls = None if is_ours(mod) else _resolved_class_name(end)
    if cls is None:  # nothing to resolve to: the ChannelID itself
        assert out == f"ChannelID {x!r}"
    else:
        assert out == f"{cls} {cls}(id={int(c)})"


def test_resolve_is_not_carried_onward(mod):
    c = mod.channel_create()
    carrier = mod.channel_create()
    mod.channel_send(carrier, mod._channel_id(c, send=True))
    got = mod.channel_recv(carrier)
    assert type(got) is mod.ChannelID  # no _resolve: never resolved


# -- the object count across interpreters (docs/channels.md#object-count) --------------------------


def test_an_id_held_in_a_sub_keeps_the_channel(mod):
    c = mod.channel_create()
    n = int(c)
    sub = mod.create()
    mod.run_string(sub, "kept = c\ndel c", {"c": c})
    del c
    assert is_registered(mod, n)
    mod.channel_send(n, b"x")
    assert mod.channel_recv(n) == b"x"
    mod.run_string(sub, "del kept")
    assert not is_registered(mod, n)


def test_ids_die_with_the_sub_that_holds_them(mod):
    c = mod.channel_create()
    n = int(c)
    sub = mod.create()
    mod.run_string(sub, "kept = [c, c.send, c.recv]", {"c": c})
    del c
    assert is_registered(mod, n)
    mod.destroy(sub)
    assert not is_registered(mod, n)


def test_a_channel_made_and_held_in_a_destroyed_sub_disappears(mod):
    sub = mod.create()
    made = int(capture(mod, sub, _import(mod) + "mine = m.channel_create()\nemit(int(mine))"))
    assert is_registered(mod, made)
    mod.destroy(sub)
    assert not is_registered(mod, made)


def test_an_id_queued_by_a_sub_keeps_the_channel(mod):
    carrier = mod.channel_create()
    sub = mod.create()
    made = int(
        capture(
            mod,
            sub,
            _import(mod)
            + "mine = m.channel_create()\nm.channel_send(mine, b'inside')\n"
            + "m.channel_send(carrier, mine.recv)\nemit(int(mine))\ndel mine",
            {"carrier": carrier},
        )
    )
    assert is_registered(mod, made)  # only the queued item holds it now
    got = mod.channel_recv(carrier)
    assert got == made and got.end == "recv"
    assert mod.channel_recv(got) == b"inside"
    del got
    assert not is_registered(mod, made)


def test_counts_from_several_interpreters_add_up(mod):
    c = mod.channel_create()
    n = int(c)
    subs = [mod.create() for _ in range(3)]
    for sub in subs:
        mod.run_string(sub, "held = [c, c.send]", {"c": c})
    del c
    for sub in subs[:-1]:
        mod.run_string(sub, "del held, c")
        assert is_registered(mod, n)
    mod.destroy(subs[-1])
    assert not is_registered(mod, n)


def test_listed_interpreter_ids_count_on_their_interpreter(mod):
    # channel_list_interpreters returns real InterpreterIDs: they keep a sub alive
    # (docs/interpreters.md#counted-lifetime).
    c = mod.channel_create()
    sub = mod.create()
    n = int(sub)
    mod.run_string(sub, _import(mod) + "m.channel_send(c, None)", {"c": c})
    listed = mod.channel_list_interpreters(c, send=True)
    assert listed == [n] and type(listed[0]) is mod.InterpreterID
    del sub
    assert n in [int(i) for i in mod.list_all()]
    del listed
    assert n not in [int(i) for i in mod.list_all()]
    assert mod.channel_list_interpreters(c, send=True) == []
    assert mod.channel_recv(c) is None


def test_channel_errors_inside_a_sub(mod):
    c = mod.channel_create()
    mod.channel_close(c)
    sub = mod.create()
    script = (
        _import(mod)
        + f"""
caught = []
for call, exc in [
    (lambda: m.channel_recv({UNKNOWN}), m.ChannelNotFoundError),
    (lambda: m.channel_recv(m.channel_create()), m.ChannelEmptyError),
    (lambda: m.channel_send(closed, 1), m.ChannelClosedError),
    (lambda: m.channel_send(closed, [1]), m.ChannelError),
]:
    try:
        call()
    except exc as e:
        caught.append(type(e).__name__ + ": " + str(e))
emit("|".join(caught))
"""
    )
    out = capture(mod, sub, script, {"closed": c})
    made = int(c) + 1  # the sub's channel_create() call above
    assert out.split("|") == [
        f"ChannelNotFoundError: channel {UNKNOWN} not found",
        f"ChannelEmptyError: channel {made} is empty",
        f"ChannelClosedError: channel {int(c)} closed",
        f"ChannelClosedError: channel {int(c)} closed",
    ]


def test_channel_error_escaping_a_sub(mod):
    sub = mod.create()
    with pytest.raises(mod.RunFailedError) as info:
        mod.run_string(sub, _import(mod) + f"m.channel_recv({UNKNOWN})")
    expected = f"<class '{mod.__name__}.ChannelNotFoundError'>: channel {UNKNOWN} not found"
    assert str(info.value) == expected


# -- interpreter destruction (docs/channels.md#destroyed-interpreters-and-channels) ----------------

DESTRUCTION = {
    # A destroyed interpreter is never listed; in 3.11 its association stays "open", so a channel
    # it received on does not close when the live users release.
    "destroyed-receiver-keeps-channel-open": [
        ("a", "recv(None)", ok(None)),
        ("b", "send(None)", OK),
        ("main", "receivers()", ok(["a"])),
        ("a", DESTROY, OK),
        ("main", "receivers()", ok([])),
        ("main", "senders()", ok(["b"])),
        ("main", "release()", OK),
        ("b", "release()", OK),
        ("main", "listed()", ok(True)),
        ("b", "recv()", ("ChannelClosedError", "channel already closed")),
        (
            "main",
            "close()",
            ("ChannelNotEmptyError", "may not be closed if not empty (try force=True)"),
        ),
        ("main", "close(force=True)", OK),
        ("main", "recv()", ("ChannelClosedError", "channel {cid} closed")),
    ],
    "destroyed-sender-not-listed": [
        ("a", "send(None)", OK),
        ("b", "send(None)", OK),
        ("a", DESTROY, OK),
        ("main", "senders()", ok(["b"])),
        ("main", "recv()", ok(None)),  # None items of a dead sender are fine in 3.11 too
        ("main", "recv()", ok(None)),
        ("main", "recv(5)", ok(5)),
    ],
    "closing-drained-after-sender-destroyed": [
        ("a", "send(None)", OK),
        ("a", "close(send=True)", OK),
        ("a", DESTROY, OK),
        ("b", "recv()", ok(None)),
        ("b", "recv(None)", ("ChannelClosedError", "channel {cid} closed")),
    ],
}


@pytest.mark.parametrize("steps", list(DESTRUCTION.values()), ids=list(DESTRUCTION))
def test_destruction_scenario(mod, steps):
    run_scenario(mod, steps)


@pytest.mark.ours_only
def test_items_of_a_destroyed_sender_stay_receivable(mod):
    # README difference 7 (3.11: SystemError, and the item is lost).
    c = mod.channel_create()
    keep = mod.channel_create()
    sub = mod.create()
    mod.run_string(
        sub,
        _import(mod)
        + "for x in (b'bytes', 'str', 42, -(2**63), None, keep.send, b'z' * 100_000):\n"
        + "    m.channel_send(c, x)\n",
        {"c": c, "keep": keep},
    )
    mod.destroy(sub)
    got = drain(mod, c)
    assert got == [b"bytes", "str", 42, -(2**63), None, keep.send, b"z" * 100_000]
    assert got[5].end == "send"
    assert mod.channel_list_interpreters(c, send=True) == []


@pytest.mark.ours_only
def test_a_queued_id_of_a_destroyed_sender_still_counts(mod):
    c = mod.channel_create()
    sub = mod.create()
    made = int(
        capture(
            mod,
            sub,
            _import(mod) + "mine = m.channel_create()\nm.channel_send(c, mine)\nemit(int(mine))",
            {"c": c},
        )
    )
    mod.destroy(sub)  # the sub's own object died; the queued one still counts
    assert is_registered(mod, made)
    got = mod.channel_recv(c)
    assert got == made
    del got
    assert not is_registered(mod, made)


@pytest.mark.ours_only
@pytest.mark.parametrize("how", ["force-close", "destroy", "drop-last-id", "recv-and-drop"])
def test_freeing_items_of_a_destroyed_sender_is_clean(mod, how):
    # 3.11 leaves a stray RuntimeError that surfaces in an unrelated later call
    # (docs/channels.md#destroyed-interpreters-and-channels).
    c = mod.channel_create()
    n = int(c)
    sub = mod.create()
    mod.run_string(sub, _import(mod) + "for i in range(5): m.channel_send(c, b'x%d' % i)", {"c": c})
    mod.destroy(sub)
    if how == "force-close":
        mod.channel_close(c, force=True)
    elif how == "destroy":
        mod.channel_destroy(c)
    elif how == "drop-last-id":
        del c
    else:
        assert mod.channel_recv(c) == b"x0"
        mod.channel_destroy(c)
    assert sys.exc_info() == (None, None, None)
    other = mod.channel_create()
    mod.channel_send(other, 1)
    assert mod.channel_recv(other) == 1
    if how != "force-close":
        assert not is_registered(mod, n)


@pytest.mark.ours_only
@pytest.mark.parametrize("isolated", [True, False], ids=["isolated", "legacy"])
def test_destroying_a_sender_of_a_queued_channel_id_does_not_hang(mod, isolated):
    # CPython 3.12 and 3.13.0 hang here (docs/channels.md#destroyed-interpreters-and-channels); run
    # in a child so a hang cannot stop pytest.
    proc = run_python(
        f"""
        import {mod.__name__} as m
        c = m.channel_create()
        sub = m.create(isolated={isolated})
        m.run_string(sub, "import {mod.__name__} as m\\nx = m.channel_create()\\n"
                          "m.channel_send(c, x)\\nm.channel_send(c, x.send)", {{"c": c}})
        m.destroy(sub)
        a = m.channel_recv(c)
        b = m.channel_recv(c)
        print(int(a) == int(b), a.end, b.end)
        """,
        timeout=30,
    )
    assert_clean_exit(proc, expect_stdout="True both send")


@pytest.mark.ours_only
def test_a_channel_outlives_all_its_users(mod):
    # Each sub takes the item of the previous (already destroyed) sub, then leaves its own.
    c = mod.channel_create()
    seen = []
    for k in range(3):
        sub = mod.create()
        script = _import(mod) + f"emit(repr(m.channel_recv(c, None)))\nm.channel_send(c, b'{k}')"
        seen.append(capture(mod, sub, script, {"c": c}))
        mod.destroy(sub)
    assert seen == ["None", "b'0'", "b'1'"]
    assert drain(mod, c) == [b"2"]
    assert mod.channel_list_interpreters(c, send=True) == []


# -- threads and interpreters at once (docs/channels.md#concurrency) -------------------------------


def test_senders_and_receivers_in_several_interpreters(mod):
    sent, received = exchange(
        mod, sub_senders=2, sub_receivers=2, main_senders=1, main_receivers=1, count=2000
    )
    assert sum(sent.values()) == 6000
    check_exactly_once(sent, received)


def test_threads_of_one_interpreter_share_a_channel(mod):
    sent, received = exchange(
        mod, sub_senders=0, sub_receivers=0, main_senders=3, main_receivers=3, count=3000
    )
    check_exactly_once(sent, received)


def test_legacy_and_isolated_interpreters_share_a_channel(mod):
    c = mod.channel_create()
    legacy, isolated = mod.create(isolated=False), mod.create(isolated=True)
    for sub, tag in ((legacy, "L"), (isolated, "I")):
        mod.run_string(
            sub, _import(mod) + f"for i in range(100): m.channel_send(c, '{tag}%d' % i)", {"c": c}
        )
    got = drain(mod, c)
    assert got == [f"L{i}" for i in range(100)] + [f"I{i}" for i in range(100)]
