"""Memory held by each freelist, measured with tracemalloc.

The benchmark's time is the build; ``extra_info`` reports the bytes traced
while the freelist is alive, per free page and per free run.  The ids are
fresh int objects made inside the measured window and the input list is
dropped, so each freelist is charged for the int objects it keeps.
``python docs/perf/memory.py`` prints the same figures as a table.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import pytest

from freelist import registry
from freelist._shared import _MAP_MIN, _MAP_PER_RUN, SharedFreelist

from .conftest import FRAGS, free_ids


@pytest.mark.benchmark(group="memory (see extra_info)")
@pytest.mark.parametrize("frag", FRAGS)
def test_memory_per_page_and_span(benchmark: Any, kind: str, size: int, frag: str) -> None:
    def measure() -> tuple[int, int, int]:
        gc.collect()
        tracemalloc.start()
        ids = [x + 0 for x in free_ids(size, frag)]
        fl = registry.make(kind, ids)
        del ids
        gc.collect()
        used, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert isinstance(fl, SharedFreelist)
        return used, len(fl.free_spans()), len(fl._map)

    used, spans, page_map = benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update(
        bytes=used,
        bytes_per_page=used / size,
        bytes_per_span=used / spans,
        spans=spans,
        page_map_bytes=page_map,
    )
    if kind.startswith("hashmap") and size >= 10_000:
        # Per run, not per page: the structures, and the page map behind the
        # double-free check, whose length follows the runs above a small floor.
        assert (used - page_map) / spans < 400, "the hashmap must not keep per-page memory"
        assert page_map <= max(_MAP_MIN, _MAP_PER_RUN * (spans + 1))
