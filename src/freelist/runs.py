"""Page ids and runs of pages: the helpers every freelist and file format shares.

A free set is a sorted list of unique page ids (at least 2: pages 0 and 1 are
the meta pages; at most :data:`MAX_ID`).  A run is ``(start, length)``: the
pages ``start .. start+length-1``.  :func:`validate_ids` checks a free set,
:func:`runs_of` groups one into maximal runs and :func:`run_chunks` does the
same a chunk at a time (no list of every run held at once).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator
from itertools import islice

from .errors import InvalidPageIdsError, InvalidTypeError

__all__ = ["MAX_ID", "RUN_CHUNK", "RunChunks", "run_chunks", "runs_of", "validate_ids"]

#: Largest transaction id or page id (ids are unsigned 64-bit on disk).
MAX_ID = (1 << 64) - 1


def _as_int(value: object, name: str) -> int:
    """Return ``value`` as an ``int`` or raise :class:`InvalidTypeError`.

    Accepts ``int`` and objects with ``__index__`` (such as NumPy integers),
    refuses ``bool``.
    """
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        raise InvalidTypeError(f"{name} must be an int, not {type(value).__name__}")
    return operator.index(value)  # type: ignore[arg-type]


def validate_ids(ids: Iterable[int]) -> list[int]:
    """Return ``ids`` as a new list after checking it is a valid free set.

    The ids must be ints, strictly ascending (sorted, no duplicates), at least 2
    and at most ``2**64-1``.

    :raises InvalidTypeError: an id is not an int.
    :raises InvalidPageIdsError: unsorted, duplicate, meta or too large ids.

    Runtime complexity: O(F), F the number of ids.
    """
    lst = list(ids)
    if not lst:
        return lst
    if set(map(type, lst)) != {int}:
        # Every odd one is checked: _as_int refuses bools and non-integers.
        lst = [x if type(x) is int else _as_int(x, "page id") for x in lst]
    if not all(map(operator.lt, lst, islice(lst, 1, None))):
        for i in range(1, len(lst)):
            if lst[i - 1] >= lst[i]:
                what = "duplicate" if lst[i - 1] == lst[i] else "unsorted"
                raise InvalidPageIdsError(
                    f"page ids must be sorted and unique: {what} id {lst[i]} at index {i}"
                )
    if lst[0] < 2:
        raise InvalidPageIdsError(f"page id {lst[0]} is a meta page (0 and 1 are never free)")
    if lst[-1] > MAX_ID:
        raise InvalidPageIdsError(f"page id {lst[-1]} is larger than 2**64-1")
    return lst


def runs_of(ids: Iterable[int]) -> list[tuple[int, int]]:
    """Group sorted, unique ids into maximal ``(start, length)`` runs.

    Runtime complexity: O(F).
    """
    return [run for starts, lens in run_chunks(ids) for run in zip(starts, lens, strict=True)]


#: Ids (or pages of a free map) grouped into runs per chunk: a chunk's lists
#: are short-lived, so a build from runs holds no list of every run.
RUN_CHUNK = 1 << 13

#: Runs in chunks: pairs of lists, the runs' starts and their lengths.
RunChunks = Iterable[tuple[list[int], list[int]]]


def run_chunks(ids: Iterable[int]) -> Iterator[tuple[list[int], list[int]]]:
    """Sorted, unique ids grouped into maximal runs, as chunks of two lists:
    the runs' starts and their lengths (what a freelist built from runs
    takes; one loop with two appends per run, no tuple per run).  A chunk
    covers up to :data:`RUN_CHUNK` ids; a run that goes on past them ends in
    a later chunk.

    Runtime complexity: O(F).
    """
    it = iter(ids)
    start = next(it, -1)
    if start < 0:
        return
    prev = start
    while True:
        block = list(islice(it, RUN_CHUNK))
        starts: list[int] = []
        lens: list[int] = []
        add_start, add_len = starts.append, lens.append
        for x in block:
            if x != prev + 1:
                add_start(start)
                add_len(prev - start + 1)
                start = x
            prev = x
        if not block:
            add_start(start)
            add_len(prev - start + 1)
            yield starts, lens
            return
        yield starts, lens
