"""Trace replay: the seed scenario (2,000 transactions, about 20,000 operations),
both classes, with and without the freelist written at every commit (``sync``),
over free-list size; the ``mixed`` scenario adds runs of many sizes.

Each round replays the whole trace (:func:`freelist.trace.run_ops`) on a
freelist built in pytest-benchmark's untimed setup, so the time is the replay
loop only, the same interval ``freelist compare`` reports; ``extra_info`` holds
the operation count, microseconds per operation, the final high-water mark and
the number of free runs left.  The array's replays at 10^6 free
pages take about 30 s each and are skipped unless ``FREELIST_BENCH_FULL=1``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from freelist import Freelist
from freelist.trace import LoopTimes, Trace, generate, make_freelist, run_ops

from .conftest import full_runs

TXS = 2000


@cache
def trace(scenario: str, size: int) -> Trace:
    return generate(scenario, size, TXS, seed=1)


@pytest.mark.parametrize("scenario", ["seed", "mixed"])
@pytest.mark.parametrize("sync", [False, True], ids=["nosync", "sync"])
def test_replay(benchmark: Any, kind: str, size: int, sync: bool, scenario: str) -> None:
    if kind == "array" and size >= 1_000_000 and not full_runs():
        pytest.skip("the array takes ~30 s a replay at 10^6 free pages; FREELIST_BENCH_FULL=1")
    # One table per scenario and size: every freelist, synced or not.
    benchmark.group = f"replay: {scenario} trace, {TXS} transactions, {size:,} free pages"
    tr = trace(scenario, size)
    built: list[Freelist] = []

    def setup() -> tuple[tuple[Trace, Freelist], dict[str, Any]]:
        built.append(make_freelist(kind, tr.free_ids()))
        return (tr, built[-1]), {"sync": sync}

    result: LoopTimes = benchmark.pedantic(run_ops, setup=setup, rounds=3)
    ops = len(tr.ops)
    benchmark.extra_info.update(
        scenario=scenario,
        ops=ops,
        us_per_op=result.total_ns / ops / 1000,
        final_hwm=result.final_hwm,
        spans=len(built[-1].free_spans()),
    )
