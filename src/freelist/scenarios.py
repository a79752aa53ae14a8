"""Workload generators: traces of typical bbolt workloads, by scenario name."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .errors import TraceError
from .traceformat import MAX_TRACE_PAGES, Op, Trace

__all__ = ["SCENARIOS", "generate", "generate_from"]

#: The workload generators :func:`generate` knows.
SCENARIOS = ("seed", "mixed", "bulk-delete", "growth", "large-values")


@dataclass(slots=True)
class _Profile:
    """How one scenario draws its file and its transactions."""

    span_sizes: list[int]  # initial free run lengths to draw from
    span_weights: list[float]
    file_factor: int  # the file holds about file_factor * free pages
    allocs_per_tx: tuple[int, int]  # A lines per transaction, uniform
    alloc_size: Callable[[random.Random], int]
    frees_per_tx: tuple[int, int]  # D lines per transaction, uniform
    d_size: Callable[[random.Random], int]
    f_share: float  # chance per allocation that an earlier one is freed (F)


def _seed_alloc(r: random.Random) -> int:
    return 1 if r.random() < 0.9 else r.randint(2, 16)


def _d_small(r: random.Random) -> int:
    return 1 if r.random() < 0.92 else r.randint(2, 10)


_PROFILES: dict[str, _Profile] = {
    # The seed's case: 1- and 2-page runs in a file ~4x the free pages, then
    # copy-on-write churn freeing about as much as it allocates.  Matches the
    # statistics of the bbolt fidelity trace seed-2000 (about 3.5 allocations,
    # 1.8 F and 4.2 D lines per transaction, 89% one-page allocations).
    "seed": _Profile([1, 2], [0.6, 0.4], 4, (1, 6), _seed_alloc, (0, 8), _d_small, 0.5),
    # Runs of 1..20 pages (geometric, mean about 4), allocations of powers of two,
    # more freed than allocated (like the fidelity trace mixed-3000).
    "mixed": _Profile(
        list(range(1, 21)),
        [0.76**k for k in range(20)],
        4,
        (1, 6),
        lambda r: r.choice([1] * 14 + [2, 4, 8, 16, 32, 64]),
        (5, 25),
        _d_small,
        1.0,
    ),
    # Little free at first; the first transaction deletes a third of the file
    # (see generate), then allocations refill it.
    "bulk-delete": _Profile(
        [1, 2, 3], [0.5, 0.3, 0.2], 8, (3, 12), _seed_alloc, (0, 2), _d_small, 0.2
    ),
    # Steady growth: more allocated than freed.
    "growth": _Profile([1, 2], [0.7, 0.3], 4, (4, 10), _seed_alloc, (0, 3), _d_small, 0.2),
    # Large values: most allocations are long overflow runs.
    "large-values": _Profile(
        [1, 2, 4, 8, 16, 32],
        [1, 1, 1, 1, 1, 1],
        4,
        (1, 4),
        lambda r: 1 if r.random() < 0.4 else r.randint(4, 128),
        (0, 4),
        lambda r: r.randint(1, 16),
        0.9,
    ),
}


def generate(scenario: str, free_pages: int, txs: int, seed: int = 0) -> Trace:
    """Generate a trace of ``txs`` transactions over about ``free_pages`` free pages.

    Scenarios (:data:`SCENARIOS`):

    ``seed``
        the seed's case: 1- and 2-page free runs in a file about 4x the free
        pages; copy-on-write churn of mostly one-page allocations, about one in
        ten a 2..16-page overflow run, each transaction freeing about as much as
        it allocates (about 10 operations a transaction: 2,000 transactions make
        about 20,000 operations at every size);
    ``mixed``
        free runs of 1..20 pages, allocations of 1..64 pages (powers of two),
        more freed than allocated;
    ``bulk-delete``
        a file with little free space; the first transaction frees a third of
        it in runs of 1..64 pages, then allocations refill it;
    ``growth``
        more allocated than freed: the file grows steadily;
    ``large-values``
        most allocations are overflow runs of 4..128 pages.

    Pages freed by ``D`` come from the runs in use at the start; when those are
    all freed (a small file and many transactions), a ``D`` becomes an ``F`` of
    a random live allocation, so the mix of operations does not depend on the
    size.  The same arguments always give the same trace.

    :raises TraceError: unknown scenario, sizes below 1, or more free pages
        than :data:`~freelist.traceformat.MAX_TRACE_PAGES`.

    Runtime complexity: O(file pages / gap + txs) time and memory: the file is
    laid out as O(free_pages) runs.
    """
    prof = _PROFILES.get(scenario)
    if prof is None:
        raise TraceError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    if free_pages < 1 or txs < 1:
        raise TraceError("free pages and transactions must be at least 1")
    if free_pages > MAX_TRACE_PAGES:
        raise TraceError(f"at most {MAX_TRACE_PAGES:,} free pages, got {free_pages:,}")
    r = random.Random(f"{scenario}/{free_pages}/{txs}/{seed}")
    # Lay out the file: free runs separated by in-use gaps so the file is about
    # file_factor times the free pages.
    mean_run = sum(s * w for s, w in zip(prof.span_sizes, prof.span_weights, strict=True)) / sum(
        prof.span_weights
    )
    gap_max = max(1, round(2 * mean_run * (prof.file_factor - 1)) - 1)
    spans: list[tuple[int, int]] = []
    used: list[tuple[int, int]] = []  # in-use runs at the start, for D ops
    p = 2
    left = free_pages
    while left > 0:
        gap = r.randint(1, gap_max)
        used.append((p, gap))
        p += gap
        n = min(left, r.choices(prof.span_sizes, prof.span_weights)[0])
        spans.append((p, n))
        p += n
        left -= n
    tail = r.randint(1, gap_max)
    used.append((p, tail))
    hwm = p + tail
    ops = _churn(scenario, prof, r, hwm, used, txs=txs)
    return Trace(hwm, spans, ops, [0] * len(ops), f"<{scenario} trace>")


def _churn(
    scenario: str,
    prof: _Profile,
    r: random.Random,
    hwm: int,
    used: list[tuple[int, int]],
    *,
    txs: int,
) -> list[Op]:
    """The operations of ``txs`` transactions of ``scenario`` on a file with
    high-water mark ``hwm`` whose in-use runs are ``used`` (consumed by ``D``)."""
    ops: list[Op] = []
    live: list[int] = []  # allocation numbers not freed yet

    def free_live() -> None:
        j = r.randrange(len(live))
        ops.append(("F", live[j], 0))
        live[j] = live[-1]
        live.pop()

    def free_used(size: int) -> None:
        # Cut a run of at most `size` pages from the front of a random in-use
        # run; when none is left, free a live allocation instead.
        if not used:
            if live:
                free_live()
            return
        j = r.randrange(len(used))
        s, n = used[j]
        k = min(size, n)
        ops.append(("D", s, k))
        if k == n:
            used[j] = used[-1]
            used.pop()
        else:
            used[j] = (s + k, n - k)

    if scenario == "bulk-delete":
        target = (hwm - 2) // 3
        while target > 0 and used:
            free_used(r.randint(1, 64))
            target -= ops[-1][2]
        ops.append(("C", 0, 0))
    allocations = 0
    for _ in range(txs):
        for _ in range(r.randint(*prof.allocs_per_tx)):
            ops.append(("A", prof.alloc_size(r), 0))
            live.append(allocations)
            allocations += 1
            if r.random() < prof.f_share:
                free_live()
        for _ in range(r.randint(*prof.frees_per_tx)):
            free_used(prof.d_size(r))
        ops.append(("C", 0, 0))
    return ops


def generate_from(
    scenario: str,
    hwm: int,
    spans: Iterable[tuple[int, int]],
    txs: int,
    seed: int = 0,
    *,
    name: str = "",
) -> Trace:
    """Generate ``txs`` transactions of ``scenario`` churn on a given file: high-water
    mark ``hwm`` and initial free runs ``spans`` (a real file's, say).

    The operations are drawn as :func:`generate` draws them; ``D`` lines free
    pages of the runs in use at the start: every page of ``[2, hwm)`` outside
    ``spans``.  ``name`` names the trace in error messages.  The same arguments
    always give the same trace.

    :raises TraceError: unknown scenario, ``txs`` below 1, ``hwm`` below 2, or
        ``spans`` unsorted, overlapping, empty runs or outside ``[2, hwm)``.

    Runtime complexity: O(S log S + txs) for S runs.
    """
    prof = _PROFILES.get(scenario)
    if prof is None:
        raise TraceError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    if txs < 1:
        raise TraceError("transactions must be at least 1")
    if hwm < 2:
        raise TraceError(f"high-water mark {hwm} is below 2")
    try:
        runs = sorted((int(s), int(n)) for s, n in spans)
    except (TypeError, ValueError) as e:
        raise TraceError(f"free runs must be (start, length) pairs of ints: {e}") from None
    used: list[tuple[int, int]] = []
    p = 2
    for s, n in runs:
        if n < 1 or s < p or s + n > hwm:
            raise TraceError(
                f"free run {s}+{n} is empty, overlaps another or is outside [2, {hwm})"
            )
        if s > p:
            used.append((p, s - p))
        p = s + n
    if p < hwm:
        used.append((p, hwm - p))
    r = random.Random(f"{scenario}/from/{hwm}/{len(runs)}/{txs}/{seed}")
    ops = _churn(scenario, prof, r, hwm, used, txs=txs)
    return Trace(hwm, runs, ops, [0] * len(ops), name or f"<{scenario} trace>")
