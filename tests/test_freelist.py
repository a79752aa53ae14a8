"""Unit and property tests of every public freelist operation.

Every test runs on each freelist (the ``freelist_cls`` fixture: the array, the
best-fit hashmap and the hashmap with bbolt's policy) unless it is about one
class's own allocation rule, and calls :func:`check` (the class's ``_check()``
plus the cross-checks of the public views) after every step.

Expected values come from reasoning written next to them or from the small,
deliberately naive helpers of ``tests/model.py`` (set-based, one page at a
time), never from running the code under test.
"""

from __future__ import annotations

import copy
import functools
import itertools
import pickle
from array import array
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
from freelist._shared import SharedFreelist
from freelist.runs import MAX_ID, run_chunks

from .conftest import FACTORIES, PROFILE, PROFILES, FreelistFactory, chosen_profile
from .model import (
    allowed_starts,
    check,
    kept_by_release_pending,
    maximal_runs,
    observe,
    released_by_range,
)
from .strategies import free_id_lists, non_ints, run_lengths, txids

# ---------------------------------------------------------------------------
# Helpers that drive a freelist into a given state.


def raises_unchanged(
    fl: SharedFreelist, error: type[BaseException], call: Callable[[], object]
) -> None:
    """``call()`` raises ``error`` and leaves ``fl`` exactly as it was."""
    before = observe(fl)
    with pytest.raises(error):
        call()
    check(fl)
    assert observe(fl) == before


def allocate_at(fl: SharedFreelist, txid: int, start: int, n: int) -> None:
    """Make ``fl`` allocate exactly ``start..start+n-1`` for ``txid``: replace the
    free set by that run, allocate it, and give the rest back."""
    rest = fl.free_page_ids()
    assert set(rest).isdisjoint(range(start, start + n))
    fl.init(range(start, start + n))
    assert fl.allocate(txid, n) == start
    fl.init(rest)
    check(fl)


def free_with_origins(
    fl: SharedFreelist, ids: Iterable[int], origins: Iterable[tuple[int, int]], n: int = 1
) -> None:
    """Free the run of ``n`` pages at each of ``ids``, the matching ``(A, F)`` of
    ``origins`` saying which txid allocated it (0: unknown, so not allocated
    through ``fl``) and which txid frees it."""
    runs = list(zip(ids, origins, strict=True))
    for pid, (alloc, _) in runs:
        if alloc:
            allocate_at(fl, alloc, pid, n)
    for pid, (_, freed) in runs:
        fl.free(freed, pid, n)
        check(fl)


BBOLT_IDS = [3, 4, 5, 6, 7, 9, 12, 13, 18]


# ---------------------------------------------------------------------------
# The protocol, profiles, building.


def test_both_classes_satisfy_the_protocol(freelist_cls: FreelistFactory) -> None:
    fl = freelist_cls([2, 3])
    assert isinstance(fl, Freelist)
    assert isinstance(ArrayFreelist(), Freelist)
    assert isinstance(HashmapFreelist(), Freelist)
    assert not isinstance(object(), Freelist)


def test_profile_choice() -> None:
    assert chosen_profile({}) == "dev"
    assert chosen_profile({"CI": "true"}) == "ci"
    assert chosen_profile({"CI": "1", "FREELIST_HYPOTHESIS_PROFILE": "thorough"}) == "thorough"
    assert chosen_profile({"FREELIST_HYPOTHESIS_PROFILE": "ci"}) == "ci"


def test_the_hypothesis_profile_in_force_is_ours() -> None:
    name = settings._current_profile
    current = settings.default
    assert name in PROFILES
    assert current.max_examples == PROFILES[name]["max_examples"]
    assert current.deadline is None
    if name == "ci":
        # Hypothesis's own ci profile (loaded by itself when CI is set) runs 100
        # examples; ours must have replaced it.
        assert current.derandomize
        assert current.max_examples == 200
        assert current.print_blob
    if PROFILE == "ci":
        assert name == "ci"


@given(free_id_lists())
def test_run_chunks_group_sorted_ids_into_maximal_runs(ids: list[int]) -> None:
    """The starts and lengths the hashmap is built from: every id covered
    once, in order, and no two runs touching."""
    starts: list[int] = []
    lens: list[int] = []
    for chunk, sizes in run_chunks(iter(ids)):
        assert len(chunk) == len(sizes)
        starts += chunk
        lens += sizes
    assert [p for s, n in zip(starts, lens, strict=True) for p in range(s, s + n)] == ids
    assert all(n >= 1 for n in lens)
    assert all(s + n < t for s, n, t in zip(starts, lens, starts[1:], strict=False))


def test_empty_freelist(freelist_cls: FreelistFactory) -> None:
    fl = check(freelist_cls())
    assert fl.count == fl.free_count == fl.pending_count == 0
    assert fl.free_page_ids() == fl.all_page_ids() == []
    assert fl.pending_page_ids() == {}
    assert len(fl.page_id_array()) == 0
    assert fl.allocate(1, 1) == 0
    assert not fl.freed(2)
    check(fl)


SOURCES = [2, 3, 4, 10, 11, 30]


@pytest.mark.parametrize(
    "source",
    [list, tuple, iter, lambda ids: (x for x in ids), lambda ids: range(ids[0], ids[2] + 1)],
    ids=["list", "tuple", "iterator", "generator", "range"],
)
def test_build_from_any_sorted_iterable(freelist_cls: FreelistFactory, source: Any) -> None:
    """Iterables are consumed once (a fresh one per class)."""
    made = source(SOURCES)
    want = list(source(SOURCES))
    fl = check(freelist_cls(made))
    assert fl.free_page_ids() == want
    assert fl.free_spans() == maximal_runs(want)
    assert fl.free_count == len(want)
    assert fl.pending_count == 0
    for p in range(40):
        assert fl.freed(p) == (p in want)


def test_build_from_a_list(freelist_cls: FreelistFactory) -> None:
    fl = check(freelist_cls(SOURCES))
    assert fl.free_page_ids() == [2, 3, 4, 10, 11, 30]
    assert fl.free_spans() == [(2, 3), (10, 2), (30, 1)]
    assert fl.free_count == 6
    assert fl.pending_count == 0
    for p in range(40):
        assert fl.freed(p) == (p in {2, 3, 4, 10, 11, 30})


def test_build_accepts_the_largest_page_id(freelist_cls: FreelistFactory) -> None:
    assert MAX_ID == (1 << 64) - 1  # page ids and txids are unsigned 64-bit on disk
    fl = check(freelist_cls([MAX_ID - 1, MAX_ID]))
    assert fl.page_id_array().tolist() == [MAX_ID - 1, MAX_ID]
    assert fl.allocate(1, 2) == MAX_ID - 1
    check(fl)
    fl.free(2, MAX_ID - 1, 2)
    assert fl.pending_page_ids() == {2: [MAX_ID - 1, MAX_ID]}
    check(fl)


class Idx:
    """An integer-like object (``__index__``), as NumPy integers are."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


@pytest.mark.parametrize(
    "ids", [[Idx(2), Idx(3), Idx(4)], [Idx(2), 3, Idx(4)]], ids=["all-index", "mixed"]
)
def test_index_integers_are_accepted(freelist_cls: FreelistFactory, ids: list[Any]) -> None:
    fl = check(freelist_cls(ids))
    assert fl.free_page_ids() == [2, 3, 4]
    assert all(type(x) is int for x in fl.free_page_ids())
    assert fl.allocate(Idx(5), Idx(2)) == 2  # the first fit, the best fit and the only fit
    check(fl)
    fl.free(Idx(6), Idx(40), Idx(2))
    fl.free(Idx(6), Idx(2))
    check(fl)
    assert fl.pending_page_ids() == {6: [2, 40, 41]}
    assert all(type(x) is int for pend in fl.pending_page_ids().values() for x in pend)
    assert fl._pending[6][1] == (2, 1, 5)  # page 2 was allocated by txid 5
    assert fl.freed(Idx(41))
    fl.release(Idx(6))
    check(fl)
    assert fl.free_page_ids() == [2, 4, 40, 41]


@pytest.mark.parametrize(
    ("ids", "error"),
    [
        ([3, 2], InvalidPageIdsError),
        ([2, 4, 3], InvalidPageIdsError),
        ([2, 2], InvalidPageIdsError),
        ([2, 3, 3, 4], InvalidPageIdsError),
        ([0, 2], InvalidPageIdsError),
        ([1], InvalidPageIdsError),
        ([-5, 2], InvalidPageIdsError),
        ([2, 1 << 64], InvalidPageIdsError),
        ([True, 2], InvalidTypeError),
        ([2, 3.0], InvalidTypeError),
        ([2.5], InvalidTypeError),
        (["2", "3"], InvalidTypeError),
        ([2, None], InvalidTypeError),
    ],
)
def test_build_rejects_bad_ids(freelist_cls: FreelistFactory, ids: list[Any], error: type) -> None:
    with pytest.raises(error):
        freelist_cls(ids)


@pytest.mark.parametrize("bad", [3.5, "x", True, None], ids=repr)
def test_every_id_is_type_checked_not_only_the_first_odd_one(bad: object) -> None:
    """``[2, 3.5]`` raises InvalidTypeError; so must ``[Idx(2), 3.5]``, where the
    first id that is not exactly an ``int`` is a valid integer-like object and
    the bad one comes after it (and ``True`` must not pass as page 1)."""
    for factory in FACTORIES.values():
        for ids in ([Idx(2), bad], [Idx(2), 3, bad]):
            with pytest.raises(InvalidTypeError):
                factory(ids)
            fl = factory([5])
            fl.free(3, 9)
            raises_unchanged(fl, InvalidTypeError, functools.partial(fl.init, ids))
            raises_unchanged(fl, InvalidTypeError, functools.partial(fl.reload, ids))


def test_errors_have_one_base_and_the_matching_builtins() -> None:
    for cls in (InvalidArgumentError, InvalidPageIdsError, MetaPageError, InvalidTypeError):
        assert issubclass(cls, FreelistError)
        assert issubclass(cls, ValueError)
    assert issubclass(InvalidTypeError, TypeError)
    assert issubclass(DoubleFreeError, FreelistError)


def test_hashmap_rejects_an_unknown_policy() -> None:
    with pytest.raises(InvalidArgumentError):
        HashmapFreelist([2, 3], policy="worst-fit")
    assert HashmapFreelist().policy == "best-fit"
    assert HashmapFreelist(policy="bbolt").policy == "bbolt"
    assert HashmapFreelist(policy="first-fit").policy == "first-fit"


def test_first_fit_takes_the_lowest_run_that_fits_not_the_best() -> None:
    """Runs (10, 5), (20, 2), (30, 3): first fit takes 3 pages from the front of
    the 5-page run although a 3-page run exists (best fit takes that one)."""
    ids = [*range(10, 15), 20, 21, 30, 31, 32]
    ff = check(HashmapFreelist(ids, policy="first-fit"))
    assert isinstance(ff, HashmapFreelist)
    assert HashmapFreelist(ids).allocate(3, 3) == 30
    assert ff.allocate(3, 3) == 10
    assert check(ff).free_spans() == [(13, 2), (20, 2), (30, 3)]
    assert ff.allocate(3, 3) == 30
    assert ff.allocate(3, 2) == 13
    assert ff.allocate(3, 3) == 0
    assert check(ff).free_spans() == [(20, 2)]


def test_first_fit_survives_pickle_and_copy() -> None:
    ff = HashmapFreelist([2, 3, 4, 10, 11], policy="first-fit")
    ff.free(3, 20)
    for twin in (pickle.loads(pickle.dumps(ff)), copy.deepcopy(ff)):
        assert twin.policy == "first-fit"
        assert twin.allocate(4, 2) == 2
        check(twin)


# ---------------------------------------------------------------------------
# Allocation: bbolt's documented case, and each class's rule.


def test_bbolt_allocation_case_array() -> None:
    """bbolt's allocate test: first fit, lowest address first."""
    fl = check(ArrayFreelist(BBOLT_IDS))
    # 3,4,5 is the first run of three; 6 is then the lowest page; 7 alone and
    # 12,13 are too short for three; 12,13 is the first pair; 7 is the lowest page.
    for n, want in [(3, 3), (1, 6), (3, 0), (2, 12), (1, 7)]:
        assert fl.allocate(1, n) == want
        check(fl)
    assert fl.free_page_ids() == [9, 18]
    fl.init([9, 18])
    check(fl)
    for want in (9, 18, 0):
        assert fl.allocate(1, 1) == want
        check(fl)
    assert fl.free_page_ids() == []
    assert fl._allocs == {3: 1, 6: 1, 12: 1, 7: 1, 9: 1, 18: 1}


@pytest.mark.parametrize("policy", ["best-fit", "bbolt"])
def test_bbolt_allocation_case_hashmap(policy: Any) -> None:
    """The same calls on the hashmap: free runs are 3+5, 9+1, 12+2, 18+1.

    * 3 pages: no run of 3; the only (so the smallest) longer run is 3..7 -> 3,
      leaving 6..7;
    * 1 page: exact runs 9 and 18, lowest start -> 9;
    * 3 pages: runs left are 6+2, 12+2, 18+1: none -> 0;
    * 2 pages: exact runs 6 and 12, lowest start -> 6;
    * 1 page: exact run 18 -> 18, leaving 12..13.

    bbolt's policy picks a random *larger* run only when there is no exact fit;
    the one such call here has a single candidate, so both policies agree.
    """
    fl = check(HashmapFreelist(BBOLT_IDS, policy=policy))
    for n, want in [(3, 3), (1, 9), (3, 0), (2, 6), (1, 18)]:
        assert fl.allocate(1, n) == want
        check(fl)
    assert fl.free_page_ids() == [12, 13]
    fl.init([9, 18])
    for want in (9, 18, 0):
        assert fl.allocate(1, 1) == want
        check(fl)


def test_hashmap_best_fit_prefers_the_smallest_run_over_the_lowest() -> None:
    #            run of 6 at 2      run of 3 at 20   run of 3 at 30   run of 4 at 40
    ids = [*range(2, 8), *range(20, 23), *range(30, 33), *range(40, 44)]
    fl = check(HashmapFreelist(ids))
    assert fl.allocate(1, 2) == 20  # smallest fitting runs: 3 at 20 and 30; lowest: 20
    assert fl.free_spans() == [(2, 6), (22, 1), (30, 3), (40, 4)]
    assert fl.allocate(1, 2) == 30  # 30+3 is now the smallest run of at least 2
    assert fl.allocate(1, 4) == 40  # exact fit beats the lower, longer run at 2
    assert fl.allocate(1, 5) == 2
    assert fl.free_spans() == [(7, 1), (22, 1), (32, 1)]
    assert fl.allocate(1, 1) == 7  # three exact fits: lowest start
    check(fl)


def test_hashmap_bbolt_policy_takes_an_exact_fit_when_there_is_one() -> None:
    ids = [*range(2, 12), *range(20, 23), *range(30, 33)]
    for seed in range(10):
        fl = HashmapFreelist(ids, policy="bbolt", seed=seed)
        assert fl.allocate(1, 3) == 20
        assert fl.allocate(1, 3) == 30
        # No exact fit left: a larger run is chosen; the only one is 2..11.
        assert fl.allocate(1, 3) == 2
        check(fl)


def test_hashmap_bbolt_policy_repeats_for_a_seed() -> None:
    ids = [p for start in range(2, 400, 20) for p in range(start, start + (start % 13) + 1)]
    picks = []
    for _ in range(2):
        fl = HashmapFreelist(ids, policy="bbolt", seed=1234)
        picks.append([fl.allocate(1, 2) for _ in range(15)])
        check(fl)
    assert picks[0] == picks[1]
    assert 0 not in picks[0]


def test_hashmap_bbolt_policy_picks_a_larger_run_at_random() -> None:
    """With no exact fit, bbolt takes a run of any larger size (Go's map order):
    across seeds the choice varies, where best fit would always take 2."""
    ids = [*range(2, 4), *range(10, 13), *range(20, 24), *range(30, 35)]  # runs of 2, 3, 4, 5
    picks = set()
    for seed in range(20):
        fl = HashmapFreelist(ids, policy="bbolt", seed=seed)
        picks.add(fl.allocate(1, 1))
        check(fl)
    assert picks <= {2, 10, 20, 30}
    assert len(picks) > 1


def test_bbolt_multi_span_overflow_case(freelist_cls: FreelistFactory) -> None:
    """bbolt's end-to-end overflow case: runs 20+2, 25+3, 35+7, 45+5 freed and
    released; allocating 7, 5, 3, 2 pages finds exact fits in every class."""
    fl = check(freelist_cls())
    for start, n in [(20, 2), (25, 3), (35, 7), (45, 5)]:
        fl.free(10, start, n)
        check(fl)
    assert fl.free_count == 0
    assert fl.pending_count == 17
    fl.release_pending()
    check(fl)
    assert fl.pending_count == 0
    assert fl.free_spans() == [(20, 2), (25, 3), (35, 7), (45, 5)]
    for n, want in [(7, 35), (5, 45), (3, 25), (2, 20)]:
        got = fl.allocate(11, n)
        assert got == want
        assert not any(fl.freed(p) for p in range(got, got + n))
        check(fl)
    assert fl.count == 0


@given(ids=free_id_lists(), ns=st.lists(run_lengths, min_size=1, max_size=12))
def test_allocation_follows_each_class_rule(ids: list[int], ns: list[int]) -> None:
    for name, factory in FACTORIES.items():
        fl = factory(ids)
        free = set(ids)
        for n in ns:
            allowed = allowed_starts(name, free, n)
            got = fl.allocate(3, n)
            assert got in allowed, (name, sorted(free), n, got, allowed)
            if got:
                run = set(range(got, got + n))
                assert run <= free
                free -= run
                assert fl._allocs[got] == 3
            assert fl.free_page_ids() == sorted(free)
            check(fl)


@pytest.mark.parametrize(
    ("txid", "n"), [(1, 0), (1, -1), (1, 1 << 64), (0, 1), (-2, 1), (1 << 64, 1)]
)
def test_allocate_rejects_bad_values(freelist_cls: FreelistFactory, txid: int, n: int) -> None:
    """bbolt answers 0 for ``n = 0``; here a run of fewer than one page is refused,
    and so is one longer than the page id space, before the free set is touched."""
    fl = check(freelist_cls(BBOLT_IDS))
    raises_unchanged(fl, InvalidArgumentError, lambda: fl.allocate(txid, n))


@given(bad=non_ints)
def test_allocate_rejects_non_ints(bad: object) -> None:
    for factory in FACTORIES.values():
        fl = factory(BBOLT_IDS)
        raises_unchanged(fl, InvalidTypeError, functools.partial(fl.allocate, bad, 1))
        raises_unchanged(fl, InvalidTypeError, functools.partial(fl.allocate, 1, bad))


# ---------------------------------------------------------------------------
# Free.


def test_free_one_page_makes_it_pending(freelist_cls: FreelistFactory) -> None:
    fl = check(freelist_cls([20]))
    fl.free(100, 12)
    check(fl)
    assert fl.pending_page_ids() == {100: [12]}
    assert fl.free_page_ids() == [20]
    assert fl.freed(12)
    assert not fl.freed(13)
    assert (fl.free_count, fl.pending_count, fl.count) == (1, 1, 2)
    assert fl.allocate(101, 1) == 20  # a pending page is never handed out
    assert fl.allocate(101, 1) == 0
    check(fl)


def test_free_overflow_run(freelist_cls: FreelistFactory) -> None:
    fl = check(freelist_cls())
    fl.free(100, 12, 4)  # bbolt: page 12 with overflow 3
    check(fl)
    assert fl.pending_page_ids() == {100: [12, 13, 14, 15]}
    fl.free(100, 3)
    fl.free(101, 5, 2)
    check(fl)
    assert fl.pending_page_ids() == {100: [3, 12, 13, 14, 15], 101: [5, 6]}
    assert [p for p in range(20) if fl.freed(p)] == [3, 5, 6, 12, 13, 14, 15]


def test_free_next_to_free_and_pending_pages(freelist_cls: FreelistFactory) -> None:
    fl = check(freelist_cls([10, 11, 15]))
    fl.free(3, 12, 3)  # touches the free run 10..11 and the free page 15
    fl.free(3, 9)
    fl.free(4, 16)
    check(fl)
    assert fl.free_spans() == [(10, 2), (15, 1)]  # pending pages never merge into free runs
    assert fl.pending_page_ids() == {3: [9, 12, 13, 14], 4: [16]}


@pytest.mark.parametrize(
    ("start", "n"),
    [
        (12, 4),  # the same run again (bbolt's double-free case)
        (12, 1),  # its first page
        (15, 1),  # its last page
        (13, 2),  # inside it
        (10, 3),  # overlapping its start from below
        (15, 5),  # overlapping its end from above
        (8, 20),  # covering it
        (30, 1),  # a free page
        (28, 3),  # a run ending on a free page
        (31, 2),  # a run starting on the last free page
    ],
)
def test_double_free_is_refused(freelist_cls: FreelistFactory, start: int, n: int) -> None:
    fl = check(freelist_cls([29, 30, 31]))
    fl.free(100, 12, 4)
    check(fl)
    raises_unchanged(fl, DoubleFreeError, lambda: fl.free(100, start, n))
    raises_unchanged(fl, DoubleFreeError, lambda: fl.free(200, start, n))


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((100, 0), MetaPageError),
        ((100, 1), MetaPageError),
        ((100, 0, 5), MetaPageError),
        ((100, 1, 2), MetaPageError),
        ((100, -1), InvalidArgumentError),
        ((100, 12, 0), InvalidArgumentError),
        ((100, 12, -4), InvalidArgumentError),
        ((100, 1 << 64), InvalidArgumentError),
        ((100, MAX_ID, 2), InvalidArgumentError),
        ((0, 12), InvalidArgumentError),
        ((-1, 12), InvalidArgumentError),
        ((1 << 64, 12), InvalidArgumentError),
        ((100, 12.0), InvalidTypeError),
        ((100, "12"), InvalidTypeError),
        ((100, 12, 1.0), InvalidTypeError),
        ((100, 12, True), InvalidTypeError),
        ((100, 12, None), InvalidTypeError),
        ((100, False), InvalidTypeError),  # not page 0: a bool is no page id
        ((100, True, 2), InvalidTypeError),
        ((True, 12), InvalidTypeError),
        ((100.0, 12), InvalidTypeError),
        ((None, 12), InvalidTypeError),
    ],
)
def test_free_rejects_bad_arguments(
    freelist_cls: FreelistFactory, args: tuple[Any, ...], error: type
) -> None:
    fl = check(freelist_cls([20, 21]))
    allocate_at(fl, 5, 12, 1)  # page 12 carries an allocation record
    fl.free(6, 30)
    raises_unchanged(fl, error, lambda: fl.free(*args))
    assert fl._allocs == {12: 5}  # the failed free did not take the record


def test_meta_page_error_is_an_argument_error(freelist_cls: FreelistFactory) -> None:
    fl = freelist_cls()
    with pytest.raises(InvalidArgumentError):
        fl.free(1, 0)


def test_free_of_the_last_page_id(freelist_cls: FreelistFactory) -> None:
    fl = check(freelist_cls())
    fl.free(5, MAX_ID)
    fl.free(5, MAX_ID - 3, 3)
    check(fl)
    assert fl.pending_page_ids() == {5: [MAX_ID - 3, MAX_ID - 2, MAX_ID - 1, MAX_ID]}
    fl.release(5)
    assert fl.free_spans() == [(MAX_ID - 3, 4)]
    check(fl)


def test_free_takes_the_allocation_record(freelist_cls: FreelistFactory) -> None:
    """bbolt keeps the allocating txid with the freed page (releaseRange needs it)."""
    fl = check(freelist_cls(range(2, 20)))
    a = fl.allocate(7, 3)
    assert fl._allocs == {a: 7}
    fl.free(9, a, 3)
    assert fl._allocs == {}
    assert fl._pending == {9: [(a, 3, 7)]}
    check(fl)


# ---------------------------------------------------------------------------
# Release.


def test_release_frees_older_transactions_and_merges(freelist_cls: FreelistFactory) -> None:
    """bbolt's release case, plus merging with free neighbours."""
    fl = check(freelist_cls([11, 14]))
    fl.free(100, 12, 2)
    fl.free(100, 9)
    fl.free(102, 39)
    fl.free(103, 10)
    check(fl)
    fl.release(100)
    check(fl)
    fl.release(101)  # no transaction 101: nothing changes
    check(fl)
    assert fl.free_page_ids() == [9, 11, 12, 13, 14]
    assert fl.free_spans() == [(9, 1), (11, 4)]
    assert fl.pending_page_ids() == {102: [39], 103: [10]}
    fl.release(103)
    check(fl)
    assert fl.free_spans() == [(9, 6), (39, 1)]
    assert fl.pending_count == 0
    before = observe(fl)
    fl.release(MAX_ID)  # nothing pending at all: nothing changes
    check(fl)
    assert observe(fl) == before
    assert fl.allocate(104, 6) == 9
    check(fl)


def test_release_zero_and_the_largest_txid(freelist_cls: FreelistFactory) -> None:
    fl = check(freelist_cls())
    fl.free(1, 5)
    fl.free(MAX_ID, 6)
    fl.release(0)
    assert fl.pending_count == 2
    fl.release(MAX_ID - 1)
    assert fl.pending_page_ids() == {MAX_ID: [6]}
    fl.release(MAX_ID)
    assert fl.free_page_ids() == [5, 6]
    check(fl)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda fl: fl.release(-1), InvalidArgumentError),
        (lambda fl: fl.release(1 << 64), InvalidArgumentError),
        (lambda fl: fl.release(True), InvalidTypeError),
        (lambda fl: fl.release(3.0), InvalidTypeError),
        (lambda fl: fl.release_range(-1, 5), InvalidArgumentError),
        (lambda fl: fl.release_range(1, 1 << 64), InvalidArgumentError),
        (lambda fl: fl.release_range(True, 5), InvalidTypeError),
        (lambda fl: fl.release_range(1, "5"), InvalidTypeError),
        (lambda fl: fl.rollback(0), InvalidArgumentError),
        (lambda fl: fl.rollback(-3), InvalidArgumentError),
        (lambda fl: fl.rollback(1 << 64), InvalidArgumentError),
        (lambda fl: fl.rollback(True), InvalidTypeError),
        (lambda fl: fl.rollback("5"), InvalidTypeError),
        (lambda fl: fl.add_reader(-1), InvalidArgumentError),
        (lambda fl: fl.add_reader(1 << 64), InvalidArgumentError),
        (lambda fl: fl.add_reader(False), InvalidTypeError),
        (lambda fl: fl.add_reader(2.0), InvalidTypeError),
        (lambda fl: fl.remove_reader(99), InvalidArgumentError),
        (lambda fl: fl.remove_reader(-1), InvalidArgumentError),
        (lambda fl: fl.remove_reader(True), InvalidTypeError),
        (lambda fl: fl.freed(-1), InvalidArgumentError),
        (lambda fl: fl.freed(True), InvalidTypeError),
        (lambda fl: fl.freed(12.0), InvalidTypeError),
        (lambda fl: fl.freed("12"), InvalidTypeError),
        (lambda fl: fl.init([5, 4]), InvalidPageIdsError),
        (lambda fl: fl.init([4, 4]), InvalidPageIdsError),
        (lambda fl: fl.init([1, 4]), InvalidPageIdsError),
        (lambda fl: fl.init([4, 1 << 64]), InvalidPageIdsError),
        (lambda fl: fl.init([4, 5.0]), InvalidTypeError),
        (lambda fl: fl.init([True]), InvalidTypeError),
        (lambda fl: fl.init([40, 41]), InvalidPageIdsError),  # 41 is pending
        (lambda fl: fl.reload([5, 4]), InvalidPageIdsError),
        (lambda fl: fl.reload([0, 4]), InvalidPageIdsError),
        (lambda fl: fl.reload([4, 4]), InvalidPageIdsError),
        (lambda fl: fl.reload(["4"]), InvalidTypeError),
    ],
)
def test_every_error_leaves_the_state_unchanged(
    freelist_cls: FreelistFactory, call: Callable[[SharedFreelist], object], error: type
) -> None:
    fl = check(freelist_cls(range(2, 40)))
    a = fl.allocate(3, 4)
    fl.allocate(4, 2)
    fl.free(5, a, 4)
    fl.free(5, 41)
    fl.free(6, 45, 3)
    fl.add_reader(4)
    fl.add_reader(4)
    fl.release_range(5, 5)  # leaves a release mark
    fl.page_id_array()  # a live id cache, to be patched by later changes
    fl.allocate(7, 1)
    check(fl)
    raises_unchanged(fl, error, lambda: call(fl))
    # And the freelist still works after the refusal.
    fl.release_pending()
    check(fl)


# ---------------------------------------------------------------------------
# release_range and release_pending: which pending pages become free.

# (title, pages as (allocating txid or 0, freeing txid), ranges applied in order,
#  indexes of the pages that must be free afterwards)
RELEASE_RANGE_CASES = [
    ("freed and allocated inside", [(100, 200)], [(1, 300)], {0}),
    ("free txid at the end of the range", [(100, 200)], [(1, 200)], {0}),
    ("free txid just past the end", [(100, 200)], [(1, 199)], set()),
    ("alloc txid at the start of the range", [(100, 200)], [(100, 300)], {0}),
    ("alloc txid just before the start", [(100, 200)], [(101, 300)], set()),
    ("range of exactly alloc..free", [(199, 200)], [(199, 200)], {0}),
    ("a reader at 199 splits the range", [(199, 200)], [(100, 198), (200, 300)], set()),
    (
        "readers at 199 and 200",
        [(199, 200), (200, 201)],
        [(100, 198), (200, 199), (201, 300)],
        set(),
    ),
    ("ranges given backwards do nothing", [(199, 200), (200, 201)], [(201, 199), (300, 1)], set()),
    ("one-txid range", [(200, 200), (199, 200)], [(200, 200)], {0}),
    ("unknown allocator, range from 1", [(0, 200)], [(1, 300)], set()),
    ("unknown allocator, range from 0", [(0, 200)], [(0, 300)], {0}),
    (
        "several pages around a reader at 150",
        # 0: 100..200 spans the reader      1: 100..125 before it
        # 2: 125..150 ends on it            3: 125..175 spans it
        # 4: 150..175 starts on it          5: 175..200 after it
        # 6: 160..170 after it
        [(100, 200), (100, 125), (125, 150), (125, 175), (150, 175), (175, 200), (160, 170)],
        [(50, 149), (151, 300)],
        {1, 5, 6},
    ),
]


@pytest.mark.parametrize(
    ("pages", "ranges", "released"),
    [case[1:] for case in RELEASE_RANGE_CASES],
    ids=[case[0] for case in RELEASE_RANGE_CASES],
)
def test_release_range(
    freelist_cls: FreelistFactory,
    pages: list[tuple[int, int]],
    ranges: list[tuple[int, int]],
    released: set[int],
) -> None:
    fl = check(freelist_cls())
    ids = [10 + 3 * i for i in range(len(pages))]  # apart: no merging
    free_with_origins(fl, ids, pages, 2)
    for begin, end in ranges:
        fl.release_range(begin, end)
        check(fl)
    want = sorted(p for i in released for p in (ids[i], ids[i] + 1))
    assert fl.free_page_ids() == want
    assert fl.pending_count == 2 * (len(pages) - len(released))


def test_release_range_rescans_a_transaction_after_a_new_free(
    freelist_cls: FreelistFactory,
) -> None:
    """After a range scanned a transaction, a page that transaction frees later
    must be considered by the next range with the same begin."""
    fl = check(freelist_cls())
    allocate_at(fl, 3, 10, 1)  # allocated before the range: never released by it
    allocate_at(fl, 6, 20, 1)  # allocated inside the range
    fl.free(7, 10)
    fl.release_range(5, 9)
    assert fl.pending_page_ids() == {7: [10]}
    fl.free(7, 20)
    fl.release_range(5, 9)
    check(fl)
    assert fl.free_page_ids() == [20]
    assert fl.pending_page_ids() == {7: [10]}


def run_readers_case(
    fl: SharedFreelist, readers: list[int], pages: list[tuple[int, int]]
) -> list[int]:
    ids = [10 + 3 * i for i in range(len(pages))]
    free_with_origins(fl, ids, pages)
    for r in readers:
        fl.add_reader(r)
    check(fl)
    fl.release_pending()
    check(fl)
    assert fl.readers == sorted(readers)
    return [i for i, pid in enumerate(ids) if pid in fl.free_page_ids()]


# (readers, pages as (allocating txid or 0, freeing txid), indexes released).
# A page allocated at A and freed at F is visible to readers of A .. F-1; bbolt
# releases it when F is older than every reader, or when no reader r has
# A <= r <= F (it keeps r == F back too: the gaps it scans exclude the readers).
READER_CASES = [
    ([], [(0, 5), (3, 5), (0, MAX_ID - 1)], [0, 1, 2]),
    (
        [5],
        [(0, 4), (0, 5), (3, 4), (3, 6), (5, 6), (6, 7), (6, 6), (0, 7), (4, 5)],
        [0, 2, 5, 6],
    ),
    (
        [3, 8],
        [(1, 2), (2, 4), (4, 7), (4, 8), (9, 10), (0, 5), (8, 9), (5, 5), (0, 2), (7, 7)],
        [0, 2, 4, 7, 8, 9],
    ),
    ([4, 4], [(5, 6), (2, 3), (4, 5), (3, 4)], [0, 1]),
    ([0], [(1, 2), (0, 2), (0, 0 + 1)], [0]),
    ([2, 5, 9], [(3, 4), (6, 8), (3, 6), (10, 12), (1, 1), (4, 9)], [0, 1, 3, 4]),
]


@pytest.mark.parametrize(("readers", "pages", "released"), READER_CASES)
def test_release_pending_with_open_readers(
    freelist_cls: FreelistFactory,
    readers: list[int],
    pages: list[tuple[int, int]],
    released: list[int],
) -> None:
    fl = check(freelist_cls())
    assert run_readers_case(fl, readers, pages) == released


# (allocating txid or 0, freeing txid), with the allocation no later than the free.
page_specs = st.lists(
    st.tuples(st.integers(0, 12), st.integers(1, 12)).map(lambda t: (min(t), t[1])),
    max_size=12,
)


def free_round(
    fl: SharedFreelist,
    pages: dict[int, tuple[int, int]],
    specs: list[tuple[int, int]],
    pids: Iterator[int],
) -> None:
    """Free one new page (the next of ``pids``) per ``(A, F)`` of ``specs`` and
    note each in ``pages``."""
    ids = [next(pids) for _ in specs]
    free_with_origins(fl, ids, specs)
    pages.update(zip(ids, specs, strict=True))


@given(rounds=st.lists(st.tuples(page_specs, st.lists(st.integers(0, 13), max_size=4)), max_size=4))
def test_release_pending_over_rounds_matches_the_rule(
    rounds: list[tuple[list[tuple[int, int]], list[int]]],
) -> None:
    """Rounds of frees, a new set of open readers, and release_pending: each
    page is released as soon as no open reader can see it.  Transactions are
    scanned again when they free more pages, and across changing readers."""
    for factory in FACTORIES.values():
        fl = factory()
        pages: dict[int, tuple[int, int]] = {}
        pids = itertools.count(10, 2)
        open_readers: list[int] = []
        for specs, readers in rounds:
            free_round(fl, pages, specs, pids)
            for r in open_readers:
                fl.remove_reader(r)
            for r in readers:
                fl.add_reader(r)
            open_readers = readers
            fl.release_pending()
            check(fl)
            still = {p for p, (a, f) in pages.items() if kept_by_release_pending(a, f, readers)}
            assert fl.free_page_ids() == sorted(set(pages) - still)
            assert fl.pending_count == len(still)
            pages = {p: pages[p] for p in still}
            fl.init([])


@given(
    rounds=st.lists(
        st.tuples(page_specs, st.lists(st.tuples(st.integers(0, 13), st.integers(0, 13)))),
        max_size=4,
    )
)
def test_release_range_over_rounds_matches_the_rule(
    rounds: list[tuple[list[tuple[int, int]], list[tuple[int, int]]]],
) -> None:
    """``release_range(b, e)`` frees exactly the pending pages freed and
    allocated within ``[b, e]`` (an unknown allocator counts as txid 0), however
    ranges and new frees interleave."""
    for factory in FACTORIES.values():
        fl = factory()
        pages: dict[int, tuple[int, int]] = {}
        pids = itertools.count(10, 2)
        for specs, ranges in rounds:
            free_round(fl, pages, specs, pids)
            for b, e in ranges:
                fl.release_range(b, e)
                pages = {p: af for p, af in pages.items() if not released_by_range(*af, b, e)}
                assert fl.pending_count == len(pages)
            check(fl)
            assert sorted(p for v in fl.pending_page_ids().values() for p in v) == sorted(pages)
            fl.init([])


def test_release_pending_as_readers_come_and_go(freelist_cls: FreelistFactory) -> None:
    """bbolt's read-only tracking case: pages freed by txids 10, 11 and 12 (no
    allocation records), readers opening and closing, counted per txid."""
    fl = check(freelist_cls())
    fl.free(10, 10, 3)
    fl.free(11, 20, 3)
    fl.free(12, 30, 3)
    check(fl)

    def pages(free: list[int], pending: list[int]) -> None:
        check(fl)
        assert fl.free_page_ids() == free
        assert sorted(p for ids in fl.pending_page_ids().values() for p in ids) == pending

    fl.add_reader(11)
    fl.release_pending()
    pages([10, 11, 12], [20, 21, 22, 30, 31, 32])
    fl.add_reader(12)  # readers 11 and 12
    fl.release_pending()
    pages([10, 11, 12], [20, 21, 22, 30, 31, 32])
    fl.remove_reader(11)
    fl.add_reader(12)  # 12 twice
    fl.release_pending()
    pages([10, 11, 12, 20, 21, 22], [30, 31, 32])
    fl.remove_reader(12)
    fl.add_reader(13)  # 12 once, 13 once
    fl.release_pending()
    pages([10, 11, 12, 20, 21, 22], [30, 31, 32])
    fl.remove_reader(12)
    fl.release_pending()
    pages([10, 11, 12, 20, 21, 22, 30, 31, 32], [])
    assert fl.readers == [13]
    fl.remove_reader(13)
    assert fl.readers == []
    raises_unchanged(fl, InvalidArgumentError, lambda: fl.remove_reader(13))
    raises_unchanged(fl, InvalidArgumentError, lambda: fl.remove_reader(12))


def test_readers_are_counted(freelist_cls: FreelistFactory) -> None:
    fl = check(freelist_cls())
    for r in (7, 3, 7, 0, MAX_ID):
        fl.add_reader(r)
    assert fl.readers == [0, 3, 7, 7, MAX_ID]
    fl.remove_reader(7)
    fl.remove_reader(MAX_ID)
    assert fl.readers == [0, 3, 7]
    fl.remove_reader(0)
    fl.remove_reader(7)
    assert fl.readers == [3]
    raises_unchanged(fl, InvalidArgumentError, lambda: fl.remove_reader(7))
    assert fl.readers == [3]
    check(fl)


# ---------------------------------------------------------------------------
# Rollback.


def test_rollback_returns_the_writers_allocations(freelist_cls: FreelistFactory) -> None:
    """The writer allocates three runs, frees one of them and a page of unknown
    origin; its rollback restores exactly the state before it, leaving the page
    an earlier transaction freed pending."""
    fl = check(freelist_cls(range(2, 14)))
    fl.free(4, 40)
    before = observe(fl)
    a = fl.allocate(5, 3)
    b = fl.allocate(5, 2)
    c = fl.allocate(5, 1)
    assert 0 not in (a, b, c)
    assert fl.free_count == 6
    fl.free(5, a, 3)  # freed by the transaction that allocated it
    fl.free(5, 50)  # never allocated through this freelist
    check(fl)
    fl.rollback(5)
    check(fl)
    assert observe(fl) == before  # the free runs are merged back whole
    assert not fl.freed(50)
    assert fl.allocate(6, 12) == 2


def test_rollback_undoes_frees_and_restores_allocation_records(
    freelist_cls: FreelistFactory,
) -> None:
    """Page 10 was allocated by txid 3.  Txid 5 frees it and rolls back: 10 is in
    use again, and a later free treats it as allocated by 3, so with a reader on
    snapshot 2 (which cannot see a page born at 3) it is released at once.
    Page 11 has no allocation record and, freed the same way, stays pending."""
    fl = check(freelist_cls())
    allocate_at(fl, 3, 10, 1)
    allocate_at(fl, 5, 20, 2)  # txid 5 is the writer
    fl.free(5, 10)
    fl.free(5, 11)
    check(fl)
    fl.rollback(5)
    check(fl)
    assert fl.pending_page_ids() == {}
    assert not fl.freed(10)
    assert not fl.freed(11)
    assert fl.free_page_ids() == [20, 21]  # txid 5's own allocation went back
    assert fl._allocs == {10: 3}
    fl.add_reader(2)
    fl.free(6, 10)
    fl.free(6, 11)
    fl.release_pending()
    check(fl)
    assert fl.free_page_ids() == [10, 20, 21]
    assert fl.pending_page_ids() == {6: [11]}


def test_rollback_by_an_older_txid_restores_records_too(freelist_cls: FreelistFactory) -> None:
    fl = check(freelist_cls())
    allocate_at(fl, 3, 10, 1)
    fl.free(5, 10)  # txid 5 allocated nothing: not the writer
    fl.rollback(5)
    check(fl)
    assert fl._allocs == {10: 3}
    assert not fl.freed(10)


def test_rollback_returns_pages_the_writer_allocated_and_freed(
    freelist_cls: FreelistFactory,
) -> None:
    fl = check(freelist_cls(range(2, 10)))
    a = fl.allocate(5, 2)
    fl.free(5, a, 2)
    assert fl.freed(a)
    fl.rollback(5)
    check(fl)
    assert fl.free_page_ids() == list(range(2, 10))
    assert fl.pending_count == 0


def test_rollback_after_the_writers_pages_were_released(freelist_cls: FreelistFactory) -> None:
    fl = check(freelist_cls(range(2, 10)))
    a = fl.allocate(5, 3)
    fl.free(5, a, 3)
    fl.release(5)
    again = fl.allocate(5, 1)
    assert again in range(2, 10)
    fl.rollback(5)
    check(fl)
    assert fl.free_page_ids() == list(range(2, 10))  # every page once


def test_rollback_gives_the_writers_pages_back_once(freelist_cls: FreelistFactory) -> None:
    """bbolt's next writer after a rollback reuses the txid.  Its own rollback
    gives back only what it allocated, not the runs the first rollback already
    returned (pages 2 and 3, which a reload has since marked in use)."""
    fl = check(freelist_cls(range(2, 10)))
    assert fl.allocate(5, 2) == 2
    fl.rollback(5)
    assert fl.free_page_ids() == list(range(2, 10))
    fl.reload(range(4, 10))  # a page walk found 2 and 3 in use
    assert fl.allocate(5, 1) == 4
    fl.rollback(5)
    check(fl)
    assert fl.free_page_ids() == list(range(4, 10))


def test_rollback_leaves_pages_another_txid_freed_pending(freelist_cls: FreelistFactory) -> None:
    fl = check(freelist_cls(range(2, 10)))
    a = fl.allocate(5, 2)
    fl.free(6, a, 2)  # a later transaction freed the writer's run
    fl.rollback(5)
    check(fl)
    assert fl.pending_page_ids() == {6: [a, a + 1]}
    assert fl.free_count == 6


def test_rollback_of_an_older_txid_drops_its_records(freelist_cls: FreelistFactory) -> None:
    """Txid 5 allocated page 10, then txid 6 became the writer.  Rolling back 5
    drops 5's allocation record (the page stays in use): a later free of 10 has
    no known allocator, so a reader on 4 keeps it pending."""
    fl = check(freelist_cls())
    allocate_at(fl, 5, 10, 1)
    allocate_at(fl, 6, 20, 1)
    fl.rollback(5)
    check(fl)
    assert not fl.freed(10)
    assert fl._allocs == {20: 6}
    fl.add_reader(4)
    fl.free(8, 10)
    fl.release_pending()
    check(fl)
    assert fl.pending_page_ids() == {8: [10]}


def test_rollback_of_a_txid_that_did_nothing(freelist_cls: FreelistFactory) -> None:
    fl = check(freelist_cls(range(2, 10)))
    fl.allocate(3, 2)
    fl.free(4, 20)
    before = observe(fl)
    fl.rollback(1337)
    check(fl)
    assert observe(fl) == before


# ---------------------------------------------------------------------------
# init and reload.


def test_reload_keeps_pending_pages_out(freelist_cls: FreelistFactory) -> None:
    """bbolt's reload case: 5, 6, 8 free, 10..12 pending; reading back a list
    that names the pending pages must not make them free."""
    fl = check(freelist_cls([5, 6, 8]))
    fl.free(5, 10, 3)
    fl.reload(fl.all_page_ids())
    check(fl)
    assert fl.free_page_ids() == [5, 6, 8]
    assert fl.pending_page_ids() == {5: [10, 11, 12]}
    fl.reload([3, 4, 11, 13])
    check(fl)
    assert fl.free_page_ids() == [3, 4, 13]
    assert fl.pending_page_ids() == {5: [10, 11, 12]}
    fl.reload([])
    check(fl)
    assert fl.free_page_ids() == []
    assert fl.count == 3


def test_init_replaces_the_free_set_and_keeps_the_rest(freelist_cls: FreelistFactory) -> None:
    fl = check(freelist_cls([5, 6, 8]))
    fl.free(5, 10)
    fl.add_reader(2)
    fl.init([3, 20, 21])
    check(fl)
    assert fl.free_page_ids() == [3, 20, 21]
    assert fl.pending_page_ids() == {5: [10]}
    assert fl.readers == [2]
    raises_unchanged(fl, InvalidPageIdsError, lambda: fl.init([3, 10]))
    fl.init([])
    assert fl.free_count == 0
    check(fl)


# ---------------------------------------------------------------------------
# The serialised list: counts and ids around bbolt's 0xFFFF header limit.


@pytest.mark.parametrize("total", [0xFFFE, 0xFFFF, 0x10000])
def test_ids_around_the_0xffff_boundary(freelist_cls: FreelistFactory, total: int) -> None:
    """bbolt writes the count in a 16-bit header field below 0xFFFF and in the
    first element from 0xFFFF up.  The freelist's part: the count and the
    sorted list of free and pending ids, exact at either side of the limit."""
    pending = range(1000, 1300)
    every = range(2, 1 + total)  # total - 1 ids
    far = total + 12
    fl = freelist_cls(p for p in every if p not in pending)
    fl.free(7, 1000, 300)
    fl.free(8, far)  # one more pending page, apart from the rest
    check(fl)
    assert fl.count == total
    assert (fl.free_count, fl.pending_count) == (total - 301, 301)
    ids = fl.page_id_array()
    assert (ids.typecode, ids.itemsize, len(ids)) == ("Q", 8, total)
    assert ids.tolist() == fl.all_page_ids()
    assert ids.tolist() == [*range(2, 1 + total), far]
    # Crossing the limit one page at a time keeps the count and the list exact.
    p = fl.allocate(10, 1)
    assert fl.count == total - 1
    assert len(fl.all_page_ids()) == total - 1
    assert p not in fl.page_id_array()
    fl.free(10, p)
    fl.free(10, 1 + total)
    assert fl.count == total + 1
    assert fl.all_page_ids()[-2:] == [1 + total, far]
    check(fl)


# ---------------------------------------------------------------------------
# The sorted id cache (page_id_array), patched lazily.


@pytest.mark.parametrize("every", [1, 7, 255, 256, 257, 400])
def test_page_id_array_across_many_changes(freelist_cls: FreelistFactory, every: int) -> None:
    """Read the list every ``every`` changes: below, at and past the point where
    the cache stops being patched and is rebuilt."""
    fl = freelist_cls(range(2, 3000))
    txid = 2
    held: list[tuple[int, int]] = []

    def look() -> None:
        free = fl.free_page_ids()
        pending = [p for ids in fl.pending_page_ids().values() for p in ids]
        assert fl.page_id_array().tolist() == sorted(free + pending)

    look()
    for step in range(900):
        n = 1 + step % 3
        if step % 5 == 4 and held:
            s, k = held.pop(step % len(held))
            fl.free(txid, s, k)
        else:
            s = fl.allocate(txid, n)
            assert s
            held.append((s, n))
        if step % 97 == 96:
            fl.release(txid)  # no id changes: pending ids become free ids
            txid += 1
        if (step + 1) % every == 0:
            look()
    look()
    check(fl)


def test_page_id_array_returns_a_fresh_copy(freelist_cls: FreelistFactory) -> None:
    fl = freelist_cls([2, 3, 4])
    ids = fl.page_id_array()
    assert isinstance(ids, array)
    ids[0] = 99
    ids.append(5)
    assert fl.page_id_array().tolist() == [2, 3, 4]
    check(fl)


@st.composite
def operations(draw: st.DrawFn) -> list[tuple[str, int, int]]:
    ops = st.one_of(
        st.tuples(st.just("allocate"), txids, run_lengths),
        st.tuples(st.just("free"), txids, st.integers(0, 30)),
        st.tuples(st.just("release"), txids, st.just(0)),
        st.tuples(st.just("release_range"), txids, txids),
        st.tuples(st.just("rollback"), txids, st.just(0)),
        st.tuples(st.just("look"), st.just(0), st.just(0)),
        st.tuples(st.just("reload"), st.just(0), st.just(0)),
    )
    return draw(st.lists(ops, max_size=60))


@settings(max_examples=max(settings.default.max_examples // 2, 10))
@given(ids=free_id_lists(), ops=operations())
def test_page_id_array_follows_interleaved_operations(
    ids: list[int], ops: list[tuple[str, int, int]]
) -> None:
    for factory in FACTORIES.values():
        fl = factory(ids)
        held: list[tuple[int, int]] = []
        fl.page_id_array()
        for op, a, b in ops:
            if op == "allocate":
                s = fl.allocate(a, b)
                if s:
                    held.append((s, b))
            elif op == "free" and held:
                s, k = held.pop(b % len(held))
                fl.free(a, s, k)
            elif op == "release":
                fl.release(a)
            elif op == "release_range":
                fl.release_range(min(a, b), max(a, b))
            elif op == "rollback":
                fl.rollback(a)
                # the rollback may have given some held runs back to the free set
                held = [(s, k) for s, k in held if not any(fl.freed(p) for p in range(s, s + k))]
            elif op == "reload":
                fl.reload(fl.all_page_ids())
            else:
                free = fl.free_page_ids()
                pending = [p for v in fl.pending_page_ids().values() for p in v]
                assert fl.page_id_array().tolist() == sorted(free + pending)
            fl._check()
        check(fl)


# ---------------------------------------------------------------------------
# Membership and double frees around long runs (the hashmap's long-run index).

# Runs of 1 .. 9, 12 and 20 pages (the hashmap indexes runs longer than 4 by
# their end), separated by gaps of 1, 2 and 3 pages.
LAYOUT_RUNS = [1, 4, 5, 2, 6, 3, 9, 1, 12, 7, 20, 8, 1, 5, 4]


def long_run_layout() -> list[int]:
    ids: list[int] = []
    p = 2
    for i, length in enumerate(LAYOUT_RUNS):
        ids.extend(range(p, p + length))
        p += length + 1 + i % 3
    return ids


def assert_membership_exact(fl: SharedFreelist, free: set[int], top: int) -> None:
    """``freed`` and the double-free check agree with ``free`` for every page
    and every run of up to 7 pages below ``top``."""
    assert fl.pending_count == 0
    for p in range(top):
        assert fl.freed(p) == (p in free), p
    base = observe(fl)
    for start in range(2, top):
        for n in range(1, 8):
            if free.isdisjoint(range(start, start + n)):
                fl.free(999, start, n)
                assert fl.pending_page_ids() == {999: list(range(start, start + n))}
                fl.rollback(999)  # 999 allocated nothing: the pages go back in use
            else:
                with pytest.raises(DoubleFreeError):
                    fl.free(999, start, n)
    assert observe(fl) == base
    check(fl)


def test_membership_around_long_and_short_runs(freelist_cls: FreelistFactory) -> None:
    ids = long_run_layout()
    fl = check(freelist_cls(ids))
    assert [n for _, n in fl.free_spans()] == LAYOUT_RUNS
    assert_membership_exact(fl, set(ids), ids[-1] + 10)


def test_membership_after_long_runs_split_shrink_and_merge(freelist_cls: FreelistFactory) -> None:
    ids = long_run_layout()
    fl = check(freelist_cls(ids))
    free = set(ids)
    taken = []
    for n in (3, 1, 2, 5, 7, 1, 4, 10):
        s = fl.allocate(2, n)
        assert s
        free -= set(range(s, s + n))
        taken.append((s, n))
        check(fl)
    assert fl.free_page_ids() == sorted(free)
    assert_membership_exact(fl, free, ids[-1] + 10)
    # Give every gap page and the taken runs back: everything merges.
    gaps = sorted(set(range(2, ids[-1] + 1)) - set(ids))
    for p in gaps:
        fl.free(3, p)
    for s, n in taken:
        fl.free(3, s, n)
    fl.release(3)
    check(fl)
    assert fl.free_spans() == [(2, ids[-1] - 1)]
    assert_membership_exact(fl, set(range(2, ids[-1] + 1)), ids[-1] + 10)


@given(
    ids=free_id_lists(max_page=90),
    ops=st.lists(st.tuples(st.booleans(), run_lengths), max_size=14),
)
def test_membership_matches_the_free_set(ids: list[int], ops: list[tuple[bool, int]]) -> None:
    """Random runs split by allocations and merged again by frees and releases,
    then every page and short run checked against the free set."""
    for factory in FACTORIES.values():
        fl = factory(ids)
        held: list[tuple[int, int]] = []
        for give_back, n in ops:
            if give_back and held:
                s, k = held.pop(n % len(held))
                fl.free(1, s, k)
                fl.release(1)
            else:
                s = fl.allocate(1, n)
                if s:
                    held.append((s, n))
        check(fl)
        free = set(ids) - {p for s, k in held for p in range(s, s + k)}
        assert fl.free_page_ids() == sorted(free)
        for p in range(95):
            assert fl.freed(p) == (p in free)
        for start in range(2, 95):
            for n in (1, 2, 3, 5, 8):
                overlap = not free.isdisjoint(range(start, start + n))
                assert fl._overlaps_free(start, n) == overlap, (start, n)


def test_hashmap_long_run_index_follows_splits() -> None:
    fl = HashmapFreelist([*range(2, 12), *range(20, 25), *range(30, 34)])
    assert fl.span_count == 3
    assert list(fl._large) == [12, 25]  # ends of the runs longer than 4 pages
    assert fl.allocate(1, 4) == 30  # exact fit
    assert list(fl._large) == [12, 25]
    assert fl.allocate(1, 1) == 20  # smallest run that fits: 20+5 -> 21+4, no longer long
    assert list(fl._large) == [12]
    assert fl.allocate(1, 3) == 21  # 21+4 -> 24+1
    assert fl.allocate(1, 2) == 2  # 2+10 -> 4+8, same end
    assert list(fl._large) == [12]
    for p in range(35):
        assert fl.freed(p) == (p in {*range(4, 12), 24})
    with pytest.raises(DoubleFreeError):
        fl.free(5, 11)  # the last page of the long run
    with pytest.raises(DoubleFreeError):
        fl.free(5, 2, 3)  # ends on its first page
    with pytest.raises(DoubleFreeError):
        fl.free(5, 10, 4)  # starts inside, reaches past its end
    fl.free(5, 2, 2)
    fl.free(5, 12, 12)
    fl.release(5)
    check(fl)
    assert fl.free_spans() == [(2, 23)]
    assert fl.span_count == 1
    assert list(fl._large) == [25]


def test_hashmap_stale_heap_entries_are_compacted() -> None:
    """199 one-page runs merged into longer runs one by one leave stale entries
    in the heap of size 1; the heaps must be compacted as they go (``_check()``
    bounds every heap by twice its live runs plus 17)."""
    fl = check(HashmapFreelist(range(2, 400, 2)))
    for t in range(2, 190):
        fl.free(t, 2 * t - 1)  # 3, 5, 7, ...: merges one-page runs away
        fl.release(t)
        s = fl.allocate(t, 3)
        assert s
        fl.free(t, s, 3)
        fl.release(t)
        check(fl)
    assert fl.free_spans() == [(2, 377), *((p, 1) for p in range(380, 400, 2))]
    assert len(fl._by[1][1]) + len(fl._by[1][0]) <= 2 * fl._by[1][2] + 17


def test_hashmap_front_stack_keeps_the_lowest_start_rule() -> None:
    """A page given back below every run of its size goes on the size's front
    stack (descending), not through the heap; allocation still takes the
    lowest start of the front and the heap together, skipping runs merged
    away."""
    fl = check(HashmapFreelist([10, 20, 30, 40]))
    for t in range(2, 6):
        assert fl.allocate(t, 1) == 10
        fl.free(t, 10)
        fl.release(t)
        check(fl)
    assert list(fl._by[1][0]) == [40, 30, 20, 10]
    assert not fl._by[1][1]  # nothing in the heap until a run comes back in the middle
    # built from sorted ids, each size's starts are one descending stack;
    # pages below everything, given back highest first, stack up on it
    fl.init([20, 30, 40])
    assert list(fl._by[1][0]) == [40, 30, 20]
    for t, p in enumerate([8, 6, 4], start=10):
        fl.free(t, p)
        fl.release(t)
        check(fl)
    assert list(fl._by[1][0]) == [40, 30, 20, 8, 6, 4]
    fl.free(15, 25)  # not below the lowest: into the heap
    fl.release(15)
    assert fl._by[1][1] == [25]
    fl.free(20, 5)  # merges 4 and 6 into the run 4..6: both entries go stale
    fl.release(20)
    check(fl)
    assert [fl.allocate(21, 1) for _ in range(5)] == [8, 20, 25, 30, 40]
    assert fl.allocate(21, 3) == 4
    check(fl)


def test_repr_names_the_class_and_counts(freelist_cls: FreelistFactory) -> None:
    fl = freelist_cls([2, 3, 9])
    fl.free(4, 20)
    text = repr(fl)
    # the public class (first fit is a private subclass of HashmapFreelist)
    public = next(c for c in type(fl).__mro__ if not c.__name__.startswith("_"))
    assert text.startswith(public.__name__ + "(")
    assert "free=3" in text
    assert "pending=1" in text


def test_freed_for_pages_past_every_known_page(freelist_cls: FreelistFactory) -> None:
    fl = freelist_cls([2, 3])
    assert not fl.freed(MAX_ID)
    assert not fl.freed(1 << 70)
    assert not fl.freed(0)
    assert not fl.freed(1)
    assert fl.freed(Idx(2))
