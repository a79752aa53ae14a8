"""First fit's targets: its time per operation against best fit, and the array.

Replays the seed trace (2,000 transactions) at 10^3 .. 10^6 free pages on the
best-fit and the first-fit hashmap, interleaved (best, first, best, first...),
and prints the median time per operation of each and their ratio; at the
largest size it also replays the array once (tens of seconds) and prints
first fit's speed-up against it, after checking both end identically.  Run from
the repository root::

    python docs/perf/firstfit.py [--repeat 7] [--sizes 1000 ... 1000000] [--scenario seed]
        [--shuffled]

``--shuffled`` replays the trace with its ``D`` lines (frees of pages in use
at the start, pieces of runs all over the file) in a shuffled order: the
same frees, no longer each run's pieces front to back.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics

from freelist import registry
from freelist.trace import Trace, generate, run_ops


def shuffled(trace: Trace, seed: int = 7) -> Trace:
    """``trace`` with its ``D`` lines in a shuffled order (the other lines
    stay where they are)."""
    ops = list(trace.ops)
    at = [i for i, op in enumerate(ops) if op[0] == "D"]
    frees = [ops[i] for i in at]
    random.Random(seed).shuffle(frees)
    for i, op in zip(at, frees, strict=True):
        ops[i] = op
    return Trace(trace.hwm, trace.spans, ops, [0] * len(ops), "<shuffled frees>")


def per_op(spec: str, trace: Trace) -> float:
    """Nanoseconds per operation of one replay of ``trace`` on a new ``spec``."""
    fl = registry.make(spec, trace.free_ids())
    gc.collect()
    return run_ops(trace, fl).total_ns / len(trace.ops)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10**3, 10**4, 10**5, 10**6])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--scenario", default="seed")
    ap.add_argument("--no-array", action="store_true", help="skip the array at the largest size")
    ap.add_argument("--shuffled", action="store_true", help="shuffle the trace's D lines")
    args = ap.parse_args()
    what = f"{args.scenario} trace{', D lines shuffled' if args.shuffled else ''}"
    print(f"{what}, 2000 transactions, median of {args.repeat} interleaved runs")
    print(f"{'free pages':>10} {'best-fit us/op':>15} {'first-fit us/op':>16} {'first/best':>11}")
    for size in args.sizes:
        trace = generate(args.scenario, size, 2000, 1)
        if args.shuffled:
            trace = shuffled(trace)
        times: dict[str, list[float]] = {"hashmap:best-fit": [], "hashmap:first-fit": []}
        for _ in range(args.repeat):
            for spec, got in times.items():
                got.append(per_op(spec, trace))
        best = statistics.median(times["hashmap:best-fit"]) / 1000
        first = statistics.median(times["hashmap:first-fit"]) / 1000
        print(f"{size:>10,} {best:15.2f} {first:16.2f} {first / best:11.2f}")
        if size == max(args.sizes) and not args.no_array:
            a = registry.make("array", trace.free_ids())
            f = registry.make("hashmap:first-fit", trace.free_ids())
            ta = run_ops(trace, a).total_ns  # once: tens of seconds at 10^6
            tf = run_ops(trace, f).total_ns
            same = a.free_page_ids() == f.free_page_ids()
            print(
                f"array at {size:,}: {ta / 1e9:.2f} s; first fit {tf / 1e6:.1f} ms: "
                f"{ta / tf:.0f}x faster; identical free set: {same}"
            )


if __name__ == "__main__":
    main()
