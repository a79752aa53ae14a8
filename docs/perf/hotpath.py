"""The hot path against a baseline commit, side by side in one run.

Extracts ``src/freelist`` at a git revision (default: c035ee1, the commit
before the hot-path work) into a temporary folder, imports it as the package
``freelist_base``, and measures it against the working tree's ``freelist``,
interleaved (baseline, new, baseline, new...), printing medians and the ratio
new / baseline:

* seed trace replay (2,000 transactions) per operation, best-fit hashmap, at
  each size; the same replay loop (this tree's :func:`freelist.trace.run_ops`)
  drives both versions;
* the rise of that cost from the smallest to the largest size, per version;
* the same two with a lean loop: the replay timed as a whole, without
  :func:`~freelist.trace.run_ops`' timer call after every operation (about
  0.1 us of harness per operation in both versions, which dilutes the ratio);
* the one-page allocate + free + release cycle, hashmap and array, on a free
  list fragmented into runs of one and two pages (``opcost.py``'s layout).

``--scenario`` (repeatable) replays other scenarios than the seed (``mixed``,
``large-values`` ... whose files are sparser: their runs stay in the hashmap's
spill dict rather than its run table), ``--policy`` another hashmap policy.

Run from the repository root::

    python docs/perf/hotpath.py [--base REV] [--repeat 7] [--sizes ...]
        [--scenario seed ...] [--policy best-fit]
"""

from __future__ import annotations

import argparse
import gc
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from opcost import fragmented_ids  # type: ignore[import-not-found]  # noqa: E402

import freelist  # noqa: E402
from freelist.trace import Trace, generate, run_ops  # noqa: E402


def load_base(rev: str, into: Path) -> ModuleType:
    """Import ``src/freelist`` at git revision ``rev`` as ``freelist_base``."""
    pkg = into / "freelist_base"
    pkg.mkdir()
    names = subprocess.run(
        ["git", "ls-tree", "--name-only", rev, "src/freelist/"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for name in names:
        if name.endswith(".py"):
            text = subprocess.run(
                ["git", "show", f"{rev}:{name}"], cwd=ROOT, check=True, capture_output=True
            ).stdout
            (pkg / Path(name).name).write_bytes(text)
    sys.path.insert(0, str(into))
    return importlib.import_module("freelist_base")


def replay_ns(pkg: ModuleType, spec: str, trace: Trace, policy: str = "best-fit") -> float:
    """Nanoseconds per operation of one replay of ``trace`` on ``pkg``'s freelist."""
    if spec == "array":
        fl = pkg.ArrayFreelist(trace.free_ids())
    else:
        fl = pkg.HashmapFreelist(trace.free_ids(), policy=policy)
    gc.collect()
    return run_ops(trace, fl).total_ns / len(trace.ops)


def lean_ns(pkg: ModuleType, trace: Trace, policy: str = "best-fit") -> float:
    """Nanoseconds per operation of one replay, one timer around the whole loop.

    The operations and their order are :func:`run_ops`' (no ``--sync``).
    """
    fl = pkg.HashmapFreelist(trace.free_ids(), policy=policy)
    gc.collect()
    allocate, free, release = fl.allocate, fl.free, fl.release
    hwm = trace.hwm
    starts: list[int] = []
    sizes: list[int] = []
    txid = 2
    ops = trace.ops
    t0 = time.perf_counter_ns()
    for code, a, b in ops:
        if code == "A":
            s = allocate(txid, a)
            if not s:
                s = hwm
                hwm += a
            starts.append(s)
            sizes.append(a)
        elif code == "F":
            free(txid, starts[a], sizes[a])
        elif code == "D":
            free(txid, a, b)
        else:
            release(txid)
            txid += 1
    return (time.perf_counter_ns() - t0) / len(ops)


def cycle_ns(fl: Any, rounds: int) -> float:
    """Median nanoseconds of allocate(1) + free + release, timed as one."""
    pc = time.perf_counter_ns
    allocate, free, release = fl.allocate, fl.free, fl.release
    out = []
    txid = 10
    for _ in range(rounds):
        t0 = pc()
        s = allocate(txid, 1)
        free(txid, s, 1)
        release(txid)
        out.append(pc() - t0)
        txid += 1
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="c035ee1", help="baseline git revision (default c035ee1)")
    ap.add_argument("--repeat", type=int, default=7, help="interleaved runs per cell")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10**3, 10**4, 10**5, 10**6])
    ap.add_argument("--cycles", type=int, default=20000, help="cycles per cycle measurement")
    ap.add_argument(
        "--scenario",
        action="append",
        help="scenario to replay (repeatable; default: seed)",
    )
    ap.add_argument("--policy", default="best-fit", help="hashmap policy of the replays")
    args = ap.parse_args()
    scenarios = args.scenario or ["seed"]
    with tempfile.TemporaryDirectory() as tmp:
        base = load_base(args.base, Path(tmp))
        pkgs = {"base": base, "new": freelist}
        print(f"baseline {args.base} vs working tree; minimum of {args.repeat} interleaved runs")
        policy = args.policy
        made: dict[str, dict[int, Trace]] = {}
        loops = (
            (
                "run_ops, a timer per operation",
                lambda pkg, t: replay_ns(pkg, "hashmap", t, policy),
            ),
            ("lean loop, one timer per replay", lambda pkg, t: lean_ns(pkg, t, policy)),
        )
        for scenario, (label, measure) in ((sc, loop) for sc in scenarios for loop in loops):
            if scenario not in made:
                made[scenario] = {size: generate(scenario, size, 2000, 1) for size in args.sizes}
            traces = made[scenario]
            print(f"{scenario} replay, {policy} hashmap (us/op; {label})")
            print(f"{'free pages':>10} {'base':>8} {'new':>8} {'new/base':>9}")
            per_op: dict[str, list[float]] = {"base": [], "new": []}
            for size, trace in traces.items():
                got: dict[str, list[float]] = {"base": [], "new": []}
                for _ in range(args.repeat):
                    for name, pkg in pkgs.items():
                        got[name].append(measure(pkg, trace))
                b, n = (min(got[k]) / 1000 for k in ("base", "new"))
                per_op["base"].append(b)
                per_op["new"].append(n)
                print(f"{size:>10,} {b:8.2f} {n:8.2f} {n / b:9.2f}")
            for name in ("base", "new"):
                rise = per_op[name][-1] / per_op[name][0]
                print(f"rise {args.sizes[0]:,} -> {args.sizes[-1]:,}, {name}: {rise:.2f}x")
        print("one-page allocate + free + release (us)")
        print(f"{'free pages':>10} {'freelist':>8} {'base':>8} {'new':>8} {'new/base':>9}")
        for size in args.sizes:
            ids = fragmented_ids(size)
            for kind in ("hashmap", "array"):
                fls = {
                    name: (
                        pkg.HashmapFreelist(ids) if kind == "hashmap" else pkg.ArrayFreelist(ids)
                    )
                    for name, pkg in pkgs.items()
                }
                got = {"base": [], "new": []}
                for _ in range(args.repeat):
                    for name, fl in fls.items():
                        got[name].append(cycle_ns(fl, args.cycles // args.repeat))
                b, n = (min(got[k]) / 1000 for k in ("base", "new"))
                print(f"{size:>10,} {kind:>8} {b:8.2f} {n:8.2f} {n / b:9.2f}")


if __name__ == "__main__":
    main()
