"""How the freelist is persisted: one component, one reader/validator.

A :class:`FreelistFormat` reads the free pages a meta names (:meth:`~FreelistFormat.read`,
which validates as it reads, for the open path and for ``check`` alike),
writes them at commit (:meth:`~FreelistFormat.write`), and says which pages it
occupies.  Two formats exist, as in bbolt:

* ``"page"`` (:class:`PageFormat`): the sorted free and pending ids on a
  freelist page with overflow pages, named by the meta's freelist field;
* ``"none"`` (:class:`NoFormat`): bbolt's ``NoFreelistSync``; the meta's
  freelist field is all ones and the free pages are rebuilt from a walk of the
  pages in use.

:func:`reading` picks the format a meta was written with, :func:`writing` the
one commits use.  A new format (say, checksummed record pages chained from the
meta) is a new class here and an entry in those two functions: the page file,
the transaction and the check only speak to this interface.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ._fileio import FileIO
from .errors import CorruptPageError
from .layout import (
    FREELIST_PAGE,
    NO_FREELIST,
    Meta,
    PageHeader,
    freelist_page_size,
    pack_freelist_page,
    unpack_freelist_ids,
)
from .protocol import Freelist

__all__ = ["FreelistFormat", "NoFormat", "PageFormat", "Stored", "reading", "writing"]

#: A run of pages ``(start, n)``.
Run = tuple[int, int]


@dataclass
class Stored:
    """What a format found on disk for one meta.

    ``ids`` are the free and pending ids as stored (None: the format stores
    none, rebuild them from a walk); ``owned`` the runs the format occupies;
    ``errors`` make the file unsafe to allocate from (open refuses it);
    ``warnings`` are deviations ``check`` reports but open tolerates.
    """

    ids: list[int] | None
    owned: list[Run] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class FreelistFormat(Protocol):
    """An on-disk format of the freelist."""

    name: str

    def read(self, io: FileIO, meta: Meta) -> Stored:
        """Read and validate the free pages ``meta`` names.

        Runtime complexity: O(F) for F stored ids.
        """
        ...

    def write(
        self, io: FileIO, fl: Freelist, allocate: Callable[[int], int], ps: int
    ) -> tuple[int, list[Run]]:
        """Write ``fl``'s free and pending ids, allocating pages through
        ``allocate(n)``; return the meta's freelist field and the runs written.

        Runtime complexity: O(F) plus the I/O.
        """
        ...


class PageFormat:
    """bbolt's freelist page: header, sorted u64 ids, overflow pages."""

    name = "page"

    def read(self, io: FileIO, meta: Meta) -> Stored:
        """The ids on ``meta``'s freelist page, validated.

        Errors (open refuses the page): out of ``[2, hwm)``, not a freelist
        page, overflow past the high-water mark, ids past the page's end,
        unsorted or repeated ids, ids outside ``[2, hwm)``, among its own pages
        or the root page.  Warnings: a header id that is not the page's, a
        count field that breaks the 0xFFFF rule.

        :raises FileIOError: the file cannot be read.

        Runtime complexity: O(F) for F ids.
        """
        start, ps, hwm = meta.freelist, meta.page_size, meta.hwm
        where = f"freelist page {start}"
        out = Stored(ids=[])
        if not 2 <= start < hwm:
            out.errors.append(f"{where} is outside [2, {hwm})")
            return out
        buf = io.buffer()
        try:
            hdr = PageHeader.unpack(buf, start * ps)
            if not hdr.flags & FREELIST_PAGE:
                raise CorruptPageError(f"is not a freelist page (flags {hdr.flags:#x})")
            n = hdr.overflow + 1
            if start + n > hwm:
                raise CorruptPageError(
                    f"with its {hdr.overflow} overflow page(s) passes the high-water mark {hwm}"
                )
            # The run the header claims (a rebuild from a walk keeps only the
            # pages of it that the walk does not reach).
            out.owned.append((start, n))
            ids = unpack_freelist_ids(buf, start * ps, (start + n) * ps).tolist()
        except CorruptPageError as e:
            out.errors.append(f"{where} {e}")
            return out
        out.ids = ids
        # Whoever wrote the page reserved its pages from an estimate made before
        # the reservation took ids off the list: bbolt reserves size/ps + 1
        # pages, this library ceil(size/ps), with size the bytes of the ids held
        # then, at most the ids stored now plus the reserved pages.  A header
        # that claims more pages than that would make the next commit free
        # pages of someone else's: refuse it.
        most = freelist_page_size(len(ids) + n) // ps + 1
        if n > most:
            out.errors.append(
                f"{where} claims {n} pages for {len(ids)} ids; a writer reserves at most {most}"
            )
        if hdr.id != start:
            out.warnings.append(f"{where} has id {hdr.id} in its header")
        if (hdr.count == 0xFFFF) != (len(ids) >= 0xFFFF):
            out.warnings.append(
                f"{where}: count field {hdr.count:#x} does not follow the 0xFFFF rule "
                f"for {len(ids)} ids"
            )
        if any(a >= b for a, b in itertools.pairwise(ids)):
            out.errors.append(
                f"{where} lists ids that are not sorted and unique (duplicate or out of order)"
            )
            ids = sorted(set(ids))
        if ids and (ids[0] < 2 or ids[-1] >= hwm):
            bad = [i for i in ids if not 2 <= i < hwm][:5]
            out.errors.append(f"{where} lists ids outside [2, {hwm}): {bad}")
        i = bisect_left(ids, start)
        if i < len(ids) and ids[i] < start + n:
            out.errors.append(f"{where} lists its own page {ids[i]} as free")
        if meta.root:
            j = bisect_left(ids, meta.root)
            if j < len(ids) and ids[j] == meta.root:
                out.errors.append(f"{where} lists the root page {meta.root} as free")
            if start <= meta.root < start + n:
                out.errors.append(f"the root page {meta.root} is one of the {where}'s pages")
        return out

    def write(
        self, io: FileIO, fl: Freelist, allocate: Callable[[int], int], ps: int
    ) -> tuple[int, list[Run]]:
        """Reserve the pages the ids need, then write them there; the header
        records every reserved page (overflow = pages - 1, as bbolt), even when
        the reservation itself took ids off the list.

        :raises FileIOError: the write failed.

        Runtime complexity: O(F) (a copy of the sorted id array) plus the I/O.
        """
        pages = -(-freelist_page_size(fl.count) // ps)
        pgid = allocate(pages)
        io.pwrite(pack_freelist_page(pgid, fl.page_id_array(), ps, pages), pgid * ps)
        return pgid, [(pgid, pages)]


class NoFormat:
    """``NoFreelistSync``: nothing stored; the free pages come from a walk."""

    name = "none"

    def read(self, io: FileIO, meta: Meta) -> Stored:  # noqa: ARG002
        """Nothing to read: the caller rebuilds the ids from a walk.

        Runtime complexity: O(1).
        """
        return Stored(ids=None)

    def write(
        self, io: FileIO, fl: Freelist, allocate: Callable[[int], int], ps: int
    ) -> tuple[int, list[Run]]:
        """Write nothing; the meta's freelist field is all ones.

        Runtime complexity: O(1).
        """
        del io, fl, allocate, ps
        return NO_FREELIST, []


def reading(meta: Meta) -> FreelistFormat:
    """The format ``meta`` was written with.

    Runtime complexity: O(1).
    """
    return NoFormat() if meta.freelist == NO_FREELIST else PageFormat()


def writing(sync: bool) -> FreelistFormat:
    """The format commits write: the freelist page, or nothing (``NoFreelistSync``).

    Runtime complexity: O(1).
    """
    return PageFormat() if sync else NoFormat()
