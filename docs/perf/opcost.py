"""Median cost of single freelist operations at 10^3, 10^5 and 10^6 free pages.

The free list is fragmented into runs of one and two pages (the seed's case).
Run: ``python docs/perf/opcost.py``; each figure includes one perf_counter_ns
call (about 0.05 us).  ``cycle`` is allocate + free + release of one page
timed as one (one clock call), the figure of the 2 us target.
"""

from __future__ import annotations

import random
import statistics
import time

from freelist import registry
from freelist._shared import SharedFreelist

SPECS = ("array", "hashmap:best-fit", "hashmap:first-fit")


def fragmented_ids(size: int, seed: int = 1) -> list[int]:
    """``size`` free ids in runs of 1 or 2 pages separated by 1..6 used pages."""
    r = random.Random(seed)
    ids: list[int] = []
    p = 2
    while len(ids) < size:
        p += r.randint(1, 6)
        n = 1 if r.random() < 0.6 else 2
        ids.extend(range(p, p + n))
        p += n
    return ids[:size]


def measure(fl: SharedFreelist, rounds: int, failing_rounds: int) -> list[float]:
    """Median microseconds of allocate(1), free(1), release, a failing allocate(4)
    and the whole one-page cycle."""
    pc = time.perf_counter_ns
    cy: list[int] = []
    a1: list[int] = []
    fr: list[int] = []
    rl: list[int] = []
    a4: list[int] = []
    txid = 10
    for _ in range(rounds):
        t0 = pc()
        s = fl.allocate(txid, 1)
        t1 = pc()
        fl.free(txid, s, 1)
        t2 = pc()
        fl.release(txid)
        t3 = pc()
        a1.append(t1 - t0)
        fr.append(t2 - t1)
        rl.append(t3 - t2)
        txid += 1
    for _ in range(rounds):
        t0 = pc()
        s = fl.allocate(txid, 1)
        fl.free(txid, s, 1)
        fl.release(txid)
        cy.append(pc() - t0)
        txid += 1
    for _ in range(failing_rounds):
        t0 = pc()
        fl.allocate(txid, 4)
        a4.append(pc() - t0)
    return [statistics.median(v) / 1000 for v in (a1, fr, rl, a4, cy)]


def main() -> None:
    head = ["free pages", "freelist", "alloc 1", "free 1", "release", "alloc 4, none", "cycle"]
    print(" ".join(f"{h:>14}" for h in head), " (median us)")
    for size in (10**3, 10**5, 10**6):
        ids = fragmented_ids(size)
        for name in SPECS:
            failing = 20 if name == "array" and size >= 10**6 else 2000
            fl = registry.make(name, ids)
            assert isinstance(fl, SharedFreelist)
            a1, fr, rl, a4, cy = measure(fl, 20000, failing)
            print(f"{size:>14,} {name:>17}", end=" ")
            print(" ".join(f"{v:14.2f}" for v in (a1, fr, rl, a4, cy)))


if __name__ == "__main__":
    main()
