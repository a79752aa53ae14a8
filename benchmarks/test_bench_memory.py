"""Memory held by each freelist, measured with tracemalloc.

Not a timing benchmark: each test records the bytes traced while the
freelist is alive (:func:`conftest.record_memory`), and the session ends with
a report of them, per free page and per free run, beside the timing tables.  The ids are
fresh int objects made inside the measured window and the input list is
dropped, so each freelist is charged for the int objects it keeps.
``python docs/perf/memory.py`` prints the same figures as a table.
"""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from freelist import registry
from freelist._shared import _MAP_MIN, _MAP_PER_RUN, SharedFreelist

from .conftest import FRAGS, free_ids, record_memory


@pytest.mark.parametrize("frag", FRAGS)
def test_memory_per_page_and_span(kind: str, size: int, frag: str) -> None:
    gc.collect()
    tracemalloc.start()
    ids = [x + 0 for x in free_ids(size, frag)]
    fl = registry.make(kind, ids)
    del ids
    gc.collect()
    used, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert isinstance(fl, SharedFreelist)
    spans, page_map = len(fl.free_spans()), len(fl._map)
    record_memory(kind, size, frag, used=used, runs=spans, page_map=page_map)
    if kind.startswith("hashmap") and size >= 10_000:
        # Per run, not per page: the structures, and the page map behind the
        # double-free check, whose length follows the runs above a small floor.
        # A run whose size no other run has carries its size's record too
        # (about 470 bytes a run in the 'long' layout, every size distinct);
        # a word per page would be 8 bytes times its 160 pages a run there.
        assert (used - page_map) / spans < 600, "the hashmap must not keep per-page memory"
        assert page_map <= max(_MAP_MIN, _MAP_PER_RUN * (spans + 1))
