"""Shared fixtures of the benchmark suite.

Sizes.  Free-list sizes come from ``FREELIST_BENCH_SIZES`` (comma-separated,
default ``1000,10000,100000,1000000``).  Under ``--benchmark-disable`` (the
smoke mode CI runs, each benchmark called once) the default shrinks to
``1000,10000`` so the suite only proves it still works.

Fragmentation.  Every layout puts ``size`` free pages in runs separated by
in-use gaps, in a file about four times as large:

``1-2``
    runs of one or two pages, the seed's case (the most fragmented);
``pow2``
    runs of 1, 2, 4, ... 64 pages (mixed sizes);
``long``
    runs of 64 to 256 pages (little fragmentation).

Freelists are built once per session for each (kind, size, fragmentation) and
shared: every benchmark gives back what it takes, and the fixture checks that
after the test (a freelist left changed is dropped from the cache and rebuilt).

Replays of the array at 10^6 free pages take about half a minute each; they
run only when ``FREELIST_BENCH_FULL=1``.

Groups.  Each table of the report is one operation (or scenario) at one size:
the fixture :func:`_group_by_size` adds the size to the group its test names,
so ``allocate: exact fit (...), 10,000 free pages`` lists every freelist and
fragmentation at 10^4 and nothing else.  ``--benchmark-group-by`` still
regroups at will (``func``, ``param:kind`` ...; see ``benchmarks/README.md``).

Memory.  ``test_bench_memory.py`` measures bytes, not time: it records its
figures with :func:`record_memory` and the session ends with their own report
(:func:`pytest_terminal_summary`), not a timing table.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import pytest

from freelist import registry
from freelist._shared import SharedFreelist

FULL_SIZES = [1_000, 10_000, 100_000, 1_000_000]
SMOKE_SIZES = [1_000, 10_000]
#: Freelist specs (:mod:`freelist.registry`) every benchmark runs on.
KINDS = ["array", "hashmap", "hashmap:first-fit"]
FRAGS = ["1-2", "pow2", "long"]

#: The longest run of each layout (an allocation one page longer always fails).
LONGEST = {"1-2": 2, "pow2": 64, "long": 256}


def sizes(config: pytest.Config) -> list[int]:
    """The free-list sizes to run (see the module docs)."""
    env = os.environ.get("FREELIST_BENCH_SIZES")
    if env:
        return [int(x.replace("_", "")) for x in env.split(",") if x.strip()]
    return SMOKE_SIZES if config.getoption("benchmark_disable") else FULL_SIZES


def smoke(config: pytest.Config) -> bool:
    """Whether the suite runs in smoke mode (``--benchmark-disable``)."""
    return bool(config.getoption("benchmark_disable"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "size" in metafunc.fixturenames:
        metafunc.parametrize("size", sizes(metafunc.config), ids=lambda n: f"{n:.0e}")
    if "kind" in metafunc.fixturenames:
        metafunc.parametrize("kind", KINDS)


def _run_length(r: random.Random, frag: str) -> int:
    if frag == "1-2":
        return 1 if r.random() < 0.6 else 2
    if frag == "pow2":
        return 1 << r.randrange(7)
    return r.randint(64, 256)


@cache
def free_ids(size: int, frag: str) -> tuple[int, ...]:
    """``size`` free ids in runs laid out as ``frag`` says, in a file about 4x as large."""
    r = random.Random(f"{size}/{frag}")
    ids: list[int] = []
    p = 2
    while len(ids) < size:
        n = _run_length(r, frag)
        p += r.randint(1, 5 * n)  # in-use gap: on average three times the run
        ids.extend(range(p, p + n))
        p += n
    return tuple(ids[:size])


def build(kind: str, size: int, frag: str = "1-2") -> SharedFreelist:
    """A new freelist of ``kind`` (a registry spec) over :func:`free_ids`."""
    fl = registry.make(kind, free_ids(size, frag))
    assert isinstance(fl, SharedFreelist)
    return fl


_BUILT: dict[tuple[str, int, str], SharedFreelist] = {}


@pytest.fixture
def freelist() -> Iterator[Callable[[str, int, str], SharedFreelist]]:
    """Get the session's shared freelist for (kind, size, frag).

    After the test, a freelist whose free or pending count changed is dropped
    from the cache, so the next test gets a fresh one.
    """
    used: list[tuple[str, int, str]] = []

    def get(kind: str, size: int, frag: str) -> SharedFreelist:
        key = (kind, size, frag)
        fl = _BUILT.get(key)
        if fl is None:
            fl = _BUILT[key] = build(kind, size, frag)
        used.append(key)
        return fl

    yield get
    for key in used:
        fl = _BUILT.get(key)
        if fl is not None and (fl.free_count != key[1] or fl.pending_count):
            del _BUILT[key]


@pytest.fixture(autouse=True)
def _group_by_size(request: pytest.FixtureRequest) -> None:
    """Put the free-list size in the group of a benchmark: one table per
    operation or scenario and size."""
    if "benchmark" not in request.fixturenames:
        return
    params = getattr(request.node, "callspec", None)
    size = params.params.get("size") if params is not None else None
    if size is None:
        return
    bench = request.getfixturevalue("benchmark")
    bench.group = f"{bench.group or request.node.originalname}, {size:,} free pages"


#: Rows of the memory report: (kind, size, frag, bytes, runs, page map bytes).
MEMORY: list[tuple[str, int, str, int, int, int]] = []


def record_memory(kind: str, size: int, frag: str, *, used: int, runs: int, page_map: int) -> None:
    """Add one measurement to the session's memory report."""
    MEMORY.append((kind, size, frag, used, runs, page_map))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The memory report: bytes held by each freelist, per free page and per run."""
    if not MEMORY:
        return
    tr = terminalreporter
    tr.section("memory held by each freelist (tracemalloc)")
    head = ("freelist", "free pages", "layout", "bytes", "B/page", "B/run", "runs", "page map")
    rows = [
        (k, f"{n:,}", f, f"{b:,}", f"{b / n:.1f}", f"{b / max(1, r):.1f}", f"{r:,}", f"{m:,}")
        for k, n, f, b, r, m in sorted(MEMORY, key=lambda x: (x[1], x[2], x[0]))
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows, strict=True)]
    for line in (head, *rows):
        tr.write_line("  ".join(str(c).rjust(w) for c, w in zip(line, widths, strict=True)))
    tr.write_line(
        "bytes: traced while the freelist is alive (its int objects included); page map: "
        "the double-free check's byte map, part of bytes"
    )


def full_runs() -> bool:
    """Whether ``FREELIST_BENCH_FULL=1`` asks for the array's 10^6 replays."""
    return os.environ.get("FREELIST_BENCH_FULL") == "1"
