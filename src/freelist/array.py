"""bbolt's legacy freelist: one sorted array of free page ids.

:class:`ArrayFreelist` is a faithful port of bbolt's ``array`` freelist: for
any sequence of calls it returns the same pages as bbolt.  Allocation is a
first-fit linear scan for ``n`` consecutive ids, lowest address first; a
release merges the released ids into the sorted array.  It is the baseline of
every comparison in this project, so it is made as fast as Python allows
without changing the algorithm:

* the ids are stored in *descending* order, so taking the lowest free page
  (the common one-page allocation) is ``list.pop()`` in O(1), the way bbolt
  re-slices the front of its array;
* the scan for a run of ``n > 1`` runs in C: ``map(operator.sub, ...)`` over
  two shifted iterators yields ``ids[j+n-1] - ids[j]`` and
  ``operator.indexOf`` stops at the first window that equals ``n - 1`` (ids are
  strictly increasing, so that window is exactly the first run of ``n``
  consecutive ids, which is what bbolt's loop finds);
* a release appends the released ids and lets Timsort merge the two sorted
  runs, O(F + m log m) like bbolt's sort-and-merge.
"""

from __future__ import annotations

import operator
from bisect import bisect_left
from collections.abc import Iterable
from itertools import islice

from ._shared import SharedFreelist
from .runs import MAX_ID, runs_of

__all__ = ["ArrayFreelist"]

_neg = operator.neg
_sub = operator.sub
_index_of = operator.indexOf


class ArrayFreelist(SharedFreelist):
    """The legacy freelist: a sorted array of free page ids, first-fit allocation.

    ``ArrayFreelist(ids=())`` builds the freelist from a sorted iterable of free
    page ids (each at least 2, no duplicates).

    :raises InvalidTypeError: an id is not an int.
    :raises InvalidPageIdsError: the ids are unsorted, repeat, or name a meta page.

    Runtime complexity (F free pages): build O(F); :meth:`allocate` O(1) for one
    page, O(F) scan for ``n > 1``; :meth:`free` O(n + log F); :meth:`release`
    O(F + m log m) to merge m pages; memory about 8 bytes per free page for the
    array plus one int object per id.
    """

    __slots__ = ("_ids",)

    _ids: list[int]

    def __init__(self, ids: Iterable[int] = ()) -> None:
        super().__init__(ids)

    def __repr__(self) -> str:
        return (
            f"ArrayFreelist(free={self.free_count}, pending={self.pending_count}, "
            f"spans={len(self.free_spans())})"
        )

    # Storage hooks -------------------------------------------------------

    def _init_storage(self, ids: Iterable[int]) -> None:
        lst = ids if type(ids) is list else list(ids)  # init passes its own copy
        lst.reverse()
        self._ids = lst

    @property
    def free_count(self) -> int:
        """Number of free pages.

        Runtime complexity: O(1).
        """
        return len(self._ids)

    def _free_top(self) -> int:
        d = self._ids
        return d[0] + 1 if d else 0

    def _fill_map(self, fm: bytearray) -> None:
        d = self._ids  # descending
        size = len(fm)
        if d and d[0] >= size:
            d = [p for p in d if p < size]
        for p in d:
            fm[p] = 1

    def _take(self, n: int) -> int:
        d = self._ids
        if n == 1:
            return d.pop() if d else 0
        size = len(d)
        if n > size:
            return 0
        # Ascending id k sits at d[size-1-k]; window j..j+n-1 is contiguous
        # exactly when ids[j+n-1] - ids[j] == n-1.
        try:
            j = _index_of(map(_sub, islice(reversed(d), n - 1, None), reversed(d)), n - 1)
        except ValueError:
            return 0
        hi = size - j
        start = d[hi - 1]
        del d[hi - n : hi]
        return start

    def _put(self, spans: Iterable[tuple[int, int, int]]) -> None:
        d = self._ids
        before = len(d)
        for s, n, _ in spans:
            d.extend(range(s, s + n))
        if len(d) - before == 1 and before:
            # One page: a binary search and one insertion instead of a merge.
            x = d.pop()
            d.insert(bisect_left(d, -x, key=_neg), x)
        elif len(d) > before:
            d.sort(reverse=True)

    def _overlaps_free(self, start: int, n: int) -> bool:
        d = self._ids
        last = start + n - 1
        i = bisect_left(d, -last, key=_neg)  # first index with d[i] <= last
        return i < len(d) and d[i] >= start

    def free_page_ids(self) -> list[int]:
        """The free page ids, sorted ascending, as a new list.

        Runtime complexity: O(F).
        """
        return self._ids[::-1]

    def free_spans(self) -> list[tuple[int, int]]:
        """The free pages as sorted, maximal ``(start, length)`` runs.

        Runtime complexity: O(F).
        """
        return runs_of(reversed(self._ids))

    def _check_storage(self) -> None:
        d = self._ids
        assert all(type(x) is int for x in d), "non-int id"
        assert all(map(operator.gt, d, islice(d, 1, None))), "ids not strictly sorted"
        if d:
            assert d[-1] >= 2, f"meta page {d[-1]} in the free ids"
            assert d[0] <= MAX_ID
