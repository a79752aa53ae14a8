"""freelist: bbolt's page allocator in Python.

Two interchangeable freelists behind one protocol:

* :class:`ArrayFreelist`: bbolt's legacy sorted array, first-fit scan;
* :class:`HashmapFreelist`: free runs in hash maps, O(1) allocation and merge;

:class:`BaseFreelist`, the base class of your own allocator (bbolt's
transaction bookkeeping, written once: a subclass writes five methods),
and :class:`PageFile`, an mmap-backed page file in bbolt's on-disk layout that
allocates through either of them.
"""

from __future__ import annotations

from . import registry as registry
from .array import ArrayFreelist
from .base import BaseFreelist
from .errors import (
    BadMagicError,
    ClosedError,
    CorruptPageError,
    DataTooLargeError,
    DoubleFreeError,
    FileDoubleFreeError,
    FileFormatError,
    FileIOError,
    FileLockedError,
    FileTooShortError,
    FreelistError,
    FreelistPageError,
    InvalidArgumentError,
    InvalidPageIdsError,
    InvalidTypeError,
    MetaConflictError,
    MetaPageError,
    MissingExtraError,
    MissingFileError,
    NotAllocatedError,
    NoValidMetaError,
    PageFileArgumentError,
    PageFileError,
    PageFileTypeError,
    PageRangeError,
    PageSizeMismatchError,
    ReachabilityError,
    ReadOnlyError,
    TraceError,
    TransactionError,
    UnsupportedVersionError,
)
from .hashmap import POLICIES, HashmapFreelist, Policy
from .pagefile import PageFile, PageFileStats, Transaction
from .protocol import Freelist

__version__ = "0.5.0"

__all__ = [
    "POLICIES",
    "ArrayFreelist",
    "BadMagicError",
    "BaseFreelist",
    "ClosedError",
    "CorruptPageError",
    "DataTooLargeError",
    "DoubleFreeError",
    "FileDoubleFreeError",
    "FileFormatError",
    "FileIOError",
    "FileLockedError",
    "FileTooShortError",
    "Freelist",
    "FreelistError",
    "FreelistPageError",
    "HashmapFreelist",
    "InvalidArgumentError",
    "InvalidPageIdsError",
    "InvalidTypeError",
    "MetaConflictError",
    "MetaPageError",
    "MissingExtraError",
    "MissingFileError",
    "NoValidMetaError",
    "NotAllocatedError",
    "PageFile",
    "PageFileArgumentError",
    "PageFileError",
    "PageFileStats",
    "PageFileTypeError",
    "PageRangeError",
    "PageSizeMismatchError",
    "Policy",
    "ReachabilityError",
    "ReadOnlyError",
    "TraceError",
    "Transaction",
    "TransactionError",
    "UnsupportedVersionError",
    "__version__",
]
