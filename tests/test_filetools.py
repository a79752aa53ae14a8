"""`freelist inspect` reports and pictures, the page map, and `compare --from`'s traces."""

from __future__ import annotations

import gzip
import json
import struct
import sys
from pathlib import Path

import pytest

from freelist import PageFile, bbolt
from freelist.cli import main
from freelist.errors import FreelistError, InvalidArgumentError, MissingFileError, TraceError
from freelist.filemap import COLOURS, KINDS, PageMap, draw, grid_shape, run_buckets
from freelist.filetools import open_for_tools, scan_file
from freelist.fromfile import trace_from_file
from freelist.layout import BRANCH_PAGE, LEAF_PAGE, PageHeader
from freelist.runs import runs_of
from freelist.trace import generate_from, parse, replay

BBOLT = Path(__file__).parent / "data" / "bbolt"
EXPECTED = json.loads((BBOLT / "expected.json").read_text())


# --- fixtures -----------------------------------------------------------------------


def _branch(pgid: int, children: list[int]) -> bytes:
    elems = b"".join(struct.pack("<IIQ", 0, 0, c) for c in children)
    return PageHeader(pgid, BRANCH_PAGE, len(children), 0).pack() + elems


def _leaf(pgid: int, overflow: int = 0) -> bytes:
    return PageHeader(pgid, LEAF_PAGE, 0, overflow).pack()


def _tree_file(path: Path, *, sync: bool = True, page_size: int = 4096) -> dict[str, int]:
    """A file in bbolt's layout, written by PageFile: a branch root over two
    leaves (one with an overflow page), a leaked page (allocated, written,
    never reached) and a 20-page run freed in a later transaction."""
    with PageFile.open(path, page_size=page_size, sync_freelist=sync) as pf:
        with pf.update() as tx:
            filler = tx.allocate(20)
            root, a, b, leak = tx.allocate(1), tx.allocate(1), tx.allocate(2), tx.allocate(1)
            tx.write(root, _branch(root, [a, b]))
            tx.write(a, _leaf(a))
            tx.write(b, _leaf(b, overflow=1))
            tx.write(leak, b"not a tree page")
            tx.root = root
        with pf.update() as tx:
            tx.free(filler, 20)
        with pf.update() as tx:
            tx.write(tx.allocate(1), b"x")  # releases the 20 pages; this page leaks too
    return {"root": root, "a": a, "b": b, "leak": leak}


@pytest.fixture
def tree_file(tmp_path: Path) -> Path:
    path = tmp_path / "tree.db"
    _tree_file(path)
    return path


def _bbolt(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(gzip.decompress((BBOLT / f"{name}.gz").read_bytes()))
    return path


# --- the page map and its aggregation ----------------------------------------------


def test_page_map_one_page_a_cell() -> None:
    m = PageMap(10, max_cells=100)
    assert (m.per, m.cells) == (1, 10)
    m.add(0, 2, "meta")
    m.add(5, 3, "free")
    m.fill("leaf")
    assert m.total() == {k: {"meta": 2, "free": 3, "leaf": 5}.get(k, 0) for k in KINDS}
    assert list(m.majority()) == [
        KINDS.index(k)
        for k in ["meta", "meta", "leaf", "leaf", "leaf", "free", "free", "free", "leaf", "leaf"]
    ]


def test_page_map_aggregates_pages_per_cell() -> None:
    # 10 pages in at most 3 cells: 4 pages a cell, the last one holding 2.
    m = PageMap(10, max_cells=3)
    assert (m.per, m.cells) == (4, 3)
    assert [m.cell_pages(c) for c in range(3)] == [4, 4, 2]
    m.add(0, 2, "meta")
    m.add(3, 6, "free")  # spans all three cells: 1 + 4 + 1
    m.add(9, 5, "leaf")  # clipped at the high-water mark
    m.add(-3, 4, "branch")  # clipped at 0: page 0 only (counted twice: a corrupt file)
    m.fill("unreachable")
    assert m.counts(0) == {"meta": 2, "branch": 1, "free": 1}  # full: nothing filled
    assert m.counts(1) == {"free": 4}
    assert m.counts(2) == {"free": 1, "leaf": 1}
    assert m.total()["unreachable"] == 0
    assert m.total()["free"] == 6
    # cell 2 is a tie, leaf 1 and free 1: the kind listed first wins
    assert list(m.majority()) == [KINDS.index("meta"), KINDS.index("free"), KINDS.index("leaf")]


def test_page_map_majority_ties_and_fill() -> None:
    m = PageMap(8, max_cells=2)
    m.add(0, 2, "leaf")
    m.add(2, 2, "free")
    m.add(4, 1, "overflow")
    m.fill("used")
    # cell 0: leaf 2, free 2 -> the kind listed first; cell 1: used 3 beats overflow 1
    assert list(m.majority()) == [KINDS.index("leaf"), KINDS.index("used")]
    assert m.total()["used"] == 3


def test_page_map_bad_arguments() -> None:
    with pytest.raises(InvalidArgumentError):
        PageMap(-1)
    with pytest.raises(InvalidArgumentError):
        PageMap(10, max_cells=0)
    m = PageMap(10)
    with pytest.raises(InvalidArgumentError, match="unknown page kind"):
        m.add(0, 1, "bogus")
    with pytest.raises(InvalidArgumentError):
        m.counts(10)
    assert PageMap(0).cells == 0


def test_page_map_memory_is_bounded_by_cells() -> None:
    m = PageMap(10**9, max_cells=1000)
    assert m.cells <= 1000
    assert m.per * m.cells >= 10**9
    m.add(2, 10**9 - 2, "free")  # one run over every cell
    assert m.total()["free"] == 10**9 - 2


def test_grid_shape_and_run_buckets() -> None:
    for cells in (1, 2, 10, 1000, 1024, 65536, 65537):
        rows, cols = grid_shape(cells)
        assert rows * cols >= cells > (rows - 1) * cols
        assert abs(rows - cols) <= 1
    assert run_buckets({}) == []
    assert run_buckets({1: 3, 2: 1, 3: 2, 9: 1}) == [
        ("1", 3, 3),
        ("2-3", 3, 8),
        ("4-7", 0, 0),
        ("8-15", 1, 9),
    ]


# --- scanning files ------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [1024, 4096, 65536])
def test_scan_classifies_every_page(tmp_path: Path, page_size: int) -> None:
    tree_file = tmp_path / "tree.db"
    _tree_file(tree_file, page_size=page_size)
    pf, walker = open_for_tools(str(tree_file), "auto", "hashmap", 5.0)
    with pf:
        assert walker is bbolt.reachable  # the root looks like a bbolt branch page
        scan = scan_file(pf, walk=True)
        t = scan.map.total()
        assert t["meta"] == 2
        assert t["branch"] == 1
        assert t["leaf"] == 2
        assert t["overflow"] == 1
        assert t["unreachable"] == 2  # the two leaked pages
        assert t["free"] == pf.freelist.free_count >= 20
        assert t["freelist"] == scan.freelist_pages == 1
        assert sum(t.values()) == pf.meta.hwm
        assert scan.tree == {"branch": 1, "leaf": 2}
        rep = scan.report()
        assert rep["in_use_pages"] == pf.meta.hwm - t["free"]
        # a copy holds metas, the tree (4 pages) and an empty freelist page
        assert rep["compacted"]["pages"] == 2 + 4 + 1
        assert rep["compacted"]["bytes"] == 7 * page_size
        back = scan.file_size - 7 * page_size
        assert rep["compacted"]["gives_back_bytes"] == back
        assert rep["compacted"]["gives_back_share"] == pytest.approx(back / scan.file_size, 1e-3)
        spans = sorted(pf.freelist.free_spans())
        tail = spans[-1][1] if sum(spans[-1]) == pf.meta.hwm else 0
        assert rep["free_tail"] == {
            "pages": tail,
            "bytes": tail * page_size,
            "past_hwm_bytes": scan.file_size - pf.meta.hwm * page_size,
        }
        # without the walk, the pages in use are of unknown kind
        plain = scan_file(pf, walk=False).map.total()
        assert plain["used"] == 6  # the tree and the two leaked pages
        assert plain["branch"] == plain["unreachable"] == 0


def test_scan_aggregates_a_file_larger_than_the_map(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    with PageFile.open(path, page_size=1024) as pf:
        with pf.update() as tx:
            run = tx.allocate(300)
            keep = tx.allocate(50)
            tx.write(keep, b"data")
        with pf.update() as tx:
            tx.free(run, 300)
        with pf.update() as tx:
            tx.allocate(1)
    with PageFile.open(path, readonly=True) as pf:
        scan = scan_file(pf, walk=False, max_cells=16)
        assert scan.map.cells <= 16
        assert scan.map.per > 1
        t = scan.map.total()
        assert sum(t.values()) == pf.meta.hwm
        assert t["free"] == pf.freelist.free_count
        free = KINDS.index("free")
        assert free in scan.map.majority()  # the 300-page run fills whole cells


def test_scan_of_real_bbolt_files(tmp_path: Path) -> None:
    for name, want in EXPECTED.items():
        path = _bbolt(tmp_path, name)
        pf, walker = open_for_tools(str(path), "auto", "hashmap", 5.0)
        with pf:
            assert walker is not None
            scan = scan_file(pf, walk=True)
        t = scan.map.total()
        types = want["page_types"]
        assert t["meta"] == 2
        assert t["free"] == want["free_count"]
        assert scan.tree["leaf"] == types["leaf"]
        assert scan.tree["branch"] == types["branch"]
        assert t["unreachable"] == 0, name  # bbolt leaks nothing
        assert (t["freelist"] > 0) == ("freelist" in types)
        assert sum(t.values()) == want["hwm"]
        spans = want["free_spans"]
        end = spans[-1][0] + spans[-1][1]
        assert scan.free_tail == (spans[-1][1] if end == want["hwm"] else 0)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_inspect_json_of_real_bbolt_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    path = _bbolt(tmp_path, name)
    want = EXPECTED[name]
    assert main(["inspect", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["page_types"] == {k: v for k, v in want["page_types"].items() if v}
    assert info["pages"]["free"] == want["free_count"]
    ps = want["page_size"]
    assert info["in_use_pages"] == want["hwm"] - want["free_count"]
    assert info["in_use_bytes"] == info["in_use_pages"] * ps
    c = info["compacted"]
    assert c["bytes"] == c["pages"] * ps
    assert c["pages"] <= info["in_use_pages"]
    assert c["gives_back_bytes"] == info["file_size"] - c["bytes"]
    assert 0 < c["gives_back_share"] < 1
    assert info["free_tail"]["bytes"] == info["free_tail"]["pages"] * ps


def test_inspect_text_report(capsys: pytest.CaptureFixture[str], tree_file: Path) -> None:
    assert main(["inspect", str(tree_file)]) == 0
    out = capsys.readouterr().out
    assert "unreachable 2" in out
    assert "in use:" in out
    assert "a compacted copy needs about 7 pages (28.0 KiB)" in out
    assert "free tail:" in out


def test_scan_shows_pending_pages_of_an_open_writer(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    with PageFile.open(path) as pf:
        with pf.update() as tx:
            run = tx.allocate(6)
            tx.write(run, b"data")
        with pf.update() as tx:
            tx.free(run + 1, 3)
            scan = scan_file(pf, walk=False)
            assert scan.pending == 3
            assert scan.map.total()["pending"] == 3
            assert scan.map.counts(run + 1) == {"pending": 1}
            assert scan.report()["in_use_pages"] == pf.meta.hwm - scan.free - 3


def test_inspect_a_page_file_of_this_library(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "plain.db"
    with PageFile.open(path) as pf, pf.update() as tx:
        tx.root = tx.allocate(3)
        tx.write(tx.root, b"not a bbolt page")
    png = tmp_path / "plain.png"
    assert main(["inspect", str(path), "--json", "--plot", str(png)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert "page_types" not in info  # no tree walk: the root is not a bbolt page
    assert info["pages"]["used"] == 3
    _shape, present = _colours_in(png)
    assert {"meta", "freelist", "used"} <= present
    assert "unreachable" not in present


# --- pictures ----------------------------------------------------------------------


def _colours_in(png: Path) -> tuple[tuple[int, int], set[str]]:
    import matplotlib.image as mpimg
    import numpy as np

    img = mpimg.imread(str(png))
    rgb = np.round(img[..., :3] * 255).astype(int)
    present = set()
    for kind, colour in COLOURS.items():
        v = int(colour[1:], 16)
        want = np.array([v >> 16, (v >> 8) & 255, v & 255])
        if (np.abs(rgb - want).max(axis=-1) <= 1).sum() >= 4:
            present.add(kind)
    return img.shape[:2], present


def test_inspect_plot_png_shows_every_kind(
    capsys: pytest.CaptureFixture[str], tree_file: Path, tmp_path: Path
) -> None:
    png = tmp_path / "map.png"
    assert main(["inspect", str(tree_file), "--plot", str(png)]) == 0
    assert f"written to {png}" in capsys.readouterr().out
    (h, w), present = _colours_in(png)
    assert w > 600
    assert h > 300
    assert present >= {"meta", "freelist", "branch", "leaf", "overflow", "free", "unreachable"}
    assert "used" not in present  # the walk told every page's kind
    assert "pending" not in present


def test_inspect_plot_svg_of_a_bbolt_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    svg = tmp_path / "map.svg"
    path = _bbolt(tmp_path, "synced-array.db")
    assert main(["inspect", str(path), "--plot", str(svg), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["plot"] == str(svg)
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml")
    for kind in ("leaf", "free", "freelist", "overflow"):
        assert COLOURS[kind] in text  # the legend's swatches


def test_picture_of_ten_million_pages(tmp_path: Path) -> None:
    # No file needed: the map of a 10^7-page file aggregates into the default cells.
    m = PageMap(10**7)
    assert m.cells <= 65536
    m.add(0, 2, "meta")
    m.add(2, 4_000_000, "leaf")
    m.add(6_000_000, 3_000_000, "free")
    m.fill("unreachable")
    png = tmp_path / "big.png"
    draw(m, {1: 1000, 3_000_000: 1}, str(png), title="ten million")
    _shape, present = _colours_in(png)
    assert present >= {"leaf", "free", "unreachable"}


def test_plot_errors_are_clear(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tree_file: Path,
    tmp_path: Path,
) -> None:
    assert main(["inspect", str(tree_file), "--plot", str(tmp_path / "m.pdf")]) == 2
    assert "png or .svg" in capsys.readouterr().err
    assert main(["inspect", str(tree_file), "--plot", str(tmp_path / "no" / "m.png")]) == 2
    assert "no writable folder" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["inspect", str(tree_file), "--plot", str(tmp_path / "m.png")]) == 2
    captured = capsys.readouterr()
    assert "needs matplotlib" in captured.err
    assert captured.out == ""
    assert not (tmp_path / "m.png").exists()
    with pytest.raises(FreelistError, match="needs matplotlib"):
        draw(PageMap(4), {}, str(tmp_path / "m.png"))


# --- progress ----------------------------------------------------------------------


def test_progress_without_rich_prints_plain_lines(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from freelist import filetools

    for mod in ("rich", "rich.console", "rich.progress"):
        monkeypatch.setitem(sys.modules, mod, None)
    monkeypatch.setattr(filetools, "PROGRESS_DELAY", -1.0)  # show it at once
    path = _bbolt(tmp_path, "nosync-hashmap.db")
    assert main(["check", str(path)]) == 0
    captured = capsys.readouterr()
    assert "ok (with bbolt's tree walk)" in captured.out
    assert "walking the tree" in captured.err
    assert "checking" in captured.err
    assert main(["inspect", str(path)]) == 0
    assert "mapping pages" in capsys.readouterr().err


def test_progress_with_rich_leaves_stdout_alone(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from freelist import filetools

    monkeypatch.setattr(filetools, "PROGRESS_DELAY", -1.0)
    path = _bbolt(tmp_path, "nosync-nested.db")
    assert main(["inspect", str(path), "--json"]) == 0
    assert (
        json.loads(capsys.readouterr().out)["free_pages"]
        == EXPECTED["nosync-nested.db"]["free_count"]
    )


def test_short_passes_print_no_progress(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from freelist import filetools

    monkeypatch.setattr(filetools, "PROGRESS_DELAY", 3600.0)
    path = _bbolt(tmp_path, "nosync-hashmap.db")
    assert main(["check", str(path)]) == 0
    assert capsys.readouterr().err == ""


# --- compare --from: traces on a real file's free pages ----------------------------


@pytest.mark.parametrize("name", ["synced-array.db", "nosync-hashmap.db"])
def test_trace_from_file_starts_from_the_files_free_pages(tmp_path: Path, name: str) -> None:
    path = _bbolt(tmp_path, name)
    want = EXPECTED[name]
    trace = trace_from_file(str(path), "mixed", 40, seed=3)
    assert trace.hwm == want["hwm"]
    assert [list(s) for s in trace.spans] == want["free_spans"]
    again = parse(trace.dumps().splitlines())  # a valid trace: D frees pages in use only
    assert again.ops == trace.ops
    assert trace_from_file(str(path), "mixed", 40, seed=3).ops == trace.ops  # deterministic
    assert trace_from_file(str(path), "mixed", 40, seed=4).ops != trace.ops
    a, h = replay(trace, "array"), replay(trace, "hashmap")
    assert a.ops == h.ops == len(trace.ops)
    assert a.free_count + a.final_hwm - trace.hwm >= 0


def test_trace_from_a_file_made_by_this_library(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    _tree_file(path, sync=False, page_size=1024)
    pf, walker = open_for_tools(str(path), "auto", "array", 5.0)
    assert walker is not None  # no synced freelist: the walk rebuilt it
    with pf:
        free = runs_of(pf.freelist.all_page_ids())
        hwm = pf.meta.hwm
    trace = trace_from_file(str(path), "seed", 5)
    assert (trace.hwm, trace.spans) == (hwm, free)
    for code, s, n in trace.ops:
        if code == "D":  # never a free page, never a meta page
            assert s >= 2
            assert all(not (fs <= p < fs + fn) for fs, fn in free for p in range(s, s + n))


def test_trace_from_file_errors(tmp_path: Path, tree_file: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="walk must be"):
        trace_from_file(str(tree_file), "seed", 3, walk="sometimes")
    with pytest.raises(TraceError, match="unknown scenario"):
        trace_from_file(str(tmp_path / "missing.db"), "nope", 10)
    with pytest.raises(TraceError, match="at least 1"):
        trace_from_file(str(tmp_path / "missing.db"), "seed", 0)
    with pytest.raises(MissingFileError, match=r"missing\.db"):
        trace_from_file(str(tmp_path / "missing.db"), "seed", 10)
    with pytest.raises(TraceError, match="outside"):
        generate_from("seed", 10, [(8, 5)], 3)
    with pytest.raises(TraceError, match="overlaps"):
        generate_from("seed", 20, [(4, 5), (6, 2)], 3)
    with pytest.raises(TraceError, match="pairs of ints"):
        generate_from("seed", 20, [("a", 2)], 3)  # type: ignore[list-item]


# --- the stored freelist's format in inspect ---------------------------------------


@pytest.mark.parametrize("fmt", ["bbolt", "log"])
def test_inspect_shows_how_the_freelist_is_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    path = tmp_path / "f.db"
    with PageFile.open(path, freelist_format=fmt, page_size=512) as pf:
        with pf.update() as tx:
            spare = tx.allocate(300)
        with pf.update() as tx:
            tx.free(spare, 300)
        for _ in range(60):
            with pf.update() as tx:
                p = tx.allocate(3)
                tx.write(p, b"x")
                if tx.root:
                    tx.free(tx.root, 3)
                tx.root = p
        want = pf.stored_freelist()
        runs = pf.freelist_runs
    assert want["format"] == fmt
    assert want["errors"] == []
    assert sum(n for _, n in runs) == want["pages"] >= 1
    if fmt == "log":
        assert len(runs) > 1  # a chain of runs, all of them counted
    assert main(["inspect", str(path), "--json", "--walk", "none"]) == 0
    report = json.loads(capsys.readouterr().out)
    got = report["stored_freelist"]
    assert got == want
    # The map counts every page the stored freelist occupies (the log's whole
    # chain, not only the run the meta names), and none of them as in use.
    assert report["pages"]["freelist"] == want["pages"]
    if fmt == "log":
        assert got["chain_runs"] >= 1
        assert got["checkpoint_age"] == report["meta"]["txid"] - got["checkpoint_txid"] >= 0
    assert main(["inspect", str(path), "--walk", "none"]) == 0
    out = capsys.readouterr().out
    assert f"stored freelist: {fmt}" in out
    assert ("checkpoint at txid" in out) == (fmt == "log")
