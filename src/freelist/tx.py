"""Transactions of a page file (bbolt's ``tx.go``): reads, writes, and the commit.

A :class:`Transaction` owns its commit.  The page file offers it a small named
surface, :class:`TxHost` (the lock, the file, the freelist, the committed meta
and its page, the pages the stored freelist occupies, the format commits
write, the shrink bookkeeping (:class:`Shrinking`), and five calls back: ``check_open``,
``verify_size``, ``publish``, ``fail`` and ``end``); a transaction touches
nothing else of the file.

Commit protocol (the same as bbolt's):

1. the caller has written its data pages (only pages it allocated in this
   transaction, so nothing a committed meta points at is overwritten);
2. the freelist format frees the pages of the stored freelist it no longer
   needs (pending) and writes the new one into freshly allocated pages (the
   full list for bbolt's page, this transaction's changes for the log);
3. ``fdatasync``;
4. the new meta (txid, root, freelist field, high-water mark, checksum) is
   written to the meta page that does not hold the meta the file stands on
   (page ``txid % 2`` as in bbolt, unless the metas sit elsewhere or the open
   fell back to the older one: the newest acknowledged meta is never
   overwritten); ``fdatasync``.

A crash before step 4 completes leaves the previous meta the newest valid one;
the pages of the lost transaction are simply free again.  A torn meta page fails
its checksum, and the other meta (one commit older) wins.

Shrinking (``PageFile.open(..., shrink=True)``, the default) adds to this:

* before step 2, when the free pages (not pending: no reader can see them) at
  the top of the file form a run ending at the high-water mark, and cutting it
  off would let the file shrink (:func:`~freelist._fileio.shrink_limit`), the
  run leaves the freelist and the high-water mark drops to its start, so the
  freelist written in step 2 does not list it and the meta of step 4 carries
  the lower mark;
* after step 4 (the new meta durable), the same meta is also written to the
  other meta page and synced, so that both metas fit in the shorter file (a
  damaged newest meta falls back to a copy of itself, never to an older meta
  whose pages would pass the end of the file);
* then the map and the file are cut to :func:`~freelist._fileio.kept_size` of
  the pages in use.

A kill between step 4 and the cut leaves a file longer than its high-water
mark (with both metas inside it), which opens as any file does; the first commit
after opening cuts it.  Readers are never touched: the pages cut off were free,
not pending, so no open snapshot reaches them, and every byte a reader got is a
copy.
"""

from __future__ import annotations

import functools
import threading
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from . import meta as metas
from ._fileio import FileIO, kept_size, shrink_limit
from .errors import (
    ClosedError,
    DataTooLargeError,
    DoubleFreeError,
    FileDoubleFreeError,
    FreelistError,
    InvalidTypeError,
    NotAllocatedError,
    PageFileArgumentError,
    PageFileTypeError,
    PageRangeError,
    ReadOnlyError,
)
from .layout import Meta
from .persist import Commit, FreelistFormat, Run
from .protocol import Freelist
from .runs import MAX_ID

__all__ = ["Shrinking", "TailMiss", "Transaction", "TxHost", "as_int"]


def as_int(io: FileIO, value: object, what: str) -> int:
    """``value`` as an int (anything whose ``__index__`` returns an int, but
    not bool), or a :class:`~freelist.PageFileTypeError` naming the file.

    Runtime complexity: O(1).
    """
    if type(value) is int:
        return value
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        raise io.error(PageFileTypeError, f"{what} must be an int, not {type(value).__name__}")
    try:
        out = type(value).__index__(value)  # type: ignore[attr-defined]
    except (TypeError, ValueError, InvalidTypeError) as e:
        raise io.error(PageFileTypeError, f"{what}: __index__ failed: {e}") from None
    if type(out) is not int:
        raise io.error(
            PageFileTypeError,
            f"{what}: {type(value).__name__}.__index__ returned {type(out).__name__}, not int",
        )
    return out


class TailMiss(NamedTuple):
    """What stopped the last free-tail scan that found too little (see
    :meth:`Transaction._drop_free_tail`): while nothing it names changes,
    the next commit need not scan again."""

    hwm: int  # the high-water mark scanned
    size: int  # the file size then
    blocker: int  # the highest page under the mark that was not free
    in_use: bool  # the blocker was in use (else pending)
    retry: int  # a pending blocker: the txid from which to look again
    backoff: int  # commits waited before that retry (1, 2, 4 ... 64)


@dataclass(slots=True)
class Shrinking:
    """A page file's shrink bookkeeping (``PageFile.open(shrink=...)``)."""

    #: Give the free tail back at commit.
    enabled: bool
    #: The file may be longer than its metas need: check at the next commit.
    trim_check: bool = True
    #: Times the file was cut since it was opened.
    shrinks: int = 0
    #: Bytes cut off since it was opened.
    given_back: int = 0
    #: What stopped the last free-tail scan that found too little (None: nothing).
    miss: TailMiss | None = None


class TxHost(Protocol):
    """What a page file offers its transactions."""

    io: FileIO
    lock: threading.RLock
    freelist: Freelist
    meta: Meta
    meta_page: int  # the meta page holding ``meta``; a commit writes the other one
    owned: list[Run]  # the runs the committed freelist occupies, sorted
    writing: FreelistFormat
    shrinking: Shrinking

    def check_open(self) -> None:
        """Raise :class:`~freelist.ClosedError` when the file is closed."""
        ...

    def verify_size(self) -> None:
        """Raise :class:`~freelist.FileTooShortError` when the file no longer
        holds the meta's pages (truncated by another process)."""
        ...

    def publish(self, meta: Meta, page: int, owned: list[Run], freelist_bytes: int) -> None:
        """Record a durable commit, the meta page it went to (and the bytes
        its freelist took)."""
        ...

    def fail(self, reason: str) -> None:
        """Refuse further writers (a commit failed while writing its meta)."""
        ...

    def end(self, tx: Transaction) -> None:
        """Forget a finished transaction."""
        ...


def owns(runs: list[Run], pgid: int, n: int) -> bool:
    """Whether ``pgid .. pgid+n-1`` overlaps one of ``runs`` (sorted, disjoint).

    Runtime complexity: O(log len(runs)).
    """
    i = bisect_right(runs, (pgid + n - 1, 1 << 64))
    return i > 0 and runs[i - 1][0] + runs[i - 1][1] > pgid


@functools.lru_cache(maxsize=16)
def _highest_mark(size: int, ps: int) -> int:
    """The highest high-water mark at which a file of ``size`` bytes is cut
    (:func:`~freelist._fileio.shrink_limit` of it is below ``size``); 0 when
    none is.

    Runtime complexity: O(log(size / ps)), then O(1) from the cache.
    """
    lo, hi = 2, max(2, size // ps)
    if shrink_limit(lo * ps, ps) >= size:
        return 0
    while hi - lo > 1:  # limit(lo) < size, and limit(hi) >= size (hi pages fill the file)
        mid = (lo + hi) // 2
        if shrink_limit(mid * ps, ps) < size:
            lo = mid
        else:
            hi = mid
    return lo


class Transaction:
    """A read or write transaction of a :class:`~freelist.PageFile`.

    Get one from :meth:`PageFile.begin <freelist.PageFile.begin>`,
    :meth:`~freelist.PageFile.update` or :meth:`~freelist.PageFile.view`; use
    it as a context manager (a writer commits when the block ends normally,
    anything else rolls back).
    """

    def __init__(self, host: TxHost, writable: bool) -> None:
        """Not for direct use: :meth:`PageFile.begin <freelist.PageFile.begin>`
        registers the transaction.

        Runtime complexity: O(1).
        """
        meta = host.meta
        self._host = host
        self._writable = bool(writable)
        self._txid = meta.txid + 1 if writable else meta.txid
        self._root = meta.root
        self._hwm = meta.hwm
        self._allocated: dict[int, int] = {}
        self._taken: list[Run] = []  # runs taken from the free set, for the log
        self._freed: list[Run] = []  # runs freed, for the log
        self._closed = False
        self._size_checked = False
        self._fit = False  # shrink_to_fit(): drop any free tail, cut with no slack

    def __repr__(self) -> str:
        """Kind, txid and whether it is closed."""
        kind = "write" if self._writable else "read"
        return f"<{kind} transaction {self._txid}{' closed' if self._closed else ''}>"

    @property
    def txid(self) -> int:
        """The transaction id: a reader's snapshot, or the last commit's + 1 for a writer."""
        return self._txid

    @property
    def writable(self) -> bool:
        """Whether this is a write transaction."""
        return self._writable

    @property
    def closed(self) -> bool:
        """Whether the transaction has committed or rolled back."""
        return self._closed

    def _check(self, write: bool = False) -> None:
        io = self._host.io
        if self._closed:
            raise io.error(ClosedError, f"transaction {self._txid} is closed")
        self._host.check_open()
        if write and not self._writable:
            raise io.error(ReadOnlyError, "write in a read transaction")

    def _check_pages(self, pgid: object, n: object) -> tuple[int, int]:
        io = self._host.io
        p = pgid if type(pgid) is int else as_int(io, pgid, "page id")
        k = n if type(n) is int else as_int(io, n, "page count")
        if k < 1:
            raise io.error(PageRangeError, f"page count must be at least 1, got {k}")
        if 0 <= p < 2:
            raise io.error(PageRangeError, f"page {p} is a meta page")
        if p < 0:
            raise io.error(PageRangeError, f"page id {p} is negative")
        if p + k > self._hwm:
            raise io.error(
                PageRangeError, f"pages {p}..{p + k - 1} pass the high-water mark {self._hwm}"
            )
        return p, k

    def _check_root(self, root: int) -> None:
        """The root must be a page in use: not free, pending or the freelist's."""
        host = self._host
        if not root:
            return
        mine = owns(host.owned, root, 1)
        if mine or host.freelist.freed(root):
            what = "the freelist's own page" if mine else "free or pending"
            raise host.io.error(NotAllocatedError, f"root page {root} is {what}, not a page in use")

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
        pgid = pgid if type(pgid) is int else as_int(self._host.io, pgid, "root")
        if pgid != 0:
            self._check_pages(pgid, 1)
            with self._host.lock:
                self._check_root(pgid)
        self._root = pgid

    @property
    def hwm(self) -> int:
        """The high-water mark this transaction sees (grows as a writer allocates)."""
        return self._hwm

    def shrink_to_fit(self) -> None:
        """Make this commit drop the whole free tail, however short, and cut
        the file to exactly the pages both metas use (no slack, no
        hysteresis): for a tool that has just packed the file.  Nothing
        happens on a file opened with ``shrink=False``.

        :raises ReadOnlyError: in a read transaction.
        :raises ClosedError: the transaction or file is closed.

        Runtime complexity: O(1); the commit costs as with shrinking.
        """
        self._check(write=True)
        self._fit = True

    def _allocate_pages(self, n: int) -> int:
        host = self._host
        pgid = host.freelist.allocate(self._txid, n)
        if pgid:
            self._taken.append((pgid, n))
        else:
            pgid = self._hwm
            host.io.ensure_size((pgid + n) * host.meta.page_size)
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
        :raises PageFileArgumentError: ``n < 1`` or ``n`` past 2**64-1.
        :raises FileIOError: the file could not grow (it keeps its size).

        Runtime complexity: the freelist's allocate, plus growing the file.
        """
        self._check(write=True)
        io = self._host.io
        n = n if type(n) is int else as_int(io, n, "n")
        if not 1 <= n <= MAX_ID:
            raise io.error(PageFileArgumentError, f"n must be in [1, 2**64-1], got {n}")
        with self._host.lock:
            return self._allocate_pages(n)

    def write(self, pgid: int, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` at the start of the run ``pgid`` allocated in this transaction.

        ``data`` is any bytes-like object; its size in bytes (not in items)
        must fit the run.  Only pages allocated by this transaction can be
        written, so nothing a committed snapshot can see is ever overwritten.

        :raises ReadOnlyError: in a read transaction.
        :raises ClosedError: the transaction or file is closed.
        :raises PageFileTypeError: ``pgid`` is not an int, or ``data`` is not
            bytes-like (or is a released buffer, a closed mmap).
        :raises NotAllocatedError: ``pgid`` does not start a run this transaction allocated.
        :raises DataTooLargeError: ``data`` is longer than the run.
        :raises FileIOError: the write failed.

        Runtime complexity: O(len(data)).
        """
        self._check(write=True)
        io = self._host.io
        pgid = pgid if type(pgid) is int else as_int(io, pgid, "page id")
        n = self._allocated.get(pgid)
        if n is None:
            raise io.error(
                NotAllocatedError,
                f"page {pgid} does not start a run transaction {self._txid} allocated",
            )
        try:
            view = memoryview(data)
        except TypeError:
            raise io.error(
                PageFileTypeError, f"data must be bytes-like, not {type(data).__name__}"
            ) from None
        except ValueError as e:  # a released memoryview, a closed mmap
            raise io.error(PageFileTypeError, f"data is not readable: {e}") from None
        with view:
            ps = self._host.meta.page_size
            size = n * ps
            if view.nbytes > size:
                raise io.error(
                    DataTooLargeError,
                    f"{view.nbytes} bytes do not fit in {n} page(s) ({size} bytes)",
                )
            body = view if view.c_contiguous else memoryview(view.tobytes())
            io.pwrite(body, pgid * ps)

    def read(self, pgid: int, n: int = 1) -> bytes:
        """The bytes of pages ``pgid .. pgid+n-1`` (a copy).

        :raises PageRangeError: a meta page, a negative id, or pages past the
            high-water mark this transaction sees.
        :raises PageFileTypeError: ``pgid`` or ``n`` is not an int.
        :raises ClosedError: the transaction or file is closed.
        :raises FileTooShortError: another process truncated the file under the
            meta's pages (checked at the transaction's first read: a mapped
            read there would die of SIGBUS).
        :raises FileIOError: the pages are past the end of the file.

        Runtime complexity: O(n * page_size).
        """
        self._check()
        p, k = self._check_pages(pgid, n)
        host = self._host
        ps = host.meta.page_size
        with host.lock:
            if not self._size_checked:
                host.verify_size()
                self._size_checked = True
            return host.io.read(p * ps, k * ps)

    def free(self, pgid: int, n: int = 1) -> None:
        """Free pages ``pgid .. pgid+n-1``: pending until no reader can see them.

        :raises ReadOnlyError: in a read transaction.
        :raises ClosedError: the transaction or file is closed.
        :raises PageRangeError: a meta page or pages past the high-water mark.
        :raises PageFileTypeError: ``pgid`` or ``n`` is not an int.
        :raises NotAllocatedError: the run includes the freelist's own pages
            (the page file frees those itself at commit).
        :raises FileDoubleFreeError: a page is already free or pending.

        Runtime complexity: the freelist's free.
        """
        self._check(write=True)
        p, k = self._check_pages(pgid, n)
        host = self._host
        with host.lock:
            if owns(host.owned, p, k):
                runs = ", ".join(f"{s}..{s + m - 1}" for s, m in host.owned)
                raise host.io.error(
                    NotAllocatedError,
                    f"pages {p}..{p + k - 1} include the freelist's own page(s) {runs}, "
                    "which the page file frees itself",
                )
            try:
                host.freelist.free(self._txid, p, k)
            except DoubleFreeError as e:
                raise host.io.error(FileDoubleFreeError, str(e)) from None
            self._freed.append((p, k))
            self._allocated.pop(p, None)

    def commit(self) -> None:
        """Commit: data, freelist, fsync, meta page, fsync.

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
        host = self._host
        with host.lock:
            self._check_root(self._root)
            try:
                self._write_commit()
            finally:
                self._closed = True
                host.end(self)

    def _write_commit(self) -> None:
        """Steps 2-4 of the protocol; on failure the freelist is rolled back."""
        host = self._host
        fl, io, txid = host.freelist, host.io, self._txid
        prev = host.meta
        ps = prev.page_size
        meta_started = False
        tail = (0, 0)
        fmt = host.writing
        shrinking = host.shrinking
        try:
            if shrinking.enabled:
                tail = self._drop_free_tail()
            c = Commit(
                io=io,
                fl=fl,
                txid=txid,
                page_size=ps,
                allocate=self._allocate_pages,
                owned=host.owned,
                taken=self._taken,
                freed=self._freed,
                rewrite=bool(tail[1]),
            )
            field, owned, nbytes = fmt.write(c)
            io.sync()
            meta = Meta(ps, self._root, field, self._hwm, txid, fmt.flags, 0, version=fmt.version)
            meta_started = True
            # The page not holding the meta the file stands on: never the
            # newest acknowledged state (see meta.write).
            page = 1 - host.meta_page
            metas.write(io, meta, page)
            io.sync()
            if fmt.converts(host.meta):
                # The meta's version changed (bbolt's and the log's): leave no
                # meta of the old one (see the file-format docs).
                metas.write(io, meta, 1 - page)
                io.sync()
        except BaseException as e:
            fl.rollback(txid)
            if tail[1]:
                # The dropped tail is free again: the durable meta still covers it.
                fl.init(sorted([*fl.free_page_ids(), *range(tail[0], tail[0] + tail[1])]))
            if meta_started:
                # The meta may be on disk (or reach it later): this process no
                # longer knows which state is durable, so it stops writing.
                host.fail(
                    f"the commit of transaction {txid} failed while writing its meta "
                    f"page ({type(e).__name__})"
                )
            raise
        host.publish(meta, page, owned, nbytes)
        if shrinking.enabled and (tail[1] or shrinking.trim_check or self._fit):
            self._trim(prev, meta, copied=bool(tail[1]) and self._copy_meta(meta, 1 - page))

    def _drop_free_tail(self) -> tuple[int, int]:
        """Take the free run that ends at the high-water mark off the freelist
        and lower the mark to its start, when that lets the file shrink (see
        :func:`~freelist._fileio.shrink_limit`); return the run dropped
        (``(start, 0)``: none).

        Runtime complexity: O(1) gates (the free count against the run a cut
        needs, then two ``freed`` probes); when they pass, the freelist's
        ``free_spans`` (not again while the page that stopped the last scan
        stays in use; after 1, 2, 4 ... 64 commits while it stays pending)
        and, to drop the run, O(F) to rebuild the free set.
        """
        host = self._host
        fl, hwm = host.freelist, self._hwm
        size = host.io.size_hint()  # a stale size only makes a drop without a cut
        mark = hwm - 1 if self._fit else _highest_mark(size, host.meta.page_size)
        need = hwm - mark
        if (
            not mark
            or need < 1
            or fl.free_count < need
            or not fl.freed(hwm - 1)
            or not fl.freed(hwm - need)
        ):
            return (hwm, 0)
        # After a scan that found too little: while the page that stopped it is
        # still in use, nothing can have changed; a pending one is looked at
        # again after 1, 2, 4 ... 64 commits (a long reader can keep it
        # pending), or as soon as nothing is pending.
        backoff = 0
        shrinking = host.shrinking
        miss = shrinking.miss
        if miss is not None and miss.hwm == hwm and miss.size == size and not self._fit:
            backoff = miss.backoff
            if miss.in_use and not fl.freed(miss.blocker):
                return (hwm, 0)
            if not miss.in_use and self._txid < miss.retry and fl.pending_count:
                return (hwm, 0)
        spans = fl.free_spans()
        start, n = spans[-1] if spans else (hwm, 0)
        if start + n != hwm or n < need:
            # The highest page under the mark that is not free: pending or in use.
            blocker = hwm - 1 if start + n != hwm else start - 1
            in_use = not fl.freed(blocker)
            backoff = 0 if in_use else min(64, max(1, 2 * backoff))
            shrinking.miss = TailMiss(hwm, size, blocker, in_use, self._txid + backoff, backoff)
            return (hwm, 0)
        shrinking.miss = None
        ids = fl.free_page_ids()
        del ids[len(ids) - n :]
        fl.init(ids)
        self._hwm = start
        return (start, n)

    def _copy_meta(self, meta: Meta, page: int) -> bool:
        """Write ``meta`` to the other meta page too (its header naming that
        page) and sync; whether that worked.  Done after a commit that lowered
        the high-water mark, before the file is cut: the older meta's mark may
        pass the new end of the file.

        Runtime complexity: O(page_size) plus the sync.
        """
        io = self._host.io
        try:
            metas.write(io, meta, page)
            io.sync()
        except FreelistError:
            return False  # the commit is durable; the file is cut at a later commit
        return True

    def _trim(self, prev: Meta, meta: Meta, *, copied: bool) -> None:
        """After a durable commit: cut the file to
        :func:`~freelist._fileio.kept_size` of the pages both metas on disk
        use, when it is longer than :func:`~freelist._fileio.shrink_limit`.  A
        failure leaves the file as it is (the commit stands) and the cut for a
        later commit.

        Runtime complexity: O(1) plus the OS's work.
        """
        host = self._host
        io, ps = host.io, meta.page_size
        shrinking = host.shrinking
        # The other meta page holds ``prev`` unless it was just overwritten with a copy.
        used = (meta.hwm if copied else max(meta.hwm, prev.hwm)) * ps
        try:
            size = io.size()
            shrinking.trim_check = used > meta.hwm * ps  # the older meta keeps the file long
            if size > (used if self._fit else shrink_limit(used, ps)):
                keep = used if self._fit else kept_size(used, ps)
                io.shrink(keep)
                shrinking.shrinks += 1
                shrinking.given_back += size - keep
        except FreelistError:
            shrinking.trim_check = True

    def rollback(self) -> None:
        """End the transaction; a writer's allocations and frees are undone.

        Calling it on a closed transaction is harmless; the transaction is
        always closed and its slot released, even if the freelist's rollback
        fails (that error is raised after).

        Runtime complexity: the freelist's rollback.
        """
        if self._closed:
            return
        self._closed = True
        host = self._host
        try:
            if self._writable:
                with host.lock:
                    host.freelist.rollback(self._txid)
        finally:
            host.end(self)

    def __enter__(self) -> Transaction:
        """Return the transaction itself."""
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
