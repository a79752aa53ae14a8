"""Naive reference helpers shared by the freelist tests.

Page sets, one page at a time, no cleverness: what each freelist's documented
rules say, written out so that expected values never come from the code under
test.  Also :func:`observe` and :func:`check`, which every freelist test uses
to look at a freelist and to assert its invariant after each step.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any, TypeVar

from freelist._shared import MAX_ID, SharedFreelist

F = TypeVar("F", bound=SharedFreelist)


def maximal_runs(pages: Iterable[int]) -> list[tuple[int, int]]:
    """The maximal runs ``(start, length)`` of a set of pages, by start."""
    out: list[tuple[int, int]] = []
    for p in sorted(pages):
        if out and out[-1][0] + out[-1][1] == p:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((p, 1))
    return out


def first_fit(pages: Collection[int], n: int) -> int:
    """The lowest start of ``n`` consecutive pages in ``pages`` (0: none)."""
    for p in sorted(pages):
        if all(p + i in pages for i in range(n)):
            return p
    return 0


def allowed_starts(kind: str, free: Collection[int], n: int) -> set[int]:
    """The starts that ``allocate(txid, n)`` may return under the rule of the
    freelist named ``kind`` (a key of ``conftest.FACTORIES``); 0 means none.

    * ``array``: first fit, the lowest address first;
    * ``hashmap``: best fit, the shortest maximal run of at least ``n`` pages,
      lowest start on ties;
    * ``hashmap-bbolt``: the lowest run of exactly ``n`` pages, else the start
      of any longer run.
    """
    if kind == "array":
        return {first_fit(free, n)}
    fitting = [(length, start) for start, length in maximal_runs(free) if length >= n]
    if not fitting:
        return {0}
    if kind == "hashmap":
        return {min(fitting)[1]}
    assert kind == "hashmap-bbolt", kind
    exact = [start for length, start in fitting if length == n]
    return {min(exact)} if exact else {start for _, start in fitting}


def kept_by_release_pending(alloc: int, freed: int, readers: Collection[int]) -> bool:
    """Whether ``release_pending()`` leaves pending a page allocated by txid
    ``alloc`` (0: unknown) and freed by txid ``freed >= alloc`` while the
    ``readers`` are open.

    A reader on snapshot r may see the page when ``alloc <= r <= freed`` (a
    reader *at* the freeing txid counts too: the gaps bbolt scans leave the
    readers' own txids out), and any reader not newer than ``freed`` may see a
    page whose allocator is unknown; a page freed before every reader is
    released whatever its allocator.  With no reader open, bbolt releases every
    page freed by a txid below ``2**64-1``, and one both allocated and freed by
    ``2**64-1``.
    """
    if not readers:
        return freed == MAX_ID and alloc != MAX_ID
    if freed < min(readers):
        return False
    if alloc == 0:
        return True
    return any(alloc <= r <= freed for r in readers)


def released_by_range(alloc: int, freed: int, begin: int, end: int) -> bool:
    """Whether ``release_range(begin, end)`` frees a pending page allocated by
    txid ``alloc`` (0: unknown) and freed by txid ``freed``."""
    return begin <= alloc <= end and begin <= freed <= end


def observe(fl: SharedFreelist) -> dict[str, Any]:
    """Everything a caller can see, plus the allocation records (a refused call
    must not even drop one of those)."""
    return {
        "free": fl.free_page_ids(),
        "spans": fl.free_spans(),
        "pending": fl.pending_page_ids(),
        "all": fl.all_page_ids(),
        "array": fl.page_id_array().tolist(),
        "free_count": fl.free_count,
        "pending_count": fl.pending_count,
        "count": fl.count,
        "readers": fl.readers,
        "allocs": dict(fl._allocs),
    }


def check(fl: F) -> F:
    """The class's own invariant, and the public views agreeing with each other."""
    fl._check()
    free = fl.free_page_ids()
    pending = fl.pending_page_ids()
    pend_pages = [p for ids in pending.values() for p in ids]
    assert free == sorted(set(free)), "free ids not sorted and unique"
    assert len(pend_pages) == len(set(pend_pages)), "a page pending for two txids"
    assert set(free).isdisjoint(pend_pages)
    assert all(ids == sorted(ids) and ids for ids in pending.values())
    assert fl.free_count == len(free)
    assert fl.pending_count == len(pend_pages)
    assert fl.count == len(free) + len(pend_pages)
    assert fl.all_page_ids() == sorted(free + pend_pages)
    ids = fl.page_id_array()
    assert ids.typecode == "Q"
    assert ids.tolist() == sorted(free + pend_pages)
    assert fl.free_spans() == maximal_runs(free)
    return fl
