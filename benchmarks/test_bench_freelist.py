"""Benchmarks of the freelist operations, both classes, over free-list size and fragmentation.

Each benchmarked call leaves the freelist as it found it (what it allocates it
frees and releases again), so every round measures the same state.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from .conftest import build

Bench = Any  # pytest-benchmark's fixture


@pytest.mark.benchmark(group="allocate+free+release 1 page")
def test_one_page_cycle(benchmark: Bench, kind: str, size: int) -> None:
    fl = build(kind, size)
    tx = itertools.count(10)

    def cycle() -> None:
        t = next(tx)
        s = fl.allocate(t, 1)
        fl.free(t, s, 1)
        fl.release(t)

    benchmark(cycle)
    fl._check()


@pytest.mark.benchmark(group="allocate n pages (exact fit or split)")
@pytest.mark.parametrize("n", [2, 8])
def test_allocate_run(benchmark: Bench, kind: str, size: int, n: int) -> None:
    fl = build(kind, size, "1-64")
    tx = itertools.count(10)

    def cycle() -> None:
        t = next(tx)
        s = fl.allocate(t, n)
        assert s
        fl.free(t, s, n)
        fl.release(t)

    benchmark(cycle)


@pytest.mark.benchmark(group="allocate failing (no run long enough)")
def test_allocate_failing(benchmark: Bench, kind: str, size: int) -> None:
    fl = build(kind, size, "1-2")  # no run longer than 2 pages exists

    def fail() -> None:
        assert fl.allocate(5, 4) == 0

    benchmark(fail)


@pytest.mark.benchmark(group="allocate 16 pages one by one, free them, release (merging)")
def test_free_and_release(benchmark: Bench, kind: str, size: int) -> None:
    fl = build(kind, size)
    tx = itertools.count(10)

    def cycle() -> None:
        t = next(tx)
        taken = [fl.allocate(t, 1) for _ in range(16)]
        for p in taken:
            fl.free(t, p)
        fl.release(t)

    benchmark(cycle)
    fl._check()
    assert fl.free_count == size


@pytest.mark.benchmark(group="release_pending with open readers (whole cycle)")
def test_release_pending_with_readers(benchmark: Bench, kind: str, size: int) -> None:
    fl = build(kind, size)
    for r in (20, 40, 60):
        fl.add_reader(r)

    def cycle() -> None:
        # 8 pages allocated by 30 and freed by 35: inside the gap 21..39, released
        for s in [fl.allocate(30, 1) for _ in range(8)]:
            fl.free(35, s)
        # 8 pages allocated by 30 and freed by 50: reader 40 may see them, kept
        held = [fl.allocate(30, 1) for _ in range(8)]
        for s in held:
            fl.free(50, s)
        fl.release_pending()
        # put the held pages back: undo their free, free them before every reader
        fl.rollback(50)
        for s in held:
            fl.free(10, s)
        fl.release(10)

    benchmark(cycle)
    fl._check()
    assert fl.free_count == size
    assert fl.pending_count == 0


@pytest.mark.benchmark(group="serialise: page_id_array after 10 changes")
def test_page_id_array(benchmark: Bench, kind: str, size: int) -> None:
    fl = build(kind, size)
    fl.page_id_array()
    tx = itertools.count(10)

    def cycle() -> None:
        t = next(tx)
        for _ in range(5):
            s = fl.allocate(t, 1)
            fl.free(t, s)
        fl.release(t)
        fl.page_id_array()

    benchmark(cycle)


@pytest.mark.benchmark(group="serialise: all_page_ids list")
def test_all_page_ids(benchmark: Bench, kind: str, size: int) -> None:
    fl = build(kind, size)
    benchmark(fl.all_page_ids)
