"""bbolt's formats: the freelist page (``"bbolt"``) and none (``"none"``,
``NoFreelistSync``)."""

from __future__ import annotations

import itertools
import operator
from array import array
from bisect import bisect_left

from .._fileio import FileIO
from ..errors import CorruptPageError
from ..layout import (
    FREELIST_PAGE,
    NO_FREELIST,
    VERSION,
    Meta,
    PageHeader,
    freelist_page_size,
    pack_freelist_page,
    unpack_freelist_ids,
)
from .base import Commit, FreelistFormat, Stored, Written, register

__all__ = ["NoFormat", "PageFormat"]


@register
class PageFormat(FreelistFormat):
    """bbolt's freelist page: header, sorted u64 ids, overflow pages."""

    name = "bbolt"
    version = VERSION

    @classmethod
    def reads(cls, meta: Meta) -> bool:
        """A version 2 meta naming a freelist page.

        Runtime complexity: O(1).
        """
        return super().reads(meta) and meta.freelist != NO_FREELIST

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
            # Kept as an array: 8 bytes an id, not a list of int objects.
            # (ids are unique pages in [2, hwm): more is refused before any is read)
            ids = unpack_freelist_ids(buf, start * ps, (start + n) * ps, max(0, hwm - 2))
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
        if not all(map(operator.lt, ids, itertools.islice(ids, 1, None))):
            out.errors.append(
                f"{where} lists ids that are not sorted and unique (duplicate or out of order)"
            )
            ids = array("Q", sorted(set(ids)))
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

    def write(self, c: Commit) -> Written:
        """Free the old freelist pages, reserve the pages the ids need, then
        write them there; the header records every reserved page (overflow =
        pages - 1, as bbolt), even when the reservation itself took ids off the
        list.

        :raises FileIOError: the write failed.

        Runtime complexity: O(F) (a copy of the sorted id array) plus the I/O.
        """
        c.free_owned()
        ps = c.page_size
        pages = -(-freelist_page_size(c.fl.count) // ps)
        pgid = c.allocate(pages)
        c.io.pwrite(pack_freelist_page(pgid, c.fl.page_id_array(), ps, pages), pgid * ps)
        return Written(pgid, [(pgid, pages)], pages * ps)


@register
class NoFormat(FreelistFormat):
    """``NoFreelistSync``: nothing stored; the free pages come from a walk."""

    name = "none"
    version = VERSION

    @classmethod
    def reads(cls, meta: Meta) -> bool:
        """A version 2 meta whose freelist field is all ones.

        Runtime complexity: O(1).
        """
        return super().reads(meta) and meta.freelist == NO_FREELIST

    def read(self, io: FileIO, meta: Meta) -> Stored:  # noqa: ARG002
        """Nothing to read: the caller rebuilds the ids from a walk.

        Runtime complexity: O(1).
        """
        return Stored(ids=None)

    def write(self, c: Commit) -> Written:
        """Free the old freelist pages and write nothing; the meta's freelist
        field is all ones.

        Runtime complexity: O(len(owned)) frees.
        """
        c.free_owned()
        return Written(NO_FREELIST, [], 0)
