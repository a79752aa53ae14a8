"""The hashmap's run table: page-indexed run starts and ends, far maps past it.

``HashmapFreelist`` keeps each free run's start (``+size``) and end (``-size``)
in a list indexed by page id below a bound (``_lim``), and in a dict
(``_spill``, the same entries) at or past it.  A run may straddle the bound
(start in the table, end in the dict).  These tests shrink the bound so that
every operation crosses it, and check that every policy returns what it
returns with a table that covers everything (best fit, bbolt) or what the
array returns (first fit), with the whole invariant (``_check``, which
compares the table and far maps with the runs) after each step.
"""

from __future__ import annotations

import copy
import pickle
import random
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from freelist import ArrayFreelist, HashmapFreelist, hashmap, runs

from .strategies import free_id_lists, run_lengths

FAR = 1 << 40


@contextmanager
def table_bound(per_run: int, floor: int = 0, recheck: int = 4) -> Iterator[None]:
    """Build and grow run tables under a bound of ``per_run`` pages a run
    (at least ``floor``), computed again after ``recheck`` runs given back
    past it."""
    saved = hashmap._TAB_PER_RUN, hashmap._TAB_MIN, hashmap._TAB_RECHECK
    hashmap._TAB_PER_RUN, hashmap._TAB_MIN, hashmap._TAB_RECHECK = per_run, floor, recheck
    try:
        with compact_from(0, 0):
            yield
    finally:
        hashmap._TAB_PER_RUN, hashmap._TAB_MIN, hashmap._TAB_RECHECK = saved


@contextmanager
def compact_from(pages: int, starts: int) -> Iterator[None]:
    """Make run tables of at least ``pages`` pages arrays (else lists), and
    best fit's stacks of at least ``starts`` starts (the small tables of
    these tests are arrays under :func:`table_bound`, lists elsewhere: both
    kinds are driven)."""
    saved = hashmap._COMPACT, hashmap._COMPACT_FRONT
    hashmap._COMPACT, hashmap._COMPACT_FRONT = pages, starts
    try:
        yield
    finally:
        hashmap._COMPACT, hashmap._COMPACT_FRONT = saved


def test_runs_are_in_the_table() -> None:
    fl = HashmapFreelist([3, 4, 5, 9, 12, 13])
    assert fl._lim == len(fl._tab) > 14
    assert fl._tab[3] == 3
    assert fl._tab[6] == -3
    assert fl._tab[9] == 1
    assert fl._tab[10] == -1
    assert fl._tab[12] == 2
    assert fl._tab[14] == -2
    assert sum(map(bool, fl._tab)) == 6
    assert not fl._spill
    # a split moves the start and rewrites the end
    assert fl.allocate(2, 2) == 12
    assert fl.allocate(2, 1) == 9
    assert fl.allocate(2, 2) == 3
    assert fl._tab[3] == 0
    assert fl._tab[5] == 1
    assert fl._tab[6] == -1
    assert sum(map(bool, fl._tab)) == 2
    fl._check()
    # a release merges with the runs before and after
    fl.free(3, 3, 2)
    fl.free(3, 6)
    fl.release(3)
    assert fl.free_spans() == [(3, 4)]
    assert fl._tab[3] == 4
    assert fl._tab[7] == -4
    assert sum(map(bool, fl._tab)) == 2
    fl._check()


def test_a_run_straddling_the_bound() -> None:
    with table_bound(4):
        # Four short runs dense enough for a table of 16 pages, then a run of
        # 20 pages that starts under that bound and ends past it.
        fl = HashmapFreelist([2, 4, 6, 8, *range(10, 30)])
        assert fl._lim == 16
        assert fl._tab[10] == 20
        assert fl._spill == {30: -20}
        assert fl.allocate(3, 3) == 10  # the start moves, still in the table
        assert fl._tab[10] == 0
        assert fl._tab[13] == 17
        assert fl._spill == {30: -17}
        fl._check()
        assert fl.allocate(3, 4) == 13  # past the bound now
        assert fl._spill == {17: 13, 30: -13}
        fl._check()
        fl.free(4, 10, 7)
        fl.release(4)
        assert fl.free_spans() == [(2, 1), (4, 1), (6, 1), (8, 1), (10, 20)]
        assert fl._tab[10] == 20
        assert fl._spill == {30: -20}
        fl._check()
        assert fl.allocate(5, 20) == 10
        assert fl._tab[10] == 0
        assert not fl._spill
        fl._check()
    with table_bound(1):
        fl = HashmapFreelist(range(2, 12))  # one run, 1 page a run: no table
        assert fl._lim == 0
        assert fl._spill == {2: 10, 12: -10}
        fl._check()


@pytest.mark.parametrize("policy", ["best-fit", "first-fit"])
def test_the_table_grows_and_takes_in_far_entries(policy: str) -> None:
    # (first fit: the runs it takes in leave the blocks for the byte map)
    with table_bound(12, floor=16, recheck=1000):
        fl = HashmapFreelist([2, 3, 40, 41, 42], policy=policy)  # type: ignore[arg-type]
        assert fl._lim == 12  # 2..3 dense, 40..42 not
        assert fl._spill == {40: 3, 43: -3}
        fl.free(2, 14)  # close past the end: the table doubles
        fl.release(2)
        assert fl._lim == 24
        assert fl._spill == {40: 3, 43: -3}
        fl.free(3, 30)  # again, up to the bound: 12 pages for each of 4 runs
        fl.release(3)
        assert fl._lim == 48
        assert not fl._spill
        assert fl._tab[40] == 3
        assert fl._tab[43] == -3
        fl._check()
        fl.free(4, 1000)  # far past the end: spilled, the table stays
        fl.release(4)
        assert fl._lim == 48
        assert fl._spill == {1000: 1, 1001: -1}
        fl._check()


def test_a_sparse_spill_stays() -> None:
    with table_bound(12, floor=16, recheck=1000):
        fl = HashmapFreelist([2, 3, *range(1000, 3000, 20)])
        assert fl._lim == 12
        fl.free(2, 14)  # moving 200 spilled entries would cost more than the table saves
        fl.release(2)
        assert fl._lim == 12
        assert fl._spill[14] == 1
        fl._check()


def test_a_sparse_free_list_gets_no_table() -> None:
    # A few long runs far apart: a table would cost more than the dicts.
    ids = [p for start in range(1000, 200_000, 10_000) for p in range(start, start + 300)]
    fl = HashmapFreelist(ids)
    assert len(fl._tab) <= hashmap._TAB_PER_RUN * (fl.span_count + 1)
    assert fl._lim == 0
    assert len(fl._spill) == 2 * fl.span_count == 40
    fl._check()
    assert fl.allocate(2, 300) == 1000
    fl._check()


def test_the_table_is_bounded_per_run() -> None:
    # Runs of one page 5 apart: the table covers them (5 pages a run)...
    fl = HashmapFreelist(range(2, 50_000, 5))
    assert fl._lim >= 50_000
    assert not fl._spill
    # ... but not at 50 pages a run, past the bound: only the dense prefix.
    ids = [*range(2, 1000, 5), *range(1000, 100_000, 50)]
    fl = HashmapFreelist(ids)
    assert fl._lim <= hashmap._TAB_PER_RUN * (fl.span_count + 1)
    assert 1000 <= fl._lim < 100_000
    assert min(fl._spill) >= fl._lim
    fl._check()


def test_check_sees_a_bad_table_entry() -> None:
    fl = HashmapFreelist([3, 4, 9])
    fl._tab[6] = 2  # a start of no run
    with pytest.raises(AssertionError):
        fl._check()
    fl = HashmapFreelist([3, 4, 9])
    fl._tab[5] = 0  # a run's end lost
    with pytest.raises(AssertionError):
        fl._check()
    fl = HashmapFreelist([3, 4, 9], policy="first-fit")
    fl._tab[20] = 1  # a run the blocks do not hold
    with pytest.raises(AssertionError):
        fl._check()


@pytest.mark.parametrize("policy", ["best-fit", "bbolt", "first-fit"])
def test_copies_keep_the_table(policy: str) -> None:
    def build() -> HashmapFreelist:
        with table_bound(4):
            fl = HashmapFreelist([2, 4, 6, 8, *range(10, 30), 40, FAR], policy=policy)  # type: ignore[arg-type]
        fl.free(2, 50, 2)
        return fl

    fl = build()
    for other in (pickle.loads(pickle.dumps(fl)), copy.deepcopy(fl)):
        other._check()
        assert other.free_spans() == fl.free_spans()
        assert (other._lim, other._tab) == (fl._lim, fl._tab)
        assert other._spill == fl._spill
        twin = build()
        for f in (other, twin):
            f.release(2)
        for n in (2, 25, 1, 3, 1):
            assert other.allocate(3, n) == twin.allocate(3, n)
        assert other.free_spans() == twin.free_spans()
        other._check()
    assert fl.pending_count == 2  # the original is untouched by its copies
    fl._check()


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("allocate"), st.one_of(run_lengths, st.integers(1, 40))),
        st.tuples(st.just("allocate"), run_lengths),
        st.tuples(st.just("free"), st.integers(0, 10**6)),
        st.tuples(st.just("commit"), st.integers(0, 2)),
        st.tuples(st.just("reader"), st.integers(0, 3)),
        st.tuples(st.just("release_pending"), st.just(0)),
        st.tuples(st.just("rollback"), st.just(0)),
        st.tuples(st.just("far"), st.integers(1, 3)),
        st.tuples(st.just("reload"), st.just(0)),
    ),
    min_size=20,
    max_size=120,
)


@given(
    ids=free_id_lists(max_page=300, max_runs=40),
    calls=_ops,
    per_run=st.sampled_from([1, 2, 4, 8]),
)
def test_a_small_table_changes_no_result(
    ids: list[int], calls: list[tuple[str, int]], per_run: int
) -> None:
    # Each policy under a bound that most runs pass against the same policy
    # with a table that covers every page (first fit: against the array).
    with table_bound(per_run):
        small = [HashmapFreelist(ids, policy=p) for p in ("best-fit", "bbolt", "first-fit")]
    with table_bound(1 << 20):
        full = [HashmapFreelist(ids, policy=p) for p in ("best-fit", "bbolt")]
    refs = [*full, ArrayFreelist(ids)]
    assert all(not f._spill for f in full)
    txid = 2
    held: list[tuple[int, int]] = []
    hwm = 400
    far = FAR
    for op, arg in calls:
        if op == "allocate":
            got = [f.allocate(txid, arg) for f in small]
            assert got == [r.allocate(txid, arg) for r in refs]
            # each freelist gets back what it allocated: one list of held runs
            # needs the same page everywhere, so allocations that differ in
            # page (bbolt's random pick against best fit) are given back now
            if len(set(got)) == 1:
                start = got[0]
                if not start:
                    start, hwm = hwm, hwm + arg  # grow the file
                held.append((start, arg))
            else:
                for f, r, s in zip(small, refs, got, strict=True):
                    if s:
                        f.free(txid, s, arg)
                        r.free(txid, s, arg)
        elif op == "far":
            held.append((far, arg))  # in use past any table and page map
            far += 10
        elif op == "free" and held:
            start, n = held.pop(arg % len(held))
            for f in (*small, *refs):
                f.free(txid, start, n)
        elif op == "commit":
            txid += 1
            for f in (*small, *refs):
                f.release(txid - 1 - arg)
        elif op == "reader":
            for f in (*small, *refs):
                f.add_reader(max(0, txid - 1 - arg))
        elif op == "release_pending":
            for f in (*small, *refs):
                f.release_pending()
        elif op == "rollback":
            for f in (*small, *refs):
                f.rollback(txid)
            held = [(s, n) for s, n in held if not refs[0].freed(s)]
            txid += 1
        elif op == "reload":
            with table_bound(per_run):
                for f in small:
                    f.reload(f.all_page_ids())
            for f in refs:
                f.reload(f.all_page_ids())
        for f, r in zip(small, refs, strict=True):
            assert f.free_spans() == r.free_spans()
            assert f.free_count == r.free_count
            assert f.span_count == len(r.free_spans())
            assert f.pending_page_ids() == r.pending_page_ids()
            for p in (*range(2, 30), FAR, FAR + 1):
                assert f.freed(p) == r.freed(p)
    for f in (*small, *refs):
        f._check()


@contextmanager
def run_chunk(n: int) -> Iterator[None]:
    """Build from runs ``n`` ids (or pages) at a time."""
    saved = runs.RUN_CHUNK
    runs.RUN_CHUNK = n
    try:
        yield
    finally:
        runs.RUN_CHUNK = saved


def test_a_sparse_start_does_not_keep_the_runs_after_it_out() -> None:
    """Pages in use first, then dense runs: built a few ids at a time, the
    table grows over the sparse start instead of spilling what follows."""
    ids = [*range(2, 2000, 20), *range(2000, 20_000, 3)]
    with run_chunk(7):
        fl = HashmapFreelist(ids)
    assert not fl._spill
    assert fl._lim >= 20_000
    assert fl.free_spans() == [(p, 1) for p in ids]
    fl._check()


def test_runs_built_past_the_bound_are_spilled() -> None:
    """Runs 18 pages apart: within the build's slack (twice the bound), past
    the bound itself; the entries past the bound end in the spill."""
    ids = list(range(2, 20_000, 18))
    with run_chunk(7):
        fl = HashmapFreelist(ids)
    assert fl._lim < 20_000
    assert len(fl._tab) == fl._lim
    assert fl._spill
    assert min(fl._spill) >= fl._lim
    assert fl.free_spans() == [(p, 1) for p in ids]
    fl._check()
    assert fl.allocate(2, 1) == 2
    fl._check()


def test_first_fit_byte_map_across_buckets_and_groups() -> None:
    """First fit's byte map over a table of several groups (256 buckets of
    256 pages each): one-page allocations from the heap of runs given back
    and from the front, longer ones through stale bounds, runs longer than
    255 pages, failing searches; every result the array's."""
    r = random.Random(20)
    ids: list[int] = []
    p = 2
    while p < 200_000:
        n = r.choice([1, 1, 2, 3, 5, 8])
        ids.extend(range(p, p + n))
        p += n + r.randint(1, 12)
    ids.extend(range(150_000_000 // 1000, 150_000_000 // 1000 + 300))  # a long run
    ids = sorted(set(ids))
    fl = HashmapFreelist(ids, policy="first-fit")
    ref = ArrayFreelist(ids)
    assert len(fl._b2) > 2  # several groups
    held: list[tuple[int, int]] = []
    txid = 2
    for step in range(1500):
        n = r.choice([1, 1, 1, 1, 2, 3, 4, 6, 9, 17, 280, 400])
        got = fl.allocate(txid, n)
        assert got == ref.allocate(txid, n), (step, n)
        if got:
            held.append((got, n))
        if held and r.random() < 0.6:
            s, k = held.pop(r.randrange(len(held)))
            fl.free(txid, s, k)
            ref.free(txid, s, k)
        if r.random() < 0.3:
            fl.release(txid)
            ref.release(txid)
            txid += 1
        if step % 250 == 0:
            fl._check()
    fl.release(txid)
    ref.release(txid)
    assert fl.free_spans() == ref.free_spans()
    fl._check()


def test_first_fit_stale_bounds_are_lowered() -> None:
    # Bucket and group bounds left high by runs taken are found stale and
    # lowered by a later search, which still finds the first fit past them.
    # (one-page runs every 4 pages, away from the long ones, keep the table
    # over all of them)
    long = [*range(10, 14), *range(70_000, 70_004), *range(140_000, 140_010)]
    near = {p for q in (10, 70_000, 140_000) for p in range(q - 2, q + 12)}
    ones = [p for p in range(20, 150_000, 4) if p not in near]
    fl = HashmapFreelist(sorted([*long, *ones]), policy="first-fit")
    assert fl._lim > 140_010
    assert fl.allocate(2, 4) == 10  # group 0's bound stays 4 (stale)
    assert fl.allocate(2, 4) == 70_000  # group 1's too
    assert fl._b2[0] == 4
    assert fl.allocate(2, 3) == 140_000  # through both stale groups
    assert fl._b1[0] < 3  # a stale bucket bound, lowered
    assert fl.allocate(2, 3) == 140_003
    assert fl._b2[0] < 3  # group 0 searched whole this time: lowered
    assert fl.allocate(2, 8) == 0  # nothing left that long
    assert fl.allocate(2, 4) == 140_006
    assert fl.allocate(2, 1) == ones[0]  # the lowest one-page run
    fl._check()


@pytest.mark.parametrize("policy", ["best-fit", "first-fit"])
def test_a_run_of_2_31_pages_makes_the_table_a_list(policy: str) -> None:
    # The table is an array('i'): a run given back that merges into a run of
    # 2**31 pages or more (its start entry in the table) turns it into a list.
    big = (1 << 31) - 10
    starts = [*range(2, 202, 2), 230]
    lens = [1] * 100 + [big]
    fl = HashmapFreelist(policy=policy)  # type: ignore[arg-type]
    with compact_from(0, 0):
        fl._init_verified((), lambda: iter([(starts, lens)]))
    assert fl._lim > 230
    assert type(fl._tab) is not list
    assert fl._tab[230] == big
    fl.free(2, 210, 20)
    fl.release(2)
    assert type(fl._tab) is list
    assert fl._tab[210] == big + 20
    assert fl.free_spans()[-1] == (210, big + 20)
    assert fl.allocate(3, 1 << 31) == 210
    assert fl.free_spans()[-1] == (210 + (1 << 31), 10)
    fl._check()


def test_a_run_of_2_31_pages_built_makes_the_table_a_list() -> None:
    starts = [*range(2, 202, 2), 230]
    fl = HashmapFreelist()
    with compact_from(0, 0):
        fl._init_verified((), lambda: iter([(starts, [1] * 100 + [1 << 32])]))
    assert type(fl._tab) is list
    assert fl._tab[230] == 1 << 32
    assert fl.free_spans()[-2:] == [(200, 1), (230, 1 << 32)]
    assert fl.allocate(2, 1 << 32) == 230
    fl._check()
