"""The library's exception hierarchy.

Every exception that :mod:`freelist` raises on purpose derives from
:class:`FreelistError`, so a caller can catch them all with one clause.  The
argument errors also derive from the matching built-in (:class:`ValueError` or
:class:`TypeError`) so that code written against the built-ins keeps working.

Every check that raises one of these runs before the operation changes any
state: a call that raises leaves the allocator (or the page file) exactly as it
was.
"""

from __future__ import annotations

__all__ = [
    "DoubleFreeError",
    "FreelistError",
    "InvalidArgumentError",
    "InvalidPageIdsError",
    "InvalidTypeError",
    "MetaPageError",
    "TraceError",
]


class FreelistError(Exception):
    """Base class of every error raised by :mod:`freelist`."""


class InvalidArgumentError(FreelistError, ValueError):
    """An argument has the right type but a value outside its domain.

    Examples: a run length ``n < 1``, a negative transaction id, a page id at or
    beyond ``2**64``.
    """


class InvalidTypeError(InvalidArgumentError, TypeError):
    """An argument that must be an integer is not one (``bool`` is refused too)."""


class InvalidPageIdsError(InvalidArgumentError):
    """A list of page ids handed to a freelist is unsorted, repeats an id, or
    holds a meta page id (0 or 1)."""


class MetaPageError(InvalidArgumentError):
    """An operation named page 0 or 1, the two meta pages, which are never free."""


class DoubleFreeError(FreelistError):
    """A page being freed is already free or pending release."""


class TraceError(FreelistError):
    """A trace file is malformed, or an operation in it was refused on replay.

    The message names the file and line.
    """
