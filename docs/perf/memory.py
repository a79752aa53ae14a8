"""Memory held by each freelist (tracemalloc), per free page and per free run.

Run: ``python docs/perf/memory.py``.  The ids are created inside the measured
window and the input list is dropped, so each freelist is charged for the int
objects it keeps.
"""

from __future__ import annotations

import gc
import tracemalloc

from opcost import fragmented_ids  # type: ignore[import-not-found]

from freelist import registry

SPECS = ("array", "hashmap:best-fit", "hashmap:first-fit")


def main() -> None:
    print(f"{'free pages':>10} {'freelist':>17} {'bytes/page':>11} {'bytes/run':>10} {'runs':>9}")
    for size in (10**5, 10**6):
        for name in SPECS:
            gc.collect()
            tracemalloc.start()
            ids = fragmented_ids(size)
            fl = registry.make(name, ids)
            del ids
            gc.collect()
            used, _ = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            runs = len(fl.free_spans())
            print(f"{size:>10,} {name:>17} {used / size:11.1f} {used / runs:10.1f} {runs:>9,}")


if __name__ == "__main__":
    main()
