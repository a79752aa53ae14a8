"""The replay loop's own cost per operation: replay the seed trace on a freelist
whose methods do nothing, so what is left is the loop (unpacking, branching,
recording allocations) and the one clock call per operation.

Run: ``python docs/perf/overhead.py``.
"""

from __future__ import annotations

import statistics
from array import array

from freelist.trace import generate, replay


class NullFreelist:
    """Satisfies what :func:`freelist.trace.replay` calls, doing nothing."""

    def __init__(self, ids: list[int]) -> None:
        del ids

    def allocate(self, *_: int) -> int:
        return 0

    def free(self, *_: int) -> None:
        pass

    def release(self, *_: int) -> None:
        pass

    def page_id_array(self) -> array[int]:
        return array("Q")

    def free_page_ids(self) -> list[int]:
        return []

    def free_spans(self) -> list[tuple[int, int]]:
        return []


def main() -> None:
    trace = generate("seed", 10_000, 2000, seed=1)
    runs = [replay(trace, NullFreelist) for _ in range(7)]  # type: ignore[arg-type]
    per_op = statistics.median(r.total_ns / r.ops for r in runs)
    print(f"replay loop overhead: {per_op:.0f} ns per operation (median of 7, {runs[0].ops:,} ops)")


if __name__ == "__main__":
    main()
