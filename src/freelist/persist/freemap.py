"""The free map: the free-or-pending set as a byte per page, which the log
replays its records onto and the freelist keeps as its page map."""

from __future__ import annotations

import itertools
import operator
import sys
from array import array
from collections.abc import Collection, Iterable, Iterator

from ..runs import RUN_CHUNK

__all__ = ["FREE_MAP_MIN", "FreeMap", "free_map_fits"]

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
        starts and their lengths (see :func:`~freelist.runs.run_chunks`).

        Each chunk of :data:`~freelist.runs.RUN_CHUNK` pages is read as one
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
