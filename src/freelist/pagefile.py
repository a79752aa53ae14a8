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
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import mmap
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .array import ArrayFreelist
from .errors import (
    ClosedError,
    DataTooLargeError,
    FileFormatError,
    FileIOError,
    FileLockedError,
    FreelistError,
    InvalidArgumentError,
    NotAllocatedError,
    PageFileError,
    PageRangeError,
    PageSizeMismatchError,
    ReachabilityError,
    ReadOnlyError,
    TransactionError,
)
from .hashmap import HashmapFreelist
from .layout import (
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


def _fsync(fd: int) -> None:
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


class PageFile:
    """A page file allocating through a :class:`~freelist.Freelist`.

    Create or open one with :meth:`PageFile.open`; use it as a context manager
    or call :meth:`close`.
    """

    _path: str
    _fl: Freelist
    _sync: bool
    _readonly: bool
    _lock: threading.RLock
    _writer: Transaction | None
    _readers: set[Transaction]
    _closed: bool
    _fd: int
    _mm: mmap.mmap | None
    _page_size: int
    _meta: Meta

    def __init__(self) -> None:
        raise TypeError("use PageFile.open(path, ...)")

    # ------------------------------------------------------------------
    # Opening.

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        freelist: str | Freelist = "hashmap",
        page_size: int | None = None,
        sync_freelist: bool = True,
        reachable: Reachable | None = None,
        timeout: float | None = None,
        readonly: bool = False,
        create: bool = True,
    ) -> PageFile:
        """Open the page file at ``path``, creating it when missing.

        ``freelist`` is ``"hashmap"``, ``"array"`` or any object satisfying the
        :class:`~freelist.Freelist` protocol (it is re-initialised from the
        file).  ``page_size`` applies to a new file (default 4096, a power of
        two from 1024 to 65536); for an existing file it must match when given.
        ``sync_freelist=False`` is bbolt's ``NoFreelistSync``: commits do not
        write the freelist and the meta's freelist id is all ones; such a file is
        opened by rebuilding the free pages from ``reachable``, a callable that
        yields the ``(start, n)`` runs in use.  ``timeout`` bounds the wait for
        the file lock (exclusive, or shared when ``readonly``): None waits
        forever, 0 fails at once.

        :raises FileFormatError: too short, bad magic, bad version, no valid meta,
            a bad freelist page (:class:`PageSizeMismatchError` for a page size
            that differs).
        :raises FileLockedError: the lock was not granted in time.
        :raises ReachabilityError: no synced freelist and no ``reachable``.
        :raises FileIOError: the OS refused to open, lock, read or map the file.
        :raises InvalidArgumentError: a bad ``page_size`` or ``freelist``.

        Runtime complexity: O(F) to load a freelist of F ids, or the walk's cost.
        """
        self = object.__new__(cls)
        self._path = os.fspath(path)
        if page_size is not None and (
            type(page_size) is not int
            or not 1024 <= page_size <= 65536
            or page_size & (page_size - 1)
        ):
            raise InvalidArgumentError(
                f"page_size must be a power of two in [1024, 65536], got {page_size!r}"
            )
        if isinstance(freelist, str):
            if freelist not in ("hashmap", "array"):
                raise InvalidArgumentError(
                    f"freelist must be 'hashmap', 'array' or a Freelist, got {freelist!r}"
                )
            fl: Freelist = HashmapFreelist() if freelist == "hashmap" else ArrayFreelist()
        elif isinstance(freelist, Freelist):
            fl = freelist
        else:
            raise InvalidArgumentError(
                f"freelist must be 'hashmap', 'array' or a Freelist, got {type(freelist).__name__}"
            )
        self._fl = fl
        self._sync = bool(sync_freelist)
        self._readonly = bool(readonly)
        self._lock = threading.RLock()
        self._writer = None
        self._readers = set()
        self._closed = False
        self._fd = -1
        self._mm = None
        flags = os.O_RDONLY if readonly else os.O_RDWR | (os.O_CREAT if create else 0)
        try:
            self._fd = os.open(self._path, flags | getattr(os, "O_CLOEXEC", 0), 0o644)
        except FileNotFoundError as e:
            raise PageFileError(self._path, "no such file (create=False or read-only)") from e
        except OSError as e:
            raise FileIOError(self._path, f"cannot open: {e.strerror}") from e
        try:
            self._take_lock(timeout)
            size = self._file_size()
            if size == 0 and not readonly:
                self._initialise(page_size or 4096)
            self._load(page_size, reachable)
        except BaseException:
            self._release_fd()
            raise
        return self

    def _take_lock(self, timeout: float | None) -> None:
        how = (fcntl.LOCK_SH if self._readonly else fcntl.LOCK_EX) | fcntl.LOCK_NB
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
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
        self._pwrite(b"".join(pages), 0)
        self._sync_fd()

    def _read_metas(
        self, buf: bytes, size: int, want: int | None
    ) -> tuple[int, list[tuple[int, Meta | None, str]]]:
        """Find the page size and judge both metas: [(page, meta or None, problem)]."""
        first, _stored = Meta.unpack(buf, 0)
        candidates = [first.page_size] if first.magic == MAGIC else []
        candidates += [1 << k for k in range(10, 17) if (1 << k) not in candidates]
        best: tuple[int, list[tuple[int, Meta | None, str]]] | None = None
        for ps in candidates:
            if 2 * ps > size:
                continue
            metas = [self._judge(buf, p * ps, ps, size) for p in (0, 1)]
            if any(m for _, m, _ in metas):
                best = (ps, metas)
                break
            if best is None:
                best = (ps, metas)
        if best is None:
            raise FileFormatError(self._path, f"too short to be a page file ({size} bytes)")
        ps, metas = best
        if want is not None and any(m for _, m, _ in metas) and ps != want:
            raise PageSizeMismatchError(self._path, f"page size is {ps}, not {want}")
        return ps, metas

    def _judge(self, buf: bytes, offset: int, ps: int, size: int) -> tuple[int, Meta | None, str]:
        page = offset // ps
        meta, stored = Meta.unpack(buf, offset)
        if meta.magic != MAGIC:
            return page, None, f"meta page {page}: bad magic {meta.magic:#x}"
        if meta.version != VERSION:
            return page, None, f"meta page {page}: unsupported version {meta.version}"
        if meta.checksum() != stored:
            return page, None, f"meta page {page}: checksum mismatch"
        if meta.page_size != ps:
            return page, None, f"meta page {page}: page size {meta.page_size} differs"
        if not meta.hwm >= 2 or meta.hwm * ps > size:
            return page, None, f"meta page {page}: high-water mark {meta.hwm} outside the file"
        if meta.freelist != NO_FREELIST and not 2 <= meta.freelist < meta.hwm:
            return page, None, f"meta page {page}: freelist page {meta.freelist} out of range"
        return page, meta, ""

    def _load(self, want_page_size: int | None, reachable: Reachable | None) -> None:
        size = self._file_size()
        head = self._pread(min(size, 2 * 65536 + 4096), 0)
        if len(head) < 1024:
            raise FileFormatError(self._path, f"too short to be a page file ({size} bytes)")
        ps, metas = self._read_metas(head, size, want_page_size)
        valid = [m for _, m, _ in metas if m is not None]
        if not valid:
            problems = "; ".join(p for _, _, p in metas)
            raise FileFormatError(self._path, f"no valid meta page: {problems}")
        self._page_size = ps
        self._meta = max(valid, key=lambda m: m.txid)
        self._map(size)
        self._load_freelist(reachable)

    def _load_freelist(self, reachable: Reachable | None) -> None:
        meta = self._meta
        if meta.freelist != NO_FREELIST:
            try:
                ids = self._freelist_ids(meta)
            except FreelistError as e:
                raise FileFormatError(self._path, f"bad freelist page {meta.freelist}: {e}") from e
            ids_list = sorted(ids)
            if ids_list and (ids_list[0] < 2 or ids_list[-1] >= meta.hwm):
                raise FileFormatError(
                    self._path, f"freelist page {meta.freelist} lists ids outside [2, {meta.hwm})"
                )
            try:
                self._fl.init(ids_list)
            except FreelistError as e:
                raise FileFormatError(self._path, f"bad freelist page {meta.freelist}: {e}") from e
            return
        if reachable is None:
            raise ReachabilityError(
                self._path,
                "the freelist is not synced to disk (NoFreelistSync): "
                "pass reachable= to rebuild it",
            )
        self._fl.init(self._free_from_walk(reachable, meta.hwm))

    def _free_from_walk(self, reachable: Reachable, hwm: int) -> list[int]:
        used = self._mark_reachable(reachable, hwm, None)
        return [i for i in range(2, hwm) if not used[i]]

    def _mark_reachable(
        self, reachable: Reachable, hwm: int, problems: list[str] | None
    ) -> bytearray:
        """One byte per page below ``hwm``: 1 for the metas and every page the
        walk yields.  A run outside ``[2, hwm)`` raises :class:`ReachabilityError`,
        or, when ``problems`` is a list, is reported there with runs reached twice."""
        used = bytearray(hwm)
        used[0:2] = b"\1\1"
        for start, n in reachable(self):
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

    def _freelist_ids(self, meta: Meta) -> list[int]:
        ps = self._page_size
        mm = self._require_map()
        hdr = PageHeader.unpack(mm, meta.freelist * ps)
        limit = min(len(mm), meta.hwm * ps, (meta.freelist + 1 + hdr.overflow) * ps)
        return unpack_freelist_ids(mm, meta.freelist * ps, limit).tolist()

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

    def _pwrite(self, data: bytes, offset: int) -> None:
        try:
            view = memoryview(data)
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
        except (OSError, ValueError) as e:
            raise FileIOError(self._path, f"cannot map {size} bytes: {e}") from e

    def _require_map(self) -> mmap.mmap:
        if self._mm is None:
            raise FileFormatError(self._path, "empty file")
        return self._mm

    def _ensure_size(self, pages: int) -> None:
        """Grow the file (and its map) to hold ``pages`` pages, in bbolt-like steps."""
        need = pages * self._page_size
        have = self._file_size()
        if need <= have:
            if self._mm is None or len(self._mm) < have:
                self._map(have)
            return
        size = max(_MIN_SIZE, have)
        while size < need:
            size = size * 2 if size < _MAX_STEP else size + _MAX_STEP
        try:
            os.ftruncate(self._fd, size)
        except OSError as e:
            raise FileIOError(self._path, f"cannot grow to {size} bytes: {e.strerror}") from e
        # Readers copy bytes out of the map and hold no export, so replacing the
        # map is safe; the old one is unmapped when its last user drops it.
        self._map(size)

    def _read_pages(self, pgid: int, n: int) -> bytes:
        ps = self._page_size
        end = (pgid + n) * ps
        mm = self._mm
        if mm is None or len(mm) < end:
            self._ensure_size(pgid + n)
            mm = self._require_map()
        return mm[pgid * ps : end]

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
        :raises TransactionError: a writer is already open.

        Runtime complexity: O(1) for a reader; a writer's release costs as
        :meth:`~freelist.Freelist.release_pending`.
        """
        with self._lock:
            self._check_open()
            if writable:
                if self._readonly:
                    raise ReadOnlyError(self._path, "opened read-only; no write transactions")
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
        if it raises.

        Runtime complexity: as :meth:`begin` and :meth:`Transaction.commit`.
        """
        tx = self.begin(True)
        try:
            yield tx
        except BaseException:
            if not tx.closed:
                tx.rollback()
            raise
        if not tx.closed:
            tx.commit()

    @contextmanager
    def view(self) -> Iterator[Transaction]:
        """A read transaction, closed when the block ends.

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

    def _commit(self, tx: Transaction) -> None:
        with self._lock:
            self._check_open()
            fl = self._fl
            txid = tx.txid
            old = self._meta
            ps = self._page_size
            try:
                if old.freelist != NO_FREELIST:
                    hdr = PageHeader.unpack(self._require_map(), old.freelist * ps)
                    fl.free(txid, old.freelist, hdr.overflow + 1)
                freelist_pgid = NO_FREELIST
                if self._sync:
                    pages = -(-freelist_page_size(fl.count) // ps)
                    freelist_pgid = tx._allocate_pages(pages)
                    data = pack_freelist_page(freelist_pgid, fl.page_id_array(), ps)
                    self._pwrite(data, freelist_pgid * ps)
                self._sync_fd()
                meta = Meta(ps, tx._root, freelist_pgid, tx._hwm, txid)
                self._pwrite(meta.pack_page(ps), (txid % 2) * ps)
                self._sync_fd()
            except BaseException:
                fl.rollback(txid)
                raise
            self._meta = meta

    # ------------------------------------------------------------------
    # Whole-file operations.

    def stats(self) -> PageFileStats:
        """Page size, txid, high-water mark, free and pending pages, runs, file size.

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
        freelist page (type, ids sorted, unique, inside ``[2, hwm)``, not
        overlapping the meta pages, its own pages or the root), that it lists
        exactly the free and pending pages the freelist holds, and with
        ``reachable``: that reachable and free pages are disjoint and together
        cover every page below the high-water mark.

        :raises ClosedError: the file is closed.

        Runtime complexity: O(hwm) with a walk, O(F) otherwise.
        """
        with self._lock:
            self._check_open()
            problems: list[str] = []
            meta = self._meta
            ps = self._page_size
            head = self._pread(2 * ps, 0)
            for _page, m, problem in (
                self._judge(head, p * ps, ps, self._file_size()) for p in (0, 1)
            ):
                if m is None:
                    problems.append(problem)
            if meta.root and not 2 <= meta.root < meta.hwm:
                problems.append(f"root page {meta.root} outside [2, {meta.hwm})")
            own: set[int] = set()
            if meta.freelist != NO_FREELIST:
                try:
                    hdr = PageHeader.unpack(self._require_map(), meta.freelist * ps)
                    own = set(range(meta.freelist, meta.freelist + hdr.overflow + 1))
                    ids = self._freelist_ids(meta)
                except FreelistError as e:
                    problems.append(f"freelist page {meta.freelist}: {e}")
                    ids = []
                if any(a >= b for a, b in itertools.pairwise(ids)):
                    problems.append("freelist ids are not sorted and unique")
                bad = [i for i in ids if not 2 <= i < meta.hwm]
                if bad:
                    problems.append(f"freelist ids outside [2, {meta.hwm}): {bad[:5]}")
                if own & set(ids):
                    problems.append("the freelist lists its own pages")
                if meta.root and meta.root in set(ids):
                    problems.append(f"the freelist lists the root page {meta.root}")
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

    def close(self) -> None:
        """Close the file and release its lock.  Calling it twice is harmless.

        :raises TransactionError: a transaction is still open (finish it first).

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
        if self._fd >= 0:
            try:
                os.close(self._fd)  # also drops the flock
            finally:
                self._fd = -1

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(self._path, "the file is closed")

    def __enter__(self) -> PageFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"txid={self._meta.txid} hwm={self._meta.hwm}"
        return f"PageFile({self._path!r}, {state})"


class Transaction:
    """A read or write transaction of a :class:`PageFile` (from :meth:`PageFile.begin`)."""

    def __init__(self, pf: PageFile, writable: bool, meta: Meta) -> None:
        self._pf = pf
        self.writable = writable
        self.txid = meta.txid + 1 if writable else meta.txid
        self._root = meta.root
        self._hwm = meta.hwm
        self._allocated: dict[int, int] = {}
        self.closed = False

    def __repr__(self) -> str:
        kind = "write" if self.writable else "read"
        return f"<{kind} transaction {self.txid}{' closed' if self.closed else ''}>"

    def _check(self, write: bool = False) -> None:
        if self.closed:
            raise ClosedError(self._pf.path, f"transaction {self.txid} is closed")
        self._pf._check_open()
        if write and not self.writable:
            raise ReadOnlyError(self._pf.path, "write in a read transaction")

    def _check_pages(self, pgid: int, n: int) -> None:
        if type(pgid) is not int or type(n) is not int:
            raise PageRangeError(
                self._pf.path, f"page id and count must be ints, got {pgid!r}, {n!r}"
            )
        if n < 1:
            raise PageRangeError(self._pf.path, f"page count must be at least 1, got {n}")
        if pgid < 2:
            raise PageRangeError(self._pf.path, f"page {pgid} is a meta page")
        if pgid + n > self._hwm:
            raise PageRangeError(
                self._pf.path, f"pages {pgid}..{pgid + n - 1} pass the high-water mark {self._hwm}"
            )

    @property
    def root(self) -> int:
        """The root page id stored in the meta (0: none); set it in a writer.

        Runtime complexity: O(1).
        """
        return self._root

    @root.setter
    def root(self, pgid: int) -> None:
        self._check(write=True)
        if pgid != 0:
            self._check_pages(pgid, 1)
        self._root = pgid

    @property
    def hwm(self) -> int:
        """The high-water mark this transaction sees (grows as a writer allocates).

        Runtime complexity: O(1).
        """
        return self._hwm

    def _allocate_pages(self, n: int) -> int:
        pf = self._pf
        pgid = pf._fl.allocate(self.txid, n)
        if not pgid:
            pgid = self._hwm
            pf._ensure_size(pgid + n)
            self._hwm += n
        self._allocated[pgid] = n
        return pgid

    def allocate(self, n: int = 1) -> int:
        """Allocate ``n`` contiguous pages; return the first id.

        From the freelist when it holds a run of ``n``, else by growing the
        file at the high-water mark.

        :raises ReadOnlyError: in a read transaction.
        :raises ClosedError: the transaction or file is closed.
        :raises InvalidArgumentError: ``n`` is not an int >= 1.
        :raises FileIOError: the file could not grow.

        Runtime complexity: the freelist's allocate, plus growing the file.
        """
        self._check(write=True)
        if type(n) is not int or n < 1:
            raise InvalidArgumentError(f"n must be an int >= 1, got {n!r}")
        with self._pf._lock:
            return self._allocate_pages(n)

    def write(self, pgid: int, data: bytes) -> None:
        """Write ``data`` at the start of the run ``pgid`` allocated in this transaction.

        Only pages allocated by this transaction can be written, so nothing a
        committed snapshot can see is ever overwritten.

        :raises ReadOnlyError: in a read transaction.
        :raises NotAllocatedError: ``pgid`` does not start a run this transaction allocated.
        :raises DataTooLargeError: ``data`` is longer than the run.
        :raises FileIOError: the write failed.

        Runtime complexity: O(len(data)).
        """
        self._check(write=True)
        n = self._allocated.get(pgid)
        if n is None:
            raise NotAllocatedError(
                self._pf.path, f"page {pgid} was not allocated by transaction {self.txid}"
            )
        size = n * self._pf.page_size
        if len(data) > size:
            raise DataTooLargeError(
                self._pf.path, f"{len(data)} bytes do not fit in {n} page(s) ({size} bytes)"
            )
        self._pf._pwrite(bytes(data), pgid * self._pf.page_size)

    def read(self, pgid: int, n: int = 1) -> bytes:
        """The bytes of pages ``pgid .. pgid+n-1`` (a copy).

        :raises PageRangeError: a meta page or pages past the high-water mark.
        :raises ClosedError: the transaction or file is closed.

        Runtime complexity: O(n * page_size).
        """
        self._check()
        self._check_pages(pgid, n)
        with self._pf._lock:
            return self._pf._read_pages(pgid, n)

    def free(self, pgid: int, n: int = 1) -> None:
        """Free pages ``pgid .. pgid+n-1``: pending until no reader can see them.

        :raises ReadOnlyError: in a read transaction.
        :raises PageRangeError: a meta page or pages past the high-water mark.
        :raises DoubleFreeError: a page is already free or pending.

        Runtime complexity: the freelist's free.
        """
        self._check(write=True)
        self._check_pages(pgid, n)
        with self._pf._lock:
            self._pf._fl.free(self.txid, pgid, n)
            self._allocated.pop(pgid, None)

    def commit(self) -> None:
        """Commit: data, freelist page, fsync, meta page, fsync.

        :raises ReadOnlyError: in a read transaction (use :meth:`rollback`).
        :raises FileIOError: a write or sync failed; the transaction is rolled back.

        Runtime complexity: O(F) to write a synced freelist of F ids (a copy of
        the sorted id array, no sort), plus the I/O.
        """
        self._check(write=True)
        try:
            self._pf._commit(self)
        finally:
            self.closed = True
            self._pf._end(self)

    def rollback(self) -> None:
        """End the transaction; a writer's allocations and frees are undone.

        Calling it on a closed transaction is harmless.

        Runtime complexity: the freelist's rollback.
        """
        if self.closed:
            return
        self.closed = True
        if self.writable:
            with self._pf._lock:
                self._pf._fl.rollback(self.txid)
        self._pf._end(self)

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        if self.closed:
            return
        if exc_type is None and self.writable:
            self.commit()
        else:
            self.rollback()
