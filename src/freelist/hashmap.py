"""The hashmap freelist: free pages kept as runs ("spans") in hash maps.

This is the structure Alibaba contributed to bbolt for etcd: instead of one
sorted array of page ids, keep the free runs themselves,

* ``forward``:  start -> size of the run starting there,
* ``backward``: end -> size of the run ending there (``end`` is one past the
  last page),
* by size: size -> the starts of the runs of that size,

so an allocation of ``n`` pages takes a run of exactly ``n`` in O(1), and a
released run finds the run just before it (``backward[start]``) and just after
it (``forward[start + n]``) in O(1) and merges with them.  Here ``forward``
and ``backward`` are one run table indexed by page (below).

What this implementation adds beyond bbolt:

* **Deterministic best fit.**  bbolt takes "any" larger run in Go's random map
  order when no exact fit exists.  Here the default policy takes the smallest
  run that fits, lowest start on ties: each size keeps its starts in a
  descending stack (the starts present at build, and runs given back below all
  of them: O(1) pops) and a heap (any other run), stale entries are skipped
  lazily and compacted, and the sizes present are
  kept in a sorted list searched by bisection, so no scan over sizes or runs
  is ever needed.  ``policy="bbolt"`` keeps bbolt's rule (exact fit, else a
  larger size picked at random, from a seeded generator so runs repeat).
* **First fit at hashmap speed.**  ``policy="first-fit"`` makes exactly the
  array's choices (the lowest-starting run of at least ``n`` pages, its first
  ``n`` pages taken): a byte per page of the run table holds the length
  (capped at 255) of the run that starts there, under two levels of upper
  bounds (a byte per 256 pages, a byte per 65,536), searched in C by
  compiled byte classes; a run given back sets its byte and raises two
  bounds, with no search (see :class:`_FirstFitHashmap`).  Each policy is
  its own subclass of the shared run table, so neither pays for the other's
  index.
* **No hash entry per free page.**  bbolt keeps a hash set of every free
  page id to answer "is this page free?".  Here the free and pending pages
  are one byte each in the shared page map (one byte per page of the file,
  see :mod:`freelist._shared`), and the runs answer for pages past the map:
  a run of at most four pages that contains page ``p`` starts at one of
  ``p-3 .. p`` (found by probing the run table); longer runs are few and are
  indexed by their end in a :class:`sortedcontainers.SortedList`.  Allocating
  from the front of a long run keeps its end, so the index rarely changes.
* **A run table indexed by page, not hash maps.**  A run's start and end
  are entries of one table indexed by page id: ``+n`` where a run of
  ``n`` pages starts, ``-n`` where one ends (one past its last page), 0
  elsewhere.  A table of 2**20 pages or more is an ``array('i')`` (4 bytes a
  page), a smaller one a list (CPython indexes lists faster).  At 10^6
  free pages a hit in a dict of 700,000 int keys misses the cache several
  times (hash slot, entry, key object, value: about 0.5 us
  here); a table slot is one word, and a short run's two entries share a
  cache line, so an allocation or a release touches about one line where the
  dicts touched several.  A run taken whole clears its two entries (nothing
  stale is left).  The table covers the pages below a bound of at most
  ``_TAB_PER_RUN`` = 12 pages (48 bytes as an array) per free or pending
  run: at build,
  the longest prefix of the runs that holds at least a run per 12 pages (and
  an eighth more than the top, to grow into); it grows, doubling within the
  bound, when runs come back close past its end.  The entries of pages past
  it are kept, the same way, in a dict (the *spill*): a file whose runs are
  sparser than that (a few long runs, far pages) keeps them there, as bbolt
  keeps them in its maps.
* **The sorted id list without a sort per commit** (see
  :meth:`~freelist._shared.SharedFreelist.page_id_array`), where bbolt's hashmap
  sorts every free id each time it writes the freelist.
"""

from __future__ import annotations

import itertools
import operator
import random
import re
from array import array
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, MutableSequence
from functools import partial
from heapq import heappop, heappush, heapreplace
from itertools import pairwise
from typing import Any, Literal

from sortedcontainers import SortedList

from ._shared import _MAP_PER_RUN, SharedFreelist
from .errors import InvalidArgumentError
from .runs import MAX_ID, RunChunks, run_chunks

__all__ = ["POLICIES", "HashmapFreelist", "Policy"]

#: Allocation policies of :class:`HashmapFreelist`.
Policy = Literal["best-fit", "bbolt", "first-fit"]
POLICIES: tuple[Policy, ...] = ("best-fit", "bbolt", "first-fit")

# Runs of at most this many pages are found by probing the run starts (table or
# spill); longer runs are indexed by their end in `_large`.
_SMALL = 4

# The run table covers page ids below max(_TAB_MIN, _TAB_PER_RUN * (free +
# pending runs + 1)) (8 bytes a page: at most 96 bytes a run); a new table
# gets an eighth of its top as room to grow (plus _TAB_ROOM pages).
_TAB_MIN = 1 << 8
_TAB_PER_RUN = 12
_TAB_ROOM = 64
# A run given back past the table's bound recomputes the bound (O(D)) after
# this many others did not.
_TAB_RECHECK = 1024


#: A run table of at least this many pages is an ``array('i')``, 4 bytes a
#: page (a list slot is 8, and the cache misses of a large table count more
#: than CPython's faster list subscripts); a shorter one is a list.  So is a
#: table with a run of 2**31 pages or more (:meth:`HashmapFreelist._widen`).
#: The same for best fit's stacks of starts: an ``array('Q')`` (8 bytes a
#: start, no int object per start) from ``_COMPACT_FRONT`` entries.
_COMPACT = 1 << 20
_COMPACT_FRONT = 1 << 16

#: The largest entry of an ``array('i')`` table, and the table's largest
#: bound (so that an end entry, less than the bound, always fits).
_TAB_MAX = (1 << 31) - 1


def _compact(tab: MutableSequence[int]) -> MutableSequence[int]:
    """``tab`` as an ``array('i')`` (itself if it is one), or as it is when
    an entry does not fit."""
    if type(tab) is array:
        return tab
    try:
        return array("i", tab)
    except OverflowError:
        return tab


def _zeros(tab: MutableSequence[int], k: int) -> None:
    """Append ``k`` zero entries to a run table."""
    if type(tab) is array:
        tab.frombytes(bytes(k * tab.itemsize))
    else:
        tab.extend(itertools.repeat(0, k))


def _fill(
    tab: MutableSequence[int],
    spill: dict[int, int],
    size: int,
    *,
    starts: list[int],
    lens: list[int],
    ends: list[int],
) -> None:
    """Write a chunk of runs into a table of ``size`` pages (and the spill
    past it), after moving in the spilled entries below ``size``; done
    again whole after an OverflowError, so every step can be repeated."""
    if spill:
        moved = [p for p in spill if p < size]
        any(map(operator.setitem, itertools.repeat(tab), moved, map(spill.__getitem__, moved)))
        for p in moved:
            del spill[p]
    m = len(starts)
    i = bisect_left(starts, size)
    j = bisect_left(ends, size)
    if i == m and j == m:
        any(map(operator.setitem, itertools.repeat(tab), starts, lens))
        any(map(operator.setitem, itertools.repeat(tab), ends, _negs(lens)))
    else:
        any(map(operator.setitem, itertools.repeat(tab), starts[:i], lens[:i]))
        any(map(operator.setitem, itertools.repeat(tab), ends[:j], _negs(lens[:j])))
        spill.update(zip(starts[i:], lens[i:], strict=True))
        spill.update(zip(ends[j:], _negs(lens[j:]), strict=True))


#: -n for n in 0 .. 256: an end's table entry shares one int object per size
#: (CPython caches only -5 .. 256).
_NEG = [-n for n in range(257)]


def _negs(lens: list[int]) -> Iterable[int]:
    """``-n`` for each ``n`` of ``lens`` (shared int objects when all are at most 256)."""
    if lens and max(lens) <= 256:
        return map(_NEG.__getitem__, lens)
    return map(operator.neg, lens)


def _prefix_bound(ends: list[int], before: int, per: int) -> int:
    """``per * (before + i + 1)`` for the last run ``i`` of a chunk whose end
    ``ends[i]`` lies below it (``before`` runs came in earlier chunks), or 0."""
    m = len(ends)
    k = next(
        itertools.compress(
            range(m - 1, -1, -1),
            map(operator.lt, reversed(ends), range(per * (before + m), per * before, -per)),
        ),
        -1,
    )
    return per * (before + k + 1) if k >= 0 else 0


class HashmapFreelist(SharedFreelist):
    """The freelist as hash maps of free runs, O(1) allocation and merging.

    ``HashmapFreelist(ids=(), *, policy="best-fit", seed=0)`` builds the
    freelist from a sorted iterable of free page ids.

    ``policy`` chooses the run when no run of exactly ``n`` pages exists:
    ``"best-fit"`` (default) takes the smallest larger run, lowest start on ties;
    ``"bbolt"`` takes a larger size chosen at random (bbolt iterates a Go map),
    using ``random.Random(seed)``.  Exact fits always take the lowest start.
    ``"first-fit"`` ignores sizes: it takes the first ``n`` pages of the
    lowest-starting run of at least ``n`` pages, exactly what
    :class:`~freelist.ArrayFreelist` (and bbolt's array) returns for every
    sequence of calls.

    :raises InvalidTypeError: an id is not an int.
    :raises InvalidPageIdsError: the ids are unsorted, repeat, or name a meta page.
    :raises InvalidArgumentError: unknown ``policy``.

    Runtime complexity (S runs, D distinct run sizes, L runs longer than four
    pages): build O(F + S log S); :meth:`allocate` O(1) expected for an exact
    fit, O(log D + log L) when it splits a larger run (amortised, heaps are
    compacted lazily); :meth:`free` O(n); :meth:`release` O(1) expected per
    run merged (O(log L) when a long run changes end; amortised O(1) for the
    run table's growth); memory proportional to S (the run table: at most 48
    bytes a run as an array, 96 as a list), plus one byte per page of the
    file (the page map): about 36 bytes a run at 10^6 and 10^7 free pages in
    runs of one and two pages (tables of 2**20 pages or more are compact
    arrays; about 90 at 10^5, whose table is a list), more where the runs
    are sparse enough to be spilled to a dict.  First fit: :meth:`allocate`
    O(log H) for one page (H runs given back behind the pages handed out)
    plus, when it searches, C-level scans of at most 256 bytes a level and
    T/65,536 at the top (T the table's pages), amortised over the bounds its
    releases raised; :meth:`release` O(1) per run merged in the table (plus
    a heap push behind the front), O(log S') for the S' runs past it;
    :meth:`free` O(n); memory about 34 bytes a run at 10^6 and 10^7, plus
    the page map.
    """

    # This class is the run table both policies share (the table, its spill,
    # the long-run index, merging, the checks); each policy is a subclass with
    # its own index of the runs: _BestFitHashmap (best fit and bbolt's rule)
    # and _FirstFitHashmap.  HashmapFreelist(...) makes the policy's subclass.
    __slots__ = (
        "_free",
        "_grow_at",
        "_large",
        "_lim",
        "_nruns",
        "_policy",
        "_recheck",
        "_spill",
        "_tab",
    )

    #: the run table: ``_tab[p]`` is ``n`` when a free run of ``n`` pages
    #: starts at page ``p``, ``-n`` when one ends there (``p`` one past its
    #: last page), 0 otherwise; it covers the pages below ``_lim``.
    _tab: MutableSequence[int]
    _lim: int
    #: the table's entries at or past ``_lim``: page -> ``n`` or ``-n`` as above.
    _spill: dict[int, int]
    #: the table's bound when it was last computed (it may grow below it), and
    #: how many more runs may go to ``_spill`` before the bound is computed again.
    _grow_at: int
    _recheck: int
    #: the number of free runs.
    _nruns: int
    _large: SortedList
    _free: int

    def __new__(
        cls,
        ids: Iterable[int] = (),  # noqa: ARG004 - __init__ takes them
        *,
        policy: Policy = "best-fit",
        seed: int = 0,  # noqa: ARG004
    ) -> HashmapFreelist:
        # Each policy is a subclass with its own index of the runs and its own
        # _take and _put, so neither hot path pays for the other's index.
        if cls is not HashmapFreelist:
            return object.__new__(cls)
        return object.__new__(_FirstFitHashmap if policy == "first-fit" else _BestFitHashmap)

    def __init__(
        self,
        ids: Iterable[int] = (),
        *,
        policy: Policy = "best-fit",
        seed: int = 0,  # noqa: ARG002 - bbolt's rule's (see _BestFitHashmap)
    ):
        if policy not in POLICIES:
            raise InvalidArgumentError(f"policy must be one of {POLICIES}, got {policy!r}")
        self._policy: Policy = policy
        super().__init__(ids)

    def __repr__(self) -> str:
        return (
            f"HashmapFreelist(free={self._free}, pending={self.pending_count}, "
            f"spans={self.span_count}, policy={self._policy!r})"
        )

    @property
    def policy(self) -> Policy:
        """The allocation policy, ``"best-fit"``, ``"bbolt"`` or ``"first-fit"``.

        Runtime complexity: O(1).
        """
        return self._policy

    @property
    def span_count(self) -> int:
        """Number of free runs.

        Runtime complexity: O(1).
        """
        return self._nruns

    # Storage hooks -------------------------------------------------------

    def _init_storage(self, ids: Iterable[int]) -> None:
        self._init_runs(run_chunks(ids))

    def _init_from(
        self,
        ids: Iterable[int],  # noqa: ARG002 - the array's
        runs: Callable[[], RunChunks],
    ) -> None:
        # Built from runs: no pass over every id where the source has runs.
        self._init_runs(runs())

    # The policy's hooks: its index of the runs.

    def _init_runs(self, chunks: RunChunks) -> None:
        """Replace the free set with the runs of ``chunks``: sorted, disjoint,
        maximal runs as ``(starts, lengths)`` list pairs, a chunk at a time
        (the policy builds its index beside :meth:`_init_table`)."""
        raise NotImplementedError

    def _index_lone(self, s: int, n: int) -> None:
        """Index a new run ``(s, n)`` that touches no other run."""
        raise NotImplementedError

    def _grown(self, old: int) -> None:
        """The run table grew from ``old`` pages to ``_lim`` (see :meth:`_fit`);
        the spilled entries below ``_lim`` moved into it."""

    def _check_index(self) -> None:
        """Assert the policy's index of the runs."""
        raise NotImplementedError

    def _init_table(self, chunks: RunChunks) -> Iterator[tuple[list[int], list[int]]]:
        """Build the run table, its spill, the long-run index and the free
        count from ``chunks`` (see :meth:`_init_runs`), passing each chunk on
        to the caller's index; done when the caller has taken every chunk.

        The table covers the longest prefix of the runs with at most
        ``_TAB_PER_RUN`` pages a run (a sparser one would cost more than the
        dict entries it saves), and at most an eighth more than the top.
        """
        per = _TAB_PER_RUN
        # built as an array (zeros appended in C), a list at the end if short
        tab: MutableSequence[int] = array("i")
        spill: dict[int, int] = {}
        long_ends: list[int] = []
        runs = free = top = lim_ok = grow_ok = 0
        for starts, lens in chunks:
            m = len(starts)
            if m:
                ends = list(map(operator.add, starts, lens))
                # the table's bound: one past the last run i whose end is below
                # per * (the runs up to it); while building, twice that, so
                # that a sparse start of the file (pages in use first) does
                # not spill runs the bound takes back later
                lim_ok = max(lim_ok, _prefix_bound(ends, runs, per))
                grow_ok = max(grow_ok, _prefix_bound(ends, runs, 2 * per))
                top = ends[-1]
                size = min(grow_ok, top + 1, _TAB_MAX)
                if size > len(tab):
                    _zeros(tab, size - len(tab))
                try:
                    _fill(tab, spill, size, starts=starts, lens=lens, ends=ends)
                except OverflowError:  # a run of 2**31 pages or more
                    tab = list(tab)
                    _fill(tab, spill, size, starts=starts, lens=lens, ends=ends)
                long_ends += itertools.compress(
                    ends, map(operator.gt, lens, itertools.repeat(_SMALL))
                )
                runs += m
                free += sum(lens)
            yield starts, lens
        lim = min(lim_ok, top + (top >> 3) + _TAB_ROOM, _TAB_MAX)
        if len(tab) > lim:
            # built past the bound: the entries there go to the spill
            tail = tab[lim:]
            spill.update(
                zip(itertools.compress(itertools.count(lim), tail), filter(None, tail), strict=True)
            )
            del tab[lim:], tail
        _zeros(tab, lim - len(tab))
        if lim < _COMPACT and type(tab) is array:
            tab = tab.tolist()
        self._tab = tab
        self._lim = lim
        self._spill = spill
        self._grow_at = self._tab_cap(runs)
        self._recheck = _TAB_RECHECK
        self._large = SortedList(long_ends)
        self._free = free
        self._nruns = runs

    def _tab_cap(self, runs: int) -> int:
        """The longest run table allowed for ``runs`` free runs (plus the pending ones)."""
        pending = sum(map(len, self._pending.values()))
        return min(max(_TAB_MIN, _TAB_PER_RUN * (runs + pending + 1)), _TAB_MAX)

    def _fit(self, e: int) -> None:
        """Compute the run table's bound again and, when page ``e`` is close
        past the table's end (the free list grows with its file), grow the
        table to cover it if the bound allows (doubling, within the bound);
        the spilled entries it then covers move into it, unless there are more
        of them than the pages it adds.  A page farther out stays spilled: the
        table covers a dense prefix of the file (a sparse file keeps its runs
        in the spill)."""
        lim = self._lim
        cap = self._tab_cap(self.span_count)
        self._grow_at = cap
        self._recheck = _TAB_RECHECK
        if e < lim or e >= cap or e > 2 * lim + _TAB_ROOM:
            return
        new = min(max(e + 1, 2 * lim), cap)
        spill = self._spill
        if len(spill) > new - lim:
            self._grow_at = lim  # not again before the next recheck
            return
        tab = self._tab
        if new >= _COMPACT:
            tab = self._tab = _compact(tab)
        _zeros(tab, new - lim)
        self._lim = new
        moved = [p for p in spill if p < new]
        try:
            any(map(operator.setitem, itertools.repeat(tab), moved, map(spill.__getitem__, moved)))
        except OverflowError:  # a run of 2**31 pages or more
            tab = self._widen()
            any(map(operator.setitem, itertools.repeat(tab), moved, map(spill.__getitem__, moved)))
        for p in moved:
            del spill[p]
        self._grown(lim)

    def _widen(self) -> MutableSequence[int]:
        """The run table as a list (a run of 2**31 pages or more must fit)."""
        self._tab = list(self._tab)
        return self._tab

    def _start_at(self, p: int) -> int:
        """The size of the free run that starts at page ``p``, 0 if none."""
        v = (self._tab[p] if p >= 0 else 0) if p < self._lim else self._spill.get(p, 0)
        return v if v > 0 else 0

    def _end_at(self, p: int) -> int:
        """The size of the free run that ends at ``p`` (one past its last page), 0 if none."""
        v = (self._tab[p] if p >= 0 else 0) if p < self._lim else self._spill.get(p, 0)
        return -v if v < 0 else 0

    @property
    def free_count(self) -> int:
        """Number of free pages.

        Runtime complexity: O(1).
        """
        return self._free

    def _map_budget(self, extra: int) -> int:  # noqa: ARG002 - the array's
        # Per run, so that a free list of a few long runs keeps a small map.
        pending = sum(map(len, self._pending.values()))
        return _MAP_PER_RUN * (self.span_count + pending + 1)

    def _free_top(self) -> int:
        spill = self._spill
        if spill:
            return max(spill)  # the end of the last run
        # The table's last entry is the end of its last run (negative).
        tab = self._tab
        return next(itertools.compress(range(len(tab) - 1, -1, -1), reversed(tab)), 0)

    def _fill_map(self, fm: bytearray) -> None:
        size = len(fm)
        ones = b"\x01"
        for s, n in self.free_spans():
            e = s + n
            if e <= size:
                if n == 1:
                    fm[s] = 1
                else:
                    fm[s:e] = ones * n
            elif s < size:
                fm[s:size] = ones * (size - s)
            else:
                break

    def _put1(self, s: int, n: int) -> None:
        # One run given back touching no free run (the usual one-run commit):
        # _put without its loop and merging; otherwise _put.
        e = s + n
        lim = self._lim
        if e < lim:
            tab = self._tab
            if tab[s] or tab[e]:
                self._put(((s, n, 0),))
                return
            tab[s] = n
            tab[e] = -n
        else:
            # Past the table: _put when the run straddles it, touches a run,
            # or may make the table grow (see _fit).
            spill = self._spill
            if (
                s < lim
                or s in spill
                or e in spill
                or (e <= 2 * lim + _TAB_ROOM and e < self._grow_at)
            ):
                self._put(((s, n, 0),))
                return
            spill[s] = n
            spill[e] = -n
        self._index_lone(s, n)
        if n > _SMALL:
            self._large.add(e)
        self._free += n
        self._nruns += 1

    def _take_past(self, a: int, n: int, k: int) -> None:
        """Update the entries of the run ``(a, k)`` that ends past the table
        when its first ``n`` pages are taken, entry by entry in the table or
        the spill (its start, if spilled, was popped by the caller).  The
        slow path of both policies' ``_take``."""
        tab, lim, spill = self._tab, self._lim, self._spill
        end = a + k
        if a < lim:
            tab[a] = 0
        if k == n:
            del spill[end]
        else:
            if a + n < lim:
                tab[a + n] = k - n
            else:
                spill[a + n] = k - n
            spill[end] = n - k

    def _merge_past(self, s: int, e: int) -> tuple[int, int]:
        """Write the entries of a run ``[s, e)`` given back past the table,
        merged with the run that ends at ``s`` and the run that starts at
        ``e``, entry by entry in the table or the spill (the table may grow
        first, see :meth:`_fit`); the sizes of the two runs merged (0: none).
        The slow path of both policies' ``_put``."""
        c = self._recheck - 1
        if c <= 0 or (e <= 2 * self._lim + _TAB_ROOM and e < self._grow_at):
            self._fit(e)
        else:
            self._recheck = c
        tab, lim, spill = self._tab, self._lim, self._spill
        if s < lim:
            psz = -tab[s]
            if psz:
                tab[s] = 0
        else:
            psz = -spill.pop(s, 0)
        if e < lim:
            nsz = tab[e]
            if nsz:
                tab[e] = 0
        else:
            nsz = spill.pop(e, 0)
        f = s - psz
        g = e + nsz
        size = g - f
        if f < lim:
            try:
                tab[f] = size
            except OverflowError:  # a run of 2**31 pages or more
                self._widen()[f] = size
        else:
            spill[f] = size
        if g < lim:
            tab[g] = -size
        else:
            spill[g] = -size
        return psz, nsz

    def _any_start(self, lo: int, hi: int) -> bool:
        """Whether a free run starts at a page of ``lo .. hi-1``."""
        lim = self._lim
        if lo < lim:
            tab = self._tab
            if hi - lo == 1:
                if tab[lo] > 0:
                    return True
            elif any(map(operator.lt, itertools.repeat(0), tab[lo : min(hi, lim)])):
                return True
            if hi <= lim:
                return False
            lo = lim
        spill = self._spill
        if not spill:
            return False
        if hi - lo == 1:
            return spill.get(lo, 0) > 0
        zeros = itertools.repeat(0)
        return any(map(operator.lt, zeros, map(spill.get, range(lo, hi), zeros)))

    def _overlaps_free(self, start: int, n: int) -> bool:
        tab = self._tab
        lim = self._lim
        spill = self._spill
        # The nearest run starting at start-1, start-2 or start-3 decides whether
        # a run covers `start` from the left: runs never overlap, so nothing
        # before it can reach `start`.  Only when none starts there can a long
        # run (more than _SMALL = 4 pages) cover it, which the index answers.
        for d in (1, 2, 3):
            p = start - d
            v = spill.get(p, 0) if p >= lim else tab[p] if p >= 0 else 0
            if v > 0:  # (a negative entry is an end)
                if v > d:
                    return True
                break
        else:
            # No run starts in the three pages before `start`: a run starting
            # inside the range, or a long run, may cover it.
            if n == 1:
                if (spill.get(start, 0) if start >= lim else tab[start]) > 0:
                    return True
            elif self._any_start(start, start + n):
                return True
            # The first long run ending after `start` (SortedList's own lists,
            # bisected in C).
            large = self._large
            maxes = large._maxes
            if maxes:
                pos = bisect_right(maxes, start)
                if pos < len(maxes):
                    sub = large._lists[pos]
                    e = sub[bisect_right(sub, start)]
                    # (the entry at an end is minus the run's length)
                    return bool((spill[e] if e >= lim else tab[e]) + e < start + n)
            return False
        if n == 1:
            return (spill.get(start, 0) if start >= lim else tab[start]) > 0
        return self._any_start(start, start + n)

    def free_page_ids(self) -> list[int]:
        """The free page ids, sorted ascending, as a new list.

        Runtime complexity: O(F + T + S' log S'), T the length of the run
        table (a small multiple of S), S' the runs past it.
        """
        out: list[int] = []
        for s, n in self.free_spans():
            out.extend(range(s, s + n))
        return out

    def free_spans(self) -> list[tuple[int, int]]:
        """The free runs as sorted ``(start, length)`` pairs (maximal: runs never touch).

        Runtime complexity: O(T + S' log S'), T the length of the run table (a
        small multiple of S, read in C), S' the runs that start past it.
        """
        tab = self._tab
        starts = list(
            itertools.compress(range(len(tab)), map(operator.lt, itertools.repeat(0), tab))
        )
        out = list(zip(starts, map(tab.__getitem__, starts), strict=True))
        if self._spill:
            out.extend(sorted(item for item in self._spill.items() if item[1] > 0))
        return out

    def _check_storage(self) -> None:
        tab, lim = self._tab, self._lim
        assert len(tab) == lim, "the table's bound is not its length"
        spans = self.free_spans()
        total = 0
        prev_end = -1
        for s, n in spans:
            assert type(s) is int and type(n) is int
            assert n >= 1 and s >= 2 and s + n - 1 <= MAX_ID, (s, n)
            assert self._end_at(s + n) == n, f"no end entry for run {s}+{n}"
            assert s > prev_end, f"run at {s} touches or overlaps the previous run (unmerged)"
            prev_end = s + n
            total += n
        # Every entry is a run's, and every run has its two: the table and the
        # spill are exactly what the runs make them.
        want = [0] * lim
        spill: dict[int, int] = {}
        for s, n in spans:
            if s < lim:
                want[s] = n
            else:
                spill[s] = n
            if s + n < lim:
                want[s + n] = -n
            else:
                spill[s + n] = -n
        assert list(tab) == want, "the run table holds an entry of no run"
        assert type(tab) is list or (type(tab) is array and tab.typecode == "i"), "table type"
        assert self._spill == spill, "the spilled entries are not the runs'"
        assert self._recheck > 0, "the bound's countdown ran out"
        assert len(spans) == self.span_count, "run count is wrong"
        assert total == self._free, f"free count {self._free} != {total}"
        self._check_index()


class _BestFitHashmap(HashmapFreelist):
    """``HashmapFreelist(policy="best-fit")`` and ``policy="bbolt"``: the runs
    indexed by size (see the module docs).

    ``_by`` maps each size present to its record, a list ``[front, heap,
    live]``: the starts of its runs in a descending stack (``front``, whose
    last entry is its lowest; an ``array('Q')`` from :data:`_COMPACT_FRONT`
    entries, 8 bytes a start and no int object per start) and a heap
    (``heap``, the runs given back above the stack's lowest), and how many
    runs of the size are free (``live``).  Entries of runs merged or taken
    since are stale, recognised by the run table, and compacted away when
    they pass twice the live runs (plus 16).  One record per size, one dict
    lookup for each size a run leaves or joins; a list, which CPython makes
    and indexes faster than an object with slots.  ``_sizes`` is the sorted
    list of the sizes present.
    """

    __slots__ = ("_by", "_rng", "_sizes")

    _by: dict[int, list[Any]]
    _sizes: list[int]

    def __init__(self, ids: Iterable[int] = (), *, policy: Policy = "best-fit", seed: int = 0):
        #: bbolt's rule picks a larger size at random, from a seeded generator.
        self._rng = random.Random(seed)
        super().__init__(ids, policy=policy, seed=seed)

    def _init_runs(self, chunks: RunChunks) -> None:
        # Loops in C: the table filled through maps of operator.setitem, and
        # one append per run to its size's front through a defaultdict.
        grouped: defaultdict[int, array[int]] = defaultdict(partial(array, "Q"))
        group = grouped.__getitem__
        for starts, lens in self._init_table(chunks):
            any(map(array.append, map(group, lens), starts))
        by = {}
        for k, got in grouped.items():
            got.reverse()  # starts arrived ascending: each front is descending
            front: MutableSequence[int] = got if len(got) >= _COMPACT_FRONT else got.tolist()
            by[k] = [front, [], len(front)]
        self._by = by
        self._sizes = sorted(by)

    def _unlink(self, k: int) -> None:
        """The last run of size ``k`` is gone: drop the size from the index."""
        del self._by[k]
        sizes = self._sizes
        del sizes[bisect_left(sizes, k)]

    def _link(self, s: int, n: int) -> None:
        """Index a new run ``(s, n)`` by its size."""
        st = self._by.get(n)
        if st is None:
            self._by[n] = [[s], [], 1]
            sizes = self._sizes
            sizes.insert(bisect_left(sizes, n), n)
            return
        front = st[0]
        heap = st[1]
        if s < (front[-1] if front else heap[0] if heap else s + 1):
            front.append(s)  # a new lowest start: no sift through the heap
        else:
            heappush(heap, s)
        c = st[2] = st[2] + 1
        if len(front) + len(heap) > 2 * c + 16:
            self._compact(st, n)

    def _compact(self, st: list[Any], k: int) -> None:
        """Drop the stale and duplicate entries of size ``k``'s record.

        Called when more than half of them are stale, so its cost is
        amortised over the operations that made the entries stale, and every
        size's entries stay within twice its live runs (plus 16).
        """
        at = self._start_at
        live = sorted({s for s in (*st[1], *st[0]) if at(s) == k}, reverse=True)
        st[0] = array("Q", live) if len(live) >= _COMPACT_FRONT else live
        st[1] = []

    def _take(self, n: int) -> int:
        by = self._by
        st = by.get(n)
        k = n
        if st is None:
            sizes = self._sizes
            i = bisect_right(sizes, n)
            if i == len(sizes):
                return 0
            if self._policy == "bbolt":
                i = self._rng.randrange(i, len(sizes))
            k = sizes[i]
            st = by[k]
        tab = self._tab
        lim = self._lim
        # The lowest start of size k is the lower of the front stack's top
        # (descending, so its last entry is its lowest) and the heap's root;
        # entries of runs merged away since are skipped.
        front: MutableSequence[int] = st[0]
        heap: list[int] = st[1]
        while True:
            a = front.pop() if front and (not heap or front[-1] < heap[0]) else heappop(heap)
            if a < lim:
                if tab[a] == k:
                    break
            else:
                v = self._spill.pop(a, 0)  # (put back below if stale)
                if v == k:
                    break
                if v:
                    self._spill[a] = v
        end = a + k
        # The run (a, k) leaves the size index.
        c = st[2] - 1
        if c:
            st[2] = c
            if len(front) + len(heap) > 2 * c + 16:
                self._compact(st, k)
        else:
            self._unlink(k)
        # The run's entries: cleared when it is taken whole (for a short run,
        # on one cache line), else its start moves and its end changes.
        if end < lim:
            tab[a] = 0
            if k == n:
                tab[end] = 0
            else:
                tab[a + n] = k - n
                tab[end] = n - k
        else:  # past the table (every run of a sparse file)
            self._take_past(a, n, k)
        if k == n:
            self._nruns -= 1
            if k > _SMALL:
                self._large.remove(end)
        else:
            r = k - n
            self._link(a + n, r)
            if k > _SMALL >= r:
                self._large.remove(end)
        self._free -= n
        return a

    def _put(self, spans: Iterable[tuple[int, int, int]]) -> None:
        tab = self._tab
        lim = self._lim
        spill = self._spill
        by = self._by
        large = self._large
        added = 0
        runs = self._nruns
        for start, n, _ in spans:
            added += n
            runs += 1
            s = start
            e = s + n
            if e < lim:
                # The run before ends at s (a negative entry), the run after
                # starts at e (a positive one): the merged run overwrites the
                # entries of the run before (its start) and after (its end).
                psz = tab[s]
                nsz = tab[e]
                if psz:
                    tab[s] = 0
                    psz = -psz
                    s -= psz
                if nsz:
                    tab[e] = 0
                    e += nsz
                size = e - s
                if e < lim:
                    tab[s] = size
                    tab[e] = -size
                else:
                    spill[e] = -size  # the run after ends past the table
                    try:
                        tab[s] = size
                    except OverflowError:  # a run of 2**31 pages or more
                        tab = self._widen()
                        tab[s] = size
            else:
                # Past the table (every run of a sparse file): see _merge_past.
                psz, nsz = self._merge_past(s, e)
                tab = self._tab
                lim = self._lim
                s -= psz
                e += nsz
                size = e - s
            # The merged runs leave their sizes' records (their entries go
            # stale, recognised by the table, already updated above).
            if psz:
                runs -= 1
                st = by[psz]
                c = st[2] - 1
                if c:
                    st[2] = c
                    if len(st[0]) + len(st[1]) > 2 * c + 16:
                        self._compact(st, psz)
                else:
                    self._unlink(psz)
                if psz > _SMALL:
                    large.remove(start)
            keep_end = False
            if nsz:
                runs -= 1
                st = by[nsz]
                c = st[2] - 1
                if c:
                    st[2] = c
                    if len(st[0]) + len(st[1]) > 2 * c + 16:
                        self._compact(st, nsz)
                else:
                    self._unlink(nsz)
                keep_end = nsz > _SMALL  # its end stays the end of the merged run
            # Index the merged run by its size (inline _link).
            rec = by.get(size)
            if rec is None:
                self._link(s, size)
            else:
                front = rec[0]
                heap = rec[1]
                if s < (front[-1] if front else heap[0] if heap else s + 1):
                    front.append(s)  # a new lowest start (a page given back)
                else:
                    heappush(heap, s)
                c = rec[2] = rec[2] + 1
                if len(front) + len(heap) > 2 * c + 16:
                    self._compact(rec, size)
            if size > _SMALL and not keep_end:
                large.add(e)
        self._free += added
        self._nruns = runs

    # a run given back that touches no other run (see HashmapFreelist._put1)
    _index_lone = _link

    def _check_index(self) -> None:
        """Assert the policy's index of the runs (best fit: sizes and heaps)."""
        fwd = dict(self.free_spans())
        counts: dict[int, int] = {}
        for n in fwd.values():
            counts[n] = counts.get(n, 0) + 1
        assert {k: st[2] for k, st in self._by.items()} == counts, "per-size counts are wrong"
        assert self._sizes == sorted(counts), "size index is wrong"
        by_size: dict[int, set[int]] = {}
        for s, n in fwd.items():
            by_size.setdefault(n, set()).add(s)
        for k, st in self._by.items():
            heap, front = st[1], st[0]
            assert type(front) is list or (type(front) is array and front.typecode == "Q"), (
                "front neither a list nor an array('Q')"
            )
            assert type(heap) is list, "heap not a list"
            assert all(heap[(i - 1) // 2] <= heap[i] for i in range(1, len(heap))), "not a heap"
            assert all(a > b for a, b in pairwise(front)), "front not descending"
            assert by_size[k] <= {*heap, *front}, f"a run of size {k} is missing from its heap"
            assert len(heap) + len(front) <= 2 * len(by_size[k]) + 17, f"size {k} not compacted"
        assert list(self._large) == sorted(s + n for s, n in fwd.items() if n > _SMALL), (
            "long-run index is wrong"
        )


# --- first fit -------------------------------------------------------------------

#: Target number of runs per block of the first-fit index of spilled runs: a
#: block splits in two above twice this many runs and merges with a neighbour
#: below a quarter of it.
_FF_LOAD = 512

#: _FF_FIND[n] (1 <= n <= 255) matches the first byte >= n of capped run
#: lengths: the scan for the first run that fits runs in C.
_FF_FIND = [re.compile(b"[\\x%02x-\\xff]" % max(k, 1)) for k in range(256)]
_FF_BIG = re.compile(b"\\xff")


def _bucket_maxes(buf: bytearray) -> bytearray:
    """The largest byte of each 256 bytes of ``buf`` (the last group may be shorter)."""
    size = len(buf)
    return bytearray(
        map(max, map(buf.__getitem__, map(slice, range(0, size, 256), range(256, size + 256, 256))))
    )


class _FirstFitHashmap(HashmapFreelist):
    """``HashmapFreelist(policy="first-fit")``: the array's choices, no
    bisection per run given back.

    The runs that start in the run table are indexed by one byte per page of
    the table (``_pb``): the run's length capped at 255 where a run starts, 0
    elsewhere.  Above it, ``_b1`` holds a byte per bucket of 256 pages and
    ``_b2`` a byte per group of 256 buckets, each an upper bound of the bytes
    below it.  A run given back sets its start's byte and raises the two
    bounds when they are lower (two comparisons, no search); a run taken
    clears its byte and leaves the bounds.  An allocation of ``n`` pages
    searches the groups, then the buckets of the first group, then the pages
    of the first bucket whose bound is at least ``n`` for the first byte that
    large (each a compiled byte-class search, in C); a bound found stale (no
    byte that large under it) is lowered, paid for by the allocations that
    made it stale.  One-page allocations (most of them) take the lowest run:
    below ``_front`` every run start is also in the heap ``_holes`` (runs
    given back behind the pages handed out), so the lowest is the heap's
    top or the first byte from ``_front``, which the allocation moves past.

    The runs that start past the table (a sparse file's, in its spill) are
    kept ordered by start in blocks (the way ``sortedcontainers`` keeps a
    sorted list), each block as a list of starts, a parallel ``bytearray`` of
    the run lengths capped at 255, and its longest run; a binary max-tree
    over the blocks' longest runs finds the first block that holds a run of
    ``n`` pages.  A block's recorded longest run is an upper bound, lowered
    the same way.  Every run in the table starts below every spilled run, so
    an allocation looks past the table only when no run in it fits.
    """

    __slots__ = (
        "_b1",
        "_b2",
        "_bl",
        "_bmin",
        "_bs",
        "_down",
        "_front",
        "_hi",
        "_holes",
        "_lo",
        "_lv",
        "_pb",
    )

    #: a byte per page of the run table: min(n, 255) where a run of n pages starts.
    _pb: bytearray
    #: a byte per 256 pages of _pb, a byte per 256 bytes of _b1: upper bounds.
    _b1: bytearray
    _b2: bytearray
    #: every run that starts in the table below _front has its start in the
    #: heap _holes (which may also hold starts of runs gone since).
    _front: int
    _holes: list[int]
    #: spilled run starts by block, ascending.
    _bs: list[list[int]]
    #: their lengths by block, capped at 255, parallel to _bs.
    _bl: list[bytearray]
    #: first start of each block, for bisection.
    _bmin: list[int]
    #: the max-tree: _lv[0][b] bounds block b's longest run from above;
    #: _lv[d][i] = max(_lv[d-1][2i], _lv[d-1][2i+1]); _lv[-1] = [root].
    _lv: list[list[int]]
    #: _lv[-2::-1]: the levels a search walks down.
    _down: list[list[int]]
    _hi: int
    _lo: int

    def _init_runs(self, chunks: RunChunks) -> None:
        # The run table, its spill and the long-run index as best fit's; the
        # byte map from the starts in the table, the blocks from the others.
        starts: list[int] = []
        caps = bytearray()
        for chunk, lens in self._init_table(chunks):
            starts += chunk
            caps += bytes(map(min, lens, itertools.repeat(255)))
        lim = self._lim
        i = bisect_left(starts, lim)
        pb = bytearray(lim)
        any(map(operator.setitem, itertools.repeat(pb), starts[:i], caps[:i]))
        self._pb = pb
        self._b1 = _bucket_maxes(pb)
        self._b2 = _bucket_maxes(self._b1)
        self._front = 0
        self._holes = []
        del starts[:i], caps[:i]
        load = _FF_LOAD
        self._hi = 2 * load
        self._lo = max(1, load // 4)
        self._bs = [starts[i : i + load] for i in range(0, len(starts), load)]
        self._bl = [caps[i : i + load] for i in range(0, len(caps), load)]
        if len(self._bs) > 1 and len(self._bs[-1]) < self._lo:
            last, tail = self._bs.pop(), self._bl.pop()
            self._bs[-1] += last
            self._bl[-1] += tail
        self._bmin = [blk[0] for blk in self._bs]
        self._build([self._block_max(b) for b in range(len(self._bs))])

    # The byte map of the runs in the table -------------------------------------

    def _near_set(self, s: int, n: int) -> None:
        """A run of ``n`` pages starts at table page ``s``: its byte and bounds."""
        c = n if n < 255 else 255
        self._pb[s] = c
        i = s >> 8
        b1 = self._b1
        if b1[i] < c:
            b1[i] = c
            i >>= 8
            self._b2[i] = max(self._b2[i], c)

    def _near_find(self, c: int, b: int) -> int:
        """The lowest table page in bucket ``b`` (256 pages) or after whose
        byte is at least ``c`` (1 .. 255), or -1.  A bound found stale on the
        way (no byte of ``c`` or more under it) is lowered to ``c - 1``:
        still an upper bound, exact for one-page searches (the most), and
        O(1) where the true maximum costs a pass over its 256 bytes; each
        lowering undoes part of a raise, so their number is bounded by the
        raises'."""
        search = _FF_FIND[c].search
        pb, b1, b2 = self._pb, self._b1, self._b2
        nb = len(b1)
        while b < nb:
            g = b >> 8
            m = search(b1, b, (g + 1) << 8) if b & 255 else None
            if m is None:
                # the groups from b's (b starts one) or the next
                m = search(b2, g + 1 if b & 255 else g)
                if m is None:
                    return -1
                g = m.start()
                m = search(b1, g << 8, (g + 1) << 8)
                if m is None:  # a stale group bound
                    b2[g] = c - 1
                    b = (g + 1) << 8
                    continue
            b = m.start()
            s0 = b << 8
            m = search(pb, s0, s0 + 256)
            if m is not None:
                return m.start()
            b1[b] = c - 1  # a stale bucket bound
            b += 1
        return -1

    def _near_long(self, n: int, a: int) -> int:
        """The lowest table page from ``a`` where a run of at least ``n`` (256
        or more) pages starts, or -1: the runs whose byte is 255, in order."""
        tab = self._tab
        while True:
            m = _FF_BIG.search(self._pb, a, (a | 255) + 1)
            a = m.start() if m is not None else self._near_find(255, (a >> 8) + 1)
            if a < 0 or tab[a] >= n:
                return a
            a += 1

    def _grown(self, old: int) -> None:
        # The table grew: its new pages get bytes, and the runs that start
        # there leave the blocks for the byte map.
        lim = self._lim
        self._pb.extend(bytes(lim - old))
        b1, b2 = self._b1, self._b2
        b1.extend(bytes(((lim + 255) >> 8) - len(b1)))
        b2.extend(bytes(((len(b1) + 255) >> 8) - len(b2)))
        tab = self._tab
        moved = list(
            itertools.compress(range(old, lim), map(operator.lt, itertools.repeat(0), tab[old:lim]))
        )
        for s in moved:
            b, j = self._locate(s)
            self._remove(b, j)
            self._near_set(s, tab[s])

    # The blocks of the spilled runs ---------------------------------------------

    def _block_max(self, b: int) -> int:
        """The true longest run of block ``b``."""
        v = max(self._bl[b])
        if v == 255:
            v = max(map(self._start_at, self._bs[b]))
        return v

    def _build(self, maxes: list[int]) -> None:
        """Rebuild the max-tree over the blocks' longest runs (C-level map per level)."""
        lv = [maxes if maxes else [0]]
        cur = lv[0]
        while len(cur) > 1:
            if len(cur) & 1:
                cur.append(0)
            cur = list(map(max, cur[0::2], cur[1::2]))
            lv.append(cur)
        self._lv = lv
        self._down = lv[-2::-1]

    def _raise(self, b: int, v: int) -> None:
        """Block ``b`` now holds a run of ``v`` pages: raise its bound and ancestors."""
        for level in self._lv:
            if level[b] >= v:
                return
            level[b] = v
            b >>= 1

    def _lower(self, b: int) -> None:
        """Set block ``b``'s bound to its true longest run and repair the ancestors."""
        lv = self._lv
        lv[0][b] = self._block_max(b)
        for d in range(1, len(lv)):
            below = lv[d - 1]
            b >>= 1
            v = max(below[2 * b], below[2 * b + 1])
            if lv[d][b] == v:
                return
            lv[d][b] = v

    def _find(self, n: int) -> int:
        """The first block whose bound is at least ``n`` (the root's must be)."""
        i = 0
        for level in self._down:
            i <<= 1
            if level[i] < n:
                i += 1
        return i

    def _locate(self, s: int) -> tuple[int, int]:
        """Block and position of the spilled run starting at ``s`` (which must exist)."""
        b = bisect_right(self._bmin, s) - 1
        return b, bisect_left(self._bs[b], s)

    def _maxes(self) -> list[int]:
        return self._lv[0][: len(self._bs)]

    def _remove(self, b: int, j: int) -> None:
        """Drop the run at position ``j`` of block ``b`` from the index."""
        blk = self._bs[b]
        del blk[j]
        del self._bl[b][j]
        if len(blk) < self._lo:
            self._shrink(b)
        elif not j:
            self._bmin[b] = blk[0]

    def _shrink(self, b: int) -> None:
        """Block ``b`` fell below the low-water mark: drop it or merge it."""
        bs, bl, bmin = self._bs, self._bl, self._bmin
        maxes = self._maxes()
        if not bs[b]:
            del bs[b], bl[b], bmin[b], maxes[b]
        elif len(bs) > 1:
            c = b - 1 if b else b
            bs[c] += bs[c + 1]
            bl[c] += bl[c + 1]
            maxes[c] = max(maxes[c], maxes[c + 1])
            del bs[c + 1], bl[c + 1], bmin[c + 1], maxes[c + 1]
            bmin[c] = bs[c][0]
            if len(bs[c]) > self._hi:
                self._split(c, maxes)
        else:
            bmin[b] = bs[b][0]
            return
        self._build(maxes)

    def _split(self, b: int, maxes: list[int]) -> None:
        """Cut block ``b`` in two halves (``maxes`` is updated, not the tree)."""
        bs, bl = self._bs, self._bl
        half = len(bs[b]) >> 1
        bs.insert(b + 1, bs[b][half:])
        bl.insert(b + 1, bl[b][half:])
        del bs[b][half:], bl[b][half:]
        self._bmin.insert(b + 1, bs[b + 1][0])
        maxes[b : b + 1] = [self._block_max(b), self._block_max(b + 1)]

    def _insert(self, s: int, n: int) -> None:
        """Index a new spilled run ``(s, n)`` that touches no other run."""
        bs = self._bs
        cap = n if n < 255 else 255
        if not bs:
            bs.append([s])
            self._bl.append(bytearray((cap,)))
            self._bmin.append(s)
            self._build([n])
            return
        bmin = self._bmin
        b = max(bisect_right(bmin, s) - 1, 0)
        blk = bs[b]
        j = bisect_left(blk, s)
        blk.insert(j, s)
        self._bl[b].insert(j, cap)
        if not j:
            bmin[b] = s
        if len(blk) > self._hi:
            maxes = self._maxes()
            maxes[b] = max(maxes[b], n)
            self._split(b, maxes)
            self._build(maxes)
        elif n > self._lv[0][b]:
            self._raise(b, n)

    def _far_first(self, n: int) -> tuple[int, int]:
        """Block and position of the first spilled run of at least ``n`` pages
        (block -1: none); stale block bounds found on the way are lowered."""
        if n == 1:
            return (0, 0) if self._bs else (-1, 0)
        lv = self._lv
        while True:
            if lv[-1][0] < n:
                return -1, 0
            b = 0 if lv[0][0] >= n else self._find(n)
            if n < 256:
                m = _FF_FIND[n].search(self._bl[b])
                if m is not None:
                    return b, m.start()
            else:
                blk = self._bs[b]
                for m in _FF_BIG.finditer(self._bl[b]):
                    if self._start_at(blk[m.start()]) >= n:
                        return b, m.start()
            self._lower(b)  # the bound was stale: no run of n in block b

    # Storage hooks ------------------------------------------------------------

    def _index_lone(self, s: int, n: int) -> None:
        # a run given back that touches no other run (see HashmapFreelist._put1)
        if s < self._lim:
            self._near_set(s, n)
            if s < self._front:
                heappush(self._holes, s)
        else:
            self._insert(s, n)

    def _take(self, n: int) -> int:
        pb = self._pb
        holes = self._holes
        hole = False
        if n == 1:
            # the lowest run: the heap's top (its stale entries dropped) or
            # the first start from _front (its bucket first, mostly enough)
            while holes:
                a = holes[0]
                if pb[a]:
                    hole = True
                    break
                heappop(holes)
            else:
                f = self._front
                m = _FF_FIND[1].search(pb, f, (f | 255) + 1)
                if m is not None:
                    a = m.start()
                else:
                    a = self._near_find(1, (f >> 8) + 1)
                    if a < 0:
                        return self._take_far(1)
                self._front = a + 1
        else:
            # from the heap's top (no valid hole lies below it) or _front
            f = self._front
            if holes and holes[0] < f:
                f = holes[0]
            a = self._near_find(n, f >> 8) if n < 256 else self._near_long(n, f)
            if a < 0:
                return self._take_far(n)
        tab = self._tab
        lim = self._lim
        k = tab[a]
        end = a + k
        if end < lim:  # (as best fit's _take)
            tab[a] = 0
            if k == n:
                tab[end] = 0
            else:
                tab[a + n] = k - n
                tab[end] = n - k
        else:
            self._take_past(a, n, k)
        pb[a] = 0
        if k == n:
            if hole:
                heappop(holes)
            self._nruns -= 1
            if k > _SMALL:
                self._large.remove(end)
        else:
            r = k - n
            if k > _SMALL >= r:
                self._large.remove(end)
            a += n
            if a < lim:
                self._near_set(a, r)
                if a < self._front:
                    if hole:
                        heapreplace(holes, a)
                    else:
                        heappush(holes, a)
                elif hole:
                    heappop(holes)
            else:
                self._insert(a, r)
            a -= n
        self._free -= n
        return a

    def _take_far(self, n: int) -> int:
        """:meth:`_take` from the spilled runs (no run in the table fits)."""
        b, j = self._far_first(n)
        if b < 0:
            return 0
        blk = self._bs[b]
        a = blk[j]
        k = self._spill.pop(a)
        end = a + k
        self._take_past(a, n, k)
        if k == n:
            self._nruns -= 1
            self._remove(b, j)
            if k > _SMALL:
                self._large.remove(end)
        else:
            r = k - n
            if k > _SMALL >= r:
                self._large.remove(end)
            blk[j] = a + n
            self._bl[b][j] = r if r < 255 else 255
            if not j:
                self._bmin[b] = a + n
        self._free -= n
        return a

    def _put(self, spans: Iterable[tuple[int, int, int]]) -> None:
        tab = self._tab
        lim = self._lim
        pb, b1, b2 = self._pb, self._b1, self._b2
        large = self._large
        added = 0
        runs = self._nruns
        front = self._front
        holes = self._holes
        for start, n, _ in spans:
            added += n
            runs += 1
            s = start
            e = s + n
            if e < lim:
                # The table's entries as best fit's _put; the run after (at e)
                # leaves the byte map, the merged run's start (s, or the start
                # of the run before) gets its byte and raises its bounds.
                psz = tab[s]
                nsz = tab[e]
                if psz:
                    tab[s] = 0
                    psz = -psz
                    s -= psz
                if nsz:
                    tab[e] = 0
                    pb[e] = 0
                    e += nsz
                size = e - s
                if e < lim:
                    tab[s] = size
                    tab[e] = -size
                else:
                    self._spill[e] = -size
                    try:
                        tab[s] = size
                    except OverflowError:  # a run of 2**31 pages or more
                        tab = self._widen()
                        tab[s] = size
                c = size if size < 255 else 255
                pb[s] = c
                i = s >> 8
                if b1[i] < c:
                    b1[i] = c
                    i >>= 8
                    b2[i] = max(b2[i], c)
                if s < front and not psz:
                    heappush(holes, s)  # a new start behind the front
            else:  # past the table (see _merge_past): the slow path
                psz, nsz = self._merge_past(s, e)
                tab = self._tab
                lim = self._lim
                s -= psz
                e += nsz
                size = e - s
                self._put_past(start, n, psz, nsz)
            if psz:
                runs -= 1
                if psz > _SMALL:
                    large.remove(start)
            keep_end = False
            if nsz:
                runs -= 1
                keep_end = nsz > _SMALL  # its end stays the end of the merged run
            if size > _SMALL and not keep_end:
                large.add(e)
        self._free += added
        self._nruns = runs
        if len(holes) > runs + 64:  # stale entries: drop them
            holes[:] = sorted({s for s in holes if pb[s]})

    def _put_past(self, start: int, n: int, psz: int, nsz: int) -> None:
        """The index's side of a run ``(start, n)`` given back past the table,
        merged with a run of ``psz`` pages before it and one of ``nsz`` after
        (0: none), each start in the byte map or the blocks."""
        lim = self._lim
        s = start - psz
        e = start + n  # the start of the run after, if any
        size = psz + n + nsz
        cap = size if size < 255 else 255
        if nsz and not psz and s >= lim:
            # the run after now starts at s: in place in its block
            b, j = self._locate(e)
            self._bs[b][j] = s
            self._bl[b][j] = cap
            if not j:
                self._bmin[b] = s
            if size > self._lv[0][b]:
                self._raise(b, size)
            return
        if nsz:
            if e < lim:
                self._pb[e] = 0
            else:
                b, j = self._locate(e)
                self._remove(b, j)
        if s < lim:
            self._near_set(s, size)
            if s < self._front and not psz:
                heappush(self._holes, s)
        elif psz:
            b, j = self._locate(s)
            self._bl[b][j] = cap
            if size > self._lv[0][b]:
                self._raise(b, size)
        else:
            self._insert(s, size)

    def _check_index(self) -> None:
        # The runs as the table and spill hold them.
        fwd = dict(self.free_spans())
        lim, pb, b1, b2 = self._lim, self._pb, self._b1, self._b2
        assert list(self._large) == sorted(s + n for s, n in fwd.items() if n > _SMALL), (
            "long-run index is wrong"
        )
        want = bytearray(lim)
        for s, n in fwd.items():
            if s < lim:
                want[s] = min(n, 255)
        assert pb == want, "the byte map is not the table's runs"
        assert len(b1) == (lim + 255) >> 8 and len(b2) == (len(b1) + 255) >> 8, "bound lengths"
        assert all(b1[i] >= max(pb[i << 8 : (i + 1) << 8]) for i in range(len(b1))), "bucket bound"
        assert all(b2[i] >= max(b1[i << 8 : (i + 1) << 8]) for i in range(len(b2))), "group bound"
        front, holes = self._front, self._holes
        assert all(holes[(i - 1) // 2] <= holes[i] for i in range(1, len(holes))), "not a heap"
        assert {s for s in fwd if s < min(front, lim)} <= set(holes), "a run behind _front unheaped"
        assert front <= lim, "_front past the table"
        far = {s: n for s, n in fwd.items() if s >= lim}
        bs, bl, bmin, lv = self._bs, self._bl, self._bmin, self._lv
        assert len(bs) == len(bl) == len(bmin), "block lists differ in length"
        assert [s for blk in bs for s in blk] == sorted(far), "blocks are not the spilled runs"
        for b, blk in enumerate(bs):
            assert blk, f"block {b} is empty"
            assert len(blk) <= self._hi, f"block {b} is too long"
            assert len(bs) == 1 or len(blk) >= self._lo, f"block {b} is too short"
            assert bmin[b] == blk[0], f"block {b}'s first start is wrong"
            assert bytes(bl[b]) == bytes(min(far[s], 255) for s in blk), f"block {b}'s lengths"
            assert lv[0][b] >= max(far[s] for s in blk), f"block {b}'s bound is too low"
        assert all(v == 0 for v in lv[0][len(bs) :]), "padding of the tree is not 0"
        for d in range(1, len(lv)):
            below = lv[d - 1]
            assert len(below) % 2 == 0, f"tree level {d - 1} is not padded"
            want_lv = [max(below[i], below[i + 1]) for i in range(0, len(below), 2)]
            if len(want_lv) < len(lv[d]):
                want_lv.append(0)  # this level's own padding
            assert lv[d] == want_lv, f"tree level {d} is wrong"
        assert len(lv[-1]) == 1 and self._down == lv[-2::-1]


# Each policy's class shows the public name (``PageFile.stats().freelist``, a
# replay's ``type``); its qualified name (repr of the class, pickling) stays
# its own.
_BestFitHashmap.__name__ = _FirstFitHashmap.__name__ = "HashmapFreelist"
