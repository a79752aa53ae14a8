"""The page-level model: what a freelist's documented rules say, page by page.

Page sets, one page at a time, no cleverness: expected values in the
conformance suite come from these helpers, never from the freelist under test.

* :func:`allowed_starts`: which run ``allocate(txid, n)`` may return under an
  allocation rule (:data:`CHOICES`);
* :func:`kept_by_release_pending`, :func:`released_by_range`: bbolt's release
  rules for one pending page;
* :func:`observe` and :func:`check`: everything a caller can see of a freelist,
  and the public views agreeing with each other.

Everything here works on any object satisfying the :class:`~freelist.Freelist`
protocol; the library's own classes get two extra checks (their ``_check()``
invariant, when present, and their allocation records).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any, Literal, TypeVar, get_args

from .._shared import SharedFreelist
from ..errors import InvalidArgumentError
from ..protocol import Freelist
from ..runs import MAX_ID

__all__ = [
    "CHOICES",
    "Choice",
    "allowed_starts",
    "check",
    "first_fit",
    "kept_by_release_pending",
    "maximal_runs",
    "observe",
    "released_by_range",
]

#: An allocation rule: which free run ``allocate(txid, n)`` must take.
#:
#: * ``"any"``: any ``n`` consecutive free pages (0 only when there are none);
#: * ``"first-fit"``: the lowest-starting run of ``n`` free pages
#:   (:class:`~freelist.ArrayFreelist`, ``hashmap:first-fit``);
#: * ``"best-fit"``: the start of the shortest maximal free run of at least
#:   ``n`` pages, the lowest start on ties (``hashmap:best-fit``);
#: * ``"exact-fit"``: the lowest-starting maximal run of exactly ``n`` pages,
#:   else the start of any longer one (``hashmap:bbolt``, bbolt's own rule).
Choice = Literal["any", "first-fit", "best-fit", "exact-fit"]

#: Every allocation rule :func:`allowed_starts` knows.
CHOICES: tuple[Choice, ...] = get_args(Choice)

F = TypeVar("F", bound=Freelist)


def maximal_runs(pages: Iterable[int]) -> list[tuple[int, int]]:
    """The maximal runs ``(start, length)`` of a set of pages, by start.

    Runtime complexity: O(p log p) for p pages.
    """
    out: list[tuple[int, int]] = []
    for p in sorted(pages):
        if out and out[-1][0] + out[-1][1] == p:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((p, 1))
    return out


def first_fit(pages: Collection[int], n: int) -> int:
    """The lowest start of ``n`` consecutive pages in ``pages`` (0: none).

    Runtime complexity: O(p n) for p pages.
    """
    for p in sorted(pages):
        if all(p + i in pages for i in range(n)):
            return p
    return 0


def allowed_starts(choice: str, free: Collection[int], n: int) -> set[int]:
    """The starts that ``allocate(txid, n)`` may return under the rule
    ``choice`` (one of :data:`CHOICES`) when ``free`` are the free pages;
    ``{0}`` when no run of ``n`` free pages exists.

    :raises InvalidArgumentError: ``choice`` is not one of :data:`CHOICES`.

    Runtime complexity: O(p n) for p free pages.
    """
    if choice not in CHOICES:
        raise InvalidArgumentError(f"choice must be one of {', '.join(CHOICES)}, got {choice!r}")
    if choice == "first-fit":
        return {first_fit(free, n)}
    if choice == "any":
        starts = {p for p in free if all(p + i in free for i in range(1, n))}
        return starts or {0}
    fitting = [(length, start) for start, length in maximal_runs(free) if length >= n]
    if not fitting:
        return {0}
    if choice == "best-fit":
        return {min(fitting)[1]}
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

    Runtime complexity: O(R) for R readers.
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
    txid ``alloc`` (0: unknown) and freed by txid ``freed``.

    Runtime complexity: O(1).
    """
    return begin <= alloc <= end and begin <= freed <= end


def observe(fl: Freelist) -> dict[str, Any]:
    """Everything a caller can see of ``fl``: the free and pending ids, the
    spans, the sorted id array, the counts, and the open readers and allocation
    records when the freelist exposes them (a refused call must not change any
    of it).

    Runtime complexity: that of the views, O(F + P log P) for the library's
    freelists.
    """
    seen: dict[str, Any] = {
        "free": fl.free_page_ids(),
        "spans": fl.free_spans(),
        "pending": fl.pending_page_ids(),
        "all": fl.all_page_ids(),
        "array": fl.page_id_array().tolist(),
        "free_count": fl.free_count,
        "pending_count": fl.pending_count,
        "count": fl.count,
    }
    readers = getattr(fl, "readers", None)
    if readers is not None:
        seen["readers"] = list(readers)
    if isinstance(fl, SharedFreelist):
        seen["allocs"] = dict(fl._allocs)
    return seen


def check(fl: F) -> F:
    """Assert that the views of ``fl`` agree with each other, after its own
    invariant (``fl._check()``, called only when the freelist has one).

    Checked: free ids sorted and unique; no page pending twice or both free
    and pending; each transaction's pending list non-empty and sorted; the
    three counts; :meth:`~freelist.Freelist.all_page_ids` and the
    ``array('Q')`` of :meth:`~freelist.Freelist.page_id_array` equal to the
    free and pending ids, sorted; the spans equal to the maximal runs of the
    free ids.  Returns ``fl``.

    :raises AssertionError: a view disagrees (or the freelist's own invariant
        fails).

    Runtime complexity: that of the views plus O((F + P) log(F + P)).
    """
    own_check = getattr(fl, "_check", None)
    if callable(own_check):
        own_check()
    free = fl.free_page_ids()
    pending = fl.pending_page_ids()
    pend_pages = [p for ids in pending.values() for p in ids]
    assert free == sorted(set(free)), f"free ids not sorted and unique: {free}"
    assert len(pend_pages) == len(set(pend_pages)), f"a page pending for two txids: {pending}"
    both = set(free).intersection(pend_pages)
    assert not both, f"pages both free and pending: {sorted(both)}"
    assert all(ids == sorted(ids) and ids for ids in pending.values()), (
        f"a pending list empty or unsorted: {pending}"
    )
    assert fl.free_count == len(free), f"free_count {fl.free_count}, {len(free)} free ids"
    assert fl.pending_count == len(pend_pages), (
        f"pending_count {fl.pending_count}, {len(pend_pages)} pending ids"
    )
    assert fl.count == len(free) + len(pend_pages), (
        f"count {fl.count}, {len(free)} free + {len(pend_pages)} pending ids"
    )
    want = sorted(free + pend_pages)
    assert fl.all_page_ids() == want, "all_page_ids() is not the free and pending ids, sorted"
    ids = fl.page_id_array()
    assert ids.typecode == "Q", f"page_id_array() has typecode {ids.typecode!r}, not 'Q'"
    assert ids.tolist() == want, "page_id_array() is not the free and pending ids, sorted"
    spans = fl.free_spans()
    assert spans == maximal_runs(free), (
        f"free_spans() {spans} are not the maximal runs of the free ids {free}"
    )
    return fl
