"""Regression tests for the four holes (and the smaller ones) an outside
campaign found (issue 21).  Each failed on the code before its fix."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from freelist import (
    FileTooShortError,
    FreelistError,
    NoValidMetaError,
    PageFile,
    bbolt,
    freelog,
    persist,
)
from freelist._fileio import FileIO
from freelist.bbolt import BboltTreeError
from freelist.layout import LEAF_PAGE, Meta

from .bboltfile import branch_body, leaf_body, page, watchdog, write_file

PS = 4096


# ---------------------------------------------------------------------------
# Hole 1: leaf values past their page.


def test_a_leaf_value_past_its_page_stops_the_walk(tmp_path: Path) -> None:
    # A NoFreelistSync file: a leaf with one overflow page holds a value that
    # ends at byte 7016; its header's overflow is set to 0.  The walk must
    # refuse the leaf (its value runs past the page), not list page 4 free.
    path = tmp_path / "leaf.db"
    body = leaf_body([(0, b"key", b"v" * (7016 - 16 - 16 - 3))])
    leaf = page(body, 3, PS)
    assert len(leaf) == 2 * PS
    head = struct.pack("<QHHI", 3, LEAF_PAGE, 1, 0)  # overflow 0: one page
    root = page(branch_body([(b"k", 3)]), 2, PS)
    write_file(path, PS, 6, {2: root, 3: head + leaf[16:]}, root=2)
    with watchdog(20, "the walk"), pytest.raises(BboltTreeError) as info:
        PageFile.open(path, readonly=True, reachable=bbolt.reachable)
    assert "page 3" in str(info.value)
    assert "runs past" in str(info.value)


# ---------------------------------------------------------------------------
# Hole 3: metas misplaced; a commit overwriting the newest meta.


def _raw_meta(path: Path, page: int, ps: int) -> bytes:
    return path.read_bytes()[page * ps : (page + 1) * ps]


def _put_meta(path: Path, page: int, raw: bytes, ps: int, *, header_id: int) -> None:
    data = bytearray(path.read_bytes())
    data[page * ps : (page + 1) * ps] = raw
    data[page * ps : page * ps + 8] = header_id.to_bytes(8, "little")
    path.write_bytes(bytes(data))


def _swap_metas(path: Path, ps: int, *, fix_ids: bool) -> None:
    """Swap the two meta pages; ``fix_ids``: rewrite each header to name the
    page it now sits on (so both stay valid, each on the other's page)."""
    m0, m1 = _raw_meta(path, 0, ps), _raw_meta(path, 1, ps)
    _put_meta(path, 0, m1, ps, header_id=0 if fix_ids else 1)
    _put_meta(path, 1, m0, ps, header_id=1 if fix_ids else 0)


def _metas_on_disk(path: Path, ps: int) -> list[Meta]:
    data = path.read_bytes()
    return [Meta.unpack(data, p * ps)[0] for p in (0, 1)]


def _commit_root(pf: PageFile) -> int:
    with pf.update() as tx:
        root = tx.allocate(1)
        tx.write(root, b"root")
        tx.root = root
    return root


@pytest.mark.parametrize("fmt", ["bbolt", "log"])
def test_a_commit_never_overwrites_the_meta_it_stands_on(path: Path, fmt: str) -> None:
    # Metas on the "wrong" pages (meta N on page (N+1) % 2): bbolt's rule,
    # page txid % 2, made commit N+1 overwrite meta N, the newest; a torn
    # write there fell back two commits.  The commit goes to the other page.
    with PageFile.open(path, freelist_format=fmt) as pf:
        for _ in range(3):
            _commit_root(pf)
        n = pf.meta.txid
    _swap_metas(path, PS, fix_ids=True)
    with PageFile.open(path, freelist_format=fmt, shrink=False) as pf:
        assert pf.meta.txid == n
        _commit_root(pf)
    assert sorted(m.txid for m in _metas_on_disk(path, PS)) == [n, n + 1]


def _log_file_with_a_damaged_head(path: Path, commits: int) -> tuple[int, int]:
    """A log file whose newest meta N sits on page (N+1) % 2 and names a
    damaged record run; meta N-1 (sound) sits on page N % 2.  Returns N and
    the page of meta N."""
    with PageFile.open(path, freelist_format="log") as pf:
        for _ in range(commits):
            _commit_root(pf)
        n = pf.meta.txid
    _swap_metas(path, PS, fix_ids=True)
    data = bytearray(path.read_bytes())
    page = (n + 1) % 2
    meta = Meta.unpack(data, page * PS)[0]
    assert meta.txid == n
    data[meta.freelist * PS + 20] ^= 0xFF  # the head run's crc: damaged
    path.write_bytes(bytes(data))
    return n, page


@pytest.mark.parametrize("commits", [6, 7])  # meta N on page 0, and on page 1
def test_an_acknowledged_commit_after_a_log_fallback_survives(path: Path, commits: int) -> None:
    # Issue 21 hole 3: the open fell back to meta N-1 (N's chain is damaged);
    # the next commit, txid N, overwrote meta N-1 (page N % 2), leaving two
    # metas with txid N; the damaged one was chosen and the file refused.
    n, _page = _log_file_with_a_damaged_head(path, commits)
    # (shrink=False: a shrinking commit copies its meta to both pages)
    with PageFile.open(path, freelist_format="log", shrink=False) as pf:
        assert pf.meta.txid == n - 1  # the fallback
        with pf.update() as tx:  # not the lost commit N again: other pages
            tx.write(tx.allocate(3), b"data")
            root = tx.allocate(1)
            tx.root = root
        assert pf.meta.txid == n
    with PageFile.open(path, freelist_format="log") as pf:
        assert (pf.meta.txid, pf.meta.root) == (n, root)
        assert pf.check() == []


def test_a_meta_whose_header_names_the_other_page_is_not_valid(path: Path) -> None:
    with PageFile.open(path) as pf:
        for _ in range(3):
            _commit_root(pf)
        n = pf.meta.txid
    newest = n % 2
    # The newest meta copied (header and all) onto the other page: that copy
    # is misplaced; the newest meta stays the one chosen, and check says so.
    _put_meta(path, 1 - newest, _raw_meta(path, newest, PS), PS, header_id=newest)
    with PageFile.open(path, readonly=True) as pf:
        assert pf.meta.txid == n
        problems = pf.check()
    assert any("header names page" in p and f"meta page {1 - newest}" in p for p in problems)
    # Swapped wholesale: neither meta sits on its own page.
    _swap_metas(path, PS, fix_ids=False)
    with pytest.raises(NoValidMetaError, match="misplaced"):
        PageFile.open(path, readonly=True)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "pages.db"


# ---------------------------------------------------------------------------
# Hole 2: a tiny sparse file whose meta claims a huge high-water mark.

SPARSE_RUN = """
import resource, sys
resource.setrlimit(resource.RLIMIT_DATA, (768 << 20, 768 << 20))
from freelist.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    "argv",
    [["check", "--walk", "bbolt"], ["inspect"], ["compare", "--txs", "1", "--from"]],
    ids=["check", "inspect", "compare-from"],
)
def test_a_tiny_sparse_file_with_a_huge_mark_is_refused_at_once(
    tmp_path: Path, argv: list[str]
) -> None:
    # Issue 21 hole 2: 4 KiB on disk, 4 TiB apparent, a NoFreelistSync meta
    # claiming 2**30 pages.  Before: a 128 MiB bitmap, then a byte map and a
    # list of 2**27 entries: minutes, and a raw MemoryError (here under a
    # 768 MiB data limit).  Now: a clear error before anything is allocated.
    path = tmp_path / "sparse.db"
    leaf = page(leaf_body([(0, b"k", b"v")]), 2, PS)
    write_file(path, PS, 1 << 30, {2: leaf}, root=2)
    assert path.stat().st_size == (1 << 30) * PS
    assert path.stat().st_blocks * 512 < 1 << 20
    done = subprocess.run(
        [sys.executable, "-c", SPARSE_RUN, *argv, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # check reports a file it cannot open as a problem of that file (exit 1)
    assert done.returncode == (1 if argv[0] == "check" else 2), done.stderr[-2000:]
    said = done.stdout + done.stderr
    assert "Traceback" not in said
    assert "sparse" in said, said
    assert "holds only" in said, said


def test_a_sparse_file_is_refused_by_the_library_before_any_walk(tmp_path: Path) -> None:
    path = tmp_path / "sparse.db"
    leaf = page(leaf_body([(0, b"k", b"v")]), 2, PS)
    write_file(path, PS, 1 << 30, {2: leaf}, root=2)
    calls = []

    def walk(pf: PageFile) -> list[tuple[int, int]]:
        calls.append(pf)
        return [(2, 1)]

    with pytest.raises(FileTooShortError, match="sparse") as info:
        PageFile.open(path, readonly=True, reachable=walk)
    assert isinstance(info.value, FreelistError)
    assert calls == []


def test_a_sparse_file_within_the_bound_still_opens(tmp_path: Path) -> None:
    # At most SPARSE_PAGES pages are read whatever the file holds: the
    # project's own sparse test files (a few GiB apparent) stay readable.
    path = tmp_path / "sparse.db"
    leaf = page(leaf_body([(0, b"k", b"v")]), 2, PS)
    write_file(path, PS, 1 << 20, {2: leaf}, root=2)
    with PageFile.open(path, readonly=True, reachable=bbolt.reachable) as pf:
        assert pf.freelist.count == (1 << 20) - 3


# ---------------------------------------------------------------------------
# Hole 4: the console script put the current folder on sys.path for good.


def _clean_path(monkeypatch: pytest.MonkeyPatch, folder: Path) -> list[str]:
    monkeypatch.chdir(folder)
    clean = [p for p in sys.path if p not in ("", str(folder))]
    monkeypatch.setattr(sys, "path", clean)
    return list(clean)


def test_the_cli_leaves_the_current_folder_off_sys_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A missing optional dependency (rich, matplotlib) would be imported from
    # the folder the user runs in: code from an untrusted folder.
    from freelist.cli import main

    before = _clean_path(monkeypatch, tmp_path)
    assert main(["trace", "--txs", "2", "--free-pages", "10", "-o", "t.trace"]) == 0
    assert sys.path == before
    capsys.readouterr()


def test_an_import_path_spec_resolves_from_the_folder_only_while_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from freelist import registry
    from freelist.cli import main

    (tmp_path / "myfl_only.py").write_text(
        "import sys, os\n"
        "SEEN = os.getcwd() in sys.path\n"
        "from freelist import ArrayFreelist\n\nclass Mine(ArrayFreelist):\n    pass\n"
    )
    (tmp_path / "t.trace").write_text("H 10\nS 6 4\nA 2\nC\n")
    before = _clean_path(monkeypatch, tmp_path)
    monkeypatch.delitem(sys.modules, "myfl_only", raising=False)
    assert main(["replay", "t.trace", "--freelist", "myfl_only:Mine"]) == 0
    assert sys.modules["myfl_only"].SEEN  # on the path while it was imported
    assert sys.path == before  # and off it afterwards
    capsys.readouterr()
    # The library alone never looks in the current folder.
    monkeypatch.delitem(sys.modules, "myfl_only")
    with pytest.raises(FreelistError, match="cannot import"):
        registry.resolve("myfl_only:Mine")


def test_replay_with_sys_exit_as_the_freelist_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from freelist.cli import main

    (tmp_path / "t.trace").write_text("H 10\nS 6 4\nA 2\nC\n")
    monkeypatch.chdir(tmp_path)
    assert main(["replay", "t.trace", "--freelist", "sys:exit"]) == 2  # not SystemExit
    assert "sys:exit" in capsys.readouterr().err
    (tmp_path / "exits_on_import.py").write_text("raise SystemExit(3)\n")
    _clean_path(monkeypatch, tmp_path)
    assert main(["replay", "t.trace", "--freelist", "exits_on_import:X"]) == 2
    assert "SystemExit" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# Smaller holes.


def test_a_writer_refuses_a_file_truncated_under_it(path: Path) -> None:
    # Another process cuts the file (the lock is advisory): reads refused,
    # but a write transaction committed and regrew the file with zeros.
    with PageFile.open(path, shrink=False) as pf:
        with pf.update() as tx:
            tx.root = tx.allocate(20)
        hwm = pf.meta.hwm
        os.truncate(path, 3 * PS)
        with pytest.raises(FileTooShortError, match="truncated"):
            pf.begin(True)
        assert path.stat().st_size == 3 * PS
        os.truncate(path, hwm * PS)  # whole again: writers may begin
        with pf.update() as tx:
            tx.allocate(1)


def test_a_log_meta_naming_an_older_run_is_refused(path: Path) -> None:
    # A log meta whose newest run was written by an older transaction names
    # an older state's free pages (pages in use since then among them).
    with PageFile.open(path, freelist_format="log", shrink=False) as pf:
        for _ in range(8):
            _commit_root(pf)
        n = pf.meta.txid
    data = bytearray(path.read_bytes())
    page = next(p for p in (0, 1) if Meta.unpack(data, p * PS)[0].txid == n)
    meta = Meta.unpack(data, page * PS)[0]
    head = freelog.unpack_run(data, meta.freelist, PS, meta.hwm)
    assert head.prev
    assert head.txid == n
    older = Meta(PS, meta.root, head.prev, meta.hwm, n, meta.flags, version=meta.version)
    raw = older.pack_page(PS)
    data[page * PS : page * PS + 8] = page.to_bytes(8, "little")
    data[page * PS + 8 : (page + 1) * PS] = raw[8:]
    path.write_bytes(bytes(data))
    with PageFile.open(path, readonly=True, freelist_format="log") as pf:
        assert pf.meta.txid == n - 1  # falls back to the older meta
    io = _io(path)
    try:
        stored = persist.reading(older).read(io, older)
    finally:
        io.close()
    assert any("not by the meta's" in e for e in stored.errors), stored.errors


def _io(path: Path) -> FileIO:
    io = FileIO(str(path), readonly=True, create=False)
    io.map(io.size())
    return io


# ---------------------------------------------------------------------------
# The table of formats: a format is its own class and its registration.


def test_a_format_registered_from_its_own_module_is_used_everywhere(path: Path) -> None:
    from freelist.persist.page import PageFormat

    class Page4(PageFormat):
        """bbolt's freelist page under a meta version of its own."""

        name = "page4"
        version = 4

    persist.register(Page4)
    try:
        with PageFile.open(path, freelist_format="page4") as pf:
            root = _commit_root(pf)
            assert pf.stats().freelist_format == "page4"
        metas_on_disk = _metas_on_disk(path, PS)
        assert [m.version for m in metas_on_disk] == [4, 4]  # converted: both metas
        with PageFile.open(path, readonly=True) as pf:  # read back by the table
            assert pf.meta.root == root
            assert pf.check() == []
            assert pf.stored_freelist()["format"] == "page4"
    finally:
        del persist.FORMATS["page4"]
    with pytest.raises(FreelistError, match="unsupported version 4"):
        PageFile.open(path, readonly=True)


def test_a_log_run_claiming_more_than_a_run_holds_is_refused_before_its_checksum(
    path: Path,
) -> None:
    # In a sparse file a run may span gigabytes of holes: its length is
    # bounded by what a run of its kind holds (freelog.most_payload) before
    # the checksum reads the payload or the replay copies it.
    with PageFile.open(path, freelist_format="log", shrink=False) as pf:
        with pf.update() as tx:
            block = tx.allocate(100)
        with pf.update() as tx:
            tx.free(block, 100)  # free pages below the runs' pages
        for _ in range(4):
            _commit_root(pf)
        meta = pf.meta
    data = bytearray(path.read_bytes())
    head = freelog.unpack_run(data, meta.freelist, PS, meta.hwm)
    assert head.kind == freelog.RECORDS
    most = persist.log.most_payload(freelog.RECORDS, meta.hwm, PS)
    pages = -(-(freelog.HEADER_SIZE + most + 8) // PS)
    assert meta.freelist + pages <= meta.hwm
    off = meta.freelist * PS
    struct.pack_into("<I", data, off + 12, pages - 1)  # overflow
    struct.pack_into("<Q", data, off + 40, most + 8)  # length
    path.write_bytes(bytes(data))
    with pytest.raises(FreelistError, match="a run of its kind"):
        freelog.unpack_run(path.read_bytes(), meta.freelist, PS, meta.hwm)
