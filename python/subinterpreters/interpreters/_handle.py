"""What Interpreter and Queue objects share: each is a handle on something process-wide that
an integer id names, one object per id in each interpreter, pickled as a call with that id."""


class IdHandle:
    """Identity, hashing, repr and pickling by ``id``."""

    __slots__ = ()
    _id: int

    def __repr__(self):
        return f"{type(self).__name__}({self._id})"

    def __hash__(self):
        return hash(self._id)

    def __reduce__(self):
        return (type(self), (self._id,))
