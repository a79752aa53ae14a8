"""Stateful property test: each freelist beside a plain set-based model.

The model knows nothing about runs, heaps or arrays: it keeps the free pages as
a set, the pending frees as ``(freeing txid, start, n, allocating txid)``
records, and which txid allocated each run.  Its release rule is bbolt's,
written out directly: a pending page freed by F and allocated by A is released
when F is older than every open reader, or when A and F both fall in one gap
between consecutive open readers (or after the newest).

Each class gets its own model (the classes may pick different runs).
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from freelist import ArrayFreelist, DoubleFreeError, HashmapFreelist
from freelist._shared import MAX_ID, SharedFreelist, runs_of

from .core_strategies import free_id_lists, run_lengths


class FreelistMachine(RuleBasedStateMachine):
    """Drives one freelist and a model in lockstep."""

    kind = "array"

    def make(self, ids: list[int]) -> SharedFreelist:
        raise NotImplementedError

    @initialize(ids=free_id_lists(max_page=80))
    def build(self, ids: list[int]) -> None:
        self.fl = self.make(ids)
        self.hwm = 80
        self.free: set[int] = set(ids)
        self.in_use: set[int] = set(range(2, self.hwm)) - self.free
        # (freeing txid, start, n, allocating txid), as the freelist records them
        self.pending: list[tuple[int, int, int, int]] = []
        self.records: dict[int, int] = {}  # first page of an allocated run -> txid
        self.writer = 0  # txid of the latest allocate() and its runs
        self.writer_runs: list[tuple[int, int]] = []
        self.txid = 2
        self.readers: list[int] = []

    # --- helpers ------------------------------------------------------------

    def pending_pages(self) -> set[int]:
        return {p for _, s, n, _ in self.pending for p in range(s, s + n)}

    def snapshot(self) -> tuple[Any, ...]:
        fl = self.fl
        return (fl.free_page_ids(), fl.pending_page_ids(), fl.all_page_ids(), fl.readers)

    def has_run(self, n: int) -> bool:
        return any(length >= n for _, length in runs_of(sorted(self.free)))

    # --- rules --------------------------------------------------------------

    @rule(n=run_lengths)
    def allocate(self, n: int) -> None:
        got = self.fl.allocate(self.txid, n)
        if got == 0:
            assert not self.has_run(n), f"a run of {n} was free but allocate returned 0"
            got = self.hwm  # the caller grows the file; the freelist never hears of it
            self.hwm += n
        else:
            run = set(range(got, got + n))
            assert run <= self.free, f"allocate({n}) returned {got}, not all free"
            self.check_choice(got, n)
            self.free -= run
            self.records[got] = self.txid
            if self.writer != self.txid:
                self.writer = self.txid
                self.writer_runs = []
            self.writer_runs.append((got, n))
        self.in_use |= set(range(got, got + n))

    def check_choice(self, got: int, n: int) -> None:
        """Each class's own rule for which run it picks."""
        runs = runs_of(sorted(self.free))
        if self.kind == "array":  # first fit: the lowest run that fits, from its start
            first = next(s for s, length in runs if length >= n)
            assert got == first, f"first fit should give {first}, got {got}"
        elif self.kind == "hashmap":  # best fit: smallest fitting run, lowest start
            best = min((length, s) for s, length in runs if length >= n)
            assert got == best[1], f"best fit should give {best[1]}, got {got}"
        else:  # bbolt policy: an exact fit when one exists, always a run's start
            starts = dict(runs)
            assert got in starts
            if any(length == n for length in starts.values()):
                assert starts[got] == n

    @precondition(lambda self: self.in_use)
    @rule(data=st.data())
    def free_run(self, data: st.DataObject) -> None:
        page = data.draw(st.sampled_from(sorted(self.in_use)))
        n = 1
        limit = data.draw(st.integers(1, 6))
        while n < limit and page + n in self.in_use:
            n += 1
        self.fl.free(self.txid, page, n)
        atx = self.records.pop(page, 0)
        self.pending.append((self.txid, page, n, atx))
        self.in_use -= set(range(page, page + n))

    @precondition(lambda self: self.free or self.pending)
    @rule(data=st.data())
    def double_free(self, data: st.DataObject) -> None:
        target = data.draw(st.sampled_from(sorted(self.free | self.pending_pages())))
        back = data.draw(st.integers(0, 2))
        start = max(2, target - back)
        n = target - start + 1 + data.draw(st.integers(0, 2))
        before = self.snapshot()
        try:
            self.fl.free(self.txid, start, n)
        except DoubleFreeError:
            pass
        else:
            raise AssertionError(f"free({start}, {n}) overlaps page {target} but did not raise")
        assert self.snapshot() == before

    @rule()
    def commit(self) -> None:
        self.txid += 1

    @rule()
    def open_reader(self) -> None:
        self.fl.add_reader(self.txid - 1)
        self.readers.append(self.txid - 1)

    @precondition(lambda self: self.readers)
    @rule(data=st.data())
    def close_reader(self, data: st.DataObject) -> None:
        r = data.draw(st.sampled_from(self.readers))
        self.fl.remove_reader(r)
        self.readers.remove(r)

    @rule()
    def release_pending(self) -> None:
        self.fl.release_pending()
        readers = sorted(set(self.readers))
        oldest = readers[0] if readers else MAX_ID
        gaps = [(a + 1, b - 1) for a, b in itertools.pairwise(readers)]
        if readers:
            gaps.append((readers[-1] + 1, MAX_ID))
        keep = []
        for rec in self.pending:
            ftx, s, n, atx = rec
            visible = ftx >= oldest and not any(
                lo <= ftx <= hi and lo <= atx <= hi for lo, hi in gaps
            )
            if visible:
                keep.append(rec)
            else:
                self.free |= set(range(s, s + n))
        self.pending = keep

    @rule()
    def rollback(self) -> None:
        self.fl.rollback(self.txid)
        keep = []
        for rec in self.pending:
            ftx, s, n, atx = rec
            if ftx == self.txid:
                self.in_use |= set(range(s, s + n))
                if atx and atx != self.txid:
                    self.records[s] = atx
            else:
                keep.append(rec)
        self.pending = keep
        if self.writer == self.txid:
            for s, n in self.writer_runs:
                if self.records.get(s) == self.txid:
                    del self.records[s]
                for p in range(s, s + n):
                    if p in self.in_use:
                        self.in_use.discard(p)
                        self.free.add(p)
            self.writer = 0
            self.writer_runs = []
        else:
            for s in [s for s, t in self.records.items() if t == self.txid]:
                del self.records[s]

    @rule()
    def reload(self) -> None:
        # a freelist page lists free and pending ids together
        self.fl.reload(sorted(self.free | self.pending_pages()))

    @rule()
    def serialise(self) -> None:
        assert self.fl.page_id_array().tolist() == sorted(self.free | self.pending_pages())

    # --- invariants ---------------------------------------------------------

    @invariant()
    def matches_model(self) -> None:
        fl = self.fl
        fl._check()
        assert fl.free_page_ids() == sorted(self.free)
        by_tx: dict[int, list[int]] = {}
        for ftx, s, n, _ in self.pending:
            by_tx.setdefault(ftx, []).extend(range(s, s + n))
        assert fl.pending_page_ids() == {t: sorted(v) for t, v in sorted(by_tx.items())}
        pending = self.pending_pages()
        assert fl.free_count == len(self.free)
        assert fl.pending_count == len(pending)
        assert fl.all_page_ids() == sorted(self.free | pending)
        assert self.free.isdisjoint(self.in_use)
        assert pending.isdisjoint(self.in_use)


class ArrayMachine(FreelistMachine):
    kind = "array"

    def make(self, ids: list[int]) -> SharedFreelist:
        return ArrayFreelist(ids)


class HashmapMachine(FreelistMachine):
    kind = "hashmap"

    def make(self, ids: list[int]) -> SharedFreelist:
        return HashmapFreelist(ids)


class HashmapBboltMachine(FreelistMachine):
    kind = "hashmap-bbolt"

    def make(self, ids: list[int]) -> SharedFreelist:
        return HashmapFreelist(ids, policy="bbolt", seed=11)


TestArrayFreelist = ArrayMachine.TestCase
TestHashmapFreelist = HashmapMachine.TestCase
TestHashmapBboltFreelist = HashmapBboltMachine.TestCase
