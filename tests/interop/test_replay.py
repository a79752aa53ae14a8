"""bbolt's own freelists (Go, through the helper) against this library's, on the same traces.

* :class:`~freelist.ArrayFreelist` and ``hashmap:first-fit`` give exactly bbolt's
  array results (high-water mark, growth, the final free set);
* every hashmap policy, and bbolt's own hashmap, is valid on the same traces: each
  allocation is of free pages, the file grows only when no run fits, and the final
  free set is what the operations leave.

Traces: the fidelity traces, and the library's own scenarios (``freelist trace``)
at 2,000 free pages (every scenario) and 10^5 (three of them; the Python policies
are validated step by step on one of those); the thorough run
(``FREELIST_THOROUGH=1`` or the ``thorough`` Hypothesis profile) adds every
scenario at 10^6.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import settings

from freelist import ArrayFreelist, Freelist, InvalidArgumentError, registry
from freelist.cli import main
from freelist.scenarios import SCENARIOS, generate
from freelist.trace import Trace, read, replay, run_ops

pytestmark = pytest.mark.interop

DATA = Path(__file__).resolve().parent.parent / "data" / "fidelity"
POLICIES = [s for s in registry.builtin_specs() if s.startswith("hashmap")]


def _thorough() -> bool:
    return bool(
        os.environ.get("FREELIST_THOROUGH")
        or os.environ.get("FREELIST_HYPOTHESIS_PROFILE") == "thorough"
        or settings.get_current_profile_name() == "thorough"
    )


# (scenario, free pages, transactions)
CASES = [(sc, 2000, 300) for sc in SCENARIOS] + [
    ("seed", 100_000, 100),
    ("mixed", 100_000, 100),
    ("large-values", 100_000, 60),
]
if _thorough():
    CASES += [(sc, 1_000_000, 300) for sc in SCENARIOS]

IDS = [f"{sc}-{n}" for sc, n, _ in CASES] + ["fidelity-seed-2000", "fidelity-mixed-3000"]
ALL = [*CASES, ("fidelity", 0, 0), ("fidelity-mixed", 0, 0)]
# The step-by-step validation of the Python policies costs a Python set operation per
# page: at 10^5 the normal run validates the seed trace only (all of them when thorough).
CHEAP = [
    (case, i)
    for case, i in zip(ALL, IDS, strict=True)
    if _thorough() or case[1] < 100_000 or case[0] == "seed"
]


@functools.cache
def _trace(case: tuple[str, int, int], where: Path) -> tuple[Trace, Path]:
    scenario, pages, txs = case
    if scenario == "fidelity":
        return read(DATA / "seed-2000.trace"), DATA / "seed-2000.trace"
    if scenario == "fidelity-mixed":
        return read(DATA / "mixed-3000.trace"), DATA / "mixed-3000.trace"
    trace = generate(scenario, pages, txs, seed=7)
    path = where / f"{scenario}-{pages}-{txs}.trace"
    trace.save(path)
    return trace, path


@pytest.fixture(scope="module")
def trace_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("traces")


KEYS = ("ops", "final_hwm", "grown", "free_count", "free_sha256")


@pytest.mark.parametrize("case", ALL, ids=IDS)
@pytest.mark.parametrize("spec", ["array", "hashmap:first-fit"])
def test_matches_bbolts_array(
    bbolt: ModuleType, trace_dir: Path, case: tuple[str, int, int], spec: str
) -> None:
    trace, path = _trace(case, trace_dir)
    ours = replay(trace, spec).as_dict()
    theirs = bbolt.replay(path, "array")
    assert {k: ours[k] for k in KEYS} == {k: theirs[k] for k in KEYS}
    assert theirs["pending"] == 0


def _has_run(free: set[int], n: int) -> bool:
    run, prev = 0, -2
    for p in sorted(free):
        run = run + 1 if p == prev + 1 else 1
        prev = p
        if run >= n:
            return True
    return False


def validated_replay(trace: Trace, spec: str | Callable[[list[int]], Freelist]) -> tuple[int, int]:
    """Replay ``trace`` on ``spec`` (or a factory) checking every step against a set of
    free pages; returns the final high-water mark and free count."""
    ids = trace.free_ids()
    fl = registry.make(spec, ids) if isinstance(spec, str) else spec(ids)
    free = set(trace.free_ids())
    pending: list[int] = []
    starts: list[int] = []
    sizes: list[int] = []
    hwm, txid = trace.hwm, 2
    for i, (code, a, b) in enumerate(trace.ops):
        if code == "A":
            s = fl.allocate(txid, a)
            if s:
                taken = range(s, s + a)
                assert all(p in free for p in taken), f"op {i}: A {a} -> {s}: not all free"
                free.difference_update(taken)
            else:
                assert not _has_run(free, a), f"op {i}: A {a} grew though a run fits"
                s, hwm = hwm, hwm + a
            starts.append(s)
            sizes.append(a)
        elif code in "FD":
            s, n = (starts[a], sizes[a]) if code == "F" else (a, b)
            fl.free(txid, s, n)
            pending.extend(range(s, s + n))
        else:
            fl.release(txid)
            free.update(pending)
            pending.clear()
            txid += 1
    assert fl.free_page_ids() == sorted(free)
    assert all(2 <= p < hwm for p in free)
    return hwm, len(free)


@pytest.mark.parametrize("case", [c for c, _ in CHEAP], ids=[i for _, i in CHEAP])
@pytest.mark.parametrize("spec", POLICIES)
def test_hashmap_policies_are_valid(trace_dir: Path, case: tuple[str, int, int], spec: str) -> None:
    trace, _ = _trace(case, trace_dir)
    hwm, count = validated_replay(trace, spec)
    result = replay(trace, spec)
    assert (result.final_hwm, result.free_count) == (hwm, count)


@pytest.mark.parametrize("case", ALL, ids=IDS)
@pytest.mark.parametrize("kind", ["array", "hashmap"])
def test_bbolts_own_freelists_are_valid(
    bbolt: ModuleType, trace_dir: Path, case: tuple[str, int, int], kind: str
) -> None:
    _, path = _trace(case, trace_dir)
    out = bbolt.replay(path, kind, validate=True)  # raises naming the step that broke
    assert out["pending"] == 0


class _Greedy(ArrayFreelist):
    """Grows the file for every multi-page allocation: wasteful, and caught."""

    def allocate(self, txid: int, n: int) -> int:
        return 0 if n > 1 else super().allocate(txid, n)


class _Overlapping(ArrayFreelist):
    """Hands out page 2 twice: caught."""

    def allocate(self, txid: int, n: int) -> int:
        got = super().allocate(txid, n)
        return 2 if got and n == 1 else got


@pytest.mark.parametrize("broken", [_Greedy, _Overlapping])
def test_the_validator_catches_a_broken_freelist(
    trace_dir: Path, broken: Callable[[list[int]], Freelist]
) -> None:
    trace, _ = _trace(("mixed", 2000, 300), trace_dir)
    with pytest.raises(AssertionError, match="op "):
        validated_replay(trace, broken)


# wall_ns: the replay timed as a whole, the figure set beside bbolt's (docs/perf/vs_go.py).


def test_wall_run_makes_the_same_moves_without_the_split(trace_dir: Path) -> None:
    trace, _ = _trace(("seed", 2000, 300), trace_dir)
    split = run_ops(trace, registry.make("array", trace.free_ids()))
    whole = run_ops(trace, registry.make("array", trace.free_ids()), split=False)
    assert (whole.grown, whole.final_hwm) == (split.grown, split.final_hwm)
    assert (whole.alloc_ns, whole.free_ns, whole.commit_ns) == (0, 0, 0)
    assert whole.total_ns > 0
    assert replay(trace, "array").wall_ns is None
    result = replay(trace, "array", wall=True)
    assert result.wall_ns is not None
    assert result.wall_ns > 0


def test_wall_needs_a_factory_that_builds_anew(trace_dir: Path) -> None:
    trace, _ = _trace(("seed", 2000, 300), trace_dir)
    fl = registry.make("array", trace.free_ids())
    with pytest.raises(InvalidArgumentError, match="new freelist per call"):
        replay(trace, lambda _ids: fl, wall=True)


def test_cli_replay_and_compare_report_wall_ns(
    trace_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, path = _trace(("seed", 2000, 300), trace_dir)
    assert main(["replay", str(path), "--freelist", "array"]) == 0
    assert json.loads(capsys.readouterr().out)["wall_ns"] > 0
    assert main(["compare", "--free-pages", "500", "--txs", "20", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert all(r["wall_ns"] > 0 for row in rows for r in row["results"].values())
