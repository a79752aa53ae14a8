"""The ``freelist`` command line: compare, trace, replay, check, inspect.

``freelist compare`` is the main job: it generates the seed scenario at
several free-list sizes, replays it on a set of freelists (by default the
array and the best-fit hashmap; any specs of :mod:`freelist.registry` with
``--freelists``) and prints one table of completion times, speed-up, file
growth, final fragmentation and free pages at the end of the file.  Progress and
the table use :mod:`rich` when it is installed (the ``cli`` extra); otherwise
the output is plain text.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__, filemap, filetools, registry
from .errors import FreelistError, InvalidArgumentError
from .fromfile import trace_from_file
from .hashmap import POLICIES
from .trace import SCENARIOS, ReplayResult, generate, read, replay

__all__ = ["main"]

DEFAULT_SIZES = [1_000, 10_000, 100_000, 1_000_000]


def _positive(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _spec_list(text: str) -> list[str]:
    specs = [t.strip() for t in text.split(",") if t.strip()]
    if not specs:
        raise argparse.ArgumentTypeError("name at least one freelist")
    return specs


def _resolve_all(specs: Sequence[str], policy: str) -> list[registry.FreelistSpec]:
    """Resolve every spec up front, so a bad one fails before any replay."""
    out = [registry.resolve(spec, policy=policy) for spec in specs]
    labels = [s.label for s in out]
    for label in labels:
        if labels.count(label) > 1:
            raise InvalidArgumentError(f"--freelists names {label!r} twice")
    return out


def _baseline(labels: Sequence[str]) -> str:
    """What speed-up is measured against: the array when listed, else the first."""
    return "array" if "array" in labels else labels[0]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="freelist",
        description="bbolt's page allocators in Python: compare them, replay traces, "
        "inspect page files.",
        epilog="A freelist spec package.module:Name is imported from the installed packages, "
        "else from the current folder (only while that spec is resolved).",
    )
    parser.add_argument("--version", action="version", version=f"freelist {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cmp = sub.add_parser(
        "compare",
        help="replay the seed scenario on several freelists and compare them (the main job)",
        description="Generate a workload at each free-list size, replay it on each freelist "
        "(default: the array and the hashmap) and print completion time, speed-up, file "
        "growth, final fragmentation and the free pages at the end of the file.",
    )
    cmp.add_argument(
        "--scenario", choices=SCENARIOS, default="seed", help="workload shape (default seed)"
    )
    cmp.add_argument(
        "--free-pages",
        type=_positive,
        nargs="+",
        default=DEFAULT_SIZES,
        metavar="N",
        help="free-list sizes to run (default: %(default)s)",
    )
    cmp.add_argument("--txs", type=_positive, default=2000, help="transactions (default 2000)")
    cmp.add_argument("--seed", type=int, default=1, help="workload seed (default 1)")
    cmp.add_argument("--repeat", type=_positive, default=1, help="runs per cell; median shown")
    cmp.add_argument(
        "--freelists",
        type=_spec_list,
        default=list(registry.DEFAULT_SPECS),
        metavar="SPEC,SPEC,...",
        help="freelists to compare, comma-separated specs: array, hashmap, hashmap:POLICY "
        f"({', '.join(POLICIES)}) or package.module:Name (default: "
        f"{','.join(registry.DEFAULT_SPECS)}); speed-up is against the array, or the "
        "first spec when the array is not listed",
    )
    cmp.add_argument(
        "--policy",
        choices=POLICIES,
        default="best-fit",
        help="policy of a bare 'hashmap' in --freelists (default best-fit)",
    )
    cmp.add_argument(
        "--sync", action="store_true", help="build the sorted freelist page at every commit"
    )
    cmp.add_argument("--json", action="store_true", help="print the results as JSON")
    cmp.add_argument(
        "--from",
        dest="from_file",
        metavar="FILE",
        help="start from FILE's free pages (a page file or bbolt database, read-only) and "
        "replay the scenario's churn on top, instead of the generated --free-pages sizes",
    )
    cmp.add_argument("--plot", metavar="FILE", help="draw time vs free-list size (png or svg)")
    cmp.set_defaults(func=_cmd_compare)

    tr = sub.add_parser(
        "trace",
        help="generate a workload trace",
        description="Write a workload trace (H, S, A, F, D and C lines; see the docs' "
        "CLI page) for a scenario; the same arguments always give the same trace.",
    )
    tr.add_argument("--scenario", choices=SCENARIOS, default="seed", help="workload shape")
    tr.add_argument(
        "--free-pages",
        type=_positive,
        default=100_000,
        metavar="N",
        help="free pages at the start (default %(default)s)",
    )
    tr.add_argument("--txs", type=_positive, default=2000, help="transactions (default 2000)")
    tr.add_argument("--seed", type=int, default=1, help="workload seed (default 1)")
    tr.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    tr.set_defaults(func=_cmd_trace)

    rp = sub.add_parser(
        "replay",
        help="replay a trace on one freelist; print one JSON object",
        description="Replay TRACE on a new freelist and print one JSON object: the "
        "freelist, the times (ns) of the replay loop by operation kind, file growth "
        "and the final free set (count, runs, SHA-256 of the sorted ids).",
    )
    rp.add_argument("trace", metavar="TRACE", help="a trace file (see `freelist trace`)")
    rp.add_argument(
        "--freelist",
        default="hashmap",
        metavar="SPEC",
        help="array, hashmap, hashmap:POLICY or package.module:Name (default hashmap)",
    )
    rp.add_argument(
        "--policy",
        choices=POLICIES,
        default="best-fit",
        help="policy of a bare 'hashmap' (default best-fit)",
    )
    rp.add_argument("--sync", action="store_true", help="build the freelist page at every commit")
    rp.set_defaults(func=_cmd_replay)

    filetools.add_commands(sub)
    return parser


def _cmd_trace(args: argparse.Namespace) -> int:
    trace = generate(args.scenario, args.free_pages, args.txs, args.seed)
    if args.output:
        trace.save(args.output)
    else:
        trace.write(sys.stdout)
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    trace = read(args.trace)
    result = replay(trace, args.freelist, policy=args.policy, sync=args.sync)
    print(json.dumps(result.as_dict()))
    return 0


def _median_run(runs: list[ReplayResult]) -> ReplayResult:
    totals = sorted(r.total_ns for r in runs)
    mid = statistics.median_low(totals)
    return next(r for r in runs if r.total_ns == mid)


def _compare_rows(
    args: argparse.Namespace, specs: list[registry.FreelistSpec], tick: Callable[[str], None]
) -> list[dict[str, Any]]:
    """One row per size: ``results`` maps each spec's label to its median replay
    (every :class:`ReplayResult` field plus ``speedup`` against ``baseline``)."""
    labels = [sp.label for sp in specs]
    base = _baseline(labels)
    width = max(map(len, labels))
    rows: list[dict[str, Any]] = []
    for want in [0] if args.from_file else args.free_pages:
        if args.from_file:
            tick(f"reading {args.from_file}")
            trace = trace_from_file(args.from_file, args.scenario, args.txs, args.seed)
        else:
            tick(f"generating {args.scenario} trace, {want:,} free pages")
            trace = generate(args.scenario, want, args.txs, args.seed)
        size = sum(n for _, n in trace.spans)
        results: dict[str, dict[str, Any]] = {}
        for sp in specs:
            runs = []
            for i in range(args.repeat):
                tick(f"{sp.label:{width}} {size:>9,} free pages, run {i + 1}/{args.repeat}")
                runs.append(replay(trace, sp.factory, sync=args.sync))
            res = _median_run(runs).as_dict()
            res["type"], res["policy"] = sp.kind, sp.policy
            results[sp.label] = res
        for res in results.values():
            res["speedup"] = results[base]["total_ns"] / max(1, res["total_ns"])
        rows.append(
            {
                "scenario": args.scenario,
                "free_pages": size,
                "ops": len(trace.ops),
                "start_hwm": trace.hwm,
                "baseline": base,
                "results": results,
            }
        )
    return rows


def _fmt_s(ns: int) -> str:
    return f"{ns / 1e9:.3f} s" if ns >= 1e8 else f"{ns / 1e6:.1f} ms"


HEADERS = [
    "scenario",
    "free pages",
    "freelist",
    "time",
    "speed-up",
    "us/op",
    "grown",
    "spans",
    "largest span",
    "free tail",
]


def _table_rows(row: dict[str, Any]) -> list[list[str]]:
    start = int(row["start_hwm"])
    out = []
    for label, r in row["results"].items():
        out.append(
            [
                str(row["scenario"]),
                f"{row['free_pages']:,}",
                label,
                _fmt_s(r["total_ns"]),
                f"{r['speedup']:.1f}x",
                f"{r['total_ns'] / max(1, r['ops']) / 1000:.2f}",
                f"{r['final_hwm'] - start:,}",
                f"{r['spans']:,}",
                f"{r['largest_span']:,}",
                f"{r['free_tail']:,}",
            ]
        )
    return out


def _caption(rows: list[dict[str, Any]]) -> str:
    base = rows[0]["baseline"] if rows else "array"
    return (
        f"speed-up: against {base}; grown: pages the file grew by; "
        "free tail: free pages at the end of the file"
    )


def _print_table(rows: list[dict[str, Any]], title: str) -> None:
    body = [cells for r in rows for cells in _table_rows(r)]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        cells = [HEADERS, *body]
        widths = [max(len(c[i]) for c in cells) for i in range(len(HEADERS))]
        print(title)
        print(_caption(rows))
        for c in cells:
            print("  ".join(v.rjust(w) for v, w in zip(c, widths, strict=True)))
        return
    table = Table(title=title, caption=_caption(rows))
    for i, h in enumerate(HEADERS):
        table.add_column(h, justify="left" if i < 3 else "right", no_wrap=True)
    per_size = len(rows[0]["results"]) if rows else 1
    for i, line in enumerate(body):
        table.add_row(*line, end_section=(i + 1) % per_size == 0)
    console = Console()
    if not console.is_terminal:
        console = Console(width=150)  # a pipe or a file: don't wrap at 80 columns
    console.print(table)


def _plot(rows: list[dict[str, Any]], path: str, title: str) -> None:
    plt = filemap.pyplot()
    sizes = [r["free_pages"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    markers = "osD^v<>p*hx+"
    for i, label in enumerate(rows[0]["results"] if rows else ()):
        times = [r["results"][label]["total_ns"] / 1e9 for r in rows]
        ax.plot(sizes, times, marker=markers[i % len(markers)], label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("free pages")
    ax.set_ylabel("replay time (s)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        fig.savefig(path)
    except (OSError, ValueError) as e:
        raise FreelistError(f"{path}: cannot write the plot: {e}") from e
    finally:
        plt.close(fig)


def _cmd_compare(args: argparse.Namespace) -> int:
    specs = _resolve_all(args.freelists, args.policy)
    title = (
        f"{args.scenario} scenario, {args.txs} transactions, median of {args.repeat}"
        f"{', freelist synced at every commit' if args.sync else ''}"
        f"{f', starting from {args.from_file}' if args.from_file else ''}"
    )
    if args.plot:
        filemap.check_plot_path(args.plot)  # fail before the long run, not after it
    rows: list[dict[str, Any]]
    try:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )
    except ImportError:
        # Plain text: one line per step on stderr, so stdout stays the table or JSON.
        rows = _compare_rows(args, specs, lambda msg: print(msg, file=sys.stderr, flush=True))
    else:
        sizes = 1 if args.from_file else len(args.free_pages)
        steps = sizes * (1 + len(specs) * args.repeat)
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as progress:
            task = progress.add_task("starting", total=steps)
            done = 0

            def tick(msg: str) -> None:
                # Called as each step starts: the steps before it are complete.
                nonlocal done
                progress.update(task, description=msg, completed=done)
                done += 1

            rows = _compare_rows(args, specs, tick)
    if args.plot:
        _plot(rows, args.plot, title)
    if args.json:
        print(json.dumps({"title": title, "rows": rows}, indent=1))
    else:
        _print_table(rows, title)
        if args.plot:
            print(f"plot written to {args.plot}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``freelist`` command line with ``argv`` (default: ``sys.argv[1:]``).

    Returns the exit code: 0 on success, 1 when a check finds problems, 2 on an
    error (printed as one line on stderr).  Import-path freelist specs
    (``package.module:Name``) resolve from the current directory too, searched
    after the installed packages, and only while the spec is resolved
    (:func:`freelist.registry.imports_from_cwd`).

    Runtime complexity: that of the command run.
    """
    args = _build_parser().parse_args(argv)
    try:
        with registry.imports_from_cwd():
            code: int = args.func(args)
    except FreelistError as e:
        print(f"freelist: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("freelist: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
