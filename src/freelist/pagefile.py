"""PageFile: a small, crash-safe, mmap-backed page file in bbolt's layout.

The file is an array of fixed-size pages.  Pages 0 and 1 are meta pages; the
others are allocated and freed through any :class:`~freelist.Freelist`.  One
write transaction at a time, any number of read transactions; each sees the
snapshot of its txid.

Commit protocol (the same as bbolt's):

1. the caller has written its data pages (only pages it allocated in this
   transaction, so nothing a committed meta points at is overwritten);
2. with ``sync_freelist``, the old freelist pages are freed (pending) and the
   sorted free and pending ids are written into freshly allocated pages;
3. ``fdatasync``;
4. the new meta (txid, root, freelist page, high-water mark, checksum) is
   written to page ``txid % 2``; ``fdatasync``.

A crash before step 4 completes leaves the previous meta the newest valid one;
the pages of the lost transaction are simply free again.  A torn meta page fails
its checksum, and the other meta (one commit older) wins.

Reads copy bytes out of a read-only shared mapping, so no buffer export of the
map ever outlives a call and the file can be remapped when it grows; an old map
is left to the garbage collector, never closed under a thread still using it.

Every way opening a file can fail has its own exception in :mod:`freelist.errors`
(:class:`~freelist.MissingFileError`, :class:`~freelist.FileTooShortError`,
:class:`~freelist.NoValidMetaError` with :class:`~freelist.BadMagicError` and
:class:`~freelist.UnsupportedVersionError`, :class:`~freelist.PageSizeMismatchError`,
:class:`~freelist.FreelistPageError`); arguments of the wrong type raise
:class:`~freelist.PageFileTypeError`.  All derive from
:class:`~freelist.FreelistError` and carry the file's path.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import math
import mmap
import os
import stat
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, NamedTuple

from . import registry
from ._shared import MAX_ID
from ._shared import _as_int as _shared_as_int
from .errors import (
    BadMagicError,
    ClosedError,
    DataTooLargeError,
    DoubleFreeError,
    FileFormatError,
    FileIOError,
    FileLockedError,
    FileTooShortError,
    FreelistError,
    FreelistPageError,
    InvalidArgumentError,
    InvalidPageIdsError,
    InvalidTypeError,
    MissingFileError,
    NotAllocatedError,
    NoValidMetaError,
    PageFileTypeError,
    PageRangeError,
    PageSizeMismatchError,
    ReachabilityError,
    ReadOnlyError,
    TransactionError,
    UnsupportedVersionError,
)
from .layout import (
    FREELIST_PAGE,
    MAGIC,
    NO_FREELIST,
    VERSION,
    Meta,
    PageHeader,
    freelist_page_size,
    pack_freelist_page,
    unpack_freelist_ids,
)
from .protocol import Freelist

__all__ = ["PageFile", "PageFileStats", "Reachable", "Transaction"]

#: A reachability walk: given the open file, yield the ``(start, n)`` runs in use
#: (besides the meta pages and the freelist's own pages).
Reachable = Callable[["PageFile"], Iterable[tuple[int, int]]]

_MAX_STEP = 1 << 30  # grow by doubling up to 1 GiB, then in 1 GiB steps
_MIN_SIZE = 1 << 15
_MAX_FILE = (1 << 63) - 1  # the largest offset the OS takes
_PAGE_SIZES = tuple(1 << k for k in range(10, 17))  # 1 KiB .. 64 KiB


class _DefaultPageSize(int):
    """4096, but distinguishable from a ``page_size=4096`` the caller passed."""


#: ``PageFile.open``'s default page size: 4096 for a new file; an existing file
#: keeps its own page size unless ``page_size`` is given explicitly.
_DEFAULT_PAGE_SIZE = _DefaultPageSize(4096)

# Freelist objects attached to an open PageFile, by id(): one may not serve two.
_IN_USE: set[int] = set()
_IN_USE_LOCK = threading.Lock()


def _fsync(fd: int) -> None:
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


def _close_fd(path: str, fd: int, key: int) -> None:
    """Close ``fd`` (dropping its flock) and detach the freelist ``key``; run
    once, by :meth:`PageFile.close` or when the file is garbage collected."""
    with _IN_USE_LOCK:
        _IN_USE.discard(key)
    try:
        os.close(fd)
    except OSError as e:
        raise FileIOError(path, f"cannot close: {e.strerror}") from e


def _as_int(path: str, value: object, what: str) -> int:
    """``value`` as an int (anything with ``__index__``, but not bool): the
    freelists' own conversion, with the file's path in the error."""
    if type(value) is int:
        return value
    try:
        return _shared_as_int(value, what)
    except InvalidTypeError as e:
        raise PageFileTypeError(path, str(e)) from None


class _Verdict(NamedTuple):
    """What :meth:`PageFile._judge` found in one meta page."""

    page: int
    meta: Meta | None  # None: unusable (torn, corrupt, not a meta, outside the file)
    problem: str  # empty when sound; set with a usable meta for a bad freelist id
    error: type[FileFormatError]


@dataclass(frozen=True, slots=True)
class PageFileStats:
    """A summary of a page file (see :meth:`PageFile.stats`)."""

    path: str
    page_size: int
    txid: int
    hwm: int
    free: int
    pending: int
    spans: int
    largest_span: int
    file_size: int
    freelist: str
    sync_freelist: bool


class PageFile:
    """A page file allocating through a :class:`~freelist.Freelist`.

    Create or open one with :meth:`PageFile.open`; use it as a context manager
    or call :meth:`close`.  Closing a file while transactions are open is a
    :class:`~freelist.TransactionError`: finish them first.
    """

    _path: str
    _fl: Freelist
    _sync: bool
    _readonly: bool
    _lock: threading.RLock
    _writer: Transaction | None
    _readers: set[Transaction]
    _closed: bool
    _failed: str
    _fd: int
    _finalizer: weakref.finalize[Any, Any] | None
    _mm: mmap.mmap | None
    _page_size: int
    _meta: Meta
    _fl_run: tuple[int, int] | None

    def __init__(self) -> None:
        """Not for use: call :meth:`PageFile.open`.

        :raises InvalidTypeError: always.

        Runtime complexity: O(1).
        """
        raise InvalidTypeError("use PageFile.open(path, ...) to open a page file")

    # ------------------------------------------------------------------
    # Opening.

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        freelist: str | Freelist = "hashmap",
        page_size: int | None = _DEFAULT_PAGE_SIZE,
        sync_freelist: bool = True,
        reachable: Reachable | None = None,
        timeout: float | None = None,
        readonly: bool = False,
        create: bool = True,
    ) -> PageFile:
        """Open the page file at ``path``, creating it when missing.

        ``freelist`` is ``"hashmap"``, ``"array"`` or any object satisfying the
        :class:`~freelist.Freelist` protocol: a new one (its free set is
        replaced from the file; one with pending pages, or one serving another
        open file, is refused).  ``page_size`` is the page size of a new file
        (default 4096, a power of two from 1024 to 65536); an existing file
        keeps its own, and passing a different one explicitly is a
        :class:`~freelist.PageSizeMismatchError`.  ``sync_freelist=False`` is
        bbolt's ``NoFreelistSync``: commits do not write the freelist and the
        meta's freelist id is all ones; such a file is opened by rebuilding the
        free pages from ``reachable``, a callable that yields the ``(start, n)``
        runs in use.  ``timeout`` bounds the wait for the file lock (exclusive,
        or shared when ``readonly``) in seconds: None waits forever, 0 fails at
        once.  ``create=False`` refuses to create a missing file (a read-only
        open never creates one).

        A new file is written before this returns: two metas (txids 0 and 1)
        and an empty freelist page, synced.  A file that cannot be opened is
        left as it was.

        :raises MissingFileError: no file and ``create=False`` or ``readonly``.
        :raises FileTooShortError: shorter than two meta pages, or than the pages
            both metas say are in use.
        :raises BadMagicError: neither meta carries the magic number.
        :raises UnsupportedVersionError: both metas have another version.
        :raises NoValidMetaError: neither meta is valid (checksums, mixed faults).
        :raises PageSizeMismatchError: ``page_size`` given and not the file's.
        :raises FreelistPageError: the freelist page is out of range, of the
            wrong type, runs past the high-water mark or lists bad ids.
        :raises FileLockedError: the lock was not granted in time.
        :raises ReachabilityError: no synced freelist and no ``reachable``, or
            the walk names pages outside the file.
        :raises FileIOError: the OS refused to open, lock, read or map the file
            (a directory, no permission, ...).
        :raises InvalidArgumentError: a bad ``page_size``, ``freelist`` or
            ``timeout`` value (:class:`PageFileTypeError` for a wrong type).

        Runtime complexity: O(F) to load a freelist of F ids, or O(hwm) plus the
        walk's cost without one.
        """
        self = object.__new__(cls)
        try:
            self._path = os.fsdecode(path)
        except TypeError:
            raise PageFileTypeError(
                repr(path), f"path must be a str or os.PathLike, not {type(path).__name__}"
            ) from None
        explicit_size = page_size is not _DEFAULT_PAGE_SIZE and page_size is not None
        if explicit_size and type(page_size) is not int:
            raise PageFileTypeError(
                self._path, f"page_size must be an int, not {type(page_size).__name__}"
            )
        if explicit_size and page_size not in _PAGE_SIZES:
            raise InvalidArgumentError(
                f"{self._path}: page_size must be a power of two in [1024, 65536], "
                f"got {page_size!r}"
            )
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or math.isnan(timeout)
            or timeout < 0
        ):
            raise InvalidArgumentError(
                f"{self._path}: timeout must be None or seconds >= 0, got {timeout!r}"
            )
        if reachable is not None and not callable(reachable):
            raise PageFileTypeError(
                self._path, f"reachable must be a callable, not {type(reachable).__name__}"
            )
        self._fl = self._choose_freelist(freelist)
        self._sync = bool(sync_freelist)
        self._readonly = bool(readonly)
        self._lock = threading.RLock()
        self._writer = None
        self._readers = set()
        self._closed = False
        self._failed = ""
        self._fd = -1
        self._finalizer = None
        self._mm = None
        self._fl_run = None
        with _IN_USE_LOCK:
            if id(self._fl) in _IN_USE:
                raise InvalidArgumentError(
                    f"{self._path}: this freelist object serves another open PageFile"
                )
            _IN_USE.add(id(self._fl))
        try:
            self._open_fd(create)
            self._take_lock(timeout)
            if self._file_size() == 0 and not readonly:
                self._initialise(page_size if explicit_size else 4096)  # type: ignore[arg-type]
            self._load(page_size if explicit_size else None, reachable)
        except BaseException:
            self._closed = True
            self._release_fd()
            raise
        return self

    def _choose_freelist(self, freelist: object) -> Freelist:
        if isinstance(freelist, str):
            try:
                return registry.make(freelist)
            except FreelistError as e:
                raise InvalidArgumentError(f"{self._path}: {e}") from None
        if isinstance(freelist, type):
            raise PageFileTypeError(
                self._path,
                f"freelist must be a Freelist object, not the class {freelist.__name__} "
                f"(pass {freelist.__name__}())",
            )
        if not isinstance(freelist, Freelist):
            raise PageFileTypeError(
                self._path,
                f"freelist must be 'hashmap', 'array' or a Freelist, not {type(freelist).__name__}",
            )
        if freelist.pending_count:
            raise InvalidArgumentError(
                f"{self._path}: the freelist has {freelist.pending_count} pending page(s); "
                "pass a new one"
            )
        return freelist

    def _open_fd(self, create: bool) -> None:
        flags = os.O_RDONLY if self._readonly else os.O_RDWR
        if create and not self._readonly:
            flags |= os.O_CREAT
        # O_NONBLOCK: a FIFO is refused below instead of blocking the open; it
        # changes nothing for a regular file.
        flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(self._path, flags, 0o644)
        except FileNotFoundError as e:
            why = (
                "no such file or directory"
                if create and not self._readonly
                else "no such file (create=False or read-only)"
            )
            raise MissingFileError(self._path, why) from e
        except OSError as e:
            raise FileIOError(self._path, f"cannot open: {e.strerror}") from e
        except ValueError as e:  # an embedded NUL byte
            raise InvalidArgumentError(f"{self._path!r}: bad path: {e}") from e
        self._fd = fd
        self._finalizer = weakref.finalize(self, _close_fd, self._path, fd, id(self._fl))
        try:
            mode = os.fstat(fd).st_mode
        except OSError as e:
            raise FileIOError(self._path, f"cannot stat: {e.strerror}") from e
        if not stat.S_ISREG(mode):
            what = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise FileIOError(self._path, f"cannot open: {what}")

    def _take_lock(self, timeout: float | None) -> None:
        how = (fcntl.LOCK_SH if self._readonly else fcntl.LOCK_EX) | fcntl.LOCK_NB
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self._fd, how)
                return
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise FileIOError(self._path, f"cannot lock: {e.strerror}") from e
            if deadline is not None and time.monotonic() >= deadline:
                raise FileLockedError(self._path, f"locked by another process (waited {timeout} s)")
            time.sleep(0.005)

    def _initialise(self, page_size: int) -> None:
        """Write a new file: two metas (txids 0 and 1) and an empty freelist page 2."""
        from array import array

        pages = [
            Meta(page_size, 0, 2, 3, 0).pack_page(page_size),
            Meta(page_size, 0, 2, 3, 1).pack_page(page_size),
            pack_freelist_page(2, array("Q"), page_size),
        ]
        try:
            self._pwrite(b"".join(pages), 0)
            self._sync_fd()
        except BaseException:
            with suppress(OSError):  # empty again: the next open starts over
                os.ftruncate(self._fd, 0)
            raise

    def _read_metas(self, buf: bytes, size: int, want: int | None) -> tuple[int, list[_Verdict]]:
        """Find the page size and judge both metas."""
        first, stored = Meta.unpack(buf, 0)
        candidates = list(_PAGE_SIZES)
        if first.magic == MAGIC and first.page_size in candidates:
            if stored == first.checksum() and 2 * first.page_size > size:
                raise FileTooShortError(
                    self._path,
                    f"the file is {size} bytes, shorter than its two "
                    f"{first.page_size}-byte meta pages",
                )
            candidates.remove(first.page_size)
            candidates.insert(0, first.page_size)
        best: tuple[int, list[_Verdict]] | None = None
        for ps in candidates:
            if 2 * ps > size:
                continue
            verdicts = [self._judge(buf, p, ps, size) for p in (0, 1)]
            if any(v.meta for v in verdicts):
                best = (ps, verdicts)
                break
            if best is None or (
                not any(v.error is not BadMagicError for v in best[1])
                and any(v.error is not BadMagicError for v in verdicts)
            ):
                best = (ps, verdicts)  # prefer a size at which something looks like a meta
        if best is None:
            raise FileTooShortError(self._path, f"too short to be a page file ({size} bytes)")
        ps, verdicts = best
        if want is not None and any(v.meta for v in verdicts) and ps != want:
            raise PageSizeMismatchError(self._path, f"page size is {ps}, not {want}")
        return ps, verdicts

    def _judge(self, buf: bytes | mmap.mmap, page: int, ps: int, size: int) -> _Verdict:
        meta, stored = Meta.unpack(buf, page * ps)
        where = f"meta page {page}"
        if meta.magic != MAGIC:
            return _Verdict(page, None, f"{where}: bad magic {meta.magic:#x}", BadMagicError)
        if meta.version != VERSION:
            return _Verdict(
                page, None, f"{where}: unsupported version {meta.version}", UnsupportedVersionError
            )
        if meta.checksum() != stored:
            return _Verdict(page, None, f"{where}: checksum mismatch", NoValidMetaError)
        if meta.page_size not in _PAGE_SIZES:
            problem = f"{where}: page size {meta.page_size} is not a power of two in [1024, 65536]"
            return _Verdict(page, None, problem, NoValidMetaError)
        if meta.page_size != ps:
            return _Verdict(
                page, None, f"{where}: page size {meta.page_size} differs", NoValidMetaError
            )
        if not meta.hwm >= 2 or meta.hwm * ps > size:
            return _Verdict(
                page,
                None,
                f"{where}: high-water mark {meta.hwm} outside the file "
                f"({size} bytes, {size // ps} pages)",
                FileTooShortError,
            )
        if meta.freelist != NO_FREELIST and not 2 <= meta.freelist < meta.hwm:
            problem = f"{where}: freelist page {meta.freelist} outside [2, {meta.hwm})"
            return _Verdict(page, meta, problem, FreelistPageError)
        return _Verdict(page, meta, "", FileFormatError)

    def _load(self, want_page_size: int | None, reachable: Reachable | None) -> None:
        size = self._file_size()
        if size < 1024:
            raise FileTooShortError(self._path, f"too short to be a page file ({size} bytes)")
        head = self._pread(min(size, 65536 + 1024), 0)
        ps, verdicts = self._read_metas(head, size, want_page_size)
        usable = [v for v in verdicts if v.meta is not None]
        if not usable:
            problems = "; ".join(v.problem for v in verdicts)
            kinds = {v.error for v in verdicts}
            error = kinds.pop() if len(kinds) == 1 else NoValidMetaError
            raise error(self._path, f"no valid meta page: {problems}")
        newest = max(usable, key=lambda v: v.meta.txid if v.meta else -1)
        if newest.problem:
            raise newest.error(self._path, newest.problem)
        assert newest.meta is not None
        self._page_size = ps
        self._meta = newest.meta
        self._map(size)
        self._load_freelist(reachable)

    def _load_freelist(self, reachable: Reachable | None) -> None:
        meta = self._meta
        if meta.freelist != NO_FREELIST:
            run, ids = self._read_freelist_page(meta)
            try:
                self._fl.init(ids)
            except InvalidPageIdsError as e:
                raise FreelistPageError(self._path, f"freelist page {meta.freelist}: {e}") from e
            self._fl_run = run
            return
        if reachable is None:
            raise ReachabilityError(
                self._path,
                "the freelist is not synced to disk (NoFreelistSync): "
                "pass reachable= to rebuild it",
            )
        self._fl.init(self._free_from_walk(reachable, meta.hwm))

    def _read_freelist_page(self, meta: Meta) -> tuple[tuple[int, int], list[int]]:
        """The freelist run ``(start, pages)`` of ``meta`` and its sorted ids.

        :raises FreelistPageError: not a freelist page, past the high-water mark,
            or ids outside ``[2, hwm)`` or among its own pages.
        """
        ps = self._page_size
        start = meta.freelist
        mm = self._require_map()
        where = f"freelist page {start}"
        try:
            hdr = PageHeader.unpack(mm, start * ps)
            if not hdr.flags & FREELIST_PAGE:
                raise FreelistError(f"is not a freelist page (flags {hdr.flags:#x})")
            n = hdr.overflow + 1
            if start + n > meta.hwm:
                raise FreelistError(
                    f"with its {hdr.overflow} overflow page(s) passes the high-water mark "
                    f"{meta.hwm}"
                )
            ids = unpack_freelist_ids(mm, start * ps, (start + n) * ps).tolist()
        except FreelistError as e:
            raise FreelistPageError(self._path, f"{where} {e}") from e
        if any(a >= b for a, b in itertools.pairwise(ids)):
            ids.sort()
        if ids and (ids[0] < 2 or ids[-1] >= meta.hwm):
            raise FreelistPageError(self._path, f"{where} lists ids outside [2, {meta.hwm})")
        i = bisect_left(ids, start)
        if i < len(ids) and ids[i] < start + n:
            raise FreelistPageError(self._path, f"{where} lists its own page {ids[i]} as free")
        return (start, n), ids

    def _free_from_walk(self, reachable: Reachable, hwm: int) -> list[int]:
        used = self._mark_reachable(reachable, hwm, None)
        return [i for i in range(2, hwm) if not used[i]]

    def _mark_reachable(
        self, reachable: Reachable, hwm: int, problems: list[str] | None
    ) -> bytearray:
        """One byte per page below ``hwm``: 1 for the metas and every page the
        walk yields.  A run outside ``[2, hwm)`` or an item that is not a pair
        of ints raises :class:`ReachabilityError`, or, when ``problems`` is a
        list, is reported there with runs reached twice."""
        used = bytearray(hwm)
        used[0:2] = b"\1\1"
        result = reachable(self)
        try:
            items = iter(result)
        except TypeError:
            raise ReachabilityError(
                self._path, f"the walk returned {type(result).__name__}, not (start, n) runs"
            ) from None
        for item in items:
            try:
                start, n = item
                if type(start) is not int:
                    start = _as_int(self._path, start, "start")
                if type(n) is not int:
                    n = _as_int(self._path, n, "n")
            except (TypeError, ValueError, PageFileTypeError):
                msg = f"the walk yielded {item!r}, not a (start, n) pair of ints"
                if problems is None:
                    raise ReachabilityError(self._path, msg) from None
                problems.append(msg)
                continue
            if start < 2 or n < 1 or start + n > hwm:
                msg = f"the walk names pages {start}+{n} outside [2, {hwm})"
                if problems is None:
                    raise ReachabilityError(self._path, msg)
                problems.append(msg)
                continue
            if problems is not None and any(used[start : start + n]):
                problems.append(f"pages {start}+{n} are reached twice (or are meta pages)")
            used[start : start + n] = b"\1" * n
        return used

    # ------------------------------------------------------------------
    # Low-level I/O.

    def _file_size(self) -> int:
        try:
            return os.fstat(self._fd).st_size
        except OSError as e:
            raise FileIOError(self._path, f"cannot stat: {e.strerror}") from e

    def _pread(self, n: int, offset: int) -> bytes:
        try:
            return os.pread(self._fd, n, offset)
        except OSError as e:
            raise FileIOError(self._path, f"cannot read: {e.strerror}") from e

    def _pwrite(self, data: bytes | memoryview, offset: int) -> None:
        try:
            view = memoryview(data).cast("B")
            while view:
                done = os.pwrite(self._fd, view, offset)
                view = view[done:]
                offset += done
        except OSError as e:
            raise FileIOError(self._path, f"cannot write: {e.strerror}") from e

    def _sync_fd(self) -> None:
        try:
            _fsync(self._fd)
        except OSError as e:
            raise FileIOError(self._path, f"cannot sync: {e.strerror}") from e

    def _map(self, size: int) -> None:
        try:
            self._mm = mmap.mmap(self._fd, size, prot=mmap.PROT_READ) if size else None
        except (OSError, ValueError, OverflowError) as e:
            raise FileIOError(self._path, f"cannot map {size} bytes: {e}") from e

    def _require_map(self) -> mmap.mmap:
        if self._mm is None:
            raise FileFormatError(self._path, "empty file")
        return self._mm

    @staticmethod
    def _grown_size(need: int) -> int:
        """bbolt's mmap steps: the power of two >= ``need`` from 32 KiB up to
        1 GiB, then the next multiple of 1 GiB (always a whole number of pages)."""
        if need <= _MAX_STEP:
            return max(_MIN_SIZE, 1 << (need - 1).bit_length())
        return -(-need // _MAX_STEP) * _MAX_STEP

    def _ensure_size(self, pages: int) -> None:
        """Grow the file (and its map) to hold ``pages`` pages, in bbolt-like steps.

        On failure the file keeps its size and its map."""
        need = pages * self._page_size
        have = self._file_size()
        if need <= have:
            if self._mm is None or len(self._mm) < have:
                self._map(have)
            return
        size = self._grown_size(need)
        if size > _MAX_FILE:
            raise FileIOError(
                self._path, f"cannot grow to {pages} pages: past the largest file size"
            )
        try:
            os.ftruncate(self._fd, size)
        except OSError as e:
            raise FileIOError(self._path, f"cannot grow to {size} bytes: {e.strerror}") from e
        # Readers copy bytes out of the map and hold no export, so replacing the
        # map is safe; the old one is unmapped when its last user drops it.
        try:
            self._map(size)
        except BaseException:
            with suppress(OSError):
                os.ftruncate(self._fd, have)
            raise

    def _read_pages(self, pgid: int, n: int) -> bytes:
        ps = self._page_size
        end = (pgid + n) * ps
        mm = self._mm
        if mm is None or len(mm) < end:
            self._ensure_size(pgid + n)
            mm = self._require_map()
        return mm[pgid * ps : end]

    def _owns(self, pgid: int, n: int) -> bool:
        """Whether ``pgid .. pgid+n-1`` overlaps the committed freelist's pages."""
        run = self._fl_run
        return run is not None and pgid < run[0] + run[1] and run[0] < pgid + n

    # ------------------------------------------------------------------
    # Properties.

    @property
    def path(self) -> str:
        """The file's path.

        Runtime complexity: O(1).
        """
        return self._path

    @property
    def page_size(self) -> int:
        """The page size in bytes.

        Runtime complexity: O(1).
        """
        return self._page_size

    @property
    def freelist(self) -> Freelist:
        """The freelist in use (do not change it outside transactions).

        Runtime complexity: O(1).
        """
        return self._fl

    @property
    def meta(self) -> Meta:
        """The newest committed meta.

        Runtime complexity: O(1).
        """
        return self._meta

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called.

        Runtime complexity: O(1).
        """
        return self._closed

    # ------------------------------------------------------------------
    # Transactions.

    def begin(self, writable: bool) -> Transaction:
        """Start a transaction: a writer (one at a time) or a reader.

        A writer first releases the pending pages no open reader can see
        (bbolt's ReleasePendingPages) and gets txid = the last commit's + 1.  A
        reader sees the snapshot of the last commit.

        :raises ClosedError: the file is closed.
        :raises ReadOnlyError: a writer on a file opened read-only.
        :raises TransactionError: a writer is already open, or a commit failed
            while writing its meta page (reopen the file to write again).

        Runtime complexity: O(1) for a reader; a writer's release costs as
        :meth:`~freelist.Freelist.release_pending`.
        """
        with self._lock:
            self._check_open()
            if writable:
                if self._readonly:
                    raise ReadOnlyError(self._path, "opened read-only; no write transactions")
                if self._failed:
                    raise TransactionError(self._path, f"{self._failed}; reopen the file")
                if self._writer is not None:
                    raise TransactionError(self._path, "a write transaction is already open")
                self._fl.release_pending()
                tx = Transaction(self, True, self._meta)
                self._writer = tx
            else:
                tx = Transaction(self, False, self._meta)
                self._fl.add_reader(tx.txid)
                self._readers.add(tx)
            return tx

    @contextmanager
    def update(self) -> Iterator[Transaction]:
        """A write transaction that commits when the block ends, or rolls back
        if the block (or the commit) raises.

        :raises: as :meth:`begin` and :meth:`Transaction.commit`.

        Runtime complexity: as :meth:`begin` and :meth:`Transaction.commit`.
        """
        tx = self.begin(True)
        try:
            yield tx
            if not tx.closed:
                tx.commit()
        except BaseException:
            if not tx.closed:
                tx.rollback()
            raise

    @contextmanager
    def view(self) -> Iterator[Transaction]:
        """A read transaction, closed when the block ends.

        :raises ClosedError: the file is closed.

        Runtime complexity: O(1).
        """
        tx = self.begin(False)
        try:
            yield tx
        finally:
            if not tx.closed:
                tx.rollback()

    def _end(self, tx: Transaction) -> None:
        with self._lock:
            if tx.writable:
                self._writer = None
            elif tx in self._readers:
                self._readers.discard(tx)
                self._fl.remove_reader(tx.txid)

    def _check_root(self, root: int) -> None:
        """The root must be a page in use: not free, pending or the freelist's."""
        if root and (self._fl.freed(root) or self._owns(root, 1)):
            what = "the freelist's own page" if self._owns(root, 1) else "free or pending"
            raise NotAllocatedError(self._path, f"root page {root} is {what}, not a page in use")

    def _commit(self, tx: Transaction) -> None:
        with self._lock:
            self._check_open()
            fl = self._fl
            txid = tx.txid
            ps = self._page_size
            meta_started = False
            try:
                if self._fl_run is not None:
                    fl.free(txid, *self._fl_run)
                freelist_pgid, pages = NO_FREELIST, 0
                if self._sync:
                    pages = -(-freelist_page_size(fl.count) // ps)
                    freelist_pgid = tx._allocate_pages(pages)
                    data = pack_freelist_page(freelist_pgid, fl.page_id_array(), ps)
                    self._pwrite(data, freelist_pgid * ps)
                self._sync_fd()
                meta = Meta(ps, tx._root, freelist_pgid, tx._hwm, txid)
                meta_started = True
                self._pwrite(meta.pack_page(ps), (txid % 2) * ps)
                self._sync_fd()
            except BaseException as e:
                fl.rollback(txid)
                if meta_started:
                    # The meta may be on disk (or reach it later): this process
                    # no longer knows which state is durable, so it stops writing.
                    self._failed = (
                        f"the commit of transaction {txid} failed while writing its meta "
                        f"page ({type(e).__name__})"
                    )
                raise
            self._meta = meta
            self._fl_run = (freelist_pgid, pages) if pages else None

    # ------------------------------------------------------------------
    # Whole-file operations.

    def stats(self) -> PageFileStats:
        """Page size, txid, high-water mark, free and pending pages, runs, file size.

        :raises ClosedError: the file is closed.
        :raises FileIOError: the file size cannot be read.

        Runtime complexity: O(S log S) for the runs (O(F) for the array).
        """
        with self._lock:
            self._check_open()
            spans = self._fl.free_spans()
            return PageFileStats(
                path=self._path,
                page_size=self._page_size,
                txid=self._meta.txid,
                hwm=self._meta.hwm,
                free=self._fl.free_count,
                pending=self._fl.pending_count,
                spans=len(spans),
                largest_span=max((n for _, n in spans), default=0),
                file_size=self._file_size(),
                freelist=type(self._fl).__name__,
                sync_freelist=self._sync,
            )

    def check(self, reachable: Reachable | None = None) -> list[str]:
        """Verify the file; return the problems found (empty when sound).

        Checks: both meta pages (a stale or torn older meta is reported), the
        root page (inside ``[2, hwm)``, not a freelist page), the freelist page
        (type, header id, the 0xFFFF count rule, inside ``[2, hwm)`` with its
        overflow pages, ids sorted, unique, inside ``[2, hwm)``, not overlapping
        the meta pages, its own pages or the root), that it lists exactly the
        free and pending pages the freelist holds, and with ``reachable``: that
        reachable and free pages are disjoint and together cover every page
        below the high-water mark.

        :raises ClosedError: the file is closed.
        :raises FileIOError: the file cannot be read.

        Runtime complexity: O(hwm) with a walk (plus the walk), O(F) otherwise.
        """
        with self._lock:
            self._check_open()
            problems: list[str] = []
            meta = self._meta
            ps = self._page_size
            head = self._pread(2 * ps, 0)
            size = self._file_size()
            if len(head) < 2 * ps:
                problems.append(f"the file is {size} bytes, shorter than its meta pages")
            else:
                problems += [v.problem for v in (self._judge(head, p, ps, size) for p in (0, 1))]
            problems = [p for p in problems if p]
            if meta.root and not 2 <= meta.root < meta.hwm:
                problems.append(f"root page {meta.root} outside [2, {meta.hwm})")
            own: set[int] = set()
            if meta.freelist != NO_FREELIST:
                ids = self._check_freelist_page(meta, problems, own)
                if any(a >= b for a, b in itertools.pairwise(ids)):
                    problems.append("freelist ids are not sorted and unique")
                bad = [i for i in ids if not 2 <= i < meta.hwm]
                if bad:
                    problems.append(f"freelist ids outside [2, {meta.hwm}): {bad[:5]}")
                if own & set(ids):
                    problems.append("the freelist lists its own pages")
                if meta.root and meta.root in set(ids):
                    problems.append(f"the freelist lists the root page {meta.root}")
                if meta.root in own:
                    problems.append(f"the root page {meta.root} is one of the freelist's pages")
                if self._writer is None and sorted(ids) != self._fl.all_page_ids():
                    problems.append(
                        "the freelist page differs from the free and pending pages in memory"
                    )
            free = set(self._fl.all_page_ids())
            if any(i < 2 or i >= meta.hwm for i in free):
                problems.append("free or pending pages outside [2, hwm)")
            if reachable is not None:
                used = self._mark_reachable(reachable, meta.hwm, problems)
                for p in sorted(own):
                    if p < meta.hwm and used[p]:
                        problems.append(f"the freelist's page {p} is also reachable")
                    if p < meta.hwm:
                        used[p] = 1
                for p in sorted(free):
                    if 0 <= p < meta.hwm:
                        if used[p]:
                            problems.append(f"page {p} is both reachable and free")
                        used[p] = 1
                lost = [p for p in range(meta.hwm) if not used[p]]
                if lost:
                    problems.append(
                        f"{len(lost)} page(s) neither reachable nor free, first {lost[:5]}"
                    )
            return problems

    def _check_freelist_page(self, meta: Meta, problems: list[str], own: set[int]) -> list[int]:
        """The ids on ``meta``'s freelist page (as stored); adds its pages to
        ``own`` and what is wrong with its header to ``problems``."""
        ps = self._page_size
        start = meta.freelist
        mm = self._require_map()
        try:
            hdr = PageHeader.unpack(mm, start * ps)
        except FreelistError as e:
            problems.append(f"freelist page {start}: {e}")
            return []
        own.update(range(start, start + hdr.overflow + 1))
        if hdr.id != start:
            problems.append(f"freelist page {start} has id {hdr.id} in its header")
        if start + hdr.overflow + 1 > meta.hwm:
            problems.append(
                f"freelist page {start} with {hdr.overflow} overflow page(s) passes the "
                f"high-water mark {meta.hwm}"
            )
        limit = min(len(mm), meta.hwm * ps, (start + 1 + hdr.overflow) * ps)
        try:
            ids = unpack_freelist_ids(mm, start * ps, limit).tolist()
        except FreelistError as e:
            problems.append(f"freelist page {start}: {e}")
            return []
        if (hdr.count == 0xFFFF) != (len(ids) >= 0xFFFF):
            problems.append(
                f"freelist page {start}: count field {hdr.count:#x} does not follow the "
                f"0xFFFF rule for {len(ids)} ids"
            )
        return ids

    def close(self) -> None:
        """Close the file and release its lock.  Calling it twice is harmless.

        :raises TransactionError: a transaction is still open (finish it first).
        :raises FileIOError: the OS reported an error closing the file (it is
            closed anyway).

        Runtime complexity: O(1).
        """
        with self._lock:
            if self._closed:
                return
            if self._writer is not None or self._readers:
                open_ = len(self._readers) + (self._writer is not None)
                raise TransactionError(self._path, f"{open_} transaction(s) still open")
            self._closed = True
            self._release_fd()

    def _release_fd(self) -> None:
        self._mm = None
        self._fd = -1
        finalizer, self._finalizer = self._finalizer, None
        if finalizer is not None:
            finalizer()  # closes the fd (dropping the flock) and detaches the freelist
        else:
            with _IN_USE_LOCK:
                _IN_USE.discard(id(self._fl))

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(self._path, "the file is closed")

    def __enter__(self) -> PageFile:
        """Return the file itself.

        Runtime complexity: O(1).
        """
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the file (see :meth:`close`).

        :raises TransactionError: a transaction is still open.

        Runtime complexity: O(1).
        """
        self.close()

    def __repr__(self) -> str:
        """The path and the txid and high-water mark (or "closed").

        Runtime complexity: O(1).
        """
        state = "closed" if self._closed else f"txid={self._meta.txid} hwm={self._meta.hwm}"
        return f"PageFile({self._path!r}, {state})"


class Transaction:
    """A read or write transaction of a :class:`PageFile`.

    Get one from :meth:`PageFile.begin`, :meth:`PageFile.update` or
    :meth:`PageFile.view`; use it as a context manager (a writer commits when
    the block ends normally, anything else rolls back).
    """

    def __init__(self, pf: PageFile, writable: bool, meta: Meta) -> None:
        """Not for direct use: :meth:`PageFile.begin` registers the transaction.

        Runtime complexity: O(1).
        """
        self._pf = pf
        self._writable = bool(writable)
        self._txid = meta.txid + 1 if writable else meta.txid
        self._root = meta.root
        self._hwm = meta.hwm
        self._allocated: dict[int, int] = {}
        self._closed = False

    def __repr__(self) -> str:
        """Kind, txid and whether it is closed.

        Runtime complexity: O(1).
        """
        kind = "write" if self._writable else "read"
        return f"<{kind} transaction {self._txid}{' closed' if self._closed else ''}>"

    @property
    def txid(self) -> int:
        """The transaction id: a reader's snapshot, or the last commit's + 1 for a writer.

        Runtime complexity: O(1).
        """
        return self._txid

    @property
    def writable(self) -> bool:
        """Whether this is a write transaction.

        Runtime complexity: O(1).
        """
        return self._writable

    @property
    def closed(self) -> bool:
        """Whether the transaction has committed or rolled back.

        Runtime complexity: O(1).
        """
        return self._closed

    def _check(self, write: bool = False) -> None:
        if self._closed:
            raise ClosedError(self._pf.path, f"transaction {self._txid} is closed")
        self._pf._check_open()
        if write and not self._writable:
            raise ReadOnlyError(self._pf.path, "write in a read transaction")

    def _check_pages(self, pgid: object, n: object) -> tuple[int, int]:
        path = self._pf.path
        p = pgid if type(pgid) is int else _as_int(path, pgid, "page id")
        k = n if type(n) is int else _as_int(path, n, "page count")
        if k < 1:
            raise PageRangeError(path, f"page count must be at least 1, got {k}")
        if 0 <= p < 2:
            raise PageRangeError(path, f"page {p} is a meta page")
        if p < 0:
            raise PageRangeError(path, f"page id {p} is negative")
        if p + k > self._hwm:
            raise PageRangeError(
                path, f"pages {p}..{p + k - 1} pass the high-water mark {self._hwm}"
            )
        return p, k

    @property
    def root(self) -> int:
        """The root page id stored in the meta (0: none); set it in a writer.

        The root must be a page in use (allocated, and not freed since): setting
        a free or pending page, or a page of the freelist itself, is refused,
        and so is committing while the root page is freed.

        :raises ReadOnlyError: setting it in a read transaction.
        :raises ClosedError: setting it on a closed transaction or file.
        :raises PageRangeError: a meta page or a page past the high-water mark.
        :raises PageFileTypeError: not an int.
        :raises NotAllocatedError: a free or pending page, or a freelist page.

        Runtime complexity: O(1) to read; setting costs the freelist's ``freed``.
        """
        return self._root

    @root.setter
    def root(self, pgid: int) -> None:
        self._check(write=True)
        pgid = pgid if type(pgid) is int else _as_int(self._pf.path, pgid, "root")
        if pgid != 0:
            self._check_pages(pgid, 1)
            with self._pf._lock:
                self._pf._check_root(pgid)
        self._root = pgid

    @property
    def hwm(self) -> int:
        """The high-water mark this transaction sees (grows as a writer allocates).

        Runtime complexity: O(1).
        """
        return self._hwm

    def _allocate_pages(self, n: int) -> int:
        pf = self._pf
        pgid = pf._fl.allocate(self._txid, n)
        if not pgid:
            pgid = self._hwm
            pf._ensure_size(pgid + n)
            self._hwm += n
        self._allocated[pgid] = n
        return pgid

    def allocate(self, n: int = 1) -> int:
        """Allocate ``n`` contiguous pages; return the first id.

        From the freelist when it holds a run of ``n``, else by growing the
        file at the high-water mark (doubling from 32 KiB up to 1 GiB, then in
        1 GiB steps).

        :raises ReadOnlyError: in a read transaction.
        :raises ClosedError: the transaction or file is closed.
        :raises PageFileTypeError: ``n`` is not an int.
        :raises InvalidArgumentError: ``n < 1`` or ``n`` past 2**64-1.
        :raises FileIOError: the file could not grow (it keeps its size).

        Runtime complexity: the freelist's allocate, plus growing the file.
        """
        self._check(write=True)
        n = n if type(n) is int else _as_int(self._pf.path, n, "n")
        if not 1 <= n <= MAX_ID:
            raise InvalidArgumentError(f"{self._pf.path}: n must be in [1, 2**64-1], got {n}")
        with self._pf._lock:
            return self._allocate_pages(n)

    def write(self, pgid: int, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` at the start of the run ``pgid`` allocated in this transaction.

        ``data`` is any bytes-like object; its size in bytes (not in items)
        must fit the run.  Only pages allocated by this transaction can be
        written, so nothing a committed snapshot can see is ever overwritten.

        :raises ReadOnlyError: in a read transaction.
        :raises ClosedError: the transaction or file is closed.
        :raises PageFileTypeError: ``pgid`` is not an int or ``data`` not bytes-like.
        :raises NotAllocatedError: ``pgid`` does not start a run this transaction allocated.
        :raises DataTooLargeError: ``data`` is longer than the run.
        :raises FileIOError: the write failed.

        Runtime complexity: O(len(data)).
        """
        self._check(write=True)
        path = self._pf.path
        pgid = pgid if type(pgid) is int else _as_int(path, pgid, "page id")
        n = self._allocated.get(pgid)
        if n is None:
            raise NotAllocatedError(
                path, f"page {pgid} does not start a run transaction {self._txid} allocated"
            )
        try:
            view = memoryview(data)
        except TypeError:
            raise PageFileTypeError(
                path, f"data must be bytes-like, not {type(data).__name__}"
            ) from None
        with view:
            size = n * self._pf.page_size
            if view.nbytes > size:
                raise DataTooLargeError(
                    path, f"{view.nbytes} bytes do not fit in {n} page(s) ({size} bytes)"
                )
            body = view if view.c_contiguous else memoryview(view.tobytes())
            self._pf._pwrite(body, pgid * self._pf.page_size)

    def read(self, pgid: int, n: int = 1) -> bytes:
        """The bytes of pages ``pgid .. pgid+n-1`` (a copy).

        :raises PageRangeError: a meta page, a negative id, or pages past the
            high-water mark this transaction sees.
        :raises PageFileTypeError: ``pgid`` or ``n`` is not an int.
        :raises ClosedError: the transaction or file is closed.

        Runtime complexity: O(n * page_size).
        """
        self._check()
        p, k = self._check_pages(pgid, n)
        with self._pf._lock:
            return self._pf._read_pages(p, k)

    def free(self, pgid: int, n: int = 1) -> None:
        """Free pages ``pgid .. pgid+n-1``: pending until no reader can see them.

        :raises ReadOnlyError: in a read transaction.
        :raises ClosedError: the transaction or file is closed.
        :raises PageRangeError: a meta page or pages past the high-water mark.
        :raises PageFileTypeError: ``pgid`` or ``n`` is not an int.
        :raises NotAllocatedError: the run includes the freelist's own pages
            (the page file frees those itself at commit).
        :raises DoubleFreeError: a page is already free or pending.

        Runtime complexity: the freelist's free.
        """
        self._check(write=True)
        p, k = self._check_pages(pgid, n)
        pf = self._pf
        with pf._lock:
            if pf._owns(p, k):
                start, pages = pf._fl_run or (0, 0)
                raise NotAllocatedError(
                    pf.path,
                    f"pages {p}..{p + k - 1} include the freelist's own page(s) "
                    f"{start}..{start + pages - 1}, which the page file frees itself",
                )
            try:
                pf._fl.free(self._txid, p, k)
            except DoubleFreeError as e:
                raise DoubleFreeError(f"{pf.path}: {e}") from None
            self._allocated.pop(p, None)

    def commit(self) -> None:
        """Commit: data, freelist page, fsync, meta page, fsync.

        When the root page is free or pending, nothing happens and the
        transaction stays open (set another root, or roll back).

        :raises ReadOnlyError: in a read transaction (use :meth:`rollback`).
        :raises ClosedError: the transaction or file is closed.
        :raises NotAllocatedError: the root page is free or pending.
        :raises FileIOError: a write or sync failed; the transaction is rolled
            back.  If the failure came while writing the meta page, the file
            accepts no further writer until it is reopened.

        Runtime complexity: O(F) to write a synced freelist of F ids (a copy of
        the sorted id array, no sort), plus the I/O.
        """
        self._check(write=True)
        with self._pf._lock:
            self._pf._check_root(self._root)
        try:
            self._pf._commit(self)
        finally:
            self._closed = True
            self._pf._end(self)

    def rollback(self) -> None:
        """End the transaction; a writer's allocations and frees are undone.

        Calling it on a closed transaction is harmless; it raises nothing.

        Runtime complexity: the freelist's rollback.
        """
        if self._closed:
            return
        self._closed = True
        if self._writable:
            with self._pf._lock:
                self._pf._fl.rollback(self._txid)
        self._pf._end(self)

    def __enter__(self) -> Transaction:
        """Return the transaction itself.

        Runtime complexity: O(1).
        """
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        """Commit a writer whose block ended normally; otherwise roll back.  A
        commit that raises leaves the transaction rolled back.

        Runtime complexity: as :meth:`commit` or :meth:`rollback`.
        """
        if self._closed:
            return
        if exc_type is None and self._writable:
            try:
                self.commit()
            finally:
                if not self._closed:
                    self.rollback()
        else:
            self.rollback()
