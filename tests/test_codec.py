"""The native codec: ordinary data (lists, dicts, sets, tuples of plain values) crossing without
pickle, through ``lowlevel._dumps``/``_loads``, queues, ``prepare_main`` and calls, with the
identity pickle keeps; everything else, subclasses included, by pickle as before."""

from __future__ import annotations

import collections
import pickle

import pytest

ll = pytest.importorskip("subinterpreters.lowlevel")
interpreters = pytest.importorskip("subinterpreters.interpreters")

MAGIC = 0xB5


def native(obj) -> bool:
    """Whether obj goes through the codec (not pickle)."""
    return ll._dumps(obj)[0] == MAGIC


def twice(obj):
    return ll._loads(ll._dumps(obj))


class ListSub(list):
    pass


class DictSub(dict):
    pass


PLAIN = [
    [],
    {},
    set(),
    frozenset(),
    bytearray(),
    [None, True, False, 0, -1, 2**63 - 1, -(2**63), 2**64, -(2**200) + 3, 10**100],
    [1.5, float("inf"), -0.0, 1 + 2j, complex(0, -1)],
    ["", "latin \xe9", "bmp \u20ac", "astral \U0001f600", "lone \ud800"],
    [b"", b"\x00bytes", bytearray(b"mutable")],
    {"a": 1, 2: "b", (3, 4): [5], None: {}, 1.5: {"x": frozenset({1, 2})}},
    {1, "two", (3,), b"four", frozenset({5})},
    ([1], {"k": (2, [3])}, {4}),
    [[[[[[["deep"]]]]]]],
]


@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_plain_data_round_trips_natively(value):
    assert native(value)
    back = twice(value)
    assert back == value
    assert type(back) is type(value)
    assert back is not value or value == ()


def test_nested_types_are_exact():
    value = {"l": [bytearray(b"x"), (1,), {2}, frozenset({3}), 1j, b"y"]}
    back = twice(value)
    assert [type(x) for x in back["l"]] == [bytearray, tuple, set, frozenset, complex, bytes]


def test_nan_and_signed_zero_keep_their_bits():
    back = twice([float("nan"), -0.0])
    assert back[0] != back[0]
    assert str(back[1]) == "-0.0"


def test_big_ints_any_size():
    for n in (2**63, -(2**63) - 1, 2**1000 + 1, -(3**700), 1 << 64 * 40):
        assert twice([n]) == [n]


def test_a_list_shared_twice_arrives_once():
    shared = [1, 2]
    back = twice([shared, shared, {"k": shared}])
    assert back[0] is back[1] is back[2]["k"]
    back[0].append(3)
    assert back[1] == [1, 2, 3]


def test_shared_dicts_sets_bytearrays_and_tuples():
    d, s, b, t = {"x": 1}, {1}, bytearray(b"ab"), (1, [2])
    back = twice([d, s, b, t, d, s, b, t])
    for i in range(4):
        assert back[i] is back[i + 4]


def test_key_strings_arrive_as_one_object_each():
    rows = twice([{"name": i, "value": -i} for i in range(100)])
    keys = [next(iter(r)) for r in rows]
    assert all(k is keys[0] for k in keys)
    assert rows[99] == {"name": 99, "value": -99}


def test_a_string_held_twice_arrives_as_one_object():
    # As pickle keeps it: a string the value holds more than once (here a constant in every
    # row) is built once; a string held only by its container is still one of its own.
    tag = "".join(["sha", "red"])  # not a constant: this frame and the rows hold it
    rows = twice([[tag, str(i)] for i in range(50)])
    assert all(r[0] is rows[0][0] for r in rows)
    assert rows[0][0] == "shared" and rows[7][1] == "7"
    lone = twice([["".join(["a", "b"])], ["".join(["a", "b"])]])
    assert lone[0][0] == lone[1][0] and lone[0][0] is not lone[1][0]


def test_received_dicts_have_the_compact_string_key_table():
    # The table CPython gives a dict of string keys (a literal's, pickle's), not the larger
    # one for keys of any type.
    import sys

    for value in (
        {"id": 1, "name": "x", "price": 0.5, "tags": [], "ok": True, "note": None},
        {str(i): i for i in range(20)},
        {"a": 1},
    ):
        assert sys.getsizeof(twice(value)) == sys.getsizeof(pickle.loads(pickle.dumps(value)))


def test_recursive_list_and_dict():
    a = [1]
    a.append(a)
    back = twice(a)
    assert back[1] is back
    d = {}
    d["self"] = d
    back = twice(d)
    assert back["self"] is back


def test_recursion_through_a_tuple():
    a = []
    t = (a, 1)
    a.append(t)
    back = twice(a)  # reached from the list: the tuple completes before it is named again
    assert back[0][0] is back
    back_t = twice(t)  # reached from the tuple itself: pickle's case, still right
    assert back_t[0][0] is back_t


def test_subclasses_fall_back_to_pickle():
    for value in (
        ListSub([1]),
        DictSub(a=1),
        [ListSub([1])],
        {"k": DictSub()},
        collections.OrderedDict(a=1),
    ):
        assert not native(value)
        back = twice(value)
        assert back == value and type(back) is type(value)


def test_other_objects_fall_back_to_pickle():
    value = [1, collections.Counter("aab"), range(3)]
    assert not native(value)
    assert twice(value) == value


def test_unpicklable_raises_the_pickle_error():
    with pytest.raises((TypeError, pickle.PicklingError, AttributeError)):
        ll._dumps([lambda: 0])


def test_too_deep_falls_back_and_fails_clearly():
    deep = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(RecursionError):
        ll._dumps(deep)


def test_loads_takes_pickles_too():
    assert ll._loads(pickle.dumps({"a": [1]}, 5)) == {"a": [1]}


@pytest.mark.parametrize(
    "data",
    [
        bytes([MAGIC]),
        bytes([MAGIC, 99]),
        bytes([MAGIC, 15, 0xFF, 0xFF, 0xFF, 0x7F]),  # a list of 2**28 - 1 items
        bytes([MAGIC, 20, 0]),  # a reference to nothing
        bytes([MAGIC, 0, 0]),
    ],
    ids=["empty", "bad tag", "huge count", "bad reference", "trailing bytes"],
)
def test_corrupt_streams_raise_value_error(data):
    with pytest.raises(ValueError, match="corrupt native data"):
        ll._loads(data)


def test_decoding_leaves_the_collector_as_it_found_it():
    # Decoding holds the cyclic collector off (its new containers are no garbage) and switches
    # it back on only if it was on: after success and after a corrupt stream alike.
    import gc

    data = ll._dumps([{"k": [i]} for i in range(10_000)])  # 20,000 new containers
    starts = []

    def count(phase, info):
        if phase == "start":
            starts.append(info)

    assert gc.isenabled()
    gc.collect()
    gc.callbacks.append(count)
    try:
        value = ll._loads(data)
        during = len(starts)
        assert len(value) == 10_000
        assert during <= 1  # unpaused, 3.11 collects every ~700 new containers
        assert gc.isenabled()
        with pytest.raises(ValueError):
            ll._loads(data[:-3])
        assert gc.isenabled()
        gc.disable()
        ll._loads(data)
        assert not gc.isenabled()
    finally:
        gc.callbacks.remove(count)
        gc.enable()


# -- where PEP 734 values cross -------------------------------------------------------------


def echo(x):
    return x


@pytest.fixture
def interp():
    i = interpreters.create()
    yield i
    i.close()


def shared_value():
    shared = [1, {"k": b"v"}]
    return {"a": shared, "b": shared, "s": {1, 2}, "c": 1j, "big": 2**100}


def test_queue_round_trip_keeps_identity(interp):
    q = interpreters.create_queue()
    r = interpreters.create_queue()
    interp.prepare_main(q=q, r=r)
    q.put(shared_value())
    interp.exec("v = q.get(); assert v['a'] is v['b']; v['a'].append(2); r.put(v)")
    back = r.get()
    assert back["a"] is back["b"] and back["a"][-1] == 2
    assert back["s"] == {1, 2} and back["c"] == 1j and back["big"] == 2**100


def test_call_args_and_result(interp):
    value = shared_value()
    back = interp.call(echo, value)
    assert back == value and back["a"] is back["b"]
    assert interp.call(echo, [ListSub([1])]) == [[1]]  # a subclass inside: by pickle


def test_prepare_main_values_cross(interp):
    # Only shareable values (3.14's rule): lists stay refused, tuples of plain values cross.
    interp.prepare_main(t=(1.5, (2, "x"), True, 2**100, b"b"))
    assert interp.call(eval, "t") == (1.5, (2, "x"), True, 2**100, b"b")
    with pytest.raises(interpreters.NotShareableError):
        interp.prepare_main(t=([1],))


def test_pool_echo_keeps_identity():
    from subinterpreters.futures import InterpreterPoolExecutor

    with InterpreterPoolExecutor(1) as pool:
        back = pool.submit(echo, shared_value()).result()
    assert back["a"] is back["b"]


def test_damaged_stream_referring_to_a_dropped_object_is_safe():
    # A dict whose two keys are equal strings keeps the first key object; the stream then
    # refers to the second one. The decoder holds its own reference: no use after free.
    key = [10, 2, ord("a"), ord("b")]  # a memoized Latin-1 string "ab"
    data = bytes([MAGIC, 15, 2, 16, 2, *key, 3, 0, *key, 3, 2, 20, 3])
    assert ll._loads(data) == [{"ab": 1}, "ab"]
