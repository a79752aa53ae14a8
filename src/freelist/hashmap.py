"""The hashmap freelist: free pages kept as runs ("spans") in hash maps.

This is the structure Alibaba contributed to bbolt for etcd: instead of one
sorted array of page ids, keep the free runs themselves,

* ``forward``:  start -> size of the run starting there,
* ``backward``: end -> size of the run ending there (``end`` is one past the
  last page),
* by size: size -> the starts of the runs of that size,

so an allocation of ``n`` pages takes a run of exactly ``n`` in O(1), and a
released run finds the run just before it (``backward[start]``) and just after
it (``forward[start + n]``) in O(1) and merges with them.

What this implementation adds beyond bbolt:

* **Deterministic best fit.**  bbolt takes "any" larger run in Go's random map
  order when no exact fit exists.  Here the default policy takes the smallest
  run that fits, lowest start on ties: each size keeps a heap of starts
  (stale entries are skipped lazily and compacted), and the sizes present are
  kept in a sorted list searched by bisection, so no scan over sizes or runs
  is ever needed.  ``policy="bbolt"`` keeps bbolt's rule (exact fit, else a
  larger size picked at random, from a seeded generator so runs repeat).
* **No per-page memory.**  bbolt keeps a hash set of every free page id to
  answer "is this page free?".  Here that question is answered from the runs:
  a run of at most four pages that contains page ``p`` starts at one of
  ``p-3 .. p`` (found by probing ``forward``); longer runs are few and are
  indexed by their end in a :class:`sortedcontainers.SortedList`.  Allocating
  from the front of a long run keeps its end, so the index rarely changes.
* **The sorted id list without a sort per commit** (see
  :meth:`~freelist._shared.SharedFreelist.page_id_array`), where bbolt's hashmap
  sorts every free id each time it writes the freelist.
"""

from __future__ import annotations

import random
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from heapq import heappop, heappush
from typing import Literal

from sortedcontainers import SortedList

from ._shared import MAX_ID, SharedFreelist, runs_of
from .errors import InvalidArgumentError

__all__ = ["POLICIES", "HashmapFreelist", "Policy"]

#: Allocation policies of :class:`HashmapFreelist`.
Policy = Literal["best-fit", "bbolt"]
POLICIES: tuple[Policy, ...] = ("best-fit", "bbolt")

# Runs of at most this many pages are found by probing `forward`; longer runs
# are indexed by their end in `_large`.
_SMALL = 4


class HashmapFreelist(SharedFreelist):
    """The freelist as hash maps of free runs, O(1) allocation and merging.

    ``HashmapFreelist(ids=(), *, policy="best-fit", seed=0)`` builds the
    freelist from a sorted iterable of free page ids.

    ``policy`` chooses the run when no run of exactly ``n`` pages exists:
    ``"best-fit"`` (default) takes the smallest larger run, lowest start on ties;
    ``"bbolt"`` takes a larger size chosen at random (bbolt iterates a Go map),
    using ``random.Random(seed)``.  Exact fits always take the lowest start.

    :raises InvalidTypeError: an id is not an int.
    :raises InvalidPageIdsError: the ids are unsorted, repeat, or name a meta page.
    :raises InvalidArgumentError: unknown ``policy``.

    Runtime complexity (S runs, D distinct run sizes, L runs longer than four
    pages): build O(F + S log S); :meth:`allocate` O(1) expected for an exact
    fit, O(log D + log L) when it splits a larger run (amortised, heaps are
    compacted lazily); :meth:`free` O(n) expected; :meth:`release` O(1) expected
    per run merged (O(log L) when a long run changes end); memory proportional
    to S, not to F.
    """

    __slots__ = (
        "_backward",
        "_forward",
        "_free",
        "_heaps",
        "_large",
        "_live",
        "_policy",
        "_rng",
        "_sizes",
    )

    _forward: dict[int, int]
    _backward: dict[int, int]
    _heaps: dict[int, list[int]]
    _live: dict[int, int]
    _sizes: list[int]
    _large: SortedList
    _free: int

    def __init__(self, ids: Iterable[int] = (), *, policy: Policy = "best-fit", seed: int = 0):
        if policy not in POLICIES:
            raise InvalidArgumentError(f"policy must be one of {POLICIES}, got {policy!r}")
        self._policy: Policy = policy
        self._rng = random.Random(seed)
        super().__init__(ids)

    def __repr__(self) -> str:
        return (
            f"HashmapFreelist(free={self._free}, pending={self.pending_count}, "
            f"spans={len(self._forward)}, policy={self._policy!r})"
        )

    @property
    def policy(self) -> Policy:
        """The allocation policy, ``"best-fit"`` or ``"bbolt"``.

        Runtime complexity: O(1).
        """
        return self._policy

    @property
    def span_count(self) -> int:
        """Number of free runs.

        Runtime complexity: O(1).
        """
        return len(self._forward)

    # Storage hooks -------------------------------------------------------

    def _init_storage(self, ids: list[int]) -> None:
        fwd: dict[int, int] = {}
        bwd: dict[int, int] = {}
        heaps: dict[int, list[int]] = {}
        for s, n in runs_of(ids):
            fwd[s] = n
            bwd[s + n] = n
            heap = heaps.get(n)
            if heap is None:
                heaps[n] = [s]
            else:
                heap.append(s)  # starts arrive ascending: already a heap
        self._forward = fwd
        self._backward = bwd
        self._heaps = heaps
        self._live = {k: len(v) for k, v in heaps.items()}
        self._sizes = sorted(heaps)
        self._large = SortedList(e for e, n in bwd.items() if n > _SMALL)
        self._free = len(ids)

    @property
    def free_count(self) -> int:
        """Number of free pages.

        Runtime complexity: O(1).
        """
        return self._free

    def _unlink_size(self, k: int) -> None:
        """The last run of size ``k`` is gone: drop the size from the index."""
        del self._live[k]
        del self._heaps[k]
        sizes = self._sizes
        del sizes[bisect_left(sizes, k)]

    def _link_size(self, start: int, k: int) -> None:
        """Index a new run ``(start, k)`` by its size."""
        heap = self._heaps.get(k)
        if heap is None:
            self._heaps[k] = [start]
            self._live[k] = 1
            sizes = self._sizes
            sizes.insert(bisect_left(sizes, k), k)
            return
        heappush(heap, start)
        c = self._live[k] + 1
        self._live[k] = c
        if len(heap) > 2 * c + 16:
            self._compact(k)

    def _compact(self, k: int) -> None:
        """Drop the stale and duplicate entries of size ``k``'s heap.

        Called when more than half of the heap is stale, so its cost is
        amortised over the operations that made the entries stale, and every
        heap stays within twice its live runs (plus 16).
        """
        fwd = self._forward
        heap = self._heaps[k]
        heap[:] = sorted({s for s in heap if fwd.get(s) == k})

    def _take(self, n: int) -> int:
        heaps = self._heaps
        heap = heaps.get(n)
        k = n
        if heap is None:
            sizes = self._sizes
            i = bisect_right(sizes, n)
            if i == len(sizes):
                return 0
            if self._policy == "bbolt":
                i = self._rng.randrange(i, len(sizes))
            k = sizes[i]
            heap = heaps[k]
        fwd = self._forward
        while True:
            a = heappop(heap)
            if fwd.get(a) == k:
                break
        del fwd[a]
        end = a + k
        # The run (a, k) leaves the size index (inline _unlink_size).
        live = self._live
        c = live[k] - 1
        if c:
            live[k] = c
            if len(heap) > 2 * c + 16:
                self._compact(k)
        else:
            del live[k]
            del heaps[k]
            sizes = self._sizes
            del sizes[bisect_left(sizes, k)]
        if k == n:
            del self._backward[end]
            if k > _SMALL:
                self._large.remove(end)
        else:
            r = k - n
            a2 = a + n
            fwd[a2] = r
            self._backward[end] = r
            self._link_size(a2, r)
            if k > _SMALL >= r:
                self._large.remove(end)
        self._free -= n
        return a

    def _put(self, spans: Iterable[tuple[int, int, int]]) -> None:
        fwd = self._forward
        bwd = self._backward
        live = self._live
        heaps = self._heaps
        large = self._large
        unlink = self._unlink_size
        added = 0
        for start, n, _ in spans:
            added += n
            s = start
            e = s + n
            keep_end = False
            psz = bwd.pop(s, None)
            if psz is not None:  # merge with the run that ends at s
                del fwd[s - psz]
                c = live[psz] - 1
                if c:
                    live[psz] = c
                    if len(heaps[psz]) > 2 * c + 16:
                        self._compact(psz)
                else:
                    unlink(psz)
                if psz > _SMALL:
                    large.remove(s)
                s -= psz
            nsz = fwd.pop(e, None)
            if nsz is not None:  # merge with the run that starts at e
                e += nsz
                c = live[nsz] - 1
                if c:
                    live[nsz] = c
                    if len(heaps[nsz]) > 2 * c + 16:
                        self._compact(nsz)
                else:
                    unlink(nsz)
                keep_end = nsz > _SMALL  # its end stays the end of the merged run
            size = e - s
            fwd[s] = size
            bwd[e] = size
            # Index the merged run by its size (inline _link_size).
            heap = heaps.get(size)
            if heap is None:
                self._link_size(s, size)
            else:
                heappush(heap, s)
                c = live[size] + 1
                live[size] = c
                if len(heap) > 2 * c + 16:
                    self._compact(size)
            if size > _SMALL and not keep_end:
                large.add(e)
        self._free += added

    def _overlaps_free(self, start: int, n: int) -> bool:
        fwd = self._forward
        # The nearest run starting at start-1, start-2 or start-3 decides whether
        # a run covers `start` from the left: runs never overlap, so nothing
        # before it can reach `start`.  Only when none starts there can a long
        # run (more than _SMALL = 4 pages) cover it, which the index answers.
        size = fwd.get(start - 1)
        if size is None:
            size = fwd.get(start - 2)
            if size is None:
                size = fwd.get(start - 3)
                if size is None:
                    return self._overlaps_long(start, n)
                if size > 3:
                    return True
            elif size > 2:
                return True
        elif size > 1:
            return True
        if n == 1:
            return start in fwd
        return not fwd.keys().isdisjoint(range(start, start + n))

    def _overlaps_long(self, start: int, n: int) -> bool:
        """Overlap test when no run starts in the three pages before ``start``."""
        fwd = self._forward
        if n == 1:
            if start in fwd:
                return True
        elif not fwd.keys().isdisjoint(range(start, start + n)):
            return True
        large = self._large
        if large:
            i = large.bisect_right(start)
            if i < len(large):
                e = large[i]
                if e - self._backward[e] < start + n:
                    return True
        return False

    def free_page_ids(self) -> list[int]:
        """The free page ids, sorted ascending, as a new list.

        Runtime complexity: O(F + S log S).
        """
        fwd = self._forward
        out: list[int] = []
        for s in sorted(fwd):
            out.extend(range(s, s + fwd[s]))
        return out

    def free_spans(self) -> list[tuple[int, int]]:
        """The free runs as sorted ``(start, length)`` pairs (maximal: runs never touch).

        Runtime complexity: O(S log S).
        """
        return sorted(self._forward.items())

    def _check_storage(self) -> None:
        fwd, bwd = self._forward, self._backward
        assert len(fwd) == len(bwd), "forward and backward maps differ in size"
        total = 0
        counts: dict[int, int] = {}
        prev_end = -1
        for s, n in sorted(fwd.items()):
            assert type(s) is int and type(n) is int
            assert n >= 1 and s >= 2 and s + n - 1 <= MAX_ID, (s, n)
            assert bwd.get(s + n) == n, f"backward map lacks the end of run {s}+{n}"
            assert s > prev_end, f"run at {s} touches or overlaps the previous run (unmerged)"
            prev_end = s + n
            total += n
            counts[n] = counts.get(n, 0) + 1
        assert total == self._free, f"free count {self._free} != {total}"
        assert counts == self._live, "per-size counts are wrong"
        assert self._sizes == sorted(counts), "size index is wrong"
        assert set(self._heaps) == set(counts)
        by_size: dict[int, set[int]] = {}
        for s, n in fwd.items():
            by_size.setdefault(n, set()).add(s)
        for k, heap in self._heaps.items():
            assert all(heap[(i - 1) // 2] <= heap[i] for i in range(1, len(heap))), "not a heap"
            assert by_size[k] <= set(heap), f"a run of size {k} is missing from its heap"
            assert len(heap) <= 2 * len(by_size[k]) + 17, f"size {k}'s heap is not compacted"
        assert list(self._large) == sorted(s + n for s, n in fwd.items() if n > _SMALL), (
            "long-run index is wrong"
        )
