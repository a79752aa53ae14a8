"""How quickly does the conformance suite catch each broken bitmap freelist?

Run from the repository root::

    PYTHONPATH=examples python examples/measure_broken.py [SEEDS]

For each variant of ``broken_bitmaps.BROKEN`` and each seed ``0 .. SEEDS-1``
(default 5), with the settings of :func:`freelist.testing.assert_conforms`
(200 examples of up to 50 steps):

* *examples*: the programs Hypothesis generated until the first failing one
  (that one included), with shrinking off;
* *steps*: the calls in the minimal failing program after shrinking (the
  ``state.NAME(...)`` lines of the report, without ``build``, ``teardown`` and
  the invariant), and the seconds the run took.

It prints one line per variant, then a Markdown table (min / median / max).
Uses Hypothesis's ``get_state_machine_test`` and ``@seed`` to fix the seed.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

from broken_bitmaps import BROKEN
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis.stateful import get_state_machine_test

from freelist.testing import FreelistMachine


def _settings(*, shrink: bool) -> settings:
    phases = [Phase.generate, Phase.shrink] if shrink else [Phase.generate]
    return settings(
        max_examples=200,
        stateful_step_count=50,
        deadline=None,
        database=None,
        print_blob=False,
        report_multiple_bugs=False,
        phases=phases,  # as assert_conforms, which also leaves out Phase.explain
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


def run(cls: type, choice: Any, k: int, *, shrink: bool) -> tuple[int, int | None, float]:
    """(examples built, steps of the failing program or None, seconds)."""

    built = 0

    def factory(ids: list[int]) -> Any:
        nonlocal built
        built += 1
        return cls(ids)

    machine = FreelistMachine.bind(factory, choice=choice, name=cls.__name__)
    test = seed(k)(get_state_machine_test(machine, settings=_settings(shrink=shrink)))
    t0 = time.perf_counter()
    try:
        test()
    except Exception as e:
        notes = getattr(e, "__notes__", [])
        steps = [
            line
            for line in notes
            if line.startswith("state.")
            and not line.startswith(("state.build(", "state.teardown(", "state.agrees_with"))
        ]
        return built, len(steps), time.perf_counter() - t0
    return built, None, time.perf_counter() - t0


def main() -> None:
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    rows = []
    for cls, what, choice in BROKEN:
        examples, steps, secs, caught = [], [], [], 0
        for k in range(seeds):
            n, failed, _ = run(cls, choice, k, shrink=False)
            if failed is not None:
                caught += 1
                examples.append(n)
            _, s, dt = run(cls, choice, k, shrink=True)
            if s is not None:
                steps.append(s)
                secs.append(dt)
        row = (cls.__name__, what, caught, seeds, examples, steps, secs)
        print(row, flush=True)
        rows.append(row)

    def mmm(xs: list[float]) -> str:
        if not xs:
            return "-"
        return f"{min(xs):g} / {statistics.median(xs):g} / {max(xs):g}"

    print()
    print("| variant | bug | caught | examples until failure | steps after shrinking | s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, what, caught, n, examples, steps, secs in rows:
        s = f"{statistics.median(secs):.1f}" if secs else "-"
        print(f"| {name} | {what} | {caught}/{n} | {mmm(examples)} | {mmm(steps)} | {s} |")


if __name__ == "__main__":
    main()
