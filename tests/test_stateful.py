"""Stateful test: each freelist driven beside a plain set-based model.

The model knows pages only one at a time:

* ``free``: the set of free pages;
* ``pending``: page -> ``(freeing txid F, allocating txid A, first page of the
  freed run)``, A = 0 when the allocator of the page is unknown;
* ``in_use``: pages neither free nor pending, with ``records``: first page of
  a run the freelist allocated -> the txid that allocated it (what bbolt keeps
  in ``allocs`` and hands to the pending entry when that page is freed).

Transactions behave as in bbolt: one writer at a time with txid ``tx``, which
advances at commit; readers see a committed snapshot.  Because txids only grow,
a page is always allocated no later than it is freed (A <= F), which is what
bbolt's release rules assume.

Release rules, from bbolt's ReleasePendingPages/releaseRange (written out in
``tests/model.py``):

* ``release(t)``: pages with F <= t;
* ``release_range(b, e)``: pages with b <= F <= e and b <= A <= e;
* ``release_pending()`` with readers r1 < ... < rk: pages with F < r1, and
  pages whose A and F lie in one gap ``[ri + 1, ri+1 - 1]`` or ``[rk + 1, max]``
  (A != 0), that is, pages no reader r with A <= r <= F can see; with no
  reader open, every page (F <= 2**64-2).

Each class gets its own model, since the classes may pick different runs; each
allocation is also checked against the class's documented choice
(``model.allowed_starts``), and after every step the freelist's invariant, its
views (free runs, the sorted id array) and the model must agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from freelist import DoubleFreeError, InvalidArgumentError, MetaPageError
from freelist._shared import SharedFreelist

from .conftest import FACTORIES, FreelistFactory
from .model import allowed_starts, check, kept_by_release_pending, observe, released_by_range
from .strategies import free_id_lists, run_lengths

#: Pages ``2 .. HWM-1`` exist when the machine starts; allocations the freelist
#: cannot serve grow the file above it.
HWM = 64


class FreelistMachine(RuleBasedStateMachine):
    """One freelist and its model, in lockstep."""

    kind: ClassVar[str] = "array"

    @property
    def factory(self) -> FreelistFactory:
        return FACTORIES[self.kind]

    @initialize(ids=free_id_lists(max_page=HWM, min_runs=4))
    def build(self, ids: list[int]) -> None:
        self.fl: SharedFreelist = self.factory(ids)
        self.free: set[int] = set(ids)
        self.pending: dict[int, tuple[int, int, int]] = {}  # page -> (F, A, run start)
        self.in_use: set[int] = set(range(2, HWM)) - self.free
        self.records: dict[int, int] = {}
        self.hwm = HWM
        self.tx = 2  # the writer's txid; snapshot tx - 1 is the last committed
        self.writer_runs: list[tuple[int, int]] = []  # allocated by the freelist at tx
        self.readers: list[int] = []
        #: runs the freelist allocated that are still wholly in use: (start, n)
        self.allocated: list[tuple[int, int]] = []

    # -- model helpers ------------------------------------------------------

    def release_where(self, released: Callable[[int, int], bool]) -> None:
        """Model of a release: free every pending page whose ``(F, A)`` is ``released``."""
        for p, (f, a, _) in list(self.pending.items()):
            if released(f, a):
                del self.pending[p]
                self.free.add(p)

    def release_pending_model(self) -> None:
        self.release_where(lambda f, a: not kept_by_release_pending(a, f, self.readers))

    def take_free(self, start: int, k: int) -> None:
        """Model of ``free(self.tx, start, k)`` on in-use pages."""
        a = self.records.pop(start, 0)
        for p in range(start, start + k):
            self.in_use.remove(p)
            self.pending[p] = (self.tx, a, start)
        # Runs the free touched leave the list of allocated runs; a part before
        # `start` keeps its first page, hence its record, and stays listed.
        kept = []
        for s, n in self.allocated:
            if s + n <= start or s >= start + k:
                kept.append((s, n))
            elif s < start:
                kept.append((s, start - s))
        self.allocated = kept

    # -- rules --------------------------------------------------------------

    @rule(n=run_lengths)
    def allocate(self, n: int) -> None:
        allowed = allowed_starts(self.kind, self.free, n)
        got = self.fl.allocate(self.tx, n)
        assert got in allowed, f"allocate({n}) gave {got}; allowed {sorted(allowed)}"
        if got == 0:
            # bbolt grows the file; the freelist never hears of these pages.
            self.in_use.update(range(self.hwm, self.hwm + n))
            self.hwm += n
            return
        run = set(range(got, got + n))
        assert run <= self.free
        self.free -= run
        self.in_use |= run
        self.records[got] = self.tx
        self.writer_runs.append((got, n))
        self.allocated.append((got, n))

    @precondition(lambda self: self.allocated)
    @rule(pick=st.integers(0, 10**6), skip=st.integers(0, 3), n=st.integers(0, 9))
    def free_an_allocated_run(self, pick: int, skip: int, n: int) -> None:
        """Free a run the freelist allocated (in this or an earlier transaction):
        whole (``n == 0``) or part of it, from its first page or further in."""
        s, length = self.allocated[pick % len(self.allocated)]
        if n == 0:
            start, k = s, length
        else:
            start = s + min(skip, length - 1)
            k = min(n, s + length - start)
        self.fl.free(self.tx, start, k)
        self.take_free(start, k)

    @precondition(lambda self: self.in_use)
    @rule(pick=st.integers(0, 10**6), n=run_lengths)
    def free_in_use_pages(self, pick: int, n: int) -> None:
        """Free any run of in-use pages: pages the freelist never saw (in use
        from the start, or grown above the high-water mark), parts of allocated
        runs, or runs spanning both."""
        used = sorted(self.in_use)
        start = used[pick % len(used)]
        k = 1
        while k < n and start + k in self.in_use:
            k += 1
        self.fl.free(self.tx, start, k)
        self.take_free(start, k)

    @rule(pick=st.integers(0, 10**6), before=st.integers(0, 3), n=run_lengths)
    def refused_free(self, pick: int, before: int, n: int) -> None:
        """A run touching a free or pending page, or a meta page: refused, and
        nothing changes (not even an allocation record)."""
        known = sorted(self.free | set(self.pending))
        if known and pick % 5:
            page = known[pick % len(known)]
            start = max(2, page - before)
            n = max(n, page - start + 1)  # the run covers `page`
            error: type[Exception] = DoubleFreeError
        else:
            start, error = pick % 2, MetaPageError
        prior = observe(self.fl)
        with pytest.raises(error):
            self.fl.free(self.tx, start, n)
        assert observe(self.fl) == prior

    @rule(begin_next=st.booleans())
    def commit(self, begin_next: bool) -> None:
        """The writer commits.  bbolt releases pending pages when the next writer
        begins, which may be at once or after readers of this commit opened."""
        self.tx += 1
        self.writer_runs = []
        if begin_next:
            self.fl.release_pending()
            self.release_pending_model()

    @rule()
    def release_pending(self) -> None:
        self.fl.release_pending()
        self.release_pending_model()

    @rule(back=st.integers(0, 6))
    def release(self, back: int) -> None:
        t = max(0, self.tx - back)
        self.fl.release(t)
        self.release_where(lambda f, _a: f <= t)

    @rule(b=st.integers(0, 8), e=st.integers(-1, 8))
    def release_range(self, b: int, e: int) -> None:
        begin = max(0, self.tx - b)
        end = max(0, self.tx - e)
        self.fl.release_range(begin, end)
        self.release_where(lambda f, a: released_by_range(a, f, begin, end))

    @rule(back=st.integers(0, 4))
    def open_reader(self, back: int) -> None:
        r = max(0, self.tx - 1 - back)
        self.fl.add_reader(r)
        self.readers.append(r)

    @rule(pick=st.integers(0, 10**6))
    def close_reader(self, pick: int) -> None:
        if not self.readers or pick % 7 == 0:
            r = self.tx + pick % 3  # no reader is this new: refused, nothing changes
            prior = observe(self.fl)
            with pytest.raises(InvalidArgumentError):
                self.fl.remove_reader(r)
            assert observe(self.fl) == prior
            return
        r = self.readers.pop(pick % len(self.readers))
        self.fl.remove_reader(r)

    @rule()
    def rollback(self) -> None:
        """The writer rolls back: what it freed is in use again, each freed run
        with the allocation record it had; what it allocated is free again."""
        tx = self.tx
        self.fl.rollback(tx)
        restored: dict[int, int] = {}
        for p, (f, a, first) in list(self.pending.items()):
            if f == tx:
                del self.pending[p]
                self.in_use.add(p)
                if a and a != tx:
                    self.records[first] = a
                    restored[first] = restored.get(first, 0) + 1
        for s, n in self.writer_runs:
            if self.records.get(s) == tx:
                del self.records[s]
            for p in range(s, s + n):
                if p in self.in_use:
                    self.in_use.remove(p)
                    self.free.add(p)
        self.writer_runs = []
        self.allocated = [
            (s, n)
            for s, n in [*self.allocated, *restored.items()]
            if all(p in self.in_use for p in range(s, s + n))
        ]

    @rule(pick=st.integers(0, 10**6))
    def probe(self, pick: int) -> None:
        p = pick % (self.hwm + 4)
        assert self.fl.freed(p) == (p in self.free or p in self.pending)

    @rule(drop=st.sets(st.integers(0, 10**6), max_size=4))
    def reload(self, drop: set[int]) -> None:
        """Re-read a freelist that lists every pending page and some of the free
        ones (pages a page walk found in use): pending pages stay pending."""
        free = sorted(self.free)
        gone = {free[i % len(free)] for i in drop} if free else set()
        self.fl.reload(sorted((self.free - gone) | set(self.pending)))
        self.free -= gone
        self.in_use |= gone

    # -- invariants ---------------------------------------------------------

    @invariant()
    def agrees_with_the_model(self) -> None:
        """The invariant and the views agree (:func:`check`, which also reads the
        sorted id array, patched since the last step), and match the model."""
        fl = check(self.fl)
        assert fl.free_page_ids() == sorted(self.free)
        by_tx: dict[int, list[int]] = {}
        for p, (f, _, _) in sorted(self.pending.items()):
            by_tx.setdefault(f, []).append(p)
        assert fl.pending_page_ids() == by_tx
        assert fl.free_count == len(self.free)
        assert fl.pending_count == len(self.pending)
        assert fl.count == len(self.free) + len(self.pending)
        assert fl.page_id_array().tolist() == sorted(self.free | set(self.pending))
        assert fl.readers == sorted(self.readers)
        assert fl._allocs == self.records
        assert self.free.isdisjoint(self.in_use)
        assert self.in_use.isdisjoint(self.pending)


class ArrayMachine(FreelistMachine):
    kind = "array"


class HashmapMachine(FreelistMachine):
    kind = "hashmap"


class HashmapBboltMachine(FreelistMachine):
    kind = "hashmap-bbolt"


TestArrayFreelist = ArrayMachine.TestCase
TestHashmapFreelist = HashmapMachine.TestCase
TestHashmapBboltPolicy = HashmapBboltMachine.TestCase
