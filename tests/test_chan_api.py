"""The channel functions, ChannelID and the channel exceptions in one interpreter: surface,
argument errors, ID conversion, shareable values, ChannelID construction and
protocols, the object count and the other channel functions. The rules: docs/module.md,
docs/values.md and docs/channels.md.

Rules that need several interpreters are table-driven in test_chan_rules.py; lifetime and
sharing across interpreters are in test_chan_interp.py.
"""

from __future__ import annotations

import copy
import gc
import importlib
import operator
import pickle
import sys
import weakref
from decimal import Decimal
from fractions import Fraction

import pytest
from chan_helpers import CHANNEL_ERRORS, CHANNEL_TESTS, channel_ids, drain, is_registered
from conftest import (
    INDEX_NOT_INT_MESSAGE,
    PY311,
    UNKNOWN,
    Huge,
    IndexNotInt,
    IndexRaises,
    IntSub,
    Neg,
    StrWithIndex,
    _message_of,
    assert_clean_exit,
    capture,
    is_ours,
    run_python,
)

pytestmark = CHANNEL_TESTS

FUNCTIONS = [
    "channel_create",
    "channel_destroy",
    "channel_list_all",
    "channel_list_interpreters",
    "channel_send",
    "channel_recv",
    "channel_close",
    "channel_release",
    "_channel_id",
]


# -- surface and exceptions (docs/module.md) -------------------------------------------------------


def test_channel_functions_exist(mod):
    for name in FUNCTIONS:
        assert callable(getattr(mod, name)), name


def test_exception_hierarchy(mod):
    assert mod.ChannelError.__bases__ == (RuntimeError,)
    for name in CHANNEL_ERRORS[1:]:
        assert getattr(mod, name).__bases__ == (mod.ChannelError,), name


@pytest.mark.parametrize("name", CHANNEL_ERRORS)
def test_exception_attributes(mod, name):
    exc = getattr(mod, name)
    assert exc.__name__ == name
    assert exc.__module__ == mod.__name__
    assert exc.__doc__ is None
    assert exc("boom").args == ("boom",)
    assert str(exc("boom")) == "boom"


def test_raised_errors_are_plain(mod):
    c = mod.channel_create()
    with pytest.raises(mod.ChannelEmptyError) as info:
        mod.channel_recv(c)
    assert type(info.value) is mod.ChannelEmptyError
    assert info.value.args == (f"channel {int(c)} is empty",)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


def test_channel_id_type(mod):
    c = mod.channel_create()
    assert type(c) is mod.ChannelID
    assert mod.ChannelID.__name__ == "ChannelID"
    assert mod.ChannelID.__module__ == mod.__name__


# -- argument counts and keywords (docs/module.md#argument-parsing) --------------------------------

# How CPython refuses `ChannelID.__new__(ChannelID)` for a type that cannot be instantiated: its
# wording changed in 3.14 (the type's own refusal is reported, not object.__new__'s).
NEW_REFUSED = (
    "cannot create '{mod}.ChannelID' instances"
    if sys.version_info >= (3, 14)
    else "object.__new__({mod}.ChannelID) is not safe, use {mod}.ChannelID.__new__()"
)

ARG_ERRORS = [
    # (call with the module and an open channel, exception, message); {mod} is the module's name.
    (
        lambda m, c: m.channel_create(1),
        TypeError,
        "{mod}.channel_create() takes no arguments (1 given)",
    ),
    (
        lambda m, c: m.channel_create(x=1),
        TypeError,
        "{mod}.channel_create() takes no keyword arguments",
    ),
    (
        lambda m, c: m.channel_list_all(1, 2),
        TypeError,
        "{mod}.channel_list_all() takes no arguments (2 given)",
    ),
    (
        lambda m, c: m.channel_list_all(x=1),
        TypeError,
        "{mod}.channel_list_all() takes no keyword arguments",
    ),
    (
        lambda m, c: m.channel_destroy(),
        TypeError,
        "channel_destroy() missing required argument 'cid' (pos 1)",
    ),
    (
        lambda m, c: m.channel_destroy(c, 1),
        TypeError,
        "channel_destroy() takes at most 1 argument (2 given)",
    ),
    (
        lambda m, c: m.channel_destroy(x=1),
        TypeError,
        "channel_destroy() missing required argument 'cid' (pos 1)",
    ),
    (
        lambda m, c: m.channel_destroy(cid=c, x=1),
        TypeError,
        "channel_destroy() takes at most 1 keyword argument (2 given)",
    ),
    (
        lambda m, c: m.channel_send(),
        TypeError,
        "channel_send() missing required argument 'cid' (pos 1)",
    ),
    (
        lambda m, c: m.channel_send(c),
        TypeError,
        "channel_send() missing required argument 'obj' (pos 2)",
    ),
    (
        lambda m, c: m.channel_send(obj=1),
        TypeError,
        "channel_send() missing required argument 'cid' (pos 1)",
    ),
    (
        lambda m, c: m.channel_send(c, foo=2),
        TypeError,
        "channel_send() missing required argument 'obj' (pos 2)",
    ),
    (
        lambda m, c: m.channel_send(1, cid=c),
        TypeError,
        "channel_send() missing required argument 'obj' (pos 2)",
    ),
    (
        lambda m, c: m.channel_send(c, 1, 2),
        TypeError,
        "channel_send() takes at most 2 arguments (3 given)",
    ),
    (
        lambda m, c: m.channel_send(c, 1, 2, 3),
        TypeError,
        "channel_send() takes at most 2 arguments (4 given)",
    ),
    (
        lambda m, c: m.channel_send(c, 1, obj=2),
        TypeError,
        "channel_send() takes at most 2 arguments (3 given)",
    ),
    (
        lambda m, c: m.channel_send(c, 1, foo=2),
        TypeError,
        "channel_send() takes at most 2 arguments (3 given)",
    ),
    (
        lambda m, c: m.channel_recv(),
        TypeError,
        "channel_recv() missing required argument 'cid' (pos 1)",
    ),
    (
        lambda m, c: m.channel_recv(default=None),
        TypeError,
        "channel_recv() missing required argument 'cid' (pos 1)",
    ),
    (
        lambda m, c: m.channel_recv(c, 1, 2),
        TypeError,
        "channel_recv() takes at most 2 arguments (3 given)",
    ),
    (
        lambda m, c: m.channel_recv(c, 1, default=2),
        TypeError,
        "channel_recv() takes at most 2 arguments (3 given)",
    ),
    (
        lambda m, c: m.channel_recv(c, foo=2),
        TypeError,
        "'foo' is an invalid keyword argument for channel_recv()",
    ),
    (
        lambda m, c: m.channel_recv(c, cid=c),
        TypeError,
        "argument for channel_recv() given by name ('cid') and position (1)",
    ),
    (
        lambda m, c: m.channel_close(),
        TypeError,
        "channel_close() missing required argument 'cid' (pos 1)",
    ),
    (
        lambda m, c: m.channel_close(c, 1),
        TypeError,
        "channel_close() takes at most 1 positional argument (2 given)",
    ),
    (
        lambda m, c: m.channel_close(c, foo=1),
        TypeError,
        "'foo' is an invalid keyword argument for channel_close()",
    ),
    (
        lambda m, c: m.channel_close(c, send=1, recv=1, force=1, x=1),
        TypeError,
        "channel_close() takes at most 4 arguments (5 given)",
    ),
    (
        lambda m, c: m.channel_release(),
        TypeError,
        "channel_release() missing required argument 'cid' (pos 1)",
    ),
    (
        lambda m, c: m.channel_release(c, 1),
        TypeError,
        "channel_release() takes at most 1 positional argument (2 given)",
    ),
    (
        lambda m, c: m.channel_release(c, 1, 2),
        TypeError,
        "channel_release() takes at most 1 positional argument (3 given)",
    ),
    (
        lambda m, c: m.channel_release(c, foo=1),
        TypeError,
        "'foo' is an invalid keyword argument for channel_release()",
    ),
    (
        lambda m, c: m.channel_release(c, send=1, recv=1, force=1, x=1),
        TypeError,
        "channel_release() takes at most 4 arguments (5 given)",
    ),
    (
        lambda m, c: m.channel_list_interpreters(c),
        TypeError,
        "channel_list_interpreters() missing required argument 'send' (pos 2)",
    ),
    (
        lambda m, c: m.channel_list_interpreters(c, x=1),
        TypeError,
        "channel_list_interpreters() missing required argument 'send' (pos 2)",
    ),
    (
        lambda m, c: m.channel_list_interpreters(send=True),
        TypeError,
        "channel_list_interpreters() missing required argument 'cid' (pos 1)",
    ),
    (
        lambda m, c: m.channel_list_interpreters(c, 1),
        TypeError,
        "channel_list_interpreters() takes exactly 1 positional argument (2 given)",
    ),
    (
        lambda m, c: m.channel_list_interpreters(c, send=1, recv=1),
        TypeError,
        "channel_list_interpreters() takes at most 2 arguments (3 given)",
    ),
    (
        lambda m, c: m._channel_id(),
        TypeError,
        "ChannelID.__new__() missing required argument 'id' (pos 1)",
    ),
    (
        lambda m, c: m._channel_id(c, 1),
        TypeError,
        "ChannelID.__new__() takes at most 1 positional argument (2 given)",
    ),
    (
        lambda m, c: m._channel_id(c, 1, 2),
        TypeError,
        "ChannelID.__new__() takes at most 1 positional argument (3 given)",
    ),
    (
        lambda m, c: m._channel_id(c, foo=1),
        TypeError,
        "'foo' is an invalid keyword argument for ChannelID.__new__()",
    ),
    (
        lambda m, c: m._channel_id(c, send=1, recv=1, force=1, _resolve=1, x=2),
        TypeError,
        "ChannelID.__new__() takes at most 5 arguments (6 given)",
    ),
    (lambda m, c: m.ChannelID(), TypeError, "cannot create '{mod}.ChannelID' instances"),
    (
        lambda m, c: m.ChannelID(0, send=True),
        TypeError,
        "cannot create '{mod}.ChannelID' instances",
    ),
    (lambda m, c: m.ChannelID.__new__(m.ChannelID), TypeError, NEW_REFUSED),
    (lambda m, c: m.ChannelID.__new__(m.ChannelID, 0), TypeError, NEW_REFUSED),
]


@pytest.mark.parametrize(
    ("call", "exc", "message"), ARG_ERRORS, ids=[f"{i:02d}" for i in range(len(ARG_ERRORS))]
)
def test_argument_errors(mod, call, exc, message):
    c = mod.channel_create()
    with pytest.raises(exc) as info:
        call(mod, c)
    assert str(info.value) == message.format(mod=mod.__name__)
    # a rejected call changes nothing
    assert mod.channel_recv(c, "empty") == "empty"
    assert mod.channel_list_interpreters(c, send=True) == []


def test_keyword_names(mod):
    c = mod.channel_create()
    mod.channel_send(cid=c, obj=b"x")
    mod.channel_send(c, obj=b"y")
    assert mod.channel_recv(cid=c) == b"x"
    assert mod.channel_recv(c, default=None) == b"y"
    assert mod.channel_recv(cid=c, default=5) == 5
    assert mod.channel_list_interpreters(cid=c, send=True) == [mod.get_main()]
    assert mod._channel_id(id=c, send=True) == c.send
    mod.channel_release(cid=c, send=True)
    mod.channel_close(cid=c, force=True)
    mod.channel_destroy(cid=c)
    assert not is_registered(mod, c)


@pytest.mark.parametrize("value", [None, 0, "", [], False])
def test_boolean_keywords_use_truthiness_false(mod, value):
    c = mod.channel_create()
    mod.channel_send(c, 1)
    assert mod.channel_list_interpreters(c, send=value) == []  # the recv end
    mod.channel_release(c, send=value, recv=value, force=value)  # neither -> both
    with pytest.raises(mod.ChannelClosedError):
        mod.channel_recv(c)


@pytest.mark.parametrize("value", [1, "x", [0], 0.5])
def test_boolean_keywords_use_truthiness_true(mod, value):
    c = mod.channel_create()
    mod.channel_send(c, 1)
    assert mod.channel_list_interpreters(c, send=value) == [0]
    mod.channel_close(c, force=value)
    with pytest.raises(mod.ChannelClosedError):
        mod.channel_recv(c)


# -- channel ID conversion (docs/interpreters.md#id-arguments) -------------------------------------


def _id_calls(m):
    """Every function that converts a channel id, as (name, one-argument callable)."""
    return [
        ("channel_send", lambda c: m.channel_send(c, b"x")),
        ("channel_send-unshareable", lambda c: m.channel_send(c, [1])),
        ("channel_recv", m.channel_recv),
        ("channel_recv-default", lambda c: m.channel_recv(c, None)),
        ("channel_close", m.channel_close),
        ("channel_close-force", lambda c: m.channel_close(c, force=True)),
        ("channel_release", m.channel_release),
        ("channel_destroy", m.channel_destroy),
        ("channel_list_interpreters", lambda c: m.channel_list_interpreters(c, send=True)),
        ("_channel_id", m._channel_id),
        ("_channel_id-force", lambda c: m._channel_id(c, force=True)),
    ]


BAD_IDS = [
    (-1, ValueError, "channel ID must be a non-negative int, got -1"),
    (IntSub(-5), ValueError, "channel ID must be a non-negative int, got -5"),
    (Neg(), ValueError, "channel ID must be a non-negative int, got Neg()"),
    (-(2**63), ValueError, f"channel ID must be a non-negative int, got {-(2**63)}"),
    (2**63, OverflowError, "int too big to convert"),
    (2**64, OverflowError, "int too big to convert"),
    (-(2**100), OverflowError, "int too big to convert"),
    (Huge(), OverflowError, "int too big to convert"),
    (1.0, TypeError, "channel ID must be an int, got float"),
    ("1", TypeError, "channel ID must be an int, got str"),
    (b"1", TypeError, "channel ID must be an int, got bytes"),
    (None, TypeError, "channel ID must be an int, got NoneType"),
    (object(), TypeError, "channel ID must be an int, got object"),
    (1j, TypeError, "channel ID must be an int, got complex"),
    ([0], TypeError, "channel ID must be an int, got list"),
    (IndexRaises(), KeyError, "'idx'"),
    (IndexNotInt(), TypeError, INDEX_NOT_INT_MESSAGE),
]


@pytest.mark.parametrize(
    ("value", "exc", "message"),
    BAD_IDS,
    ids=[f"{i}-{type(v).__name__}" for i, (v, _, _) in enumerate(BAD_IDS)],
)
def test_bad_channel_id_conversion(mod, value, exc, message):
    for name, call in _id_calls(mod):
        with pytest.raises(exc) as info:
            call(value)
        assert type(info.value) is exc, name
        assert str(info.value) == message, name


@pytest.mark.parametrize(
    ("value", "number"),
    [
        (UNKNOWN, UNKNOWN),
        (IntSub(UNKNOWN), UNKNOWN),
        (StrWithIndex("a"), UNKNOWN),
        (2**63 - 1, 2**63 - 1),
    ],
    ids=["int", "int-subclass", "str-with-index", "max-int64"],
)
def test_index_like_ids_reach_the_lookup(mod, value, number):
    for name, call in _id_calls(mod):
        if name == "_channel_id-force":
            assert int(call(value)) == number
            continue
        with pytest.raises(mod.ChannelNotFoundError) as info:
            call(value)
        assert str(info.value) == f"channel {number} not found", name


@pytest.mark.parametrize("make", [int, IntSub, operator.methodcaller("__index__")])
def test_int_likes_name_the_channel(mod, make):
    c = mod.channel_create()
    mod.channel_send(make(int(c)), b"x")
    assert mod.channel_recv(make(int(c))) == b"x"
    assert mod._channel_id(make(int(c))) == c


def test_bool_is_a_channel_id(mod):
    mod.channel_create()  # ids 0 and 1 have been handed out (now or earlier)
    mod.channel_create()
    for flag in (False, True):
        if is_registered(mod, int(flag)):
            assert mod._channel_id(flag) == int(flag)
        else:
            with pytest.raises(mod.ChannelNotFoundError, match=f"^channel {int(flag)} not found$"):
                mod.channel_recv(flag)


def test_interpreter_id_is_an_int_like_channel_id(mod):
    main = mod.get_main()  # InterpreterID(0): used through __index__
    mod.channel_create()  # id 0 has been handed out, so a forced ID(0) can never be counted later
    assert mod._channel_id(main, force=True) == 0
    assert repr(mod._channel_id(main, force=True)) == "ChannelID(0)"


# The id converter runs while the arguments are parsed, in order: a bad first argument is
# reported before a later missing argument, an unknown keyword or a surplus positional
# argument (only the total count is checked first).
PARSE_ORDER = [
    (lambda m: m.channel_send("x"), TypeError, "channel ID must be an int, got str"),
    (lambda m: m.channel_send(-1), ValueError, "channel ID must be a non-negative int, got -1"),
    (lambda m: m.channel_send("x", foo=1), TypeError, "channel ID must be an int, got str"),
    (lambda m: m.channel_recv("x", foo=1), TypeError, "channel ID must be an int, got str"),
    (
        lambda m: m.channel_close(-1, foo=1),
        ValueError,
        "channel ID must be a non-negative int, got -1",
    ),
    (lambda m: m.channel_release(2**64, foo=1), OverflowError, "int too big to convert"),
    (lambda m: m.channel_list_interpreters("x"), TypeError, "channel ID must be an int, got str"),
    (
        lambda m: m.channel_list_interpreters(-1),
        ValueError,
        "channel ID must be a non-negative int, got -1",
    ),
    (lambda m: m._channel_id("x", foo=1), TypeError, "channel ID must be an int, got str"),
    # a well-formed id is only looked up after parsing
    (
        lambda m: m.channel_send(UNKNOWN),
        TypeError,
        "channel_send() missing required argument 'obj' (pos 2)",
    ),
    (
        lambda m: m.channel_list_interpreters(UNKNOWN),
        TypeError,
        "channel_list_interpreters() missing required argument 'send' (pos 2)",
    ),
    (
        lambda m: m.channel_recv(UNKNOWN, foo=1),
        TypeError,
        "'foo' is an invalid keyword argument for channel_recv()",
    ),
    # ...and before extra positionals are found where keyword-only arguments start
    (lambda m: m.channel_close("x", 1), TypeError, "channel ID must be an int, got str"),
    (
        lambda m: m.channel_list_interpreters(-1, 1),
        ValueError,
        "channel ID must be a non-negative int, got -1",
    ),
    # the total count is checked first
    (
        lambda m: m.channel_send("x", 1, 2),
        TypeError,
        "channel_send() takes at most 2 arguments (3 given)",
    ),
    (
        lambda m: m.channel_close("x", send=1, recv=1, force=1, x=1),
        TypeError,
        "channel_close() takes at most 4 arguments (5 given)",
    ),
]


@pytest.mark.parametrize(
    ("call", "exc", "message"), PARSE_ORDER, ids=[f"{i:02d}" for i in range(len(PARSE_ORDER))]
)
def test_id_is_converted_while_parsing(mod, call, exc, message):
    with pytest.raises(exc) as info:
        call(mod)
    assert type(info.value) is exc
    assert str(info.value) == message


def test_id_conversion_comes_before_value_conversion(mod):
    with pytest.raises(ValueError, match="^channel ID must be a non-negative int, got -1$"):
        mod.channel_send(-1, [1])
    with pytest.raises(TypeError, match="^channel ID must be an int, got str$"):
        mod.channel_send("x", [1])


def test_lookup_comes_before_value_conversion(mod):
    with pytest.raises(mod.ChannelNotFoundError, match=f"^channel {UNKNOWN} not found$"):
        mod.channel_send(UNKNOWN, [1])
    with pytest.raises(mod.ChannelNotFoundError, match=f"^channel {UNKNOWN} not found$"):
        mod.channel_send(UNKNOWN, 2**64)


def test_lookup_comes_before_default(mod):
    with pytest.raises(mod.ChannelNotFoundError, match=f"^channel {UNKNOWN} not found$"):
        mod.channel_recv(UNKNOWN, None)


# -- shareable values and round trips (docs/values.md) ---------------------------------------------

ROUND_TRIP = [
    b"",
    b"spam",
    b"a\0b",
    bytes(range(256)) * 64,
    "",
    "spam",
    "\U0001f600 non-BMP",
    "lone \udc80 surrogate",
    "x" * 100_000,
    0,
    1,
    -1,
    255,
    256,
    -5,
    2**31,
    -(2**31) - 1,
    2**62,
    2**63 - 1,
    -(2**63),
    None,
]


@pytest.mark.parametrize("value", ROUND_TRIP, ids=lambda v: f"{type(v).__name__}-{repr(v)[:20]}")
def test_round_trip(mod, value):
    c = mod.channel_create()
    mod.channel_send(c, value)
    got = mod.channel_recv(c)
    assert type(got) is type(value)
    assert got == value


def test_received_objects_are_fresh(mod):
    c = mod.channel_create()
    big, text = b"x" * 1000, "y" * 1000
    mod.channel_send(c, big)
    mod.channel_send(c, text)
    assert mod.channel_recv(c) is not big
    assert mod.channel_recv(c) is not text


def test_channel_id_round_trip_keeps_id_and_end(mod):
    c = mod.channel_create()
    other = mod.channel_create()
    for sent in (other, other.send, other.recv):
        mod.channel_send(c, sent)
        got = mod.channel_recv(c)
        assert type(got) is mod.ChannelID
        assert got is not sent
        assert got == sent
        assert got.end == sent.end
    mod.channel_send(c, c)
    assert mod.channel_recv(c) == c  # a channel may carry its own ID


class BytesSub(bytes):
    pass


class StrSub(str):
    pass


class CustomStr:
    def __str__(self):
        return "custom"


class StrRaises:
    def __str__(self):
        raise ZeroDivisionError("no str")


class StrNotStr:
    def __str__(self):
        return 5


def _function():
    pass


UNSHAREABLE = [
    (True, "True"),
    (False, "False"),
    (1.5, "1.5"),
    (float("nan"), "nan"),
    (1j, "1j"),
    ((1,), "(1,)"),
    ((), "()"),
    ([1], "[1]"),
    ({}, "{}"),
    (frozenset(), "frozenset()"),
    (bytearray(b"x"), "bytearray(b'x')"),
    (Ellipsis, "Ellipsis"),
    (NotImplemented, "NotImplemented"),
    (object, "<class 'object'>"),
    (len, "<built-in function len>"),
    (ValueError("v"), "v"),
    (BytesSub(b"x"), "b'x'"),
    (StrSub("x"), "x"),
    (IntSub(5), "5"),
    (CustomStr(), "custom"),
]


@pytest.mark.parametrize(
    ("value", "text"), UNSHAREABLE, ids=[f"{type(v).__name__}" for v, _ in UNSHAREABLE]
)
def test_unshareable_values(mod, value, text):
    c = mod.channel_create()
    with pytest.raises(ValueError) as info:
        mod.channel_send(c, value)
    assert type(info.value) is ValueError
    assert str(info.value) == f"{text} does not support cross-interpreter data"
    # nothing queued, sender not associated (docs/values.md#failed-sends)
    assert mod.channel_recv(c, "empty") == "empty"
    assert mod.channel_list_interpreters(c, send=True) == []


@pytest.mark.parametrize(
    "make",
    [object, lambda: _function, lambda: memoryview(b"x"), lambda: lambda: None],
    ids=["object", "function", "memoryview", "lambda"],
)
def test_unshareable_values_with_addresses(mod, make):
    value = make()
    c = mod.channel_create()
    with pytest.raises(ValueError) as info:
        mod.channel_send(c, value)
    assert str(info.value) == f"{value} does not support cross-interpreter data"


def test_unshareable_interpreter_id(mod):
    c = mod.channel_create()
    with pytest.raises(ValueError, match="^0 does not support cross-interpreter data$"):
        mod.channel_send(c, mod.get_main())


@pytest.mark.parametrize(
    ("value", "exc", "message"),
    [
        (StrRaises(), ZeroDivisionError, "no str"),
        (StrNotStr(), TypeError, _message_of(str, StrNotStr())),
    ],
    ids=["str-raises", "str-not-str"],
)
def test_unshareable_value_whose_str_fails(mod, value, exc, message):
    c = mod.channel_create()
    with pytest.raises(exc) as info:
        mod.channel_send(c, value)
    assert str(info.value) == message
    assert mod.channel_recv(c, "empty") == "empty"


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 2**1000, -(2**64)])
def test_ints_beyond_64_bits(mod, value):
    c = mod.channel_create()
    with pytest.raises(OverflowError, match="^try sending as bytes$"):
        mod.channel_send(c, value)
    assert mod.channel_recv(c, "empty") == "empty"
    assert mod.channel_list_interpreters(c, send=True) == []


# -- channel_create / channel_list_all / channel_destroy (docs/channels.md) ------------------------


def test_create_gives_increasing_ids_with_end_both(mod):
    made = [mod.channel_create() for _ in range(5)]
    numbers = [int(c) for c in made]
    assert numbers == list(range(numbers[0], numbers[0] + 5))
    assert all(c.end == "both" and type(c) is mod.ChannelID for c in made)


def test_list_all_newest_first_with_closed_ones(mod):
    a, b, c = (mod.channel_create() for _ in range(3))
    mod.channel_close(b)
    mod.channel_release(c)
    listed = mod.channel_list_all()
    ours = [x for x in listed if int(x) in (int(a), int(b), int(c))]
    assert ours == [c, b, a]
    assert all(type(x) is mod.ChannelID and x.end == "both" for x in listed)
    assert [int(x) for x in listed] == sorted((int(x) for x in listed), reverse=True)


def test_destroyed_channels_are_not_listed_and_ids_not_reused(mod):
    a = mod.channel_create()
    mod.channel_destroy(a)
    assert not is_registered(mod, a)
    b = mod.channel_create()
    assert int(b) > int(a)
    with pytest.raises(mod.ChannelNotFoundError, match=f"^channel {int(a)} not found$"):
        mod.channel_destroy(a)


def test_destroy_discards_queue(mod):
    c = mod.channel_create()
    for i in range(100):
        mod.channel_send(c, i)
    mod.channel_destroy(c)
    with pytest.raises(mod.ChannelNotFoundError):
        mod.channel_recv(c)


def _cpython_channels():
    """CPython's own channel module on this version, as (create, list ids, destroy)."""
    if PY311:
        m = importlib.import_module("_xxsubinterpreters")
        return m.channel_create, lambda: [int(c) for c in m.channel_list_all()], m.channel_destroy
    if sys.version_info < (3, 13):
        m = importlib.import_module("_xxinterpchannels")
        return m.create, lambda: [int(c) for c in m.list_all()], m.destroy
    m = importlib.import_module("_interpchannels")
    # 3.13 lists (id, unbound) pairs, 3.14+ (id, unbound, fallback) triples.
    return lambda: m.create(1), lambda: [int(entry[0]) for entry in m.list_all()], m.destroy


@pytest.mark.ours_only
def test_registry_is_separate_from_cpythons(mod):
    # Both registries count from 0 in one process; neither sees the other's channels.
    create, listed, destroy = _cpython_channels()
    theirs_before = listed()
    ours = [mod.channel_create() for _ in range(3)]
    assert listed() == theirs_before
    ours_before = channel_ids(mod)
    theirs = create()
    try:
        assert channel_ids(mod) == ours_before
        assert int(theirs) in listed()
    finally:
        destroy(theirs)
    mod.channel_destroy(ours[0])
    assert listed() == theirs_before


# -- send / recv basics (docs/channels.md#other-channel-functions) ---------------------------------


def test_fifo(mod):
    c = mod.channel_create()
    items = [b"a", "b", 3, None, -4, b""]
    for item in items:
        mod.channel_send(c, item)
    assert [mod.channel_recv(c) for _ in items] == items
    with pytest.raises(mod.ChannelEmptyError, match=f"^channel {int(c)} is empty$"):
        mod.channel_recv(c)


def test_recv_default_is_returned_as_is(mod):
    c = mod.channel_create()
    marker = object()
    assert mod.channel_recv(c, marker) is marker
    assert mod.channel_recv(c, default=marker) is marker
    assert mod.channel_recv(c, None) is None
    mod.channel_send(c, b"x")
    assert mod.channel_recv(c, marker) == b"x"


def test_channels_are_independent(mod):
    a, b = mod.channel_create(), mod.channel_create()
    mod.channel_send(a, 1)
    mod.channel_send(b, 2)
    mod.channel_close(a, force=True)
    assert mod.channel_recv(b) == 2
    with pytest.raises(mod.ChannelClosedError):
        mod.channel_recv(a)


def test_many_items(mod):
    c = mod.channel_create()
    for i in range(10_000):
        mod.channel_send(c, i)
    assert drain(mod, c) == list(range(10_000))


# -- _channel_id (docs/channels.md#channelid-construction) -----------------------------------------

END_TABLE = [
    ({}, "both"),
    ({"send": True}, "send"),
    ({"recv": True}, "recv"),
    ({"send": True, "recv": True}, "both"),
    ({"send": True, "recv": False}, "send"),
    ({"send": False, "recv": True}, "recv"),
    ({"send": 0}, "both"),
    ({"recv": ""}, "both"),
    ({"send": None}, "both"),
    ({"recv": None}, "both"),
    ({"send": "x", "recv": []}, "send"),
    ({"send": None, "recv": [1]}, "recv"),
    ({"force": True}, "both"),
    ({"_resolve": True}, "both"),
]


@pytest.mark.parametrize(("kwargs", "end"), END_TABLE, ids=[str(k) for k, _ in END_TABLE])
def test_channel_id_end_table(mod, kwargs, end):
    c = mod.channel_create()
    made = mod._channel_id(c, **kwargs)
    assert made.end == end
    assert int(made) == int(c)


@pytest.mark.parametrize(
    "kwargs",
    [{"send": False, "recv": False}, {"send": None, "recv": None}, {"send": 0, "recv": ""}],
)
def test_channel_id_both_false(mod, kwargs):
    c = mod.channel_create()
    with pytest.raises(ValueError, match="^'send' and 'recv' cannot both be False$"):
        mod._channel_id(c, **kwargs)


def test_channel_id_unknown_and_forced(mod):
    with pytest.raises(mod.ChannelNotFoundError, match=f"^channel {UNKNOWN} not found$"):
        mod._channel_id(UNKNOWN)
    forced = mod._channel_id(UNKNOWN, force=True, send=True)
    assert repr(forced) == f"ChannelID({UNKNOWN}, send=True)"
    with pytest.raises(mod.ChannelNotFoundError, match=f"^channel {UNKNOWN} not found$"):
        mod.channel_recv(forced)


def test_channel_id_of_a_destroyed_channel_needs_force(mod):
    c = mod.channel_create()
    n = int(c)
    mod.channel_destroy(c)
    with pytest.raises(mod.ChannelNotFoundError):
        mod._channel_id(n)
    assert mod._channel_id(n, force=True) == c
    assert c.send.end == "send"  # .send/.recv are built forced: they never raise


def test_resolve_is_invisible(mod):
    c = mod.channel_create()
    r = mod._channel_id(c, send=True, _resolve=True)
    assert r == c.send
    assert repr(r) == repr(c.send)
    assert hash(r) == hash(c)
    assert r.send == c.send
    assert r.recv.end == "recv"


# -- ChannelID protocols (docs/channels.md#channelid-protocols) ------------------------------------


def test_repr_str_int_index_float(mod):
    c = mod.channel_create()
    n = int(c)
    assert repr(c) == f"ChannelID({n})"
    assert repr(c.send) == f"ChannelID({n}, send=True)"
    assert repr(c.recv) == f"ChannelID({n}, recv=True)"
    for x in (c, c.send, c.recv):
        assert str(x) == str(n)
        assert int(x) == n and type(int(x)) is int
        assert operator.index(x) == n
        assert float(x) == float(n)
        assert list(range(n + 1))[x] == n
        assert hex(x) == hex(n)


def test_end_attribute_is_read_only(mod):
    c = mod.channel_create()
    assert c.end == "both"
    with pytest.raises(AttributeError) as info:
        c.end = "send"
    assert (
        str(info.value) == f"attribute 'end' of '{mod.__name__}.ChannelID' objects is not writable"
    )
    with pytest.raises(AttributeError):
        del c.end
    assert c.end == "both"


def test_send_and_recv_properties_make_new_ids(mod):
    c = mod.channel_create()
    assert c.send is not c.send
    assert c.send.end == "send" and c.recv.end == "recv"
    assert c.send.recv.end == "recv"
    assert int(c.send) == int(c.recv) == int(c)


def test_equality_between_channel_ids(mod):
    c = mod.channel_create()
    d = mod.channel_create()
    assert c == mod._channel_id(c)
    assert c != c.send
    assert c.send != c.recv
    assert c.send == c.send
    assert c.send == c.recv.send
    assert c.send == mod._channel_id(c, send=True)
    assert c != d
    assert not (c == d.send)


def test_equality_with_numbers_ignores_end(mod):
    mod.channel_create()  # id 0 is taken, so a forced ID(0) below is never counted later
    c = mod.channel_create()
    n = int(c)
    for x in (c, c.send, c.recv):
        assert x == n
        assert x == float(n)
        assert x == Fraction(n)
        assert x == Decimal(n)
        assert x != n + 1
    zero = mod._channel_id(0, force=True)
    assert zero == False  # noqa: E712
    assert zero == 0.0
    assert zero == mod.get_main()
    assert mod.get_main() == zero.send
    assert (c == True) is (n == 1)  # noqa: E712


@pytest.mark.parametrize("other", [-1, 2**70, -(2**70), "0", None, b"0", [0]])
def test_equality_with_non_matching_values(mod, other):
    mod.channel_create()  # id 0 is taken, so a forced ID(0) is never counted later
    c = mod._channel_id(0, force=True) if other == "0" else mod.channel_create()
    assert (c == other) is False
    assert (c != other) is True


def test_hash_is_the_hash_of_the_id(mod):
    c = mod.channel_create()
    n = int(c)
    for x in (c, c.send, c.recv):
        assert hash(x) == hash(n)
    assert {c: 1}[n] == 1
    assert {n: 2}[c.send] == 2
    assert {c.send: 3}.get(c) is None  # equal hash, unequal ends
    assert len({c, c.send, c.recv, mod._channel_id(c)}) == 3


def test_bool_is_always_true(mod):
    mod.channel_create()
    assert bool(mod._channel_id(0, force=True)) is True
    assert bool(mod.channel_create()) is True


def test_no_ordering_or_arithmetic(mod):
    c = mod.channel_create()
    name = f"{mod.__name__}.ChannelID"
    with pytest.raises(TypeError) as info:
        c < 1  # noqa: B015
    assert str(info.value) == f"'<' not supported between instances of '{name}' and 'int'"
    with pytest.raises(TypeError) as info:
        c > c  # noqa: B015
    assert str(info.value) == f"'>' not supported between instances of '{name}' and '{name}'"
    with pytest.raises(TypeError) as info:
        c + 1
    assert str(info.value) == f"unsupported operand type(s) for +: '{name}' and 'int'"
    with pytest.raises(TypeError) as info:
        -c  # noqa: B018
    assert str(info.value) == f"bad operand type for unary -: '{name}'"


def test_no_attributes_or_weakrefs(mod):
    c = mod.channel_create()
    name = f"{mod.__name__}.ChannelID"
    assert sorted(n for n in dir(c) if not n.startswith("_")) == ["end", "recv", "send"]
    with pytest.raises(AttributeError):
        c.__dict__  # noqa: B018
    with pytest.raises(AttributeError):
        c.x = 1
    with pytest.raises(TypeError) as info:
        weakref.ref(c)
    assert str(info.value) == f"cannot create weak reference to '{name}' object"


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_not_picklable(mod, protocol):
    c = mod.channel_create()
    # copyreg's protocol 0/1 path names the class alone; the C path names the qualified type.
    name = "ChannelID" if protocol < 2 else f"{mod.__name__}.ChannelID"
    with pytest.raises(TypeError) as info:
        pickle.dumps(c, protocol)
    assert str(info.value) == f"cannot pickle '{name}' object"


@pytest.mark.parametrize("op", [copy.copy, copy.deepcopy], ids=["copy", "deepcopy"])
def test_not_copyable(mod, op):
    c = mod.channel_create()
    with pytest.raises(TypeError) as info:
        op(c)
    assert str(info.value) == f"cannot pickle '{mod.__name__}.ChannelID' object"


@pytest.mark.ours_only
def test_cannot_subclass(mod):
    # README difference 4 (3.11 allows it, then crashes deallocating an instance).
    with pytest.raises(TypeError) as info:
        type("Sub", (mod.ChannelID,), {})
    assert str(info.value) == f"type '{mod.__name__}.ChannelID' is not an acceptable base type"


# -- the object count in one interpreter (docs/channels.md#object-count) ---------------------------


def test_dropping_the_last_id_removes_the_channel(mod):
    c = mod.channel_create()
    n = int(c)
    mod.channel_send(c, b"x")
    del c
    assert not is_registered(mod, n)
    with pytest.raises(mod.ChannelNotFoundError, match=f"^channel {n} not found$"):
        mod.channel_recv(n)


def test_dropping_the_last_id_of_a_closed_channel_removes_it(mod):
    c = mod.channel_create()
    n = int(c)
    mod.channel_close(c)
    assert is_registered(mod, n)
    del c
    assert not is_registered(mod, n)


@pytest.mark.parametrize(
    "keep",
    [
        lambda m, c: c.send,
        lambda m, c: c.recv,
        lambda m, c: m._channel_id(c),
        lambda m, c: m._channel_id(int(c), recv=True),
        lambda m, c: m._channel_id(c, force=True),
        lambda m, c: m.channel_list_all(),
    ],
    ids=["send", "recv", "_channel_id", "_channel_id-recv", "_channel_id-force", "list_all"],
)
def test_any_id_object_keeps_the_channel(mod, keep):
    c = mod.channel_create()
    n = int(c)
    kept = keep(mod, c)
    del c
    assert is_registered(mod, n)
    mod.channel_send(n, b"still here")
    assert mod.channel_recv(n) == b"still here"
    del kept
    assert not is_registered(mod, n)


def test_transient_ids_from_list_all_do_not_keep_it(mod):
    c = mod.channel_create()
    n = int(c)
    mod.channel_list_all()
    channel_ids(mod)
    del c
    gc.collect()
    assert not is_registered(mod, n)


def test_id_in_another_channels_queue_keeps_it(mod):
    holder = mod.channel_create()
    c = mod.channel_create()
    n = int(c)
    mod.channel_send(c, b"payload")
    mod.channel_send(holder, c.recv)
    del c
    assert is_registered(mod, n)
    got = mod.channel_recv(holder)
    assert got == mod._channel_id(n, recv=True)
    assert mod.channel_recv(got) == b"payload"
    del got
    assert not is_registered(mod, n)


def test_destroying_the_holder_frees_a_queued_last_id(mod):
    holder = mod.channel_create()
    c = mod.channel_create()
    n = int(c)
    mod.channel_send(holder, c)
    del c
    mod.channel_destroy(holder)
    assert not is_registered(mod, n)


@pytest.mark.ours_only
@pytest.mark.parametrize("how", ["force-close", "drop-holder", "drop-closed-holder"])
def test_freeing_a_queued_last_id_does_not_deadlock(mod, how):
    # README difference 6: CPython 3.11-3.13 hang here (docs/channels.md#concurrency). Run in a
    # child, so a hang shows as a stack dump instead of stopping the suite.
    proc = run_python(
        f"""
        import {mod.__name__} as m
        holder = m.channel_create()
        other = m.channel_create()
        n = int(other)
        m.channel_send(holder, other)
        m.channel_send(holder, other.send)
        m.channel_send(holder, b"x")
        del other
        if {how!r} == "force-close":
            m.channel_close(holder, force=True)
        elif {how!r} == "drop-holder":
            del holder
        else:
            m.channel_close(holder, send=True)
            m.channel_release(holder)
            del holder
        print(n in [int(c) for c in m.channel_list_all()])
        """,
        timeout=30,
    )
    assert_clean_exit(proc, expect_stdout="False")


@pytest.mark.ours_only
def test_forced_id_of_a_future_channel_is_inert(mod):
    # README difference 5: in 3.11 dropping `forced` would destroy the later channel.
    first = mod.channel_create()
    forced = mod._channel_id(int(first) + 1, force=True)
    later = mod.channel_create()
    assert int(later) == int(first) + 1
    assert forced == later
    del forced
    assert is_registered(mod, later)
    mod.channel_send(later, b"x")
    assert mod.channel_recv(later) == b"x"
    n = int(later)
    del later
    assert not is_registered(mod, n)


@pytest.mark.ours_only
def test_forced_id_of_a_destroyed_channel_is_inert(mod):
    c = mod.channel_create()
    n = int(c)
    send_end = c.send
    mod.channel_destroy(c)
    forced = mod._channel_id(n, force=True)
    d = mod.channel_create()
    del forced, send_end, c
    assert is_registered(mod, d)


@pytest.mark.ours_only
@pytest.mark.parametrize("kind", ["unknown", "destroyed"])
def test_sending_a_forced_id_of_a_missing_channel(mod, kind):
    # README difference 10. `.send`/`.recv` are built forced (docs/channels.md#channelid-protocols).
    c = mod.channel_create()
    if kind == "unknown":
        missing, n = mod._channel_id(UNKNOWN, force=True), UNKNOWN
    else:
        gone = mod.channel_create()
        n = int(gone)
        mod.channel_destroy(gone)
        missing = gone.send
    with pytest.raises(mod.ChannelNotFoundError) as info:
        mod.channel_send(c, missing)
    assert str(info.value) == f"channel {n} not found"
    assert mod.channel_recv(c, "empty") == "empty"
    assert mod.channel_list_interpreters(c, send=True) == []


def test_sending_the_id_of_a_destroyed_channel(mod):
    c = mod.channel_create()
    gone = mod.channel_create()
    n = int(gone)
    mod.channel_destroy(gone)
    if is_ours(mod):
        # README, deliberate difference 10: only IDs of live channels travel; the send fails.
        with pytest.raises(mod.ChannelNotFoundError) as info:
            mod.channel_send(c, gone)
    else:
        # 3.11 sends the id; the receiver cannot rebuild the object (the item is consumed by
        # the failed recv).
        mod.channel_send(c, gone)
        with pytest.raises(mod.ChannelNotFoundError) as info:
            mod.channel_recv(c)
    assert str(info.value) == f"channel {n} not found"
    assert mod.channel_recv(c, "empty") == "empty"


def test_sharing_the_id_of_a_destroyed_channel(mod):
    sub = mod.create()
    gone = mod.channel_create()
    n = int(gone)
    mod.channel_destroy(gone)
    if is_ours(mod):
        # README, deliberate difference 10: rejected before anything reaches the interpreter.
        with pytest.raises(mod.ChannelNotFoundError, match=f"^channel {n} not found$"):
            mod.run_string(sub, "x = 1", {"c": gone})
    else:
        with pytest.raises(mod.RunFailedError) as info:
            mod.run_string(sub, "x = 1", {"c": gone})
        assert (
            str(info.value)
            == f"<class '{mod.__name__}.ChannelNotFoundError'>: channel {n} not found"
        )
    assert capture(mod, sub, "emit('x' in globals())") == "False"


@pytest.mark.ours_only
def test_sharing_a_forced_id_of_a_missing_channel(mod):
    sub = mod.create()
    with pytest.raises(mod.ChannelNotFoundError, match=f"^channel {UNKNOWN} not found$"):
        mod.run_string(sub, "x = 1", {"c": mod._channel_id(UNKNOWN, force=True)})
    assert capture(mod, sub, "emit('x' in globals(), 'c' in globals())") == "FalseFalse"


# -- a crash canary for the whole API, in a child process ------------------------------------------


def test_bad_input_fuzz_never_crashes(mod):
    # Every channel function with every kind of bad argument, in a fresh process: each call
    # must return or raise an ordinary exception.
    proc = run_python(
        f"""
        import itertools, {mod.__name__} as m
        c = m.channel_create()
        m.channel_send(c, b"x")
        closed = m.channel_create(); m.channel_close(closed)
        gone = m.channel_create(); m.channel_destroy(gone)
        class Idx:
            def __index__(self): return int(c)
        values = [c, c.send, closed, gone, int(c), -1, 2**63, 2**64, -(2**63), None, 1.5, "1",
                  b"1", [1], object(), Idx(), True, m.get_main(), float("nan"), 2**63 - 1]
        funcs = [m.channel_send, m.channel_recv, m.channel_close, m.channel_release,
                 m.channel_destroy, m.channel_list_interpreters, m._channel_id]
        kw = [{{}}, {{"send": True}}, {{"recv": None}}, {{"force": 1}}, {{"default": 2}},
              {{"_resolve": True}}, {{"bogus": 1}}]
        n = 0
        for f in funcs:
            for args in itertools.chain(
                ((),), ((v,) for v in values), itertools.product(values[:8], values)
            ):
                for k in kw:
                    try:
                        f(*args, **k)
                    except (TypeError, ValueError, OverflowError, RuntimeError):
                        pass
                    n += 1
        print("calls", n > 1000)
        """,
        timeout=60,
    )
    assert_clean_exit(proc, expect_stdout="calls True")


def test_interpreter_counts(mod):
    # The channel functions never create or keep interpreters.
    before = [int(i) for i in mod.list_all()]
    c = mod.channel_create()
    mod.channel_send(c, 1)
    mod.channel_recv(c)
    mod.channel_list_interpreters(c, send=True)
    assert [int(i) for i in mod.list_all()] == before
