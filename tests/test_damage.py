"""A seeded file-damage campaign against PageFile and bbolt's tree walk.

Sources: files written by :class:`PageFile` (both freelists, synced and not,
several page sizes, and in the freelist log format at 1 and 4 KiB; each commit
writes a bbolt-shaped tree: leaf pages under a branch root, copied on write)
and the real bbolt files in tests/data/bbolt.

Each case copies one source, damages it (``KINDS``: random byte flips, one
meta field set to an edge value with or without a fixed checksum, the freelist
page's header and ids, tree page headers and elements, truncation, crafted
freelists that list live pages, the root, meta pages, repeats or unsorted
ids; on the log sources, ``LOG_KINDS`` instead of the freelist-page kinds:
flips in a record run or the checkpoint, log header fields, crafted records
freeing a page in use, a cut or misdirected chain, each with the run's checksum
recomputed or not), then opens it (plain, and with ``reachable=bbolt.reachable``),
checks it with and without the walk, and runs a few write transactions (a log
source writes the log; the walk's writes convert half of them to bbolt's
page).  It asserts:

* only :class:`~freelist.FreelistError` subclasses escape;
* nothing hangs: a watchdog (SIGALRM) fails a case that runs past
  ``CASE_SECONDS``; it bounds hangs, it does not measure speed;
* no page the chosen meta's state uses is handed out: the live set of each
  meta of the *undamaged* file (its tree pages by bbolt's walk, its freelist
  pages or every page of its log chain, the metas) is computed before the
  damage; the state the damaged file opened at is found by its meta's root
  and freelist ids, and every ``allocate()`` result is checked against its
  live set and against the pages the case allocated itself and has not freed.

Every case has a fixed seed and an id ``source/kind/seed``: a failure replays
with ``pytest tests/test_damage.py -k 'source/kind/seed'``.  The normal run
takes ``SLICE`` seeds a (source, kind) pair; the ``thorough`` Hypothesis
profile takes ``THOROUGH``, and ``FREELIST_DAMAGE_CASES=N`` takes N.

``KNOWN`` lists, as strict xfails, the cases of the one class no check
without a walk can see: a stored freelist (a freelist page, or a log record
with its checksum recomputed) that is sound in itself but lists a page the
tree uses.  bbolt trusts such a list too; ``check(walk)`` reports it and a
rebuild from ``reachable=`` repairs it.  A case that starts passing is
reported by its strict xfail, so the entry can go.
"""

from __future__ import annotations

import gzip
import os
import random
import shutil
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from freelist import FreelistError, PageFile, bbolt, freelog, pagefile, persist
from freelist import meta as metas
from freelist._fileio import FileIO
from freelist.errors import CorruptPageError
from freelist.layout import (
    BRANCH_PAGE,
    FREELIST_LOG_PAGE,
    FREELIST_PAGE,
    LEAF_PAGE,
    LOG_VERSION,
    NO_FREELIST,
    Meta,
    PageHeader,
    fnv1a64,
    unpack_freelist_ids,
)

from .bboltfile import branch_body, leaf_body, page, watchdog
from .conftest import PROFILE

BBOLT = Path(__file__).parent / "data" / "bbolt"

#: Seeds per (source, kind) in the normal run, the thorough profile, or FREELIST_DAMAGE_CASES.
SLICE = 3
THOROUGH = 72
CASE_SECONDS = 10.0


def _seeds() -> int:
    env = os.environ.get("FREELIST_DAMAGE_CASES")
    if env:
        pairs = sum(len(_kinds_for(source)) for source in SOURCES)
        return max(1, int(env) // pairs)
    return THOROUGH if PROFILE == "thorough" else SLICE


# ---------------------------------------------------------------------------
# Sources.

#: PageFile-written sources: (freelist, freelist format, page size); format
#: "none" is an unsynced freelist.
PF_SOURCES = (
    [
        (kind, fmt, ps)
        for kind in ("array", "hashmap")
        for fmt in ("bbolt", "none")
        for ps in (1024, 4096)
    ]
    + [("hashmap", "bbolt", 16384), ("array", "none", 65536)]
    + [(kind, "log", ps) for kind in ("array", "hashmap") for ps in (1024, 4096)]
    + [("hashmap", "logsealed", 1024)]
)

#: Commits a log source takes: enough that the newest meta's chain is a
#: checkpoint and a record run covering several commits (see
#: ``test_the_log_sources_have_chains``).
LOG_COMMITS = 20

#: Free pages the "logsealed" source starts with, so its checkpoint is large
#: and the records after it fill several pages before the next one: its newest
#: chain has sealed record runs behind the tail.
SEALED_FREE = 800

_FMT_NAMES = {"bbolt": "sync", "none": "nosync", "log": "log", "logsealed": "logsealed"}

SOURCES = [f"pf-{k}-{_FMT_NAMES[f]}-{ps}" for k, f, ps in PF_SOURCES] + [
    f"bbolt-{p.name[: -len('.db.gz')]}" for p in sorted(BBOLT.glob("*.db.gz"))
]


def _write_pagefile_source(path: Path, kind: str, fmt: str, ps: int) -> None:
    """A PageFile file whose commits each copy a bbolt-shaped tree on write:
    some new leaves (a few with overflow pages), some old ones freed, a new
    branch root naming every live leaf, the old root freed.  A log source
    takes more commits, so its newest chain is a checkpoint and record runs
    (the newest one covering a few commits); a "logsealed" one starts with
    ``SEALED_FREE`` free pages (and does not shrink them away)."""
    synced = fmt != "none"
    log = fmt.startswith("log")
    r = random.Random(f"{kind}/{synced}/{ps}" + (f"/{fmt}" if log else ""))
    leaves: list[tuple[int, int]] = []  # (pgid, pages)
    root = root_n = 0
    with PageFile.open(
        path,
        freelist=kind,
        page_size=ps,
        freelist_format="log" if log else fmt,
        reachable=bbolt.reachable,
        shrink=fmt != "logsealed",
    ) as pf:
        if fmt == "logsealed":
            with pf.update() as tx:
                block = tx.allocate(SEALED_FREE)
            with pf.update() as tx:
                tx.free(block, SEALED_FREE)
        for _ in range(LOG_COMMITS if log else 14):
            with pf.update() as tx:
                for _ in range(r.randint(1, 5)):
                    size = r.choice([8, 8, 8, ps, 2 * ps])
                    body = leaf_body([(0, b"key", b"v" * size)])
                    n = max(1, -(-len(body) // ps))
                    p = tx.allocate(n)
                    tx.write(p, page(body, p, ps))
                    leaves.append((p, n))
                r.shuffle(leaves)
                for _ in range(r.randint(0, len(leaves) // 3)):
                    p, n = leaves.pop()
                    tx.free(p, n)
                leaves.sort()
                body = branch_body([(b"k", p) for p, _ in leaves])
                n = max(1, -(-len(body) // ps))
                new_root = tx.allocate(n)
                tx.write(new_root, page(body, new_root, ps))
                if root:
                    tx.free(root, root_n)
                root, root_n = new_root, n
                tx.root = root


@pytest.fixture(scope="module", autouse=True)
def _no_fsync() -> Iterator[None]:
    """The campaign tests what a damaged file does, not durability: skip the
    fsyncs of its commits, which are most of its time.  (``raising=False``:
    if the page file's sync helper is renamed, the campaign only runs slower.)"""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pagefile, "_fsync", lambda _fd: None, raising=False)
        yield


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every source file, written once for the module."""
    folder = tmp_path_factory.mktemp("damage-sources")
    out: dict[str, Path] = {}
    for (kind, fmt, ps), name in zip(PF_SOURCES, SOURCES, strict=False):
        path = folder / f"{name}.db"
        _write_pagefile_source(path, kind, fmt, ps)
        out[name] = path
    for gz in sorted(BBOLT.glob("*.db.gz")):
        name = f"bbolt-{gz.name[: -len('.db.gz')]}"
        path = folder / f"{name}.db"
        path.write_bytes(gzip.decompress(gz.read_bytes()))
        out[name] = path
    return out


# ---------------------------------------------------------------------------
# What the undamaged file holds.


@dataclass
class State:
    """One meta of the undamaged file and the pages its state uses."""

    meta: Meta
    live: set[int]
    tree: list[int]  # tree page ids (first pages), in walk order
    tree_pages: set[int]  # every tree page with its overflow pages
    fl_ids: list[int]  # the ids on its freelist page or its log's replay (empty when not synced)
    chain: list[freelog.LogRun]  # a log meta's chain, the newest run first (else empty)


@dataclass
class Original:
    data: bytes
    ps: int
    states: list[State]

    def newest(self) -> State:
        return max(self.states, key=lambda s: s.meta.txid)


def _original(path: Path) -> Original:
    data = path.read_bytes()
    ps = struct.unpack_from("<I", data, 24)[0]
    states = []
    for m in (0, 1):
        meta, _sum = Meta.unpack(data, m * ps)

        def read(pgid: int, n: int) -> bytes:
            return data[pgid * ps : (pgid + n) * ps]

        tree: list[int] = []
        tree_pages: set[int] = set()
        if meta.root:
            for p, n, _flags in bbolt.walk(read, meta.root, meta.hwm):
                tree_pages.update(range(p, p + n))
                tree.append(p)
        live = {0, 1} | tree_pages
        ids: list[int] = []
        chain: list[freelog.LogRun] = []
        if meta.version == LOG_VERSION:
            # The chain's pages, and the ids it replays to, by the library's
            # reader on the undamaged file (the chain's checksums are what the
            # campaign damages; their reading is tested in test_freelist_log).
            stored = _read_log(path, meta)
            assert not stored.errors, stored.errors
            chain = _chain(data, ps, meta)
            assert sorted((c.pgid, c.pages) for c in chain) == stored.owned
            for start, n in stored.owned:
                live.update(range(start, start + n))
            ids = list(stored.ids or [])
        elif meta.freelist != NO_FREELIST:
            head = PageHeader.unpack(data, meta.freelist * ps)
            live.update(range(meta.freelist, meta.freelist + 1 + head.overflow))
            ids = unpack_freelist_ids(data, meta.freelist * ps, len(data)).tolist()
        states.append(State(meta, live, tree, tree_pages, ids, chain))
    return Original(data, ps, states)


def _read_log(path: Path, meta: Meta) -> persist.Stored:
    """What the library's log reader finds for ``meta`` in the file at ``path``."""
    io = FileIO(str(path), readonly=True, create=False)
    try:
        io.map(io.size())
        return persist.reading(meta).read(io, meta)
    finally:
        io.close()


def _chain(data: bytes, ps: int, meta: Meta) -> list[freelog.LogRun]:
    """The runs of the log chain ``meta`` names in ``data`` that verify, the
    newest first, down to the checkpoint or the first run that does not
    verify (a damaged page, a stale one, one outside the file)."""
    runs: list[freelog.LogRun] = []
    pgid, newest = meta.freelist, meta.txid
    while 2 <= pgid < meta.hwm:
        try:
            run = freelog.unpack_run(data, pgid, ps, meta.hwm)
        except CorruptPageError:
            break
        if run.txid > newest:
            break
        runs.append(run)
        if run.kind == freelog.CHECKPOINT:
            break
        pgid, newest = run.prev, run.txid - 1
    return runs


# ---------------------------------------------------------------------------
# Damage.

U64 = 2**64 - 1


def _edge_values(o: Original, r: random.Random) -> list[int]:
    m = o.newest().meta
    return [0, 1, 2, 3, m.hwm - 1, m.hwm, m.hwm + 1, 2**32 - 1, 2**63, U64, r.getrandbits(64)]


_META_FIELDS = {  # name: (offset in the page, struct format)
    "magic": (16, "<I"),
    "version": (20, "<I"),
    "page_size": (24, "<I"),
    "flags": (28, "<I"),
    "root": (32, "<Q"),
    "sequence": (40, "<Q"),
    "freelist": (48, "<Q"),
    "hwm": (56, "<Q"),
    "txid": (64, "<Q"),
    "checksum": (72, "<Q"),
}


def _fix_checksum(buf: bytearray, off: int) -> None:
    struct.pack_into("<Q", buf, off + 72, fnv1a64(bytes(buf[off + 16 : off + 72])))


def _put(buf: bytearray, off: int, fmt: str, value: int) -> None:
    if off + struct.calcsize(fmt) <= len(buf):
        struct.pack_into(fmt, buf, off, value & (256 ** struct.calcsize(fmt) - 1))


def damage_flip(o: Original, r: random.Random, buf: bytearray) -> str:
    """Random byte flips, mostly in the first bytes of pages that matter."""
    new = o.newest()
    pages = [0, 1, new.meta.root, *new.tree[:8]]
    if new.meta.freelist != NO_FREELIST:
        pages.append(new.meta.freelist)
    done = []
    for _ in range(r.randint(1, 6)):
        if r.random() < 0.8:
            off = r.choice(pages) * o.ps + r.randrange(min(o.ps, 128))
        else:
            off = r.randrange(len(buf))
        if off < len(buf):
            buf[off] ^= 1 << r.randrange(8) if r.random() < 0.7 else r.randrange(1, 256)
            done.append(off)
    return f"flipped bytes at {done}"


def damage_meta(o: Original, r: random.Random, buf: bytearray) -> str:
    """One field of one meta set to an edge value; the checksum fixed or not."""
    m = r.choice([0, 1])
    name = r.choice(list(_META_FIELDS))
    field_off, fmt = _META_FIELDS[name]
    value = r.choice([*_edge_values(o, r), o.ps * 2, o.ps // 2, 512, 2**24])
    off = m * o.ps
    _put(buf, off + field_off, fmt, value)
    fixed = name != "checksum" and r.random() < 0.75
    if fixed:
        _fix_checksum(buf, off)
    return f"meta {m} {name} = {value}{' (checksum fixed)' if fixed else ''}"


def damage_meta_place(o: Original, r: random.Random, buf: bytearray) -> str:
    """Metas swapped or misplaced (issue 21 hole 3): the two meta pages
    swapped, or one copied over the other, each header naming the page it
    now sits on or still the page it came from; sometimes the newest meta's
    freelist is damaged too, so an open falls back to the older meta."""
    ps = o.ps
    m0, m1 = bytes(buf[0:ps]), bytes(buf[ps : 2 * ps])
    what = r.choice(["swap", "swap", "copy-newest", "copy-older"])
    fix = r.random() < 0.7
    newest = next(p for p in (0, 1) if Meta.unpack(o.data, p * ps)[0] == o.newest().meta)
    if what == "swap":
        buf[0:ps], buf[ps : 2 * ps] = m1, m0
    else:
        src = newest if what == "copy-newest" else 1 - newest
        dst = 1 - src
        buf[dst * ps : (dst + 1) * ps] = (m0, m1)[src]
    if fix:
        for p in (0, 1):
            _put(buf, p * ps, "<Q", p)
    head = o.newest().meta.freelist
    broke = ""
    if head != NO_FREELIST and r.random() < 0.4 and (head + 1) * ps <= len(buf):
        buf[head * ps + 20 + r.randrange(4)] ^= 0xFF  # a log run's crc, a freelist page's ids
        broke = f", freelist page {head} damaged"
    return f"metas: {what}{' (header ids fixed)' if fix else ''}{broke}"


def damage_freelist_header(o: Original, r: random.Random, buf: bytearray) -> str:
    """The newest freelist page's header: id, flags, count or overflow."""
    fl = o.newest().meta.freelist
    if fl == NO_FREELIST:
        return damage_tree_header(o, r, buf)
    name, rel, fmt = r.choice(
        [("id", 0, "<Q"), ("flags", 8, "<H"), ("count", 10, "<H"), ("overflow", 12, "<I")]
    )
    value = r.choice([*_edge_values(o, r), 0xFFFF, FREELIST_PAGE, LEAF_PAGE, 0xFFFE])
    _put(buf, fl * o.ps + rel, fmt, value)
    if name == "count" and value == 0xFFFF and r.random() < 0.5:
        _put(buf, fl * o.ps + 16, "<Q", r.choice(_edge_values(o, r)))
    return f"freelist page {fl} {name} = {value}"


def _freelist_ids_at(o: Original, fl: int) -> tuple[int, int]:
    """(offset of the first id, count) on the freelist page ``fl``."""
    off = fl * o.ps
    count = struct.unpack_from("<H", o.data, off + 10)[0]
    start = off + 16
    if count == 0xFFFF:
        count = struct.unpack_from("<Q", o.data, start)[0]
        start += 8
    return start, count


def damage_freelist_ids(o: Original, r: random.Random, buf: bytearray) -> str:
    """Crafted freelists: list a live page, the root, a meta page, the freelist's
    own page, an id past the high-water mark, a repeat, or unsorted ids."""
    new = o.newest()
    fl = new.meta.freelist
    if fl == NO_FREELIST:
        return damage_tree_elements(o, r, buf)
    start, count = _freelist_ids_at(o, fl)
    if count == 0:
        return damage_freelist_header(o, r, buf)
    ids = list(new.fl_ids)
    what = r.choice(["live", "root", "meta", "own", "past", "repeat", "unsorted", "random"])
    i = r.randrange(count)
    tree_only = sorted(new.live - {0, 1, *range(fl, fl + 1)})
    if what == "live" and tree_only:
        ids[i] = r.choice(tree_only)
    elif what == "root" and new.meta.root:
        ids[i] = new.meta.root
    elif what == "meta":
        ids[i] = r.choice([0, 1])
    elif what == "own":
        ids[i] = fl
    elif what == "past":
        ids[i] = new.meta.hwm + r.randrange(3)
    elif what == "repeat" and count > 1:
        j = r.randrange(count)
        ids[i] = ids[j]
    elif what == "unsorted" and count > 1:
        j = r.randrange(count)
        ids[i], ids[j] = ids[j], ids[i]
    else:
        ids[i] = r.getrandbits(r.choice([8, 16, 64]))
    if what in ("live", "root", "meta", "own", "past") and r.random() < 0.5:
        ids.sort()  # a sorted list, so only the content is wrong
    for k, v in enumerate(ids):
        _put(buf, start + 8 * k, "<Q", v)
    return f"freelist ids: {what} at #{i}"


def damage_tree_header(o: Original, r: random.Random, buf: bytearray) -> str:
    """A tree page's header: flags, count or overflow."""
    tree = o.newest().tree
    if not tree:
        return damage_flip(o, r, buf)
    p = r.choice(tree[:1] * 3 + tree)
    name, rel, fmt = r.choice([("flags", 8, "<H"), ("count", 10, "<H"), ("overflow", 12, "<I")])
    value = r.choice(
        [*_edge_values(o, r), BRANCH_PAGE, LEAF_PAGE, FREELIST_PAGE, 0xFFFF, r.randrange(300)]
    )
    _put(buf, p * o.ps + rel, fmt, value)
    return f"tree page {p} {name} = {value}"


def damage_tree_elements(o: Original, r: random.Random, buf: bytearray) -> str:
    """One element of a tree page: a child id (branch) or flags/pos/sizes (leaf)."""
    new = o.newest()
    if not new.tree:
        return damage_flip(o, r, buf)
    p = r.choice(new.tree)
    base = p * o.ps
    flags, count = struct.unpack_from("<HH", o.data, base + 8)
    if count == 0:
        return damage_tree_header(o, r, buf)
    i = r.randrange(count)
    elem = base + 16 + 16 * i
    if flags & BRANCH_PAGE:
        value = r.choice(
            [*_edge_values(o, r), p, new.meta.root, r.choice(sorted(new.live)), *new.fl_ids[:1]]
        )
        _put(buf, elem + 8, "<Q", value)
        return f"branch page {p} element {i} child = {value}"
    name, rel = r.choice([("flags", 0), ("pos", 4), ("ksize", 8), ("vsize", 12)])
    value = r.choice([0, 1, 16, 0xFFFF, 2**31, U64, r.randrange(o.ps)])
    _put(buf, elem + rel, "<I", value)
    return f"leaf page {p} element {i} {name} = {value & 0xFFFFFFFF}"


def damage_leaf_value(o: Original, r: random.Random, buf: bytearray) -> str:
    """A leaf value past its page (issue 21 hole 1): a leaf with overflow
    pages gets a smaller overflow in its header, or one element's value size
    grows so the value ends past the leaf's last page.  The pages the value
    reaches stay in use: the walk must refuse the leaf, not free them."""
    new = o.newest()
    leaves = []
    for p in new.tree:
        flags, count, overflow = struct.unpack_from("<HHI", o.data, p * o.ps + 8)
        if flags & LEAF_PAGE and count:
            leaves.append((p, count, overflow))
    if not leaves:
        return damage_tree_elements(o, r, buf)
    big = [leaf for leaf in leaves if leaf[2]]
    if big and r.random() < 0.6:
        p, _count, overflow = r.choice(big)
        value = r.randrange(overflow)
        _put(buf, p * o.ps + 12, "<I", value)
        return f"leaf page {p} overflow {overflow} -> {value} (a value past its page)"
    p, count, overflow = r.choice(leaves)
    i = r.randrange(count)
    elem = p * o.ps + 16 + 16 * i
    _flags, pos, ksize, _vsize = struct.unpack_from("<IIII", o.data, elem)
    end = (1 + overflow) * o.ps - (16 + 16 * i + pos + ksize)  # bytes to the run's end
    value = end + r.choice([1, 8, o.ps, o.ps * r.randint(2, 4)])
    _put(buf, elem + 12, "<I", value)
    return f"leaf page {p} element {i} vsize = {value} (past its {1 + overflow} page(s))"


class Damaged(bytearray):
    """The damaged file's bytes; ``sparse_to``: extend the written file to
    this size with a hole (0: no)."""

    sparse_to = 0


#: The largest file the campaign makes sparse (ext4 takes files under 16 TiB).
SPARSE_MAX = 1 << 43


def damage_sparse(o: Original, r: random.Random, buf: bytearray) -> str:
    """A sparse file with a huge high-water mark (issue 21 hole 2): the
    newest meta, or both, claims 2**24 .. 2**40 pages (checksum fixed) and
    the file is extended to hold them, as a hole; sometimes the freelist page
    claims as many ids too.  What the file holds stays a few pages."""
    ps = o.ps
    hwm = min(1 << r.choice([24, 27, 30, 33, 36, 40]), SPARSE_MAX // ps)
    new = o.newest().meta
    pages = [p for p in (0, 1) if Meta.unpack(o.data, p * ps)[0] == new]
    if r.random() < 0.4:
        pages = [0, 1]
    for p in pages:
        _put(buf, p * ps + 56, "<Q", hwm)
        _fix_checksum(buf, p * ps)
    what = f"meta(s) {pages} claim {hwm} pages"
    fl = new.freelist
    if fl != NO_FREELIST and new.version != LOG_VERSION and r.random() < 0.5:
        _put(buf, fl * ps + 10, "<H", 0xFFFF)
        _put(buf, fl * ps + 12, "<I", min(hwm - fl - 1, 2**32 - 1))
        _put(buf, fl * ps + 16, "<Q", hwm - 2)
        what += f", freelist page {fl} claims {hwm - 2} ids"
    if isinstance(buf, Damaged):
        buf.sparse_to = hwm * ps
    return what + f" (sparse to {hwm * ps} bytes)"


def damage_truncate(o: Original, r: random.Random, buf: bytearray) -> str:
    """Cut the file short (or leave one byte short of a page)."""
    ps = o.ps
    hwm = o.newest().meta.hwm
    length = r.choice(
        [
            0,
            1,
            1023,
            ps,
            2 * ps - 1,
            2 * ps,
            3 * ps,
            hwm * ps - 1,
            (hwm - 1) * ps,
            r.randrange(len(buf)),
            r.randrange(2 * ps, max(2 * ps + 1, hwm * ps)),
        ]
    )
    del buf[max(0, length) :]
    return f"truncated to {len(buf)} bytes"


def _log_runs(o: Original) -> list[freelog.LogRun]:
    """The newest meta's chain, and the older meta's runs not in it."""
    runs = list(o.newest().chain)
    seen = {run.pgid for run in runs}
    for s in o.states:
        for run in s.chain:
            if run.pgid not in seen:
                seen.add(run.pgid)
                runs.append(run)
    return runs


def _recrc(buf: bytearray, ps: int, pgid: int) -> None:
    """Recompute the checksum of the log run at ``pgid`` as its header says
    it is now (its length clipped to its pages)."""
    off = pgid * ps
    head = PageHeader.unpack(buf, off)
    kind, _crc, prev, txid, length = struct.unpack_from("<IIQQQ", buf, off + 16)
    end = min(off + freelog.HEADER_SIZE + length, off + (head.overflow + 1) * ps, len(buf))
    body = struct.pack("<IIQQQ", kind, 0, prev, txid, length)
    crc = zlib.crc32(bytes(buf[off : off + 16]))
    crc = zlib.crc32(bytes(buf[off + freelog.HEADER_SIZE : end]), zlib.crc32(body, crc))
    _put(buf, off + 20, "<I", crc)


def damage_log_flip(o: Original, r: random.Random, buf: bytearray) -> str:
    """Byte flips in a record run or the checkpoint: the header, the log
    header, or the payload (the checksum fixed up afterwards, sometimes)."""
    runs = _log_runs(o)
    run = r.choice(runs[:1] * 2 + runs)
    base = run.pgid * o.ps
    span = freelog.HEADER_SIZE + len(run.payload)
    done = []
    for _ in range(r.randint(1, 3)):
        off = base + (r.randrange(freelog.HEADER_SIZE) if r.random() < 0.4 else r.randrange(span))
        if off < len(buf):
            buf[off] ^= 1 << r.randrange(8) if r.random() < 0.7 else r.randrange(1, 256)
            done.append(off - base)
    fixed = r.random() < 0.3
    if fixed:
        _recrc(buf, o.ps, run.pgid)
    kind = "checkpoint" if run.kind == freelog.CHECKPOINT else "record run"
    return f"{kind} {run.pgid}: flipped bytes at {done}{' (checksum fixed)' if fixed else ''}"


def damage_log_header(o: Original, r: random.Random, buf: bytearray) -> str:
    """A log run's page header or log header field set to an edge value."""
    run = r.choice(_log_runs(o))
    name, rel, fmt = r.choice(
        [
            ("id", 0, "<Q"),
            ("flags", 8, "<H"),
            ("overflow", 12, "<I"),
            ("kind", 16, "<I"),
            ("txid", 32, "<Q"),
            ("length", 40, "<Q"),
        ]
    )
    value = r.choice(
        [*_edge_values(o, r), FREELIST_PAGE, FREELIST_LOG_PAGE, run.txid + 1, len(run.payload) + 8]
    )
    _put(buf, run.pgid * o.ps + rel, fmt, value)
    fixed = r.random() < 0.5
    if fixed:
        _recrc(buf, o.ps, run.pgid)
    return f"log run {run.pgid} {name} = {value}{' (checksum fixed)' if fixed else ''}"


def damage_log_record(o: Original, r: random.Random, buf: bytearray) -> str:
    """A crafted record (or checkpoint id) freeing a page the state uses: a
    tree page, the root, a meta, a page of the chain, or one past the
    high-water mark; its checksum recomputed or not."""
    new = o.newest()
    chain_pages = sorted(new.live - new.tree_pages - {0, 1})
    what = r.choice(["live", "live", "root", "meta", "own", "past", "zero-n"])
    tree_only = sorted(new.tree_pages - {new.meta.root})
    if what == "live" and tree_only:
        page_id = r.choice(tree_only)
    elif what == "root" and new.meta.root:
        page_id = new.meta.root
    elif what == "meta":
        page_id = r.choice([0, 1])
    elif what == "own":
        page_id = r.choice(chain_pages)
    elif what == "past":
        page_id = new.meta.hwm + r.randrange(3)
    else:
        what, page_id = "zero-n", r.choice(tree_only or chain_pages)
    n = 0 if what == "zero-n" else 1
    fixed = r.random() < 0.6
    records = [run for run in new.chain if run.kind == freelog.RECORDS]
    if records:
        run = records[0] if r.random() < 0.7 else r.choice(records)
        off = run.pgid * o.ps
        count = len(run.payload) // freelog.RECORD.size
        if r.random() < 0.5 and freelog.HEADER_SIZE + len(run.payload) + 16 <= run.pages * o.ps:
            at = count  # appended: the run's length grows by one record
            _put(buf, off + 40, "<Q", len(run.payload) + freelog.RECORD.size)
        else:
            at = r.randrange(count)
        rec = off + freelog.HEADER_SIZE + at * freelog.RECORD.size
        _put(buf, rec, "<Q", page_id)
        _put(buf, rec + 8, "<Q", n << 1 | freelog.FREE)
        where = f"record run {run.pgid} record #{at}"
    else:
        run = new.chain[-1]
        off = run.pgid * o.ps
        ids = _u64s(run.payload)
        if not ids:
            return damage_log_flip(o, r, buf)
        ids[r.randrange(len(ids))] = page_id
        if r.random() < 0.7:
            ids.sort()
        for k, v in enumerate(ids):
            _put(buf, off + freelog.HEADER_SIZE + 8 * k, "<Q", v)
        where = f"checkpoint {run.pgid}"
    if fixed:
        _recrc(buf, o.ps, run.pgid)
    return f"{where} frees {what} page {page_id}+{n}{' (checksum fixed)' if fixed else ''}"


def _u64s(payload: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(payload) // 8}Q", payload))


def damage_log_chain(o: Original, r: random.Random, buf: bytearray) -> str:
    """The chain cut or misdirected: a ``prev`` of 0 (truncated), to a live
    page (a tree page, the root, a meta, the run itself, a newer run), the
    checkpoint zeroed, or the file cut inside the chain."""
    runs = _log_runs(o)
    new = o.newest()
    records = [run for run in runs if run.kind == freelog.RECORDS]
    what = r.choice(["prev-0", "prev-live", "prev-live", "zero-ckpt", "cut"])
    if what in ("prev-0", "prev-live") and records:
        run = r.choice(records)
        if what == "prev-0":
            value = 0
        else:
            value = r.choice(
                [
                    *(new.tree[:8] or [2]),
                    new.meta.root or 2,
                    0,
                    1,
                    run.pgid,
                    new.meta.freelist,
                    new.meta.hwm,
                ]
            )
        _put(buf, run.pgid * o.ps + 24, "<Q", value)
        fixed = r.random() < 0.6
        if fixed:
            _recrc(buf, o.ps, run.pgid)
        return f"record run {run.pgid} prev = {value}{' (checksum fixed)' if fixed else ''}"
    if what == "cut":
        run = r.choice(runs)
        length = run.pgid * o.ps + r.choice([0, 16, freelog.HEADER_SIZE, o.ps // 2])
        del buf[length:]
        return f"truncated to {len(buf)} bytes, inside log run {run.pgid}"
    ckpt = next(run for run in reversed(runs) if run.kind == freelog.CHECKPOINT)
    buf[ckpt.pgid * o.ps : (ckpt.pgid + ckpt.pages) * o.ps] = bytes(ckpt.pages * o.ps)
    return f"checkpoint {ckpt.pgid} zeroed"


def damage_log_meta_older(o: Original, r: random.Random, buf: bytearray) -> str:
    """The newest meta names an older run of its chain (or of the older
    meta's), its checksum fixed: a chain older than the meta's txid."""
    new = o.newest()
    older = [run for run in _log_runs(o) if run.txid < new.meta.txid]
    if not older:
        return damage_log_chain(o, r, buf)
    run = r.choice(older)
    page = next(p for p in (0, 1) if Meta.unpack(o.data, p * o.ps)[0] == new.meta)
    _put(buf, page * o.ps + 48, "<Q", run.pgid)
    _fix_checksum(buf, page * o.ps)
    return f"meta {page} names run {run.pgid} (transaction {run.txid})"


DamageFn = Callable[[Original, random.Random, bytearray], str]

KINDS: dict[str, DamageFn] = {
    "flip": damage_flip,
    "meta": damage_meta,
    "meta-place": damage_meta_place,
    "fl-header": damage_freelist_header,
    "fl-ids": damage_freelist_ids,
    "tree-header": damage_tree_header,
    "tree-elem": damage_tree_elements,
    "leaf-value": damage_leaf_value,
    "sparse": damage_sparse,
    "truncate": damage_truncate,
}

#: Kinds whose damage leaves every page of the undamaged tree in use (the
#: damage only makes the tree claim less than it holds): no page of the
#: opened state's undamaged tree may be handed out, whatever the damaged
#: file's own walk finds.
TREE_KEPT = {"leaf-value"}

#: Damage aimed at the freelist log, run on the log sources only (the
#: freelist-page kinds above do not apply to them and are left out).
LOG_KINDS: dict[str, DamageFn] = {
    "log-flip": damage_log_flip,
    "log-header": damage_log_header,
    "log-record": damage_log_record,
    "log-chain": damage_log_chain,
    "log-meta-older": damage_log_meta_older,
}

ALL_KINDS = {**KINDS, **LOG_KINDS}


def _kinds_for(source: str) -> list[str]:
    if source.startswith("pf-") and "-log" in source:
        return [k for k in ALL_KINDS if not k.startswith("fl-")]
    return list(KINDS)


# ---------------------------------------------------------------------------
# Cases of the "needs a walk" class, by case id, with the reason.  Filled from
# the campaign's own findings: see the module docstring.

#: What no check without a walk can see: a freelist page that is sound in
#: itself (sorted ids inside the file, not the root, not a meta or its own
#: page) but lists a page the tree uses, as a flipped id can make it.  bbolt
#: trusts such a page too; ``check(walk)`` reports it, a rebuild from
#: ``reachable=`` repairs it, and the log format's checksums catch it.
_BUG2 = "a sound-looking freelist page listing a live non-root page: undetectable without a walk"

#: The same class in the log: a record run (or checkpoint) whose checksum was
#: recomputed after a record was changed to free a page the tree uses, or to
#: drop the record that took one.  Its checksum, header, order and ranges are
#: sound, so only a walk can tell; ``check(walk)`` reports it.
_BUG_LOG = "a crafted log record with its checksum recomputed freeing a live page: needs a walk"

KNOWN: dict[str, str] = {
    **dict.fromkeys(
        [
            "pf-array-log-1024/log-record/12",
            "pf-array-log-1024/log-record/17",
            "pf-array-log-1024/log-record/18",
            "pf-array-log-1024/log-record/19",
            "pf-array-log-1024/log-record/23",
            "pf-array-log-1024/log-record/26",
            "pf-array-log-1024/log-record/32",
            "pf-array-log-1024/log-record/36",
            "pf-array-log-1024/log-record/40",
            "pf-array-log-1024/log-record/44",
            "pf-array-log-1024/log-record/45",
            "pf-array-log-1024/log-record/49",
            "pf-array-log-1024/log-record/5",
            "pf-array-log-1024/log-record/52",
            "pf-array-log-1024/log-record/55",
            "pf-array-log-1024/log-record/57",
            "pf-array-log-1024/log-record/63",
            "pf-array-log-4096/log-record/1",
            "pf-array-log-4096/log-record/25",
            "pf-array-log-4096/log-record/32",
            "pf-array-log-4096/log-record/34",
            "pf-array-log-4096/log-record/4",
            "pf-array-log-4096/log-record/55",
            "pf-array-log-4096/log-record/58",
            "pf-array-log-4096/log-record/61",
            "pf-array-log-4096/log-record/68",
            "pf-array-log-4096/log-record/7",
            "pf-hashmap-log-1024/log-record/1",
            "pf-hashmap-log-1024/log-record/15",
            "pf-hashmap-log-1024/log-record/2",
            "pf-hashmap-log-1024/log-record/21",
            "pf-hashmap-log-1024/log-record/25",
            "pf-hashmap-log-1024/log-record/28",
            "pf-hashmap-log-1024/log-record/32",
            "pf-hashmap-log-1024/log-record/37",
            "pf-hashmap-log-1024/log-record/47",
            "pf-hashmap-log-1024/log-record/5",
            "pf-hashmap-log-1024/log-record/51",
            "pf-hashmap-log-1024/log-record/58",
            "pf-hashmap-log-1024/log-record/67",
            "pf-hashmap-log-4096/log-record/20",
            "pf-hashmap-log-4096/log-record/24",
            "pf-hashmap-log-4096/log-record/34",
            "pf-hashmap-log-4096/log-record/44",
            "pf-hashmap-log-4096/log-record/5",
            "pf-hashmap-log-4096/log-record/57",
            "pf-hashmap-log-4096/log-record/65",
            "pf-hashmap-logsealed-1024/log-record/28",
            "pf-hashmap-logsealed-1024/log-record/32",
            "pf-hashmap-logsealed-1024/log-record/35",
            "pf-hashmap-logsealed-1024/log-record/46",
            "pf-hashmap-logsealed-1024/log-record/6",
            "pf-hashmap-logsealed-1024/log-record/7",
        ],
        _BUG_LOG,
    ),
    **dict.fromkeys(
        [
            "bbolt-synced-hashmap-nested/fl-ids/45",
            "bbolt-synced-hashmap-nested/fl-ids/48",
            "bbolt-synced-hashmap-nested/fl-ids/49",
            "bbolt-synced-hashmap-nested/fl-ids/56",
            "bbolt-synced-hashmap-nested/fl-ids/6",
            "bbolt-synced-hashmap-nested/flip/30",
            "bbolt-synced-hashmap-nested/flip/49",
            "pf-array-sync-1024/fl-ids/3",
            "pf-array-sync-1024/fl-ids/33",
            "pf-array-sync-1024/fl-ids/4",
            "pf-array-sync-4096/fl-ids/37",
            "pf-array-sync-4096/fl-ids/47",
            "pf-array-sync-4096/fl-ids/62",
            "pf-array-sync-4096/fl-ids/64",
            "pf-array-sync-4096/flip/63",
            "pf-hashmap-sync-1024/fl-ids/30",
            "pf-hashmap-sync-1024/fl-ids/32",
            "pf-hashmap-sync-1024/fl-ids/56",
            "pf-hashmap-sync-1024/fl-ids/62",
            "pf-hashmap-sync-16384/fl-ids/23",
            "pf-hashmap-sync-16384/fl-ids/26",
            "pf-hashmap-sync-16384/fl-ids/31",
            "pf-hashmap-sync-16384/fl-ids/42",
            "pf-hashmap-sync-16384/fl-ids/51",
            "pf-hashmap-sync-16384/fl-ids/7",
            "pf-hashmap-sync-4096/fl-ids/11",
            "pf-hashmap-sync-4096/fl-ids/14",
            "pf-hashmap-sync-4096/fl-ids/51",
            "pf-hashmap-sync-4096/fl-ids/68",
            "pf-hashmap-sync-4096/fl-ids/69",
        ],
        _BUG2,
    ),
}


def _case_ids() -> Iterator[object]:
    for source in SOURCES:
        for kind in _kinds_for(source):
            for seed in range(_seeds()):
                cid = f"{source}/{kind}/{seed}"
                marks = []
                if cid in KNOWN:
                    marks.append(pytest.mark.xfail(reason=KNOWN[cid], strict=True))
                yield pytest.param(source, kind, seed, id=cid, marks=marks)


# ---------------------------------------------------------------------------
# The run.


class LivePageHandedOutError(AssertionError):
    """PageFile handed out a page the chosen state uses."""


def _state_of(o: Original, meta: Meta) -> State | None:
    """The undamaged state the damaged file opened at, found by its meta's ids."""
    for s in o.states:
        m = s.meta
        if (m.root, m.freelist, m.hwm, m.txid) == (meta.root, meta.freelist, meta.hwm, meta.txid):
            return s
    return None


def _tree_state_of(o: Original, meta: Meta) -> State | None:
    """The undamaged state whose tree the meta names (root, high-water mark
    and txid alike), whatever its freelist field."""
    for s in o.states:
        m = s.meta
        if (m.root, m.hwm, m.txid) == (meta.root, meta.hwm, meta.txid):
            return s
    return None


def _freelist_run(pf: PageFile) -> set[int]:
    """The pages of the freelist page the file's meta names now (none when not
    synced); for a log meta, the pages of its chain's runs that verify."""
    fl = pf.meta.freelist
    if pf.meta.version == LOG_VERSION:
        meta = pf.meta
        with open(pf.path, "rb") as f:
            runs = _chain(f.read(meta.hwm * meta.page_size), meta.page_size, meta)
        out = {p for run in runs for p in range(run.pgid, run.pgid + run.pages)}
        if not runs and 2 <= fl < meta.hwm:
            out.add(fl)  # a damaged newest run: as a damaged freelist page
        return out
    if fl == NO_FREELIST:
        return set()
    with pf.view() as tx:
        head = PageHeader.unpack(tx.read(fl))
    if not head.flags & FREELIST_PAGE or fl + 1 + head.overflow > pf.meta.hwm:
        # Not a freelist page, or one whose run passes the end of the file: its
        # overflow field means nothing, and the pages after it are in use only
        # if the tree reaches them.
        return {fl}
    return set(range(fl, fl + 1 + head.overflow))


def _transactions(pf: PageFile, o: Original, r: random.Random, *, tree_kept: bool) -> None:
    """A few write transactions; every allocate() checked against the live
    set: the opened state's tree pages and metas, the freelist page the meta
    names at the time, and the pages this case allocated and did not free.
    ``tree_kept``: the damage keeps every page of the undamaged tree in use."""
    state = _state_of(o, pf.meta)
    tree: set[int] | None = None
    same_tree = _tree_state_of(o, pf.meta)
    if state is None and same_tree is not None:
        # Only the meta's freelist field differs from an undamaged state:
        # that state's tree is still in use, whatever the field names.
        tree = {0, 1} | same_tree.tree_pages
    elif state is not None and state.meta.freelist != NO_FREELIST:
        tree = state.live - state_freelist(state)
    elif state is not None:
        # No synced freelist: what is in use is what the (damaged) tree reaches,
        # walked here apart from PageFile; the open succeeded, so the walk does.
        tree = {0, 1, *_tree_pages(pf.path, o.ps, state.meta)}
        if tree_kept:
            tree |= state.tree_pages
    mine: list[tuple[int, int]] = []
    drain = r.random() < 0.5  # hand out every free page once, so each listed id is tried
    for _ in range(3):
        live = None
        if tree is not None:
            live = tree | _freelist_run(pf)
            for p, n in mine:
                live.update(range(p, p + n))
        with pf.update() as tx:
            if drain:
                drain = False
                for _ in range(pf.freelist.count):
                    p = tx.allocate(1)
                    if live is not None and p in live:
                        raise LivePageHandedOutError(f"allocate(1) returned {p}, a page in use")
                    mine.append((p, 1))
                    if live is not None:
                        live.add(p)
            for _ in range(r.randint(1, 4)):
                n = r.choice([1, 1, 2, 3])
                p = tx.allocate(n)
                run = set(range(p, p + n))
                if live is not None and run & live:
                    raise LivePageHandedOutError(
                        f"allocate({n}) returned {p}: pages {sorted(run & live)} are in use"
                    )
                tx.write(p, b"x" * 16)
                mine.append((p, n))
                if live is not None:
                    live |= run
            if mine and r.random() < 0.5:
                p, n = mine.pop(r.randrange(len(mine)))
                tx.free(p, n)
        _the_disk_opens_at(pf)


class LostCommitError(AssertionError):
    """The file on disk no longer opens at the commit just acknowledged."""


def _the_disk_opens_at(pf: PageFile) -> None:
    """The meta an open of the file would choose now is the one the last
    commit wrote: a commit overwrote no newer meta, and left no second meta
    of its txid to be chosen instead."""
    io = FileIO(pf.path, readonly=True, create=False)
    try:
        _ps, verdicts = metas.read(io, None)
        chosen = metas.choose(io, verdicts).meta
    finally:
        io.close()
    if chosen != pf.meta:
        raise LostCommitError(f"committed {pf.meta}, but the disk opens at {chosen}")


def _tree_pages(path: str, ps: int, meta: Meta) -> set[int]:
    """The pages the tree under ``meta.root`` reaches in the file at ``path``
    (read a page run at a time: a sparse file may be huge)."""
    pages: set[int] = set()
    fd = os.open(path, os.O_RDONLY)
    try:

        def read(pgid: int, n: int) -> bytes:
            return os.pread(fd, n * ps, pgid * ps)

        if meta.root:
            for p, n, _flags in bbolt.walk(read, meta.root, meta.hwm):
                pages.update(range(p, p + n))
    finally:
        os.close(fd)
    return pages


def state_freelist(state: State) -> set[int]:
    """The pages of ``state``'s own freelist page run."""
    return state.live - state.tree_pages - {0, 1}


def _run_case(path: Path, o: Original, r: random.Random, *, tree_kept: bool = False) -> list[str]:
    """Open, check and write the damaged file every way; return what was refused."""
    refused: list[str] = []
    kind = r.choice(["array", "hashmap"])
    log = o.newest().meta.version == LOG_VERSION
    # A log file keeps its format; the walk's writes convert half of them to
    # bbolt's page (the plain open refuses most damaged chains, so the walk's
    # open is the one that sees the damage).
    formats = ["log", r.choice(["log", "bbolt"])] if log else [None, None]
    for walker, fmt in zip((None, bbolt.reachable), formats, strict=True):
        how = "walk" if walker else "plain"
        try:
            with PageFile.open(path, readonly=True, freelist=kind, reachable=walker) as pf:
                for w in (None, bbolt.reachable):
                    try:
                        pf.check(w)
                    except FreelistError as e:
                        refused.append(f"{how} check: {type(e).__name__}")
                try:
                    bbolt.page_types(pf)
                except FreelistError as e:
                    refused.append(f"{how} page_types: {type(e).__name__}")
        except FreelistError as e:
            refused.append(f"{how} open: {type(e).__name__}")
        try:
            with PageFile.open(path, freelist=kind, reachable=walker, freelist_format=fmt) as pf:
                _transactions(pf, o, r, tree_kept=tree_kept)
        except FreelistError as e:
            refused.append(f"{how} write: {type(e).__name__}")
    return refused


@pytest.mark.parametrize(("source", "kind", "seed"), list(_case_ids()))
def test_damaged_file(
    sources: dict[str, Path], tmp_path: Path, source: str, kind: str, seed: int
) -> None:
    o = _ORIGINALS.get(source) or _ORIGINALS.setdefault(source, _original(sources[source]))
    r = random.Random(f"{source}/{kind}/{seed}")
    buf = Damaged(o.data)
    what = ALL_KINDS[kind](o, r, buf)
    path = tmp_path / "damaged.db"
    path.write_bytes(bytes(buf))
    if buf.sparse_to:
        os.truncate(path, buf.sparse_to)
    with watchdog(CASE_SECONDS, f"{source}/{kind}/{seed} ({what})"):
        try:
            _run_case(path, o, r, tree_kept=kind in TREE_KEPT)
        except LivePageHandedOutError as e:
            raise LivePageHandedOutError(f"{what}: {e}") from None
        except LostCommitError as e:
            raise LostCommitError(f"{what}: {e}") from None


_ORIGINALS: dict[str, Original] = {}


def test_the_undamaged_sources_are_sound(sources: dict[str, Path], tmp_path: Path) -> None:
    # The baseline: every source opens, checks clean with the walk, and the
    # campaign's live sets agree with PageFile's free pages.
    for name, src in sources.items():
        path = tmp_path / f"{name}.db"
        shutil.copyfile(src, path)
        o = _original(path)
        with PageFile.open(path, readonly=True, reachable=bbolt.reachable) as pf:
            assert pf.check(bbolt.reachable) == [], name
            state = _state_of(o, pf.meta)
            assert state is not None
            free = set(pf.freelist.all_page_ids())
            assert not free & state.live, name
        refused = _run_case(path, o, random.Random(name))
        if o.newest().meta.freelist == NO_FREELIST:  # needs the walk to open
            assert refused == ["plain open: ReachabilityError", "plain write: ReachabilityError"]
        else:
            assert refused == [], name


def test_the_log_sources_have_chains(sources: dict[str, Path]) -> None:
    # Each log source's newest meta names a chain of a checkpoint and record
    # runs, its newest run covering several commits, so the log kinds have
    # records and a checkpoint to damage.
    # The "logsealed" source's chain has sealed record runs behind its tail.
    names = [n for n in SOURCES if n in sources and "-log" in n]
    assert len(names) == 5
    for name in names:
        new = _original(sources[name]).newest()
        kinds = [run.kind for run in new.chain]
        assert kinds[-1] == freelog.CHECKPOINT, name
        assert kinds[0] == freelog.RECORDS, name
        assert len(new.chain[0].payload) // freelog.RECORD.size >= 8, name
        if "logsealed" in name:
            assert kinds.count(freelog.RECORDS) >= 3, name
