"""Unit tests of the Freelist protocol, run on every freelist class.

Every test calls ``_check()`` (the whole internal invariant) after each step.
"""

from __future__ import annotations

from typing import Any

import pytest

from freelist import (
    ArrayFreelist,
    DoubleFreeError,
    Freelist,
    FreelistError,
    HashmapFreelist,
    InvalidArgumentError,
    InvalidPageIdsError,
    InvalidTypeError,
    MetaPageError,
)
from freelist._shared import MAX_ID, SharedFreelist

from .conftest import FreelistFactory

BBOLT_IDS = [3, 4, 5, 6, 7, 9, 12, 13, 18]


def snapshot(fl: SharedFreelist) -> tuple[Any, ...]:
    """Everything observable about a freelist's state."""
    return (
        fl.free_page_ids(),
        fl.pending_page_ids(),
        fl.all_page_ids(),
        fl.free_count,
        fl.pending_count,
        fl.readers,
        fl.free_spans(),
    )


def checked(fl: SharedFreelist) -> SharedFreelist:
    fl._check()
    return fl


# --- building -----------------------------------------------------------------


def test_both_classes_satisfy_the_protocol(make: FreelistFactory) -> None:
    assert isinstance(make(), Freelist)


def test_empty_freelist(make: FreelistFactory) -> None:
    fl = checked(make())
    assert fl.free_count == fl.pending_count == fl.count == 0
    assert fl.allocate(2, 1) == 0
    assert fl.free_page_ids() == fl.all_page_ids() == []
    assert fl.free_spans() == []


def test_build_from_ids(make: FreelistFactory) -> None:
    fl = checked(make(BBOLT_IDS))
    assert fl.free_page_ids() == BBOLT_IDS
    assert fl.free_count == fl.count == 9
    assert fl.free_spans() == [(3, 5), (9, 1), (12, 2), (18, 1)]
    assert [p for p in range(25) if fl.freed(p)] == BBOLT_IDS


def test_build_accepts_any_iterable(make: FreelistFactory) -> None:
    fl = checked(make(x for x in range(5, 9)))
    assert fl.free_page_ids() == [5, 6, 7, 8]


@pytest.mark.parametrize(
    ("ids", "error"),
    [
        ([5, 4], InvalidPageIdsError),
        ([4, 4], InvalidPageIdsError),
        ([1, 4], InvalidPageIdsError),
        ([0], InvalidPageIdsError),
        ([-3, 4], InvalidPageIdsError),
        ([3, 1 << 64], InvalidPageIdsError),
        ([3, 4.0], InvalidTypeError),
        ([3, "4"], InvalidTypeError),
        ([True, 3], InvalidTypeError),
    ],
)
def test_build_rejects_bad_ids(make: FreelistFactory, ids: list[Any], error: type) -> None:
    with pytest.raises(error):
        make(ids)


class _Index:
    """An int-like object (as NumPy integers are): accepted where an int is."""

    def __init__(self, v: int) -> None:
        self.v = v

    def __index__(self) -> int:
        return self.v


def test_build_checks_every_odd_id_not_only_the_first(make: FreelistFactory) -> None:
    assert checked(make([_Index(3), 4, _Index(5)])).free_page_ids() == [3, 4, 5]
    with pytest.raises(InvalidTypeError):
        make([_Index(3), 4, 5.5])


def test_errors_share_one_base_and_the_builtins() -> None:
    for exc in (InvalidTypeError, InvalidPageIdsError, MetaPageError, DoubleFreeError):
        assert issubclass(exc, FreelistError)
    assert issubclass(InvalidArgumentError, ValueError)
    assert issubclass(InvalidTypeError, TypeError)


# --- allocation ---------------------------------------------------------------


def test_array_allocates_first_fit_like_bbolt() -> None:
    # bbolt's own allocation case: runs 3-7, 9, 12-13, 18.
    fl = checked(ArrayFreelist(BBOLT_IDS))
    assert fl.allocate(1, 3) == 3
    assert fl.allocate(1, 1) == 6
    assert fl.allocate(1, 3) == 0
    assert fl.allocate(1, 2) == 12
    assert fl.allocate(1, 1) == 7
    fl._check()
    assert fl.free_page_ids() == [9, 18]
    assert fl.allocate(1, 1) == 9
    assert fl.allocate(1, 1) == 18
    assert fl.allocate(1, 1) == 0
    assert checked(fl).free_page_ids() == []


@pytest.mark.parametrize("policy", ["best-fit", "bbolt"])
def test_hashmap_exact_fit_takes_lowest_start(policy: Any) -> None:
    fl = HashmapFreelist([3, 5, 6, 9, 12, 13, 20], policy=policy)
    # size-1 runs: 3, 9, 20 -> the lowest first
    assert [fl.allocate(1, 1) for _ in range(3)] == [3, 9, 20]
    # size-2 runs: 5-6, 12-13
    assert [fl.allocate(1, 2) for _ in range(2)] == [5, 12]
    assert checked(fl).free_count == 0


def test_hashmap_best_fit_takes_smallest_larger_run() -> None:
    fl = HashmapFreelist(BBOLT_IDS)
    # no run of 3 except 3-7 (5 pages): split it, keep 6-7
    assert fl.allocate(1, 3) == 3
    assert checked(fl).free_spans() == [(6, 2), (9, 1), (12, 2), (18, 1)]
    # runs of 1: 9 and 18 -> lowest start
    assert fl.allocate(1, 1) == 9
    # no run of 3 any more
    assert fl.allocate(1, 3) == 0
    # runs of 2: 6-7 and 12-13 -> lowest start
    assert fl.allocate(1, 2) == 6
    assert fl.allocate(1, 1) == 18
    assert fl.allocate(1, 1) == 12
    assert checked(fl).free_page_ids() == [13]


def test_hashmap_best_fit_prefers_smaller_run_over_lower_start() -> None:
    # a 10-page run at 2 and a 3-page run at 50: two pages come from the 3-page run
    fl = HashmapFreelist([*range(2, 12), 50, 51, 52])
    assert fl.allocate(1, 2) == 50
    assert checked(fl).free_spans() == [(2, 10), (52, 1)]


def test_hashmap_bbolt_policy_is_deterministic_for_a_seed() -> None:
    ids = [p for p in range(2, 400) if p % 7 and p % 11]
    picks = []
    for _ in range(2):
        fl = HashmapFreelist(ids, policy="bbolt", seed=3)
        picks.append([fl.allocate(1, 1 + i % 4) for i in range(60)])
        fl._check()
    assert picks[0] == picks[1]


def test_hashmap_rejects_unknown_policy() -> None:
    with pytest.raises(InvalidArgumentError):
        HashmapFreelist(policy="worst-fit")  # type: ignore[arg-type]


def test_allocation_runs_are_free_and_contiguous(make: FreelistFactory) -> None:
    ids = [p for p in range(2, 300) if p % 5 != 0 and p % 13 != 0]
    fl = make(ids)
    free = set(ids)
    for n in [1, 2, 3, 4, 1, 2, 3, 4, 1, 1, 2, 3]:
        s = fl.allocate(5, n)
        assert s, n
        run = set(range(s, s + n))
        assert run <= free
        free -= run
        fl._check()
    assert set(fl.free_page_ids()) == free


@pytest.mark.parametrize(
    ("txid", "n", "error"),
    [
        (0, 1, InvalidArgumentError),
        (-1, 1, InvalidArgumentError),
        (1 << 64, 1, InvalidArgumentError),
        (2, 0, InvalidArgumentError),
        (2, -2, InvalidArgumentError),
        (2.0, 1, InvalidTypeError),
        (2, 1.0, InvalidTypeError),
        (True, 1, InvalidTypeError),
        (2, True, InvalidTypeError),
        ("2", 1, InvalidTypeError),
    ],
)
def test_allocate_rejects_bad_arguments(
    make: FreelistFactory, txid: Any, n: Any, error: type
) -> None:
    fl = make(BBOLT_IDS)
    before = snapshot(fl)
    with pytest.raises(error):
        fl.allocate(txid, n)
    assert snapshot(checked(fl)) == before


def test_allocate_accepts_index_integers(make: FreelistFactory) -> None:
    class Idx:
        def __init__(self, v: int) -> None:
            self.v = v

        def __index__(self) -> int:
            return self.v

    fl = make(BBOLT_IDS)
    assert fl.allocate(Idx(2), Idx(2)) == make(BBOLT_IDS).allocate(2, 2)  # type: ignore[arg-type]
    fl.free(Idx(3), Idx(40), Idx(2))  # type: ignore[arg-type]
    assert checked(fl).pending_page_ids() == {3: [40, 41]}


# --- free ---------------------------------------------------------------------


def test_free_makes_pages_pending(make: FreelistFactory) -> None:
    fl = make()
    fl.free(100, 12)
    fl.free(100, 20, 4)  # an overflow run: 20..23
    fl.free(101, 30)
    fl._check()
    assert fl.pending_page_ids() == {100: [12, 20, 21, 22, 23], 101: [30]}
    assert fl.pending_count == 6
    assert fl.free_count == 0
    assert fl.count == 6
    assert fl.freed(21)
    assert not fl.freed(24)
    assert fl.allocate(102, 1) == 0, "pending pages must not be handed out"
    assert fl.all_page_ids() == [12, 20, 21, 22, 23, 30]


@pytest.mark.parametrize(("start", "n"), [(12, 1), (11, 2), (10, 5), (12, 3), (9, 9)])
def test_double_free_of_a_pending_page(make: FreelistFactory, start: int, n: int) -> None:
    fl = make()
    fl.free(100, 12)
    before = snapshot(fl)
    with pytest.raises(DoubleFreeError):
        fl.free(101, start, n)
    assert snapshot(checked(fl)) == before


@pytest.mark.parametrize(("start", "n"), [(3, 1), (7, 1), (2, 2), (8, 2), (10, 4), (16, 5)])
def test_double_free_of_a_free_page(make: FreelistFactory, start: int, n: int) -> None:
    fl = make(BBOLT_IDS)
    before = snapshot(fl)
    with pytest.raises(DoubleFreeError):
        fl.free(100, start, n)
    assert snapshot(checked(fl)) == before


def test_free_next_to_free_pages_is_fine(make: FreelistFactory) -> None:
    fl = make(BBOLT_IDS)
    fl.free(100, 8)
    fl.free(100, 10, 2)
    fl.free(100, 14, 4)
    fl._check()
    fl.release(100)
    assert checked(fl).free_spans() == [(3, 16)]


@pytest.mark.parametrize(
    ("start", "n", "error"),
    [
        (0, 1, MetaPageError),
        (1, 1, MetaPageError),
        (1, 3, MetaPageError),
        (-5, 1, InvalidArgumentError),
        (10, 0, InvalidArgumentError),
        (MAX_ID, 2, InvalidArgumentError),
        (10.0, 1, InvalidTypeError),
        (10, None, InvalidTypeError),
        (False, 1, InvalidTypeError),
    ],
)
def test_free_rejects_bad_runs(make: FreelistFactory, start: Any, n: Any, error: type) -> None:
    fl = make(BBOLT_IDS)
    fl.free(50, 40)
    before = snapshot(fl)
    with pytest.raises(error):
        fl.free(51, start, n)
    assert snapshot(checked(fl)) == before


def test_free_of_the_last_page_id(make: FreelistFactory) -> None:
    fl = make()
    fl.free(5, MAX_ID)
    fl.free(5, MAX_ID - 3, 3)
    fl.release(5)
    assert checked(fl).free_spans() == [(MAX_ID - 3, 4)]


def test_free_rejects_bad_txid(make: FreelistFactory) -> None:
    fl = make()
    for bad in (0, -1, 1 << 64):
        with pytest.raises(InvalidArgumentError):
            fl.free(bad, 10)
    assert snapshot(checked(fl)) == snapshot(make())


# --- release ------------------------------------------------------------------


def test_release_moves_pending_to_free_and_merges(make: FreelistFactory) -> None:
    fl = make(BBOLT_IDS)
    fl.free(100, 8)
    fl.free(101, 10, 2)
    fl.free(102, 19)
    fl.release(100)
    assert checked(fl).free_spans() == [(3, 7), (12, 2), (18, 1)]
    assert fl.pending_page_ids() == {101: [10, 11], 102: [19]}
    fl.release(102)
    assert checked(fl).free_spans() == [(3, 11), (18, 2)]
    assert fl.pending_count == 0
    fl.release(500)  # nothing pending: no change
    assert checked(fl).free_spans() == [(3, 11), (18, 2)]


def test_release_does_not_touch_newer_transactions(make: FreelistFactory) -> None:
    fl = make()
    fl.free(10, 5)
    fl.free(11, 6)
    fl.release(9)
    assert checked(fl).pending_page_ids() == {10: [5], 11: [6]}
    fl.release(10)
    assert checked(fl).free_page_ids() == [5]


def _allocated_at(make: FreelistFactory, pages: dict[int, int]) -> SharedFreelist:
    """A freelist in which each page was allocated by the given txid (via allocate)."""
    fl = make(sorted(pages))
    for page, txid in sorted(pages.items(), key=lambda kv: kv[0]):
        got = fl.allocate(txid, 1)
        assert got == page
    return fl


@pytest.mark.parametrize(
    ("alloc", "freed", "ranges", "released"),
    [
        # allocated by 100, freed by 200, one range covering both: released
        (100, 200, [(1, 300)], True),
        # the range misses the free txid
        (100, 200, [(1, 150)], False),
        # the range misses the allocating txid
        (100, 200, [(150, 300)], False),
        # exact bounds are inclusive
        (100, 200, [(100, 200)], True),
        # two ranges that together cover both, but neither alone
        (100, 200, [(1, 150), (151, 300)], False),
    ],
)
def test_release_range(
    make: FreelistFactory,
    alloc: int,
    freed: int,
    ranges: list[tuple[int, int]],
    released: bool,
) -> None:
    fl = _allocated_at(make, {7: alloc})
    fl.free(freed, 7)
    for begin, end in ranges:
        fl.release_range(begin, end)
        fl._check()
    assert fl.free_page_ids() == ([7] if released else [])
    assert fl.pending_page_ids() == ({} if released else {freed: [7]})


def test_release_range_never_frees_pages_of_unknown_origin(make: FreelistFactory) -> None:
    fl = make()
    fl.free(200, 7)  # never allocated through this freelist: allocating txid unknown
    fl.release_range(1, MAX_ID)
    assert checked(fl).pending_page_ids() == {200: [7]}


def test_release_range_rescans_after_new_frees(make: FreelistFactory) -> None:
    fl = _allocated_at(make, {7: 100, 8: 100})
    fl.free(200, 7)
    fl.release_range(50, 300)
    assert fl.free_page_ids() == [7]
    fl.free(200, 8)  # same txid, freed after the range was scanned
    fl.release_range(50, 300)
    assert checked(fl).free_page_ids() == [7, 8]


def test_release_pending_with_readers(make: FreelistFactory) -> None:
    # page 10 allocated by 3, freed by 5: visible to readers of 3 and 4.
    # page 11 allocated by 6, freed by 8: visible to readers of 6 and 7.
    fl = _allocated_at(make, {10: 3, 11: 6})
    fl.free(5, 10)
    fl.free(8, 11)
    fl.add_reader(4)
    fl.add_reader(7)
    fl.release_pending()
    assert checked(fl).free_page_ids() == []
    fl.remove_reader(4)  # only the reader of 7 remains: page 10 is invisible to it
    fl.release_pending()
    assert checked(fl).free_page_ids() == [10]
    fl.remove_reader(7)
    fl.release_pending()
    assert checked(fl).free_page_ids() == [10, 11]
    assert fl.pending_count == 0


def test_release_pending_gap_between_readers(make: FreelistFactory) -> None:
    # Readers at 2 and 9; a page allocated at 4 and freed at 6 lives entirely in the
    # gap (3..8): no reader can see it, so it is released although reader 2 is older.
    fl = _allocated_at(make, {20: 4, 21: 1})
    fl.free(6, 20)
    fl.free(6, 21)  # allocated at 1: reader 2 may see it
    fl.add_reader(2)
    fl.add_reader(9)
    fl.release_pending()
    assert checked(fl).free_page_ids() == [20]
    assert fl.pending_page_ids() == {6: [21]}


def test_readers_are_counted(make: FreelistFactory) -> None:
    fl = make()
    fl.add_reader(4)
    fl.add_reader(4)
    fl.add_reader(2)
    assert fl.readers == [2, 4, 4]
    fl.remove_reader(4)
    assert fl.readers == [2, 4]
    with pytest.raises(InvalidArgumentError):
        fl.remove_reader(3)
    assert checked(fl).readers == [2, 4]
    with pytest.raises(InvalidArgumentError):
        fl.add_reader(-1)


# --- rollback -----------------------------------------------------------------


def test_rollback_undoes_frees_and_restores_allocation_records(make: FreelistFactory) -> None:
    fl = _allocated_at(make, {7: 100})
    fl.free(200, 7)
    fl.rollback(200)
    assert checked(fl).pending_count == 0
    assert not fl.freed(7)
    # the allocation record of txid 100 is back: a range covering 100..300 frees it
    fl.free(300, 7)
    fl.release_range(100, 300)
    assert checked(fl).free_page_ids() == [7]


def test_rollback_returns_the_writers_allocations(make: FreelistFactory) -> None:
    fl = make(BBOLT_IDS)
    fl.free(4, 40)  # pending from an earlier transaction
    before = snapshot(fl)
    a = fl.allocate(5, 3)
    b = fl.allocate(5, 1)
    fl.free(5, a, 3)  # freed by the same transaction that allocated it
    fl.free(5, 50)  # a page of unknown origin
    assert a
    assert b
    fl.rollback(5)
    assert snapshot(checked(fl)) == before


def test_rollback_of_a_page_allocated_and_released_in_one_transaction(
    make: FreelistFactory,
) -> None:
    fl = make(BBOLT_IDS)
    a = fl.allocate(5, 2)
    fl.free(5, a, 2)
    fl.release(5)  # already free again
    fl.rollback(5)  # must not free it twice
    assert checked(fl).free_page_ids() == BBOLT_IDS


def test_rollback_of_an_older_transaction_drops_its_records(make: FreelistFactory) -> None:
    fl = make(BBOLT_IDS)
    a = fl.allocate(5, 1)
    fl.allocate(6, 1)  # a newer writer: 5 has committed
    fl.rollback(5)
    # 5's allocation stays allocated (it committed); its record is gone, so a
    # release range covering 5 no longer frees the page early
    assert not fl.freed(a)
    fl.free(7, a)
    fl.release_range(1, 10)
    assert checked(fl).pending_page_ids() == {7: [a]}


def test_allocate_refuses_runs_past_the_largest_page_id(make: FreelistFactory) -> None:
    fl = make(BBOLT_IDS)
    with pytest.raises(InvalidArgumentError):
        fl.allocate(2, 1 << 64)
    assert checked(fl).free_page_ids() == BBOLT_IDS


def test_rollback_of_unknown_txid_is_a_no_op(make: FreelistFactory) -> None:
    fl = make(BBOLT_IDS)
    fl.free(3, 40)
    before = snapshot(fl)
    fl.rollback(99)
    assert snapshot(checked(fl)) == before


# --- init and reload ----------------------------------------------------------


def test_reload_keeps_pending_pages_out(make: FreelistFactory) -> None:
    fl = make(BBOLT_IDS)
    fl.free(10, 30)
    fl.free(10, 31)
    # a freelist page lists free and pending ids together
    fl.reload([3, 4, 30, 31, 40])
    assert checked(fl).free_page_ids() == [3, 4, 40]
    assert fl.pending_page_ids() == {10: [30, 31]}


def test_init_rejects_pending_ids(make: FreelistFactory) -> None:
    fl = make(BBOLT_IDS)
    fl.free(10, 30)
    before = snapshot(fl)
    with pytest.raises(InvalidPageIdsError):
        fl.init([3, 30])
    assert snapshot(checked(fl)) == before
    fl.init([3, 31])
    assert checked(fl).free_page_ids() == [3, 31]


def test_reload_rejects_unsorted_ids_and_changes_nothing(make: FreelistFactory) -> None:
    fl = make(BBOLT_IDS)
    before = snapshot(fl)
    with pytest.raises(InvalidPageIdsError):
        fl.reload([5, 3])
    assert snapshot(checked(fl)) == before


# --- the serialised list ------------------------------------------------------


@pytest.mark.parametrize("count", [0xFFFE, 0xFFFF, 0x10000])
def test_serialised_list_around_0xffff(make: FreelistFactory, count: int) -> None:
    # bbolt stores the count in the page header below 0xFFFF and in the first
    # element from 0xFFFF on; the freelist must list every id either way.
    ids = list(range(2, 2 + count - 3))
    fl = make(ids)
    fl.free(9, 2 + count, 3)  # three pending ids
    assert fl.count == count
    arr = fl.page_id_array()
    assert arr.typecode == "Q"
    assert len(arr) == count
    assert arr.tolist() == [*ids, 2 + count, 3 + count, 4 + count]
    assert fl.all_page_ids() == arr.tolist()


def test_page_id_array_follows_every_change(make: FreelistFactory) -> None:
    ids = [p for p in range(2, 2000) if p % 3]
    fl = make(ids)
    txid = 2
    fl.page_id_array()  # start the incremental cache
    for i in range(700):  # more than the 256-change cap between some calls
        n = 1 + i % 5
        s = fl.allocate(txid, n)
        if s:
            fl.free(txid, s, n)
        if i % 7 == 0:
            fl.release(txid)
            txid += 1
        if i % 3 == 0 or i > 600:
            pending = {p for v in fl.pending_page_ids().values() for p in v}
            expect = sorted(set(fl.free_page_ids()) | pending)
            assert fl.page_id_array().tolist() == expect
    fl._check()


def test_page_id_array_returns_a_copy(make: FreelistFactory) -> None:
    fl = make(BBOLT_IDS)
    arr = fl.page_id_array()
    arr.append(999)
    assert fl.page_id_array().tolist() == BBOLT_IDS


# --- the hashmap's long-run index ---------------------------------------------


def test_hashmap_membership_inside_long_runs() -> None:
    fl = HashmapFreelist([*range(10, 30), 40, 41, *range(50, 56)])
    for p in range(0, 70):
        assert fl.freed(p) == (10 <= p < 30 or p in (40, 41) or 50 <= p < 56), p
    for start, n in [(20, 1), (29, 1), (8, 3), (29, 2), (45, 6), (55, 3), (12, 50)]:
        with pytest.raises(DoubleFreeError):
            fl.free(3, start, n)
    for start, n in [(30, 10), (8, 2), (42, 8), (56, 4)]:
        fl.free(3, start, n)
    fl.release(3)
    assert checked(fl).free_spans() == [(8, 52)]


def test_hashmap_long_runs_split_and_shrink() -> None:
    fl = HashmapFreelist(range(10, 30))
    assert fl.allocate(2, 17) == 10  # the long run becomes a short one: 27..29
    assert checked(fl).free_spans() == [(27, 3)]
    assert fl.freed(28)
    assert not fl.freed(26)
    fl.free(2, 10, 17)
    fl.release(2)
    assert checked(fl).free_spans() == [(10, 20)]


def test_hashmap_stale_heap_entries_are_compacted() -> None:
    fl = HashmapFreelist(list(range(2, 400, 2)))  # 199 one-page runs
    # merge and split runs many times: heap entries go stale and must be compacted
    for t in range(2, 190):
        fl.free(t, 2 * t - 1)  # 3, 5, 7, ...: merges one-page runs away
        fl.release(t)
        s = fl.allocate(t, 3)
        if s:
            fl.free(t, s, 3)
            fl.release(t)
        fl._check()
    assert max(len(h) for h in fl._heaps.values()) <= 2 * max(fl._live.values()) + 17


def test_repr_mentions_counts() -> None:
    assert "free=9" in repr(HashmapFreelist(BBOLT_IDS))
    assert "free=9" in repr(ArrayFreelist(BBOLT_IDS))
