"""The three allocation rules on every scenario: file growth and fragmentation.

Replays each scenario of :func:`freelist.trace.generate` (2,000 transactions)
at 10^3 .. 10^6 free pages on the array (first fit, bbolt's legacy freelist),
the best-fit hashmap and the first-fit hashmap, once each, and saves what each
left behind (pages grown, free runs, longest run, free pages at the end of the
file, and the replay time) as ``docs/perf/policies.json``; ``make_plots.py``
turns it into ``docs/perf/policies.inc``.  It also checks that first fit ends
exactly where the array ends.  Run from the repository root::

    python docs/perf/policies.py [--sizes 1000 10000 ...] [--txs 2000]

The array at 10^6 free pages takes tens of seconds a replay: it runs once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from freelist.trace import SCENARIOS, generate, replay

HERE = Path(__file__).resolve().parent
SPECS = ("array", "hashmap:best-fit", "hashmap:first-fit")
KEYS = ("grown", "final_hwm", "spans", "largest_span", "free_tail", "free_count", "total_ns")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10**3, 10**4, 10**5, 10**6])
    ap.add_argument("--txs", type=int, default=2000)
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    ap.add_argument("-o", "--output", default=str(HERE / "policies.json"))
    args = ap.parse_args()
    rows = []
    for scenario in args.scenarios:
        for size in args.sizes:
            trace = generate(scenario, size, args.txs, 1)
            row = {
                "scenario": scenario,
                "free_pages": size,
                "txs": args.txs,
                "ops": len(trace.ops),
                "start_hwm": trace.hwm,
                "results": {},
            }
            sha = {}
            for spec in SPECS:
                r = replay(trace, spec)
                row["results"][spec] = {k: getattr(r, k) for k in KEYS}
                sha[spec] = (r.final_hwm, r.free_sha256)
            row["first_fit_equals_array"] = sha["array"] == sha["hashmap:first-fit"]
            rows.append(row)
            res = row["results"]
            print(
                scenario,
                size,
                {s: (res[s]["grown"], res[s]["spans"], res[s]["free_tail"]) for s in SPECS},
                row["first_fit_equals_array"],
                file=sys.stderr,
                flush=True,
            )
    Path(args.output).write_text(json.dumps({"rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
