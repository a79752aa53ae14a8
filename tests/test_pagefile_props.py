"""Property test of PageFile: random transactions against a dict model of page contents.

The model maps each committed run (start page -> bytes) to what was written.
Writers allocate runs and write random bytes, free committed runs, commit or
roll back; readers hold snapshots while writers change the file; the file is
closed and reopened at random points (in the no-sync mode the reopen rebuilds
the free pages from the model's runs).  After every step each committed run
reads back exactly, an open reader still reads its snapshot, and ``check()``
with the model's runs as the reachability walk finds nothing.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from freelist import PageFile, Transaction

PAGE = 1024


class PageFileMachine(RuleBasedStateMachine):
    kind = "hashmap"
    sync = True

    @initialize()
    def create(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pf-props-"))
        self.path = self.dir / "m.db"
        self.committed: dict[int, bytes] = {}
        self.pf = self.open()
        self.tx: Transaction | None = None
        self.staged: dict[int, bytes] = {}
        self.freed: set[int] = set()
        self.snapshots: list[tuple[Transaction, dict[int, bytes]]] = []

    def teardown(self) -> None:
        if getattr(self, "pf", None) is not None and not self.pf.closed:
            if self.tx is not None:
                self.tx.rollback()
            for r, _ in self.snapshots:
                r.rollback()
            self.pf.close()
        shutil.rmtree(getattr(self, "dir", "/nonexistent"), ignore_errors=True)

    def walk(self, _pf: PageFile) -> list[tuple[int, int]]:
        return [(s, -(-len(d) // PAGE)) for s, d in sorted(self.committed.items())]

    def open(self) -> PageFile:
        return PageFile.open(
            self.path,
            freelist=self.kind,
            sync_freelist=self.sync,
            page_size=PAGE,
            reachable=self.walk,
        )

    def writer(self) -> Transaction:
        if self.tx is None:
            self.tx = self.pf.begin(True)
            self.staged = {}
            self.freed = set()
        return self.tx

    @rule(n=st.integers(1, 4), data=st.data())
    def allocate_and_write(self, n: int, data: st.DataObject) -> None:
        tx = self.writer()
        start = tx.allocate(n)
        live = set(self.committed) | set(self.staged)
        for s in live:
            size = -(-len((self.committed | self.staged)[s]) // PAGE)
            assert start + n <= s or s + size <= start, f"allocated {start}+{n} overlaps run {s}"
        body = data.draw(st.binary(min_size=(n - 1) * PAGE + 1, max_size=n * PAGE))
        tx.write(start, body)
        self.staged[start] = body

    @precondition(lambda self: self.committed)
    @rule(data=st.data())
    def free_committed_run(self, data: st.DataObject) -> None:
        candidates = sorted(set(self.committed) - self.freed)
        if not candidates:
            return
        start = data.draw(st.sampled_from(candidates))
        tx = self.writer()
        tx.free(start, -(-len(self.committed[start]) // PAGE))
        self.freed.add(start)

    @precondition(lambda self: self.tx is not None)
    @rule()
    def commit(self) -> None:
        assert self.tx is not None
        self.tx.commit()
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
            assert reader.read(s, -(-len(body) // PAGE))[: len(body)] == body
        reader.rollback()

    @precondition(lambda self: self.tx is None and not self.snapshots)
    @rule()
    def reopen(self) -> None:
        self.pf.close()
        self.pf = self.open()

    @invariant()
    def committed_runs_read_back(self) -> None:
        if not hasattr(self, "pf"):
            return
        view = self.pf.begin(False)
        try:
            for s, body in self.committed.items():
                assert view.read(s, -(-len(body) // PAGE))[: len(body)] == body, s
        finally:
            view.rollback()
        if self.tx is None:
            assert self.pf.check(self.walk) == []


class HashmapSynced(PageFileMachine):
    kind, sync = "hashmap", True


class ArraySynced(PageFileMachine):
    kind, sync = "array", True


class HashmapNoSync(PageFileMachine):
    kind, sync = "hashmap", False


class ArrayNoSync(PageFileMachine):
    kind, sync = "array", False


# Each step does real file I/O, so these machines run an eighth of the
# profile's examples (the "thorough" profile still runs hundreds).
_profile = settings()
_settings = settings(
    max_examples=max(10, _profile.max_examples // 8),
    stateful_step_count=min(40, _profile.stateful_step_count),
    deadline=None,
)
TestHashmapSynced = HashmapSynced.TestCase
TestArraySynced = ArraySynced.TestCase
TestHashmapNoSync = HashmapNoSync.TestCase
TestArrayNoSync = ArrayNoSync.TestCase
for _case in (TestHashmapSynced, TestArraySynced, TestHashmapNoSync, TestArrayNoSync):
    _case.settings = _settings
del _case  # a TestCase left in the module would be collected a fifth time
