"""A small writer of bbolt's on-disk layout, for tests and benchmarks.

It writes exactly the pages it is given (meta pages, an optional freelist page,
branch and leaf pages built by the helpers below) into a sparse file of
``hwm`` pages, so a file of several GiB costs only the blocks of the pages
written.  It is a test tool: it checks nothing, so it can write damaged and
hostile trees too.
"""

from __future__ import annotations

import signal
import struct
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from freelist.layout import (
    BRANCH_PAGE,
    LEAF_PAGE,
    NO_FREELIST,
    Meta,
    pack_freelist_page,
)

HEADER = struct.Struct("<QHHI")
ELEM = struct.Struct("<IIII")
BRANCH_ELEM = struct.Struct("<IIQ")
BUCKET = struct.Struct("<QQ")
BUCKET_FLAG = 0x01


def leaf_body(items: Iterable[tuple[int, bytes, bytes]], pgid: int = 0) -> bytes:
    """A leaf page's bytes (header, elements, keys and values), unpadded.

    ``items`` are ``(flags, key, value)``; flag 0x01 marks a bucket value.
    """
    items = list(items)
    head = HEADER.pack(pgid, LEAF_PAGE, len(items), 0)
    elems = bytearray()
    data = bytearray()
    base = HEADER.size + ELEM.size * len(items)
    for i, (flags, key, value) in enumerate(items):
        elem_off = HEADER.size + ELEM.size * i
        pos = base + len(data) - elem_off
        elems += ELEM.pack(flags, pos, len(key), len(value))
        data += key + value
    return head + bytes(elems) + bytes(data)


def bucket(root: int, inline: bytes = b"") -> bytes:
    """A bucket value: its root page, or root 0 and an inline leaf page."""
    return BUCKET.pack(root, 0) + inline


def branch_body(children: Iterable[tuple[bytes, int]], pgid: int = 0) -> bytes:
    """A branch page's bytes: ``(key, child pgid)`` elements, unpadded."""
    children = list(children)
    head = HEADER.pack(pgid, BRANCH_PAGE, len(children), 0)
    elems = bytearray()
    keys = bytearray()
    base = HEADER.size + BRANCH_ELEM.size * len(children)
    for i, (key, child) in enumerate(children):
        pos = base + len(keys) - BRANCH_ELEM.size * i - HEADER.size
        elems += BRANCH_ELEM.pack(pos, len(key), child)
        keys += key
    return head + bytes(elems) + bytes(keys)


def page(body: bytes, pgid: int, page_size: int) -> bytes:
    """``body`` as page ``pgid``: the header's id and overflow set, padded to whole pages."""
    pages = max(1, -(-len(body) // page_size))
    _id, flags, count, _ov = HEADER.unpack_from(body)
    return (HEADER.pack(pgid, flags, count, pages - 1) + body[HEADER.size :]).ljust(
        pages * page_size, b"\0"
    )


def write_file(
    path: Path,
    page_size: int,
    hwm: int,
    pages: Mapping[int, bytes] | Iterable[tuple[int, bytes]],
    *,
    root: int,
    freelist: int | None = None,
    free_ids: Iterable[int] = (),
    txid: int = 3,
) -> None:
    """Write a bbolt file: two valid metas (``txid`` and ``txid - 1``), the
    given pages (already padded, see :func:`page`), a freelist page at
    ``freelist`` holding ``free_ids`` (``None``: not synced), sparse up to
    ``hwm`` pages."""
    fl = NO_FREELIST if freelist is None else freelist
    items = pages.items() if isinstance(pages, Mapping) else pages
    with open(path, "wb") as f:
        f.truncate(hwm * page_size)
        for t in (txid - 1, txid):
            meta = Meta(page_size=page_size, root=root, freelist=fl, hwm=hwm, txid=t)
            f.seek((t % 2) * page_size)
            f.write(meta.pack_page(page_size))
        if freelist is not None:
            f.seek(freelist * page_size)
            f.write(pack_freelist_page(freelist, list(free_ids), page_size))
        for pgid, data in items:
            f.seek(pgid * page_size)
            f.write(data)


def shared_inline_chain(levels: int) -> bytes:
    """A leaf page body whose one bucket holds an inline bucket of two elements
    that both name the same inline bucket, ``levels`` deep: a walk that does
    not notice the sharing visits 2**levels inline pages."""
    inner = leaf_body([])  # the deepest inline page: no elements
    for _ in range(levels):
        # header, two elements, then one value both elements name.
        value = bucket(0, inner)
        head = HEADER.pack(0, LEAF_PAGE, 2, 0)
        v_off = HEADER.size + 2 * ELEM.size
        e0 = ELEM.pack(BUCKET_FLAG, v_off - HEADER.size, 0, len(value))
        e1 = ELEM.pack(BUCKET_FLAG, v_off - HEADER.size - ELEM.size, 0, len(value))
        inner = head + e0 + e1 + value
    return leaf_body([(BUCKET_FLAG, b"b", bucket(0, inner))])


def nested_inline_chain(levels: int) -> bytes:
    """A leaf page body: a bucket holding an inline bucket holding an inline
    bucket... ``levels`` deep, nothing shared."""
    inner = leaf_body([(0, b"k", b"v")])
    for _ in range(levels - 1):
        inner = leaf_body([(BUCKET_FLAG, b"b", bucket(0, inner))])
    return leaf_body([(BUCKET_FLAG, b"b", bucket(0, inner))])


class WatchdogExpired(BaseException):
    """A block ran past its watchdog.  A BaseException, so that no
    ``except Exception`` (or ``except OSError``) on the way can swallow it."""


@contextmanager
def watchdog(seconds: float, what: str = "the case") -> Iterator[None]:
    """Fail with :class:`WatchdogExpired` when the block runs longer than
    ``seconds`` (SIGALRM; main thread only).  A bound against hangs, not a
    speed assertion."""

    def expire(_sig: int, _frame: object) -> None:
        raise WatchdogExpired(f"{what} ran longer than {seconds} s (hang?)")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def large_file(
    path: Path,
    *,
    page_size: int = 4096,
    leaves: int = 65536,
    gap: int = 16,
    fanout: int = 200,
    synced: bool = False,
) -> tuple[int, int]:
    """A sparse bbolt file: ``leaves`` leaf pages one every ``gap`` pages
    under a two-level branch tree (``fanout`` leaves a branch), every other
    page free.  Returns ``(hwm, free pages)``.  With ``synced`` the free
    pages are listed on a freelist page at the end of the file."""
    groups = [range(g, min(g + fanout, leaves)) for g in range(0, leaves, fanout)]
    key = b"k" * 8
    root_n = -(-(16 + 24 * len(groups)) // page_size)
    branch_n = -(-(16 + 24 * fanout) // page_size)
    branch_ids = [2 + root_n + branch_n * b for b in range(len(groups))]
    first_leaf = 2 + root_n + branch_n * len(groups)
    leaf_ids = [first_leaf + gap * i for i in range(leaves)]
    hwm = leaf_ids[-1] + 1
    free = len(range(first_leaf, hwm)) - leaves
    freelist = None
    if synced:
        freelist = hwm
        hwm += -(-(16 + 8 * (free + 1)) // page_size)
    leaf_page = page(leaf_body([(0, b"k", b"v")]), 0, page_size)

    def free_ids() -> Iterator[int]:
        for p in leaf_ids[:-1]:
            yield from range(p + 1, p + gap)

    def pages() -> Iterator[tuple[int, bytes]]:
        root = [(key, b) for b in branch_ids]
        yield 2, page(branch_body(root), 2, page_size)
        for b, group in zip(branch_ids, groups, strict=True):
            yield b, page(branch_body([(key, leaf_ids[i]) for i in group]), b, page_size)
        for p in leaf_ids:
            yield p, HEADER.pack(p, LEAF_PAGE, 1, 0) + leaf_page[HEADER.size :]

    write_file(path, page_size, hwm, pages(), root=2, freelist=freelist, free_ids=free_ids())
    return hwm, free
