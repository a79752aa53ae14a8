"""Deliberately broken variants of :class:`standalone_bitmap.StandaloneBitmap`.

Each class changes one method of the correct allocator to plant one kind of
bug that the conformance suite (:func:`freelist.testing.assert_conforms`) is
meant to catch.  ``BROKEN`` lists them with the kind of bug and the
allocation rule to check them under; ``measure_broken.py`` measures how
quickly the suite finds each one.
"""

from __future__ import annotations

from standalone_bitmap import MAX_ID, StandaloneBitmap

from freelist import DoubleFreeError, MetaPageError

__all__ = ["BROKEN"]


class DoubleHandOut(StandaloneBitmap):
    """``_take`` clears one page too few of a multi-page run: the last page
    stays free and is handed out again."""

    def _take(self, n: int) -> int:
        start = self._map.find(b"\x01" * n)
        if start < 0:
            return 0
        k = n - 1 if n > 1 else n
        self._map[start : start + k] = bytes(k)
        self._free -= k
        return start


class ReusePendingUnderReader(StandaloneBitmap):
    """``release_pending`` releases what was freed before the *newest* reader,
    not the oldest: an older reader can still see pages that are reused."""

    def release_pending(self) -> None:
        readers = sorted(self._readers)
        newest = readers[-1] if readers else MAX_ID
        if newest > 0:
            self.release(newest - 1)
        low = readers[0] if readers else MAX_ID
        for r in readers:
            if low < r:
                self.release_range(low, r - 1)
            low = r + 1
        self.release_range(low, MAX_ID)


class ReleaseTooMuch(StandaloneBitmap):
    """``release_range`` ignores which txid allocated a page: it frees every
    page freed inside the range, even one a reader before the range can see."""

    def release_range(self, begin: int, end: int) -> None:
        for t in [t for t in self._pending if begin <= t <= end]:
            self._release_runs(self._pending.pop(t))


class ReleaseTooLittle(StandaloneBitmap):
    """``release(txid)`` frees the pages pending for txids below ``txid``,
    forgetting those of ``txid`` itself."""

    def release(self, txid: int) -> None:
        for t in [t for t in self._pending if t < txid]:
            self._release_runs(self._pending.pop(t))


class RollbackLosesPages(StandaloneBitmap):
    """``rollback`` undoes the writer's frees but never gives back the pages
    it allocated: they leak."""

    def rollback(self, txid: int) -> None:
        self._undo = []
        super().rollback(txid)


class SpansSplitAtWords(StandaloneBitmap):
    """``free_spans`` scans the map in 32-page words and does not join a run
    that crosses a word boundary: the spans disagree with the free ids."""

    def free_spans(self) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for start, length in super().free_spans():
            s, n = start, length
            while n:
                k = min(n, 32 - s % 32)
                out.append((s, k))
                s, n = s + k, n - k
        return out


class PendingCountsRuns(StandaloneBitmap):
    """``pending_count`` counts pending runs instead of pages."""

    @property
    def pending_count(self) -> int:
        return sum(len(runs) for runs in self._pending.values())


class RefusedFreeKeepsPages(StandaloneBitmap):
    """``free`` makes pages pending one by one and stops at the first one
    already free or pending: the refused call leaves the pages before it
    pending."""

    def free(self, txid: int, start: int, n: int = 1) -> None:
        if start < 2:
            raise MetaPageError(f"page {start} is a meta page")
        alloc = self._records.pop(start, 0)
        for p in range(start, start + n):
            if p in self._pending_pages or self._is_free(p, 1):
                raise DoubleFreeError(f"page {p} is free or pending")
            self._pending.setdefault(txid, []).append((p, 1, alloc if p == start else 0))
            self._pending_pages.add(p)


class ExactFitFirst(StandaloneBitmap):
    """``allocate`` prefers the lowest run of exactly ``n`` pages, else takes
    the first fit: correct under ``choice="any"``, wrong under ``"first-fit"``."""

    def _take(self, n: int) -> int:
        exact = [s for s, k in self.free_spans() if k == n]
        if not exact:
            return super()._take(n)
        start = exact[0]
        self._map[start : start + n] = bytes(n)
        self._free -= n
        return start


#: Every broken variant: (class, the kind of bug, the rule to check it under).
BROKEN: list[tuple[type[StandaloneBitmap], str, str]] = [
    (DoubleHandOut, "a page handed out twice", "first-fit"),
    (ReusePendingUnderReader, "a pending page reused while a reader can see it", "first-fit"),
    (ReleaseTooMuch, "a release that frees too much", "first-fit"),
    (ReleaseTooLittle, "a release that frees too little", "first-fit"),
    (RollbackLosesPages, "a rollback that loses pages", "first-fit"),
    (SpansSplitAtWords, "views that disagree (spans vs free ids)", "first-fit"),
    (PendingCountsRuns, "views that disagree (counts)", "first-fit"),
    (RefusedFreeKeepsPages, "a refused call that changes state", "first-fit"),
    (ExactFitFirst, "the wrong run under first-fit", "first-fit"),
]
