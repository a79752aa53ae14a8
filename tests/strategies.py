"""Hypothesis strategies shared by the freelist property tests.

Free page ids are drawn as clustered runs (a freelist is mostly runs, and runs
are what the allocators care about), in a small id space so that allocations,
merges and collisions between frees happen often.
"""

from __future__ import annotations

from hypothesis import strategies as st

#: Largest page id the default strategies draw.
MAX_PAGE = 120

#: Transaction ids as bbolt hands them out: small, positive.
txids = st.integers(min_value=1, max_value=50)

#: Run lengths for allocate/free: mostly single pages, sometimes overflow runs.
run_lengths = st.one_of(st.just(1), st.integers(min_value=1, max_value=9))

#: Values that are not ints and must be refused wherever an int is expected.
non_ints = st.sampled_from([True, False, 1.0, 2.5, "3", None, b"4", [5]])


def page_ids(max_page: int = MAX_PAGE) -> st.SearchStrategy[int]:
    """One page id that may be handed to a freelist: in ``[2, max_page)``."""
    return st.integers(min_value=2, max_value=max_page - 1)


@st.composite
def spans(draw: st.DrawFn, max_page: int = MAX_PAGE, max_len: int = 9) -> tuple[int, int]:
    """A run ``(start, n)`` of pages inside ``[2, max_page)``."""
    start = draw(page_ids(max_page))
    n = draw(st.integers(min_value=1, max_value=min(max_len, max_page - start)))
    return start, n


@st.composite
def free_id_lists(
    draw: st.DrawFn,
    max_page: int = MAX_PAGE,
    max_runs: int = 16,
    max_len: int = 10,
    min_runs: int = 0,
) -> list[int]:
    """A sorted list of distinct free page ids in ``[2, max_page)``, in runs."""
    ids: set[int] = set()
    runs = st.lists(spans(max_page, max_len), min_size=min_runs, max_size=max_runs)
    for start, n in draw(runs):
        ids.update(range(start, start + n))
    return sorted(ids)


@st.composite
def disjoint_spans(
    draw: st.DrawFn, max_page: int = MAX_PAGE, max_runs: int = 12, max_len: int = 8
) -> list[tuple[int, int]]:
    """Pairwise disjoint runs ``(start, n)``, sorted by start, that may touch."""
    out: list[tuple[int, int]] = []
    used: set[int] = set()
    for start, n in draw(st.lists(spans(max_page, max_len), max_size=max_runs)):
        pages = set(range(start, start + n))
        if used.isdisjoint(pages):
            used |= pages
            out.append((start, n))
    return sorted(out)
