"""Property test of PageFile: random transactions against a dict model of page contents.

The model maps each committed run (start page -> bytes) to what was written.
Writers allocate runs and write random bytes, free committed runs, commit or
roll back; readers hold snapshots while writers change the file; the file is
closed and reopened at random points, each time with a freelist format drawn
at random (bbolt's page, the log, or none, whose reopen rebuilds the free pages
from the model's runs), so the file converts between formats; the machines
start in each format.  After every step each committed run
reads back exactly, an open reader still reads its snapshot, and ``check()``
with the model's runs as the reachability walk finds nothing; right after each
reopen too, so a page the stored freelist lost (neither free nor reachable once
the file is read back) is found.  Each run draws its page size from every size
a new file can have (512 bytes to 64 KiB), and allocates runs long enough to
spread the freelist over overflow pages at the small ones.  The root page
(one of the runs) is part of the model and must survive commits and reopens;
calls that must fail (writing past a run, freeing a free page, allocating in a
reader, ...) are tried at random and must leave the file and the freelist
exactly as they were.  Shrinking is on (the default) in all but one machine:
a rule frees the runs at the top of the file so that commits cut it while
readers hold older snapshots; with shrinking off the file never gets shorter.
"""

from __future__ import annotations

import shutil
import tempfile
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from freelist import FreelistError, PageFile, Transaction
from freelist.check import Bitmap
from freelist.layout import CREATE_PAGE_SIZES

FORMATS = ["bbolt", "log", "none"]


class PageFileMachine(RuleBasedStateMachine):
    kind = "hashmap"
    fmt = "bbolt"
    shrink = True

    @initialize(page_size=st.sampled_from(CREATE_PAGE_SIZES))
    def create(self, page_size: int) -> None:
        self.page_size = page_size
        self.dir = Path(tempfile.mkdtemp(prefix="pf-props-"))
        self.path = self.dir / "m.db"
        self.committed: dict[int, bytes] = {}
        self.pf = self.open()
        self.tx: Transaction | None = None
        self.staged: dict[int, bytes] = {}
        self.freed: set[int] = set()
        self.snapshots: list[tuple[Transaction, dict[int, bytes]]] = []
        self.root = 0  # the committed root (0: none), one of the committed runs
        self.size = 0  # the largest file size seen
        self.stored = "bbolt"  # the format the last commit wrote (a new file: a freelist page)

    def teardown(self) -> None:
        if getattr(self, "pf", None) is not None and not self.pf.closed:
            if self.tx is not None:
                self.tx.rollback()
            for r, _ in self.snapshots:
                r.rollback()
            self.pf.close()
        shutil.rmtree(getattr(self, "dir", "/nonexistent"), ignore_errors=True)

    def walk(self, _pf: PageFile) -> list[tuple[int, int]]:
        return [(s, -(-len(d) // self.page_size)) for s, d in sorted(self.committed.items())]

    def open(self) -> PageFile:
        return PageFile.open(
            self.path,
            freelist=self.kind,
            freelist_format=self.fmt,
            page_size=self.page_size,
            reachable=self.walk,
            shrink=self.shrink,
        )

    def writer(self) -> Transaction:
        if self.tx is None:
            self.tx = self.pf.begin(True)
            self.staged = {}
            self.freed = set()
        return self.tx

    @rule(data=st.data())
    def allocate_and_write(self, data: st.DataObject) -> None:
        ps = self.page_size
        # Mostly short runs; long ones put hundreds of ids on the freelist, over
        # several pages at the small page sizes.
        long = 300 if ps <= 1024 else 20
        n = data.draw(st.one_of(st.integers(1, 4), st.integers(5, long)), label="n")
        tx = self.writer()
        start = tx.allocate(n)
        live = set(self.committed) | set(self.staged)
        for s in live:
            size = -(-len((self.committed | self.staged)[s]) // ps)
            assert start + n <= s or s + size <= start, f"allocated {start}+{n} overlaps run {s}"
        length = data.draw(st.integers((n - 1) * ps + 1, n * ps), label="length")
        stamp = data.draw(st.binary(min_size=1, max_size=16), label="stamp")
        body = (stamp * (length // len(stamp) + 1))[:length]
        # any bytes-like object: its size in bytes is what counts
        as_type: Callable[[bytes], Any] = data.draw(
            st.sampled_from([bytes, bytearray, memoryview, lambda b: array("B", b)])
        )
        tx.write(start, as_type(body))
        self.staged[start] = body

    @precondition(lambda self: self.committed or self.staged)
    @rule(data=st.data())
    def set_root(self, data: st.DataObject) -> None:
        tx = self.writer()
        live = sorted((set(self.committed) - self.freed) | set(self.staged))
        if live:
            tx.root = data.draw(st.sampled_from(live))

    @precondition(lambda self: self.committed)
    @rule(data=st.data())
    def free_committed_run(self, data: st.DataObject) -> None:
        candidates = sorted(set(self.committed) - self.freed - {self.writer().root})
        if not candidates:
            return
        start = data.draw(st.sampled_from(candidates))
        tx = self.writer()
        tx.free(start, -(-len(self.committed[start]) // self.page_size))
        self.freed.add(start)

    @precondition(lambda self: self.committed)
    @rule()
    def free_top_runs(self) -> None:
        """Free the upper half of the committed runs (not the root): a free
        tail for the next commits to cut off."""
        tx = self.writer()
        live = sorted(set(self.committed) - self.freed - {tx.root})
        for start in live[len(live) // 2 :]:
            tx.free(start, -(-len(self.committed[start]) // self.page_size))
            self.freed.add(start)

    @precondition(lambda self: self.tx is not None)
    @rule()
    def commit(self) -> None:
        assert self.tx is not None
        self.tx.commit()
        self.stored = self.fmt
        self.root = self.tx.root
        self.tx = None
        for s in self.freed:
            del self.committed[s]
        self.committed.update(self.staged)

    @precondition(lambda self: self.tx is not None)
    @rule()
    def rollback(self) -> None:
        assert self.tx is not None
        self.tx.rollback()
        self.tx = None

    @precondition(lambda self: len(self.snapshots) < 3)
    @rule()
    def open_reader(self) -> None:
        self.snapshots.append((self.pf.begin(False), dict(self.committed)))

    @precondition(lambda self: self.snapshots)
    @rule(data=st.data())
    def close_reader(self, data: st.DataObject) -> None:
        i = data.draw(st.integers(0, len(self.snapshots) - 1))
        reader, snap = self.snapshots.pop(i)
        for s, body in snap.items():
            assert reader.read(s, -(-len(body) // self.page_size))[: len(body)] == body
        reader.rollback()

    @rule(data=st.data())
    def failing_call(self, data: st.DataObject) -> None:
        """A call that must fail, and change nothing."""
        tx = self.writer()
        fl = self.pf.freelist
        free = fl.free_page_ids()
        runs = {**self.committed, **self.staged}
        calls: list[Callable[[], object]] = [
            lambda: tx.free(0),
            lambda: tx.free(tx.hwm, 1),
            lambda: tx.read(1),
            lambda: tx.read(2, tx.hwm),
            lambda: tx.allocate(0),
            lambda: tx.write(2**70, b"x"),
            lambda: tx.write("2", b"x"),  # type: ignore[arg-type]
            lambda: self.pf.begin(True),
        ]
        if free:
            calls += [lambda: tx.free(free[0]), lambda: tx.write(free[-1], b"x")]
        for s in self.staged:
            n = -(-len(runs[s]) // self.page_size)
            calls.append(lambda s=s, n=n: tx.write(s, bytes(n * self.page_size + 1)))
        for s in set(self.committed) - self.freed:
            calls.append(lambda s=s: tx.write(s, b"x"))  # committed: not this writer's
        if self.snapshots:
            reader = self.snapshots[0][0]
            calls += [lambda: reader.allocate(1), lambda: reader.free(2)]
        call = data.draw(st.sampled_from(calls))
        before = (fl.all_page_ids(), fl.pending_page_ids(), tx.hwm, tx.root, self.pf.meta)
        with pytest.raises(FreelistError):
            call()
        assert (fl.all_page_ids(), fl.pending_page_ids(), tx.hwm, tx.root, self.pf.meta) == before

    @precondition(lambda self: self.tx is None and not self.snapshots)
    @rule(fmt=st.sampled_from(FORMATS))
    def reopen(self, fmt: str) -> None:
        self.pf.close()
        self.fmt = fmt
        if self.stored != "none":
            # The stored freelist reads back without a walk, and as it was.
            with PageFile.open(self.path, freelist=self.kind, page_size=self.page_size) as pf:
                assert pf.check(self.walk) == []
        self.pf = self.open()
        # What the file says after reading it back: every page free or reachable.
        assert self.pf.check(self.walk) == []

    @invariant()
    def committed_runs_read_back(self) -> None:
        if not hasattr(self, "pf"):
            return
        view = self.pf.begin(False)
        try:
            for s, body in self.committed.items():
                assert view.read(s, -(-len(body) // self.page_size))[: len(body)] == body, s
        finally:
            view.rollback()
        assert self.pf.meta.root == self.root
        if self.tx is None:
            assert self.pf.check(self.walk) == []  # both metas fit in the file, too
        size = self.path.stat().st_size
        if not self.shrink:
            assert size >= self.size, "the file shrank with shrink=False"
        self.size = max(self.size, size)


class HashmapSynced(PageFileMachine):
    kind, fmt = "hashmap", "bbolt"


class ArrayNoSync(PageFileMachine):
    kind, fmt = "array", "none"


class HashmapLog(PageFileMachine):
    kind, fmt = "hashmap", "log"


class ArrayLog(PageFileMachine):
    kind, fmt = "array", "log"


class HashmapSyncedNoShrink(PageFileMachine):
    kind, fmt, shrink = "hashmap", "bbolt", False


# Each step does real file I/O, so these machines run an eighth of the
# profile's examples (the "thorough" profile still runs hundreds).
_profile = settings()
_settings = settings(
    max_examples=max(10, _profile.max_examples // 8),
    stateful_step_count=min(40, _profile.stateful_step_count),
    deadline=None,
)
TestHashmapSynced = HashmapSynced.TestCase
TestArrayNoSync = ArrayNoSync.TestCase
TestHashmapLog = HashmapLog.TestCase
TestArrayLog = ArrayLog.TestCase
TestHashmapSyncedNoShrink = HashmapSyncedNoShrink.TestCase
for _case in (
    TestHashmapSynced,
    TestArrayNoSync,
    TestHashmapLog,
    TestArrayLog,
    TestHashmapSyncedNoShrink,
):
    _case.settings = _settings
del _case  # a TestCase left in the module would be collected a second time


@settings(max_examples=max(20, settings().max_examples // 2), deadline=None)
@given(
    page_size=st.sampled_from(CREATE_PAGE_SIZES[:3]),
    singles=st.integers(0, 400),
    run=st.integers(1, 12),
)
def test_freelist_page_keeps_every_reserved_page(page_size: int, singles: int, run: int) -> None:
    """Commits whose free count sits anywhere near a freelist page boundary, with
    a contiguous free run the freelist's own pages can come from: after each
    commit, and after reading the file back, every page is free or in use.

    (The class of issue 7's bug 1: reserving the freelist's pages shortens the
    list, and a header that counted only the pages the shorter list needs lost
    the rest.)
    """
    with tempfile.TemporaryDirectory(prefix="pf-fl-") as d:
        path = Path(d) / "f.db"
        with PageFile.open(path, page_size=page_size) as pf:
            with pf.update() as tx:
                root = tx.allocate(1)
                tx.root = root
                big = tx.allocate(2 * singles + run + 1)
            with pf.update() as tx:
                for i in range(singles):
                    tx.free(big + 2 * i, 1)
                tx.free(big + 2 * singles, run)
            kept = [(root, 1)] + [(big + 2 * i + 1, 1) for i in range(singles)]
            kept.append((big + 2 * singles + run, 1))
            for _ in range(3):
                with pf.update():
                    pass  # releases the pending pages; the freelist moves
                assert pf.check(lambda _pf: kept) == []
        with PageFile.open(path) as pf:
            assert pf.check(lambda _pf: kept) == []


@given(
    n=st.integers(1, 300),
    runs=st.lists(st.tuples(st.integers(0, 299), st.integers(1, 40)), max_size=12),
)
def test_bitmap_matches_a_set(n: int, runs: list[tuple[int, int]]) -> None:
    """check()'s one-bit-per-page map against a set of pages."""
    bits = Bitmap(n)
    model: set[int] = set()
    for start, length in runs:
        k = min(length, n - start) if start < n else 0
        if k < 1:
            continue
        assert bits.any(start, k) == bool(model & set(range(start, start + k)))
        bits.set(start, k)
        model |= set(range(start, start + k))
    clear = [p for p in range(n) if p not in model]
    assert list(bits.clear()) == clear
    assert bits.clear_count() == len(clear)
    assert bits.clear_map() == bytearray(p not in model for p in range(n))
