"""Exceptions and functions that raise them, for test_exceptions.py: module level, so they cross
by reference and each worker imports this module (which imports nothing heavy)."""


class AppError(Exception):
    """An exception whose ``__init__`` takes other arguments than its ``args``."""

    def __init__(self, code, detail):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class Fussy(ValueError):
    """Its ``__init__`` refuses to run a second time: a rebuild must not call it."""

    made = 0

    def __init__(self, msg):
        if type(self).made:
            raise RuntimeError("Fussy.__init__ ran again")
        type(self).made += 1
        super().__init__(msg)


def app_error(code, detail):
    raise AppError(code, detail)


def fussy():
    raise Fussy("once")


def chained():
    try:
        {}["key"]
    except KeyError as exc:
        raise AppError(4, "chained") from exc


def with_context_and_notes():
    try:
        raise ZeroDivisionError("zero")
    except ZeroDivisionError:
        err = AppError(5, "noted")
        err.add_note("first note")
        err.add_note("second note")
        raise err from None


def context_cycle():
    a = AppError(6, "a")
    b = AppError(7, "b")
    a.__context__ = b
    b.__context__ = a
    raise a


def file_not_found(path):
    open(path)


def unimportable_here(message):
    """Raise an exception whose class lives in a module that exists only in this interpreter."""
    import sys
    import types

    module = types.ModuleType("exc_funcs_ghost")

    class Ghost(Exception):
        pass

    Ghost.__module__ = module.__name__
    Ghost.__qualname__ = "Ghost"
    module.Ghost = Ghost
    sys.modules[module.__name__] = module
    raise Ghost(message)
