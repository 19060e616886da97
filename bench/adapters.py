"""One neutral interpreter/channel API over our module and CPython's own, per Python version.

The neutral API is: create(), destroy(id), run(id, code, shared=None), chan_create(),
send(cid, obj), recv(cid[, default]), chan_destroy(cid). send never blocks; recv returns the object
(or the default) and never blocks.

The methods are for setup and for slow operations. Hot loops must not pay for a Python wrapper on
one side only, so each adapter also gives source templates (``SEND``, ``RECV``, ``RUN``...) that the
benchmarks paste into generated code, with the module's own functions bound in ``adapter.ns`` (and,
inside a subinterpreter, by ``SUB_IMPORT``). Placeholders: {c} channel, {obj} object, {d} default,
{i} interpreter, {code} script, {shared} dict.

What each neutral operation calls (3.12 channels live in _xxinterpchannels, 3.13's to 3.15's in
_interpchannels, without the channel_ prefix):

- create: create() everywhere (3.13+: returns an int, never destroys itself).
- run: run_string(id, code, shared); 3.13+ returns None or an excinfo instead of raising.
- chan_create: channel_create(); 3.12 create(); 3.13 create(3) (unboundop UNBOUND, required);
  3.14+ create(3, -1) (unboundop, fallback = default: 3.14 added the fallback argument; its
  list_all() returns (cid, unboundop, fallback) triples instead of ids; the benchmarks do not
  call it).
- send: channel_send(c, o); 3.12 send(c, o); 3.13+ send(c, o, blocking=False), since by default
  it waits until the item is received.
- recv: channel_recv(c[, d]); 3.12 recv(c[, d]); 3.13+ recv(c[, d])[0] (it returns (obj, op)).

The PEP 734 benchmarks use a second, smaller pair (``pep734_both()``): the module objects of
``subinterpreters.interpreters`` (ours) and of ``concurrent.interpreters`` (3.14+, the standard
library) or PyPI's ``backports.interpreters`` (3.11 to 3.13: pure Python over the private modules),
which share one API, so the benchmarks call them through the same source.

Every implementation creates its interpreters with its defaults: "isolated", which means an own
GIL on 3.12+ and a shared GIL on 3.11.
"""

from __future__ import annotations

import importlib
import sys

_MISSING = object()


class Adapter:
    """The neutral API over one implementation; see the module docstring."""

    key = ""  # "ours" or "theirs"
    label = ""  # the module(s), for reports
    # Source templates (see the module docstring).
    SEND = "send({c}, {obj})"
    RECV = "recv({c})"
    RECV_DEFAULT = "recv({c}, {d})"
    RUN = "run({i}, {code})"
    RUN_SHARED = "run({i}, {code}, {shared})"
    # Binds `send` and `recv` inside a subinterpreter.
    SUB_IMPORT = ""

    def __init__(self, interp_mod: str, chan_mod: str, names: dict[str, str]) -> None:
        self.imod = importlib.import_module(interp_mod)
        self.cmod = importlib.import_module(chan_mod)
        # neutral name -> the module's own callable
        self.ns: dict[str, object] = {}
        for neutral, spec in names.items():
            which, attr = spec.split(".")
            self.ns[neutral] = getattr(self.imod if which == "i" else self.cmod, attr)

    # -- the neutral API ------------------------------------------------------------------------
    def create(self):
        return self.ns["create"]()

    def destroy(self, interp) -> None:
        self.ns["destroy"](interp)

    def run(self, interp, code: str, shared: dict | None = None) -> None:
        """Run `code` in `interp`; a failure raises RuntimeError (RunFailedError is one)."""
        self.ns["run"](interp, code, shared)

    def chan_create(self):
        return self.ns["chan_create"]()

    def send(self, cid, obj) -> None:
        self.ns["send"](cid, obj)

    def recv(self, cid, default=_MISSING):
        if default is _MISSING:
            return self.ns["recv"](cid)
        return self.ns["recv"](cid, default)

    def chan_destroy(self, cid) -> None:
        self.ns["chan_destroy"](cid)


class Ours(Adapter):
    key = "ours"
    label = "subinterpreters.lowlevel"
    SUB_IMPORT = "from subinterpreters.lowlevel import channel_send as send, channel_recv as recv"

    def __init__(self) -> None:
        super().__init__("subinterpreters.lowlevel", "subinterpreters.lowlevel", _NAMES_311)


_NAMES_311 = {
    "create": "i.create",
    "destroy": "i.destroy",
    "run": "i.run_string",
    "chan_create": "c.channel_create",
    "send": "c.channel_send",
    "recv": "c.channel_recv",
    "chan_destroy": "c.channel_destroy",
}
_NAMES_312 = dict(
    _NAMES_311, chan_create="c.create", send="c.send", recv="c.recv", chan_destroy="c.destroy"
)


class Theirs311(Adapter):
    key = "theirs"
    label = "_xxsubinterpreters"
    SUB_IMPORT = "from _xxsubinterpreters import channel_send as send, channel_recv as recv"

    def __init__(self) -> None:
        super().__init__("_xxsubinterpreters", "_xxsubinterpreters", _NAMES_311)


class Theirs312(Adapter):
    key = "theirs"
    label = "_xxsubinterpreters + _xxinterpchannels"
    SUB_IMPORT = "from _xxinterpchannels import send, recv"

    def __init__(self) -> None:
        super().__init__("_xxsubinterpreters", "_xxinterpchannels", _NAMES_312)


class Theirs313(Adapter):
    """3.13: int ids (no auto-destroy), excinfo results, blocking-by-default send, tuple recv."""

    key = "theirs"
    label = "_interpreters + _interpchannels"
    # send() waits until the item is received unless told not to; recv() returns (obj, unboundop).
    SEND = "send({c}, {obj}, blocking=False)"
    RECV = "recv({c})[0]"
    RECV_DEFAULT = "recv({c}, {d})[0]"
    SUB_IMPORT = "from _interpchannels import send, recv"
    # 3 = UNBOUND, the default of 3.13's high-level interpreters.channels.create().
    UNBOUNDOP = 3

    def __init__(self) -> None:
        super().__init__("_interpreters", "_interpchannels", _NAMES_312)
        self.ns["chan_create"] = self._chan_create

    def _chan_create(self):
        return self.cmod.create(self.UNBOUNDOP)

    def run(self, interp, code: str, shared: dict | None = None) -> None:
        excinfo = self.ns["run"](interp, code, shared)
        if excinfo is not None:
            raise RuntimeError(f"{excinfo.type.__name__}: {excinfo.msg}")

    def send(self, cid, obj) -> None:
        self.ns["send"](cid, obj, blocking=False)

    def recv(self, cid, default=_MISSING):
        if default is _MISSING:
            return self.ns["recv"](cid)[0]
        return self.ns["recv"](cid, default)[0]


class Theirs314(Theirs313):
    """3.14 and 3.15: as 3.13, but create(unboundop, fallback); -1 = the default fallback, as
    test.support.channels.create() passes it."""

    def _chan_create(self):
        return self.cmod.create(self.UNBOUNDOP, -1)


def theirs() -> Adapter:
    """CPython's own module(s) for the running version."""
    v = sys.version_info[:2]
    if v == (3, 11):
        return Theirs311()
    if v == (3, 12):
        return Theirs312()
    if v == (3, 13):
        return Theirs313()
    if v in ((3, 14), (3, 15)):
        return Theirs314()
    raise RuntimeError(f"no adapter for CPython {v[0]}.{v[1]}")


def both() -> dict[str, Adapter]:
    """{"ours": ..., "theirs": ...}, in the order the benchmarks start with."""
    return {"ours": Ours(), "theirs": theirs()}


class Pep734:
    """One PEP 734 module (``interpreters``-like): ``mod`` is the module object itself."""

    def __init__(self, key: str, label: str, mod) -> None:
        self.key, self.label, self.mod = key, label, mod
        # Which kind of "theirs" this is: the targets differ (see bench.py's PEP734_TARGETS).
        self.kind = "ours" if key == "ours" else label.split(".")[0]


def pep734_theirs() -> tuple[Pep734 | None, str]:
    """(the module to compare with, "") or (None, why there is none)."""
    if sys.version_info >= (3, 14):
        from concurrent import interpreters

        return Pep734("theirs", "concurrent.interpreters", interpreters), ""
    try:
        from backports import interpreters
    except ImportError as exc:
        return None, f"backports.interpreters is not importable ({exc}); pip install it from PyPI"
    return Pep734("theirs", "backports.interpreters", interpreters), ""


def pep734_both() -> tuple[dict[str, Pep734], str]:
    """({"ours": ..., "theirs": ...}, "") or ({"ours": ...}, why theirs is missing)."""
    from subinterpreters import interpreters

    impl = {"ours": Pep734("ours", "subinterpreters.interpreters", interpreters)}
    th, why = pep734_theirs()
    if th is not None:
        impl["theirs"] = th
    return impl, why
