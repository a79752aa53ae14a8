"""Replaying a trace on a freelist, and what the replay measured.

:func:`replay` runs a trace (:mod:`freelist.traceformat`) on a freelist; any
error the freelist raises is re-raised as a :class:`~freelist.TraceError`
naming the line, so nothing is applied silently past a bad line.

Replay semantics are bbolt's, so that :class:`~freelist.ArrayFreelist` gives
exactly bbolt's results: the freelist is built once from all ``S`` ids; the
first transaction id is 2; ``A`` calls ``allocate(txid, n)``; ``F``/``D`` free
the whole run as pending in the current txid; ``C`` releases every pending page
(no readers are open) and then increments the txid.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from . import registry
from .errors import FreelistError, InvalidArgumentError, TraceError
from .protocol import Freelist
from .traceformat import MAX_TRACE_PAGES, Op, Trace

__all__ = ["LoopTimes", "ReplayResult", "free_sha256", "make_freelist", "replay", "run_ops"]


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
    freelist and hashing the result are outside them.

    ``wall_ns`` is the replay timed by one clock reading before the loop and
    one after it, with nothing else in the loop: the figure to set beside
    another implementation timed the same way (bbolt's Go freelists, say).
    It comes from a run of its own on a second freelist, made only when
    asked (``replay(wall=True)``; ``None`` otherwise).

    For the split, the loop reads the clock
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
    wall_ns: int | None = None

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
    operation kind (all three 0 when the run was not split), allocations
    served by growing the file, and the final high-water mark."""

    total_ns: int
    alloc_ns: int
    free_ns: int
    commit_ns: int
    grown: int
    final_hwm: int


def _refused(trace: Trace, i: int, e: FreelistError) -> TraceError:
    line = trace.lines[i] if i < len(trace.lines) else 0
    where = f"{trace.name}:{line}" if line else f"{trace.name}, operation #{i}"
    return TraceError(f"{where}: {_op_text(trace.ops[i])}: {e}")


def run_ops(trace: Trace, fl: Freelist, *, sync: bool = False, split: bool = True) -> LoopTimes:
    """Apply the operations of ``trace`` to ``fl`` and time them (see :func:`replay`).

    This is the timed part of :func:`replay` alone, for callers that build the
    freelist themselves (a benchmark that keeps building out of its timing,
    say); ``fl`` must hold the trace's initial free ids and nothing pending.

    With ``split`` (the default) the loop reads the clock after every
    operation and charges the interval to the operation's kind.  Without it
    the loop reads the clock only before and after (``total_ns`` is then the
    whole loop and the three kinds are 0): the same operations in the same
    order, without the cost of a clock call per operation.

    :raises TraceError: naming the file and line of the operation the freelist
        refused; the replay stops there.

    Runtime complexity: the sum of the operations' costs (see :func:`replay`).
    """
    if not split:
        return _run_wall(trace, fl, sync=sync)
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
        raise _refused(trace, i, e) from e
    return LoopTimes(pc() - begin, alloc_ns, free_ns, commit_ns, grown, hwm)


def _run_wall(trace: Trace, fl: Freelist, *, sync: bool) -> LoopTimes:
    """:func:`run_ops` without ``split``: one clock reading before the loop, one after."""
    allocate = fl.allocate
    free = fl.free
    release = fl.release
    serialise = fl.page_id_array
    hwm = trace.hwm
    starts: list[int] = []
    sizes: list[int] = []
    grown = 0
    txid = 2
    i = 0
    ops = trace.ops
    pc = time.perf_counter_ns
    begin = pc()
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
            elif code == "F":
                free(txid, starts[a], sizes[a])
            elif code == "D":
                free(txid, a, b)
            else:
                if sync:
                    serialise()
                release(txid)
                txid += 1
    except FreelistError as e:
        raise _refused(trace, i, e) from e
    return LoopTimes(pc() - begin, 0, 0, 0, grown, hwm)


def replay(
    trace: Trace,
    freelist: str | Callable[[list[int]], Freelist] = "array",
    *,
    policy: str | None = None,
    sync: bool = False,
    wall: bool = False,
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

    With ``wall=True`` the trace is replayed a second time, on a second
    freelist from ``freelist`` (a factory must then build a new one on each
    call), timed as a whole: ``wall_ns`` is one clock reading before the loop
    and one after, nothing in between; without it ``wall_ns`` is ``None``.
    The state reported is the first run's.

    :raises TraceError: naming the file and line whose operation the freelist
        refused (a double free, for example); the replay stops there, and the
        refused operation changed nothing (every freelist check runs first).
        Also: more than :data:`~freelist.traceformat.MAX_TRACE_PAGES` initial
        free pages (checked before anything is built), or memory ran out.
    :raises InvalidArgumentError: unknown freelist kind or policy; with
        ``wall``, a factory that returned the same freelist twice.

    Runtime complexity: O(F) to build the freelist (the hashmap adds
    O(S log S)), then the sum of the operations' costs (per operation, array:
    O(F) for a multi-page allocation and each commit's merge; hashmap: O(1)
    expected, O(log S) for a split), plus O(F + P) per commit with ``sync``,
    and O(F log F) at the end to hash the free ids; the build and the operations
    twice with ``wall``.
    """
    initial = sum(n for _, n in trace.spans)
    if initial > MAX_TRACE_PAGES:
        raise TraceError(
            f"{trace.name}: {initial:,} initial free pages, more than the "
            f"{MAX_TRACE_PAGES:,} a replay may hold"
        )
    if isinstance(freelist, str):
        spec = registry.resolve(freelist, policy=policy)
        factory: Callable[[list[int]], Freelist] = spec.make
        kind = spec.kind
        pol: str | None = spec.policy
    else:
        factory = freelist
    try:
        fl = factory(trace.free_ids())
        if not isinstance(freelist, str):
            kind = type(fl).__name__
            pol = getattr(fl, "policy", None)
        loop = run_ops(trace, fl, sync=sync)
        wall_ns = None
        if wall:
            again = factory(trace.free_ids())
            if again is fl:
                raise InvalidArgumentError(
                    "replay(wall=True) needs a factory that builds a new freelist per call"
                )
            wall_ns = run_ops(trace, again, sync=sync, split=False).total_ns
            del again
    except MemoryError:
        raise TraceError(f"{trace.name}: not enough memory to replay this trace") from None
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
        wall_ns=wall_ns,
    )
