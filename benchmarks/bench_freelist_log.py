"""The three freelist formats side by side: bytes and time per commit, open time, memory.

Run: ``python benchmarks/bench_freelist_log.py --free-pages 1000 100000 1000000
--json docs/perf/freelist-log.json`` (then ``--plot docs/_static/freelist-log.svg
--from-json docs/perf/freelist-log.json`` redraws the plot without measuring).

For each free-list size F, freelist class and format ("bbolt", "log", "none"):
a file with 1 KiB pages whose F free pages are the seed scenario's initial
runs (runs of one and two pages in a file about four times as large), opened
with the format and converted by one commit; then 2,000 seed-like commits, each
allocating one to five single pages (one in ten also a 2..4-page run) and
freeing pages allocated by earlier commits, so the free list keeps its size.
Reported:

* ``bytes/commit``: freelist bytes written per commit (``stats()``), and the
  bytes per page changed after taking one page off each commit.  For the log
  the figure is amortised over whole checkpoint cycles: the run goes on until
  a checkpoint has been written after the window (at 10^6 free pages, tens of
  thousands of commits), and counts every commit from the window's start to
  that checkpoint, included;
* ``median ms``: median time of ``commit()`` over the 2,000 commits;
* ``open ms``: median of three opens of the closed file (interleaved with the
  other formats); "none" opens with a walk that yields the pages in use (a
  stand-in for bbolt's tree walk, which also reads every page);
* ``map ms``: the time to build the freelist's page map right after that
  open (the first write transaction pays it when the open did not build it:
  the log's open hands its free map over, the others leave it);
* ``open MiB``: tracemalloc's peak during one open, next to the freelist's
  size after it, and the checkpoint's bytes (the target: the peak at most the
  freelist plus one checkpoint);
* under each log row, the open time, page map and peak of copies of the log
  file just after a checkpoint and halfway to the next one (the row itself
  is the log at its longest), and ``(the same free set in bbolt format)``: a
  copy of the log file converted to bbolt's format by one commit, so the same
  free pages (plus the chain's): each format's own file ends with a free set
  shaped by its own commits, which changes the cost of building the freelist.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import tempfile
import time
import tracemalloc
from collections import deque
from pathlib import Path
from typing import Any

from freelist import PageFile, persist
from freelist._fileio import FileIO
from freelist.trace import generate

PAGE = 1024
OFFSET = 14
FORMATS = ("bbolt", "log", "none")
KINDS = ("array", "hashmap")


class SyncTimer:
    """Time spent in fdatasync, to report a commit's CPU work apart from the device."""

    def __init__(self) -> None:
        self.ns = 0
        self.orig = FileIO.sync

    def __enter__(self) -> SyncTimer:
        orig = self.orig

        def timed(io: FileIO) -> None:
            t = time.perf_counter_ns()
            try:
                orig(io)
            finally:
                self.ns += time.perf_counter_ns() - t

        FileIO.sync = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        FileIO.sync = self.orig  # type: ignore[method-assign]


def build(path: Path, kind: str, fmt: str, free_pages: int) -> tuple[PageFile, deque[int]]:
    """A file with the seed scenario's free runs, converted to ``fmt``; the
    pages in use (besides the root) as a FIFO for the commits to free."""
    trace = generate("seed", free_pages, 1, seed=1)
    pf = PageFile.open(path, freelist=kind, freelist_format=fmt, page_size=PAGE)
    with pf.update() as tx:
        first = tx.allocate(trace.hwm + OFFSET - 3)
    with pf.update() as tx:
        for s, n in trace.spans:
            tx.free(s + OFFSET, n)
    free = set()
    for s, n in trace.spans:
        free.update(range(s + OFFSET, s + OFFSET + n))
    used = deque(p for p in range(first + 1, first + trace.hwm + OFFSET - 3) if p not in free)
    with pf.update() as tx:
        tx.root = first
    return pf, used


def one_commit(
    pf: PageFile, used: deque[int], r: random.Random, sync: SyncTimer
) -> tuple[int, int, int]:
    """A seed-like commit; returns (ns in commit(), ns of it in fdatasync, pages changed)."""
    tx = pf.begin(True)
    changed = 0
    fresh = []
    for _ in range(r.randint(1, 5)):
        fresh.append(tx.allocate(1))
        changed += 1
    if r.random() < 0.1:
        n = r.randint(2, 4)
        s = tx.allocate(n)
        fresh += range(s, s + n)
        changed += n
    for _ in range(len(fresh)):
        tx.free(used.popleft() if len(used) > 64 else used.pop())
        changed += 1
    used.extend(fresh)
    s0 = sync.ns
    t = time.perf_counter_ns()
    tx.commit()
    return time.perf_counter_ns() - t, sync.ns - s0, changed


def walk_of(pf: PageFile) -> list[tuple[int, int]]:
    """The pages in use: everything below the high-water mark that is not free
    (a stand-in for a tree walk)."""
    free = set(pf.freelist.all_page_ids())
    return [(p, 1) for p in range(2, pf.meta.hwm) if p not in free and not _owned(pf, p)]


def _owned(pf: PageFile, p: int) -> bool:
    return any(s <= p < s + n for s, n in pf._state.owned)


def measure(kind: str, fmt: str, free_pages: int, commits: int, d: Path) -> dict[str, Any]:
    path = d / f"{kind}-{fmt}.db"
    pf, used = build(path, kind, fmt, free_pages)
    r = random.Random(7)
    times, cpu, changed = [], [], []
    bytes0 = pf.stats().freelist_bytes_total
    with SyncTimer() as sync:
        for _ in range(commits):
            ns, sync_ns, n = one_commit(pf, used, r, sync)
            times.append(ns)
            cpu.append(ns - sync_ns)
            changed.append(n)
    window_bytes = pf.stats().freelist_bytes_total - bytes0
    out: dict[str, Any] = {
        "kind": kind,
        "format": fmt,
        "free_pages": free_pages,
        "free_count": pf.freelist.count,
        "commits": commits,
        "median_ms": statistics.median(times) / 1e6,
        "median_cpu_ms": statistics.median(cpu) / 1e6,
        "window_bytes_per_commit": window_bytes / commits,
        "pages_changed_per_commit": sum(changed) / commits,
    }
    if fmt == "log":
        fmt_state = pf._state.writing
        assert isinstance(fmt_state, persist.LogFormat)

        def chain() -> persist.LogChain:
            assert fmt_state.chain is not None
            return fmt_state.chain

        # Go on to the end of the checkpoint cycle (the next checkpoint, included).
        ckpt = chain().checkpoint_txid
        extra = 0
        with SyncTimer() as sync:
            while chain().checkpoint_txid == ckpt:
                _, _, n = one_commit(pf, used, r, sync)
                changed.append(n)
                extra += 1
            total = pf.stats().freelist_bytes_total - bytes0
            out |= {
                "cycle_commits": commits + extra,
                "bytes_per_commit": total / (commits + extra),
                "pages_changed_per_commit": sum(changed) / (commits + extra),
                "checkpoint_bytes": chain().checkpoint_bytes,
            }
            # The file just after a checkpoint, then halfway to the next one
            # (copies, opened beside the worst case below).
            limit = max(chain().checkpoint_bytes // persist.CHECKPOINT_RATIO, PAGE - 48)
            extras = []
            for key, label, upto in (
                ("after_checkpoint", "just after a checkpoint", 0),
                ("mid_cycle", "halfway to the next checkpoint", limit // 2),
            ):
                while chain().log_bytes < upto:
                    one_commit(pf, used, r, sync)
                copy = d / f"{kind}-log-{key}.db"
                subprocess.run(["cp", "--sparse=always", str(path), str(copy)], check=True)
                extras.append((key, f"({label}: {chain().log_bytes:,} B of records)", copy, fmt))
            # On to the worst case for opening: a log as long as it gets.
            while chain().log_bytes + 400 <= limit:
                one_commit(pf, used, r, sync)
        out["open_log_bytes"] = chain().log_bytes
        out["open_chain_runs"] = len(chain().runs)
    else:
        out["bytes_per_commit"] = out["window_bytes_per_commit"]
        out["checkpoint_bytes"] = 8 * pf.freelist.count
    per_page = (out["bytes_per_commit"] - PAGE) / out["pages_changed_per_commit"]
    out["bytes_per_page_changed"] = per_page
    walk = walk_of(pf) if fmt == "none" else None
    pf.close()
    out["_path"] = str(path)
    out["_walk"] = walk
    if fmt == "log":
        # The same free set in bbolt's format, for an open-time comparison
        # that does not depend on how each format's commits shaped the set:
        # a sparse copy, converted by one commit (the chain's pages join it).
        same = d / f"{kind}-log-as-bbolt.db"
        subprocess.run(["cp", "--sparse=always", str(path), str(same)], check=True)
        with (
            PageFile.open(same, freelist=kind, freelist_format="bbolt") as conv,
            conv.update(),
        ):
            pass
        label = "(the same free set in bbolt format)"
        out["_extra"] = [*extras, ("same_set_bbolt", label, same, "bbolt")]
    return out


def open_once(path: str, kind: str, fmt: str, walk: Any) -> tuple[float, float]:
    """(seconds to open, seconds to build the freelist's page map after it).

    The page map (one byte per page, for the double-free check) is built by
    the first free or allocation when the open did not make it: the log's
    open hands over its free map, the bbolt page's leaves the map to the
    first write transaction; the second figure shows that deferred cost.
    """
    t = time.perf_counter()
    pf = PageFile.open(
        path,
        freelist=kind,
        freelist_format=fmt,
        reachable=(lambda _pf: walk) if walk is not None else None,
    )
    elapsed = time.perf_counter() - t
    t = time.perf_counter()
    pf.freelist._ensure_map()  # type: ignore[attr-defined]
    mapped = time.perf_counter() - t
    pf.close()
    return elapsed, mapped


def open_memory(path: str, kind: str, fmt: str, walk: Any) -> tuple[int, int]:
    """(peak bytes during the open, bytes still held after it: the freelist)."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    pf = PageFile.open(
        path,
        freelist=kind,
        freelist_format=fmt,
        reachable=(lambda _pf: walk) if walk is not None else None,
    )
    now, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    pf.close()
    return peak - before, now - before


def plot(rows: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for kind in KINDS:
        for fmt in FORMATS:
            sel = sorted(
                (r for r in rows if r["kind"] == kind and r["format"] == fmt),
                key=lambda r: r["free_pages"],
            )
            if not sel:
                continue
            xs = [r["free_pages"] for r in sel]
            style = "-" if kind == "hashmap" else "--"
            label = f"{fmt} ({kind})"
            if fmt != "none":
                ax1.plot(xs, [r["bytes_per_commit"] for r in sel], style, marker="o", label=label)
            ax2.plot(xs, [r["median_ms"] for r in sel], style, marker="o", label=label)
    ax1.set(xscale="log", yscale="log", xlabel="free pages", ylabel="freelist bytes per commit")
    ax1.set_title("bytes written per commit (amortised)")
    ax2.set(xscale="log", yscale="log", xlabel="free pages", ylabel="median commit ms")
    ax2.set_title("commit time")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--free-pages", type=int, nargs="+", default=[1_000, 100_000, 1_000_000])
    ap.add_argument("--commits", type=int, default=2000)
    ap.add_argument("--opens", type=int, default=3)
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plot", type=Path)
    ap.add_argument("--from-json", type=Path)
    args = ap.parse_args()
    if args.from_json:
        rows = json.loads(args.from_json.read_text())
    else:
        rows = []
        head = (
            f"{'free':>9} {'freelist':>8} {'format':>6} {'B/commit':>10} {'B/page':>7} "
            f"{'commit ms':>9} {'cpu ms':>7} {'open ms':>8} {'map ms':>6} {'peak MiB':>8} "
            f"{'fl MiB':>7} {'ckpt MiB':>8}"
        )
        print(head, flush=True)
        for size in args.free_pages:
            with tempfile.TemporaryDirectory() as tmp:
                d = Path(tmp)
                got = [measure(k, f, size, args.commits, d) for k in args.kinds for f in FORMATS]
                opens: dict[int, list[tuple[float, float]]] = {i: [] for i in range(len(got))}
                extra: dict[tuple[int, str], list[tuple[float, float]]] = {
                    (i, e[0]): [] for i, g in enumerate(got) for e in g.get("_extra", ())
                }
                for _ in range(args.opens):  # interleaved
                    for i, g in enumerate(got):
                        opens[i].append(open_once(g["_path"], g["kind"], g["format"], g["_walk"]))
                        for key, _label, copy, fmt in g.get("_extra", ()):
                            extra[i, key].append(open_once(str(copy), g["kind"], fmt, None))
                for i, g in enumerate(got):
                    g["open_ms"] = statistics.median(o for o, _ in opens[i]) * 1e3
                    g["map_ms"] = statistics.median(m for _, m in opens[i]) * 1e3
                    lines = []
                    for key, label, copy, fmt in g.pop("_extra", ()):
                        g[f"open_ms_{key}"] = statistics.median(o for o, _ in extra[i, key]) * 1e3
                        g[f"map_ms_{key}"] = statistics.median(m for _, m in extra[i, key]) * 1e3
                        g[f"open_peak_bytes_{key}"], _held = open_memory(
                            str(copy), g["kind"], fmt, None
                        )
                        lines.append((key, label))
                    peak, held = open_memory(g["_path"], g["kind"], g["format"], g["_walk"])
                    g["open_peak_bytes"], g["open_held_bytes"] = peak, held
                    del g["_path"], g["_walk"]
                    rows.append(g)
                    mib = 1 << 20
                    per_page = f"{g['bytes_per_page_changed']:.1f}" if g["format"] == "log" else "-"
                    print(
                        f"{size:>9,} {g['kind']:>8} {g['format']:>6} "
                        f"{g['bytes_per_commit']:>10,.0f} {per_page:>7} "
                        f"{g['median_ms']:>9.3f} {g['median_cpu_ms']:>7.3f} "
                        f"{g['open_ms']:>8.1f} {g['map_ms']:>6.1f} {peak / mib:>8.1f} "
                        f"{held / mib:>7.1f} {g['checkpoint_bytes'] / mib:>8.2f}",
                        flush=True,
                    )
                    for key, label in lines:
                        print(
                            f"{'':>9} {label:>62} "
                            f"{g[f'open_ms_{key}']:>8.1f} {g[f'map_ms_{key}']:>6.1f} "
                            f"{g[f'open_peak_bytes_{key}'] / mib:>8.1f}",
                            flush=True,
                        )
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1) + "\n")
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
