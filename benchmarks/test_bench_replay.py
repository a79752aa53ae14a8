"""Trace replay of the seed scenario (2000 transactions), both classes, with and without sync."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from freelist.trace import Trace, generate, replay

from .conftest import full_runs


@cache
def seed_trace(size: int) -> Trace:
    return generate("seed", size, 2000, seed=1)


@pytest.mark.benchmark(group="replay seed trace")
@pytest.mark.parametrize("sync", [False, True], ids=["nosync", "sync"])
def test_replay_seed(benchmark: Any, kind: str, size: int, sync: bool) -> None:
    if kind == "array" and size >= 1_000_000 and not full_runs():
        pytest.skip("array at 10^6 takes ~30 s a round; set FREELIST_BENCH_FULL=1")
    trace = seed_trace(size)
    result = benchmark.pedantic(replay, args=(trace, kind), kwargs={"sync": sync}, rounds=3)
    benchmark.extra_info.update(
        ops=result.ops, us_per_op=result.total_ns / result.ops / 1000, final_hwm=result.final_hwm
    )
