"""Shrinking measurements (issue 10): file size through a rewrite workload, and
the commit cost of shrinking when nothing is cut.

Run: ``python benchmarks/bench_shrink.py sizes [--pages 100000]`` and
``python benchmarks/bench_shrink.py commit [--free-pages 100000] [--commits 200]``.

``sizes``: for every built-in freelist spec, with and without shrinking, through
a PageFile (4 KiB pages, freelist written at every commit, sparse files: the
pages are allocated, not filled): fill N pages (transactions of 1,000
allocations), free 90% of them at random (transactions of 1,000 frees), then
rewrite the live pages copy-on-write (free the page, allocate a new one; 100
per transaction) in two passes, each over every live page in a random order,
so that each live page is rewritten twice.  After each phase (and two empty
commits, which release the pending pages and let a commit cut the file) it
prints the file size in pages and as a multiple of the live pages.

``commit``: two files built alike (F free pages in runs of one and two, the
seed trace's layout, 1 KiB pages), one opened with ``shrink=True`` and one
with ``shrink=False``; commits of a small write transaction (allocate 5 pages,
free 5) alternate between them (ABBA) and each commit is timed; the medians
and the means are compared.
Two layouts: the seed's as built, and the same with a free tail of 8 pages at
the top (the first ``freed`` probe passes, the further gates run, nothing is
cut).  ``top free`` is the share of commits that found the page under the
high-water mark free or pending; ``shrink us`` the microseconds per commit
spent in the shrinking steps (timed inside the file with shrinking on), and
``share`` their share of its commit time: the overhead without the noise of
comparing two files (whichever of two identical files is built first commits
faster by up to 15% on the array, in either order).  Nothing may be cut: the
script checks it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from freelist import PageFile, Transaction, registry
from freelist.trace import generate

PAGE = 4096


def settle(pf: PageFile, commits: int = 2) -> None:
    for _ in range(commits):
        with pf.update():
            pass


def sizes(spec: str, shrink: bool, pages: int, seed: int, folder: str) -> dict[str, float]:
    """File size (pages) after each phase of the workload, and the live pages."""
    rnd = random.Random(seed)
    out: dict[str, float] = {}
    path = Path(folder) / f"s-{spec.replace(':', '-')}-{shrink}.db"
    with PageFile.open(path, freelist=spec, page_size=PAGE, shrink=shrink) as pf:
        live: list[int] = []
        while len(live) < pages:
            with pf.update() as tx:
                for _ in range(min(1000, pages - len(live))):
                    live.append(tx.allocate(1))
        settle(pf)
        out["fill"] = pf.stats().file_size / PAGE
        rnd.shuffle(live)
        cut = pages * 9 // 10
        doomed, live = live[:cut], live[cut:]
        for i in range(0, len(doomed), 1000):
            with pf.update() as tx:
                for p in doomed[i : i + 1000]:
                    tx.free(p)
        settle(pf)
        out["free"] = pf.stats().file_size / PAGE
        for phase in ("pass1", "pass2"):
            order = list(range(len(live)))
            rnd.shuffle(order)
            for i in range(0, len(order), 100):
                with pf.update() as tx:
                    for j in order[i : i + 100]:
                        tx.free(live[j])
                        live[j] = tx.allocate(1)
            settle(pf)
            out[phase] = pf.stats().file_size / PAGE
        s = pf.stats()
        out["live"] = len(live)
        out["hwm"] = s.hwm
        out["shrinks"] = s.shrinks
        assert pf.check(lambda _pf: [(p, 1) for p in live]) == []
    path.unlink()
    return out


def build(path: Path, spec: str, free_pages: int, shrink: bool, tail: bool) -> PageFile:
    """The seed layout's free runs in a file; with ``tail``, the top 8 pages
    free too (a free tail far too short to cut)."""
    trace = generate("seed", free_pages, 1, seed=1)
    pf = PageFile.open(path, freelist=spec, page_size=1024, shrink=shrink)
    with pf.update() as tx:
        assert tx.allocate(trace.hwm + 11) == 3
    with pf.update() as tx:
        for s, n in trace.spans:
            tx.free(s + 14, n)
    if tail:
        with pf.update() as tx:
            top = tx.allocate(9)
            assert top + 9 == tx.hwm
        with pf.update() as tx:
            tx.free(top + 1, 8)
    settle(pf)
    return pf


def commit_cost(spec: str, free_pages: int, commits: int, tail: bool, folder: str) -> list[float]:
    """Median and mean commit ms with shrinking on and off, commits interleaved, and the
    share of commits that found the page under the high-water mark free or
    pending (so that the gates past the first probe ran)."""
    stem = f"c-{spec.replace(':', '-')}-{tail}"
    files = {
        on: build(Path(folder) / f"{stem}-{on}.db", spec, free_pages, on, tail)
        for on in (True, False)
    }
    times: dict[bool, list[int]] = {True: [], False: []}
    top_freed = 0
    work = [0]  # ns spent in the shrinking steps of commit (the file with shrink on)
    originals = {name: getattr(Transaction, name) for name in ("_drop_free_tail", "_trim")}

    def timed(name: str) -> object:
        orig = originals[name]

        def run(self: Transaction, *a: object, **k: object) -> object:
            t = time.perf_counter_ns()
            try:
                return orig(self, *a, **k)
            finally:
                work[0] += time.perf_counter_ns() - t

        return run

    for name in originals:
        setattr(Transaction, name, timed(name))
    try:
        # ABBA order: neither file always goes first.
        for on in [k % 4 in (0, 3) for k in range(2 * commits)]:
            pf = files[on]
            tx = pf.begin(True)
            pages = [tx.allocate(1) for _ in range(5)]
            for p in pages:
                tx.free(p)
            if on:
                top_freed += pf.freelist.freed(tx.hwm - 1)
            t = time.perf_counter_ns()
            tx.commit()
            times[on].append(time.perf_counter_ns() - t)
        assert files[True].stats().shrinks == 0, "a commit cut the file"
        assert files[True].meta.hwm == files[False].meta.hwm
    finally:
        for name, orig in originals.items():
            setattr(Transaction, name, orig)
        for pf in files.values():
            pf.close()
            Path(pf.path).unlink()
    return [
        *(statistics.median(times[on]) / 1e6 for on in (True, False)),
        *(statistics.mean(times[on]) / 1e6 for on in (True, False)),
        top_freed / commits,
        work[0] / commits / 1e3,
        work[0] / sum(times[True]),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["sizes", "commit"])
    ap.add_argument("--pages", type=int, default=100_000)
    ap.add_argument("--free-pages", type=int, default=100_000)
    ap.add_argument("--commits", type=int, default=200)
    ap.add_argument("--specs", nargs="+", default=registry.builtin_specs())
    ap.add_argument("--dir", default=None, help="folder for the files (default: a temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        if args.what == "sizes":
            cols = ["fill", "free", "pass1", "pass2"]
            print(f"file size in pages after each phase; {args.pages:,} pages filled, 4 KiB pages")
            print(
                f"{'freelist':>18} {'shrink':>6} "
                + " ".join(f"{c:>8}" for c in cols)
                + f" {'live':>7} {'end/live':>8} {'cuts':>5} {'s':>6}"
            )
            for spec in args.specs:
                for shrink in (False, True):
                    t = time.perf_counter()
                    r = sizes(spec, shrink, args.pages, 1, folder)
                    print(
                        f"{spec:>18} {'on' if shrink else 'off':>6} "
                        + " ".join(f"{int(r[c]):>8,}" for c in cols)
                        + f" {int(r['live']):>7,} {r['pass2'] / r['live']:>7.2f}x"
                        + f" {int(r['shrinks']):>5} {time.perf_counter() - t:>6.1f}",
                        flush=True,
                    )
        else:
            print(
                f"commit ms, {args.free_pages:,} free pages, {args.commits} commits each, "
                "shrink on/off interleaved"
            )
            print(
                f"{'freelist':>18} {'layout':>7} {'on':>8} {'off':>8} {'on/off':>7}"
                f" {'mean on':>8} {'mean off':>8} {'on/off':>7} {'top free':>9}"
                f" {'shrink us':>9} {'share':>6}"
            )
            for spec in args.specs:
                for tail in (False, True):
                    on, off, m_on, m_off, top, us, share = commit_cost(
                        spec, args.free_pages, args.commits, tail, folder
                    )
                    print(
                        f"{spec:>18} {'8-tail' if tail else 'seed':>7} {on:8.3f} {off:8.3f}"
                        f" {on / off:7.3f} {m_on:8.3f} {m_off:8.3f} {m_on / m_off:7.3f}"
                        f" {top:9.0%} {us:9.1f} {share:6.2%}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
