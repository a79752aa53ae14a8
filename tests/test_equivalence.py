"""ArrayFreelist against bbolt's array algorithm, and first fit against the array.

The reference below is bbolt's array freelist written the slow, obvious way:
a sorted Python list scanned one id at a time for ``n`` consecutive ids (the
loop of bbolt's ``array.Allocate``), pending pages per txid, and a release that
merges and re-sorts.  For any sequence of calls, :class:`ArrayFreelist` must
return the same page as the reference for every allocation.

``HashmapFreelist(policy="first-fit")`` must in turn return what
:class:`ArrayFreelist` returns for every call, and hold the same free and
pending pages after every step.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis import given
from hypothesis import strategies as st

from freelist import ArrayFreelist, HashmapFreelist, hashmap

from .strategies import free_id_lists, run_lengths


class ReferenceArray:
    """bbolt's array freelist, one id at a time."""

    def __init__(self, ids: list[int]) -> None:
        self.ids = list(ids)
        self.pending: dict[int, list[int]] = {}

    def allocate(self, n: int) -> int:
        initial = previd = 0
        for i, pgid in enumerate(self.ids):
            if previd == 0 or pgid - previd != 1:
                initial = pgid  # a new run of consecutive ids starts here
            if pgid - initial + 1 == n:
                del self.ids[i - n + 1 : i + 1]
                return initial
            previd = pgid
        return 0

    def free(self, txid: int, start: int, n: int) -> None:
        self.pending.setdefault(txid, []).extend(range(start, start + n))

    def release(self, txid: int) -> None:
        for tid in [t for t in self.pending if t <= txid]:
            self.ids.extend(self.pending.pop(tid))
        self.ids.sort()


ops = st.lists(
    st.one_of(
        st.tuples(st.just("allocate"), run_lengths),
        st.tuples(st.just("free"), st.integers(0, 10**6)),
        st.tuples(st.just("commit"), st.integers(0, 2)),
    ),
    max_size=80,
)


@given(ids=free_id_lists(max_page=200, max_runs=30), calls=ops)
def test_array_returns_the_same_pages_as_bbolts_loop(
    ids: list[int], calls: list[tuple[str, int]]
) -> None:
    fl = ArrayFreelist(ids)
    ref = ReferenceArray(ids)
    txid = 2
    held: list[tuple[int, int]] = []
    hwm = 200
    for op, arg in calls:
        if op == "allocate":
            got = fl.allocate(txid, arg)
            assert got == ref.allocate(arg)
            if got == 0:
                got, hwm = hwm, hwm + arg  # grow the file
            held.append((got, arg))
        elif op == "free" and held:
            start, n = held.pop(arg % len(held))
            fl.free(txid, start, n)
            ref.free(txid, start, n)
        elif op == "commit":
            txid += 1
            # release what a reader `arg` snapshots back would no longer see
            fl.release(txid - 1 - arg)
            ref.release(txid - 1 - arg)
        assert fl.free_page_ids() == ref.ids
    fl._check()


# ---------------------------------------------------------------------------
# HashmapFreelist(policy="first-fit") against ArrayFreelist.

_ff_allocate = st.tuples(
    st.just("allocate"), st.one_of(run_lengths, st.integers(1, 50), st.integers(200, 320))
)
ff_ops = st.lists(
    st.one_of(
        _ff_allocate,
        _ff_allocate,
        st.tuples(st.just("free"), st.integers(0, 10**6)),
        st.tuples(st.just("commit"), st.integers(0, 2)),
        st.tuples(st.just("reader"), st.integers(0, 3)),
        st.tuples(st.just("release_pending"), st.just(0)),
        st.tuples(st.just("rollback"), st.just(0)),
    ),
    min_size=30,
    max_size=150,
)


@contextmanager
def first_fit_load(load: int) -> Iterator[None]:
    """Build first-fit freelists with blocks of ``load`` runs, so that a few
    dozen runs split, merge and drop blocks of the index."""
    saved = hashmap._FF_LOAD
    hashmap._FF_LOAD = load
    try:
        yield
    finally:
        hashmap._FF_LOAD = saved


@st.composite
def varied_runs(draw: st.DrawFn) -> list[int]:
    """Free ids in runs of 1..4, 1..40 and 250..300 pages (past the index's
    255-page cap), separated by gaps of 1..5 pages."""
    ids: list[int] = []
    p = 2
    lengths = st.one_of(st.integers(1, 4), st.integers(1, 40), st.integers(250, 300))
    for gap, n in draw(st.lists(st.tuples(st.integers(1, 5), lengths), max_size=40)):
        p += gap
        ids.extend(range(p, p + n))
        p += n
    return ids


@given(
    ids=st.one_of(free_id_lists(max_page=200, max_runs=30), varied_runs()),
    calls=ff_ops,
    load=st.sampled_from([1, 2, 3, 8, 512]),
)
def test_first_fit_returns_what_the_array_returns(
    ids: list[int], calls: list[tuple[str, int]], load: int
) -> None:
    with first_fit_load(load):
        ff = HashmapFreelist(ids, policy="first-fit")
    fl = ArrayFreelist(ids)
    txid = 2
    held: list[tuple[int, int]] = []
    hwm = 20_000
    for op, arg in calls:
        if op == "allocate":
            got = fl.allocate(txid, arg)
            assert ff.allocate(txid, arg) == got
            if got == 0:
                got, hwm = hwm, hwm + arg  # grow the file
            held.append((got, arg))
        elif op == "free" and held:
            start, n = held.pop(arg % len(held))
            fl.free(txid, start, n)
            ff.free(txid, start, n)
        elif op == "commit":
            txid += 1
            fl.release(txid - 1 - arg)
            ff.release(txid - 1 - arg)
        elif op == "reader":
            fl.add_reader(max(0, txid - 1 - arg))
            ff.add_reader(max(0, txid - 1 - arg))
        elif op == "release_pending":
            fl.release_pending()
            ff.release_pending()
        elif op == "rollback":
            fl.rollback(txid)
            ff.rollback(txid)
            held = [(s, n) for s, n in held if not fl.freed(s)]
            txid += 1
        assert ff.free_page_ids() == fl.free_page_ids()
        assert ff.free_spans() == fl.free_spans()
        assert ff.pending_page_ids() == fl.pending_page_ids()
        for p in range(2, 40):
            assert ff.freed(p) == fl.freed(p)
    ff._check()
    fl._check()
