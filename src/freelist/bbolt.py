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

The walk is linear in the pages and elements of the file whatever the file
holds, and never recurses: it keeps one bit per page below the high-water mark
and stops with a :class:`BboltTreeError` on anything that cannot be a bbolt
tree, among them a page reached twice (a cycle, or a subtree that two parents
share), inline buckets whose pages overlap (bbolt never shares bytes between
elements), and inline buckets nested deeper than :data:`MAX_INLINE_DEPTH`.  It
reads only the page bytes it needs: the element array of each page, and the
values of bucket elements; a long overflow value is never read.
"""

from __future__ import annotations

import re
import struct
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterator

from .errors import FileFormatError, ReachabilityError
from .layout import BRANCH_PAGE, LEAF_PAGE, PAGE_HEADER_SIZE
from .pagefile import PageFile

__all__ = ["MAX_INLINE_DEPTH", "BboltTreeError", "page_types", "reachable", "walk"]

_HEADER = struct.Struct("<QHHI")
_ELEM = struct.Struct("<IIII")
_BRANCH = struct.Struct("<IIQ")
_BUCKET = struct.Struct("<QQ")
_ELEM_SIZE = 16
_BUCKET_FLAG = 0x01

#: How deep inline buckets may nest inside inline buckets.  bbolt itself never
#: writes a sub-bucket into an inline bucket (``inlineable`` refuses a bucket
#: that holds one), so a real file has depth 1 at most; deeper nesting up to
#: this bound is still walked, past it the walk stops with an error.
MAX_INLINE_DEPTH = 8

ReadPages = Callable[[int, int], bytes]


class BboltTreeError(ReachabilityError, FileFormatError):
    """bbolt's tree in a file cannot be walked: a page outside the file, a page
    that is not a tree page, a page reached twice (a cycle or a shared
    subtree), elements or values that run past their page, overlapping or too
    deeply nested inline buckets.  ``path`` names the file; the message names
    the page and the page it was reached from."""


class _PageError(Exception):
    """Internal: what is wrong with one page; the walk adds the path and page."""


class _Run:
    """The bytes of one tree page and its overflow pages, read as needed.

    ``head`` holds the page's first pages, up to the end of its element
    array; bytes past it (bucket values in overflow pages) are read a page or
    a few at a time, so a long overflow value that is not a bucket is never
    read.
    """

    __slots__ = ("head", "n", "pgid", "ps", "read")

    def __init__(self, read: ReadPages, pgid: int, n: int, first: bytes, need: int) -> None:
        self.read = read
        self.pgid = pgid
        self.n = n
        self.ps = len(first)
        if need > n * self.ps:
            raise _PageError(
                f"its {need - PAGE_HEADER_SIZE} bytes of elements run past the end of the page"
            )
        pages = -(-need // self.ps)
        self.head = first if pages <= 1 else read(pgid, pages)

    def get(self, off: int, size: int) -> tuple[bytes, int]:
        """Bytes holding ``[off, off + size)`` of the run and where ``off`` lies in them.

        :raises _PageError: the range passes the end of the run.
        """
        end = off + size
        if end <= len(self.head):
            return self.head, off
        if end > self.n * self.ps:
            raise _PageError(f"a value at byte {off} runs past the end of the page")
        first = off // self.ps
        data = self.read(self.pgid + first, (end - 1) // self.ps - first + 1)
        return data, off - first * self.ps


class _Claims:
    """Disjoint byte ranges of one page run: the page's own element array and
    each inline bucket's header and elements.  Claiming a range that overlaps
    an earlier one fails, so every element is read once."""

    __slots__ = ("ends", "starts")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def claim(self, start: int, end: int) -> bool:
        i = bisect_right(self.starts, start)
        if i and self.ends[i - 1] > start:
            return False
        if i < len(self.starts) and self.starts[i] < end:
            return False
        self.starts.insert(i, start)
        self.ends.insert(i, end)
        return True


class _Walker:
    """One walk of a tree: the pages it has reached, one bit per page below
    the high-water mark."""

    def __init__(self, read: ReadPages, hwm: int, path: str) -> None:
        self.read = read
        self.hwm = hwm
        self.path = path
        self.seen = bytearray((hwm + 7) >> 3)

    def fail(self, message: str) -> BboltTreeError:
        return BboltTreeError(self.path, message)

    def mark(self, pgid: int, n: int) -> int:
        """Set the bits of ``pgid .. pgid+n-1``; return the first page already
        set (nothing is set then), or -1.  O(n / 8) in C plus O(1) in Python."""
        seen = self.seen
        end = pgid + n
        lo = (pgid + 7) >> 3  # whole bytes lo .. hi-1 lie inside the run
        hi = end >> 3
        if lo >= hi:
            for p in range(pgid, end):
                if seen[p >> 3] >> (p & 7) & 1:
                    return p
            for p in range(pgid, end):
                seen[p >> 3] |= 1 << (p & 7)
            return -1
        for p in range(pgid, lo << 3):
            if seen[p >> 3] >> (p & 7) & 1:
                return p
        if seen.count(0, lo, hi) != hi - lo:
            i = next(i for i in range(lo, hi) if seen[i])
            return (i << 3) + (seen[i] & -seen[i]).bit_length() - 1
        for p in range(hi << 3, end):
            if seen[p >> 3] >> (p & 7) & 1:
                return p
        seen[lo:hi] = b"\xff" * (hi - lo)
        for p in (*range(pgid, lo << 3), *range(hi << 3, end)):
            seen[p >> 3] |= 1 << (p & 7)
        return -1

    def walk(self, root: int) -> Iterator[tuple[int, int, int]]:
        """Yield ``(pgid, pages, flags)`` for each page under ``root`` (see :func:`walk`)."""
        hwm = self.hwm
        read = self.read
        stack: list[tuple[int, int]] = [(root, -1)]  # (page, the page that names it)
        while stack:
            pgid, parent = stack.pop()
            if not 2 <= pgid < hwm:
                raise self.fail(f"the tree names {_where(pgid, parent)}, outside [2, {hwm})")
            first = read(pgid, 1)
            if len(first) < PAGE_HEADER_SIZE:
                raise self.fail(f"{_where(pgid, parent)} could not be read ({len(first)} bytes)")
            _id, flags, count, overflow = _HEADER.unpack_from(first)
            n = 1 + overflow
            if pgid + n > hwm:
                raise self.fail(
                    f"{_where(pgid, parent)} with {overflow} overflow page(s) passes {hwm}"
                )
            if not flags & (BRANCH_PAGE | LEAF_PAGE):
                raise self.fail(f"{_where(pgid, parent)} has flags {flags:#x}, not a tree page")
            again = self.mark(pgid, n)
            if again >= 0:
                what = "is" if again == pgid else f"overlaps page {again}, which is"
                raise self.fail(
                    f"{_where(pgid, parent)} {what} reached twice: "
                    "a cycle or a subtree two parents share"
                )
            try:
                run = _Run(read, pgid, n, first, PAGE_HEADER_SIZE + _ELEM_SIZE * count)
                if flags & BRANCH_PAGE:
                    buf = run.head
                    for i in range(count):
                        child = _BRANCH.unpack_from(buf, PAGE_HEADER_SIZE + _ELEM_SIZE * i)[2]
                        stack.append((child, pgid))
                else:
                    stack.extend((r, pgid) for r in _bucket_roots(run, count))
            except _PageError as e:
                raise self.fail(f"{_where(pgid, parent)}: {e}") from None
            except struct.error:  # only when read() returns fewer bytes than asked
                raise self.fail(f"{_where(pgid, parent)}: read returned a short page") from None
            yield pgid, n, flags

    def runs(self) -> Iterator[tuple[int, int]]:
        """The reached pages as sorted, maximal ``(start, n)`` runs.

        O(hwm / 8) bytes scanned in C, plus O(1) Python steps per byte that
        starts or ends a run.
        """
        seen = self.seen
        size = len(seen)
        start = -1
        pos = 0
        while pos < size:
            m = (_NOT_EMPTY if start < 0 else _NOT_FULL).search(seen, pos)
            if m is None:
                break
            i = m.start()
            b = seen[i]
            base = i << 3
            for bit in range(8):
                if b >> bit & 1:
                    if start < 0:
                        start = base + bit
                elif start >= 0:
                    yield start, base + bit - start
                    start = -1
            pos = i + 1
        if start >= 0:
            yield start, (size << 3) - start


def _where(pgid: int, parent: int) -> str:
    return f"page {pgid}" + (f" (named by page {parent})" if parent >= 0 else " (the root)")


_NOT_EMPTY = re.compile(rb"[^\x00]")
_NOT_FULL = re.compile(rb"[^\xff]")


def _bucket_roots(run: _Run, count: int) -> list[int]:
    """Root pages of the sub-buckets of the leaf page ``run`` with ``count``
    elements, descending into inline buckets (whose pages live inside their
    values) at most :data:`MAX_INLINE_DEPTH` deep.

    Every value, a bucket's or not, must end inside its page (or its inline
    bucket's value).  Every element array (the page's own and each inline page's) must lie in
    its own bytes: a claim on an overlapping range fails, so each element is
    read once and the cost is O(elements) whatever the page holds.

    :raises _PageError: an element, value or inline page that runs past its page or
        value, overlapping inline pages, or nesting past the bound.
    """
    roots: list[int] = []
    claims = _Claims()
    claims.claim(0, PAGE_HEADER_SIZE + _ELEM_SIZE * count)
    todo = [(0, count, run.n * run.ps, 0)]  # (page offset, elements, end of its bytes, depth)
    while todo:
        page_off, k, limit, depth = todo.pop()
        if not k:
            continue
        buf, base = run.get(page_off + PAGE_HEADER_SIZE, _ELEM_SIZE * k)
        for i in range(k):
            flags, pos, ksize, vsize = _ELEM.unpack_from(buf, base + _ELEM_SIZE * i)
            elem = page_off + PAGE_HEADER_SIZE + _ELEM_SIZE * i
            value = elem + pos + ksize
            if value + vsize > limit:
                # Every value, not only a bucket's: a value past its page means
                # the header's overflow is wrong, and the pages the value
                # really covers would be taken for free ones.
                what = "bucket value" if flags & _BUCKET_FLAG else "value"
                raise _PageError(
                    f"the {what} of element {i} at byte {elem} runs past its page "
                    f"(it ends at byte {value + vsize} of {limit})"
                )
            if not flags & _BUCKET_FLAG:
                continue
            if vsize < _BUCKET.size:
                raise _PageError(
                    f"the bucket value of element {i} at byte {elem} runs past its page "
                    f"({vsize} bytes, shorter than a bucket header)"
                )
            vbuf, voff = run.get(value, _BUCKET.size)
            root = _BUCKET.unpack_from(vbuf, voff)[0]
            if root:
                roots.append(root)
                continue
            if vsize == _BUCKET.size:
                continue  # an empty inline bucket with no page
            if depth >= MAX_INLINE_DEPTH:
                raise _PageError(
                    f"inline buckets nest deeper than {MAX_INLINE_DEPTH} at byte {value}"
                )
            inline = value + _BUCKET.size
            end = value + vsize
            if inline + PAGE_HEADER_SIZE > end:
                raise _PageError(f"the inline bucket at byte {value} is cut short")
            hbuf, hoff = run.get(inline, PAGE_HEADER_SIZE)
            c = _HEADER.unpack_from(hbuf, hoff)[2]
            elems_end = inline + PAGE_HEADER_SIZE + _ELEM_SIZE * c
            if elems_end > end:
                raise _PageError(f"the inline bucket at byte {value} has elements past its value")
            if not claims.claim(inline, elems_end):
                raise _PageError(
                    f"the inline bucket at byte {value} overlaps another element array"
                )
            todo.append((inline, c, end, depth + 1))
    return roots


def walk(
    read: ReadPages, root: int, hwm: int, path: str = "<bbolt>"
) -> Iterator[tuple[int, int, int]]:
    """Yield ``(pgid, pages, flags)`` for every page of the tree under ``root``.

    ``read(pgid, n)`` returns the bytes of ``n`` whole pages.  Pages are yielded
    once each, with their overflow pages counted in ``pages``, in depth-first
    order.  ``path`` names the file in error messages.  The walk uses one bit
    per page below ``hwm`` and a stack of the pages still to visit; it reads
    each page's element array and the values of its bucket elements only.

    :raises BboltTreeError: a page id outside ``[2, hwm)``, a page that is
        neither branch nor leaf, a page (or one of its overflow pages) reached
        twice (a cycle or a shared subtree), elements or values (a bucket's or not) that
        run past the end of their page, inline buckets whose pages overlap or
        that nest deeper than :data:`MAX_INLINE_DEPTH`.

    Runtime complexity: O(tree pages + elements + hwm / 8), whatever the file
    holds.
    """
    return _Walker(read, hwm, path).walk(root)


def _reader(pf: PageFile) -> tuple[ReadPages, Callable[[], None]]:
    tx = pf.begin(False)
    return tx.read, tx.rollback


def reachable(pf: PageFile) -> Iterator[tuple[int, int]]:
    """The pages of the bbolt file ``pf``'s tree, as sorted maximal ``(start, n)`` runs.

    Use it as ``PageFile.open(..., reachable=reachable)`` or with
    :meth:`PageFile.check`.  The walk runs to the end (in a read transaction
    that ends before this returns); the runs are then produced lazily from
    its bitmap, so memory stays at one bit per page.

    :raises BboltTreeError: the tree is malformed (see :func:`walk`).

    Runtime complexity: O(tree pages + elements + hwm / 8).
    """
    read, done = _reader(pf)
    try:
        meta = pf.meta
        walker = _Walker(read, meta.hwm, pf.path)
        if meta.root:
            for _ in walker.walk(meta.root):
                pass
    finally:
        done()
    return walker.runs()


def page_types(pf: PageFile) -> Counter[str]:
    """Count pages the way bbolt's page walk reports them: meta, freelist,
    branch, leaf and free (overflow pages count with their owner).

    :raises BboltTreeError: the tree is malformed (see :func:`walk`).

    Runtime complexity: O(tree pages + elements + hwm / 8).
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
