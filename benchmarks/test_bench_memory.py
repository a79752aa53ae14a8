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

from .conftest import FRAGS, free_ids


@pytest.mark.benchmark(group="memory (see extra_info)")
@pytest.mark.parametrize("frag", FRAGS)
def test_memory_per_page_and_span(benchmark: Any, kind: str, size: int, frag: str) -> None:
    def measure() -> tuple[int, int]:
        gc.collect()
        tracemalloc.start()
        ids = [x + 0 for x in free_ids(size, frag)]
        fl = registry.make(kind, ids)
        del ids
        gc.collect()
        used, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return used, len(fl.free_spans())

    used, spans = benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update(
        bytes=used, bytes_per_page=used / size, bytes_per_span=used / spans, spans=spans
    )
    if kind.startswith("hashmap") and size >= 10_000:
        assert used / spans < 400, "the hashmap must not keep per-page memory"
