"""Tests of :class:`freelist.BaseFreelist`: a policy of five methods gets all of
bbolt's transaction bookkeeping, refused calls never reach the hooks, and the
conformance suite passes with a naive set-based first fit."""

from __future__ import annotations

import pytest

from freelist import (
    BaseFreelist,
    DoubleFreeError,
    Freelist,
    InvalidArgumentError,
    InvalidPageIdsError,
    MetaPageError,
    PageFile,
    trace,
)
from freelist.testing import assert_conforms


class SetFirstFit(BaseFreelist):
    """The module docs' example: a set of free ids, first fit by a sorted scan.
    Every hook call is logged, to see what the base class hands the policy."""

    def _load(self, ids: list[int]) -> None:
        self.pages = set(ids)
        self.log: list[tuple[object, ...]] = [("load", tuple(ids))]

    def _take(self, n: int) -> int | None:
        self.log.append(("take", n))
        for p in sorted(self.pages):
            if all(p + i in self.pages for i in range(n)):
                self.pages.difference_update(range(p, p + n))
                return p
        return None

    def _give(self, start: int, n: int) -> None:
        assert self.pages.isdisjoint(range(start, start + n)), "gave a free page back"
        self.log.append(("give", start, n))
        self.pages.update(range(start, start + n))

    def _count(self) -> int:
        return len(self.pages)

    def _ids(self) -> list[int]:
        return sorted(self.pages)


def test_a_set_based_first_fit_conforms() -> None:
    assert isinstance(SetFirstFit([2]), Freelist)
    assert_conforms(SetFirstFit, choice="first-fit", max_examples=40)


def test_the_bookkeeping_is_the_base_class() -> None:
    fl = SetFirstFit([3, 4, 5, 9])
    assert fl.allocate(2, 2) == 3
    assert fl.allocate(2, 4) == 0  # _take's None is the protocol's 0
    fl.free(2, 20, 2)
    assert fl.pending_page_ids() == {2: [20, 21]}
    assert fl.free_count == 2
    fl.add_reader(1)
    fl.release_pending()  # a reader of snapshot 1 still sees txid 2's frees
    assert fl.pending_count == 2
    fl.remove_reader(1)
    fl.release_pending()
    assert fl.free_page_ids() == [5, 9, 20, 21]
    assert fl.free_spans() == [(5, 1), (9, 1), (20, 2)]
    assert fl.page_id_array().tolist() == [5, 9, 20, 21]
    assert ("give", 20, 2) in fl.log
    fl.rollback(2)  # the last writer: its allocation goes back
    assert fl.free_page_ids() == [3, 4, 5, 9, 20, 21]
    fl._check()


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda fl: fl.free(3, 5, 1), DoubleFreeError),  # page 5 is free
        (lambda fl: fl.free(3, 0, 1), MetaPageError),
        (lambda fl: fl.free(3, 30, 0), InvalidArgumentError),
        (lambda fl: fl.allocate(0, 1), InvalidArgumentError),
        (lambda fl: fl.allocate(3, 0), InvalidArgumentError),
        (lambda fl: fl.init([4, 3]), InvalidPageIdsError),
        (lambda fl: fl.init([30]), InvalidPageIdsError),  # page 30 is pending
    ],
)
def test_refused_calls_never_reach_the_hooks(call: object, error: type[Exception]) -> None:
    fl = SetFirstFit([5, 6])
    fl.free(2, 30, 1)
    before = list(fl.log)
    with pytest.raises(error):
        call(fl)  # type: ignore[operator]
    assert fl.log == before
    fl._check()


def test_a_far_page_is_checked_through_the_ids() -> None:
    """Pages far past the double-free map go to ``_ids()``: still refused."""
    far = 1 << 40
    fl = SetFirstFit([2, far])
    assert fl.freed(far)
    assert not fl.freed(far + 1)
    with pytest.raises(DoubleFreeError):
        fl.free(3, far - 1, 2)
    fl.free(3, far + 1, 1)
    fl.release(3)
    assert fl.free_spans() == [(2, 1), (far, 2)]
    fl._check()


def test_a_missing_hook_is_named() -> None:
    class NoTake(SetFirstFit):
        _take = BaseFreelist._take

    fl = NoTake([2, 3])
    with pytest.raises(NotImplementedError, match=r"NoTake must implement _take\(n\)"):
        fl.allocate(2, 1)
    with pytest.raises(NotImplementedError, match="_load"):
        BaseFreelist([2])


def test_a_page_file_and_a_replay_run_on_it(tmp_path: object) -> None:
    tr = trace.generate("mixed", free_pages=500, txs=30, seed=3)
    mine, ref = trace.replay(tr, SetFirstFit), trace.replay(tr, "array")
    assert (mine.final_hwm, mine.free_sha256) == (ref.final_hwm, ref.free_sha256)
    path = f"{tmp_path}/set.db"
    with PageFile.open(path, freelist=SetFirstFit()) as pf:
        with pf.update() as tx:
            tx.root = tx.allocate(3)
        assert pf.check() == []
