"""Your own allocator in a few lines: a first fit over a byte map of the pages.

:class:`freelist.BaseFreelist` keeps bbolt's transaction bookkeeping; this
class writes only the free set: ``bytearray`` byte p is 1 when page p is free,
and an allocation is one ``bytearray.find`` (the lowest run of n free pages).
Check it with ``assert_conforms(BitmapFreelist, choice="first-fit")``.
"""

from __future__ import annotations

from freelist import BaseFreelist


class BitmapFreelist(BaseFreelist):
    """First fit over a byte map: one byte per page id up to the largest free one."""

    def _load(self, ids: list[int]) -> None:
        self.bits = bytearray(ids[-1] + 1 if ids else 0)
        for p in ids:
            self.bits[p] = 1
        self.nfree = len(ids)

    def _take(self, n: int) -> int | None:
        start = self.bits.find(b"\x01" * n)
        if start < 0:
            return None
        self.bits[start : start + n] = bytes(n)
        self.nfree -= n
        return start

    def _give(self, start: int, n: int) -> None:
        self.bits.extend(bytes(max(0, start + n - len(self.bits))))
        self.bits[start : start + n] = b"\x01" * n
        self.nfree += n

    def _count(self) -> int:
        return self.nfree

    def _ids(self) -> list[int]:
        return [p for p, b in enumerate(self.bits) if b]
