"""A small third-party freelist: one byte per page, first fit.

``BitmapFreelist`` satisfies the :class:`freelist.Freelist` protocol without
deriving from any of the library's classes: a ``bytearray`` holds one byte per
page id (1: free), and ``allocate(txid, n)`` finds the lowest run of ``n``
free pages with one ``bytearray.find`` (first fit, like bbolt's array
freelist).  The transaction bookkeeping (pending pages per txid, allocation
records, readers, rollback) is written out plainly.

It is the example of the docs page "Testing and benchmarking your own
allocator"::

    from freelist.testing import assert_conforms
    from bitmap_freelist import BitmapFreelist
    assert_conforms(BitmapFreelist, choice="first-fit")

and, with ``examples/`` on ``PYTHONPATH``, it runs in ``freelist compare
--freelists array,hashmap,bitmap_freelist:BitmapFreelist``.  Memory is one byte
per page id up to the largest free page, so it suits files of up to a few
hundred million pages.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterable
from itertools import pairwise

from freelist import (
    DoubleFreeError,
    InvalidArgumentError,
    InvalidPageIdsError,
    InvalidTypeError,
    MetaPageError,
)

__all__ = ["StandaloneBitmap"]

MAX_ID = (1 << 64) - 1
_RUNS = re.compile(b"\x01+")


def _int(value: object, name: str, low: int = 0) -> int:
    if type(value) is not int:
        raise InvalidTypeError(f"{name} must be an int, not {type(value).__name__}")
    if not low <= value <= MAX_ID:
        raise InvalidArgumentError(f"{name} must be in [{low}, 2**64-1], got {value}")
    return value


def _ids(ids: Iterable[int]) -> list[int]:
    lst = [_int(x, "page id") for x in ids]
    if any(a >= b for a, b in pairwise(lst)):
        raise InvalidPageIdsError("page ids must be sorted and unique")
    if lst and lst[0] < 2:
        raise InvalidPageIdsError(f"page id {lst[0]} is a meta page")
    return lst


class StandaloneBitmap:
    """A first-fit freelist over a byte map of the pages (see the module docs)."""

    def __init__(self, ids: Iterable[int] = ()) -> None:
        self._map = bytearray(2)  # pages 0 and 1, the metas, are never free
        self._free = 0
        #: txid -> runs ``(start, n, allocating txid or 0)`` it freed.
        self._pending: dict[int, list[tuple[int, int, int]]] = {}
        self._pending_pages: set[int] = set()
        #: first page of an allocated run -> the txid that allocated it.
        self._records: dict[int, int] = {}
        self._readers: dict[int, int] = {}
        #: the last allocating txid and its runs, given back by rollback().
        self._writer = 0
        self._undo: list[tuple[int, int]] = []
        self._fill(_ids(ids))

    # -- the byte map ---------------------------------------------------------

    def _fill(self, ids: list[int]) -> None:
        self._map = bytearray((ids[-1] + 1) if ids else 2)
        for p in ids:
            self._map[p] = 1
        self._free = len(ids)

    def _put(self, start: int, n: int) -> None:
        """Mark ``start .. start+n-1`` free (they are not free now)."""
        if start + n > len(self._map):
            self._map.extend(bytes(start + n - len(self._map)))
        self._map[start : start + n] = b"\x01" * n
        self._free += n

    def _take(self, n: int) -> int:
        """Take the lowest run of ``n`` free pages; 0 when there is none."""
        start = self._map.find(b"\x01" * n)
        if start < 0:
            return 0
        self._map[start : start + n] = bytes(n)
        self._free -= n
        return start

    def _is_free(self, start: int, n: int) -> bool:
        """Whether any page of ``start .. start+n-1`` is free."""
        return 1 in self._map[start : start + n]

    # -- the protocol ---------------------------------------------------------

    @property
    def free_count(self) -> int:
        """Number of free pages."""
        return self._free

    @property
    def pending_count(self) -> int:
        """Number of pending pages."""
        return len(self._pending_pages)

    @property
    def count(self) -> int:
        """Free plus pending pages."""
        return self._free + len(self._pending_pages)

    @property
    def readers(self) -> list[int]:
        """The open readers' txids, sorted, one entry per reader."""
        return [t for t in sorted(self._readers) for _ in range(self._readers[t])]

    def init(self, ids: Iterable[int]) -> None:
        """Replace the free set with the sorted ``ids`` (none of them pending)."""
        lst = _ids(ids)
        if not self._pending_pages.isdisjoint(lst):
            raise InvalidPageIdsError("a pending page cannot also be free")
        self._fill(lst)

    def reload(self, ids: Iterable[int]) -> None:
        """Rebuild the free set from sorted ``ids``, leaving out pending pages."""
        self._fill([p for p in _ids(ids) if p not in self._pending_pages])

    def allocate(self, txid: int, n: int) -> int:
        """Take the lowest run of ``n`` free pages for ``txid``; 0: none."""
        txid = _int(txid, "txid", 1)
        n = _int(n, "n", 1)
        start = self._take(n)
        if start:
            self._records[start] = txid
            if txid != self._writer:
                self._writer, self._undo = txid, []
            self._undo.append((start, n))
        return start

    def free(self, txid: int, start: int, n: int = 1) -> None:
        """Make ``start .. start+n-1`` pending for ``txid``."""
        txid = _int(txid, "txid", 1)
        start = _int(start, "start")
        n = _int(n, "n", 1)
        if start < 2:
            raise MetaPageError(f"page {start} is a meta page")
        run = range(start, start + n)
        if self._is_free(start, n) or not self._pending_pages.isdisjoint(run):
            raise DoubleFreeError(f"pages {start}..{start + n - 1}: one is free or pending")
        alloc = self._records.pop(start, 0)
        self._pending.setdefault(txid, []).append((start, n, alloc))
        self._pending_pages.update(run)

    def _release_runs(self, runs: list[tuple[int, int, int]]) -> None:
        for s, n, _ in runs:
            self._pending_pages.difference_update(range(s, s + n))
            self._put(s, n)

    def release(self, txid: int) -> None:
        """Free every page pending for a txid ``<= txid``."""
        txid = _int(txid, "txid")
        for t in [t for t in self._pending if t <= txid]:
            self._release_runs(self._pending.pop(t))

    def release_range(self, begin: int, end: int) -> None:
        """Free pending pages allocated and freed within ``[begin, end]``."""
        begin = _int(begin, "begin")
        end = _int(end, "end")
        for t in [t for t in self._pending if begin <= t <= end]:
            runs = self._pending[t]
            out = [r for r in runs if begin <= r[2] <= end]
            keep = [r for r in runs if not begin <= r[2] <= end]
            if keep:
                self._pending[t] = keep
            else:
                del self._pending[t]
            self._release_runs(out)

    def add_reader(self, txid: int) -> None:
        """Register a reader of snapshot ``txid``."""
        txid = _int(txid, "txid")
        self._readers[txid] = self._readers.get(txid, 0) + 1

    def remove_reader(self, txid: int) -> None:
        """Forget one reader of snapshot ``txid``."""
        txid = _int(txid, "txid")
        left = self._readers.get(txid, 0)
        if not left:
            raise InvalidArgumentError(f"no open reader has txid {txid}")
        if left == 1:
            del self._readers[txid]
        else:
            self._readers[txid] = left - 1

    def release_pending(self) -> None:
        """Release what no open reader can see: pages freed before the oldest
        reader, and pages allocated and freed between two readers (or after
        the newest)."""
        readers = sorted(self._readers)
        low = readers[0] if readers else MAX_ID
        if low > 0:
            self.release(low - 1)
        for r in readers:
            if low < r:
                self.release_range(low, r - 1)
            low = r + 1
        self.release_range(low, MAX_ID)

    def rollback(self, txid: int) -> None:
        """Undo the frees of ``txid`` and, when it allocated last, its allocations."""
        txid = _int(txid, "txid", 1)
        for s, n, alloc in self._pending.pop(txid, []):
            self._pending_pages.difference_update(range(s, s + n))
            if alloc and alloc != txid:
                self._records[s] = alloc
        if txid == self._writer:
            for s, n in self._undo:
                if self._records.get(s) == txid:
                    del self._records[s]
                for p in range(s, s + n):
                    if p not in self._pending_pages and not self._is_free(p, 1):
                        self._put(p, 1)
            self._writer, self._undo = 0, []
        else:
            for s in [s for s, t in self._records.items() if t == txid]:
                del self._records[s]

    def freed(self, pgid: int) -> bool:
        """Whether page ``pgid`` is free or pending."""
        pgid = _int(pgid, "pgid")
        return pgid in self._pending_pages or self._is_free(pgid, 1)

    def free_spans(self) -> list[tuple[int, int]]:
        """The free pages as sorted, maximal ``(start, length)`` runs."""
        return [(m.start(), m.end() - m.start()) for m in _RUNS.finditer(self._map)]

    def free_page_ids(self) -> list[int]:
        """The free page ids, sorted."""
        return [p for s, n in self.free_spans() for p in range(s, s + n)]

    def pending_page_ids(self) -> dict[int, list[int]]:
        """The pending page ids of each txid, each list sorted."""
        return {
            t: sorted(p for s, n, _ in self._pending[t] for p in range(s, s + n))
            for t in sorted(self._pending)
        }

    def all_page_ids(self) -> list[int]:
        """Free and pending page ids, sorted."""
        return sorted([*self.free_page_ids(), *self._pending_pages])

    def page_id_array(self) -> array[int]:
        """Free and pending page ids, sorted, as an ``array('Q')``."""
        return array("Q", self.all_page_ids())

    def _check(self) -> None:
        """The invariant (run by the conformance suite after every call)."""
        assert self._map[0] == self._map[1] == 0, "a meta page is free"
        assert self._free == self._map.count(1), "free count is stale"
        pages = [p for runs in self._pending.values() for s, n, _ in runs for p in range(s, s + n)]
        assert len(pages) == len(set(pages)), "a page pending twice"
        assert set(pages) == self._pending_pages, "pending page set is stale"
