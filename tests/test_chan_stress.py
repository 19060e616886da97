"""Channel stress: many messages through many interpreters and threads at once, memory that stays
flat over a million send/recv pairs, and long random operation sequences checked against a model
of the channel rules in docs/channels.md.

Memory is measured in child processes (a clean start, and a crash cannot take pytest down).
"""

from __future__ import annotations

import json
import random

import pytest
from chan_helpers import (
    CHANNEL_TESTS,
    Interps,
    Model,
    check_exactly_once,
    check_prefixes,
    exchange,
)
from conftest import assert_clean_exit, is_ours, run_python

pytestmark = CHANNEL_TESTS

MIB = 1024 * 1024


# -- 100,000 messages, 8 threads, 4 subinterpreters + main -----------------------------------------


def test_hundred_thousand_messages_eight_threads(mod):
    # Two subinterpreters send and two receive, each in its own thread (an interpreter runs one
    # run_string at a time); two main-interpreter threads send and two receive.
    sent, received = exchange(
        mod, sub_senders=2, sub_receivers=2, main_senders=2, main_receivers=2, count=25_000
    )
    assert sum(sent.values()) == 100_000
    assert sum(map(len, received.values())) == 100_000
    check_exactly_once(sent, received)


@pytest.mark.parametrize("isolated", [True, False], ids=["isolated", "legacy"])
def test_subinterpreters_only(mod, isolated):
    sent, received = exchange(
        mod,
        sub_senders=3,
        sub_receivers=3,
        main_senders=0,
        main_receivers=0,
        count=10_000,
        isolated=isolated,
    )
    check_exactly_once(sent, received)


def test_closing_the_send_end_mid_stream_loses_nothing(mod):
    # channel_close(send=True) with items queued defers (CLOSING): senders are refused at once,
    # receivers drain everything, and the last recv closes the channel (docs/channels.md#closing).
    sent, received = exchange(
        mod, sub_senders=2, sub_receivers=2, main_senders=1, main_receivers=1, stop="close"
    )
    assert sum(sent.values()) > 0
    check_exactly_once(sent, received)


def test_force_close_mid_stream_discards_only_the_queue(mod):
    sent, received = exchange(
        mod, sub_senders=2, sub_receivers=2, main_senders=1, main_receivers=1, stop="force-close"
    )
    assert sum(sent.values()) > 0
    check_prefixes(sent, received)


# -- memory ----------------------------------------------------------------------------------------

_RSS = """
import json, resource, {name} as m

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()

big = b"B" * 200_000
values = [b"x" * 100, "y" * 50, 12345, None, -(2**63), "\\U0001f600" * 10]

def pairs(c, n):
    send, recv = m.channel_send, m.channel_recv
    for i in range(n):
        send(c, values[i % 6])
        if i % 1000 == 0:
            send(c, big)
            recv(c)
        recv(c)

keep = m.channel_create()

def lifecycles(n):
    for i in range(n):
        c = m.channel_create()
        m.channel_send(c, b"left behind")
        m.channel_send(c, keep.send)  # (its own ID would keep it alive: a cycle, as in 3.11)
        if i % 3 == 0:
            m.channel_close(c, force=True)
        elif i % 3 == 1:
            m.channel_destroy(c)
        del c  # i % 3 == 2: the last ID dies with items queued

c = m.channel_create()
{run}
"""

_RSS_PAIRS = """
pairs(c, 50_000)  # warm-up: first-time allocations are not leaks
before = rss()
pairs(c, 1_000_000)
print(json.dumps({"growth": rss() - before, "left": m.channel_recv(c, "empty")}))
"""

_RSS_LIFECYCLES = """
lifecycles(2_000)
before = rss()
lifecycles(50_000)
print(json.dumps({"growth": rss() - before, "left": len(m.channel_list_all())}))
"""

_RSS_ACROSS = """
sub = m.create()
batch = (
    "import " + m.__name__ + " as m\\n"
    "for i in range(5000):\\n    m.channel_send(c, values[i % 4])\\n"
)
m.run_string(sub, "values = [b'x' * 100, 'y' * 50, 12345, b'z' * 70_000]")

def rounds(n):
    for _ in range(n):
        m.run_string(sub, batch, {"c": c})
        while m.channel_recv(c, None) is not None:
            pass

rounds(10)
before = rss()
rounds(60)  # 300,000 items sent by the sub, received by main
print(json.dumps({"growth": rss() - before, "left": m.channel_recv(c, "empty")}))
m.destroy(sub)
"""


def _rss_report(mod, run: str) -> dict:
    proc = run_python(_RSS.format(name=mod.__name__, run=run), timeout=100)
    assert_clean_exit(proc)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.ours_only
def test_memory_flat_over_a_million_send_recv_pairs(mod):
    report = _rss_report(mod, _RSS_PAIRS)
    assert report["left"] == "empty"
    assert report["growth"] < 8 * MIB, f"RSS grew {report['growth'] / MIB:.1f} MiB"


@pytest.mark.ours_only
def test_memory_flat_over_channel_lifecycles(mod):
    report = _rss_report(mod, _RSS_LIFECYCLES)
    assert report["left"] == 2  # only `c` and `keep`
    assert report["growth"] < 8 * MIB, f"RSS grew {report['growth'] / MIB:.1f} MiB"


@pytest.mark.ours_only
def test_memory_flat_across_interpreters(mod):
    report = _rss_report(mod, _RSS_ACROSS)
    assert report["left"] == "empty"
    assert report["growth"] < 8 * MIB, f"RSS grew {report['growth'] / MIB:.1f} MiB"


# -- random operation sequences against the model --------------------------------------------------

WHO = ["main", "a", "b"]
VALUES = [0, 1, -1, 2**63 - 1, -(2**63), b"", b"x", b"\0" * 10, "", "s", "\U0001f600", None]
UNSHAREABLE = [([1], "[1]"), (1.5, "1.5"), (True, "True")]


def _kwargs(rng, names):
    chosen = {name: True for name in names if rng.random() < 0.4}
    return chosen, ", ".join(f"{k}=True" for k in chosen)


def _names_order(result):
    if result[0] == "ok" and isinstance(result[1], list):
        return ("ok", sorted(result[1], key=WHO.index))
    return result


def random_run(mod, seed: int, steps: int):
    """Run ``steps`` random channel operations from main, a and b; compare each with the model."""
    rng = random.Random(seed)
    model = Model()
    with Interps(mod, ("a", "b")) as env:
        live: list[int] = []
        every: list[int] = []
        transcript: list[str] = []

        def check(who, expr, want):
            got = env.do(who, expr)
            transcript.append(f"{who}: {expr} -> {got}")
            assert _names_order(got) == _names_order(want), (
                "\n".join(transcript[-30:]) + f"\n  expected {want} (seed {seed})"
            )

        try:
            for _ in range(steps):
                if len(live) < 2 or (rng.random() < 0.04 and len(live) < 6):
                    got = env.do("main", "_keep(m.channel_create())")
                    assert got[0] == "ok", got
                    model.create(got[1])
                    live.append(got[1])
                    every.append(got[1])
                    continue
                who = rng.choice(WHO)
                cid = rng.choice(every) if rng.random() < 0.05 else rng.choice(live)
                op = rng.choices(
                    [
                        "send",
                        "bad-send",
                        "recv",
                        "recv-default",
                        "close",
                        "release",
                        "list",
                        "destroy",
                        "drop",
                    ],
                    weights=[32, 2, 22, 12, 4, 5, 10, 1, 1],
                )[0]
                if op == "send":
                    value = rng.choice(VALUES)
                    check(who, f"m.channel_send({cid}, {value!r})", model.send(who, cid, value))
                elif op == "bad-send":
                    value, text = rng.choice(UNSHAREABLE)
                    want = model.send(who, cid, value, unshareable=text)
                    check(who, f"m.channel_send({cid}, {value!r})", want)
                elif op == "recv":
                    check(who, f"m.channel_recv({cid})", model.recv(who, cid))
                elif op == "recv-default":
                    check(who, f"m.channel_recv({cid}, 'dflt')", model.recv(who, cid, "dflt"))
                elif op == "close":
                    kw, text = _kwargs(rng, ("send", "recv", "force"))
                    check(who, f"m.channel_close({cid}, {text})", model.close(who, cid, **kw))
                elif op == "release":
                    kw, text = _kwargs(rng, ("send", "recv", "force"))
                    check(who, f"m.channel_release({cid}, {text})", model.release(who, cid, **kw))
                elif op == "list":
                    send = rng.random() < 0.5
                    check(
                        who,
                        f"m.channel_list_interpreters({cid}, send={send})",
                        model.list_interpreters(cid, send=send),
                    )
                elif op == "destroy":
                    check(who, f"m.channel_destroy({cid})", model.destroy(cid))
                    if cid in live:
                        live.remove(cid)
                        env.do("main", f"_kept.pop({cid}, None)")
                elif op == "drop" and cid in live:
                    # main holds the only ChannelID: dropping it removes the channel
                    # (docs/channels.md#object-count)
                    check("main", f"_kept.pop({cid}) and None", ("ok", None))
                    model.destroy(cid)
                    live.remove(cid)
                    check(who, f"m.channel_recv({cid}, None)", model.recv(who, cid, None))
            # the registry agrees with the model at the end
            listed = env.do("main", "[int(c) for c in m.channel_list_all()]")[1]
            assert sorted(set(listed) & set(every)) == sorted(model.channels)
        finally:
            for cid in live:
                env.do("main", f"m.channel_destroy({cid})")
                env.do("main", f"_kept.pop({cid}, None)")
    return len(transcript)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_operations_match_the_model(mod, seed):
    done = random_run(mod, seed, 3000)
    assert done > 2000


# -- random operations from many threads and interpreters at once ----------------------------------

_CHAOS = """
import json, random, threading, time
import {name} as m

OURS = {ours}
SPAN = 64  # workers pick ids in [first, first + SPAN): live, closed, destroyed or never made
results = m.channel_create()
pool = [m.channel_create() for _ in range(8)]
first = int(pool[0])

WORKER = '''
import random, time
import {name} as m

def work(seed, first, span, steps, ours, results):
    rng = random.Random(seed)
    bad = []
    count = 0
    keep = []
    for step in range(steps):
        cid = first + rng.randrange(span)
        op = rng.randrange(14)
        kw = {{k: True for k in ("send", "recv", "force") if rng.random() < 0.3}}
        try:
            if op < 4:
                m.channel_send(cid, rng.choice([b"x" * rng.randrange(300), "s", 7, None]))
            elif op < 7:
                m.channel_recv(cid, None)
            elif op == 7:
                m.channel_recv(cid)
            elif op == 8:
                if rng.random() < 0.3:
                    m.channel_close(cid, **kw)
            elif op == 9:
                if rng.random() < 0.3:
                    m.channel_release(cid, **kw)
            elif op == 10:
                m.channel_list_interpreters(cid, send=rng.random() < 0.5)
            elif op == 11:
                keep.append(m._channel_id(cid, force=ours and rng.random() < 0.5))
                if len(keep) > 8:
                    del keep[rng.randrange(len(keep))]
            elif op == 12:
                if ours:
                    m.channel_send(cid, m._channel_id(first + rng.randrange(span), force=True))
                else:
                    m.channel_list_all()
            elif rng.random() < 0.05:
                m.channel_destroy(cid)
            count += 1
        except m.ChannelError:
            count += 1
        except Exception as exc:
            bad.append(repr(exc))
        if step % 50 == 0:
            time.sleep(0)
    keep.clear()
    m.channel_send(results, repr((count, bad)))
'''

errors = []
subs = [m.create() for _ in range(3)]
ns = {{}}
exec(WORKER, ns)

def run_sub(k, sub):
    try:
        m.run_string(sub, WORKER + "\\nwork(seed, first, span, steps, ours, results)",
                     {{"seed": 100 + k, "first": first, "span": SPAN, "steps": {steps},
                      "ours": int(OURS), "results": results}})
    except Exception as exc:
        errors.append(repr(exc))

def run_main(k):
    try:
        ns["work"](200 + k, first, SPAN, {steps}, OURS, results)
    except Exception as exc:
        errors.append(repr(exc))

def creator():
    # keeps making channels (held in `pool`), so ids in the span keep coming to life
    try:
        for _ in range(40):
            pool.append(m.channel_create())
            time.sleep(0.005)
    except Exception as exc:
        errors.append(repr(exc))

threads = [threading.Thread(target=run_sub, args=(k, s)) for k, s in enumerate(subs)]
threads += [threading.Thread(target=run_main, args=(k,)) for k in range(3)]
threads.append(threading.Thread(target=creator))
for t in threads:
    t.start()
for t in threads:
    t.join()
reports = []
while (r := m.channel_recv(results, None)) is not None:
    reports.append(eval(r))
for n in range(first, first + SPAN):
    try:
        m.channel_destroy(n)
    except m.ChannelNotFoundError:
        pass
pool.clear()
for s in subs:
    m.destroy(s)
print(json.dumps({{"errors": errors, "reports": reports}}))
"""


def test_random_concurrent_operations_never_crash(mod):
    # Three subinterpreters and three main threads hammer the same channels with random
    # operations while a seventh thread keeps creating channels: every operation must succeed
    # or raise a ChannelError; nothing may crash or hang. (Against CPython's module no forced
    # IDs and no queued ChannelIDs: docs/channels.md#object-count and #concurrency.)
    steps = 20_000
    code = _CHAOS.format(name=mod.__name__, ours=is_ours(mod), steps=steps)
    proc = run_python(code, timeout=100)
    assert_clean_exit(proc)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["errors"] == []
    assert len(report["reports"]) == 6
    for count, bad in report["reports"]:
        assert bad == []
        assert count == steps
