"""Zero-copy buffers through PEP 734 queues: a ``memoryview`` crosses as a view of the same
memory, and pickle protocol 5 out-of-band buffers travel the same way (docs/values.md#buffers).
"""

from __future__ import annotations

import array
import ctypes
import gc
import sys
import textwrap
import weakref

import pytest

ours = pytest.importorskip("subinterpreters.interpreters")

PY312_PLUS = sys.version_info >= (3, 12)


@pytest.fixture
def sub():
    interp = ours.create()
    yield interp
    interp.close()


def run(interp, code):
    interp.exec(textwrap.dedent(code))


def drain():
    """Enter our module once: buffers this interpreter shared and others dropped are released."""
    ours.create_queue().qsize()


def address(view):
    return ctypes.addressof(ctypes.c_char.from_buffer(view))


def test_memoryview_is_shareable():
    assert ours.is_shareable(memoryview(b"x"))
    assert ours.is_shareable((1, memoryview(bytearray(3))))
    assert not ours.is_shareable(bytearray(3))


def test_same_interpreter_gets_a_view_of_the_same_memory():
    q = ours.create_queue()
    data = bytearray(b"hello")
    q.put(memoryview(data))
    view = q.get()
    assert type(view) is memoryview
    assert view.tobytes() == b"hello"
    assert not view.readonly
    assert address(view) == address(data)
    view[0] = ord("J")
    assert data == b"jello".replace(b"j", b"J")


def test_writes_are_seen_across_interpreters(sub):
    q = ours.create_queue()
    back = ours.create_queue()
    data = bytearray(b"abcdef")
    sub.prepare_main(q=q, back=back)
    q.put(memoryview(data))
    run(
        sub,
        """
        view = q.get()
        view[0] = ord("X")
        back.put(bytes(view))
        """,
    )
    assert back.get() == b"Xbcdef"
    assert data == b"Xbcdef"
    data[1] = ord("Y")
    run(sub, "back.put(bytes(view))")
    assert back.get() == b"XYcdef"


def test_readonly_exporter_stays_readonly(sub):
    q = ours.create_queue()
    back = ours.create_queue()
    sub.prepare_main(q=q, back=back)
    q.put(memoryview(b"frozen"))
    run(
        sub,
        """
        view = q.get()
        try:
            view[0] = 1
        except TypeError as exc:
            back.put(("TypeError", view.readonly, bytes(view)))
        """,
    )
    assert back.get() == ("TypeError", True, b"frozen")


def test_format_and_shape_survive():
    q = ours.create_queue()
    a = array.array("i", range(6))
    q.put(memoryview(a).cast("B").cast("i", (2, 3)))
    view = q.get()
    assert view.format == "i" and view.shape == (2, 3) and view.itemsize == a.itemsize
    assert view.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_exporter_stays_alive_until_every_view_is_released(sub):
    q = ours.create_queue()
    sub.prepare_main(q=q)
    exporter = array.array("B", bytes(64))
    ref = weakref.ref(exporter)
    q.put(memoryview(exporter))
    q.put(memoryview(exporter))
    del exporter
    gc.collect()
    assert ref() is not None  # queued
    run(sub, "v1 = q.get(); v2 = q.get()")
    drain()
    gc.collect()
    assert ref() is not None  # two views alive in the subinterpreter
    run(sub, "del v1")
    drain()
    gc.collect()
    assert ref() is not None  # one left
    run(sub, "del v2")
    drain()
    gc.collect()
    assert ref() is None


def test_item_dropped_in_another_interpreter_is_released_in_the_owner(sub):
    q = ours.create_queue()
    exporter = array.array("B", bytes(8))
    ref = weakref.ref(exporter)
    q.put(memoryview(exporter))
    del exporter
    sub.prepare_main(qid=q.id)
    # The subinterpreter destroys the queue: the item is dropped there, parked for us.
    run(sub, "from subinterpreters import lowlevel; lowlevel._queue_destroy(qid)")
    drain()
    gc.collect()
    assert ref() is None


@pytest.mark.skipif(not PY312_PLUS, reason="__buffer__/__release_buffer__ are 3.12+")
def test_release_happens_in_the_owner_interpreter(sub):
    q = ours.create_queue()
    sub.prepare_main(q=q)
    released_in = []

    class Exporter:
        def __init__(self):
            self.data = bytearray(b"owned")

        def __buffer__(self, flags):
            return memoryview(self.data)

        def __release_buffer__(self, view):
            released_in.append(ours.get_current().id)

    q.put(memoryview(Exporter()))
    run(sub, "view = q.get(); assert bytes(view) == b'owned'; del view")
    drain()
    gc.collect()
    assert released_in == [ours.get_current().id]


def test_views_survive_the_queue_and_hold_the_sender_view():
    q = ours.create_queue()
    data = bytearray(b"kept")
    mv = memoryview(data)
    q.put(mv)
    with pytest.raises(BufferError):
        mv.release()  # the queued item holds an export of it
    with pytest.raises(BufferError):
        data.extend(b"!")  # nor can the exporter resize
    del mv
    view = q.get()
    del data
    gc.collect()
    assert bytes(view) == b"kept"


@pytest.mark.parametrize("size", [16, 1 << 20])
def test_destroying_the_owner_leaves_views_elsewhere_valid(size):
    interp = ours.create()
    q = ours.create_queue()
    interp.prepare_main(q=q, size=size)
    run(
        interp,
        """
        data = bytearray(b"z" * size)
        q.put(memoryview(data))
        q.put(memoryview(data))
        """,
    )
    view = q.get()
    interp.close()
    # The item still queued held a buffer of the destroyed interpreter: unbound.
    assert q.get() is ours.UNBOUND
    assert bytes(view[:4]) == b"zzzz" and len(view) == size
    view[0] = ord("a")
    assert view[0] == ord("a")
    other = ours.create()
    q.put(view)  # re-shared from here: the exporter is now our view's object
    other.prepare_main(q=q)
    run(other, "v = q.get(); assert v[0] == ord('a'); v[1] = ord('b'); del v")
    other.close()
    assert bytes(view[:2]) == b"ab"
    del view
    gc.collect()


def test_views_of_a_destroyed_sender_queued_twice_are_safe():
    sub = ours.create()
    q = ours.create_queue()
    sub.prepare_main(q=q)
    run(sub, "data = bytearray(100); q.put(memoryview(data))")
    view = q.get()
    q.put(view)
    sub.close()
    assert q.get()[:3].tobytes() == bytes(3)


def test_large_buffer_crosses_without_a_copy(sub):
    size = 100 * 1024 * 1024
    big = bytearray(size)
    q = ours.create_queue()
    back = ours.create_queue()
    sub.prepare_main(q=q, back=back)
    q.put(memoryview(big))
    sub.prepare_main(size=size)
    run(sub, "view = q.get(); view[-1] = 7; view[size // 2] = 9; back.put(len(view)); del view")
    assert back.get() == size
    assert big[-1] == 7 and big[size // 2] == 9
    q.put(memoryview(big))
    view = q.get()
    assert address(view) == address(big)


def test_non_contiguous_memoryview_is_not_shareable():
    q = ours.create_queue()
    strided = memoryview(bytearray(10))[::2]
    with pytest.raises(ours.NotShareableError):
        q.put(strided)
    assert q.qsize() == 0


def test_released_memoryview_is_refused():
    q = ours.create_queue()
    mv = memoryview(b"x")
    mv.release()
    with pytest.raises(ValueError, match="released"):
        q.put(mv)
    assert q.qsize() == 0


BLOB_MODULE = '''
import pickle


class Blob:
    """Pickles its bytearray out of band (protocol 5)."""

    def __init__(self, data):
        self.data = data

    def __reduce_ex__(self, protocol):
        return type(self)._rebuild, (pickle.PickleBuffer(self.data),)

    @classmethod
    def _rebuild(cls, buf):
        return cls(buf)
'''


@pytest.fixture
def blob_module(tmp_path, monkeypatch):
    (tmp_path / "zc_blob.py").write_text(BLOB_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import zc_blob

    yield zc_blob
    sys.modules.pop("zc_blob", None)


# CPython 3.12's pickle.loads(..., buffers=...) corrupts memory in a subinterpreter: there the
# queues pickle in band, and out-of-band buffers arrive as copies (docs/values.md).
IN_BAND_ONLY = sys.version_info[:2] == (3, 12)


def test_pickle_out_of_band_buffers_round_trip(blob_module):
    q = ours.create_queue()
    data = bytearray(b"out of band")
    q.put({"blob": blob_module.Blob(data)})
    got = q.get()["blob"]
    assert type(got) is blob_module.Blob
    assert bytes(got.data) == b"out of band"
    if IN_BAND_ONLY:
        assert address(got.data) != address(data)
        return
    # Shared, not copied: the rebuilt object sees the original memory.
    assert type(got.data) is memoryview
    assert address(got.data) == address(data)


def test_pickle_out_of_band_buffers_cross_interpreters(blob_module, sub, tmp_path):
    q = ours.create_queue()
    back = ours.create_queue()
    sub.prepare_main(q=q, back=back, path=str(tmp_path))
    data = bytearray(b"abc" * 1000)
    q.put(blob_module.Blob(data))
    run(
        sub,
        """
        import sys
        sys.path.insert(0, path)
        blob = q.get()
        blob.data[0] = ord("Z")
        back.put(bytes(blob.data[:3]))
        del blob
        """,
    )
    assert back.get() == b"Zbc"
    assert data[:3] == (b"abc" if IN_BAND_ONLY else b"Zbc")


def test_pickle_refuses_non_contiguous_out_of_band_buffers(blob_module):
    q = ours.create_queue()
    data = bytearray(b"abcdef")
    with pytest.raises(ours.NotShareableError) as info:
        q.put(blob_module.Blob(memoryview(data)[::2]))
    assert "contiguous" in str(info.value.__cause__)
    assert q.qsize() == 0


def test_in_band_pickles_are_unchanged():
    q = ours.create_queue()
    data = bytearray(b"x")
    q.put([data])
    got = q.get()
    assert got == [bytearray(b"x")] and type(got[0]) is bytearray
    got[0][0] = ord("y")
    assert data == b"x"  # bytearray pickles in band: a copy
