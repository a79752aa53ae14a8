"""Pages of the freelist log: checkpoints and record runs, checksummed.

A log page (with its overflow pages) is one *run* of the chain::

    offset  size  field
         0    16  page header: id, flags 0x20, count 0, overflow
        16     4  kind       1 checkpoint, 2 records
        20     4  crc32      of the whole run up to the end of the payload,
                             this field taken as zero
        24     8  prev       the next older run of the chain (0: none)
        32     8  txid       the transaction that wrote the run
        40     8  length     payload bytes
        48       payload

A checkpoint's payload is the sorted free and pending ids as u64 (the body of
a bbolt freelist page); a record run's payload is 16-byte records
``(start u64, n << 1 | op u64)``, op 0 for pages a transaction took from the
free-or-pending set, 1 for pages it freed, in commit order.  All integers are
little-endian.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from typing import NamedTuple

from .errors import CorruptPageError
from .layout import FREELIST_LOG_PAGE, PAGE_HEADER_SIZE, Buffer, PageHeader

__all__ = [
    "CHECKPOINT",
    "HEADER_SIZE",
    "RECORD",
    "RECORDS",
    "LogRun",
    "encode_records",
    "pack_run",
    "unpack_run",
]

CHECKPOINT = 1
RECORDS = 2
_BODY = struct.Struct("<IIQQQ")
#: Bytes before the payload: the page header and the log header.
HEADER_SIZE = PAGE_HEADER_SIZE + _BODY.size  # 48
#: The page header and the log header in one.
_HEAD = struct.Struct("<QHHI" + _BODY.format[1:])
#: Offset of the crc field, and what the checksum takes in its place.
_CRC_AT = PAGE_HEADER_SIZE + 4
_NO_CRC = bytes(4)
#: One record: start u64, (n << 1 | op) u64.
RECORD = struct.Struct("<QQ")
TAKE = 0
FREE = 1


def encode_records(runs: list[tuple[int, int]], op: int) -> bytes:
    """Records for ``runs`` with ``op`` (:data:`TAKE` or :data:`FREE`).

    Runtime complexity: O(len(runs)).
    """
    pack = RECORD.pack
    return b"".join([pack(start, n << 1 | op) for start, n in runs])


def records_size(runs: list[tuple[int, int]]) -> int:
    """Bytes :func:`encode_records` takes for ``runs``.

    Runtime complexity: O(len(runs)).
    """
    return RECORD.size * len(runs)


def pages_for(length: int, page_size: int) -> int:
    """Pages a run with ``length`` payload bytes takes.

    Runtime complexity: O(1).
    """
    return -(-(HEADER_SIZE + length) // page_size)


def ids_payload(ids: array[int]) -> bytes:
    """A checkpoint's payload: ``ids`` as little-endian u64.

    Runtime complexity: O(len(ids)).
    """
    if sys.byteorder != "little":
        ids = array("Q", ids)
        ids.byteswap()
    return ids.tobytes()


def pack_run(
    pgid: int, pages: int, page_size: int, *, kind: int, prev: int, txid: int, payload: bytes
) -> bytes:
    """The bytes of one run (``pages`` whole pages), checksummed.

    Runtime complexity: O(pages * page_size).
    """
    head = PageHeader(pgid, FREELIST_LOG_PAGE, 0, pages - 1).pack()
    body = _BODY.pack(kind, 0, prev, txid, len(payload))
    crc = zlib.crc32(payload, zlib.crc32(body, zlib.crc32(head)))
    body = _BODY.pack(kind, crc, prev, txid, len(payload))
    return (head + body + payload).ljust(pages * page_size, b"\0")


class LogRun(NamedTuple):
    """One run of the chain, as read and verified by :func:`unpack_run`.

    ``offset``/``length``: where the payload lies in the file; ``payload``:
    its bytes, or ``b""`` when :func:`unpack_run` was asked not to copy them.
    """

    pgid: int
    pages: int
    kind: int
    prev: int
    txid: int
    payload: bytes
    offset: int
    length: int


def unpack_run(buf: Buffer, pgid: int, page_size: int, hwm: int, *, copy: bool = True) -> LogRun:
    """Read and verify the run at page ``pgid`` of a file mapped as ``buf``;
    with ``copy=False`` the payload is checksummed in place and not copied
    (the run's ``offset`` and ``length`` say where it is).

    :raises CorruptPageError: not a log page, a header id that is not
        ``pgid``, pages past ``hwm`` (or the end of ``buf``), a payload longer
        than its pages, an unknown kind, or a checksum mismatch (the messages
        name no page: the caller does).

    Runtime complexity: O(payload).
    """
    off = pgid * page_size
    if off + HEADER_SIZE > len(buf):
        raise CorruptPageError("is past the end of the file")
    hid, flags, _count, overflow, kind, crc, prev, txid, length = _HEAD.unpack_from(buf, off)
    if flags != FREELIST_LOG_PAGE:
        raise CorruptPageError(f"is not a freelist log page (flags {flags:#x})")
    if hid != pgid:
        raise CorruptPageError(f"has id {hid} in its header")
    pages = overflow + 1
    if pgid + pages > hwm:
        raise CorruptPageError(
            f"with its {overflow} overflow page(s) passes the high-water mark {hwm}"
        )
    if HEADER_SIZE + length > pages * page_size or off + HEADER_SIZE + length > len(buf):
        raise CorruptPageError(f"claims {length} payload bytes, more than its pages hold")
    start = off + HEADER_SIZE
    # The checksum covers the headers with the crc field as zero, then the
    # payload: read in place, one view of the file.
    with memoryview(buf) as view:
        head = zlib.crc32(_NO_CRC, zlib.crc32(view[off : off + _CRC_AT]))
        ok = zlib.crc32(view[off + _CRC_AT + 4 : start + length], head) == crc
        payload = bytes(view[start : start + length]) if copy else b""
    if not ok:
        raise CorruptPageError("fails its checksum (torn or corrupted)")
    if kind not in (CHECKPOINT, RECORDS):
        raise CorruptPageError(f"has an unknown kind {kind}")
    return LogRun(pgid, pages, kind, prev, txid, payload, start, length)
