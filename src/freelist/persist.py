"""How the freelist is persisted: one component, one reader/validator.

A :class:`FreelistFormat` reads the free pages a meta names (:meth:`~FreelistFormat.read`,
which validates as it reads, for the open path and for ``check`` alike),
writes them at commit (:meth:`~FreelistFormat.write`), and says which pages it
occupies.  Three formats exist:

* ``"bbolt"`` (:class:`PageFormat`): the sorted free and pending ids on a
  freelist page with overflow pages, named by the meta's freelist field;
* ``"none"`` (:class:`NoFormat`): bbolt's ``NoFreelistSync``; the meta's
  freelist field is all ones and the free pages are rebuilt from a walk of the
  pages in use;
* ``"log"`` (:class:`LogFormat`): a chain of checksummed pages named by the
  meta's freelist field, a checkpoint of the full set followed by the changes
  of each commit since (see :mod:`freelist.freelog` and the file-format docs);
  its metas carry version 3 and the freelist-log flag.

Each format registers itself (:func:`register`) in one table,
:data:`FORMATS`, and owns its identity there: its name, its meta version and
flags, :meth:`~FreelistFormat.reads` (was a meta written with it), whether a
damaged stored freelist falls back to the older meta, and how it resumes from
what the open read.  :func:`reading` picks the format a meta was written
with, :func:`writing` the one commits use, and the meta validation
(:func:`freelist.meta.validate`) accepts the versions and flags of the
registered formats.  The page file, the transaction and the check only speak
to this interface; adding a format is its own class and its registration.
"""

from __future__ import annotations

import itertools
import operator
import sys
from array import array
from bisect import bisect_left, insort
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from . import freelog
from ._fileio import FileIO
from ._shared import RUN_CHUNK
from .errors import CorruptPageError, InvalidArgumentError, UnsupportedVersionError
from .layout import (
    FREELIST_PAGE,
    LOG_VERSION,
    META_FLAG_FREELIST_LOG,
    NO_FREELIST,
    VERSION,
    Buffer,
    Meta,
    PageHeader,
    freelist_page_size,
    pack_freelist_page,
    unpack_freelist_ids,
)
from .protocol import Freelist

__all__ = [
    "FORMATS",
    "FORMAT_FLAGS",
    "Commit",
    "FreelistFormat",
    "LogChain",
    "LogFormat",
    "NoFormat",
    "PageFormat",
    "Stored",
    "Written",
    "describe",
    "known",
    "reading",
    "register",
    "versions",
    "writing",
]

#: A run of pages ``(start, n)``.
Run = tuple[int, int]

#: The registered formats, by the name ``PageFile.open`` takes, in the order
#: :func:`reading` asks them (see :func:`register`).  Everything that knows
#: formats derives from this table: the names ``PageFile.open`` accepts,
#: :func:`reading` and :func:`writing`, the meta versions and flags
#: :func:`freelist.meta.validate` accepts, the open's fallback and resume,
#: and whether a commit converts the file.
FORMATS: dict[str, type[FreelistFormat]] = {}


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


@dataclass
class Commit:
    """What a format's :meth:`~FreelistFormat.write` works with at commit.

    ``owned``: the runs the committed freelist occupies; ``taken``/``freed``:
    the runs this transaction took from the free-or-pending set and freed,
    in order (``allocate`` appends to ``taken``, :meth:`free` to ``freed``).
    ``rewrite``: the set also changed in a way ``taken``/``freed`` do not say
    (a shrinking commit took the free tail off it and lowered the high-water
    mark): a format that stores changes writes the whole set this time.
    """

    io: FileIO
    fl: Freelist
    txid: int
    page_size: int
    allocate: Callable[[int], int]
    owned: list[Run]
    taken: list[Run]
    freed: list[Run]
    rewrite: bool = False

    def free(self, start: int, n: int) -> None:
        """Free pages of the stored freelist (pending in this transaction).

        Runtime complexity: the freelist's free.
        """
        self.fl.free(self.txid, start, n)
        self.freed.append((start, n))

    def free_owned(self) -> None:
        """Free every run the committed freelist occupies.

        Runtime complexity: O(len(owned)) frees.
        """
        for start, n in self.owned:
            self.free(start, n)


class Written(tuple[int, list[Run], int]):
    """What a format wrote: the meta's freelist field, the runs the new freelist
    occupies (sorted), and the bytes written."""

    __slots__ = ()

    def __new__(cls, field_: int, owned: list[Run], nbytes: int) -> Written:
        """Bundle the three.

        Runtime complexity: O(1).
        """
        return super().__new__(cls, (field_, owned, nbytes))


@dataclass
class Stored:
    """What a format found on disk for one meta.

    ``ids`` are the free and pending ids as stored (None: the format stores
    none, rebuild them from a walk); ``owned`` the runs the format occupies;
    ``errors`` make the file unsafe to allocate from (open refuses it);
    ``warnings`` are deviations ``check`` reports but open tolerates.
    """

    ids: Collection[int] | None
    owned: list[Run] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    chain: LogChain | None = None


class FreelistFormat:
    """An on-disk format of the freelist: the base of every registered format.

    A format owns its identity: ``name`` is what ``PageFile.open(freelist_format=...)``
    takes; ``version`` and ``flags`` go into the metas of the commits that
    write it (``flags`` within :data:`FORMAT_FLAGS`); :meth:`reads` says
    whether a meta was written with it; ``falls_back``: a damaged stored
    freelist makes the open fall back to the other meta (one commit older)
    when that one reads back sound; :meth:`resume` picks up what the open
    read.  An instance serves one open file's commits.
    """

    name: ClassVar[str]
    version: ClassVar[int]
    flags: ClassVar[int] = 0
    falls_back: ClassVar[bool] = False

    @classmethod
    def reads(cls, meta: Meta) -> bool:
        """Whether ``meta`` was written with this format: its version and
        format flags are this format's.

        Runtime complexity: O(1).
        """
        return meta.version == cls.version and meta.flags & FORMAT_FLAGS == cls.flags

    def read(self, io: FileIO, meta: Meta) -> Stored:
        """Read and validate the free pages ``meta`` names.

        :raises FileIOError: the file cannot be read.

        Runtime complexity: O(F) for F stored ids.
        """
        raise NotImplementedError

    def write(self, c: Commit) -> Written:
        """Free the pages the stored freelist no longer needs and write the new
        one (allocating through ``c.allocate``); not synced.

        :raises FileIOError: the write failed.

        Runtime complexity: as the format; O(F) at most, plus the I/O.
        """
        raise NotImplementedError

    def published(self) -> None:
        """The commit whose freelist :meth:`write` wrote is durable.

        Runtime complexity: O(1).
        """

    def resume(self, stored: Stored) -> None:
        """Continue from what the open read (``stored``, by whichever format
        the file's meta was written with) at the next commit.

        Runtime complexity: O(1).
        """

    def converts(self, meta: Meta) -> bool:
        """Whether a commit writing this format over a file at ``meta``
        changes the file's meta version: then the commit copies its meta to
        both meta pages, leaving no meta of the old version (which bbolt
        would open, or refuse) behind.

        Runtime complexity: O(1).
        """
        return meta.version != self.version


#: Every meta flag a format owns (a meta's other flag bits are not the formats').
FORMAT_FLAGS = META_FLAG_FREELIST_LOG


def register(cls: type[FreelistFormat]) -> type[FreelistFormat]:
    """Add the format ``cls`` to :data:`FORMATS` (a class decorator).
    :func:`reading` asks the formats in the order they were registered.

    :raises InvalidArgumentError: a format of that name is registered, or
        ``cls.flags`` has bits outside :data:`FORMAT_FLAGS`.

    Runtime complexity: O(1).
    """
    if cls.name in FORMATS:
        raise InvalidArgumentError(f"a freelist format named {cls.name!r} is registered")
    if cls.flags & ~FORMAT_FLAGS:
        raise InvalidArgumentError(
            f"format {cls.name!r}: flags {cls.flags:#x} outside FORMAT_FLAGS {FORMAT_FLAGS:#x}"
        )
    FORMATS[cls.name] = cls
    return cls


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


def _first_in(ids: Collection[int], start: int, n: int) -> int:
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
        self._next: Callable[[], LogChain] | None = None

    def resume(self, stored: Stored) -> None:
        """Extend the chain the open read (``stored.chain``) from the next
        commit on; none (another format's, or a rebuild): the next commit
        writes a checkpoint.

        Runtime complexity: O(1).
        """
        self.chain = stored.chain

    def published(self) -> None:
        """The chain the last :meth:`write` produced is the committed one.

        Runtime complexity: O(1).
        """
        if self._next is not None:
            self.chain, self._next = self._next(), None

    # ------------------------------------------------------------------
    # Writing.

    def write(self, c: Commit) -> Written:
        """Append this commit's records to the chain, or write a checkpoint.

        :raises FileIOError: the write failed.

        Runtime complexity: O(changes + page_size) for records (the lists of
        the chain's runs change in place when the commit is published: one
        run out and one in, an O(R) memmove for R runs, no copy); O(F) for a
        checkpoint.
        """
        self._next = None
        chain = self.chain
        ps = c.page_size
        cap = ps - freelog.HEADER_SIZE
        user = freelog.records_size(c.taken) + freelog.records_size(c.freed)
        est = user + 2 * freelog.RECORD.size
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
        size = len(base) + user + (2 if cow else 1) * freelog.RECORD.size
        pages = freelog.pages_for(size, ps)
        pgid = c.allocate(pages)
        new = freelog.encode_records(c.taken, freelog.TAKE) + freelog.encode_records(
            c.freed, freelog.FREE
        )
        payload = base + new
        old = chain.runs[-1]
        prev = chain.runs[-2][0] if cow else old[0]
        c.io.pwrite(
            freelog.pack_run(
                pgid, pages, ps, kind=freelog.RECORDS, prev=prev, txid=c.txid, payload=payload
            ),
            pgid * ps,
        )
        run, owned = (pgid, pages), c.owned  # the committed runs, sorted

        def publish() -> LogChain:
            # In place, once durable: the page file's owned list is ``owned``.
            if cow:
                chain.runs[-1] = run
                del owned[bisect_left(owned, old)]
            else:
                chain.runs.append(run)
            insort(owned, run)
            chain.tail = payload if pages == 1 else None
            chain.log_bytes += len(new)
            return chain

        self._next = publish
        return Written(pgid, owned, pages * ps)

    def _checkpoint(self, c: Commit) -> Written:
        """Free the old chain, reserve the pages the full set needs, write it."""
        c.free_owned()
        ps = c.page_size
        pages = freelog.pages_for(8 * c.fl.count, ps)
        pgid = c.allocate(pages)
        payload = freelog.ids_payload(c.fl.page_id_array())
        c.io.pwrite(
            freelog.pack_run(
                pgid, pages, ps, kind=freelog.CHECKPOINT, prev=0, txid=c.txid, payload=payload
            ),
            pgid * ps,
        )
        chain = LogChain([(pgid, pages)], None, len(payload), 0, c.txid)
        self._next = lambda: chain
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
        runs: list[freelog.LogRun] = []
        pgid, newest, named_by = meta.freelist, meta.txid, "the meta"
        while True:
            where = f"freelist log page {pgid}"
            if not 2 <= pgid < hwm:
                out.errors.append(f"{where} (named by {named_by}) is outside [2, {hwm})")
                return out
            try:
                # Verified in place: the payloads are read again, one run at a
                # time, when they are replayed (open holds no copy of the chain).
                run = freelog.unpack_run(buf, pgid, ps, hwm, copy=False)
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
            if run.kind == freelog.CHECKPOINT:
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
            if run.length % freelog.RECORD.size:
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
        if free_map_fits(hwm, ckpt.length):
            ids = FreeMap(hwm)
            replay: Callable[[bytes], int] = ids.replay
            with _u64_view(buf, ckpt) as base_ids:
                ids.load(base_ids)
        else:
            state: dict[int, int] = {}

            def replay(payload: bytes) -> int:
                return _replay(payload, state, hwm)

        # Oldest first, a batch of runs at a time (one replay call a batch).
        batch: list[freelog.LogRun] = []
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
            if newest_run.kind == freelog.RECORDS and newest_run.pages == 1
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


def _bad_record(batch: list[freelog.LogRun], payload: bytes, bad: int, hwm: int) -> str:
    """The error for record ``bad`` of a batch: its run's page and its index
    there."""
    start, nop = freelog.RECORD.unpack_from(payload, bad * freelog.RECORD.size)
    at = bad * freelog.RECORD.size
    for run in batch:  # pragma: no branch - the record lies in the batch
        if at < run.length:
            break
        at -= run.length
    return (
        f"freelist log page {run.pgid}: record {at // freelog.RECORD.size} names pages "
        f"{start}+{nop >> 1} outside [2, {hwm}) (past the high-water mark)"
    )


#: Record bytes replayed in one call (records of consecutive runs).
_REPLAY_BATCH = 1 << 16

#: The log replays onto a free map (a byte per page of the file) when the
#: file has at most this many pages or no more pages than its checkpoint has
#: bytes; else onto a dictionary of the pages the records name.
FREE_MAP_MIN = 1 << 20


def free_map_fits(hwm: int, list_bytes: int) -> bool:
    """Whether a :class:`FreeMap` of ``hwm`` pages is no larger than a free
    list of ``list_bytes`` bytes (or at most :data:`FREE_MAP_MIN` pages).

    Runtime complexity: O(1).
    """
    return hwm <= max(list_bytes, FREE_MAP_MIN)


@contextmanager
def _u64_view(buf: Buffer, run: freelog.LogRun) -> Iterator[Sequence[int]]:
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


def _u64s(buf: Buffer, run: freelog.LogRun) -> array[int]:
    """The payload of ``run`` as an array of u64 (a copy)."""
    out = array("Q")
    with memoryview(buf) as view, view[run.offset : run.offset + run.length] as data:
        out.frombytes(data)
    if sys.byteorder != "little":
        out.byteswap()
    return out


def _check_checkpoint(buf: Buffer, ckpt: freelog.LogRun, hwm: int) -> str:
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


class FreeMap(Collection[int]):
    """The free-or-pending set as one byte per page of the file (1: in the
    set): the checkpoint's ids are set, then each record in commit order sets
    or clears its pages, so the last record naming a page decides it, and the
    set comes out sorted with no merge.  Costs the file's page count in
    bytes, no more than the checkpoint's bytes where it is used."""

    __slots__ = ("_map",)

    def __init__(self, hwm: int) -> None:
        """An empty set over pages ``[0, hwm)``.

        Runtime complexity: O(hwm) bytes, zeroed.
        """
        self._map = bytearray(hwm)

    @classmethod
    def of(cls, page_map: bytearray) -> FreeMap:
        """The set whose map is ``page_map`` (byte p is 1 iff page p is in
        the set; every byte 0 or 1), taken, not copied.

        Runtime complexity: O(1).
        """
        out = cls(0)
        out._map = page_map
        return out

    def load(self, ids: Iterable[int]) -> None:
        """Set ``ids`` (the checkpoint's, verified to lie in ``[2, hwm)``).

        Runtime complexity: O(len(ids)), a loop in C.
        """
        # A loop in C (operator.setitem is cheaper per call than the bound
        # __setitem__ slot wrapper).
        any(map(operator.setitem, itertools.repeat(self._map), ids, _ONE))

    def replay(self, payload: bytes) -> int:
        """Apply a batch of records, in order; the index of the first bad
        record (then none of the batch is applied), or -1.

        Runtime complexity: O(R + P) for R records naming P pages in runs
        longer than one page (one-page records in C-level loops).
        """
        starts, nops, big, bad = _decode(payload, len(self._map))
        if bad < 0:
            pm = self._map
            for lo, hi in _between(big, len(starts)):
                # one-page records (nearly all): each page's op set in C
                ops = map(operator.and_, nops[lo:hi], _ONE)
                any(map(operator.setitem, itertools.repeat(pm), starts[lo:hi], ops))
                if hi < len(starts):
                    start, n = starts[hi], nops[hi] >> 1
                    pm[start : start + n] = (b"\1" if nops[hi] & 1 else b"\0") * n
        return bad

    def release(self) -> bytearray:
        """The map itself, for the freelist to keep as its page map; this
        object must not be used after the freelist is built from it.

        Runtime complexity: O(1).
        """
        return self._map

    def first_in(self, start: int, n: int) -> int:
        """The first of pages ``start .. start+n-1`` in the set, or -1.

        Runtime complexity: O(n), a search in C.
        """
        return self._map.find(1, start, start + n)

    def runs(self) -> Iterator[tuple[list[int], list[int]]]:
        """The set as sorted, maximal runs, in chunks of two lists: their
        starts and their lengths (see :func:`~freelist._shared.run_chunks`).

        Each chunk of :data:`~freelist._shared.RUN_CHUNK` pages is read as one
        integer (a byte a page, little-endian): XOR with itself shifted by one
        page marks every page where the set starts or stops, and splitting
        those bytes at the marks gives the marks' positions (starts and ends
        alternate; a run still open at a chunk's end is carried on).  Passes in
        C, no step per page, and no list longer than a chunk's runs.

        Runtime complexity: O(hwm) in C, plus O(R) C-level steps for R runs.
        """
        fm = self._map
        size = len(fm)
        carry: list[int] = []  # the start of a run open at the chunk's start
        for lo in range(0, size, RUN_CHUNK):
            hi = min(lo + RUN_CHUNK, size)
            x = int.from_bytes(fm[lo:hi], "little")
            prev = fm[lo - 1] if lo else 0
            # byte i: page lo+i differs from the page before it; the byte past
            # the chunk (its last page against none) is a mark at the map's end
            # only (the next chunk reads it against its own first page)
            marks = (x ^ (x << 8 | prev)).to_bytes(hi - lo + 1, "little")
            gaps = marks[: hi - lo + (hi == size)].split(b"\1")
            gaps.pop()  # the bytes after the last mark
            # mark k sits one past the gaps and marks before it
            pos = carry + list(
                itertools.islice(
                    itertools.accumulate(map(operator.add, map(len, gaps), _ONE), initial=lo - 1),
                    1,
                    None,
                )
            )
            carry = [pos.pop()] if len(pos) % 2 else []
            starts = pos[0::2]
            yield starts, list(map(operator.sub, pos[1::2], starts))

    def __contains__(self, page: object) -> bool:
        return type(page) is int and 0 <= page < len(self._map) and self._map[page] == 1

    def __iter__(self) -> Iterator[int]:
        return itertools.compress(range(len(self._map)), self._map)

    def __len__(self) -> int:
        return self._map.count(1)


_ONE = itertools.repeat(1)


def _decode(payload: bytes, hwm: int) -> tuple[array[int], array[int], list[int], int]:
    """A batch of records as ``(starts, nops, big, bad)``: their starts and
    ``n << 1 | op`` words, the indices of the records of more than one page,
    and the index of the first record naming pages outside ``[2, hwm)`` (or
    -1).  C-level passes, and a loop over the longer records only."""
    words = array("Q")
    words.frombytes(payload)
    if sys.byteorder != "little":
        words.byteswap()
    starts, nops = words[0::2], words[1::2]
    if not starts:
        return starts, nops, [], -1
    big = list(itertools.compress(itertools.count(), map(operator.gt, nops, itertools.repeat(3))))
    if (
        min(nops) >= 2
        and min(starts) >= 2
        and max(starts) < hwm
        and all(starts[i] + (nops[i] >> 1) <= hwm for i in big)
    ):
        return starts, nops, big, -1
    for i, (start, nop) in enumerate(zip(starts, nops, strict=True)):
        n = nop >> 1
        if n < 1 or start < 2 or start + n > hwm:
            return starts, nops, big, i
    raise AssertionError("unreachable: a bound failed but no record breaks it")  # pragma: no cover


def _between(big: list[int], end: int) -> Iterator[tuple[int, int]]:
    """``(lo, hi)``: the one-page records ``lo .. hi-1`` before each longer
    record ``hi`` (``hi == end`` for the last stretch)."""
    lo = 0
    for hi in big:
        yield lo, hi
        lo = hi + 1
    yield lo, end


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


def reading(meta: Meta) -> FreelistFormat:
    """A new instance of the format ``meta`` was written with: the first
    registered one whose :meth:`~FreelistFormat.reads` accepts it.

    :raises UnsupportedVersionError: no format reads it (a meta
        :func:`freelist.meta.validate` accepts always has one).

    Runtime complexity: O(formats).
    """
    for cls in FORMATS.values():
        if cls.reads(meta):
            return cls()
    raise UnsupportedVersionError(
        "<meta>", f"no freelist format reads version {meta.version} with flags {meta.flags:#x}"
    )


def known(meta: Meta) -> bool:
    """Whether a registered format reads ``meta`` (its version and flags).

    Runtime complexity: O(formats).
    """
    return any(cls.reads(meta) for cls in FORMATS.values())


def versions() -> set[int]:
    """The meta versions of the registered formats.

    Runtime complexity: O(formats).
    """
    return {cls.version for cls in FORMATS.values()}


def writing(name: str) -> FreelistFormat:
    """A new instance of the format ``name`` (one of :data:`FORMATS`).

    :raises KeyError: an unknown name (the page file checks names first).

    Runtime complexity: O(1).
    """
    return FORMATS[name]()


def describe(io: FileIO, meta: Meta) -> dict[str, Any]:
    """What ``freelist inspect`` shows about the stored freelist of ``meta``:
    ``format``, ``pages`` (pages it occupies), ``errors``, and for the log
    ``chain_runs``, ``checkpoint_txid``, ``checkpoint_age`` (commits since),
    ``checkpoint_bytes`` and ``log_bytes``.

    :raises FileIOError: the file cannot be read.

    Runtime complexity: as the format's read.
    """
    fmt = reading(meta)
    stored = fmt.read(io, meta)
    out: dict[str, Any] = {
        "format": fmt.name,
        "pages": sum(n for _, n in stored.owned),
        "errors": list(stored.errors),
    }
    if stored.chain is not None:
        ch = stored.chain
        out.update(
            chain_runs=len(ch.runs),
            checkpoint_txid=ch.checkpoint_txid,
            checkpoint_age=meta.txid - ch.checkpoint_txid,
            checkpoint_bytes=ch.checkpoint_bytes,
            log_bytes=ch.log_bytes,
        )
    return out
