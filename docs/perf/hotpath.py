"""The hot path against a baseline commit, side by side in one run.

Extracts ``src/freelist`` at a git revision (default: c035ee1, the commit
before the hot-path work) into a temporary folder, imports it as the package
``freelist_base``, and measures it against the working tree's ``freelist``,
interleaved (baseline, new, baseline, new...), printing the minimum of each
(the least disturbed run: the machine may be shared) and the ratio new /
baseline:

* seed trace replay (2,000 transactions) per operation, best-fit hashmap, at
  each size; the same replay loop (this tree's :func:`freelist.trace.run_ops`)
  drives both versions;
* the rise of that cost from the smallest to the largest size, per version;
* the same two with a lean loop: the replay timed as a whole, without
  :func:`~freelist.trace.run_ops`' timer call after every operation (about
  0.1 us of harness per operation in both versions, which dilutes the ratio);
* the one-page allocate + free + release cycle, hashmap and array, on a free
  list fragmented into runs of one and two pages (``opcost.py``'s layout);
* with ``--profile``, the cost of each kind of operation of the seed replay:
  one-page and longer allocations, frees of an allocation (``F``) and of
  pages in use at the start (``D``), and the commit (``C``: the release,
  where the runs given back merge), each timed on its own.

``--first-fit`` measures first fit against best fit instead (this tree
only, lean loop), on the seed trace and on the seed trace with its ``D``
lines shuffled (``firstfit.py --shuffled``), and checks at 10^5 and below
that first fit ends with the array's free set.

``--clock cpu`` times with the thread's CPU clock instead of the wall clock
(less disturbed by other processes on a shared machine; the wall clock is
what bbolt's Go benchmark reads).

``--scenario`` (repeatable) replays other scenarios than the seed (``mixed``,
``large-values`` ... whose files are sparser: their runs stay in the hashmap's
spill dict rather than its run table), ``--policy`` another hashmap policy.

Run from the repository root::

    python docs/perf/hotpath.py [--base REV] [--repeat 7] [--sizes ...]
        [--scenario seed ...] [--policy best-fit] [--profile] [--no-cycle]
        [--clock wall|cpu] [--first-fit]
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

from firstfit import shuffled  # type: ignore[import-not-found]  # noqa: E402
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


#: the clock of every measurement (``--clock``).
clock = time.perf_counter_ns

#: the kinds of operation of :func:`profile_ns`.
KINDS = ("A 1", "A n", "F", "D", "C")


def profile_ns(pkg: ModuleType, trace: Trace, policy: str = "best-fit") -> dict[str, float]:
    """Nanoseconds per operation of one replay, by kind of operation
    (:data:`KINDS`), each operation timed on its own (one clock call each,
    about 0.05 us, is in every figure)."""
    fl = pkg.HashmapFreelist(trace.free_ids(), policy=policy)
    gc.collect()
    pc = clock
    allocate, free, release = fl.allocate, fl.free, fl.release
    hwm = trace.hwm
    starts: list[int] = []
    sizes: list[int] = []
    txid = 2
    spent = dict.fromkeys(KINDS, 0)
    count = dict.fromkeys(KINDS, 0)
    for code, a, b in trace.ops:
        if code == "A":
            t0 = pc()
            s = allocate(txid, a)
            t1 = pc()
            kind = "A 1" if a == 1 else "A n"
            if not s:
                s = hwm
                hwm += a
            starts.append(s)
            sizes.append(a)
        elif code == "F":
            s, n = starts[a], sizes[a]
            t0 = pc()
            free(txid, s, n)
            t1 = pc()
            kind = "F"
        elif code == "D":
            t0 = pc()
            free(txid, a, b)
            t1 = pc()
            kind = "D"
        else:
            t0 = pc()
            release(txid)
            t1 = pc()
            kind = "C"
            txid += 1
        spent[kind] += t1 - t0
        count[kind] += 1
    out = {k: spent[k] / count[k] for k in KINDS if count[k]}
    out["all"] = sum(spent.values()) / len(trace.ops)
    return out


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
    t0 = clock()
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
    return (clock() - t0) / len(ops)


def cycle_ns(fl: Any, rounds: int) -> float:
    """Median nanoseconds of allocate(1) + free + release, timed as one."""
    pc = clock
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


def first_fit(sizes: list[int], repeat: int, clock_name: str) -> None:
    """First fit against best fit on the seed trace, frees in order and
    shuffled (lean loop, minimum of ``repeat`` interleaved runs)."""
    print(f"first fit against best fit; minimum of {repeat} interleaved runs; {clock_name} clock")
    print(
        f"{'free pages':>10} {'trace':>9} {'best us/op':>10} {'first us/op':>11} {'first/best':>10}"
    )
    for size in sizes:
        seed = generate("seed", size, 2000, 1)
        for label, trace in (("seed", seed), ("shuffled", shuffled(seed))):
            got: dict[str, list[float]] = {"best-fit": [], "first-fit": []}
            for _ in range(repeat):
                for policy, times in got.items():
                    times.append(lean_ns(freelist, trace, policy))
            b, f = (min(got[p]) / 1000 for p in ("best-fit", "first-fit"))
            same = ""
            if size <= 10**5:
                arr = freelist.ArrayFreelist(trace.free_ids())
                ff = freelist.HashmapFreelist(trace.free_ids(), policy="first-fit")
                run_ops(trace, arr)
                run_ops(trace, ff)
                same = f"  array's free set: {arr.free_page_ids() == ff.free_page_ids()}"
            print(f"{size:>10,} {label:>9} {b:10.2f} {f:11.2f} {f / b:10.2f}{same}", flush=True)


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
    ap.add_argument("--profile", action="store_true", help="cost by kind of operation")
    ap.add_argument("--no-cycle", action="store_true", help="skip the one-page cycle")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    ap.add_argument("--first-fit", action="store_true", help="first fit against best fit")
    args = ap.parse_args()
    global clock  # noqa: PLW0603 - one clock for every measurement
    clock = time.perf_counter_ns if args.clock == "wall" else time.thread_time_ns
    scenarios = args.scenario or ["seed"]
    if args.first_fit:
        first_fit(args.sizes, args.repeat, args.clock)
        return
    with tempfile.TemporaryDirectory() as tmp:
        base = load_base(args.base, Path(tmp))
        pkgs = {"base": base, "new": freelist}
        print(
            f"baseline {args.base} vs working tree; minimum of {args.repeat} interleaved runs;"
            f" {args.clock} clock"
        )
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
        if args.profile:
            for scenario, size in ((sc, size) for sc in scenarios for size in args.sizes):
                trace = made[scenario][size]
                prof: dict[str, list[dict[str, float]]] = {"base": [], "new": []}
                for _ in range(args.repeat):
                    for name, pkg in pkgs.items():
                        prof[name].append(profile_ns(pkg, trace, policy))
                print(f"{scenario} replay at {size:,} free pages, {policy}: us per operation")
                print(f"{'operation':>9} {'count':>6} {'base':>8} {'new':>8} {'new/base':>9}")
                counts = {
                    "A 1": sum(1 for c, a, _ in trace.ops if c == "A" and a == 1),
                    "A n": sum(1 for c, a, _ in trace.ops if c == "A" and a > 1),
                    "F": sum(1 for c, _, _ in trace.ops if c == "F"),
                    "D": sum(1 for c, _, _ in trace.ops if c == "D"),
                    "C": sum(1 for c, _, _ in trace.ops if c == "C"),
                    "all": len(trace.ops),
                }
                for kind in (*KINDS, "all"):
                    if not counts[kind]:
                        continue
                    b, n = (min(p[kind] for p in prof[k]) / 1000 for k in ("base", "new"))
                    print(f"{kind:>9} {counts[kind]:>6,} {b:8.2f} {n:8.2f} {n / b:9.2f}")
        if args.no_cycle:
            return
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
