"""Memory held by each freelist (tracemalloc), per free page and per free run.

Run: ``python docs/perf/memory.py [--sizes 100000 1000000 10000000]``.  The ids
are created inside the measured window and the input list is dropped, so each
freelist is charged for the int objects it keeps.  The free list is
``opcost.py``'s fragmentation: runs of one and two pages separated by one to
six pages in use (about 1.4 pages a run, 5 pages of file a run).  At 10^7 the
ids alone take about 0.4 GB while the freelist is built.
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc

from opcost import fragmented_ids  # type: ignore[import-not-found]

from freelist import registry

SPECS = ("array", "hashmap:best-fit", "hashmap:first-fit")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10**5, 10**6, 10**7])
    ap.add_argument("--spec", action="append", help="freelist spec (repeatable; default: all)")
    args = ap.parse_args()
    print(f"{'free pages':>10} {'freelist':>17} {'bytes/page':>11} {'bytes/run':>10} {'runs':>10}")
    for size in args.sizes:
        for name in args.spec or SPECS:
            gc.collect()
            tracemalloc.start()
            ids = fragmented_ids(size)
            fl = registry.make(name, ids)
            del ids
            gc.collect()
            used, _ = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            runs = len(fl.free_spans())
            print(
                f"{size:>10,} {name:>17} {used / size:11.1f} {used / runs:10.1f} {runs:>10,}",
                flush=True,
            )
            del fl


if __name__ == "__main__":
    main()
