"""ArrayFreelist against a plain transcription of bbolt's array algorithm.

The reference below is bbolt's array freelist written the slow, obvious way:
a sorted Python list scanned one id at a time for ``n`` consecutive ids (the
loop of bbolt's ``array.Allocate``), pending pages per txid, and a release that
merges and re-sorts.  For any sequence of calls, :class:`ArrayFreelist` must
return the same page as the reference for every allocation.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from freelist import ArrayFreelist

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
