"""Hypothesis strategies for freelist property tests.

Free page ids are drawn as clustered runs (a freelist is mostly runs, and runs
are what allocators care about), in a small id space so that allocations,
merges and collisions between frees happen often.

* :func:`free_id_lists`: sorted free ids to build a freelist from
  (``factory(ids)``);
* :data:`run_lengths`, :data:`txids`, :func:`page_ids`, :func:`spans`,
  :func:`disjoint_spans`: the arguments of single calls;
* :data:`non_ints`: values that must be refused where an int is expected;
* :func:`call_sequences`: lists of :class:`Call`, protocol calls with raw
  arguments (some of them refused by a correct freelist), for differential
  tests: apply the same calls to your freelist and to a reference one and
  compare :meth:`Call.outcome` after each.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from ..errors import FreelistError
from ..protocol import Freelist

__all__ = [
    "MAX_PAGE",
    "Call",
    "call_sequences",
    "calls",
    "disjoint_spans",
    "free_id_lists",
    "non_ints",
    "page_ids",
    "run_lengths",
    "spans",
    "txids",
]

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
    """A sorted list of distinct free page ids in ``[2, max_page)``, in runs
    (at most ``max_runs`` runs of at most ``max_len`` pages, which may touch)."""
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


@dataclass(frozen=True, slots=True)
class Call:
    """One protocol call: the method name and its positional arguments."""

    method: str
    args: tuple[int, ...] = ()

    def outcome(self, fl: Freelist) -> object:
        """Make the call on ``fl`` and return what it returned, or the type of
        the :class:`~freelist.FreelistError` it raised (any other exception
        propagates): two freelists that agree give equal outcomes.

        Runtime complexity: that of the call.
        """
        try:
            result: object = getattr(fl, self.method)(*self.args)
        except FreelistError as e:
            return type(e)
        return result

    def __str__(self) -> str:
        return f"{self.method}({', '.join(map(str, self.args))})"


def calls(max_page: int = MAX_PAGE, max_txid: int = 12) -> st.SearchStrategy[Call]:
    """One protocol call with small arguments: ``allocate``, ``free`` (often
    of a free or pending page, which must be refused), the releases,
    ``rollback``, readers, ``freed``.  Txids are in ``[1, max_txid]``, pages in
    ``[0, max_page)`` (pages 0 and 1 are refused by ``free``)."""
    tx = st.integers(1, max_txid)
    tx0 = st.integers(0, max_txid)
    page = st.integers(0, max_page - 1)
    return st.one_of(
        st.builds(lambda t, n: Call("allocate", (t, n)), tx, run_lengths),
        st.builds(lambda t, s, n: Call("free", (t, s, n)), tx, page, run_lengths),
        st.builds(lambda t: Call("release", (t,)), tx0),
        st.builds(lambda b, e: Call("release_range", (b, e)), tx0, tx0),
        st.just(Call("release_pending")),
        st.builds(lambda t: Call("rollback", (t,)), tx),
        st.builds(lambda t: Call("add_reader", (t,)), tx0),
        st.builds(lambda t: Call("remove_reader", (t,)), tx0),
        st.builds(lambda p: Call("freed", (p,)), page),
    )


def call_sequences(
    max_page: int = MAX_PAGE, max_txid: int = 12, max_size: int = 40
) -> st.SearchStrategy[list[Call]]:
    """Lists of up to ``max_size`` :func:`calls`.  The calls are not a valid
    transaction history (txids do not only grow, frees name pages the caller
    does not own), so they suit differential tests between freelists with the
    same allocation rule rather than checks against bbolt's semantics, which
    is what :class:`~freelist.testing.FreelistMachine` does."""
    return st.lists(calls(max_page, max_txid), max_size=max_size)
