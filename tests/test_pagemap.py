"""The page map behind the double-free check, and best fit's stale run ends.

The page map (``SharedFreelist._map``) answers "is this page free or pending?"
with one index for pages below its length; pages past it take the slow path
(the far pending set and the storage's own check).  These tests drive both
sides of that line, the map's growth, and its rebuild by ``init``/``reload``/
``rollback``, on every freelist, checking the whole invariant (``_check``,
which compares the map with the free and pending sets) after each step.

A run allocated whole leaves nothing in the hashmap's run table: a release
next to it must not merge with it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from freelist import ArrayFreelist, DoubleFreeError, HashmapFreelist, PageFile
from freelist._shared import _MAP_MIN, SharedFreelist

from .conftest import FreelistFactory

FAR = 1 << 40  # past any map this test builds (its bound is far below)


@pytest.fixture(
    params=["array", "best-fit", "bbolt", "first-fit"],
)
def make(request: pytest.FixtureRequest) -> FreelistFactory:
    name = request.param
    if name == "array":
        return ArrayFreelist
    return lambda ids=(): HashmapFreelist(ids, policy=name)


def test_free_past_the_map_grows_it(make: FreelistFactory) -> None:
    fl = make([2, 3, 4])
    assert len(fl._map) < 100
    fl.free(5, 5000, 2)
    assert len(fl._map) > 5001
    assert not fl._far
    fl._check()
    with pytest.raises(DoubleFreeError, match="page 5001 is already pending"):
        fl.free(6, 5001)
    fl.release(5)
    with pytest.raises(DoubleFreeError, match="page 5000 is already free"):
        fl.free(6, 4999, 2)
    fl._check()
    assert fl.freed(5001)
    assert not fl.freed(5002)


def test_far_pages_take_the_slow_path(make: FreelistFactory) -> None:
    fl = make([2, 3, FAR])
    assert fl._far
    assert len(fl._map) <= _MAP_MIN
    assert fl.freed(FAR)
    assert not fl.freed(FAR + 1)
    with pytest.raises(DoubleFreeError, match=f"page {FAR} is already free"):
        fl.free(5, FAR)
    fl.free(5, FAR + 1, 3)  # far pending pages
    fl.free(5, 10)
    assert fl._far_pend == {FAR + 1, FAR + 2, FAR + 3}
    fl._check()
    with pytest.raises(DoubleFreeError, match=f"page {FAR + 2} is already pending"):
        fl.free(6, FAR + 2, 5)
    assert fl.pending_count == 4
    fl.release(5)
    assert not fl._far_pend
    assert fl.pending_count == 0
    fl._check()
    assert fl.freed(FAR + 3)
    assert fl.all_page_ids() == [2, 3, 10, FAR, FAR + 1, FAR + 2, FAR + 3]
    # allocating far pages clears nothing in the map (they are not in it)
    assert fl.allocate(6, 4) == FAR
    assert fl.free_page_ids() == [2, 3, 10]
    fl._check()
    fl.rollback(6)  # the far run comes back
    assert fl.free_page_ids() == [2, 3, 10, FAR, FAR + 1, FAR + 2, FAR + 3]
    fl._check()


def test_a_run_across_the_end_of_a_map_that_cannot_grow(make: FreelistFactory) -> None:
    fl = make([2, FAR])
    end = len(fl._map)
    fl.free(5, end - 2, 5)  # two pages in the map, three past it
    assert fl._far_pend == {end, end + 1, end + 2}
    fl._check()
    with pytest.raises(DoubleFreeError, match=f"page {end - 2} is already pending"):
        fl.free(6, end - 3, 2)
    with pytest.raises(DoubleFreeError, match=f"page {end + 1} is already pending"):
        fl.free(6, end + 1)
    fl.rollback(5)  # the pages are in use again: out of the map and the far set
    assert not fl._far_pend
    assert not fl.freed(end - 2)
    assert not fl.freed(end + 1)
    fl._check()
    fl.free(7, end - 2, 5)
    fl.release(7)
    assert fl.free_page_ids() == [2, *range(end - 2, end + 3), FAR]
    fl._check()
    assert fl.allocate(8, 5) == end - 2
    fl._check()


def test_init_and_reload_rebuild_the_map_around_pending_pages(make: FreelistFactory) -> None:
    fl = make([2, 3, 4])
    fl.free(5, 7000)
    fl.free(5, 9, 2)
    fl.init([20, 21])
    assert fl.freed(7000)
    assert fl.freed(9)
    assert not fl.freed(2)
    fl._check()
    fl.reload([2, 9, 10, 11, FAR])  # 9 and 10 are pending: left out of the free set
    assert fl.free_page_ids() == [2, 11, FAR]
    assert fl._far
    fl._check()
    fl.release(5)
    assert fl.free_page_ids() == [2, 9, 10, 11, 7000, FAR]
    fl._check()


def test_rollback_marks_what_it_gives_back(make: FreelistFactory) -> None:
    fl = make(range(2, 12))
    a = fl.allocate(5, 3)
    fl.free(5, 40)
    assert not fl.freed(a)
    fl.rollback(5)
    assert fl.freed(a)
    assert not fl.freed(40)
    fl._check()


def test_a_map_with_a_far_page_does_not_grow(make: FreelistFactory) -> None:
    # Once a page past the map is free, growing the map by zeros would hide it.
    fl = make([2, FAR])
    end = len(fl._map)
    fl.free(5, end + 10)
    assert len(fl._map) == end
    assert fl._far_pend == {end + 10}
    fl._check()


@pytest.mark.parametrize("policy", ["best-fit", "bbolt", "first-fit"])
def test_a_taken_run_leaves_no_end(policy: str) -> None:
    # A run taken whole clears both of its run-table entries: page 11 given
    # back must not merge with the allocated page 10 through a left-over end.
    fl = HashmapFreelist([10], policy=policy)  # type: ignore[arg-type]
    assert fl.allocate(3, 1) == 10
    assert fl._tab[10] == fl._tab[11] == 0
    fl.free(3, 11)
    fl.release(3)
    assert fl.free_spans() == [(11, 1)]
    fl._check()
    fl.free(4, 12, 2)  # three runs in one release: 12..13 merge with 11 only
    fl.free(4, 8)
    fl.release(4)
    assert fl.free_spans() == [(8, 1), (11, 3)]
    fl._check()


def test_the_map_stays_within_its_bound() -> None:
    fl: SharedFreelist = HashmapFreelist([2])
    fl.free(3, _MAP_MIN + 5)  # past the bound for one free page
    assert len(fl._map) <= _MAP_MIN
    assert fl._far
    fl._check()


def test_a_dropped_map_is_rebuilt_at_its_next_use(make: FreelistFactory) -> None:
    # What a loader that replaces the free set wholesale does: the storage
    # hook, then _drop_cache() (the map goes; nothing rebuilds it at once).
    fl = make([2, 3])
    fl.free(4, 50)
    fl._init_storage([10, 11, 12, 900])
    fl._drop_cache()
    assert fl._map_stale
    fl._check()
    with pytest.raises(DoubleFreeError, match="page 11 is already free"):
        fl.free(5, 11)  # the slow path rebuilds the map first
    assert not fl._map_stale
    with pytest.raises(DoubleFreeError, match="page 50 is already pending"):
        fl.free(5, 50)
    fl._check()
    fl._drop_cache()
    assert fl.freed(900)  # so does a query
    assert fl.freed(50)
    assert not fl.freed(3)
    fl._check()
    fl._drop_cache()
    assert fl.allocate(6, 3) == 10  # allocating leaves a dropped map dropped
    fl.free(6, 3)
    fl.release(6)
    assert fl.free_page_ids() == [3, 50, 900]  # 10..12 allocated, 3 and 50 released
    fl._check()


def test_a_growing_map_doubles_within_its_bound() -> None:
    fl = HashmapFreelist([2])
    fl.free(3, 1000)
    assert len(fl._map) == 1002  # past the run's end: nothing to double yet
    fl.free(3, 1500)
    assert len(fl._map) == 2004  # doubled
    half = _MAP_MIN // 2
    fl.free(3, half + 5)
    assert len(fl._map) == half + 7
    fl.free(3, half + 100)
    assert len(fl._map) == _MAP_MIN  # doubling stops at the bound
    fl._check()


def test_a_few_long_runs_keep_a_small_map() -> None:
    """The hashmap's map follows its runs, not its pages: three runs of
    30,000 pages get the minimum map, the array's (per page) covers them."""
    ids = [p for s in (10, 40_010, 80_010) for p in range(s, s + 30_000)]
    fl = HashmapFreelist(ids)
    assert len(fl._map) <= _MAP_MIN
    assert fl._far
    assert fl.freed(110_009)
    assert not fl.freed(110_010)
    with pytest.raises(DoubleFreeError, match="page 110007 is already free"):
        fl.free(5, 110_007, 5)
    fl._check()
    arr = ArrayFreelist(ids)
    assert len(arr._map) > 110_010
    assert not arr._far
    arr._check()


@pytest.mark.parametrize("kind", ["array", "hashmap"])
@pytest.mark.parametrize("fmt", ["bbolt", "log", "none"])
def test_a_writable_open_hands_over_the_page_map(tmp_path: Path, kind: str, fmt: str) -> None:
    """Every format's open gives the freelist its page map (the bbolt page's
    ids, the log's free map, the walk's bitmap), so the first write does not
    build it from the runs; a read-only open leaves it to whoever needs it."""
    path = tmp_path / "db"
    with PageFile.open(path, freelist=kind, page_size=512) as pf:
        with pf.update() as tx:
            start = tx.allocate(40)
            tx.root = start
        with pf.update() as tx:
            for p in range(start + 1, start + 40, 3):
                tx.free(p)

    freed = set(range(start + 1, start + 40, 3))
    used = [(p, 1) for p in range(start, start + 40) if p not in freed]

    def walk(_pf: PageFile) -> list[tuple[int, int]]:
        return used

    with (
        PageFile.open(path, freelist=kind, freelist_format=fmt, reachable=walk) as pf,
        pf.update(),
    ):
        pass  # writes the chosen format
    reachable = walk if fmt == "none" else None
    with PageFile.open(path, freelist=kind, freelist_format=fmt, reachable=reachable) as pf:
        fl = pf.freelist
        assert isinstance(fl, SharedFreelist)
        assert not fl._map_stale
        fl._check()
        free = set(fl.all_page_ids())
        assert {p for p in range(len(fl._map)) if fl._map[p]} == free
    with PageFile.open(
        path, freelist=kind, freelist_format=fmt, reachable=reachable, readonly=True
    ) as pf:
        fl = pf.freelist
        assert isinstance(fl, SharedFreelist)
        assert fl._map_stale == (fmt == "bbolt")
