"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

from hypothesis import strategies as st

#: A transaction id as bbolt hands them out (the first write transaction is 2).
txids = st.integers(min_value=1, max_value=10_000)

#: Run lengths: mostly one page, sometimes an overflow run.
run_lengths = st.one_of(st.just(1), st.integers(min_value=1, max_value=8))


@st.composite
def free_id_lists(draw: st.DrawFn, max_page: int = 200) -> list[int]:
    """A sorted list of unique free page ids in ``[2, max_page)``, clustered in runs."""
    ids: set[int] = set()
    for start, n in draw(
        st.lists(
            st.tuples(st.integers(2, max_page - 1), st.integers(1, 12)),
            max_size=20,
        )
    ):
        ids.update(range(start, min(start + n, max_page)))
    return sorted(ids)
