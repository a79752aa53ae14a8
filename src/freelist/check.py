"""The page file's consistency check (bbolt's ``tx_check.go``), and the page
bitmap it shares with the open path's rebuild of free pages from a walk.

Memory: one bit per page below the high-water mark (:class:`Bitmap`), plus the
freelist's own ids; never a byte or an object per page.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from itertools import pairwise

from . import meta as metas
from . import persist
from ._fileio import FileIO
from .errors import FreelistError, PageFileTypeError, ReachabilityError
from .layout import Meta
from .protocol import Freelist

__all__ = ["Bitmap", "check", "mark_reachable"]

_CLEAR = re.compile(rb"[^\xff]")

#: byte b of a bitmap -> the 8 bytes of its pages in a byte map (1: clear).
_SPREAD = [bytes(1 - (b >> j & 1) for j in range(8)) for b in range(256)]
_SPREAD_CHUNK = 1 << 16


class Bitmap:
    """One bit per page ``0 .. n-1`` (bits past ``n`` read as set)."""

    def __init__(self, n: int) -> None:
        """All clear.

        Runtime complexity: O(n / 8).
        """
        self.n = n
        self.bits = bytearray((n + 7) >> 3)
        if n & 7:
            self.bits[-1] = 0xFF & ~((1 << (n & 7)) - 1)

    def _masks(self, start: int, k: int) -> tuple[int, int, int, int]:
        end = start + k - 1
        a, b = start >> 3, end >> 3
        if a == b:
            return a, b, ((1 << k) - 1) << (start & 7), 0
        return a, b, (0xFF << (start & 7)) & 0xFF, 0xFF >> (7 - (end & 7))

    def any(self, start: int, k: int) -> bool:
        """Whether any page of ``start .. start+k-1`` is set.

        Runtime complexity: O(k / 8).
        """
        a, b, head, tail = self._masks(start, k)
        bits = self.bits
        if a == b:
            return bool(bits[a] & head)
        return bool(bits[a] & head or bits[b] & tail or bits.count(0, a + 1, b) != b - a - 1)

    def set(self, start: int, k: int = 1) -> None:
        """Set pages ``start .. start+k-1``.

        Runtime complexity: O(k / 8).
        """
        a, b, head, tail = self._masks(start, k)
        bits = self.bits
        bits[a] |= head
        if a != b:
            bits[a + 1 : b] = b"\xff" * (b - a - 1)
            bits[b] |= tail

    def clear_count(self) -> int:
        """How many pages below ``n`` are clear.

        Runtime complexity: O(n / 8).
        """
        return len(self.bits) * 8 - int.from_bytes(self.bits, "little").bit_count()

    def clear_map(self) -> bytearray:
        """The clear pages as a byte map: byte ``p`` is 1 iff page ``p`` is
        clear, for pages ``0 .. n-1`` (eight bytes a bitmap byte, from a
        table, in C).

        Runtime complexity: O(n).
        """
        out = bytearray()
        bits = self.bits
        for lo in range(0, len(bits), _SPREAD_CHUNK):  # no list of a reference a byte
            out += b"".join(map(_SPREAD.__getitem__, bits[lo : lo + _SPREAD_CHUNK]))
        del out[self.n :]
        return out

    def clear(self) -> Iterator[int]:
        """The clear pages, in order.

        Runtime complexity: O(n / 8) to scan, plus O(1) per page yielded.
        """
        bits = self.bits
        for m in _CLEAR.finditer(bits):
            i = m.start()
            byte = bits[i]
            for j in range(8):
                if not byte >> j & 1:
                    yield (i << 3) | j


def mark_reachable(
    io: FileIO, walk: Callable[[], object], hwm: int, problems: list[str] | None
) -> Bitmap:
    """A bitmap of the metas and every page ``walk()`` names.

    A run outside ``[2, hwm)`` or an item that is not a pair of ints raises
    :class:`~freelist.ReachabilityError`, or, when ``problems`` is a list, is
    reported there with runs reached twice.  A walk that raises anything but a
    library error is a ReachabilityError too (the cause chained).

    Runtime complexity: O(hwm / 8 + R) for R runs, plus the walk.
    """
    used = Bitmap(hwm)
    used.set(0, 2)
    try:
        result = walk()
        try:
            items: Iterable[object] = iter(result)  # type: ignore[call-overload]
        except TypeError:
            raise io.error(
                ReachabilityError,
                f"the walk returned {type(result).__name__}, not (start, n) runs",
            ) from None
        for item in items:
            _mark(io, used, item, hwm, problems)
    except FreelistError:
        raise
    except Exception as e:
        raise io.error(ReachabilityError, f"the walk failed: {type(e).__name__}: {e}") from e
    return used


def _mark(io: FileIO, used: Bitmap, item: object, hwm: int, problems: list[str] | None) -> None:
    """Set the run ``item`` names, or report (or raise) what is wrong with it."""
    first: object
    count: object
    try:
        first, count = item  # type: ignore[misc]
        start = first if type(first) is int else _index(first)
        n = count if type(count) is int else _index(count)
    except (TypeError, ValueError):
        msg = f"the walk yielded {item!r}, not a (start, n) pair of ints"
        if problems is None:
            raise io.error(ReachabilityError, msg) from None
        problems.append(msg)
        return
    if start < 2 or n < 1 or start + n > hwm:
        msg = f"the walk names pages {start}+{n} outside [2, {hwm})"
        if problems is None:
            raise io.error(ReachabilityError, msg)
        problems.append(msg)
        return
    if problems is not None and used.any(start, n):
        problems.append(f"pages {start}+{n} are reached twice (or are meta pages)")
    used.set(start, n)


def _index(value: object) -> int:
    """``value.__index__()`` when it is an int (not a bool); else TypeError."""
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        raise TypeError
    out = type(value).__index__(value)  # type: ignore[attr-defined]
    if type(out) is not int:
        raise TypeError
    return out


def check(
    io: FileIO,
    meta: Meta,
    fl: Freelist,
    *,
    compare_memory: bool,
    walk: Callable[[], object] | None,
) -> list[str]:
    """What is wrong with the file at ``meta`` (see :meth:`PageFile.check
    <freelist.PageFile.check>`); ``compare_memory``: compare the stored
    freelist with ``fl`` (no writer has changed it).

    :raises FileIOError: the file cannot be read.

    Runtime complexity: O(hwm / 8 + F) with a walk (plus the walk), O(F) otherwise.
    """
    problems = metas.problems(io, meta.page_size)
    hwm = meta.hwm
    if meta.root and not 2 <= meta.root < hwm:
        problems.append(f"root page {meta.root} outside [2, {hwm})")
    stored = persist.reading(meta).read(io, meta)
    problems += stored.errors + stored.warnings
    free = fl.all_page_ids()
    if stored.ids is not None and compare_memory and sorted(set(stored.ids)) != free:
        problems.append("the stored freelist differs from the free and pending pages in memory")
    if free and (free[0] < 2 or free[-1] >= hwm):
        problems.append(f"free or pending pages outside [2, {hwm})")
    if walk is None:
        return problems
    used = mark_reachable(io, walk, hwm, problems)
    for start, n in stored.owned:
        if used.any(start, n):
            problems.append(f"the freelist's pages {start}+{n} are also reachable")
        used.set(start, n)
    for start, end in _spans(free):  # a run at a time; page by page only where one overlaps
        lo, hi = max(start, 2), min(end, hwm)
        if lo >= hi:
            continue
        if used.any(lo, hi - lo):
            problems.extend(
                f"page {p} is both reachable and free" for p in range(lo, hi) if used.any(p, 1)
            )
        used.set(lo, hi - lo)
    lost = used.clear_count()
    if lost:
        first = [p for p, _ in zip(used.clear(), range(5), strict=False)]
        problems.append(f"{lost} page(s) neither reachable nor free, first {first}")
    return problems


def _spans(ids: list[int]) -> Iterator[tuple[int, int]]:
    """``[start, end)`` of each run of consecutive ids in the sorted ``ids``
    (a repeated id starts a run of its own).

    Runtime complexity: O(len(ids)), one comparison a pair in a comprehension.
    """
    if not ids:
        return
    cuts = [i for i, (a, b) in enumerate(pairwise(ids), 1) if b != a + 1]
    first = 0
    for cut in cuts:
        yield ids[first], ids[cut - 1] + 1
        first = cut
    yield ids[first], ids[-1] + 1


def require_walk(io: FileIO, reachable: object) -> None:
    """Refuse a ``reachable`` that is not callable.

    :raises PageFileTypeError: not callable.

    Runtime complexity: O(1).
    """
    if reachable is not None and not callable(reachable):
        raise io.error(
            PageFileTypeError, f"reachable must be a callable, not {type(reachable).__name__}"
        )
