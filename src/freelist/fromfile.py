"""Workloads that start from a real file: ``freelist compare --from FILE``.

:func:`trace_from_file` reads a page file's (or a bbolt database's) free pages
(its freelist page, or bbolt's tree walk when the freelist is not synced) and
generates a scenario's churn on top of them, so that replaying the trace on
each freelist answers "what would each freelist, and policy, cost on my
database?".
"""

from __future__ import annotations

from dataclasses import dataclass

from . import trace as _trace
from .errors import TraceError
from .filetools import open_for_tools
from .runs import runs_of

__all__ = ["FileChurn", "churn_from_file", "trace_from_file"]

#: The share of a file's pages in use that a fitted churn frees at most.
FIT_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class FileChurn:
    """A churn on a real file (:func:`churn_from_file`): the trace and how much
    of the file it frees.

    ``asked`` transactions were asked for and ``txs`` are in the trace (fewer
    when the churn was fitted to the file); ``in_use`` pages of ``[2, hwm)``
    were in use in the file and the churn's ``D`` lines free ``freed`` of them.
    """

    trace: _trace.Trace
    txs: int
    asked: int
    in_use: int
    freed: int

    @property
    def emptied(self) -> bool:
        """Whether the churn frees every page the file had in use (after which
        it churns a file with nothing left to free but its own allocations)."""
        return self.in_use > 0 and self.freed >= self.in_use


def trace_from_file(
    path: str,
    scenario: str = "seed",
    txs: int = 2000,
    seed: int = 1,
    *,
    walk: str = "auto",
    timeout: float = 5.0,
    progress: bool = True,
    lock: bool = True,
) -> _trace.Trace:
    """A trace whose ``H`` is the file's high-water mark and whose ``S`` lines are
    its free runs, followed by ``txs`` transactions of ``scenario`` churn drawn
    as :func:`freelist.trace.generate_from` draws them (``D`` lines free pages
    that are in use in the file): :func:`churn_from_file` without fitting.

    :raises FreelistError: as :func:`churn_from_file`.
    :raises TraceError: as :func:`churn_from_file`.

    Runtime complexity: as :func:`churn_from_file`.
    """
    return churn_from_file(
        path,
        scenario,
        txs,
        seed,
        walk=walk,
        timeout=timeout,
        progress=progress,
        lock=lock,
        fit=False,
    ).trace


def _freed(trace: _trace.Trace) -> list[int]:
    """Pages the ``D`` lines free by the end of each transaction, cumulated."""
    out: list[int] = []
    total = 0
    for code, _a, b in trace.ops:
        if code == "D":
            total += b
        elif code == "C":
            out.append(total)
    return out


def churn_from_file(
    path: str,
    scenario: str = "seed",
    txs: int = 2000,
    seed: int = 1,
    *,
    walk: str = "auto",
    timeout: float = 5.0,
    progress: bool = True,
    lock: bool = True,
    fit: bool = True,
) -> FileChurn:
    """Up to ``txs`` transactions of ``scenario`` churn on the file at ``path``,
    starting from its free pages (see :func:`trace_from_file`), and how much of
    the file the churn frees.

    A long churn on a small file frees every page the file had in use, after
    which the replay measures a file with nothing left but its own churn.  With
    ``fit`` (the default) the churn is cut to as many transactions as free at
    most half (:data:`FIT_SHARE`) of the pages in use, and never more than
    ``txs``; without it, ``txs`` transactions are drawn and
    :attr:`FileChurn.emptied` says whether they empty the file.

    The file is opened read-only (a shared lock, waiting up to ``timeout``
    seconds; without ``lock``, a snapshot of it: see
    :func:`freelist.filetools.snapshot`).  ``walk`` is as for ``freelist
    inspect``: ``"auto"`` walks bbolt's tree when the freelist is not synced
    and the root looks like a bbolt tree page, ``"bbolt"`` always may,
    ``"none"`` never.  Pending pages (none in a file opened from disk: bbolt
    writes them as free) count as free.  The same file and arguments always
    give the same trace.  With ``progress``, a walk that lasts more than a
    moment shows a progress bar on stderr.

    :raises FreelistError: the file cannot be opened or read (its path in the
        message; :class:`~freelist.ReachabilityError` when the freelist is not
        synced and ``walk`` is ``"none"``).
    :raises TraceError: unknown scenario, or ``txs`` below 1.

    Runtime complexity: opening the file (O(F), or O(hwm) plus the walk without
    a synced freelist) plus O(S log S + txs) for S free runs per churn drawn
    (a fitted churn draws a few, each shorter than the last).
    """
    if scenario not in _trace.SCENARIOS:
        # fail before opening (and perhaps walking) the file
        _trace.generate_from(scenario, 2, [], 1)
    if type(txs) is not int or txs < 1:
        raise TraceError(f"transactions must be at least 1, got {txs!r}")
    pf, _walker = open_for_tools(path, walk, "hashmap", timeout, progress=progress, lock=lock)
    with pf:
        hwm = pf.meta.hwm
        spans = runs_of(pf.freelist.all_page_ids())
    name = f"<{scenario} churn on {path}>"
    in_use = hwm - 2 - sum(n for _, n in spans)
    limit = int(in_use * FIT_SHARE)
    n = txs
    while True:
        trace = _trace.generate_from(scenario, hwm, spans, n, seed, name=name)
        freed = _freed(trace)
        if not fit or n == 1 or freed[-1] <= limit:
            break
        # This draw's own prefix that stays under the limit; the next draw
        # (a different random sequence) is checked again.
        under = sum(1 for f in freed if f <= limit)
        n = max(1, min(n - 1, under))
    return FileChurn(trace, n, txs, in_use, freed[-1])
