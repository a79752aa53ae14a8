"""Shrinking (issue 10): commits give the free tail of the file back.

Every built-in freelist and policy, both freelist formats (the page, and none
with a walk); readers holding older snapshots; a kill between a commit's meta
and its cut (the file is longer than its metas need: it opens, and the next
commit cuts it); a damaged newest meta after a cut (the fallback meta must fit
in the shorter file); a failed commit that had dropped the tail; the
hysteresis; ``shrink=False``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from freelist import FileIOError, PageFile, PageFileTypeError, registry
from freelist._fileio import grown_size, kept_size, shrink_limit
from freelist.layout import NO_FREELIST, Meta

PS = 1024
SPECS = registry.builtin_specs()


class Model:
    """The runs in use, with their bytes; the reachability walk of the file."""

    def __init__(self) -> None:
        self.runs: dict[int, bytes] = {}

    def walk(self, _pf: PageFile) -> list[tuple[int, int]]:
        return [(s, -(-len(b) // PS)) for s, b in sorted(self.runs.items())]

    def write(self, pf: PageFile, n: int, tag: bytes) -> int:
        with pf.update() as tx:
            start = tx.allocate(n)
            body = (tag * (n * PS))[: n * PS]
            tx.write(start, body)
            if not tx.root:
                tx.root = start
        self.runs[start] = body
        return start

    def free(self, pf: PageFile, start: int) -> None:
        with pf.update() as tx:
            tx.free(start, len(self.runs.pop(start)) // PS)

    def verify(self, pf: PageFile) -> None:
        with pf.view() as r:
            for s, body in self.runs.items():
                assert r.read(s, len(body) // PS) == body, s
        assert pf.check(self.walk) == []


def open_file(path: Path, spec: str = "array", **kw: object) -> PageFile:
    kw.setdefault("page_size", PS)
    return PageFile.open(path, freelist=spec, **kw)  # type: ignore[arg-type]


def grow_and_free(pf: PageFile, model: Model, top: int = 1000) -> int:
    """A small live run and a root at the bottom, ``top`` pages above, then
    free those: the file is 1 MiB with a free tail of about ``top`` pages.
    Returns the file size before the commits that cut it."""
    if not model.runs:
        model.write(pf, 1, b"r")  # the root
        model.write(pf, 4, b"low")
    big = model.write(pf, top, b"big")
    size = pf.stats().file_size
    model.free(pf, big)
    return size


def settle(pf: PageFile, commits: int = 3) -> None:
    """Empty commits: pending pages are released, the tail is dropped and cut."""
    for _ in range(commits):
        with pf.update():
            pass


def metas_on_disk(path: Path) -> list[Meta]:
    raw = path.read_bytes()
    return [Meta.unpack(raw, p * PS)[0] for p in (0, 1)]


# ---------------------------------------------------------------------------
# The rule.


@pytest.mark.parametrize("ps", [512, 4096, 65536, 1 << 24])
@pytest.mark.parametrize("used_pages", [3, 10, 100, 5000, 300_000, 5_000_000])
def test_kept_size_and_limit(ps: int, used_pages: int) -> None:
    used = used_pages * ps
    kept = kept_size(used, ps)
    limit = shrink_limit(used, ps)
    assert kept % ps == 0
    assert used + min(used // 8, 1 << 15) <= kept
    assert kept < limit
    assert grown_size(used) <= limit  # growth never passes the limit: no cut-and-regrow
    # A cut gives back at least an eighth of what the file keeps, and 32 KiB.
    assert limit - kept >= max(kept // 8, 1 << 15) - ps


# ---------------------------------------------------------------------------
# Shrinking, with every freelist.


@pytest.mark.parametrize("spec", SPECS)
def test_free_tail_is_cut_and_stays_valid(tmp_path: Path, spec: str) -> None:
    path = tmp_path / "f.db"
    model = Model()
    with open_file(path, spec) as pf:
        before = grow_and_free(pf, model)
        assert before >= 1000 * PS
        settle(pf)
        s = pf.stats()
        assert s.shrink
        assert s.shrinks >= 1
        assert s.hwm < 40
        assert s.file_size == path.stat().st_size < 100 * PS
        assert s.shrunk_bytes >= before - s.file_size > 0
        assert pf.freelist.all_page_ids() == [] or pf.freelist.all_page_ids()[-1] < s.hwm
        # Both metas fit in the shorter file (check() validates them).
        model.verify(pf)
        assert all(m.hwm * PS <= s.file_size for m in metas_on_disk(path))
        # The file grows again as it needs to.
        model.write(pf, 200, b"again")
        model.verify(pf)
    with open_file(path, spec, reachable=model.walk) as pf:
        model.verify(pf)


@pytest.mark.parametrize("spec", ["array", "hashmap"])
def test_no_freelist_sync_shrinks_and_rebuilds(tmp_path: Path, spec: str) -> None:
    path = tmp_path / "f.db"
    model = Model()
    with open_file(path, spec, sync_freelist=False, reachable=model.walk) as pf:
        grow_and_free(pf, model)
        settle(pf)
        assert pf.meta.freelist == NO_FREELIST
        assert pf.stats().shrinks >= 1
        model.verify(pf)
    with open_file(path, spec, sync_freelist=False, reachable=model.walk) as pf:
        assert pf.stats().hwm < 40
        model.verify(pf)


def test_shrink_false_keeps_the_size(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    model = Model()
    with open_file(path, shrink=False) as pf:
        size = grow_and_free(pf, model)
        settle(pf, 5)
        s = pf.stats()
        assert (s.shrink, s.shrinks, s.shrunk_bytes, s.file_size) == (False, 0, 0, size)
        assert s.free_tail >= 1000 - 10  # reported, not cut
        assert s.free_tail_bytes == s.free_tail * PS
        assert s.hwm > 1000
        model.verify(pf)


def test_stats_report_the_free_tail(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    model = Model()
    with open_file(path) as pf:
        model.write(pf, 1, b"r")
        big = model.write(pf, 20, b"x")
        model.write(pf, 2, b"top")
        assert pf.stats().free_tail == 0
        model.free(pf, big)
        settle(pf)
        # The freed run is not at the top: no tail, nothing cut.
        s = pf.stats()
        assert (s.free_tail, s.shrinks) == (0, 0)
        model.free(pf, max(model.runs))
        settle(pf)
        s = pf.stats()
        spans = pf.freelist.free_spans()
        assert s.free_tail == (spans[-1][1] if sum(spans[-1]) == s.hwm else 0)
        assert s.free_tail_bytes == s.free_tail * PS
        assert s.shrinks == 0  # a small file: too small a tail to be worth a cut


def test_bad_shrink_argument(tmp_path: Path) -> None:
    with pytest.raises(PageFileTypeError, match="shrink"):
        PageFile.open(tmp_path / "f.db", shrink=1)  # type: ignore[arg-type]
    assert not (tmp_path / "f.db").exists()


def test_read_only_never_shrinks(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    model = Model()
    with open_file(path, shrink=False) as pf:
        size = grow_and_free(pf, model)
        settle(pf)
    with open_file(path, readonly=True) as pf:
        assert pf.stats().shrink is False
    assert path.stat().st_size == size


# ---------------------------------------------------------------------------
# Hysteresis.


def test_no_cut_and_regrow_on_alternate_commits(tmp_path: Path) -> None:
    """After a cut, a run that grows the file and is then freed, again and
    again, does not cut the file each time."""
    path = tmp_path / "f.db"
    model = Model()
    with open_file(path, "hashmap") as pf:
        grow_and_free(pf, model)
        settle(pf)
        assert pf.stats().shrinks == 1
        kept = pf.stats().file_size
        extra = (kept - pf.meta.hwm * PS) // PS + 2  # just past the kept slack
        sizes = set()
        for _ in range(10):
            start = model.write(pf, extra, b"e")
            sizes.add(pf.stats().file_size)
            model.free(pf, start)
            settle(pf, 2)
            sizes.add(pf.stats().file_size)
        assert pf.stats().shrinks == 1, sizes
        assert len(sizes) == 1, sizes  # one growth, no cut
        assert min(sizes) > kept
        model.verify(pf)


def test_small_drops_do_not_cut(tmp_path: Path) -> None:
    """Freeing a little at the top of a file that was just cut leaves it alone."""
    path = tmp_path / "f.db"
    model = Model()
    with open_file(path) as pf:
        grow_and_free(pf, model)
        settle(pf)
        size = pf.stats().file_size
        top = model.write(pf, 8, b"t")
        model.free(pf, top)
        settle(pf)
        assert pf.stats().file_size == size
        assert pf.stats().shrinks == 1


# ---------------------------------------------------------------------------
# Readers.


@pytest.mark.parametrize("spec", ["array", "hashmap"])
def test_reader_snapshot_survives_the_cut(tmp_path: Path, spec: str) -> None:
    path = tmp_path / "f.db"
    model = Model()
    with open_file(path, spec) as pf:
        model.write(pf, 1, b"r")
        model.write(pf, 4, b"low")
        big = model.write(pf, 1000, b"big")
        snapshot = dict(model.runs)
        reader = pf.begin(False)
        model.free(pf, big)
        settle(pf)
        # The reader still sees the big run: its pages stay pending, nothing cut.
        assert pf.stats().shrinks == 0
        assert pf.stats().hwm > 1000
        for s, body in snapshot.items():
            assert reader.read(s, len(body) // PS) == body
        reader.rollback()
        settle(pf)
        assert pf.stats().shrinks == 1
        model.verify(pf)


@pytest.mark.parametrize("spec", SPECS)
def test_reader_from_before_the_cut_reads_its_pages(tmp_path: Path, spec: str) -> None:
    """A reader whose snapshot's high-water mark passes the new end of the
    file reads every page in use in its snapshot; a free page past the end is
    a library error, not a crash."""
    path = tmp_path / "f.db"
    model = Model()
    with open_file(path, spec) as pf:
        model.write(pf, 1, b"r")
        gap = model.write(pf, 32, b"g")  # where the freelist's own pages go
        model.write(pf, 4, b"low")
        model.free(pf, gap)
        settle(pf, 2)
        big = model.write(pf, 1000, b"big")
        first = pf.begin(False)  # keeps the big run pending for a while
        model.free(pf, big)
        settle(pf, 1)
        assert pf.stats().shrinks == 0
        reader = pf.begin(False)  # its snapshot covers the big run, free in it
        old_hwm = reader.hwm
        first.rollback()
        settle(pf)
        assert pf.stats().shrinks == 1
        assert old_hwm * PS > path.stat().st_size
        for s, body in model.runs.items():
            assert reader.read(s, len(body) // PS) == body
        with pytest.raises(FileIOError):
            reader.read(old_hwm - 1)
        reader.rollback()
        model.verify(pf)


# ---------------------------------------------------------------------------
# Crashes and damaged metas.

_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from freelist import PageFile, tx, _fileio

    def die(*a, **k):
        os.kill(os.getpid(), signal.SIGKILL)

    where = sys.argv[2]
    if where == "cut":
        _fileio.FileIO.shrink = die
    else:
        tx.Transaction._copy_meta = die
    pf = PageFile.open(sys.argv[1], freelist="array", page_size=1024)
    with pf.update():
        pass
    """
)


def kill_in_commit(path: Path, where: str) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    child = subprocess.run([sys.executable, "-c", _CHILD, str(path), where], env=env, check=False)
    assert child.returncode == -signal.SIGKILL


@pytest.mark.parametrize("where", ["cut", "copy"])
def test_kill_between_meta_and_cut(tmp_path: Path, where: str) -> None:
    """Killed after the meta that lowers the mark, before the cut (or before
    the copy of the meta): the file is longer than it needs, opens, passes the
    check, and the next commit cuts it."""
    path = tmp_path / "f.db"
    model = Model()
    with open_file(path) as pf:
        size = grow_and_free(pf, model)
        with pf.update():
            pass  # releases the big run; the next commit drops it
        txid = pf.meta.txid
    kill_in_commit(path, where)
    assert path.stat().st_size == size
    with open_file(path, reachable=model.walk) as pf:
        assert pf.meta.txid == txid + 1
        assert pf.meta.hwm < 40
        model.verify(pf)
        with pf.update():
            pass
        assert pf.stats().shrinks == 1
        assert path.stat().st_size < 100 * PS
        model.verify(pf)
    with open_file(path) as pf:
        model.verify(pf)


def damage(path: Path, page: int) -> None:
    with path.open("r+b") as f:
        f.seek(page * PS + 40)  # inside the checksummed fields
        b = f.read(1)
        f.seek(page * PS + 40)
        f.write(bytes([b[0] ^ 0xFF]))


@pytest.mark.parametrize("spec", ["array", "hashmap"])
def test_damaged_newest_meta_after_a_cut(tmp_path: Path, spec: str) -> None:
    """After a cut, the meta open falls back to when the newest is damaged
    fits in the shorter file (it is the same commit): the file opens with
    every page in use."""
    path = tmp_path / "f.db"
    model = Model()
    with open_file(path, spec) as pf:
        grow_and_free(pf, model)
        with pf.update():
            pass
        with pf.update():
            pass  # this commit drops the tail and cuts the file
        assert pf.stats().shrinks == 1
        meta = pf.meta
    size = path.stat().st_size
    assert size < 100 * PS
    m0, m1 = metas_on_disk(path)
    assert m0 == m1 == meta
    raw = path.read_bytes()
    for p in (0, 1):  # each copy's header names its own page
        assert int.from_bytes(raw[p * PS : p * PS + 8], "little") == p
    damage(path, meta.txid % 2)
    with open_file(path, spec) as pf:
        assert pf.meta == meta
        assert pf.check(model.walk) != []  # the damaged meta is reported
        with pf.view() as r:
            for s, body in model.runs.items():
                assert r.read(s, len(body) // PS) == body
        settle(pf, 2)  # the second commit overwrites the damaged page
        model.verify(pf)


def test_damaged_newest_meta_before_the_cut(tmp_path: Path) -> None:
    """Killed before the copy: the older meta (the higher mark) is still on
    disk and the file was not cut, so falling back to it opens the file at the
    previous commit, whose pages are all there."""
    path = tmp_path / "f.db"
    model = Model()
    with open_file(path) as pf:
        grow_and_free(pf, model)
        with pf.update():
            pass
        older = pf.meta
    kill_in_commit(path, "copy")
    damage(path, (older.txid + 1) % 2)
    with open_file(path, reachable=model.walk) as pf:
        assert pf.meta == older
        with pf.update():
            pass
        model.verify(pf)


def test_failed_commit_gives_the_tail_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit that dropped the tail and then failed before its meta leaves
    the freelist as it was: the tail is free again, below the same mark."""
    from freelist import _fileio

    path = tmp_path / "f.db"
    model = Model()
    with open_file(path, "hashmap") as pf:
        grow_and_free(pf, model)
        with pf.update():
            pass
        free_before = pf.freelist.all_page_ids()
        meta = pf.meta
        real_sync = _fileio.FileIO.sync

        def failing_sync(self: _fileio.FileIO) -> None:
            raise FileIOError(self.path, "injected")

        monkeypatch.setattr(_fileio.FileIO, "sync", failing_sync)
        with pytest.raises(FileIOError, match="injected"), pf.update():
            pass
        monkeypatch.setattr(_fileio.FileIO, "sync", real_sync)
        assert pf.meta == meta
        assert pf.freelist.all_page_ids() == free_before
        assert pf.check(model.walk) == []
        settle(pf, 1)
        assert pf.stats().shrinks == 1
        model.verify(pf)


def test_failed_copy_of_the_meta_defers_the_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit that lowers the mark is durable once its meta is synced; if
    the copy to the other meta page then fails, the commit still returns, the
    file is not cut (the older meta's mark still needs it), and the next commit
    cuts it."""
    from freelist import _fileio

    path = tmp_path / "f.db"
    model = Model()
    with open_file(path) as pf:
        size = grow_and_free(pf, model)
        with pf.update():
            pass
        real_sync = _fileio.FileIO.sync
        calls = [0]

        def third_sync_fails(self: _fileio.FileIO) -> None:
            calls[0] += 1
            if calls[0] == 3:  # freelist, meta, then the copy of the meta
                raise FileIOError(self.path, "injected")
            real_sync(self)

        monkeypatch.setattr(_fileio.FileIO, "sync", third_sync_fails)
        with pf.update():
            pass
        monkeypatch.setattr(_fileio.FileIO, "sync", real_sync)
        assert calls[0] == 3
        assert pf.meta.hwm < 40
        assert pf.stats().shrinks == 0
        assert path.stat().st_size == size
        model.verify(pf)
        with pf.update():
            pass
        assert pf.stats().shrinks == 1
        assert path.stat().st_size < 100 * PS
        model.verify(pf)
    with open_file(path) as pf:
        model.verify(pf)
