"""bbolt's tree walk on a large sparse file: time and peak memory.

Run: ``python benchmarks/bench_bbolt_walk.py [--leaves 70000] [--gap 16] [--page-size 4096]``.

Builds (in a temporary directory, removed afterwards) a sparse bbolt file with
``leaves`` leaf pages, one every ``gap`` pages, under a two-level branch tree,
every other page free: the defaults give a 4.6 GiB file of about 1.12 million
pages, 1.05 million of them free, which only costs the disk blocks of the
70,000 tree pages.  The file is written twice: without a synced freelist (the
walk rebuilds the free pages on open) and with one (the walk only checks).

For each step it reports the median wall time of ``--rounds`` runs and, in a
separate run under tracemalloc, the peak of Python allocations; the process's
peak RSS (ru_maxrss) is printed at the end.  Steps: ``open`` (PageFile.open
with ``reachable=bbolt.reachable``: the walk plus building the freelist),
``walk`` (``bbolt.reachable(pf)``, its runs consumed as they come), ``page_types``, ``check``
(``pf.check(bbolt.reachable)``).
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.bboltfile import large_file

from freelist import PageFile, bbolt


def _timed(fn: Callable[[], object], traced: bool) -> tuple[float, int]:
    """Seconds one call of ``fn`` takes, and the tracemalloc peak during it (if ``traced``)."""
    gc.collect()
    if traced:
        tracemalloc.start()
    t = time.perf_counter()
    fn()
    secs = time.perf_counter() - t
    peak = 0
    if traced:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return secs, peak


def _measure(path: Path, step: str, rounds: int) -> tuple[float, int]:
    """Median seconds of ``rounds`` runs of ``step`` on the file ``path`` and the
    peak traced memory of one more (timing runs are not traced)."""
    fns: dict[str, Callable[[PageFile], object]] = {
        "walk": lambda pf: sum(n for _, n in bbolt.reachable(pf)),
        "page_types": bbolt.page_types,
        "check": lambda pf: pf.check(bbolt.reachable),
    }

    def run(traced: bool) -> tuple[float, int]:
        if step == "open":
            return _timed(
                lambda: PageFile.open(path, readonly=True, reachable=bbolt.reachable).close(),
                traced,
            )
        with PageFile.open(path, readonly=True, reachable=bbolt.reachable) as pf:
            return _timed(lambda: fns[step](pf), traced)

    secs = statistics.median(run(False)[0] for _ in range(rounds))
    return secs, run(True)[1]


def main() -> None:
    """Build the files, measure, print a table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--leaves", type=int, default=70000)
    ap.add_argument("--gap", type=int, default=16)
    ap.add_argument("--page-size", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for synced in (False, True):
            path = Path(tmp) / f"large-{'synced' if synced else 'nosync'}.db"
            t = time.perf_counter()
            hwm, free = large_file(
                path, page_size=args.page_size, leaves=args.leaves, gap=args.gap, synced=synced
            )
            built = time.perf_counter() - t
            size = hwm * args.page_size
            print(
                f"{path.name}: {size / 2**30:.2f} GiB, {hwm:,} pages, {free:,} free, "
                f"{args.leaves:,} leaves (built in {built:.1f} s)"
            )
            for step in ("open", "walk", "page_types", "check"):
                secs, peak = _measure(path, step, args.rounds)
                print(f"  {step:<11} {secs * 1000:9.0f} ms   peak {peak / 2**20:8.1f} MiB")
            path.unlink()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"process peak RSS: {rss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
