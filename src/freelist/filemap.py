"""A picture of a page file: where its pages are, by kind.

:class:`PageMap` counts the pages of a file by kind (meta, freelist, branch,
leaf, overflow, free, pending, unreachable, or in use when no tree walk tells
the kind) in *cells* of consecutive pages.  A file of up to ``max_cells`` pages
gets one cell a page; a larger one aggregates ``ceil(hwm / max_cells)`` pages a
cell, so the memory is bounded by ``max_cells`` whatever the file's size.
Each cell shows its majority kind.

:func:`draw` renders the map as a grid in page order (left to right, top to
bottom) with a histogram of free-run lengths beside it, to a PNG or SVG file.
It needs matplotlib (the ``plot`` extra), imported only when drawing.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping
from typing import Any

from .errors import FreelistError, InvalidArgumentError

__all__ = [
    "COLOURS",
    "KINDS",
    "MAX_CELLS",
    "PageMap",
    "check_plot_path",
    "draw",
    "grid_shape",
    "pyplot",
    "run_buckets",
]

#: The page kinds, in the order used for their codes (``KINDS.index(kind)``) and
#: to break ties in :meth:`PageMap.majority`.  ``used`` is a page in use whose
#: kind is unknown (no tree walk); ``unreachable`` is a page below the
#: high-water mark that is neither free nor reached by the walk (a leak).
KINDS = (
    "meta",
    "freelist",
    "branch",
    "leaf",
    "overflow",
    "free",
    "pending",
    "unreachable",
    "used",
)

#: The colour of each kind in the picture.
COLOURS: dict[str, str] = {
    "meta": "#000000",
    "freelist": "#984ea3",
    "branch": "#1f4e79",
    "leaf": "#6baed6",
    "overflow": "#fd8d3c",
    "free": "#74c476",
    "pending": "#fed976",
    "unreachable": "#e31a1c",
    "used": "#bcaa8e",
}

#: The colour of grid positions past the last page.
BACKGROUND = "#ffffff"

#: The most cells a map holds by default: a 256 x 256 grid.
MAX_CELLS = 256 * 256

_K = len(KINDS)


class PageMap:
    """Page counts by kind, in cells of ``per`` consecutive pages.

    ``hwm`` is the number of pages mapped (pages ``0 .. hwm - 1``).  Add runs
    with :meth:`add`, then give every page not added yet one kind with
    :meth:`fill`.

    :raises InvalidArgumentError: ``hwm`` below 0 or ``max_cells`` below 1 (or
        not ints).

    Runtime complexity: O(cells) time and memory to build.
    """

    __slots__ = ("_counts", "cells", "hwm", "per", "totals")

    def __init__(self, hwm: int, max_cells: int = MAX_CELLS) -> None:
        if type(hwm) is not int or hwm < 0:
            raise InvalidArgumentError(f"hwm must be an int >= 0, got {hwm!r}")
        if type(max_cells) is not int or max_cells < 1:
            raise InvalidArgumentError(f"max_cells must be an int >= 1, got {max_cells!r}")
        #: Pages per cell.
        self.per = max(1, -(-hwm // max_cells))
        #: Number of cells: ``ceil(hwm / per)``.
        self.cells = -(-hwm // self.per)
        self.hwm = hwm
        #: Pages of each kind in the whole map, by kind code.
        self.totals = [0] * _K
        self._counts = [array("q", bytes(8 * self.cells)) for _ in range(_K)]

    def cell_pages(self, cell: int) -> int:
        """The number of pages in ``cell`` (the last one may be short).

        Runtime complexity: O(1).
        """
        return min(self.per, self.hwm - cell * self.per)

    def add(self, start: int, n: int, kind: str) -> None:
        """Count pages ``start .. start + n - 1`` as ``kind``; the part outside
        ``[0, hwm)`` is ignored.  A page added twice counts twice (a corrupt
        file); :meth:`fill` never makes a cell's total negative.

        :raises InvalidArgumentError: ``kind`` is not one of :data:`KINDS`.

        Runtime complexity: O(1 + cells the run spans).
        """
        k = _code(kind)
        end = min(start + n, self.hwm)
        start = max(start, 0)
        if end <= start:
            return
        self.totals[k] += end - start
        counts = self._counts[k]
        per = self.per
        c0 = start // per
        c1 = (end - 1) // per
        if c0 == c1:
            counts[c0] += end - start
            return
        counts[c0] += (c0 + 1) * per - start
        for c in range(c0 + 1, c1):
            counts[c] += per
        counts[c1] += end - c1 * per

    def fill(self, kind: str) -> None:
        """Count every page not counted yet as ``kind``.

        :raises InvalidArgumentError: ``kind`` is not one of :data:`KINDS`.

        Runtime complexity: O(cells * kinds).
        """
        k = _code(kind)
        counts = self._counts
        target = counts[k]
        added = 0
        for c in range(self.cells):
            rest = self.cell_pages(c) - sum(counts[j][c] for j in range(_K))
            if rest > 0:
                target[c] += rest
                added += rest
        self.totals[k] += added

    def counts(self, cell: int) -> dict[str, int]:
        """The pages of each kind in ``cell`` (kinds with none left out).

        :raises InvalidArgumentError: ``cell`` outside ``[0, cells)``.

        Runtime complexity: O(kinds).
        """
        if type(cell) is not int or not 0 <= cell < self.cells:
            raise InvalidArgumentError(f"cell must be in [0, {self.cells}), got {cell!r}")
        return {KINDS[k]: self._counts[k][cell] for k in range(_K) if self._counts[k][cell]}

    def total(self) -> dict[str, int]:
        """Pages of each kind in the whole map (every kind, zeros included).

        Runtime complexity: O(kinds).
        """
        return dict(zip(KINDS, self.totals, strict=True))

    def majority(self) -> bytearray:
        """One byte per cell: the code (index in :data:`KINDS`) of the kind
        with the most pages in the cell; ties go to the kind listed first.  A
        cell with no page counted gets the code of ``used``.

        Runtime complexity: O(cells * kinds).
        """
        out = bytearray([KINDS.index("used")]) * self.cells
        counts = self._counts
        for c in range(self.cells):
            best = 0
            for k in range(_K):
                v = counts[k][c]
                if v > best:
                    best = v
                    out[c] = k
        return out


def _code(kind: str) -> int:
    try:
        return KINDS.index(kind)
    except ValueError:
        raise InvalidArgumentError(
            f"unknown page kind {kind!r}; choose from {', '.join(KINDS)}"
        ) from None


def grid_shape(cells: int) -> tuple[int, int]:
    """``(rows, cols)`` of the near-square grid that shows ``cells`` cells.

    Runtime complexity: O(1).
    """
    cols = max(1, math.isqrt(max(cells - 1, 0)) + 1)
    return max(1, -(-cells // cols)), cols


def run_buckets(run_lengths: Mapping[int, int]) -> list[tuple[str, int, int]]:
    """Group free runs by length into power-of-two buckets (1, 2-3, 4-7, ...).

    ``run_lengths`` maps a run length to the number of runs of that length.
    Returns ``(label, runs, pages)`` per bucket, up to the longest run's bucket.

    Runtime complexity: O(distinct lengths + log longest).
    """
    if not run_lengths:
        return []
    top = max(run_lengths).bit_length()
    runs = [0] * top
    pages = [0] * top
    for length, count in run_lengths.items():
        b = length.bit_length() - 1
        runs[b] += count
        pages[b] += count * length
    out = []
    for b in range(top):
        lo, hi = 1 << b, (2 << b) - 1
        out.append((str(lo) if lo == hi else f"{lo}-{hi}", runs[b], pages[b]))
    return out


def _hex_rgb(colour: str) -> tuple[float, float, float]:
    v = int(colour[1:], 16)
    return ((v >> 16) / 255, ((v >> 8) & 255) / 255, (v & 255) / 255)


def pyplot() -> Any:
    """Import matplotlib's pyplot, headless (the Agg backend).

    :raises FreelistError: matplotlib is not installed (the ``plot`` extra).

    Runtime complexity: O(1) after the first import.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise FreelistError("--plot needs matplotlib: pip install 'freelist[plot]'") from e
    return plt


def check_plot_path(path: str) -> None:
    """Fail early when ``path`` cannot take a picture: not ``.png``/``.svg``, no
    writable folder, or matplotlib missing.

    :raises FreelistError: saying which.

    Runtime complexity: O(1) (plus importing matplotlib once).
    """
    import os

    if not path.lower().endswith((".png", ".svg")):
        raise FreelistError(f"{path}: --plot writes .png or .svg files")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise FreelistError(f"{path}: cannot write the plot: no writable folder {folder}")
    pyplot()


def draw(
    pmap: PageMap,
    run_lengths: Mapping[int, int],
    path: str,
    *,
    title: str = "",
    page_size: int = 0,
) -> None:
    """Draw ``pmap`` as a grid of cells in page order, coloured by majority
    kind, with a histogram of free-run lengths (``run_lengths``: length ->
    runs) beside it, and save it to ``path`` (``.png`` or ``.svg``).

    :raises FreelistError: matplotlib is missing, the file name does not end in
        ``.png`` or ``.svg``, or the file cannot be written.

    Runtime complexity: O(cells * kinds + distinct run lengths).
    """
    check_plot_path(path)
    plt = pyplot()
    from matplotlib.patches import Patch

    rows, cols = grid_shape(pmap.cells)
    palette = [_hex_rgb(COLOURS[k]) for k in KINDS]
    background = _hex_rgb(BACKGROUND)
    codes = pmap.majority()
    image = [[background] * cols for _ in range(rows)]
    for c, code in enumerate(codes):
        image[c // cols][c % cols] = palette[code]

    fig, (ax, hx) = plt.subplots(
        1, 2, figsize=(11, 6.4), gridspec_kw={"width_ratios": [3, 1.5]}, layout="constrained"
    )
    try:
        ax.imshow(image, interpolation="nearest", aspect="equal")
        ax.set_xticks([])
        ticks = sorted({0, rows // 2, rows - 1})
        ax.set_yticks(ticks, [f"{r * cols * pmap.per:,}" for r in ticks])
        ax.set_ylabel("first page of the row")
        cell = "one page a cell" if pmap.per == 1 else f"{pmap.per:,} pages a cell (majority kind)"
        ax.set_title(f"{pmap.hwm:,} pages in page order, {cell}", fontsize=10)
        totals = pmap.total()
        handles = [
            Patch(facecolor=COLOURS[k], edgecolor="#555555", label=f"{k} {totals[k]:,}")
            for k in KINDS
            if totals[k]
        ]
        ax.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(0.0, -0.01),
            ncols=min(5, len(handles) or 1),
            fontsize=8,
            frameon=False,
        )

        buckets = run_buckets(run_lengths)
        if buckets:
            labels = [b[0] for b in buckets]
            hx.barh(range(len(buckets)), [b[2] for b in buckets], color=COLOURS["free"])
            hx.set_yticks(range(len(buckets)), labels, fontsize=8)
            hx.invert_yaxis()
            for i, (_label, runs, pages) in enumerate(buckets):
                if pages:
                    hx.text(
                        pages,
                        i,
                        f" {runs:,} run{'s' if runs != 1 else ''}",
                        va="center",
                        fontsize=7,
                    )
            hx.margins(x=0.3)
        else:
            hx.text(0.5, 0.5, "no free pages", ha="center", va="center")
            hx.set_yticks([])
        hx.set_xlabel("free pages in runs of this length")
        hx.set_ylabel("run length (pages)")
        hx.set_title("free runs", fontsize=10)
        if title:
            size = f", {page_size:,}-byte pages" if page_size else ""
            fig.suptitle(f"{title}{size}", fontsize=11)
        try:
            fig.savefig(path, dpi=110)
        except (OSError, ValueError) as e:
            raise FreelistError(f"{path}: cannot write the picture: {e}") from e
    finally:
        plt.close(fig)
