"""The trace format: parse, read and write allocation traces.

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
raises :class:`~freelist.TraceError` naming the line.

Limits: the high-water mark and every page id stay below ``2**64`` (bbolt's
u64 page ids), and a trace names at most :data:`MAX_TRACE_PAGES` pages in its
``S``, ``A`` and ``D`` lines together, the pages a replay may have to hold in
memory; :func:`parse` refuses a trace past either before anything is
allocated.  :func:`read` reads regular files only (a FIFO or a device would
block or never end).
"""

from __future__ import annotations

import io
import os
import stat
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from .errors import TraceError

__all__ = ["MAX_TRACE_PAGES", "Op", "Trace", "parse", "read"]

#: At most this many pages over a trace's ``S``, ``A`` and ``D`` lines together
#: (2**26, about 67 million: 256 GiB of 4 KiB pages).  A replay holds each such
#: page in its freelist as a Python int, so this bounds its memory to a few GiB.
MAX_TRACE_PAGES = 2**26

#: Page ids (and the high-water mark) are u64.
_PGID_LIMIT = 2**64

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


def _count(pages: int, n: int, where: str) -> int:
    total = pages + n
    if total > MAX_TRACE_PAGES:
        raise TraceError(
            f"{where}: the trace names more than {MAX_TRACE_PAGES:,} pages "
            "(in S, A and D lines), more than a replay may hold"
        )
    return total


def parse(lines: Iterable[str], *, name: str = "<trace>") -> Trace:
    """Parse a trace from text lines, checking everything that needs no replay.

    ``name`` (a file name) prefixes every error message and is kept in
    :attr:`Trace.name` so that replay errors can name the file too.

    :raises TraceError: naming the line: an unknown operation, a wrong number
        of fields, a missing or repeated ``H``, a high-water mark at or past
        ``2**64``, more than :data:`MAX_TRACE_PAGES` pages over the ``S``,
        ``A`` and ``D`` lines, an ``S`` out of order, overlapping
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
    pages = 0  # pages named by S, A and D lines: what a replay may hold
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
            if hwm >= _PGID_LIMIT:
                raise TraceError(f"{where}: high-water mark {hwm} is not below 2**64")
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
            pages = _count(pages, n, where)
            spans.append((s, n))
            span_starts.append(s)
            prev_end = s + n
        elif code == "A":
            (n,) = _ints(parts, 1, where)
            if n < 1:
                raise TraceError(f"{where}: cannot allocate {n} pages")
            pages = _count(pages, n, where)
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
            pages = _count(pages, n, where)
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

    Only a regular file is read: a FIFO, a socket or a device is refused before
    anything is read from it (a FIFO without a writer would block forever).

    :raises TraceError: the file cannot be read, is not a regular file, or
        does not parse.

    Runtime complexity: O(lines).
    """
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise TraceError(f"{path}: cannot read trace: {e.strerror or e}") from e
    except (TypeError, ValueError) as e:
        raise TraceError(f"{path!r}: not a file name: {e}") from e
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise TraceError(f"{path}: not a regular file, so not a trace")
        os.set_blocking(fd, True)
        f = open(fd, encoding="ascii", closefd=True)  # noqa: SIM115 - owns fd from here on
    except OSError as e:
        os.close(fd)
        raise TraceError(f"{path}: cannot read trace: {e.strerror or e}") from e
    try:
        with f:
            return parse(f, name=str(path))
    except OSError as e:
        raise TraceError(f"{path}: cannot read trace: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise TraceError(f"{path}: not a text trace ({e.reason})") from e
