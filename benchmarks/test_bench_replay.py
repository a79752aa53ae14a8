"""Trace replay: the seed scenario (2,000 transactions, about 20,000 operations),
both classes, with and without the freelist written at every commit (``sync``),
over free-list size; the ``mixed`` scenario adds runs of many sizes.

Each round replays the whole trace on a freshly built freelist; the time is the
replay only (:func:`freelist.trace.replay` builds the freelist before it starts
the clock), and ``extra_info`` holds the operation count, microseconds per
operation and the final high-water mark.  The array's replays at 10^6 free
pages take about 30 s each and are skipped unless ``FREELIST_BENCH_FULL=1``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from freelist.trace import Trace, generate, replay

from .conftest import full_runs

TXS = 2000


@cache
def trace(scenario: str, size: int) -> Trace:
    return generate(scenario, size, TXS, seed=1)


@pytest.mark.benchmark(group="replay: seed trace, 2000 transactions")
@pytest.mark.parametrize("scenario", ["seed", "mixed"])
@pytest.mark.parametrize("sync", [False, True], ids=["nosync", "sync"])
def test_replay(benchmark: Any, kind: str, size: int, sync: bool, scenario: str) -> None:
    if kind == "array" and size >= 1_000_000 and not full_runs():
        pytest.skip("the array takes ~30 s a replay at 10^6 free pages; FREELIST_BENCH_FULL=1")
    tr = trace(scenario, size)
    result = benchmark.pedantic(replay, args=(tr, kind), kwargs={"sync": sync}, rounds=3)
    benchmark.extra_info.update(
        scenario=scenario,
        ops=result.ops,
        us_per_op=result.total_ns / result.ops / 1000,
        final_hwm=result.final_hwm,
        spans=result.spans,
    )
