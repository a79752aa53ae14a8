"""Walk the page tree of a real bbolt database.

bbolt files without a synced freelist (``NoFreelistSync``, as etcd runs) store
no list of free pages: the free pages are those below the high-water mark that
the B+tree does not reach.  :func:`reachable` walks the tree so that
:class:`~freelist.PageFile` can open such a file::

    PageFile.open(path, readonly=True, reachable=bbolt.reachable)

The tree, as bbolt lays it out (little-endian):

* a branch page holds ``count`` elements of 16 bytes after the page header:
  ``pos u32, ksize u32, pgid u64`` (the child page);
* a leaf page holds ``count`` elements of 16 bytes: ``flags u32, pos u32,
  ksize u32, vsize u32``; the key starts ``pos`` bytes after the element and
  the value follows the key;
* a leaf value with flag 0x01 is a bucket: ``root u64, sequence u64``; root 0
  means an inline bucket whose page (header and leaf elements) follows in the
  value itself;
* the meta's root field is the root bucket's root page.

Each page reached counts once with its overflow pages.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable, Iterator

from .errors import FileFormatError, FreelistError
from .layout import BRANCH_PAGE, LEAF_PAGE, PAGE_HEADER_SIZE, PageHeader
from .pagefile import PageFile

__all__ = ["page_types", "reachable", "walk"]

_ELEM = struct.Struct("<IIII")
_BRANCH = struct.Struct("<IIQ")
_BUCKET = struct.Struct("<QQ")
_BUCKET_FLAG = 0x01

ReadPages = Callable[[int, int], bytes]


def walk(
    read: ReadPages, root: int, hwm: int, path: str = "<bbolt>"
) -> Iterator[tuple[int, int, int]]:
    """Yield ``(pgid, pages, flags)`` for every page of the tree under ``root``.

    ``read(pgid, n)`` returns the bytes of ``n`` pages.  Pages are yielded once
    each, with their overflow pages counted in ``pages``.  ``path`` names the
    file in error messages.

    :raises FileFormatError: a page that is neither branch nor leaf, a page id
        outside ``[2, hwm)``, a page reached twice (a cycle), or elements that
        run past the end of their page.

    Runtime complexity: O(pages and elements of the tree).
    """
    seen: set[int] = set()
    stack = [root]
    while stack:
        pgid = stack.pop()
        if type(pgid) is not int or not 2 <= pgid < hwm:
            raise FileFormatError(path, f"tree names page {pgid} outside [2, {hwm})")
        if pgid in seen:
            raise FileFormatError(path, f"page {pgid} is reached twice")
        seen.add(pgid)
        head = PageHeader.unpack(read(pgid, 1))  # a whole page: never short
        n = 1 + head.overflow
        if pgid + n > hwm:
            raise FileFormatError(path, f"page {pgid} overflows past {hwm}")
        if not head.flags & (BRANCH_PAGE | LEAF_PAGE):
            raise FileFormatError(path, f"page {pgid} has flags {head.flags:#x}, not a tree page")
        buf = read(pgid, n) if head.overflow else read(pgid, 1)
        try:
            if head.flags & BRANCH_PAGE:
                for i in range(head.count):
                    _pos, _ksize, child = _BRANCH.unpack_from(buf, PAGE_HEADER_SIZE + 16 * i)
                    stack.append(child)
            else:
                stack.extend(_bucket_roots(buf, 0, head.count))
        except (struct.error, FreelistError) as e:
            raise FileFormatError(
                path, f"page {pgid}: its elements run past the end of the page"
            ) from e
        yield pgid, n, head.flags


def _bucket_roots(buf: bytes, page_off: int, count: int) -> list[int]:
    """Root pages of the sub-buckets of the leaf page at ``page_off`` in ``buf``
    (descending into inline buckets, whose pages live inside their values).

    :raises struct.error: an element or value runs past the end of ``buf``.
    :raises FreelistError: an inline page header runs past the end of ``buf``.
    """
    roots: list[int] = []
    todo = [(page_off, count)]
    while todo:
        off, k = todo.pop()
        for i in range(k):
            elem = off + PAGE_HEADER_SIZE + 16 * i
            flags, pos, ksize, vsize = _ELEM.unpack_from(buf, elem)
            if not flags & _BUCKET_FLAG:
                continue
            value = elem + pos + ksize
            root, _seq = _BUCKET.unpack_from(buf, value)
            if root:
                roots.append(root)
            elif vsize > _BUCKET.size:
                inline = value + _BUCKET.size
                todo.append((inline, PageHeader.unpack(buf, inline).count))
    return roots


def _reader(pf: PageFile) -> tuple[ReadPages, Callable[[], None]]:
    tx = pf.begin(False)
    return tx.read, tx.rollback


def reachable(pf: PageFile) -> list[tuple[int, int]]:
    """The ``(start, n)`` runs of every tree page of the bbolt file ``pf``.

    Use it as ``PageFile.open(..., reachable=reachable)`` or with
    :meth:`PageFile.check`.

    :raises FileFormatError: the tree is malformed.

    Runtime complexity: O(tree pages + elements).
    """
    read, done = _reader(pf)
    try:
        meta = pf.meta
        if not meta.root:
            return []
        return [(p, n) for p, n, _ in walk(read, meta.root, meta.hwm, pf.path)]
    finally:
        done()


def page_types(pf: PageFile) -> Counter[str]:
    """Count pages the way bbolt's page walk reports them: meta, freelist,
    branch, leaf and free (overflow pages count with their owner).

    :raises FileFormatError: the tree is malformed.

    Runtime complexity: O(tree pages + elements).
    """
    read, done = _reader(pf)
    try:
        meta = pf.meta
        counts: Counter[str] = Counter(meta=2)
        if meta.freelist != 0xFFFFFFFFFFFFFFFF:
            counts["freelist"] = 1
        if meta.root:
            for _p, _n, flags in walk(read, meta.root, meta.hwm, pf.path):
                counts["branch" if flags & BRANCH_PAGE else "leaf"] += 1
        counts["free"] = pf.freelist.count
        return counts
    finally:
        done()
