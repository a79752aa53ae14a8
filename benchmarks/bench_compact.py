"""``freelist compact`` on a bloated bbolt file, beside bbolt's own ``Compact``.

Run: ``python benchmarks/bench_compact.py [--mib 1024] [--page-size 4096]
[--free 0.9] [--rounds 3] [--seed 1] [--dir DIR] [--json OUT]`` (needs the
interop tier: Go and bbolt's source, see tests/interop).

The file: bbolt 1.3.6 (the interop helper, ``make -size large``) fills a file
to ``--mib`` MiB across four buckets (two nested, values of every size up to a
few pages), then deletes ``--free`` of its keys, chosen across the whole file:
a file mostly free, its live pages spread from end to end.  It is built once
per parameters and kept in ``--dir`` (default: a temporary directory).

Each round runs, one after the other (A, B, A, B ...), each in its own process:

* A: ``compact_file`` in place on a fresh copy of the file (the copy is made
  before the clock starts);
* B: bbolt's ``Compact`` (Go; every key inserted again into a new file,
  transactions of 64 KiB, synced), through the interop helper.

For each it reports the time around the compaction alone (inside the process:
Python's ``compact_file`` call, Go's ``bbolt.Compact`` call), the process's
wall time, its peak resident memory (``wait4``'s ``ru_maxrss``) and the file
size after.  Before the rounds it reports ``inspect``'s estimate for a
compacted copy; after them the ratio of the in-place size to it (the target:
at most 1.10x plus a few pages) and bbolt's check and dump hash of both results
against the original's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.interop import gohelper  # noqa: E402

from freelist import filetools  # noqa: E402

_CHILD = """
import json, sys, time
from freelist.compact import compact_file
t = time.perf_counter()
r = compact_file(sys.argv[1], timeout=5.0)
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "commits": r.commits, "moved": r.moved_pages,
                  "rewritten": r.rewritten_pages, "size": r.size_after}))
"""


def run_measured(cmd: list[str]) -> tuple[str, float, int]:
    """Run ``cmd``; return its stdout, wall seconds and peak RSS in bytes."""
    t = time.perf_counter()
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    ) as p:
        assert p.stdout is not None
        out = p.stdout.read().decode()
        _pid, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed ({p.returncode}): {out}")
    return out, wall, usage.ru_maxrss * 1024


def estimate(path: Path) -> dict[str, Any]:
    """``inspect``'s report for the file (compacted copy and in place)."""
    pf, walker = filetools.open_for_tools(str(path), "auto", "hashmap", 5.0)
    with pf:
        scan = filetools.scan_file(pf, walk=walker is not None)
    return scan.report()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=1024, help="file size to fill to (MiB)")
    ap.add_argument("--page-size", type=int, default=4096)
    ap.add_argument("--free", type=float, default=0.9, help="fraction of keys deleted")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1, help="the helper's workload seed")
    ap.add_argument("--dir", default=None, help="keep the built file here")
    ap.add_argument("--json", default=None, help="write the figures to this file")
    args = ap.parse_args()
    if gohelper.binary() is None:
        raise SystemExit(gohelper.MISSING)
    folder = Path(args.dir or tempfile.mkdtemp(prefix="bench-compact-"))
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / f"bloated-{args.mib}m-{args.page_size}-{args.free}-{args.seed}.db"
    if not src.exists():
        t = time.perf_counter()
        gohelper.make(
            src,
            page_size=args.page_size,
            size="large",
            target_bytes=args.mib << 20,
            free_fraction=args.free,
            seed=args.seed,
        )
        print(f"built {src} in {time.perf_counter() - t:.1f} s")
    orig = gohelper.dump(src)
    est = estimate(src)
    print(
        f"file: {orig['file_size']:,} bytes, page size {orig['page_size']}, hwm {orig['hwm']:,}, "
        f"free {orig['free']:,} pages ({orig['free'] / orig['hwm']:.0%}), keys {orig['keys']:,}"
    )
    print(
        f"inspect: a compacted copy needs {est['compacted']['bytes']:,} bytes; in place moves "
        f"about {est['compact_in_place']['move_pages']:,} pages"
    )
    work = folder / "work.db"
    gocopy = folder / "go.db"
    rows: dict[str, list[dict[str, Any]]] = {
        "freelist compact (in place)": [],
        "bbolt Compact (Go)": [],
    }
    for _ in range(args.rounds):
        work.unlink(missing_ok=True)
        shutil.copyfile(src, work)
        os.sync()
        out, wall, rss = run_measured([sys.executable, "-c", _CHILD, str(work)])
        r = json.loads(out)
        rows["freelist compact (in place)"].append(
            {
                "seconds": r["seconds"],
                "wall": wall,
                "rss": rss,
                "size": r["size"],
                "commits": r["commits"],
                "moved": r["moved"],
            }
        )
        gocopy.unlink(missing_ok=True)
        os.sync()
        exe = gohelper.binary()
        assert exe is not None
        cmd = [
            exe,
            "compact",
            "-src",
            str(src),
            "-dst",
            str(gocopy),
            "-tx-max-size",
            "65536",
            "-page-size",
            "0",
        ]
        out, wall, rss = run_measured(cmd)
        g = json.loads(out)
        rows["bbolt Compact (Go)"].append(
            {"seconds": g["wall_ns"] / 1e9, "wall": wall, "rss": rss, "size": g["dst_size"]}
        )
    mine = gohelper.dump(work)
    theirs = gohelper.dump(gocopy)
    for name, d in (("in place", mine), ("Go copy", theirs)):
        ok = not d["check_errors"] and d["hash"] == orig["hash"]
        print(
            f"{name}: bbolt check {'clean' if not d['check_errors'] else d['check_errors'][:3]}, "
            f"dump hash {'equal' if d['hash'] == orig['hash'] else 'DIFFERENT'}"
            f"{'' if ok else '  <-- FAIL'}"
        )
    print(
        f"\n{'':30} {'median s':>9} {'min s':>7} {'wall s':>7} {'peak RSS':>10} {'size after':>14}"
    )
    figures: dict[str, Any] = {
        "file_size": orig["file_size"],
        "page_size": orig["page_size"],
        "hwm": orig["hwm"],
        "free": orig["free"],
        "estimate": est,
    }
    for name, rs in rows.items():
        med = statistics.median(x["seconds"] for x in rs)
        print(
            f"{name:30} {med:9.2f} {min(x['seconds'] for x in rs):7.2f} "
            f"{statistics.median(x['wall'] for x in rs):7.2f} "
            f"{max(x['rss'] for x in rs) / 2**20:8.0f} MiB {rs[-1]['size']:14,}"
        )
        figures[name] = rs
    ratio = rows["freelist compact (in place)"][-1]["size"] / est["compacted"]["bytes"]
    speed = statistics.median(
        x["seconds"] for x in rows["freelist compact (in place)"]
    ) / statistics.median(x["seconds"] for x in rows["bbolt Compact (Go)"])
    print(
        f"\nsize after in place / inspect's estimate: {ratio:.3f} (target <= 1.10 plus a few pages)"
    )
    print(f"in place time / Go Compact time (medians, same run): {speed:.2f}")
    figures["ratio"] = ratio
    figures["time_ratio"] = speed
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    if args.dir is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
