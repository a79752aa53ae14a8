"""Memory of each freelist, measured with tracemalloc (reported in extra_info)."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import pytest

from freelist import ArrayFreelist, HashmapFreelist

from .conftest import free_ids


@pytest.mark.benchmark(group="memory")
def test_memory_per_page_and_span(benchmark: Any, kind: str, size: int) -> None:
    def measure() -> tuple[int, int]:
        gc.collect()
        tracemalloc.start()
        # fresh int objects, so the freelist is charged for the ids it keeps
        ids = [x + 0 for x in free_ids(size, "1-2")]
        fl = ArrayFreelist(ids) if kind == "array" else HashmapFreelist(ids)
        del ids
        gc.collect()
        used, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return used, len(fl.free_spans())

    used, spans = benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update(
        bytes=used, bytes_per_page=used / size, bytes_per_span=used / spans, spans=spans
    )
    if kind == "hashmap":
        assert used / spans < 400, "the hashmap must not keep per-page memory"
