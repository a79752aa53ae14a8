"""Shared fixtures of the benchmark suite.

Free-list sizes come from FREELIST_BENCH_SIZES (comma-separated, default
1000,10000,100000,1000000).  Under ``--benchmark-disable`` (the smoke mode CI
runs) the default shrinks to 1000,10000 so the suite only proves it still
works.  Replays of the array at 10^6 free pages take about half a minute each;
they run only when FREELIST_BENCH_FULL=1.
"""

from __future__ import annotations

import os
import random
from functools import cache

import pytest

from freelist import ArrayFreelist, HashmapFreelist
from freelist._shared import SharedFreelist

FULL_SIZES = [1_000, 10_000, 100_000, 1_000_000]
SMOKE_SIZES = [1_000, 10_000]
KINDS = ["array", "hashmap"]


def sizes(config: pytest.Config) -> list[int]:
    env = os.environ.get("FREELIST_BENCH_SIZES")
    if env:
        return [int(x) for x in env.split(",") if x.strip()]
    return SMOKE_SIZES if config.getoption("benchmark_disable") else FULL_SIZES


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "size" in metafunc.fixturenames:
        metafunc.parametrize("size", sizes(metafunc.config), ids=lambda n: f"{n:.0e}")
    if "kind" in metafunc.fixturenames:
        metafunc.parametrize("kind", KINDS)


@cache
def free_ids(size: int, frag: str) -> tuple[int, ...]:
    """``size`` free ids in runs of 1..2 (or 1..64) pages, in a file about 4x as large."""
    r = random.Random(f"{size}/{frag}")
    top = 2 if frag == "1-2" else 64
    ids: list[int] = []
    p = 2
    while len(ids) < size:
        n = r.randint(1, top)
        p += r.randint(1, 3 * n)  # in-use gap: on average three times the run
        ids.extend(range(p, p + n))
        p += n
    return tuple(ids[:size])


def build(kind: str, size: int, frag: str = "1-2") -> SharedFreelist:
    ids = free_ids(size, frag)
    return ArrayFreelist(ids) if kind == "array" else HashmapFreelist(ids)


def full_runs() -> bool:
    return os.environ.get("FREELIST_BENCH_FULL") == "1"
