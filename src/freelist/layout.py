"""bbolt's on-disk page layout: page headers, meta pages and freelist pages.

Every page starts with a 16-byte header (little-endian, as bbolt writes on
x86-64 and arm64)::

    offset  size  field
         0     8  id        page id
         8     2  flags     0x01 branch, 0x02 leaf, 0x04 meta, 0x10 freelist
        10     2  count     elements (freelist: ids, or 0xFFFF, see below)
        12     4  overflow  further pages that belong to this one

A meta page (ids 0 and 1) holds, after the header::

    16  magic u32 (0xED0CDAED)   20  version u32 (2)   24  page size u32
    28  flags u32                32  root bucket: root page id u64, sequence u64
    48  freelist page id u64     56  high-water mark (pgid) u64
    64  txid u64                 72  checksum u64: FNV-1a 64 of bytes 16..71

A commit writes its meta to the meta page not holding the meta the file
stands on (bbolt's ``t % 2`` for transaction *t*), so a torn write can destroy
at most the newer of the two.  A freelist page holds the sorted free
and pending ids as u64 after the header; when there are 0xFFFF or more, the
header's count is 0xFFFF and the first u64 holds the real count.
"""

from __future__ import annotations

import mmap
import struct
import sys
from array import array
from dataclasses import dataclass

from .errors import CorruptPageError, InvalidArgumentError

#: Anything the struct module can read from: bytes, a memoryview, an mmap.
Buffer = bytes | bytearray | memoryview | mmap.mmap

__all__ = [
    "BRANCH_PAGE",
    "CREATE_PAGE_SIZES",
    "FREELIST_LOG_PAGE",
    "FREELIST_PAGE",
    "LEAF_PAGE",
    "LOG_VERSION",
    "MAGIC",
    "META_FLAG_FREELIST_LOG",
    "META_PAGE",
    "NO_FREELIST",
    "PAGE_HEADER_SIZE",
    "READ_PAGE_SIZES",
    "VERSION",
    "Meta",
    "PageHeader",
    "fnv1a64",
    "freelist_page_size",
    "pack_freelist_page",
    "unpack_freelist_ids",
]

MAGIC = 0xED0CDAED
VERSION = 2
BRANCH_PAGE = 0x01
LEAF_PAGE = 0x02
META_PAGE = 0x04
FREELIST_PAGE = 0x10
#: A page of the freelist log (a checkpoint or a run of records): a page type
#: bbolt does not have.
FREELIST_LOG_PAGE = 0x20
#: The meta version of a file whose freelist is a log.  bbolt's meta check
#: refuses any version but 2 ("version mismatch"), so bbolt never misreads one.
LOG_VERSION = 3
#: The meta flag that says the freelist field names the head of a freelist log
#: (set exactly when the version is :data:`LOG_VERSION`).
META_FLAG_FREELIST_LOG = 0x1
#: The meta's freelist id when the freelist is not written (NoFreelistSync).
NO_FREELIST = 0xFFFFFFFFFFFFFFFF
#: Page sizes a file is read at: every power of two bbolt can write and read,
#: 512 bytes (the smallest a creator can ask for) up to 16 MiB (the largest
#: offset bbolt looks at for the second meta).
READ_PAGE_SIZES = tuple(1 << k for k in range(9, 25))
#: Page sizes a new file is created with: 512 bytes to 64 KiB (the page sizes
#: of the hosts bbolt runs on, 4 KiB to 64 KiB, and the small ones tests use).
CREATE_PAGE_SIZES = tuple(1 << k for k in range(9, 17))

_HEADER = struct.Struct("<QHHI")
PAGE_HEADER_SIZE = _HEADER.size  # 16
_META = struct.Struct("<IIIIQQQQQ")  # the fields the checksum covers (56 bytes)
_META_SUM = struct.Struct("<Q")
META_SIZE = _META.size + _META_SUM.size  # 64

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK = 0xFFFFFFFFFFFFFFFF


def fnv1a64(data: bytes) -> int:
    """The 64-bit FNV-1a hash of ``data`` (bbolt's meta checksum).

    Runtime complexity: O(len(data)).
    """
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & _MASK
    return h


@dataclass(frozen=True, slots=True)
class PageHeader:
    """The 16-byte header that starts every page."""

    id: int
    flags: int
    count: int
    overflow: int

    def pack(self) -> bytes:
        """The header's 16 bytes.

        :raises InvalidArgumentError: a field does not fit its width (or is not an int).

        Runtime complexity: O(1).
        """
        try:
            return _HEADER.pack(self.id, self.flags, self.count, self.overflow)
        except struct.error as e:
            raise InvalidArgumentError(f"page header {self}: {e}") from e

    @classmethod
    def unpack(cls, buf: Buffer, offset: int = 0) -> PageHeader:
        """Read a header from ``buf`` at ``offset``.

        :raises CorruptPageError: fewer than 16 bytes there.

        Runtime complexity: O(1).
        """
        try:
            return cls(*_HEADER.unpack_from(buf, offset))
        except struct.error as e:
            raise CorruptPageError(f"truncated page header at offset {offset}") from e


@dataclass(frozen=True, slots=True)
class Meta:
    """A meta page's fields.  ``root`` is the root bucket's page id."""

    page_size: int
    root: int
    freelist: int
    hwm: int
    txid: int
    flags: int = 0
    sequence: int = 0
    magic: int = MAGIC
    version: int = VERSION

    def fields(self) -> bytes:
        """The 56 bytes the checksum covers.

        :raises InvalidArgumentError: a field does not fit its width (or is not an int).

        Runtime complexity: O(1).
        """
        try:
            return _META.pack(
                self.magic,
                self.version,
                self.page_size,
                self.flags,
                self.root,
                self.sequence,
                self.freelist,
                self.hwm,
                self.txid,
            )
        except struct.error as e:
            raise InvalidArgumentError(f"meta {self}: {e}") from e

    def checksum(self) -> int:
        """FNV-1a 64 of :meth:`fields`.

        :raises InvalidArgumentError: as :meth:`fields`.

        Runtime complexity: O(1).
        """
        return fnv1a64(self.fields())

    def pack_page(self, page_size: int, pgid: int | None = None) -> bytes:
        """A whole meta page (header, fields, checksum, zero padding), its
        header naming page ``pgid`` (default: ``txid % 2``, as bbolt).

        :raises InvalidArgumentError: as :meth:`fields`.

        Runtime complexity: O(page_size).
        """
        if pgid is None:
            pgid = self.txid % 2
        body = self.fields()
        data = _HEADER.pack(pgid, META_PAGE, 0, 0) + body + _META_SUM.pack(fnv1a64(body))
        return data.ljust(page_size, b"\0")

    @classmethod
    def unpack(cls, buf: Buffer, offset: int = 0) -> tuple[Meta, int]:
        """Read the meta at ``offset`` (the start of its page).

        Returns the meta and the checksum stored on disk; the meta is valid when
        that equals :meth:`checksum`, ``magic`` is :data:`MAGIC` and ``version``
        is :data:`VERSION` (the caller decides what to do otherwise).

        :raises CorruptPageError: too few bytes.

        Runtime complexity: O(1).
        """
        start = offset + PAGE_HEADER_SIZE
        try:
            magic, version, psize, flags, root, seq, fl, hwm, txid = _META.unpack_from(buf, start)
            (stored,) = _META_SUM.unpack_from(buf, start + _META.size)
        except struct.error as e:
            raise CorruptPageError(f"truncated meta page at offset {offset}") from e
        meta = cls(psize, root, fl, hwm, txid, flags, seq, magic, version)
        return meta, stored


def freelist_page_size(count: int) -> int:
    """Bytes a freelist page needs for ``count`` ids (bbolt's estimate).

    Runtime complexity: O(1).
    """
    return PAGE_HEADER_SIZE + 8 * (count + 1 if count >= 0xFFFF else count)


def pack_freelist_page(
    pgid: int, ids: array[int], page_size: int, pages: int | None = None
) -> bytes:
    """The bytes of a freelist page (with overflow pages) holding ``ids``.

    ``ids`` is an ``array('Q')`` of sorted free and pending ids (another
    iterable of ints is converted).  ``pages`` is the run reserved for the
    page (default: as many as ``ids`` need); the header records ``pages - 1``
    overflow pages, as bbolt does, so every reserved page belongs to the page
    even when fewer would hold the ids.  The result is ``pages`` whole pages;
    below 0xFFFF ids the header's count holds the count, from 0xFFFF on the
    count field is 0xFFFF and the first u64 of the body holds it.

    :raises InvalidArgumentError: an id, ``pgid`` or the overflow does not fit
        its width, ``page_size < 1``, or the ids do not fit in ``pages``.

    Runtime complexity: O(len(ids) + pages * page_size).
    """
    if type(page_size) is not int or page_size < 1:
        raise InvalidArgumentError(f"page_size must be a positive int, got {page_size!r}")
    if not isinstance(ids, array) or ids.typecode != "Q":
        try:
            ids = array("Q", ids)
        except (OverflowError, TypeError) as e:
            raise InvalidArgumentError(f"freelist ids must be u64 ints: {e}") from e
    count = len(ids)
    need = -(-freelist_page_size(count) // page_size)
    if pages is None:
        pages = need
    elif pages < need:
        raise InvalidArgumentError(f"{count} freelist ids need {need} pages, not {pages}")
    body = ids if sys.byteorder == "little" else _swapped(ids)
    try:
        if count >= 0xFFFF:
            head = _HEADER.pack(pgid, FREELIST_PAGE, 0xFFFF, pages - 1) + struct.pack("<Q", count)
        else:
            head = _HEADER.pack(pgid, FREELIST_PAGE, count, pages - 1)
    except struct.error as e:
        raise InvalidArgumentError(f"freelist page {pgid!r} with {count} ids: {e}") from e
    data = head + body.tobytes()
    return data.ljust(pages * page_size, b"\0")


def _swapped(ids: array[int]) -> array[int]:
    out = array("Q", ids)
    out.byteswap()
    return out


def unpack_freelist_ids(
    buf: Buffer, offset: int, limit: int, most: int | None = None
) -> array[int]:
    """The ids of the freelist page at ``offset``; the page and its overflow
    must end at or before ``limit`` (bytes; the end of ``buf`` at most), and
    list at most ``most`` ids (when given; checked before anything is read).

    :raises CorruptPageError: not a freelist page, its ids pass ``limit``, or
        it lists more than ``most`` (the messages name no page: the caller
        says which page it read).

    Runtime complexity: O(count).
    """
    limit = min(limit, len(buf))
    hdr = PageHeader.unpack(buf, offset)
    if not hdr.flags & FREELIST_PAGE:
        raise CorruptPageError(f"is not a freelist page (flags {hdr.flags:#x})")
    start = offset + PAGE_HEADER_SIZE
    count = hdr.count
    if count == 0xFFFF:
        if start + 8 > limit:
            raise CorruptPageError("is cut short before its count")
        (count,) = struct.unpack_from("<Q", buf, start)
        start += 8
    end = start + 8 * count
    if end > limit:
        raise CorruptPageError(f"lists {count} ids, more than its pages hold")
    if most is not None and count > most:
        raise CorruptPageError(f"lists {count} ids, more than the {most} pages it may list")
    ids = array("Q")
    ids.frombytes(bytes(buf[start:end]))
    if sys.byteorder != "little":
        ids.byteswap()
    return ids
