"""Benchmark a freelist of your own on the library's scenarios with pytest-benchmark.

Public functions only: :func:`freelist.trace.generate` makes a workload trace,
:func:`freelist.trace.run_ops` replays it on a freelist you built (and times
nothing but the replay loop), :func:`freelist.registry.resolve` gives the
built-in freelists to compare against.  Run from the repository root::

    PYTHONPATH=examples pytest examples/bench_bitmap.py --benchmark-group-by=param:scenario

``BENCH_FREE_PAGES`` and ``BENCH_TXS`` set the size (default 10,000 free pages,
200 transactions).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from bitmap_freelist import BitmapFreelist

from freelist import Freelist, registry, trace

FREE_PAGES = int(os.environ.get("BENCH_FREE_PAGES", "10000"))
TXS = int(os.environ.get("BENCH_TXS", "200"))

#: The freelists side by side: two built-in specs and the example.
FREELISTS: dict[str, Callable[[list[int]], Freelist]] = {
    "array": registry.resolve("array").factory,
    "hashmap": registry.resolve("hashmap").factory,
    "bitmap": BitmapFreelist,
}


@pytest.fixture(scope="module", params=trace.SCENARIOS)
def scenario(request: pytest.FixtureRequest) -> trace.Trace:
    """One trace per scenario, generated once (seeded: every run replays the same)."""
    return trace.generate(request.param, FREE_PAGES, TXS, seed=1)


@pytest.mark.parametrize("name", FREELISTS)
def test_replay(benchmark: Any, scenario: trace.Trace, name: str) -> None:
    factory = FREELISTS[name]
    ids = scenario.free_ids()

    def setup() -> tuple[tuple[trace.Trace, Freelist], dict[str, object]]:
        return (scenario, factory(ids)), {}  # a new freelist per round, built untimed

    loop = benchmark.pedantic(trace.run_ops, setup=setup, rounds=5)
    benchmark.extra_info["grown"] = loop.grown
    benchmark.extra_info["final_hwm"] = loop.final_hwm
