"""The freelist log (``"log"``): its pages' encoding and :class:`LogFormat`.

Pages of the freelist log: checkpoints and record runs, checksummed.

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

import itertools
import operator
import struct
import sys
import zlib
from array import array
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from .._fileio import FileIO
from ..errors import CorruptPageError
from ..layout import (
    FREELIST_LOG_PAGE,
    LOG_VERSION,
    META_FLAG_FREELIST_LOG,
    PAGE_HEADER_SIZE,
    Buffer,
    Meta,
    PageHeader,
)
from . import freemap
from .base import Commit, FreelistFormat, Run, Stored, Written, register
from .freemap import _ONE, FreeMap, _between, _decode

__all__ = [
    "CHECKPOINT",
    "CHECKPOINT_RATIO",
    "FREE",
    "HEADER_SIZE",
    "RECORD",
    "RECORDS",
    "TAKE",
    "LogChain",
    "LogFormat",
    "LogRun",
    "encode_records",
    "ids_payload",
    "most_payload",
    "pack_run",
    "pages_for",
    "records_size",
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


def most_payload(kind: int, hwm: int, page_size: int) -> int:
    """The most payload bytes a run of ``kind`` holds in a file of ``hwm``
    pages: a checkpoint lists each page below the mark at most once (8
    bytes an id); a record run holds one commit's records, which take each
    page at most once and free it at most once (two 16-byte records a page),
    after at most one page of an older run's records.

    Runtime complexity: O(1).
    """
    if kind == CHECKPOINT:
        return 8 * hwm
    return 2 * RECORD.size * hwm + page_size


def unpack_run(buf: Buffer, pgid: int, page_size: int, hwm: int, *, copy: bool = True) -> LogRun:
    """Read and verify the run at page ``pgid`` of a file mapped as ``buf``;
    with ``copy=False`` the payload is checksummed in place and not copied
    (the run's ``offset`` and ``length`` say where it is).

    :raises CorruptPageError: not a log page, a header id that is not
        ``pgid``, pages past ``hwm`` (or the end of ``buf``), a payload longer
        than its pages or than :func:`most_payload` (checked before the
        checksum reads it), an unknown kind, or a checksum mismatch (the messages
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
    most = most_payload(kind, hwm, page_size)
    if length > most:
        # Checked before the checksum reads the payload: a run in a sparse
        # file may claim far more bytes than the file holds.
        raise CorruptPageError(
            f"claims {length} payload bytes, more than the {most} a run of its kind "
            f"holds in a file of {hwm} pages"
        )
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


@dataclass
class LogChain:
    """The freelist log as the last commit left it (what the next commit extends).

    ``runs``: the chain's runs, the checkpoint first, the newest last;
    ``tail``: the payload of the newest run when it is a one-page record run
    (the next commit may rewrite it, copy-on-write, with its records added);
    ``checkpoint_bytes``/``log_bytes``: payload bytes of the checkpoint and of
    the records written since; ``checkpoint_txid``: the checkpoint's commit.
    """

    runs: list[Run]
    tail: bytes | None
    checkpoint_bytes: int
    log_bytes: int
    checkpoint_txid: int


def _vet_ids(out: Stored, where: str, meta: Meta) -> None:
    """Errors for ids (sorted, unique, inside ``[2, hwm)``) that name one of
    the stored freelist's own pages or the root page."""
    ids = out.ids if out.ids is not None else []
    for start, n in out.owned:
        p = _first_in(ids, start, n)
        if p >= 0:
            out.errors.append(f"{where} lists its own page {p} as free")
            return
    if meta.root:
        if _first_in(ids, meta.root, 1) >= 0:
            out.errors.append(f"{where} lists the root page {meta.root} as free")
        for start, n in out.owned:
            if start <= meta.root < start + n:
                out.errors.append(f"the root page {meta.root} is one of the {where}'s pages")


def _first_in(ids: Iterable[int], start: int, n: int) -> int:
    """The first of pages ``start .. start+n-1`` in ``ids`` (a sorted list or
    a :class:`FreeMap`), or -1."""
    if isinstance(ids, FreeMap):
        return ids.first_in(start, n)
    assert isinstance(ids, list)
    i = bisect_left(ids, start)
    return ids[i] if i < len(ids) and ids[i] < start + n else -1


#: A commit writes a checkpoint when the log's records would pass the
#: checkpoint's bytes divided by this (or one page): the larger, the fewer
#: checkpoints a commit pays for and the more records an open replays.  Three
#: keeps a seed-like commit under 64 bytes per page changed (plus one page)
#: and the worst open at a sixth of a record per checkpoint id.
CHECKPOINT_RATIO = 3


@register
class LogFormat(FreelistFormat):
    """The freelist log: a checkpoint of the full set, then each commit's changes.

    A commit appends its records (the runs it took from the free-or-pending
    set and the runs it freed) to the newest record run, rewriting that
    one-page run copy-on-write into a freshly allocated page (the old page
    becomes pending), or starts a new run when the records no longer fit the
    page.  When the records since the checkpoint would pass
    ``max(checkpoint bytes / 3, one page)`` (:data:`CHECKPOINT_RATIO`), the
    commit writes a checkpoint instead and the whole old chain becomes
    pending.  So a commit writes one page plus its share of checkpoints (at
    most four times its record bytes, amortised), and an open reads the
    checkpoint and at most a third as many record bytes (or one page).
    """

    name = "log"
    version = LOG_VERSION
    flags = META_FLAG_FREELIST_LOG
    falls_back = True  # a torn or damaged chain: the older meta, as bbolt does for a torn meta

    def __init__(self) -> None:
        """A log with no chain yet: the first commit writes a checkpoint.

        Runtime complexity: O(1).
        """
        self.chain: LogChain | None = None
        self._next: LogChain | None = None  # the chain the last write made

    def resume(self, stored: Stored) -> None:
        """Extend the chain the open read (``stored.chain``) from the next
        commit on; none (another format's, or a rebuild): the next commit
        writes a checkpoint.

        Runtime complexity: O(1).
        """
        self.chain = stored.chain

    def details(self, stored: Stored, meta: Meta) -> dict[str, Any]:
        """The chain's shape for ``freelist inspect``: ``chain_runs``,
        ``checkpoint_txid``, ``checkpoint_age`` (commits since it),
        ``checkpoint_bytes`` and ``log_bytes``; none for a damaged chain.

        Runtime complexity: O(1).
        """
        ch = stored.chain
        if ch is None:
            return {}
        return {
            "chain_runs": len(ch.runs),
            "checkpoint_txid": ch.checkpoint_txid,
            "checkpoint_age": meta.txid - ch.checkpoint_txid,
            "checkpoint_bytes": ch.checkpoint_bytes,
            "log_bytes": ch.log_bytes,
        }

    def published(self) -> None:
        """The chain the last :meth:`write` produced is the committed one.

        Runtime complexity: O(1).
        """
        if self._next is not None:
            self.chain, self._next = self._next, None

    # ------------------------------------------------------------------
    # Writing.

    def write(self, c: Commit) -> Written:
        """Append this commit's records to the chain, or write a checkpoint.

        :raises FileIOError: the write failed.

        Returns the new chain's runs as a list of its own (the committed
        chain and the page file's runs are not touched; :meth:`published`
        makes the new chain the committed one).

        Runtime complexity: O(changes + page_size + R) for records, R the
        chain's runs (copies of its two lists of runs); O(F) for a checkpoint.
        """
        self._next = None
        chain = self.chain
        ps = c.page_size
        cap = ps - HEADER_SIZE
        user = records_size(c.taken) + records_size(c.freed)
        est = user + 2 * RECORD.size
        if (
            chain is None
            or c.rewrite
            or chain.log_bytes + est > max(chain.checkpoint_bytes // CHECKPOINT_RATIO, cap)
        ):
            return self._checkpoint(c)
        tail = chain.tail
        cow = tail is not None and len(tail) + est <= cap
        if cow:
            c.free(*chain.runs[-1])
        base = tail if cow and tail is not None else b""
        size = len(base) + user + (2 if cow else 1) * RECORD.size
        pages = pages_for(size, ps)
        pgid = c.allocate(pages)
        new = encode_records(c.taken, TAKE) + encode_records(c.freed, FREE)
        payload = base + new
        old = chain.runs[-1]
        prev = chain.runs[-2][0] if cow else old[0]
        c.io.pwrite(
            pack_run(pgid, pages, ps, kind=RECORDS, prev=prev, txid=c.txid, payload=payload),
            pgid * ps,
        )
        run = (pgid, pages)
        # New lists (the committed chain and the page file's runs stay as they
        # are until the commit is durable): O(R) copies for R runs.
        owned = list(c.owned)
        runs = chain.runs.copy()
        if cow:
            runs[-1] = run
            del owned[bisect_left(owned, old)]
        else:
            runs.append(run)
        insort(owned, run)
        self._next = LogChain(
            runs,
            payload if pages == 1 else None,
            chain.checkpoint_bytes,
            chain.log_bytes + len(new),
            chain.checkpoint_txid,
        )
        return Written(pgid, owned, pages * ps)

    def _checkpoint(self, c: Commit) -> Written:
        """Free the old chain, reserve the pages the full set needs, write it."""
        c.free_owned()
        ps = c.page_size
        pages = pages_for(8 * c.fl.count, ps)
        pgid = c.allocate(pages)
        payload = ids_payload(c.fl.page_id_array())
        c.io.pwrite(
            pack_run(pgid, pages, ps, kind=CHECKPOINT, prev=0, txid=c.txid, payload=payload),
            pgid * ps,
        )
        self._next = LogChain([(pgid, pages)], None, len(payload), 0, c.txid)
        return Written(pgid, [(pgid, pages)], pages * ps)

    # ------------------------------------------------------------------
    # Reading.

    def read(self, io: FileIO, meta: Meta) -> Stored:
        """Walk the chain from the meta's freelist field to its checkpoint,
        verify every run, and replay the records onto the checkpoint.

        Errors (open refuses the chain, naming the page): a run outside
        ``[2, hwm)``, not a log page, a header id that is not its page, pages
        past the high-water mark, a payload longer than its pages, a checksum
        mismatch (torn or corrupted), an unknown kind, a newest run not
        written by the meta's transaction, a transaction id not older than
        the run after it, a chain that
        ends without a checkpoint (truncated), checkpoint ids unsorted or
        outside ``[2, hwm)``, a record naming pages outside ``[2, hwm)``, and,
        on the result, ids that are chain pages or the root page.

        :raises FileIOError: the file cannot be read.

        The records are replayed onto a :class:`FreeMap` (hwm bytes) when
        the file has no more pages than the checkpoint has bytes (or at most
        2**20), else onto a dict of the pages they name, merged into a copy of
        the checkpoint's ids.

        Runtime complexity: O(C + L) plus a C-level scan of the hwm-byte map,
        for a checkpoint of C ids and L record bytes (L <= max(8 C / 3, page
        size)); with the dict, O(C + L + D log D) for D pages the records
        name.
        """
        hwm, ps = meta.hwm, meta.page_size
        out = Stored(ids=[])
        buf = io.buffer()
        runs: list[LogRun] = []
        pgid, newest, named_by = meta.freelist, meta.txid, "the meta"
        while True:
            where = f"freelist log page {pgid}"
            if not 2 <= pgid < hwm:
                out.errors.append(f"{where} (named by {named_by}) is outside [2, {hwm})")
                return out
            try:
                # Verified in place: the payloads are read again, one run at a
                # time, when they are replayed (open holds no copy of the chain).
                run = unpack_run(buf, pgid, ps, hwm, copy=False)
            except CorruptPageError as e:
                out.errors.append(f"{where} {e}")
                return out
            if run.txid > newest:
                out.errors.append(
                    f"{where} was written by transaction {run.txid}, after {named_by} "
                    f"(at most {newest}): a stale page"
                )
                return out
            if not runs and run.txid != newest:
                # Every log commit writes a run of its own: the meta's names it.
                out.errors.append(
                    f"{where} was written by transaction {run.txid}, not by the meta's "
                    f"{newest}: the meta names an older chain"
                )
                return out
            out.owned.append((pgid, run.pages))
            runs.append(run)
            if run.kind == CHECKPOINT:
                break
            if run.prev == 0:
                out.errors.append(f"{where}: the chain ends without a checkpoint (truncated)")
                return out
            pgid, newest, named_by = run.prev, run.txid - 1, f"page {pgid}"
        ckpt = runs[-1]
        where = f"freelist log checkpoint page {ckpt.pgid}"
        if ckpt.length % 8:
            out.errors.append(f"{where} holds {ckpt.length} bytes, not whole ids")
            return out
        for run in runs[:-1]:
            if run.length % RECORD.size:
                out.errors.append(
                    f"freelist log page {run.pgid} holds {run.length} bytes, not whole records"
                )
                return out
        problem = _check_checkpoint(buf, ckpt, hwm)
        if problem:
            out.errors.append(f"{where} {problem}")
            return out
        log_bytes = sum(r.length for r in runs[:-1])
        ids: FreeMap | None = None
        if freemap.free_map_fits(hwm, ckpt.length):
            ids = FreeMap(hwm)
            replay: Callable[[bytes], int] = ids.replay
            with _u64_view(buf, ckpt) as base_ids:
                ids.load(base_ids)
        else:
            state: dict[int, int] = {}

            def replay(payload: bytes) -> int:
                return _replay(payload, state, hwm)

        # Oldest first, a batch of runs at a time (one replay call a batch).
        batch: list[LogRun] = []
        size = 0
        for run in reversed(runs):
            if run is ckpt:
                continue
            batch.append(run)
            size += run.length
            if size < _REPLAY_BATCH and run is not runs[0]:
                continue
            payload = b"".join([buf[r.offset : r.offset + r.length] for r in batch])
            bad = replay(payload)
            if bad >= 0:
                out.errors.append(_bad_record(batch, payload, bad, hwm))
                return out
            batch, size = [], 0
        if ids is None:
            base = _u64s(buf, ckpt)
            out.ids = _apply(base, state) if state else base.tolist()
            del base, state
        else:
            out.ids = ids
        newest_run = runs[0]
        tail = (
            bytes(buf[newest_run.offset : newest_run.offset + newest_run.length])
            if newest_run.kind == RECORDS and newest_run.pages == 1
            else None
        )
        out.chain = LogChain(
            [(r.pgid, r.pages) for r in reversed(runs)],
            tail,
            ckpt.length,
            log_bytes,
            ckpt.txid,
        )
        out.owned.sort()
        _vet_ids(out, "freelist log", meta)
        return out


def _bad_record(batch: list[LogRun], payload: bytes, bad: int, hwm: int) -> str:
    """The error for record ``bad`` of a batch: its run's page and its index
    there."""
    start, nop = RECORD.unpack_from(payload, bad * RECORD.size)
    at = bad * RECORD.size
    for run in batch:  # pragma: no branch - the record lies in the batch
        if at < run.length:
            break
        at -= run.length
    return (
        f"freelist log page {run.pgid}: record {at // RECORD.size} names pages "
        f"{start}+{nop >> 1} outside [2, {hwm}) (past the high-water mark)"
    )


#: Record bytes replayed in one call (records of consecutive runs).
_REPLAY_BATCH = 1 << 16


@contextmanager
def _u64_view(buf: Buffer, run: LogRun) -> Iterator[Sequence[int]]:
    """The payload of ``run`` as u64s: a view of the file's bytes (no copy)
    on a little-endian machine, released on leaving the block."""
    if sys.byteorder != "little":
        yield _u64s(buf, run)
        return
    with (
        memoryview(buf) as view,
        view[run.offset : run.offset + run.length] as data,
        data.cast("Q") as ids,
    ):
        yield ids


def _u64s(buf: Buffer, run: LogRun) -> array[int]:
    """The payload of ``run`` as an array of u64 (a copy)."""
    out = array("Q")
    with memoryview(buf) as view, view[run.offset : run.offset + run.length] as data:
        out.frombytes(data)
    if sys.byteorder != "little":
        out.byteswap()
    return out


def _check_checkpoint(buf: Buffer, ckpt: LogRun, hwm: int) -> str:
    """The problem with a checkpoint's ids (not sorted and unique, or outside
    ``[2, hwm)``), or "".  Read in place on a little-endian machine."""
    if not ckpt.length:
        return ""
    with _u64_view(buf, ckpt) as ids:
        return _ids_problem(ids, hwm)


def _ids_problem(ids: Sequence[int], hwm: int) -> str:
    if not all(map(operator.lt, ids, itertools.islice(ids, 1, None))):
        return "lists ids that are not sorted and unique"
    if ids[0] < 2 or ids[-1] >= hwm:
        return f"lists ids outside [2, {hwm})"
    return ""


def _replay(payload: bytes, state: dict[int, int], hwm: int) -> int:
    """Record each page's last op (0 taken, 1 freed) in ``state``, for a batch
    of records in order; the index of the first bad record (then none of the
    batch is recorded), or -1.  One-page records (nearly all) go through
    ``dict.update`` of a zip."""
    starts, nops, big, bad = _decode(payload, hwm)
    if bad < 0:
        for lo, hi in _between(big, len(starts)):
            state.update(zip(starts[lo:hi], map(operator.and_, nops[lo:hi], _ONE), strict=True))
            if hi < len(starts):
                start, n = starts[hi], nops[hi] >> 1
                state.update(dict.fromkeys(range(start, start + n), nops[hi] & 1))
    return bad


def _apply(base: array[int], state: dict[int, int]) -> list[int]:
    """``base`` (sorted) without the pages ``state`` names, plus those it marks
    1, sorted: a C-level filter, and a sort that finds two sorted runs and
    merges them.  O(F + D log D) for D pages in ``state``."""
    out = list(itertools.filterfalse(state.__contains__, base))
    out += sorted(p for p, op in state.items() if op)
    out.sort()
    return out
