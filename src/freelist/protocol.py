"""The :class:`Freelist` protocol: what a page file needs from a page allocator.

The protocol follows bbolt's freelist interface (``internal/freelist`` in
etcd-io/bbolt).  Page ids 0 and 1 are the two meta pages and are never free.
A page is in exactly one of three states as far as a freelist knows:

* *free*: it may be handed out by :meth:`Freelist.allocate`;
* *pending*: a transaction freed it, but a reader may still see it, so it is
  not reusable until :meth:`Freelist.release` or
  :meth:`Freelist.release_pending` moves it to the free set;
* anything else is *in use* (allocated, or never known to the freelist).

:class:`~freelist.ArrayFreelist` and :class:`~freelist.HashmapFreelist` both
satisfy this protocol; they differ only in how they store the free pages.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

__all__ = ["Freelist"]


@runtime_checkable
class Freelist(Protocol):
    """A transactional page allocator with bbolt's semantics.

    See :class:`freelist.ArrayFreelist` and :class:`freelist.HashmapFreelist`
    for the two implementations and the cost of each operation.
    """

    @property
    def free_count(self) -> int:
        """Number of free pages."""
        ...

    @property
    def pending_count(self) -> int:
        """Number of pages freed by a transaction and not released yet."""
        ...

    @property
    def count(self) -> int:
        """``free_count + pending_count``: the ids written to a freelist page."""
        ...

    def init(self, ids: Iterable[int]) -> None:
        """Replace the free set with the sorted ``ids`` (bbolt ``Init``)."""
        ...

    def reload(self, ids: Iterable[int]) -> None:
        """Rebuild the free set from sorted ``ids``, leaving out pending pages
        (bbolt ``Reload`` / ``NoSyncReload``)."""
        ...

    def allocate(self, txid: int, n: int) -> int:
        """Take ``n`` contiguous free pages for ``txid``; return the first id,
        or 0 when no run of ``n`` free pages exists."""
        ...

    def free(self, txid: int, start: int, n: int = 1) -> None:
        """Make pages ``start .. start+n-1`` pending for ``txid``."""
        ...

    def release(self, txid: int) -> None:
        """Move every page pending for a transaction ``<= txid`` to the free set."""
        ...

    def release_range(self, begin: int, end: int) -> None:
        """Free pending pages both allocated and freed within ``[begin, end]``."""
        ...

    def rollback(self, txid: int) -> None:
        """Undo the frees and allocations of ``txid``."""
        ...

    def add_reader(self, txid: int) -> None:
        """Register an open read transaction that sees snapshot ``txid``."""
        ...

    def remove_reader(self, txid: int) -> None:
        """Forget one open read transaction of snapshot ``txid``."""
        ...

    def release_pending(self) -> None:
        """Release every pending page that no open reader can still see."""
        ...

    def freed(self, pgid: int) -> bool:
        """Whether page ``pgid`` is free or pending."""
        ...

    def free_page_ids(self) -> list[int]:
        """The free page ids, sorted ascending."""
        ...

    def free_spans(self) -> list[tuple[int, int]]:
        """The free pages as sorted, maximal ``(start, length)`` runs."""
        ...

    def pending_page_ids(self) -> dict[int, list[int]]:
        """The pending page ids of each transaction, each list sorted."""
        ...

    def all_page_ids(self) -> list[int]:
        """Free and pending page ids as one sorted list (what bbolt writes)."""
        ...

    def page_id_array(self) -> array[int]:
        """Free and pending page ids, sorted, as an ``array('Q')``."""
        ...
