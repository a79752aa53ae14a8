"""The base class of your own allocator: :class:`BaseFreelist`.

bbolt splits a freelist in two: the transaction bookkeeping, written once
(txids, pending pages per transaction, open readers, release and release
between readers, rollback, the argument and double-free checks, the sorted id
array written at commit), and the free-set policy, one per freelist.
:class:`BaseFreelist` gives you the first part, the very code the library's own
:class:`~freelist.ArrayFreelist` and :class:`~freelist.HashmapFreelist` run
on; a subclass writes the second part as five methods:

=========================  ===================================================
method                     does
=========================  ===================================================
``_load(ids)``             replace the free set with ``ids`` (a sorted list)
``_take(n)``               remove ``n`` contiguous free pages and return the
                           first, or ``None`` when no run of ``n`` fits
``_give(start, n)``        add the ``n`` pages from ``start`` to the free set
                           (none of them free now; neighbours may merge)
``_count()``               the number of free pages
``_ids()``                 the free page ids, sorted ascending
=========================  ===================================================

The base class calls them only with valid arguments: ``_load`` gets ids it
has checked (ints, sorted, unique, at least 2, none pending), ``_give`` gets
pages that are neither free nor pending, ``_take`` gets ``n >= 1``.  Every
refused call (a double free, a meta page, a bad txid) is refused by the base
class before any hook runs.  ``_load`` is called by the constructor, so a
subclass needs no ``__init__`` of its own: ``_load`` creates its storage.

A first fit over a set of free ids::

    class SetFirstFit(BaseFreelist):
        def _load(self, ids):
            self.pages = set(ids)
        def _take(self, n):
            for p in sorted(self.pages):
                if all(p + i in self.pages for i in range(n)):
                    self.pages.difference_update(range(p, p + n))
                    return p
            return None
        def _give(self, start, n):
            self.pages.update(range(start, start + n))
        def _count(self):
            return len(self.pages)
        def _ids(self):
            return sorted(self.pages)

Check it with :func:`freelist.testing.assert_conforms` and time it with
``freelist compare --freelists array,mymodule:SetFirstFit``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from itertools import pairwise

from ._shared import SharedFreelist
from .runs import runs_of

__all__ = ["BaseFreelist"]


class BaseFreelist(SharedFreelist):
    """bbolt's transaction bookkeeping around a free-set policy of yours.

    ``Sub(ids=())`` builds the freelist from sorted free page ids (each at
    least 2, no duplicates); the subclass implements ``_load``, ``_take``,
    ``_give``, ``_count`` and ``_ids`` (see the module docs).  Everything of
    the :class:`~freelist.Freelist` protocol is inherited.

    :raises InvalidTypeError: an id is not an int.
    :raises InvalidPageIdsError: the ids are unsorted, repeat, or name a meta page.

    Runtime complexity: the bookkeeping costs what it costs the library's own
    freelists (a free is O(n) for n pages, a release O(runs released)), plus
    the hooks: :meth:`allocate` one ``_take``, a release one ``_give`` per
    released run, :attr:`free_count` one ``_count``, :meth:`free_page_ids`,
    :meth:`free_spans` and the first :meth:`page_id_array` one ``_ids``.
    Pages past the double-free check's byte map (ids far above the free
    pages, rare) and a rollback's pages that are marked free or pending are
    checked with one ``_ids`` call each, O(F).
    """

    __slots__ = ()

    # ------------------------------------------------------------------
    # The five hooks a subclass writes.

    def _load(self, ids: list[int]) -> None:
        """Replace the free set with ``ids``: a sorted list of valid page ids.

        Called by the constructor, :meth:`init` and :meth:`reload`.

        :raises NotImplementedError: the subclass did not implement it.

        Runtime complexity: the subclass's.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement _load(ids)")

    def _take(self, n: int) -> int | None:  # type: ignore[override]
        """Remove ``n`` contiguous free pages and return the first one, or
        ``None`` when no run of ``n`` free pages exists.

        :raises NotImplementedError: the subclass did not implement it.

        Runtime complexity: the subclass's.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement _take(n)")

    def _give(self, start: int, n: int) -> None:
        """Add pages ``start .. start+n-1`` (none of them free) to the free set.

        :raises NotImplementedError: the subclass did not implement it.

        Runtime complexity: the subclass's.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement _give(start, n)")

    def _count(self) -> int:
        """The number of free pages.

        :raises NotImplementedError: the subclass did not implement it.

        Runtime complexity: the subclass's.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement _count()")

    def _ids(self) -> Sequence[int]:
        """The free page ids, sorted ascending.

        :raises NotImplementedError: the subclass did not implement it.

        Runtime complexity: the subclass's.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement _ids()")

    # ------------------------------------------------------------------
    # The public face.

    def __repr__(self) -> str:
        return f"{type(self).__name__}(free={self.free_count}, pending={self.pending_count})"

    def allocate(self, txid: int, n: int) -> int:
        """Allocate ``n`` contiguous free pages for transaction ``txid``: the
        run ``_take(n)`` chooses.

        Returns its first page id, or 0 when ``_take`` finds no run (the caller
        then grows the file, as bbolt does).

        :raises InvalidTypeError: ``txid`` or ``n`` is not an int.
        :raises InvalidArgumentError: ``txid < 1`` or ``n < 1`` (or above 2**64-1).

        Runtime complexity: one ``_take`` plus O(n) to clear the run's bytes of
        the double-free check's map.
        """
        return super().allocate(txid, n) or 0

    @property
    def free_count(self) -> int:
        """Number of free pages (``_count()``).

        Runtime complexity: the subclass's ``_count``.
        """
        return self._count()

    def free_page_ids(self) -> list[int]:
        """The free page ids, sorted ascending, as a new list (``_ids()``).

        Runtime complexity: ``_ids`` plus O(F).
        """
        return list(self._ids())

    def free_spans(self) -> list[tuple[int, int]]:
        """The free pages as sorted, maximal ``(start, length)`` runs.

        Runtime complexity: ``_ids`` plus O(F).
        """
        return runs_of(self._ids())

    # ------------------------------------------------------------------
    # SharedFreelist's storage hooks, mapped onto the five above.

    def _init_storage(self, ids: Iterable[int]) -> None:
        self._load(ids if type(ids) is list else list(ids))

    def _put(self, spans: Iterable[tuple[int, int, int]]) -> None:
        give = self._give
        for s, n, _ in spans:
            give(s, n)

    def _put1(self, start: int, n: int) -> None:
        self._give(start, n)

    def _overlaps_free(self, start: int, n: int) -> bool:
        fm = self._map
        if not self._map_stale and start + n <= len(fm) and fm.find(1, start, start + n) < 0:
            return False  # neither free nor pending: the byte map answers
        ids = self._ids()
        i = bisect_left(ids, start)
        return i < len(ids) and ids[i] < start + n

    def _free_top(self) -> int:
        ids = self._ids()
        return ids[-1] + 1 if ids else 0

    def _fill_map(self, fm: bytearray) -> None:
        size = len(fm)
        for p in self._ids():
            if p >= size:
                break
            fm[p] = 1

    def _check_storage(self) -> None:
        ids = list(self._ids())
        assert all(type(p) is int for p in ids), "_ids() gave a non-int"
        assert all(a < b for a, b in pairwise(ids)), "_ids() not sorted, unique"
        assert not ids or ids[0] >= 2, f"meta page {ids[0]} is free"
        assert self._count() == len(ids), f"_count() is {self._count()}, _ids() has {len(ids)}"
