"""Queues between interpreters, as CPython 3.14's ``concurrent.interpreters`` has them.

The state of every queue lives in Rust (``subinterpreters.lowlevel``'s private ``_queue_*``
functions), shared by all interpreters of the process. A blocked ``put()`` or ``get()`` waits
there on a condition variable with this interpreter's GIL released: it wakes as soon as an item,
free room or the queue's destruction arrives (3.14's queues poll every 10 ms instead), honours
float timeouts on a monotonic clock, and lets Ctrl-C interrupt it in the main thread.

A ``Queue`` object is a handle: one per queue id in each interpreter. The queue lives while a
handle on it exists in any interpreter (or an item in another queue refers to it).
"""

import queue as _stdlib_queue
import weakref

from subinterpreters import lowlevel as _ll

from ._handle import IdHandle

# What a reload keeps (see below): the objects registered with lowlevel and the handle table.
_KEPT = (
    "QueueError",
    "QueueNotFoundError",
    "QueueEmpty",
    "QueueFull",
    "ItemInterpreterDestroyed",
    "UNBOUND",
    "UNBOUND_ERROR",
    "UNBOUND_REMOVE",
    "Queue",
    "_known",
)
_reloaded = {name: globals()[name] for name in _KEPT if name in globals()}

__all__ = [
    "UNBOUND",
    "UNBOUND_ERROR",
    "UNBOUND_REMOVE",
    "create",
    "list_all",
    "Queue",
    "QueueError",
    "QueueNotFoundError",
    "QueueEmpty",
    "QueueFull",
    "ItemInterpreterDestroyed",
]


class QueueError(RuntimeError):
    """A queue operation failed."""


class QueueNotFoundError(QueueError):
    """No queue has the given id (never made, or destroyed since)."""


class QueueEmpty(QueueError, _stdlib_queue.Empty):
    """``get_nowait()`` found the queue empty, or ``get()`` timed out."""


class QueueFull(QueueError, _stdlib_queue.Full):
    """``put_nowait()`` found the queue full, or ``put()`` timed out."""


class ItemInterpreterDestroyed(QueueError):
    """The item taken was put by an interpreter that has since been destroyed, with
    ``unbounditems=UNBOUND_ERROR``."""


class _UnboundItem:
    """The marker ``get()`` returns for an item whose interpreter was destroyed, when it was put
    with ``unbounditems=UNBOUND`` (the default)."""

    __slots__ = ()

    def __repr__(self):
        return "subinterpreters.interpreters.UNBOUND"

    def __reduce__(self):
        return "UNBOUND"


class _UnboundOp:
    __slots__ = ("_name",)

    def __init__(self, name):
        self._name = name

    def __repr__(self):
        return f"subinterpreters.interpreters.{self._name}"

    def __reduce__(self):
        return self._name


#: ``get()`` returns this for an item whose interpreter was destroyed (the default rule).
UNBOUND = _UnboundItem()
#: Such items make ``get()`` raise :class:`ItemInterpreterDestroyed`.
UNBOUND_ERROR = _UnboundOp("UNBOUND_ERROR")
#: Such items leave the queue when their interpreter is destroyed.
UNBOUND_REMOVE = _UnboundOp("UNBOUND_REMOVE")

# ``importlib.reload()`` runs this file again in the same namespace: the classes and markers
# registered with lowlevel (which it raises and returns) are put back, so that the module's
# names stay the very objects lowlevel uses, before anything below captures them.
globals().update(_reloaded)

# The flags the Rust side uses for the three rules (CPython 3.14 uses the same numbers).
_FLAG_OF = {UNBOUND_REMOVE: 1, UNBOUND_ERROR: 2, UNBOUND: 3}
_RULE_OF = {flag: rule for rule, flag in _FLAG_OF.items()}
_PICKLE_FALLBACK = 1


def _flag(unbounditems):
    try:
        return _FLAG_OF[unbounditems]
    except (KeyError, TypeError):
        raise NotImplementedError(f"unsupported unbounditems {unbounditems!r}") from None


def create(maxsize=0, *, unbounditems=UNBOUND):
    """Return a new queue, usable from every interpreter of the process.

    ``maxsize`` bounds it (0 or less: unbounded). ``unbounditems`` is the default rule for
    items whose interpreter is destroyed while they are queued: ``UNBOUND`` (``get()`` returns
    ``UNBOUND`` for them), ``UNBOUND_ERROR`` (``get()`` raises ``ItemInterpreterDestroyed``)
    or ``UNBOUND_REMOVE`` (they leave the queue).
    """
    if not isinstance(maxsize, int):
        raise TypeError(f"maxsize must be an int, got {maxsize!r}")
    flag = _flag(unbounditems)
    qid = _ll._queue_create(maxsize, flag, _PICKLE_FALLBACK)
    # The creation binding becomes this handle's.
    return Queue._adopt(qid)


def list_all():
    """Return a handle on every live queue (newest first)."""
    found = []
    for qid, _unbound, _fallback in _ll._queue_list_all():
        try:
            found.append(Queue(qid))
        except QueueNotFoundError:
            pass  # destroyed meanwhile
    return found


_known: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


class Queue(IdHandle, _ll._QueueBase):
    """A queue that any interpreter of this process can put to and get from.

    Items are copied at ``put()`` and rebuilt at ``get()``: None, bool, int, float, str, bytes,
    tuples of these and queues cross natively, anything else by pickle. A ``Queue`` can itself
    be put in a queue or passed to another interpreter, where it designates the same queue.
    """

    # The Rust base (``lowlevel._QueueBase``) holds the queue's binding, released when the object
    # goes, and implements ``id``, ``put``, ``put_nowait``, ``get``, ``get_nowait``, ``qsize``,
    # ``empty`` and ``full`` with 3.14's signatures, without a Python frame.
    __slots__ = ("__weakref__",)

    def __new__(cls, id, /):
        if not isinstance(id, int):
            raise TypeError(f"id must be an int, got {id!r}")
        id = int(id)
        try:
            return _known[id]
        except KeyError:
            pass
        return cls._make(id)

    @classmethod
    def _adopt(cls, qid):
        """The handle for a queue whose binding the caller holds (and gives up here)."""
        existing = _known.get(qid)
        try:
            return existing if existing is not None else cls._make(qid)
        finally:
            _ll._queue_release(qid)

    @classmethod
    def _make(cls, qid):
        # Binds the queue (QueueNotFoundError if it is gone).
        self = _ll._QueueBase.__new__(cls, qid)
        _known[qid] = self
        return self

    @property
    def maxsize(self):
        """The bound given at creation (0 or less: unbounded)."""
        return _ll._queue_info(self.id)[0]

    @property
    def unbounditems(self):
        """The default rule for items whose interpreter is destroyed."""
        return _RULE_OF[_ll._queue_info(self.id)[1]]

    async def get_async(self):
        """Await the oldest item, without blocking the event loop (see subinterpreters.aio)."""
        from subinterpreters import _async

        return await _async.wait_queue(self, self.get_nowait, QueueEmpty)

    async def put_async(self, obj, *, unbounditems=None):
        """Await room, then put ``obj``, without blocking the event loop."""
        from functools import partial

        from subinterpreters import _async

        attempt = partial(self.put_nowait, obj, unbounditems=unbounditems)
        return await _async.wait_queue(self, attempt, QueueFull)


globals().update(_reloaded)
del _reloaded


def _register():
    from subinterpreters._errors import NotShareableError

    _ll._queue_register(
        Queue,
        QueueError,
        QueueNotFoundError,
        QueueEmpty,
        QueueFull,
        ItemInterpreterDestroyed,
        NotShareableError,
        UNBOUND,
        UNBOUND_ERROR,
        UNBOUND_REMOVE,
    )


_register()
