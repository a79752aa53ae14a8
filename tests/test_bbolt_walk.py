"""bbolt's tree walk on hostile and large trees: linear, iterative, and clear
about what cannot be a bbolt tree (issue 7 bug 5, issue 11 item 4)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from freelist import FileFormatError, PageFile, ReachabilityError
from freelist.bbolt import MAX_INLINE_DEPTH, BboltTreeError, _Walker, page_types, reachable, walk

from .bboltfile import (
    BUCKET_FLAG,
    HEADER,
    branch_body,
    bucket,
    large_file,
    leaf_body,
    nested_inline_chain,
    page,
    shared_inline_chain,
    watchdog,
    write_file,
)

PS = 4096


def _open(path: Path) -> PageFile:
    return PageFile.open(path, readonly=True, reachable=reachable)


def _walk_error(path: Path) -> BboltTreeError:
    """Open the no-sync file ``path`` (which walks) and return the walk's error."""
    with watchdog(20, "the walk"), pytest.raises(BboltTreeError) as info:
        _open(path)
    return info.value


@pytest.mark.parametrize("levels", [3, 20, 60])
def test_shared_inline_buckets_are_refused_fast(tmp_path: Path, levels: int) -> None:
    # Regression: elements that share an inline bucket, nested, made the walk
    # visit 2**levels inline pages (60 levels: forever).
    path = tmp_path / "shared.db"
    body = shared_inline_chain(levels)
    write_file(path, PS, 4, {2: page(body, 2, PS)}, root=2)
    e = _walk_error(path)
    assert e.path == str(path)
    assert "page 2" in str(e)
    assert "overlaps another element array" in str(e)
    assert isinstance(e, ReachabilityError)
    assert isinstance(e, FileFormatError)  # callers that caught the old error still do


def test_shared_inline_buckets_fail_check_too(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    write_file(path, PS, 5, {2: page(shared_inline_chain(60), 2, PS)}, root=2, freelist=3)
    with PageFile.open(path, readonly=True) as pf, watchdog(20, "check"):
        with pytest.raises(BboltTreeError, match="overlaps"):
            pf.check(reachable)
        with pytest.raises(BboltTreeError):
            page_types(pf)


def test_inline_nesting_is_bounded(tmp_path: Path) -> None:
    ok = tmp_path / "ok.db"
    write_file(ok, PS, 4, {2: page(nested_inline_chain(MAX_INLINE_DEPTH), 2, PS)}, root=2)
    with _open(ok) as pf:
        assert list(reachable(pf)) == [(2, 1)]
        assert pf.freelist.all_page_ids() == [3]
    deep = tmp_path / "deep.db"
    write_file(deep, PS, 4, {2: page(nested_inline_chain(MAX_INLINE_DEPTH + 1), 2, PS)}, root=2)
    assert "nest deeper" in str(_walk_error(deep))


def test_a_cycle_is_reported_with_the_page_that_names_it(tmp_path: Path) -> None:
    path = tmp_path / "cycle.db"
    pages = {
        2: page(branch_body([(b"a", 3)]), 2, PS),
        3: page(branch_body([(b"a", 2)]), 3, PS),
    }
    write_file(path, PS, 4, pages, root=2)
    e = _walk_error(path)
    assert "page 2 (named by page 3) is reached twice" in str(e)


def test_a_shared_subtree_is_reported_not_walked_again(tmp_path: Path) -> None:
    path = tmp_path / "shared-subtree.db"
    leaf = page(leaf_body([(0, b"k", b"v")]), 4, PS)
    pages = {2: page(branch_body([(b"a", 4), (b"b", 4)]), 2, PS), 4: leaf}
    write_file(path, PS, 5, pages, root=2)
    assert "page 4 (named by page 2) is reached twice" in str(_walk_error(path))


def test_an_overflow_run_that_overlaps_another_page_is_reported(tmp_path: Path) -> None:
    # Page 3 claims pages 3..5; the root also names page 5 itself.  The old walk
    # only remembered first pages and passed this on.
    path = tmp_path / "overlap.db"
    big = bytearray(page(leaf_body([(0, b"k", b"v" * (2 * PS))]), 3, PS))
    pages = {
        2: page(branch_body([(b"a", 3), (b"b", 5)]), 2, PS),
        3: bytes(big),
        5: page(leaf_body([]), 5, PS),
    }
    write_file(path, PS, 7, pages, root=2)
    assert "overlaps page 5, which is reached twice" in str(_walk_error(path))


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (HEADER.pack(0, 0x10, 0, 0), "not a tree page"),
        (HEADER.pack(0, 0x02, 300, 0), "run past the end of the page"),
        (HEADER.pack(0, 0x02, 1, 99), "overflow page(s) passes"),
        (leaf_body([(BUCKET_FLAG, b"k", b"short")]), "runs past its page"),
        (leaf_body([(BUCKET_FLAG, b"k", bucket(0, HEADER.pack(0, 2, 50, 0)))]), "past its value"),
        (branch_body([(b"k", 1)]), "outside [2, 4)"),
        (branch_body([(b"k", 2**64 - 1)]), "outside [2, 4)"),
    ],
)
def test_what_cannot_be_a_tree_gets_a_clear_error(tmp_path: Path, body: bytes, words: str) -> None:
    path = tmp_path / "bad.db"
    data = HEADER.pack(2, *HEADER.unpack_from(body)[1:]) + body[HEADER.size :]
    write_file(path, PS, 4, {2: data.ljust(PS, b"\0")}, root=2)
    e = _walk_error(path)
    assert words in str(e)
    assert str(path) in str(e)


def test_a_deep_tree_needs_no_recursion(tmp_path: Path) -> None:
    depth = 5000
    path = tmp_path / "deep.db"
    pages = {p: page(branch_body([(b"k", p + 1)]), p, 1024) for p in range(2, 2 + depth)}
    pages[2 + depth] = page(leaf_body([]), 2 + depth, 1024)
    write_file(path, 1024, 3 + depth + 4, pages, root=2)
    with watchdog(60, "the walk"), _open(path) as pf:
        assert list(reachable(pf)) == [(2, depth + 1)]
        assert pf.freelist.all_page_ids() == list(range(3 + depth, 7 + depth))


def test_a_large_sparse_file_streams(tmp_path: Path) -> None:
    # A smaller copy of the benchmark's file (benchmarks/bench_bbolt_walk.py).
    path = tmp_path / "large.db"
    _hwm, free = large_file(path, leaves=2000, gap=7, fanout=100)
    with watchdog(60, "the walk"), _open(path) as pf:
        assert pf.freelist.count == free
        runs = list(reachable(pf))
        assert runs[0] == (2, 1 + 20 + 1)  # root, branches, the first leaf
        assert len(runs) == 2000
        assert pf.check(reachable) == []


def _bitmap_runs(pages: set[int], hwm: int) -> list[tuple[int, int]]:
    w = _Walker(lambda _p, _n: b"", hwm, "<test>")
    for p in pages:
        assert w.mark(p, 1) == -1
    return list(w.runs())


def _naive_runs(pages: set[int]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for p in sorted(pages):
        if out and out[-1][0] + out[-1][1] == p:
            out[-1][1] += 1
        else:
            out.append([p, 1])
    return [(s, n) for s, n in out]


@given(st.integers(3, 300).flatmap(lambda h: st.tuples(st.just(h), st.sets(st.integers(2, h - 1)))))
def test_runs_come_out_of_the_bitmap_sorted_and_maximal(case: tuple[int, set[int]]) -> None:
    hwm, pages = case
    assert _bitmap_runs(pages, hwm) == _naive_runs(pages)


@given(st.data())
def test_marking_runs_finds_the_first_page_reached_twice(data: st.DataObject) -> None:
    hwm = data.draw(st.integers(3, 200))
    w = _Walker(lambda _p, _n: b"", hwm, "<test>")
    marked: set[int] = set()
    for _ in range(data.draw(st.integers(1, 12))):
        start = data.draw(st.integers(0, hwm - 1))
        n = data.draw(st.integers(1, hwm - start))
        clash = sorted(marked.intersection(range(start, start + n)))
        got = w.mark(start, n)
        if clash:
            assert got == clash[0]
        else:
            assert got == -1
            marked.update(range(start, start + n))
    assert list(w.runs()) == _naive_runs(marked)


class _RandomTree:
    """A random branch/leaf tree with overflow pages and buckets, its pages
    laid out in a shuffled order below ``hwm``."""

    def __init__(self, seed: int, hwm: int = 400) -> None:
        self.r = random.Random(seed)
        self.ps = self.r.choice([1024, 4096])
        self.hwm = hwm
        self.slots = list(range(2, hwm))
        self.r.shuffle(self.slots)
        self.pages: dict[int, bytes] = {}
        self.used: set[int] = set()
        self.root = self.build(4)

    def take(self, n: int) -> int:
        while True:
            p = self.slots.pop()
            if all(q not in self.used and q < self.hwm for q in range(p, p + n)):
                self.used.update(range(p, p + n))
                return p

    def build(self, depth: int) -> int:
        r, ps = self.r, self.ps
        if depth == 0 or r.random() < 0.3:
            items: list[tuple[int, bytes, bytes]] = []
            for i in range(r.randint(0, 4)):
                if r.random() < 0.3 and depth:
                    items.append((BUCKET_FLAG, b"b%d" % i, bucket(self.build(depth - 1))))
                elif r.random() < 0.2:
                    inline = leaf_body([(0, b"x", b"y")])
                    items.append((BUCKET_FLAG, b"i%d" % i, bucket(0, inline)))
                else:
                    items.append((0, b"k%d" % i, b"v" * r.choice([1, 10, ps, 2 * ps])))
            body = leaf_body(items)
        else:
            kids = [(b"%d" % i, self.build(depth - 1)) for i in range(r.randint(1, 3))]
            body = branch_body(kids)
        p = self.take(max(1, -(-len(body) // ps)))
        self.pages[p] = page(body, p, ps)
        return p


@pytest.mark.parametrize("seed", range(20))
def test_random_trees_walk_to_exactly_their_pages(tmp_path: Path, seed: int) -> None:
    # reachable() gives exactly the pages written, and check() agrees.
    tree = _RandomTree(seed)
    path = tmp_path / "random.db"
    write_file(path, tree.ps, tree.hwm, tree.pages, root=tree.root)
    with _open(path) as pf:
        got = {p for s, n in reachable(pf) for p in range(s, s + n)}
        assert got == tree.used
        assert pf.check(reachable) == []


def test_a_read_that_returns_short_pages_gets_a_clear_error() -> None:
    body = page(branch_body([(b"k", 3)]), 2, 1024)
    leaf = page(leaf_body([(BUCKET_FLAG, b"b", bucket(0, leaf_body([(0, b"k", b"v")])))]), 3, 1024)

    def short(pgid: int, n: int) -> bytes:
        return (body if pgid == 2 else leaf)[: 40 if pgid == 3 else 1024 * n]

    with pytest.raises(BboltTreeError, match=r"short.db: page 3 \(named by page 2\)"):
        list(walk(short, 2, 4, "short.db"))
    with pytest.raises(BboltTreeError, match="could not be read"):
        list(walk(lambda _p, _n: b"", 2, 4, "empty.db"))


def test_reachable_ends_its_read_transaction_before_returning(tmp_path: Path) -> None:
    path = tmp_path / "tree.db"
    pages = {2: page(branch_body([(b"k", 3)]), 2, PS), 3: page(leaf_body([]), 3, PS)}
    write_file(path, PS, 5, pages, root=2)
    pf = _open(path)
    runs = reachable(pf)  # not consumed yet
    pf.close()  # would be a TransactionError with the walk's reader still open
    assert list(runs) == [(2, 2)]


def test_the_walk_does_not_read_long_values_that_are_not_buckets() -> None:
    # A leaf whose value needs 300 overflow pages: only its first page is read,
    # and a bucket value in the last overflow page costs one more page.
    value = b"v" * (300 * 1024)
    body = leaf_body([(0, b"big", value), (BUCKET_FLAG, b"b", bucket(0, leaf_body([])))])
    data = page(body, 2, 1024)
    read_pages: list[int] = []

    def read(pgid: int, n: int) -> bytes:
        read_pages.append(n)
        return data[(pgid - 2) * 1024 : (pgid - 2 + n) * 1024]

    got = list(walk(read, 2, 2 + len(data) // 1024))
    assert got == [(2, len(data) // 1024, 0x02)]
    assert sum(read_pages) <= 3


@pytest.mark.parametrize("command", ["check", "inspect"])
def test_the_cli_refuses_a_crafted_file_fast(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    from freelist.cli import main

    path = tmp_path / "shared.db"
    write_file(path, PS, 5, {2: page(shared_inline_chain(60), 2, PS)}, root=2, freelist=3)
    with watchdog(20, f"freelist {command}"):
        assert main([command, str(path)]) != 0
    err = "".join(capsys.readouterr())  # check reports it on stdout, inspect on stderr
    assert f"{path}: page 2 (the root)" in err
    assert "Traceback" not in err
