"""Benchmarks of single freelist operations, both classes, over size and fragmentation.

Each benchmark times one kind of operation; the work that puts the freelist
back as it was (freeing and releasing what was allocated, for example) runs in
pytest-benchmark's untimed ``setup`` between rounds, so every round sees the
same state and the shared freelists (see ``conftest.py``) stay intact.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from freelist._shared import SharedFreelist

from .conftest import FRAGS, LONGEST

Bench = Any  # pytest-benchmark's fixture
Get = Callable[[str, int, str], SharedFreelist]

#: Allocations per timed round in the allocation groups.
BATCH = 4
ROUNDS = 2000


Setup = Callable[[], tuple[tuple[()], dict[str, Any]]]


def _allocator(fl: SharedFreelist, n: int) -> tuple[Callable[[], None], Setup]:
    """A timed target allocating BATCH runs of ``n`` pages, and the untimed undo."""
    taken: list[int] = []
    tx = itertools.count(10)

    def undo() -> None:
        if taken:
            t = next(tx)
            for s in taken:
                fl.free(t, s, n)
            fl.release(t)
            taken.clear()

    def setup() -> tuple[tuple[()], dict[str, Any]]:
        undo()
        return (), {}

    def target() -> None:
        t = next(tx)
        for _ in range(BATCH):
            s = fl.allocate(t, n)
            assert s, "benchmark layout has no run for this allocation"
            taken.append(s)

    return target, setup


@pytest.mark.benchmark(group=f"allocate: exact fit ({BATCH} runs of 2 pages)")
@pytest.mark.parametrize("frag", ["1-2", "pow2"])
def test_allocate_exact_fit(
    benchmark: Bench, freelist: Get, kind: str, size: int, frag: str
) -> None:
    fl = freelist(kind, size, frag)
    target, setup = _allocator(fl, 2)
    benchmark.pedantic(target, setup=setup, rounds=ROUNDS)
    setup()


@pytest.mark.benchmark(group=f"allocate: split a longer run ({BATCH} runs of 3 pages)")
@pytest.mark.parametrize("frag", ["pow2", "long"])
def test_allocate_split(benchmark: Bench, freelist: Get, kind: str, size: int, frag: str) -> None:
    fl = freelist(kind, size, frag)
    target, setup = _allocator(fl, 3)
    benchmark.pedantic(target, setup=setup, rounds=ROUNDS)
    setup()


@pytest.mark.benchmark(group="allocate: failing (no run long enough)")
@pytest.mark.parametrize("frag", FRAGS)
def test_allocate_failing(benchmark: Bench, freelist: Get, kind: str, size: int, frag: str) -> None:
    fl = freelist(kind, size, frag)
    n = LONGEST[frag] + 1

    def fail() -> None:
        assert fl.allocate(5, n) == 0

    benchmark(fail)


@pytest.mark.benchmark(group="allocate + free + release, 1 page")
@pytest.mark.parametrize("frag", FRAGS)
def test_one_page_cycle(benchmark: Bench, freelist: Get, kind: str, size: int, frag: str) -> None:
    fl = freelist(kind, size, frag)
    tx = itertools.count(10)

    def cycle() -> None:
        t = next(tx)
        s = fl.allocate(t, 1)
        fl.free(t, s, 1)
        fl.release(t)

    benchmark(cycle)


@pytest.mark.benchmark(group="free 16 pages + release (merging)")
@pytest.mark.parametrize("frag", FRAGS)
def test_free_and_release(benchmark: Bench, freelist: Get, kind: str, size: int, frag: str) -> None:
    """Free 16 single pages taken from the free list and release them: each
    merges back with its neighbours."""
    fl = freelist(kind, size, frag)
    tx = itertools.count(10)

    def setup() -> tuple[tuple[int, list[int]], dict[str, Any]]:
        t = next(tx)
        return (t, [fl.allocate(t, 1) for _ in range(16)]), {}

    def free_release(t: int, pages: list[int]) -> None:
        for p in pages:
            fl.free(t, p, 1)
        fl.release(t)

    benchmark.pedantic(free_release, setup=setup, rounds=ROUNDS // 4)


@pytest.mark.benchmark(group="release_pending: reader release ranges")
@pytest.mark.parametrize("frag", ["1-2", "pow2"])
def test_release_pending_with_readers(
    benchmark: Bench, freelist: Get, kind: str, size: int, frag: str
) -> None:
    """Readers at 20, 40 and 60; eight pages allocated by txid 30 and freed by 35
    lie in the gap 21..39 and are released, eight freed by 50 stay pending
    (reader 40 may see them).  Only ``release_pending`` is timed."""
    fl = freelist(kind, size, frag)
    for r in (20, 40, 60):
        fl.add_reader(r)
    held: list[int] = []

    def restore() -> None:
        if held:
            fl.rollback(50)  # the held pages are in use again ...
            for s in held:
                fl.free(10, s)  # ... and freed before every reader
            fl.release(10)
            held.clear()

    def setup() -> tuple[tuple[()], dict[str, Any]]:
        restore()
        for s in [fl.allocate(30, 1) for _ in range(8)]:
            fl.free(35, s)
        held.extend(fl.allocate(30, 1) for _ in range(8))
        for s in held:
            fl.free(50, s)
        return (), {}

    benchmark.pedantic(fl.release_pending, setup=setup, rounds=ROUNDS // 4)
    restore()
    for r in (20, 40, 60):
        fl.remove_reader(r)
    assert fl.pending_count == 0


@pytest.mark.benchmark(group="serialise: page_id_array after 10 changes (a synced commit)")
@pytest.mark.parametrize("frag", ["1-2", "pow2"])
def test_page_id_array(benchmark: Bench, freelist: Get, kind: str, size: int, frag: str) -> None:
    fl = freelist(kind, size, frag)
    fl.page_id_array()
    tx = itertools.count(10)

    def setup() -> tuple[tuple[()], dict[str, Any]]:
        t = next(tx)
        for _ in range(5):
            s = fl.allocate(t, 1)
            fl.free(t, s)
        fl.release(t)
        return (), {}

    benchmark.pedantic(fl.page_id_array, setup=setup, rounds=50)


@pytest.mark.benchmark(group="serialise: all_page_ids list")
@pytest.mark.parametrize("frag", ["1-2", "pow2"])
def test_all_page_ids(benchmark: Bench, freelist: Get, kind: str, size: int, frag: str) -> None:
    fl = freelist(kind, size, frag)
    benchmark(fl.all_page_ids)
