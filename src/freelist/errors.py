"""The library's exception hierarchy.

Every exception that :mod:`freelist` raises on purpose derives from
:class:`FreelistError`, so a caller can catch them all with one clause.  The
argument errors also derive from the matching built-in (:class:`ValueError` or
:class:`TypeError`) so that code written against the built-ins keeps working.

Every check that raises one of these runs before the operation changes any
state: a call that raises leaves the allocator (or the page file) exactly as it
was.

Every error of a page file is a :class:`PageFileError`, whose constructor is the
one place a message gets the file's path (``"<path>: <message>"``, and the
``path`` attribute): the page-file modules raise nothing else.
"""

from __future__ import annotations

__all__ = [
    "BadMagicError",
    "ClosedError",
    "CorruptPageError",
    "DataTooLargeError",
    "DoubleFreeError",
    "FileDoubleFreeError",
    "FileFormatError",
    "FileIOError",
    "FileLockedError",
    "FileTooShortError",
    "FreelistError",
    "FreelistPageError",
    "InvalidArgumentError",
    "InvalidPageIdsError",
    "InvalidTypeError",
    "MetaConflictError",
    "MetaPageError",
    "MissingExtraError",
    "MissingFileError",
    "NoValidMetaError",
    "NotAllocatedError",
    "PageFileArgumentError",
    "PageFileError",
    "PageFileTypeError",
    "PageRangeError",
    "PageSizeMismatchError",
    "ReachabilityError",
    "ReadOnlyError",
    "TraceError",
    "TransactionError",
    "UnsupportedVersionError",
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


class MissingExtraError(FreelistError, ImportError):
    """A module of :mod:`freelist` needs an optional dependency that is not
    installed; the message names the extra that installs it (for example
    ``pip install 'freelist[testing]'`` for :mod:`freelist.testing`)."""


class CorruptPageError(FreelistError):
    """The bytes of a page cannot be what they claim (raised by
    :mod:`freelist.layout`, which knows no file): a header or meta cut short,
    a page that is not a freelist page, ids that run past the page's end.  The
    page file turns it into a :class:`FileFormatError` naming the file."""


class TraceError(FreelistError):
    """A trace file is malformed, or an operation in it was refused on replay.

    The message names the file and line.
    """


class PageFileError(FreelistError):
    """An error of a :class:`~freelist.PageFile`; ``path`` names the file.

    The message reads ``"<path>: <message>"``: this constructor is the one
    helper that gives every page-file error its path.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class FileFormatError(PageFileError):
    """The file is not a valid page file: too short, bad magic or version, a
    page size that does not match, no valid meta page, a bad freelist page."""


class PageSizeMismatchError(FileFormatError):
    """The file's page size differs from the one asked for."""


class MissingFileError(PageFileError):
    """The file does not exist and may not be created (``create=False`` or
    ``readonly=True``), or its directory does not exist."""


class FileTooShortError(FileFormatError):
    """The file is shorter than its two meta pages, or shorter than the pages
    both metas say are in use (it was truncated)."""


class NoValidMetaError(FileFormatError):
    """Neither meta page is valid (torn, corrupted, or of mixed faults); the
    message lists what is wrong with each."""


class BadMagicError(NoValidMetaError):
    """Neither meta page carries bbolt's magic number: not a page file."""


class UnsupportedVersionError(NoValidMetaError):
    """Both meta pages carry a format version other than 2."""


class MetaConflictError(NoValidMetaError):
    """The meta pages contradict each other: valid metas (magic, version and
    checksum good) at two different page sizes.  Opening at either could step
    back to an older commit or read the file at the wrong offsets, so the file
    is refused."""


class FreelistPageError(FileFormatError):
    """The newest meta's freelist page is out of range, is not a freelist page,
    runs past the high-water mark, or lists ids it cannot hold (outside
    ``[2, hwm)``, repeated, or its own pages)."""


class PageFileTypeError(PageFileError, InvalidTypeError):
    """An argument of a page file call has the wrong type: a page id or count
    that is not an int (``bool`` is refused), data that is not bytes-like, a
    path, timeout or walk of the wrong kind."""


class PageFileArgumentError(PageFileError, InvalidArgumentError):
    """An argument of a page file call has the right type but a bad value: a
    page size that is not a supported power of two, a negative timeout, a
    freelist that cannot serve the file, a run length out of range."""


class FileDoubleFreeError(PageFileError, DoubleFreeError):
    """A transaction freed a page that is already free or pending."""


class FileLockedError(PageFileError):
    """Another process holds the file's lock and the timeout passed."""


class ClosedError(PageFileError):
    """The file or the transaction is closed."""


class ReadOnlyError(PageFileError):
    """A write through a read transaction or a file opened read-only."""


class TransactionError(PageFileError):
    """A transaction cannot start or end now (a writer is already open,
    transactions are still open at close, the txid would pass 2**64-1)."""


class PageRangeError(PageFileError, InvalidArgumentError):
    """A page id outside the file's pages in use, or a meta page."""


class DataTooLargeError(PageFileError, InvalidArgumentError):
    """More bytes written than the pages of the run hold."""


class NotAllocatedError(PageFileError, InvalidArgumentError):
    """A page is not in the state the call needs: a write to a page this
    transaction did not allocate, a free of the freelist's own pages (the page
    file frees those itself), or a root that is not a page in use."""


class ReachabilityError(PageFileError):
    """A file without a synced freelist was opened without a reachability walk,
    the walk named pages outside the file, or ``reachable`` is not a walk."""


class FileIOError(PageFileError):
    """The operating system refused a read, write, sync or map; the cause is chained."""
