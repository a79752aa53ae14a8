"""Page file measurements: commit cost and the seed scenario end to end.

Run: ``python benchmarks/bench_pagefile.py commit``,
``python benchmarks/bench_pagefile.py e2e [--sync] --free-pages 1000 100000 1000000`` and
``python benchmarks/bench_pagefile.py versus --baseline OLD/src [--no-fsync]``.

``commit``: a file with F free pages (runs of one and two pages in a file about
four times as large), then N small write transactions (allocate 5 pages, free
5 pages); reports the median commit time in ms and its shares: allocation
(freelist allocate for data and the freelist page), serialisation (the sorted
id array and packing it into the page) and I/O (pwrite and fdatasync).

``versus``: the median commit time of this tree and of another checkout's
``src`` (``--baseline``), side by side in one run: each measurement runs in its
own process through the public API only (so any version can be measured), the
two trees interleaved, alternating which goes first, over ``--rounds`` rounds;
reports the medians and their ratio.  ``--no-fsync`` stubs out ``fdatasync`` to
measure the CPU side of a commit, which the device's flush otherwise drowns.

``e2e``: the seed trace replayed through a PageFile: A allocates in the current
write transaction, F and D free, C commits and begins the next.  Trace page p
lives at file page p + 14 (pages 3..15 stay reserved).  Files are sparse, with
1 KiB pages, in a temporary directory removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from freelist import PageFile, Transaction, persist
from freelist._fileio import FileIO
from freelist.trace import Trace, generate

OFFSET = 14
PAGE = 1024


class Timers:
    """Accumulate the time spent in patched functions, by category."""

    def __init__(self) -> None:
        self.ns: dict[str, int] = {"alloc": 0, "serialise": 0, "io": 0}

    def wrap(self, owner: Any, name: str, cat: str) -> Callable[[], None]:
        orig = getattr(owner, name)

        def timed(*args: Any, **kw: Any) -> Any:
            t = time.perf_counter_ns()
            try:
                return orig(*args, **kw)
            finally:
                self.ns[cat] += time.perf_counter_ns() - t

        setattr(owner, name, timed)
        return lambda: setattr(owner, name, orig)


def build(path: Path, kind: str, trace: Trace, sync: bool) -> PageFile:
    """A file whose free pages are the trace's initial free runs (shifted by OFFSET)."""
    pf = PageFile.open(path, freelist=kind, sync_freelist=sync, page_size=PAGE)
    with pf.update() as tx:
        assert tx.allocate(trace.hwm + OFFSET - 3) == 3
    with pf.update() as tx:
        for s, n in trace.spans:
            tx.free(s + OFFSET, n)
    return pf


def measure_commits(kind: str, free_pages: int, sync: bool, commits: int) -> dict[str, float]:
    trace = generate("seed", free_pages, 1, seed=1)
    with tempfile.TemporaryDirectory() as d:
        pf = build(Path(d) / "c.db", kind, trace, sync)
        timers = Timers()
        undo = [
            timers.wrap(Transaction, "_allocate_pages", "alloc"),
            timers.wrap(type(pf.freelist), "page_id_array", "serialise"),
            timers.wrap(persist, "pack_freelist_page", "serialise"),
            timers.wrap(FileIO, "pwrite", "io"),
            timers.wrap(FileIO, "sync", "io"),
        ]
        try:
            with pf.update():
                pass  # release the initial runs, write the first full freelist
            times: list[int] = []
            shares = dict.fromkeys(timers.ns, 0)
            for _ in range(commits):
                tx = pf.begin(True)
                pages = [tx.allocate(1) for _ in range(5)]
                for p in pages:
                    tx.free(p)
                before = dict(timers.ns)
                t = time.perf_counter_ns()
                tx.commit()
                times.append(time.perf_counter_ns() - t)
                for k in shares:
                    shares[k] += timers.ns[k] - before[k]
        finally:
            for u in undo:
                u()
            pf.close()
    total = sum(times)
    return {
        "median_ms": statistics.median(times) / 1e6,
        **{f"{k}_share": v / total for k, v in shares.items()},
    }


_ONE_COMMIT = """
import json, os, statistics, sys, tempfile, time
from pathlib import Path
if os.environ.get("BENCH_NO_FSYNC"):
    os.fdatasync = os.fsync = lambda fd: None
from freelist import PageFile
from freelist.trace import generate
kind, size, sync, commits = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4])
trace = generate("seed", size, 1, seed=1)
with tempfile.TemporaryDirectory() as d:
    pf = PageFile.open(Path(d) / "c.db", freelist=kind, sync_freelist=sync, page_size=1024)
    with pf.update() as tx:
        tx.allocate(trace.hwm + 11)
    with pf.update() as tx:
        for s, n in trace.spans:
            tx.free(s + 14, n)
    with pf.update():
        pass
    times = []
    for _ in range(commits):
        tx = pf.begin(True)
        for p in [tx.allocate(1) for _ in range(5)]:
            tx.free(p)
        t = time.perf_counter_ns()
        tx.commit()
        times.append(time.perf_counter_ns() - t)
    pf.close()
print(json.dumps(statistics.median(times) / 1e6))
"""


def versus(baseline: str, sizes: list[int], rounds: int, commits: int, no_fsync: bool) -> None:
    """Print the median commit ms of this tree and ``baseline``, interleaved."""
    trees = {"baseline": baseline, "this": str(Path(__file__).resolve().parents[1] / "src")}
    env = dict(os.environ, BENCH_NO_FSYNC="1" if no_fsync else "")
    print(
        f"{'free pages':>10} {'sync':>5} {'freelist':>8} {'baseline ms':>12} {'this ms':>9} ratio"
    )
    for size in sizes:
        for sync in ("1", "0"):
            for kind in ("array", "hashmap"):
                got: dict[str, list[float]] = {name: [] for name in trees}
                for r in range(rounds):
                    for name in sorted(trees, reverse=r % 2 == 1):
                        out = subprocess.run(
                            [
                                sys.executable,
                                "-c",
                                _ONE_COMMIT,
                                kind,
                                str(size),
                                sync,
                                str(commits),
                            ],
                            env={**env, "PYTHONPATH": trees[name]},
                            capture_output=True,
                            text=True,
                            check=True,
                        ).stdout
                        got[name].append(json.loads(out))
                b, t = (statistics.median(got[n]) for n in ("baseline", "this"))
                print(
                    f"{size:>10,} {sync == '1'!s:>5} {kind:>8} {b:12.3f} {t:9.3f} {t / b:5.2f}",
                    flush=True,
                )


def replay_pagefile(kind: str, trace: Trace, sync: bool) -> tuple[float, int]:
    """Seconds to replay ``trace`` through a PageFile, and its final high-water mark."""
    with tempfile.TemporaryDirectory() as d:
        pf = build(Path(d) / "e.db", kind, trace, sync)
        starts: list[int] = []
        sizes: list[int] = []
        t = time.perf_counter()
        tx = pf.begin(True)
        for code, a, b in trace.ops:
            if code == "A":
                starts.append(tx.allocate(a))
                sizes.append(a)
            elif code == "F":
                tx.free(starts[a], sizes[a])
            elif code == "D":
                tx.free(a + OFFSET, b)
            else:
                tx.commit()
                tx = pf.begin(True)
        tx.commit()
        elapsed = time.perf_counter() - t
        hwm = pf.meta.hwm
        pf.close()
    return elapsed, hwm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["commit", "e2e", "versus"])
    ap.add_argument("--free-pages", type=int, nargs="+", default=[1_000, 100_000, 1_000_000])
    ap.add_argument("--commits", type=int, default=50)
    ap.add_argument("--txs", type=int, default=2000)
    ap.add_argument("--sync", action="store_true", help="e2e: write the freelist at commit")
    ap.add_argument("--baseline", help="versus: the src folder of the version to compare with")
    ap.add_argument("--rounds", type=int, default=5, help="versus: measurements per tree")
    ap.add_argument("--no-fsync", action="store_true", help="versus: stub out fdatasync")
    args = ap.parse_args()
    if args.what == "versus":
        if not args.baseline:
            ap.error("versus needs --baseline OLD/src")
        versus(args.baseline, args.free_pages, args.rounds, args.commits, args.no_fsync)
    elif args.what == "commit":
        head = ["freelist", "sync", "commit ms", "alloc", "serial", "io"]
        print(f"{'free pages':>10} " + " ".join(f"{h:>9}" for h in head))
        for size in args.free_pages:
            for sync in (True, False):
                for kind in ("array", "hashmap"):
                    r = measure_commits(kind, size, sync, args.commits)
                    shares = [r[f"{k}_share"] for k in ("alloc", "serialise", "io")]
                    print(
                        f"{size:>10,} {kind:>9} {sync!s:>9} {r['median_ms']:9.2f} "
                        + " ".join(f"{v:9.0%}" for v in shares),
                        flush=True,
                    )
    else:
        print(f"seed scenario through a PageFile, {args.txs} transactions, sync={args.sync}")
        print(
            f"{'free pages':>10} {'array s':>9} {'hashmap s':>10} {'speed-up':>9} {'hwm a/h':>20}"
        )
        for size in args.free_pages:
            trace = generate("seed", size, args.txs, seed=1)
            ta, ha = replay_pagefile("array", trace, args.sync)
            th, hh = replay_pagefile("hashmap", trace, args.sync)
            print(f"{size:>10,} {ta:9.2f} {th:10.3f} {ta / th:8.1f}x {ha:>10,}/{hh:,}", flush=True)


if __name__ == "__main__":
    main()
