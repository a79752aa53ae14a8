"""Transaction bookkeeping shared by both freelists.

bbolt splits its freelist in two: the part that knows about transactions
(pending frees per txid, which txid allocated each page, open readers,
rollback, release) and the part that stores free pages.  This module is the
first part, written once.  :class:`~freelist.ArrayFreelist` and
:class:`~freelist.HashmapFreelist` subclass :class:`SharedFreelist` and
implement only the storage hooks:

``_init_storage(ids)``
    replace the free set with a validated, sorted list of ids;
``_take(n)``
    remove a run of ``n`` free pages and return its first id (0: none);
``_put(spans)``
    add ``(start, n, _)`` runs, disjoint from the free set, to the free set;
``_put1(start, n)``
    the same for one run (a commit that frees one run; by default ``_put``);
``_overlaps_free(start, n)``
    whether any page of ``start .. start+n-1`` is free;
``free_count``, ``free_page_ids()``, ``free_spans()``, ``_check_storage()``;
``_free_top()``, ``_fill_map(fm)``
    one past the largest free page; set the page map's byte of every free
    page below ``len(fm)`` (to build the page map, below).

Pending frees are kept per transaction as runs ``(start, n, alloc_txid)``, so
the work of a free, a release or a rollback is proportional to the runs
involved, not to the size of the freelist.

The double-free check of every free asks "is any of these pages free or
pending?".  A page map answers it with one index: a ``bytearray`` with one
byte per page id below its length, 1 for a page that is free or pending, 0
otherwise.  A free sets its pages, an allocation clears them, and a release
(pending becomes free) leaves the map alone.  The map costs one byte per page
of the file, not per free page (nor per free run), so it only covers ids
below ``max(2**13, 16 * (free + pending pages))`` for the array and
``max(2**13, 64 * (free + pending runs))`` for the hashmap (doubled when a
free passes its end); pages past it, rare, are checked the slow way: a set of
far pending pages and the storage's own ``_overlaps_free``.  Whatever replaces the free
set wholesale calls ``_drop_cache()``, which drops the map; it is rebuilt
from the storage at once by the constructor, :meth:`init` and :meth:`reload`,
and otherwise at its next use (the first free falls through to the slow path,
which rebuilds it).
"""

from __future__ import annotations

import operator
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable

from .errors import (
    DoubleFreeError,
    InvalidArgumentError,
    InvalidPageIdsError,
    MetaPageError,
)
from .runs import MAX_ID, RunChunks, _as_int, runs_of, validate_ids

__all__ = ["SharedFreelist"]


# The argument checks of allocate, free and release spell MAX_ID (and MAX_ID + 1)
# as literals: a constant, where the name is a global lookup on every call.

# The page map covers at least this many page ids (8 KiB), else as many as
# the storage's budget allows (_map_budget): 16 bytes per free or pending
# page for the array, which keeps 40 a page anyway; 64 per free or pending
# run for the hashmap, whose memory follows its runs, not its pages.
_MAP_MIN = 1 << 13
_MAP_PER_PAGE = 16
_MAP_PER_RUN = 64

#: A pending run's length (its second field), in C.
_run_length = operator.itemgetter(1)

# Above this many unapplied changes, the sorted id cache is dropped rather than
# patched (patching costs one memmove of the cache per change).
_LOG_CAP = 256


def _check_txid(value: object, name: str = "txid", low: int = 1) -> int:
    txid = _as_int(value, name)
    if not low <= txid <= MAX_ID:
        raise InvalidArgumentError(f"{name} must be in [{low}, 2**64-1], got {txid}")
    return txid


def _check_run(start: object, n: object) -> tuple[int, int]:
    """Validate a run of pages to free: ``2 <= start`` and ``1 <= n``, inside 64 bits."""
    s = _as_int(start, "start")
    k = _as_int(n, "n")
    if k < 1:
        raise InvalidArgumentError(f"n must be at least 1, got {k}")
    if s < 0:
        raise InvalidArgumentError(f"page id must not be negative, got {s}")
    if s < 2:
        raise MetaPageError(f"cannot free page {s}: pages 0 and 1 are the meta pages")
    if s + k - 1 > MAX_ID:
        raise InvalidArgumentError(f"pages {s}..{s + k - 1} pass the largest page id 2**64-1")
    return s, k


class SharedFreelist:
    """Transaction bookkeeping common to every freelist (see module docs).

    Not used directly: instantiate :class:`~freelist.ArrayFreelist` or
    :class:`~freelist.HashmapFreelist`.
    """

    __slots__ = (
        "_allocs",
        "_far",
        "_far_pend",
        "_ids_cache",
        "_ids_log",
        "_map",
        "_map_stale",
        "_marks",
        "_npend",
        "_pending",
        "_readers",
        "_undo",
        "_writer",
    )

    def __init__(self, ids: Iterable[int] = ()) -> None:
        #: txid -> ``(start, n, alloc_txid)`` runs it freed, not released yet.
        self._pending: dict[int, list[tuple[int, int, int]]] = {}
        #: txid -> the ``begin`` of the last release_range that scanned it
        #: (bbolt's lastReleaseBegin): an unchanged entry is not scanned again.
        self._marks: dict[int, int] = {}
        #: number of pending pages.
        self._npend = 0
        #: page map: byte p is 1 iff page p is free or pending (p < len);
        #: _far: free or pending pages may lie at or past its end, whose
        #: pending ones are in _far_pend (see the module docs).
        self._map = bytearray()
        self._far = False
        self._far_pend: set[int] = set()
        self._map_stale = True
        #: first page of an allocated run -> txid that allocated it (bbolt's allocs).
        self._allocs: dict[int, int] = {}
        #: the txid of the latest allocate() and the runs it allocated, so that
        #: rollback() can give them back (bbolt re-reads the freelist instead).
        self._writer = 0
        self._undo: list[tuple[int, int]] = []
        #: open read transactions: txid -> how many.
        self._readers: dict[int, int] = {}
        #: sorted free+pending ids as array('Q'), patched lazily from _ids_log.
        self._ids_cache: array[int] | None = None
        self._ids_log: list[tuple[int, int]] | None = None
        lst = validate_ids(ids)
        self._init_storage(lst)
        self._ensure_map(lst)

    # ------------------------------------------------------------------
    # Storage hooks (implemented by the subclasses).

    def _init_storage(self, ids: Iterable[int]) -> None:
        # ``ids``: sorted, unique, valid, iterated once.
        raise NotImplementedError

    def _take(self, n: int) -> int:
        raise NotImplementedError

    def _put(self, spans: Iterable[tuple[int, int, int]]) -> None:
        raise NotImplementedError

    def _put1(self, start: int, n: int) -> None:
        self._put(((start, n, 0),))

    def _overlaps_free(self, start: int, n: int) -> bool:
        raise NotImplementedError

    def _check_storage(self) -> None:
        raise NotImplementedError

    @property
    def free_count(self) -> int:
        """Number of free pages.

        Runtime complexity: O(1).
        """
        raise NotImplementedError

    def free_page_ids(self) -> list[int]:
        """The free page ids, sorted ascending, as a new list.

        Runtime complexity: O(F) for the array, O(F + S log S) for the hashmap
        (F free pages in S runs).
        """
        raise NotImplementedError

    def free_spans(self) -> list[tuple[int, int]]:
        """The free pages as sorted, maximal ``(start, length)`` runs.

        Runtime complexity: O(F) for the array, O(S log S) for the hashmap.
        """
        raise NotImplementedError

    # ------------------------------------------------------------------
    # Counts.

    @property
    def pending_count(self) -> int:
        """Number of pending pages (freed, not yet released).

        Runtime complexity: O(1).
        """
        return self._npend

    @property
    def count(self) -> int:
        """Free plus pending pages: the number of ids a freelist page holds.

        Runtime complexity: O(1).
        """
        return self.free_count + self._npend

    @property
    def readers(self) -> list[int]:
        """The txids of the open readers, sorted, one entry per reader.

        Runtime complexity: O(R log R), R distinct reader txids.
        """
        return [t for t in sorted(self._readers) for _ in range(self._readers[t])]

    # ------------------------------------------------------------------
    # Building.

    def init(self, ids: Iterable[int]) -> None:
        """Replace the free set with ``ids`` (bbolt ``Init``).

        Pending pages, allocation records and readers are kept.  ``ids`` must be
        strictly ascending ints in ``[2, 2**64)`` and must not name a pending
        page.

        :raises InvalidTypeError: an id is not an int.
        :raises InvalidPageIdsError: unsorted, duplicate, meta or pending ids.

        Runtime complexity: O(F) for the array; O(F) for the hashmap (it groups
        the ids into runs).
        """
        lst = validate_ids(ids)
        pp = self._pending_set()
        if pp and not pp.isdisjoint(lst):
            clash = min(pp.intersection(lst))
            raise InvalidPageIdsError(f"page {clash} is pending; it cannot also be free")
        self._init_storage(lst)
        self._drop_cache()
        self._ensure_map(lst)

    def _init_verified(
        self,
        ids: Iterable[int],
        runs: Callable[[], RunChunks],
        page_map: bytearray | None = None,
    ) -> None:
        """:meth:`init` from ids a reader has verified already (ints, sorted,
        unique, in range, none pending): the page file's open, which streams
        them from the file's bytes instead of holding a list of them.
        ``runs()`` gives the same set as maximal runs (chunks of their starts
        and lengths, see :func:`~freelist.runs.run_chunks`), for a class that builds
        from runs; ``page_map``, when the reader has one (byte p is 1 iff page
        p is in the set), becomes the page map instead of being rebuilt."""
        self._init_from(ids, runs)
        self._drop_cache()
        if page_map is not None:
            self._ensure_map(built=page_map)

    def _init_from(
        self,
        ids: Iterable[int],
        runs: Callable[[], RunChunks],  # noqa: ARG002 - the hashmap's
    ) -> None:
        # The storage from verified ids (the hashmap builds from the runs).
        self._init_storage(ids)

    def reload(self, ids: Iterable[int]) -> None:
        """Rebuild the free set from ``ids``, leaving out pending pages.

        This is bbolt's ``Reload``/``NoSyncReload``: after re-reading a freelist
        page (which lists free *and* pending ids) or rebuilding the free pages
        from a page walk, pages that are still pending must not become free.

        :raises InvalidTypeError: an id is not an int.
        :raises InvalidPageIdsError: unsorted, duplicate or meta ids.

        Runtime complexity: O(F).
        """
        lst = validate_ids(ids)
        pp = self._pending_set()
        if pp:
            lst = [x for x in lst if x not in pp]
        self._init_storage(lst)
        self._drop_cache()
        self._ensure_map(lst)

    # ------------------------------------------------------------------
    # The page map (see the module docs).

    def _pending_set(self) -> set[int]:
        """Every pending page id, as a new set (O(P))."""
        out: set[int] = set()
        for runs in self._pending.values():
            for s, n, _ in runs:
                if n == 1:
                    out.add(s)
                else:
                    out.update(range(s, s + n))
        return out

    def _map_cap(self, extra: int = 0) -> int:
        """The longest map allowed now, with one more pending run of
        ``extra`` pages."""
        return max(_MAP_MIN, self._map_budget(extra))

    def _map_budget(self, extra: int) -> int:
        # Per page: the array's storage is per page anyway (the hashmap's
        # override counts runs).
        return _MAP_PER_PAGE * (self.free_count + self._npend + extra)

    def _free_top(self) -> int:
        raise NotImplementedError

    def _fill_map(self, fm: bytearray) -> None:
        raise NotImplementedError

    def _ensure_map(self, ids: list[int] | None = None, built: bytearray | None = None) -> None:
        """Build the page map from the storage and the pending runs, if dropped.

        ``ids``, when given, are the free ids the storage was just built from
        (in any order): one byte set per id, faster than asking the storage.
        ``built``, when given and nothing is pending, is the map already made
        by the caller (byte p is 1 iff page p is free), taken and cut or
        padded to the map's length.  O(F + P); with ``built``, only the
        storage's top (O(1) for the array, O(S) for the hashmap's S runs).
        """
        if not self._map_stale:
            return
        pend = self._pending_set()
        top = max(self._free_top(), max(pend, default=-1) + 1)
        cap = self._map_cap()
        size = top + 1 if top < cap else cap
        if built is not None and not pend:
            fm = built
            if len(fm) > size:
                del fm[size:]
            else:
                fm.extend(bytes(size - len(fm)))
        else:
            fm = bytearray(size)
            if ids is None:
                self._fill_map(fm)
            elif top <= size:
                for p in ids:
                    fm[p] = 1
            else:
                for p in ids:
                    if p < size:
                        fm[p] = 1
        for p in pend:
            if p < size:
                fm[p] = 1
        self._far_pend = {p for p in pend if p >= size}
        self._far = top > size
        self._map = fm
        self._map_stale = False

    def _marked(self, start: int, n: int) -> bool:
        """Whether any page of ``start .. start+n-1`` is free or pending (slow path)."""
        fm = self._map
        size = len(fm)
        if start < size and fm.find(1, start, min(start + n, size)) >= 0:
            return True
        if start + n <= size:
            return False
        lo = max(start, size)
        far = self._far_pend
        if far and not far.isdisjoint(range(lo, start + n)):
            return True
        return self._overlaps_free(lo, start + n - lo)

    def _mark_far(self, start: int, n: int) -> None:
        """Check and mark a run that passes the map's end (the slow path of free).

        The map grows when no page past its end is free or pending and the
        run fits in its allowed length; otherwise the pages past the end go to
        the far pending set.
        """
        if self._map_stale:
            self._ensure_map()
        fm = self._map
        end = start + n
        if end > len(fm):
            cap = self._map_cap(n)
            if self._far or end >= cap:
                self._mark_past(start, n)
                return
            fm.extend(bytes(min(max(end + 1, 2 * len(fm)), cap) - len(fm)))
        if fm.find(1, start, end) >= 0:
            raise self._double_free(start, n)
        fm[start:end] = b"\x01" * n

    def _mark_past(self, start: int, n: int) -> None:
        """Check and mark a run that passes the end of a map that cannot grow."""
        fm = self._map
        end = start + n
        if self._marked(start, n):
            raise self._double_free(start, n)
        size = len(fm)
        if start < size:
            fm[start:size] = b"\x01" * (size - start)
        self._far_pend.update(range(max(start, size), end))
        self._far = True

    def _unmark(self, start: int, n: int) -> None:
        """Pages ``start .. start+n-1`` are neither free nor pending any more."""
        fm = self._map
        size = len(fm)
        end = start + n
        if start < size:
            if end <= size:
                fm[start:end] = bytes(n)
                return
            fm[start:size] = bytes(size - start)
        if self._far_pend:
            self._far_pend.difference_update(range(max(start, size), end))

    # ------------------------------------------------------------------
    # Allocation and freeing.

    def allocate(self, txid: int, n: int) -> int:
        """Allocate ``n`` contiguous free pages for transaction ``txid``.

        Returns the first page id of the run, or 0 when the freelist holds no run
        of ``n`` free pages (the caller then grows the file at its high-water
        mark, as bbolt does).  The run leaves the free set and is recorded as
        allocated by ``txid``.

        :raises InvalidTypeError: ``txid`` or ``n`` is not an int.
        :raises InvalidArgumentError: ``txid < 1`` or ``n < 1`` (or above 2**64-1).

        Runtime complexity: see the subclass (array: O(F) scan; hashmap: O(1)
        expected for an exact fit, O(log D) otherwise).
        """
        if (
            type(txid) is not int
            or type(n) is not int
            or not (0 < txid <= 0xFFFF_FFFF_FFFF_FFFF and 0 < n <= 0xFFFF_FFFF_FFFF_FFFF)
        ):
            txid = _check_txid(txid)
            n = _as_int(n, "n")
            if not 1 <= n <= MAX_ID:
                raise InvalidArgumentError(f"n must be in [1, 2**64-1], got {n}")
        start = self._take(n)
        if start:
            if n == 1:
                try:  # noqa: SIM105 - a try costs nothing, contextlib.suppress a call
                    self._map[start] = 0
                except IndexError:  # past the map: a far page, not in it
                    pass
            else:
                self._unmark(start, n)
            self._allocs[start] = txid
            if txid != self._writer:
                self._writer = txid
                self._undo = [(start, n)]
            else:
                self._undo.append((start, n))
            log = self._ids_log
            if log is not None:
                log.append((start, -n))
                if len(log) > _LOG_CAP:
                    self._drop_ids()
        return start

    def free(self, txid: int, start: int, n: int = 1) -> None:
        """Free pages ``start .. start+n-1`` in transaction ``txid``.

        The pages become *pending*: they are not handed out again until a
        release (:meth:`release` or :meth:`release_pending`) makes them free.
        The allocating txid recorded for ``start`` is kept with them, so that
        :meth:`release_range` can free them early when no reader can see them.

        :raises InvalidTypeError: an argument is not an int.
        :raises InvalidArgumentError: ``txid < 1``, ``n < 1`` or ids past 2**64-1.
        :raises MetaPageError: ``start`` is 0 or 1.
        :raises DoubleFreeError: a page of the run is already free or pending.

        Runtime complexity: O(n): the run's bytes of the page map are checked
        and set.  Past the map's end (see the module docs) the map doubles,
        amortised O(1) per page, or, past its bound, the storage checks the
        run (array: O(log F); hashmap: O(n) expected, O(log L) with L runs
        longer than 4).
        """
        if (
            type(txid) is not int
            or type(start) is not int
            or type(n) is not int
            or not (
                0 < txid <= 0xFFFF_FFFF_FFFF_FFFF
                and start > 1
                and n > 0
                and start + n <= 0x1_0000_0000_0000_0000
            )
        ):
            txid = _check_txid(txid)
            start, n = _check_run(start, n)
        fm = self._map
        if n == 1:
            try:
                taken = fm[start]
            except IndexError:  # past the map's end
                self._mark_far(start, 1)
            else:
                if taken:
                    raise self._double_free(start, 1)
                fm[start] = 1
        else:
            end = start + n
            if end > len(fm):
                self._mark_far(start, n)
            elif fm.find(1, start, end) >= 0:
                raise self._double_free(start, n)
            else:
                fm[start:end] = b"\x01" * n
        self._npend += n
        atx = self._allocs.pop(start, 0)
        runs = self._pending.get(txid)
        if runs is None:
            self._pending[txid] = [(start, n, atx)]
        else:
            runs.append((start, n, atx))
        if self._marks:
            self._marks.pop(txid, None)
        log = self._ids_log
        if log is not None:
            log.append((start, n))
            if len(log) > _LOG_CAP:
                self._drop_ids()

    def _double_free(self, start: int, n: int) -> DoubleFreeError:
        pp = self._pending_set()
        for p in range(start, start + n):
            if p in pp:
                return DoubleFreeError(f"page {p} is already pending (freed, not yet released)")
            if self._overlaps_free(p, 1):
                return DoubleFreeError(f"page {p} is already free")
        return DoubleFreeError(f"pages {start}..{start + n - 1} overlap the free set")

    # ------------------------------------------------------------------
    # Release.

    def release(self, txid: int) -> None:
        """Make every page pending for a transaction ``<= txid`` free.

        Released runs merge with adjacent free pages.

        :raises InvalidTypeError: ``txid`` is not an int.
        :raises InvalidArgumentError: ``txid`` is negative or above 2**64-1.

        Runtime complexity: O(T + P) to collect (T pending transactions, P
        released runs) plus the merge (array: O(F + m log m) for m pages;
        hashmap: O(1) expected per run).
        """
        if type(txid) is not int or not 0 <= txid <= 0xFFFF_FFFF_FFFF_FFFF:
            txid = _check_txid(txid, low=0)
        pend = self._pending
        if len(pend) == 1:
            # One transaction pending (the common commit): _release inlined.
            for tid in pend:
                if tid > txid:
                    return
            spans = pend.pop(tid)
            if self._marks:
                self._marks.pop(tid, None)
            if len(spans) == 1 and not self._far_pend:
                s, n, _ = spans[0]
                self._npend -= n
                self._put1(s, n)
                return
            self._release_spans(spans)
        elif pend:
            self._release(txid)

    def _release(self, txid: int) -> None:
        pend = self._pending
        if not pend:
            return
        if len(pend) == 1:
            for tid in pend:
                if tid > txid:
                    return
            spans = pend.pop(tid)
            if self._marks:
                self._marks.pop(tid, None)
        else:
            done = [tid for tid in pend if tid <= txid]
            if not done:
                return
            spans = []
            marks = self._marks
            for tid in done:
                spans.extend(pend.pop(tid))
                if marks:
                    marks.pop(tid, None)
        self._release_spans(spans)

    def _release_spans(self, spans: list[tuple[int, int, int]]) -> None:
        # The pages stay marked in the map: pending becomes free.
        far = self._far_pend
        if far:
            size = len(self._map)
            for s, n, _ in spans:
                if s + n > size:
                    far.difference_update(range(max(s, size), s + n))
        self._npend -= sum(map(_run_length, spans))
        self._put(spans)

    def release_range(self, begin: int, end: int) -> None:
        """Free pending pages that were both allocated and freed in ``[begin, end]``.

        A page allocated by transaction A and freed by transaction F is visible
        only to readers of snapshots A .. F-1.  When no reader is open in that
        window the page is safe to reuse even though older readers are still open.
        Pages whose allocating txid is unknown (recorded as 0) are released only
        by a range that begins at 0.

        :raises InvalidTypeError: an argument is not an int.
        :raises InvalidArgumentError: a txid is negative or above 2**64-1.

        Runtime complexity: O(T + P) over pending transactions and their runs.
        """
        if type(begin) is not int or not 0 <= begin <= MAX_ID:
            begin = _check_txid(begin, "begin", low=0)
        if type(end) is not int or not 0 <= end <= MAX_ID:
            end = _check_txid(end, "end", low=0)
        self._release_range(begin, end)

    def _release_range(self, begin: int, end: int) -> None:
        if begin > end or not self._pending:
            return
        out: list[tuple[int, int, int]] = []
        emptied: list[int] = []
        marks = self._marks
        for tid, runs in self._pending.items():
            if tid < begin or tid > end or marks.get(tid) == begin:
                continue
            keep = []
            for sp in runs:
                if begin <= sp[2] <= end:
                    out.append(sp)
                else:
                    keep.append(sp)
            runs[:] = keep
            marks[tid] = begin
            if not keep:
                emptied.append(tid)
        for tid in emptied:
            del self._pending[tid]
            del marks[tid]
        if out:
            self._release_spans(out)

    # ------------------------------------------------------------------
    # Readers.

    def add_reader(self, txid: int) -> None:
        """Register an open read transaction on snapshot ``txid``.

        :raises InvalidTypeError: ``txid`` is not an int.
        :raises InvalidArgumentError: ``txid`` is negative or above 2**64-1.

        Runtime complexity: O(1).
        """
        txid = _check_txid(txid, low=0)
        self._readers[txid] = self._readers.get(txid, 0) + 1

    def remove_reader(self, txid: int) -> None:
        """Forget one open read transaction on snapshot ``txid``.

        :raises InvalidTypeError: ``txid`` is not an int.
        :raises InvalidArgumentError: no reader of ``txid`` is open.

        Runtime complexity: O(1).
        """
        txid = _check_txid(txid, low=0)
        left = self._readers.get(txid, 0)
        if not left:
            raise InvalidArgumentError(f"no open reader has txid {txid}")
        if left == 1:
            del self._readers[txid]
        else:
            self._readers[txid] = left - 1

    def release_pending(self) -> None:
        """Release every pending page that no open reader can still see.

        bbolt's ``ReleasePendingPages``: pages freed before the oldest reader are
        released outright; between two consecutive readers (and after the
        newest), pages allocated and freed inside the gap are released too.

        Runtime complexity: O(R log R + R (T + P)) plus the merge, R distinct
        reader txids.
        """
        readers = sorted(self._readers)
        minid = readers[0] if readers else MAX_ID
        if minid > 0:
            self._release(minid - 1)
        for tid in readers:
            self._release_range(minid, tid - 1)
            minid = tid + 1
        self._release_range(minid, MAX_ID)

    # ------------------------------------------------------------------
    # Rollback.

    def rollback(self, txid: int) -> None:
        """Undo the frees and allocations of transaction ``txid``.

        Pages ``txid`` freed are in use again (the allocation record of each
        freed run's first page comes back, as in bbolt).  When ``txid`` is the
        transaction that allocated last (bbolt has one writer at a time and only
        ever rolls back that writer), the runs it allocated go back to the free
        set, which bbolt achieves by re-reading its freelist page.  For an older
        ``txid`` only its allocation records are dropped: the pages it allocated
        stay in use, since a later transaction may already depend on them.

        :raises InvalidTypeError: ``txid`` is not an int.
        :raises InvalidArgumentError: ``txid < 1`` or above 2**64-1.

        Runtime complexity: O(P + m log m) for P pending runs of ``txid`` and m
        pages it allocated; O(A) over all allocation records for an older txid.
        """
        txid = _check_txid(txid)
        runs = self._pending.pop(txid, None)
        self._marks.pop(txid, None)
        if runs is not None:
            for s, n, atx in runs:
                self._unmark(s, n)
                self._npend -= n
                if atx and atx != txid:
                    self._allocs[s] = atx
        allocs = self._allocs
        if txid == self._writer:
            pages: set[int] = set()
            for s, n in self._undo:
                if allocs.get(s) == txid:
                    del allocs[s]
                pages.update(range(s, s + n))
            self._writer = 0
            self._undo = []
            pages -= self._pending_set()
            back = sorted(p for p in pages if not self._overlaps_free(p, 1))
            spans = [(s, n, 0) for s, n in runs_of(back)]
            self._put(spans)
            fm = self._map
            size = len(fm)
            for s, n, _ in spans:
                if s + n <= size:
                    fm[s : s + n] = b"\x01" * n
                else:
                    if s < size:
                        fm[s:size] = b"\x01" * (size - s)
                    self._far = True  # free pages past the map
        else:
            for s in [s for s, t in allocs.items() if t == txid]:
                del allocs[s]
        self._drop_ids()

    # ------------------------------------------------------------------
    # Queries.

    def freed(self, pgid: int) -> bool:
        """Whether page ``pgid`` is free or pending.

        :raises InvalidTypeError: ``pgid`` is not an int.
        :raises InvalidArgumentError: ``pgid`` is negative.

        Runtime complexity: O(1) from the page map; past its end O(1)
        expected for the hashmap (O(log L) when long runs exist), O(log F) for
        the array.
        """
        if type(pgid) is not int or pgid < 0:
            pgid = _as_int(pgid, "pgid")
            if pgid < 0:
                raise InvalidArgumentError(f"page id must not be negative, got {pgid}")
        if self._map_stale:
            self._ensure_map()
        fm = self._map
        if pgid < len(fm):
            return bool(fm[pgid])
        return pgid in self._far_pend or self._overlaps_free(pgid, 1)

    def pending_page_ids(self) -> dict[int, list[int]]:
        """The pending page ids of each transaction, each list sorted.

        Runtime complexity: O(P log P) for P pending pages.
        """
        out: dict[int, list[int]] = {}
        for tid in sorted(self._pending):
            ids: list[int] = []
            for s, n, _ in self._pending[tid]:
                ids.extend(range(s, s + n))
            ids.sort()
            out[tid] = ids
        return out

    def all_page_ids(self) -> list[int]:
        """Free and pending page ids as one sorted list, what bbolt writes to a
        freelist page.

        Runtime complexity: as :meth:`page_id_array`, plus O(F + P) to convert.
        """
        return self.page_id_array().tolist()

    def page_id_array(self) -> array[int]:
        """Free and pending page ids, sorted, as a new ``array('Q')``.

        This is the body of a freelist page.  The freelist keeps this array
        between calls and patches it with the runs allocated and freed since the
        last call, so writing the freelist at every commit costs one copy of the
        array plus one memmove per change, with no sort (bbolt's hashmap sorts
        every free id at every commit).

        Runtime complexity: O(F + P) for the copy plus O(c (F + P)) memmove for
        c changes since the last call; the first call (or one after more than
        256 changes, a rollback or a reload) rebuilds it: O(F + P log P) for the
        array, O(F + S log S + P log P) for the hashmap.
        """
        cache = self._ids_cache
        if cache is None:
            ids = self.free_page_ids()
            if self._npend:
                ids.extend(self._pending_set())
                ids.sort()
            cache = self._ids_cache = array("Q", ids)
            self._ids_log = []
        else:
            log = self._ids_log
            if log:
                for start, delta in log:
                    i = bisect_left(cache, start)
                    if delta > 0:
                        cache[i:i] = array("Q", range(start, start + delta))
                    else:
                        del cache[i : i - delta]
                log.clear()
        return cache[:]

    def _drop_ids(self) -> None:
        self._ids_cache = None
        self._ids_log = None

    def _drop_cache(self) -> None:
        # The free set was replaced wholesale: the sorted ids and the page map
        # go (_ensure_map builds the map again; see the module docs).
        self._ids_cache = None
        self._ids_log = None
        self._map = bytearray()
        self._far_pend = set()
        self._far = False
        self._map_stale = True

    # ------------------------------------------------------------------
    # Invariant.

    def _check(self) -> None:
        """Assert the whole internal invariant (for tests; O(F + P + A)).

        Pending runs are disjoint, inside ``[2, 2**64)``, and exactly the pending
        page set; no pending page is free; readers have positive counts; the
        sorted id cache, when present, equals the free and pending ids; plus the
        storage's own invariant (``_check_storage``).
        """
        self._check_storage()
        seen: set[int] = set()
        total = 0
        assert set(self._marks) <= set(self._pending), "release mark of a txid with no pending runs"
        for tid, runs in self._pending.items():
            assert 0 < tid <= MAX_ID, tid
            assert runs, f"empty pending entry for txid {tid}"
            for s, n, atx in runs:
                assert n >= 1 and s >= 2 and s + n - 1 <= MAX_ID, (s, n)
                assert 0 <= atx <= MAX_ID, atx
                run = set(range(s, s + n))
                assert seen.isdisjoint(run), f"pending runs overlap at {s}"
                seen |= run
                total += n
        assert total == self._npend, "pending count does not match pending runs"
        free = set(self.free_page_ids())
        fm = self._map
        size = len(fm)
        marked = free | seen
        if self._map_stale:
            assert not fm, "a dropped page map is not empty"
            assert not self._far_pend, "a dropped page map keeps far pending pages"
        else:
            want = bytearray(size)
            for p in marked:
                if p < size:
                    want[p] = 1
            assert fm == want, "page map does not match the free and pending pages"
            assert self._far_pend == {p for p in seen if p >= size}, "far pending set is wrong"
            assert self._far or not any(p >= size for p in marked), "pages past the map, unflagged"
        assert free.isdisjoint(seen), f"pages both free and pending: {sorted(free & seen)[:5]}"
        assert len(free) == self.free_count
        for tid, k in self._readers.items():
            assert k > 0 and 0 <= tid <= MAX_ID
        if self._ids_cache is not None:
            assert self._ids_log is not None
            expect = sorted(free | seen)
            got = list(self._ids_cache)
            for start, delta in self._ids_log:
                i = bisect_left(got, start)
                if delta > 0:
                    got[i:i] = range(start, start + delta)
                else:
                    del got[i : i - delta]
            assert got == expect, "sorted id cache does not match free+pending ids"
        for s, n in self._undo:
            assert n >= 1 and s >= 2
