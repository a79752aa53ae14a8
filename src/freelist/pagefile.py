"""PageFile: a small, crash-safe, mmap-backed page file in bbolt's layout.

The file is an array of fixed-size pages.  Pages 0 and 1 are meta pages; the
others are allocated and freed through any :class:`~freelist.Freelist`.  One
write transaction at a time, any number of read transactions; each sees the
snapshot of its txid.

This module holds :class:`PageFile` and the open path; the work is split the
way bbolt splits it:

* :mod:`freelist._fileio`: descriptor, lock, map, growth, pread/pwrite/fsync
  (bbolt's ``db.go`` mmap code and ``bolt_unix.go``);
* :mod:`freelist.meta`: read, validate, choose and write the two meta pages;
* :mod:`freelist.persist`: the freelist's on-disk formats (bbolt's page, the log,
  or none), one reader/validator for open and check;
* :mod:`freelist.tx`: :class:`~freelist.Transaction` and its commit (``tx.go``);
* :mod:`freelist.check`: the consistency check (``tx_check.go``).

Every way opening a file can fail has its own exception in :mod:`freelist.errors`
(:class:`~freelist.MissingFileError`, :class:`~freelist.FileTooShortError`,
:class:`~freelist.NoValidMetaError` with :class:`~freelist.BadMagicError`,
:class:`~freelist.UnsupportedVersionError` and :class:`~freelist.MetaConflictError`,
:class:`~freelist.PageSizeMismatchError`, :class:`~freelist.FreelistPageError`);
arguments of the wrong type raise :class:`~freelist.PageFileTypeError`.  All are
:class:`~freelist.PageFileError` and carry the file's path.
"""

from __future__ import annotations

import math
import os
import threading
import weakref
from array import array
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from . import check as checking
from . import meta as metas
from . import persist, registry
from ._fileio import FileIO
from .errors import (
    ClosedError,
    FileTooShortError,
    FreelistError,
    FreelistPageError,
    InvalidPageIdsError,
    InvalidTypeError,
    PageFileArgumentError,
    PageFileTypeError,
    ReachabilityError,
    ReadOnlyError,
    TransactionError,
)
from .layout import CREATE_PAGE_SIZES, READ_PAGE_SIZES, Meta, pack_freelist_page
from .persist import FreelistFormat, Run
from .protocol import Freelist
from .runs import MAX_ID
from .tx import Shrinking, Transaction

__all__ = ["PageFile", "PageFileStats", "Reachable", "Transaction"]

#: A reachability walk: given the open file, yield the ``(start, n)`` runs in use
#: (besides the meta pages and the freelist's own pages).
Reachable = Callable[["PageFile"], Iterable[tuple[int, int]]]


class _DefaultPageSize(int):
    """4096, but distinguishable from a ``page_size=4096`` the caller passed."""


#: ``PageFile.open``'s default page size: 4096 for a new file; an existing file
#: keeps its own page size unless ``page_size`` is given explicitly.
_DEFAULT_PAGE_SIZE = _DefaultPageSize(4096)

# Freelist objects attached to an open PageFile, by id(): one may not serve two.
_IN_USE: set[int] = set()
_IN_USE_LOCK = threading.Lock()


def _detach(key: int) -> None:
    with _IN_USE_LOCK:
        _IN_USE.discard(key)


def _range(sizes: tuple[int, ...]) -> str:
    return f"a power of two in [{sizes[0]}, {sizes[-1]}]"


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
    #: Whether commits give the free tail back (``shrink=True`` on a writable file).
    shrink: bool
    #: Free pages (not pending) in the run that ends at the high-water mark:
    #: what a commit could cut off.
    free_tail: int
    #: ``free_tail`` in bytes.
    free_tail_bytes: int
    #: How many times commits have cut the file since it was opened.
    shrinks: int
    #: Bytes those cuts gave back to the file system since the file was opened.
    shrunk_bytes: int
    #: The format commits write: ``"bbolt"``, ``"log"`` or ``"none"``.
    freelist_format: str = "bbolt"
    #: Bytes the last commit of this open wrote for the freelist (0 before one).
    freelist_bytes_last: int = 0
    #: Bytes all commits since the file was opened wrote for the freelist.
    freelist_bytes_total: int = 0


class _State:
    """The open file's state; the surface its transactions use (:class:`~freelist.tx.TxHost`)."""

    def __init__(self, io: FileIO, fl: Freelist, fmt: str, shrink: bool) -> None:
        self.io = io
        self.lock = threading.RLock()
        self.freelist = fl
        self.sync = fmt != "none"
        # The first commit checks whether the file is longer than its metas need
        # (a kill between a commit and its cut leaves it so): trim_check starts set.
        self.shrinking = Shrinking(enabled=shrink and not io.readonly)
        self.writing: FreelistFormat = persist.writing(fmt)
        self.bytes_last = 0
        self.bytes_total = 0
        self.meta = Meta(0, 0, 0, 0, 0)
        self.meta_page = 0  # the meta page holding ``meta``: commits write the other
        self.owned: list[Run] = []
        self.writer: Transaction | None = None
        self.readers: set[Transaction] = set()
        self.closed = False
        self.failed = ""
        self.detach: Callable[[], object] = lambda: None

    def check_open(self) -> None:
        if self.closed:
            raise self.io.error(ClosedError, "the file is closed")

    def publish(self, meta: Meta, page: int, owned: list[Run], freelist_bytes: int) -> None:
        self.meta, self.meta_page = meta, page
        self.owned = owned
        self.writing.published()
        self.bytes_last = freelist_bytes
        self.bytes_total += freelist_bytes

    def fail(self, reason: str) -> None:
        self.failed = reason

    def verify_size(self) -> None:
        """Refuse to read the map of a file truncated under the meta's pages
        (by another process: the lock is advisory), which would die of SIGBUS."""
        meta, io = self.meta, self.io
        size = io.size()
        if size < meta.hwm * meta.page_size:
            raise io.error(
                FileTooShortError,
                f"the file was truncated to {size} bytes under its {meta.hwm} pages in use "
                f"({meta.hwm * meta.page_size} bytes); reopen it",
            )

    def end(self, tx: Transaction) -> None:
        with self.lock:
            if tx.writable:
                if self.writer is tx:
                    self.writer = None
            elif tx in self.readers:
                self.readers.discard(tx)
                self.freelist.remove_reader(tx.txid)


class PageFile:
    """A page file allocating through a :class:`~freelist.Freelist`.

    Create or open one with :meth:`PageFile.open`; use it as a context manager
    or call :meth:`close`.  Closing a file while transactions are open is a
    :class:`~freelist.TransactionError`: finish them first.
    """

    _path: str
    _state: _State

    def __init__(self) -> None:
        """Not for use: call :meth:`PageFile.open`.

        :raises InvalidTypeError: always.
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
        freelist_format: str | None = None,
        reachable: Reachable | None = None,
        timeout: float | None = None,
        readonly: bool = False,
        create: bool = True,
        shrink: bool = True,
    ) -> PageFile:
        """Open the page file at ``path``, creating it when missing.

        ``freelist`` is a registry spec (``"hashmap"``, ``"array"``,
        ``"hashmap:POLICY"``, ``"package.module:Name"``) or any object
        satisfying the :class:`~freelist.Freelist` protocol: a new one (its
        free set is replaced from the file; one with pending pages, or one
        serving another open file, is refused).  ``page_size`` is the page size
        of a new file (default 4096; a power of two from 512 to 65536); an
        existing file keeps its own (any power of two from 512 bytes to 16 MiB,
        as bbolt reads), and passing a different one explicitly is a
        :class:`~freelist.PageSizeMismatchError`.

        ``freelist_format`` is how commits store the free pages: ``"bbolt"``
        (the default: bbolt's freelist page, the full sorted list each
        commit), ``"log"`` (a checksummed chain of each commit's changes with
        periodic checkpoints, O(changes) per commit; its metas have version 3,
        which bbolt refuses) or ``"none"`` (bbolt's ``NoFreelistSync``: nothing
        written, the meta's freelist id is all ones, and the file is opened by
        rebuilding the free pages from ``reachable``, a callable that yields
        the ``(start, n)`` runs in use).  Whatever format the file has is read;
        the next commit writes the chosen one, which converts the file.  The
        format is not remembered: open a "log" file with
        ``freelist_format="log"`` to keep it one.  ``sync_freelist`` is a
        plain alias kept for compatibility: ``sync_freelist=False`` is
        ``freelist_format="none"`` (giving both, differently, is an error).

        ``timeout`` bounds the wait for the file lock (exclusive, or shared
        when ``readonly``) in seconds: None (or inf) waits forever, 0 fails at
        once.  ``create=False`` refuses to create a missing file (a
        read-only open never creates one).  ``shrink`` (default True) lets
        commits give the free pages at the end of the file back to the file
        system (see *Shrinking* below); ``shrink=False`` keeps bbolt's
        behaviour, a file that never gets shorter.  ``sync_freelist``,
        ``readonly``, ``create`` and ``shrink`` take bools only.

        Shrinking: when a commit finds the free pages (not pending) at the top
        of the file form a run that ends at the high-water mark, and the file is
        longer than growth would have made it for the pages below that run, by
        more than an eighth of what it would keep (the hysteresis: a file is not
        cut and regrown on alternate commits), it lowers the high-water mark
        and, once the new meta is durable (and copied to the other meta page,
        so that both metas fit in the shorter file), cuts the file to the pages
        in use plus an eighth (at least 32 KiB).  The file stays a valid bbolt
        file.  The library writes no mark of its own into a file, so "files this
        library creates" means every file opened writable here: an existing
        bbolt database opened with the default shrinks too (bbolt reads the
        high-water mark from the meta and grows the file again when it needs
        to); pass ``shrink=False`` to leave its size alone.  A read-only open
        never shrinks.

        A damaged freelist page (ids unsorted, repeated, outside the file, or
        naming a page in use: its own pages, the root; a header claiming more
        pages than a writer reserves for its ids) is refused; so is a
        damaged log chain (a page failing its checksum, a chain cut short, a
        record past the high-water mark), after falling back to the other
        meta when that one's freelist reads back sound.  The repair
        path: open with ``reachable=`` and the free pages are rebuilt from the
        walk instead; the damaged page stays out of use until the next commit
        writes a sound one.

        A new file is written before this returns: two metas (txids 0 and 1)
        and an empty freelist page, synced.  A file that cannot be opened is
        left as it was, and its lock is released before the error is raised.

        :raises MissingFileError: no file and ``create=False`` or ``readonly``.
        :raises FileTooShortError: shorter than two meta pages, or than the pages
            both metas say are in use.
        :raises BadMagicError: neither meta carries the magic number.
        :raises UnsupportedVersionError: both metas have another version.
        :raises MetaConflictError: valid metas at different page sizes.
        :raises NoValidMetaError: neither meta is valid (checksums, mixed faults).
        :raises PageSizeMismatchError: ``page_size`` given and not the file's.
        :raises FreelistPageError: the freelist page is out of range, of the
            wrong type, runs past the high-water mark or lists bad ids (and no
            ``reachable`` was given to rebuild it).
        :raises FileLockedError: the lock was not granted in time.
        :raises ReachabilityError: no synced freelist and no ``reachable``, or
            the walk names pages outside the file.
        :raises FileIOError: the OS refused to open, lock, read or map the file
            (a directory, no permission, ...).
        :raises PageFileArgumentError: a bad ``page_size``, ``freelist``,
            ``freelist_format`` or ``timeout`` value, or ``sync_freelist=False``
            with a ``freelist_format`` other than "none"
            (:class:`~freelist.PageFileTypeError` for a wrong type).

        Runtime complexity: O(F) to load a freelist of F ids (for the log: plus
        its records since the checkpoint, fewer bytes than the larger of the
        checkpoint and a page), or O(hwm) plus the walk's cost without one.
        """
        try:
            name = os.fsdecode(path)
        except TypeError:
            raise PageFileTypeError(
                repr(path), f"path must be a str or os.PathLike, not {type(path).__name__}"
            ) from None
        for flag, value in (
            ("sync_freelist", sync_freelist),
            ("readonly", readonly),
            ("create", create),
            ("shrink", shrink),
        ):
            if type(value) is not bool:
                raise PageFileTypeError(
                    name, f"{flag} must be True or False, not {type(value).__name__} {value!r}"
                )
        fmt = _format(name, freelist_format, sync_freelist)
        explicit = page_size is not _DEFAULT_PAGE_SIZE and page_size is not None
        if explicit and type(page_size) is not int:
            raise PageFileTypeError(
                name, f"page_size must be an int, not {type(page_size).__name__}"
            )
        if explicit and page_size not in READ_PAGE_SIZES:
            raise PageFileArgumentError(
                name, f"page_size must be {_range(READ_PAGE_SIZES)}, got {page_size!r}"
            )
        wait = _timeout(name, timeout)
        if reachable is not None and not callable(reachable):
            raise PageFileTypeError(
                name, f"reachable must be a callable, not {type(reachable).__name__}"
            )
        fl = _choose_freelist(name, freelist)
        with _IN_USE_LOCK:
            if id(fl) in _IN_USE:
                raise PageFileArgumentError(
                    name, "this freelist object serves another open PageFile"
                )
            _IN_USE.add(id(fl))
        self = object.__new__(cls)
        self._path = name
        io: FileIO | None = None
        try:
            io = FileIO(name, readonly=readonly, create=create)
            self._state = _State(io, fl, fmt, shrink)
            io.lock(wait)
            if io.size() == 0 and not readonly:
                new_size = page_size if explicit else 4096
                if new_size not in CREATE_PAGE_SIZES:
                    raise PageFileArgumentError(
                        name,
                        f"a new file's page_size must be {_range(CREATE_PAGE_SIZES)}, "
                        f"got {new_size!r}",
                    )
                _initialise(io, new_size)
            self._load(page_size if explicit else None, reachable)
        except BaseException:
            if io is not None:
                io.close()  # the map too: its duplicate descriptor holds the lock
            _detach(id(fl))
            raise
        # Detach the freelist when the file is closed, or collected unclosed.
        self._state.detach = weakref.finalize(self, _detach, id(fl))
        return self

    def _load(self, want_page_size: int | None, reachable: Reachable | None) -> None:
        st = self._state
        io = st.io
        _ps, verdicts = metas.read(io, want_page_size)
        chosen = metas.choose(io, verdicts)
        assert chosen.meta is not None
        meta = chosen.meta
        st.meta, st.meta_page = meta, chosen.page
        io.map(io.size())
        fmt = persist.reading(meta)
        stored = fmt.read(io, meta)
        if stored.errors and fmt.falls_back:
            # A damaged stored freelist of a format that falls back (the log's
            # chain): the other meta, one commit older, when its freelist
            # reads back sound (as bbolt falls back from a torn meta).
            for v in verdicts:
                other = v.meta
                if other is None or v.problem or other.txid >= meta.txid:
                    continue
                older = persist.reading(other).read(io, other)
                if not older.errors and older.ids is not None:
                    # The next commit writes the other page: the damaged one.
                    meta, stored = other, older
                    st.meta, st.meta_page = meta, v.page
        found = stored
        if stored.errors or stored.ids is None:
            if reachable is None and stored.errors:
                raise io.error(
                    FreelistPageError,
                    f"{stored.errors[0]}; open with reachable= to rebuild the free pages "
                    "from a walk of the pages in use",
                )
            if reachable is None:
                raise io.error(
                    ReachabilityError,
                    "the freelist is not synced to disk (NoFreelistSync): "
                    "pass reachable= to rebuild it",
                )
            stored = self._from_walk(reachable, stored)
        try:
            persist.load_into(st.freelist, stored, meta.hwm, page_map=not io.readonly)
        except InvalidPageIdsError as e:
            raise io.error(FreelistPageError, f"freelist page {meta.freelist}: {e}") from e
        st.owned = sorted(stored.owned)
        if stored is found:  # (a rebuild from a walk: nothing to resume)
            st.writing.resume(stored)

    def _from_walk(self, reachable: Reachable, stored: persist.Stored) -> persist.Stored:
        """The owned runs and free ids (as a :class:`~freelist.persist.Stored`)
        when the stored list is absent or damaged: every page below the
        high-water mark that is not a meta, not reachable and not the stored
        freelist's own is free (the repair path; a damaged freelist page stays
        out of use until the next commit frees it).  The ids come from a
        bitmap of the walk (one bit per page): as a free map (a byte per page,
        which becomes the freelist's page map) where
        :func:`persist.free_map_fits` allows, else streamed."""
        meta = self._state.meta
        used = checking.mark_reachable(self._state.io, lambda: reachable(self), meta.hwm, None)
        claimed = stored.owned
        if not claimed and stored.ids is not None and 2 <= meta.freelist < meta.hwm:
            claimed = [(meta.freelist, 1)]  # a header too damaged to say how many
        # A damaged header may claim pages the walk reaches: only the ones it
        # does not reach are the freelist's own (the next commit frees them).
        owned: list[Run] = []
        for s, n in claimed:
            for p in range(s, min(s + n, meta.hwm)):
                if used.any(p, 1):
                    continue
                if owned and owned[-1][0] + owned[-1][1] == p:
                    owned[-1] = (owned[-1][0], owned[-1][1] + 1)
                else:
                    owned.append((p, 1))
        for s, n in owned:
            used.set(s, n)
        if persist.free_map_fits(meta.hwm, 8 * used.clear_count()):
            return persist.Stored(ids=persist.FreeMap.of(used.clear_map()), owned=owned)
        return persist.Stored(ids=used.clear(), owned=owned)  # streamed

    # ------------------------------------------------------------------
    # Properties.

    @property
    def path(self) -> str:
        """The file's path."""
        return self._path

    @property
    def page_size(self) -> int:
        """The page size in bytes."""
        return self._state.meta.page_size

    @property
    def freelist(self) -> Freelist:
        """The freelist in use (do not change it outside transactions)."""
        return self._state.freelist

    @property
    def meta(self) -> Meta:
        """The newest committed meta."""
        return self._state.meta

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._state.closed

    # ------------------------------------------------------------------
    # Transactions.

    def begin(self, writable: bool) -> Transaction:
        """Start a transaction: a writer (one at a time) or a reader.

        A writer first releases the pending pages no open reader can see
        (bbolt's ReleasePendingPages) and gets txid = the last commit's + 1.  A
        reader sees the snapshot of the last commit.  A transaction's first
        read checks that the file still holds every page the meta names
        (another process may have truncated it, which would make a mapped read
        fail with SIGBUS): see :meth:`Transaction.read`.

        :raises ClosedError: the file is closed.
        :raises ReadOnlyError: a writer on a file opened read-only.
        :raises TransactionError: a writer is already open, a commit failed
            while writing its meta page (reopen the file to write again), or
            the last txid is 2**64-1 (no further commit fits).
        :raises FileTooShortError: a writer, and another process truncated
            the file under the pages the meta names.
        :raises FileIOError: a writer, and the file's size cannot be read.

        Runtime complexity: O(1) for a reader; a writer's release costs as
        :meth:`~freelist.Freelist.release_pending` (plus one ``fstat``).
        """
        st = self._state
        io = st.io
        with st.lock:
            st.check_open()
            meta = st.meta
            if writable:
                if io.readonly:
                    raise io.error(ReadOnlyError, "opened read-only; no write transactions")
                if st.failed:
                    raise io.error(TransactionError, f"{st.failed}; reopen the file")
                if st.writer is not None:
                    raise io.error(TransactionError, "a write transaction is already open")
                # Another process may have cut the file (the lock is advisory):
                # a commit would regrow it with zeros under the meta's pages.
                st.verify_size()
                if meta.txid >= MAX_ID:
                    raise io.error(
                        TransactionError,
                        f"the last txid is {meta.txid}, the largest a meta holds: "
                        "no further commit fits",
                    )
                st.freelist.release_pending()
                tx = Transaction(st, True)
                st.writer = tx
            else:
                tx = Transaction(st, False)
                st.freelist.add_reader(tx.txid)
                st.readers.add(tx)
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

    # ------------------------------------------------------------------
    # Whole-file operations.

    @property
    def freelist_runs(self) -> list[Run]:
        """The runs ``(start, n)`` of pages the stored freelist occupies,
        sorted: bbolt's page with its overflow pages, the log's chain, none
        when the freelist is not synced.

        :raises ClosedError: the file is closed.

        Runtime complexity: O(R), a copy of its R runs.
        """
        st = self._state
        with st.lock:
            st.check_open()
            return list(st.owned)

    def stored_freelist(self) -> dict[str, Any]:
        """How the newest meta's freelist is stored on disk: ``format``
        (``"bbolt"``, ``"log"`` or ``"none"``), ``pages`` (pages it occupies)
        and ``errors`` (what makes it unusable; empty for a sound one), and for
        the log also ``chain_runs`` (runs of pages in the chain),
        ``checkpoint_txid``, ``checkpoint_age`` (commits since the checkpoint),
        ``checkpoint_bytes`` and ``log_bytes`` (record bytes since it).

        :raises ClosedError: the file is closed.
        :raises FileIOError: the file cannot be read.

        Runtime complexity: O(F) to read and verify the stored list of F ids
        (the chain's pages for the log).
        """
        st = self._state
        with st.lock:
            st.check_open()
            return persist.describe(st.io, st.meta)

    def stats(self) -> PageFileStats:
        """Page size, txid, high-water mark, free and pending pages, runs, file
        size, the free tail (free pages in the run that ends at the high-water
        mark) and what shrinking has given back since the file was opened.

        :raises ClosedError: the file is closed.
        :raises FileIOError: the file size cannot be read.

        Runtime complexity: O(S log S) for the runs (O(F) for the array).
        """
        st = self._state
        with st.lock:
            st.check_open()
            fl = st.freelist
            spans = fl.free_spans()
            meta = st.meta
            tail = spans[-1][1] if spans and sum(spans[-1]) == meta.hwm else 0
            return PageFileStats(
                path=self._path,
                page_size=st.meta.page_size,
                txid=st.meta.txid,
                hwm=st.meta.hwm,
                free=fl.free_count,
                pending=fl.pending_count,
                spans=len(spans),
                largest_span=max((n for _, n in spans), default=0),
                file_size=st.io.size(),
                freelist=type(fl).__name__,
                sync_freelist=st.sync,
                shrink=st.shrinking.enabled,
                free_tail=tail,
                free_tail_bytes=tail * meta.page_size,
                shrinks=st.shrinking.shrinks,
                shrunk_bytes=st.shrinking.given_back,
                freelist_format=st.writing.name,
                freelist_bytes_last=st.bytes_last,
                freelist_bytes_total=st.bytes_total,
            )

    def check(self, reachable: Reachable | None = None) -> list[str]:
        """Verify the file; return the problems found (empty when sound).

        Checks: both meta pages (a stale or torn older meta is reported), the
        root page (inside ``[2, hwm)``, not a freelist page), the stored
        freelist with the same validation the open path uses (type, header id,
        the 0xFFFF count rule, inside ``[2, hwm)`` with its overflow pages, ids
        sorted, unique, inside ``[2, hwm)``, not its own pages or the root),
        that it lists exactly the free and pending pages the freelist holds,
        and with ``reachable``: that reachable and free pages are disjoint and
        together cover every page below the high-water mark.  Memory: one bit
        per page below the high-water mark, plus the freelist's ids.

        :raises ClosedError: the file is closed.
        :raises PageFileTypeError: ``reachable`` is not callable.
        :raises FileTooShortError: another process truncated the file under its pages.
        :raises FileIOError: the file cannot be read.

        Runtime complexity: O(hwm / 8 + F) with a walk (plus the walk), O(F) otherwise.
        """
        st = self._state
        checking.require_walk(st.io, reachable)
        with st.lock:
            st.check_open()
            st.verify_size()
            walk = None if reachable is None else (lambda: reachable(self))
            return checking.check(
                st.io, st.meta, st.freelist, compare_memory=st.writer is None, walk=walk
            )

    def close(self) -> None:
        """Close the file and release its lock.  Calling it twice is harmless.

        :raises TransactionError: a transaction is still open (finish it first).

        Runtime complexity: O(1).
        """
        st = self._state
        with st.lock:
            if st.closed:
                return
            if st.writer is not None or st.readers:
                open_ = len(st.readers) + (st.writer is not None)
                raise st.io.error(TransactionError, f"{open_} transaction(s) still open")
            st.closed = True
            st.io.close()
            st.detach()

    def __enter__(self) -> PageFile:
        """Return the file itself."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the file (see :meth:`close`).

        :raises TransactionError: a transaction is still open.
        """
        self.close()

    def __repr__(self) -> str:
        """The path and the txid and high-water mark (or "closed")."""
        st = self._state
        state = "closed" if st.closed else f"txid={st.meta.txid} hwm={st.meta.hwm}"
        return f"PageFile({self._path!r}, {state})"


def _format(path: str, freelist_format: object, sync_freelist: bool) -> str:
    """The format commits write, from ``freelist_format`` and its alias ``sync_freelist``."""
    if freelist_format is None:
        return "bbolt" if sync_freelist else "none"
    if not isinstance(freelist_format, str):
        raise PageFileTypeError(
            path, f"freelist_format must be a str, not {type(freelist_format).__name__}"
        )
    if freelist_format not in persist.FORMATS:
        raise PageFileArgumentError(
            path,
            f"freelist_format must be one of {', '.join(map(repr, persist.FORMATS))}, "
            f"got {freelist_format!r}",
        )
    if not sync_freelist and freelist_format != "none":
        raise PageFileArgumentError(
            path,
            f"sync_freelist=False means freelist_format='none', not {freelist_format!r}",
        )
    return freelist_format


def _timeout(path: str, timeout: object) -> float | None:
    """``timeout`` as seconds (None or inf: forever)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise PageFileTypeError(
            path, f"timeout must be None or a number of seconds, not {type(timeout).__name__}"
        )
    try:
        seconds = float(timeout)
    except OverflowError:
        seconds = math.inf  # an int past a float's range: longer than forever
    if math.isnan(seconds) or seconds < 0:
        raise PageFileArgumentError(path, f"timeout must be None or seconds >= 0, got {timeout!r}")
    return None if math.isinf(seconds) else seconds


def _choose_freelist(path: str, freelist: object) -> Freelist:
    if isinstance(freelist, str):
        try:
            return registry.make(freelist)
        except FreelistError as e:
            raise PageFileArgumentError(path, str(e)) from None
    if isinstance(freelist, type):
        raise PageFileTypeError(
            path,
            f"freelist must be a Freelist object, not the class {freelist.__name__} "
            f"(pass {freelist.__name__}())",
        )
    if not isinstance(freelist, Freelist):
        raise PageFileTypeError(
            path,
            f"freelist must be 'hashmap', 'array' or a Freelist, not {type(freelist).__name__}",
        )
    if freelist.pending_count:
        raise PageFileArgumentError(
            path, f"the freelist has {freelist.pending_count} pending page(s); pass a new one"
        )
    return freelist


def _initialise(io: FileIO, page_size: int) -> None:
    """Write a new file: two metas (txids 0 and 1) and an empty freelist page 2."""
    pages = [
        Meta(page_size, 0, 2, 3, 0).pack_page(page_size),
        Meta(page_size, 0, 2, 3, 1).pack_page(page_size),
        pack_freelist_page(2, array("Q"), page_size),
    ]
    try:
        io.pwrite(b"".join(pages), 0)
        io.sync()
    except BaseException:
        with suppress(FreelistError):  # empty again: the next open starts over
            io.truncate(0)
        raise
