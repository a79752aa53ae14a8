"""The Hypothesis strategies of the tests: :mod:`freelist.testing.strategies`."""

from __future__ import annotations

from freelist.testing.strategies import (
    MAX_PAGE,
    disjoint_spans,
    free_id_lists,
    non_ints,
    page_ids,
    run_lengths,
    spans,
    txids,
)

__all__ = [
    "MAX_PAGE",
    "disjoint_spans",
    "free_id_lists",
    "non_ints",
    "page_ids",
    "run_lengths",
    "spans",
    "txids",
]
