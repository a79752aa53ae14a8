"""Side by side with Go: this library's freelists against bbolt's own, on the same traces.

Each trace (``freelist trace``: the seed scenario and the mixed one, 1,000
transactions, at 10^3, 10^5 and 10^6 free pages) is replayed on

* Python: :class:`~freelist.ArrayFreelist`, and :class:`~freelist.HashmapFreelist`
  with the best-fit and the first-fit policy;
* Go: bbolt 1.3.6's own array and hashmap freelists (``newFreelist`` of package
  bbolt, through the interop helper ``tests/interop/bbolthelper``, built on first
  use; needs ``golang-go`` and ``golang-github-coreos-bbolt-dev``).

Timing is the same on both sides: one monotonic clock reading before the replay
loop and one after it, nothing else in the loop (Python:
``run_ops(split=False)``, the figure ``ReplayResult.wall_ns`` reports; Go:
``time.Now``/``time.Since`` around the same loop).  Parsing the trace and
building the freelist from its initial free ids are outside the clock on both
sides; each run builds a new freelist (Python collects garbage first; neither
side turns its garbage collector off).  The runs are interleaved: every cell of
a repeat runs before any cell runs again, and each cell reports the minimum of
its repeats.  The Python array and first-fit results are checked to be bbolt's
array results (final high-water mark and SHA-256 of the free set).

Run from the repository root::

    python docs/perf/vs_go.py [--repeat 3] [--sizes 1000 100000 1000000] \
        [--scenarios seed mixed] [--txs 1000] [--out docs/perf/vs-go.json] [--array-max N]

It writes the JSON (every run's time, plus the environment) and prints the
table that docs/performance.rst shows.  The array at 10^6 takes 20 to 40 s a run.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # tests.interop.gohelper builds and runs the Go helper

from tests.interop import gohelper  # noqa: E402

from freelist import registry  # noqa: E402
from freelist.replay import free_sha256  # noqa: E402
from freelist.trace import Trace, generate, run_ops  # noqa: E402

PYTHON = {
    "py array": "array",
    "py best-fit": "hashmap:best-fit",
    "py first-fit": "hashmap:first-fit",
}
GO = {"go array": "array", "go hashmap": "hashmap"}
#: Which Go freelist each Python one is set beside.
AGAINST = {"py array": "go array", "py best-fit": "go hashmap", "py first-fit": "go hashmap"}


def run_python(spec: str, trace: Trace) -> dict[str, Any]:
    """One replay on a new ``spec``: one clock around the loop."""
    fl = registry.make(spec, trace.free_ids())
    gc.collect()
    loop = run_ops(trace, fl, split=False)
    return {
        "wall_ns": loop.total_ns,
        "final_hwm": loop.final_hwm,
        "free_sha256": free_sha256(fl.free_page_ids()),
    }


def run_go(kind: str, path: Path) -> dict[str, Any]:
    """One replay on bbolt's ``kind`` freelist, in a new helper process."""
    out = gohelper.replay(path, kind)
    return {k: out[k] for k in ("wall_ns", "final_hwm", "free_sha256")}


def go_version() -> str:
    go = gohelper._go() or "go"
    return subprocess.run([go, "version"], capture_output=True, text=True, check=False).stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10**3, 10**5, 10**6])
    ap.add_argument("--scenarios", nargs="+", default=["seed", "mixed"])
    ap.add_argument("--txs", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "docs" / "perf" / "vs-go.json"))
    ap.add_argument(
        "--array-max",
        type=int,
        default=None,
        metavar="N",
        help="skip the Python array above N free pages (tens of seconds a run at 10^6)",
    )
    args = ap.parse_args()
    if gohelper.binary() is None:
        sys.exit(gohelper.MISSING)
    labels = [*PYTHON, *GO]
    with tempfile.TemporaryDirectory() as tmp:
        cells = []
        for scenario in args.scenarios:
            for size in args.sizes:
                trace = generate(scenario, size, args.txs, 1)
                path = Path(tmp, f"{scenario}-{size}.trace")
                trace.save(path)
                cells.append((scenario, size, trace, path))
        runs: dict[tuple[str, int], dict[str, list[dict[str, Any]]]] = {
            (sc, n): {label: [] for label in labels} for sc, n, _, _ in cells
        }
        for r in range(args.repeat):
            for scenario, size, trace, path in cells:
                # the order rotates each repeat, so no side always runs first
                order = labels[r % len(labels) :] + labels[: r % len(labels)]
                for label in order:
                    if label == "py array" and args.array_max and size > args.array_max:
                        continue
                    got = (
                        run_python(PYTHON[label], trace)
                        if label in PYTHON
                        else run_go(GO[label], path)
                    )
                    runs[scenario, size][label].append(got)
                    print(
                        f"repeat {r + 1}/{args.repeat} {scenario:>6} {size:>9,} "
                        f"{label:<13} {got['wall_ns'] / 1e6:10.2f} ms",
                        file=sys.stderr,
                        flush=True,
                    )
        rows = []
        for scenario, size, trace, _ in cells:
            cell = runs[scenario, size]
            best = {
                label: min(r["wall_ns"] for r in cell[label]) for label in labels if cell[label]
            }
            want = cell["go array"][0]
            for label in ("py array", "py first-fit"):
                for run in cell[label]:
                    if (run["final_hwm"], run["free_sha256"]) != (
                        want["final_hwm"],
                        want["free_sha256"],
                    ):
                        sys.exit(f"{scenario} {size}: {label} differs from bbolt's array")
            rows.append(
                {
                    "scenario": scenario,
                    "free_pages": sum(n for _, n in trace.spans),
                    "ops": len(trace.ops),
                    "min_wall_ns": best,
                    "py_over_go": {p: best[p] / best[AGAINST[p]] for p in PYTHON if p in best},
                    "wall_ns": {label: [r["wall_ns"] for r in cell[label]] for label in labels},
                    "same_as_bbolt_array": ["py array", "py first-fit"],
                }
            )
    report = {
        "method": "one clock around the whole replay loop on both sides; build and parse "
        "outside; interleaved repeats, rotating order; min of each cell",
        "repeat": args.repeat,
        "txs": args.txs,
        "python": sys.version.split()[0],
        "go": go_version().strip(),
        "bbolt": "go.etcd.io/bbolt 1.3.6 (Debian golang-github-coreos-bbolt-dev)",
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(table(report))


def table(report: dict[str, Any]) -> str:
    """The text table of a report: min ms per cell, and Python over Go."""
    head = (
        f"{'scenario':<8} {'free pages':>10} {'ops':>6} "
        + " ".join(f"{label:>12}" for label in [*PYTHON, *GO])
        + "  "
        + " ".join(f"{label + '/go':>15}" for label in PYTHON)
    )
    lines = [
        f"min of {report['repeat']} interleaved runs, ms (one clock around the replay)",
        head,
    ]
    for row in report["rows"]:
        best, over = row["min_wall_ns"], row["py_over_go"]
        ms = " ".join(
            f"{best[k] / 1e6:12.2f}" if k in best else f"{'-':>12}" for k in [*PYTHON, *GO]
        )
        ratio = " ".join(f"{over[k]:15.2f}" if k in over else f"{'-':>15}" for k in PYTHON)
        lines.append(f"{row['scenario']:<8} {row['free_pages']:>10,} {row['ops']:>6} {ms}  {ratio}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
