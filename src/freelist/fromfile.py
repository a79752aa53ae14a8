"""Workloads that start from a real file: ``freelist compare --from FILE``.

:func:`trace_from_file` reads a page file's (or a bbolt database's) free pages
(its freelist page, or bbolt's tree walk when the freelist is not synced) and
generates a scenario's churn on top of them, so that replaying the trace on
each freelist answers "what would each freelist, and policy, cost on my
database?".
"""

from __future__ import annotations

from . import trace as _trace
from ._shared import runs_of
from .errors import TraceError
from .filetools import open_for_tools

__all__ = ["trace_from_file"]


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
    that are in use in the file).

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
    a synced freelist) plus O(S log S + txs) for S free runs.
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
    return _trace.generate_from(scenario, hwm, spans, txs, seed, name=name)
