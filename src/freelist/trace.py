"""Allocation traces: one workload format for every tool.

A trace is plain text, one operation a line (``#`` starts a comment line)::

    H <hwm>            high-water mark: first page id past the end of the file
    S <start> <len>    an initial free run (sorted, disjoint, inside [2, hwm))
    A <n>              allocate n contiguous pages; when the freelist has none,
                       grow at hwm (result = hwm, hwm += n); allocations are
                       numbered 0, 1, 2, ... in order
    F <k>              free allocation #k (its whole run) in the current transaction
    D <start> <len>    free a run that was in use when the trace began
    C                  commit: every pending free becomes free, txid += 1

:func:`parse` checks everything it can without replaying (a malformed line, a
free of an unknown or already freed allocation, a run outside the file) and
raises :class:`~freelist.TraceError` naming the line.  :func:`replay` runs a
trace on a freelist; any error the freelist raises is re-raised as a
``TraceError`` naming the line, so nothing is applied silently past a bad line.

Replay semantics are bbolt's, so that :class:`~freelist.ArrayFreelist` gives
exactly bbolt's results: the freelist is built once from all ``S`` ids; the
first transaction id is 2; ``A`` calls ``allocate(txid, n)``; ``F``/``D`` free
the whole run as pending in the current txid; ``C`` releases every pending page
(no readers are open) and then increments the txid.
"""

from __future__ import annotations

import hashlib
import io
import random
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from . import registry
from .errors import FreelistError, TraceError
from .protocol import Freelist

__all__ = [
    "SCENARIOS",
    "LoopTimes",
    "ReplayResult",
    "Trace",
    "free_sha256",
    "generate",
    "make_freelist",
    "parse",
    "read",
    "replay",
    "run_ops",
]

#: The workload generators :func:`generate` knows.
SCENARIOS = ("seed", "mixed", "bulk-delete", "growth", "large-values")

# An operation: (code, a, b) with code one of "A", "F", "D", "C".
Op = tuple[str, int, int]


@dataclass(slots=True)
class Trace:
    """A parsed trace.

    ``spans`` are the initial free runs, ``ops`` the operations as
    ``(code, a, b)`` tuples, ``lines`` the source line of each operation
    (1-based; 0 for traces built in memory) and ``name`` where the trace came
    from (a file name, or ``<trace>``), used in error messages.
    """

    hwm: int
    spans: list[tuple[int, int]] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    name: str = "<trace>"

    def free_ids(self) -> list[int]:
        """The initial free page ids, sorted.

        Runtime complexity: O(F).
        """
        out: list[int] = []
        for s, n in self.spans:
            out.extend(range(s, s + n))
        return out

    def dumps(self) -> str:
        """The trace in its text format.

        Runtime complexity: O(S + ops).
        """
        buf = io.StringIO()
        self.write(buf)
        return buf.getvalue()

    def write(self, out: TextIO) -> None:
        """Write the trace in its text format to ``out``.

        Runtime complexity: O(S + ops).
        """
        out.write(f"H {self.hwm}\n")
        out.writelines(f"S {s} {n}\n" for s, n in self.spans)
        for code, a, b in self.ops:
            if code == "C":
                out.write("C\n")
            elif code == "D":
                out.write(f"D {a} {b}\n")
            else:
                out.write(f"{code} {a}\n")

    def save(self, path: str | Path) -> None:
        """Write the trace to the file ``path``.

        :raises TraceError: the file cannot be written.

        Runtime complexity: O(S + ops).
        """
        try:
            with open(path, "w", encoding="ascii") as f:
                self.write(f)
        except OSError as e:
            raise TraceError(f"{path}: cannot write trace: {e.strerror or e}") from e


def _ints(parts: list[str], count: int, where: str) -> list[int]:
    if len(parts) != count + 1:
        raise TraceError(f"{where}: '{parts[0]}' takes {count} number(s), got {len(parts) - 1}")
    try:
        values = [int(p) for p in parts[1:]]
    except ValueError:
        raise TraceError(f"{where}: not a whole number in {' '.join(parts)!r}") from None
    return values


def parse(lines: Iterable[str], *, name: str = "<trace>") -> Trace:
    """Parse a trace from text lines, checking everything that needs no replay.

    ``name`` (a file name) prefixes every error message and is kept in
    :attr:`Trace.name` so that replay errors can name the file too.

    :raises TraceError: naming the line: an unknown operation, a wrong number
        of fields, a missing or repeated ``H``, an ``S`` out of order, overlapping
        or outside ``[2, hwm)``, ``A`` with ``n < 1``, ``F`` of an allocation
        not made yet or already freed, ``D`` outside ``[2, hwm)``, overlapping
        an initial free run, or freeing a page an earlier ``D`` freed.

    Runtime complexity: O(lines + P + D log S): P pages named by ``D`` lines,
    each ``D`` checked against the S initial runs by bisection.
    """
    hwm = -1
    spans: list[tuple[int, int]] = []
    ops: list[Op] = []
    where_of: list[int] = []
    allocations = 0
    freed: set[int] = set()
    deleted: set[int] = set()  # pages freed by D lines
    span_starts: list[int] = []
    prev_end = 2
    lineno = 0
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        code = parts[0]
        where = f"{name}:{lineno}"
        if code == "H":
            if hwm >= 0:
                raise TraceError(f"{where}: a second 'H' line")
            (hwm,) = _ints(parts, 1, where)
            if hwm < 2:
                raise TraceError(f"{where}: high-water mark {hwm} is below 2")
            continue
        if hwm < 0:
            raise TraceError(f"{where}: the trace must start with 'H <hwm>'")
        if code == "S":
            s, n = _ints(parts, 2, where)
            if ops:
                raise TraceError(f"{where}: 'S' after the first operation")
            if n < 1:
                raise TraceError(f"{where}: run length {n} is below 1")
            if s < prev_end:
                raise TraceError(f"{where}: run {s}+{n} is out of order or overlaps the last")
            if s + n > hwm:
                raise TraceError(f"{where}: run {s}+{n} passes the high-water mark {hwm}")
            spans.append((s, n))
            span_starts.append(s)
            prev_end = s + n
        elif code == "A":
            (n,) = _ints(parts, 1, where)
            if n < 1:
                raise TraceError(f"{where}: cannot allocate {n} pages")
            ops.append(("A", n, 0))
            where_of.append(lineno)
            allocations += 1
        elif code == "F":
            (k,) = _ints(parts, 1, where)
            if not 0 <= k < allocations:
                raise TraceError(f"{where}: allocation #{k} does not exist yet")
            if k in freed:
                raise TraceError(f"{where}: allocation #{k} is already freed")
            freed.add(k)
            ops.append(("F", k, 0))
            where_of.append(lineno)
        elif code == "D":
            s, n = _ints(parts, 2, where)
            if n < 1:
                raise TraceError(f"{where}: run length {n} is below 1")
            if s < 2 or s + n > hwm:
                raise TraceError(f"{where}: run {s}+{n} is outside the file [2, {hwm})")
            j = bisect_right(span_starts, s + n - 1) - 1  # last initial run starting in reach
            if j >= 0 and span_starts[j] + spans[j][1] > s:
                raise TraceError(
                    f"{where}: run {s}+{n} overlaps the initial free run "
                    f"{span_starts[j]}+{spans[j][1]} (D frees pages in use at the start)"
                )
            if n == 1:
                if s in deleted:
                    raise TraceError(f"{where}: page {s} was already freed by an earlier D")
                deleted.add(s)
            else:
                run = range(s, s + n)
                if not deleted.isdisjoint(run):
                    p = min(deleted.intersection(run))
                    raise TraceError(f"{where}: page {p} was already freed by an earlier D")
                deleted.update(run)
            ops.append(("D", s, n))
            where_of.append(lineno)
        elif code == "C":
            if len(parts) != 1:
                raise TraceError(f"{where}: 'C' takes no numbers")
            ops.append(("C", 0, 0))
            where_of.append(lineno)
        else:
            raise TraceError(f"{where}: unknown operation {code!r}")
    if hwm < 0:
        raise TraceError(f"{name}:{lineno}: no 'H' line")
    return Trace(hwm, spans, ops, where_of, name)


def read(path: str | Path) -> Trace:
    """Read and parse the trace file ``path``.

    :raises TraceError: the file cannot be read or does not parse.

    Runtime complexity: O(lines).
    """
    try:
        with open(path, encoding="ascii") as f:
            return parse(f, name=str(path))
    except OSError as e:
        raise TraceError(f"{path}: cannot read trace: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise TraceError(f"{path}: not a text trace ({e.reason})") from e


def free_sha256(ids: Iterable[int]) -> str:
    """SHA-256 of sorted page ids, each written in decimal and followed by a newline.

    Runtime complexity: O(F).
    """
    h = hashlib.sha256()
    h.update("".join(f"{i}\n" for i in ids).encode("ascii"))
    return h.hexdigest()


@dataclass(slots=True)
class ReplayResult:
    """What :func:`replay` measured and where the freelist ended up.

    ``type`` is ``"array"``, ``"hashmap"`` (or the class name of a freelist made
    by a factory), ``policy`` the hashmap's policy (``None`` for the array).

    Times are nanoseconds of the replay loop only: parsing, building the
    freelist and hashing the result are outside them.  The loop reads the clock
    once per operation (``time.perf_counter_ns``) and charges the interval since
    the previous reading to the operation's kind, so ``alloc_ns + free_ns +
    commit_ns`` is ``total_ns`` less one clock reading.  What an operation is
    charged includes the loop's own bookkeeping (unpacking the op, the branch,
    recording the allocation) and one clock call: together about 0.1 us an
    operation on a 2020s x86 core, measured by replaying with a freelist whose
    methods do nothing.

    ``grown`` counts allocations served by growing the file at the high-water
    mark, ``final_hwm`` is the high-water mark at the end, ``free_count``,
    ``spans`` and ``largest_span`` describe the final free set and
    ``free_sha256`` is :func:`free_sha256` of its sorted ids; ``free_tail`` is
    the length of the last free run when it ends at ``final_hwm`` (the free
    pages at the end of the file, which a file could shrink by), else 0.
    """

    type: str
    policy: str | None
    sync: bool
    ops: int
    total_ns: int
    alloc_ns: int
    free_ns: int
    commit_ns: int
    grown: int
    final_hwm: int
    free_count: int
    free_sha256: str
    spans: int
    largest_span: int
    free_tail: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready dict.

        Runtime complexity: O(1).
        """
        return asdict(self)


def make_freelist(kind: str, ids: Iterable[int] = (), *, policy: str | None = None) -> Freelist:
    """Build a freelist from a spec (see :mod:`freelist.registry`): ``"array"``,
    ``"hashmap"``, ``"hashmap:first-fit"``, an import path ``"pkg.mod:Name"``...

    ``policy`` applies to a registered name that names no policy itself.

    :raises InvalidArgumentError: unknown kind or policy.
    :raises InvalidTypeError: an id is not an int.
    :raises InvalidPageIdsError: the ids are unsorted, repeat or name a meta page.

    Runtime complexity: as the class's constructor, O(F) for the array and
    O(F + S log S) for the hashmap.
    """
    return registry.make(kind, ids, policy=policy)


def _op_text(op: Op) -> str:
    code, a, b = op
    if code == "C":
        return "C"
    return f"D {a} {b}" if code == "D" else f"{code} {a}"


@dataclass(frozen=True, slots=True)
class LoopTimes:
    """What :func:`run_ops` measured: nanoseconds of the loop in all and by
    operation kind, allocations served by growing the file, and the final
    high-water mark."""

    total_ns: int
    alloc_ns: int
    free_ns: int
    commit_ns: int
    grown: int
    final_hwm: int


def run_ops(trace: Trace, fl: Freelist, *, sync: bool = False) -> LoopTimes:
    """Apply the operations of ``trace`` to ``fl`` and time them (see :func:`replay`).

    This is the timed part of :func:`replay` alone, for callers that build the
    freelist themselves (a benchmark that keeps building out of its timing,
    say); ``fl`` must hold the trace's initial free ids and nothing pending.

    :raises TraceError: naming the file and line of the operation the freelist
        refused; the replay stops there.

    Runtime complexity: the sum of the operations' costs (see :func:`replay`).
    """
    allocate = fl.allocate
    free = fl.free
    release = fl.release
    serialise = fl.page_id_array
    hwm = trace.hwm
    starts: list[int] = []
    sizes: list[int] = []
    grown = 0
    txid = 2
    alloc_ns = free_ns = commit_ns = 0
    pc = time.perf_counter_ns
    i = 0
    ops = trace.ops
    begin = t = pc()
    try:
        for i, (code, a, b) in enumerate(ops):  # noqa: B007 - i names the failing line
            if code == "A":
                s = allocate(txid, a)
                if not s:
                    s = hwm
                    hwm += a
                    grown += 1
                starts.append(s)
                sizes.append(a)
                now = pc()
                alloc_ns += now - t
            elif code == "F":
                free(txid, starts[a], sizes[a])
                now = pc()
                free_ns += now - t
            elif code == "D":
                free(txid, a, b)
                now = pc()
                free_ns += now - t
            else:
                if sync:
                    serialise()
                release(txid)
                txid += 1
                now = pc()
                commit_ns += now - t
            t = now
    except FreelistError as e:
        line = trace.lines[i] if i < len(trace.lines) else 0
        where = f"{trace.name}:{line}" if line else f"{trace.name}, operation #{i}"
        raise TraceError(f"{where}: {_op_text(ops[i])}: {e}") from e
    return LoopTimes(pc() - begin, alloc_ns, free_ns, commit_ns, grown, hwm)


def replay(
    trace: Trace,
    freelist: str | Callable[[list[int]], Freelist] = "array",
    *,
    policy: str | None = None,
    sync: bool = False,
) -> ReplayResult:
    """Replay ``trace`` on a new freelist and measure it.

    ``freelist`` is a freelist spec (:mod:`freelist.registry`: ``"array"``,
    ``"hashmap"``, ``"hashmap:POLICY"``, ``"package.module:Name"``; ``policy``
    applies to a registered name that names none) or a factory called with the
    initial free ids (sorted).  The replay follows
    bbolt: the first transaction id is 2; ``A n`` calls ``allocate(txid, n)``
    and grows the file at the high-water mark when it returns 0; ``F k`` and
    ``D s n`` free the whole run, pending in the current transaction; ``C``
    calls ``release(txid)`` (no reader is open) and then increments the txid.

    With ``sync=True`` every commit first builds the sorted array of free and
    pending ids (:meth:`~freelist.Freelist.page_id_array`), which is what bbolt
    writes to its freelist page when the transaction commits, before the next
    one releases the pending pages.  The freelist keeps that array up to date
    incrementally; the replay does not sort anything itself.

    :raises TraceError: naming the file and line whose operation the freelist
        refused (a double free, for example); the replay stops there, and the
        refused operation changed nothing (every freelist check runs first).
    :raises InvalidArgumentError: unknown freelist kind or policy.

    Runtime complexity: O(F) to build the freelist (the hashmap adds
    O(S log S)), then the sum of the operations' costs (per operation, array:
    O(F) for a multi-page allocation and each commit's merge; hashmap: O(1)
    expected, O(log S) for a split), plus O(F + P) per commit with ``sync``,
    and O(F log F) at the end to hash the free ids.
    """
    ids = trace.free_ids()
    if isinstance(freelist, str):
        spec = registry.resolve(freelist, policy=policy)
        fl: Freelist = spec.make(ids)
        kind = spec.kind
        pol: str | None = spec.policy
    else:
        fl = freelist(ids)
        kind = type(fl).__name__
        pol = getattr(fl, "policy", None)
    loop = run_ops(trace, fl, sync=sync)
    final = fl.free_page_ids()
    spans = fl.free_spans()
    return ReplayResult(
        type=kind,
        policy=pol,
        sync=sync,
        ops=len(trace.ops),
        **asdict(loop),
        free_count=len(final),
        free_sha256=free_sha256(final),
        spans=len(spans),
        largest_span=max((n for _, n in spans), default=0),
        free_tail=spans[-1][1] if spans and sum(spans[-1]) == loop.final_hwm else 0,
    )


# --- generators -----------------------------------------------------------------


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

    :raises TraceError: unknown scenario, or sizes below 1.

    Runtime complexity: O(file pages / gap + txs) time and memory: the file is
    laid out as O(free_pages) runs.
    """
    prof = _PROFILES.get(scenario)
    if prof is None:
        raise TraceError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    if free_pages < 1 or txs < 1:
        raise TraceError("free pages and transactions must be at least 1")
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
    return Trace(hwm, spans, ops, [0] * len(ops), f"<{scenario} trace>")
