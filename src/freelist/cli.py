"""The ``freelist`` command line: compare, trace, replay, check, inspect, compact.

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
import dataclasses
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__, bbolt, filemap, filetools, registry
from . import compact as compacting
from .errors import CorruptPageError, FileFormatError, FreelistError, InvalidArgumentError
from .fromfile import FileChurn, churn_from_file
from .hashmap import POLICIES
from .pagefile import PageFile
from .protocol import Freelist
from .trace import SCENARIOS, ReplayResult, generate, read, replay

__all__ = ["main"]

DEFAULT_SIZES = [1_000, 10_000, 100_000, 1_000_000]

#: Transactions of a workload when ``--txs`` is not given.
DEFAULT_TXS = 2000


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
        metavar="N",
        help=f"free-list sizes to run (default: {' '.join(map(str, DEFAULT_SIZES))}; "
        "not with --from, which starts from the file's free pages)",
    )
    cmp.add_argument(
        "--txs",
        type=_positive,
        help=f"transactions (default {DEFAULT_TXS}; with --from, at most {DEFAULT_TXS} and "
        "no more than free half of the file's pages in use)",
    )
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
    cmp.add_argument(
        "--json",
        action="store_true",
        help="print the results as JSON (each replay runs a second time, timed whole: wall_ns)",
    )
    cmp.add_argument(
        "--from",
        dest="from_file",
        metavar="FILE",
        help="start from FILE's free pages (a page file or bbolt database, read-only) and "
        "replay the scenario's churn on top, instead of the generated --free-pages sizes",
    )
    cmp.add_argument("--plot", metavar="FILE", help="draw time vs free-list size (png or svg)")
    filetools.add_file_options(cmp)  # for --from
    filetools.add_progress_option(cmp)
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
        "freelist, the times (ns) of the replay loop by operation kind and as a whole, file growth "
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
    _add_compact_command(sub)
    return parser


def _add_compact_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``compact`` subcommand (see :func:`_cmd_compact`)."""
    text = (
        "give a bbolt file's free space back: move its live pages down in place, a "
        "crash-safe commit at a time, and cut the tail (or with DST: write a compacted copy)"
    )
    cp = sub.add_parser("compact", help=text, description=text)
    cp.add_argument("file", metavar="FILE", help="a bbolt database (compacted in place)")
    cp.add_argument(
        "dst",
        metavar="DST",
        nargs="?",
        help="write a compacted copy to this new file instead; FILE is only read",
    )
    cp.add_argument(
        "--dry-run",
        action="store_true",
        help="say what would move and what would be given back; change nothing",
    )
    cp.add_argument(
        "--batch",
        type=_positive,
        metavar="PAGES",
        help=f"pages rewritten per commit at most, in place (default {compacting.DEFAULT_BATCH})",
    )
    cp.add_argument(
        "--timeout",
        type=filetools._seconds,
        default=filetools.DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="seconds to wait for the file's lock (default %(default)s; 0: do not wait, inf: "
        "wait for ever): exclusive in place, shared for a copy or a dry run",
    )
    cp.add_argument("--json", action="store_true", help="print the result as JSON")
    filetools.add_progress_option(cp)
    cp.set_defaults(func=_cmd_compact)


def _cmd_compact(args: argparse.Namespace) -> int:
    """``freelist compact``: in place, a copy, or a dry run; 1 when the file is damaged."""
    if args.dry_run and args.dst:
        raise InvalidArgumentError("--dry-run says what compacting FILE in place would do: no DST")
    if args.batch is not None and (args.dry_run or args.dst):
        raise InvalidArgumentError("--batch has an effect only when compacting in place")
    show = not args.no_progress
    name = os.path.basename(args.file)
    try:
        if args.dry_run:
            with PageFile.open(
                args.file, readonly=True, reachable=bbolt.reachable, timeout=args.timeout
            ) as pf:
                plan = compacting.plan(pf, check=True)
            info: dict[str, Any] = {"dry_run": True, **dataclasses.asdict(plan)}
            text = (
                f"{args.file}: would move {plan.move_pages:,} page(s) ({plan.move_objects:,} "
                f"object(s)) below page {plan.target_pages:,} and give back about "
                f"{plan.gives_back_bytes:,} bytes ({plan.file_size:,} -> about "
                f"{plan.target_pages * plan.page_size:,} bytes)"
            )
        elif args.dst:
            with filetools._Progress(f"{name}: copying", show=show) as bar:
                done = compacting.compact_copy(
                    args.file, args.dst, timeout=args.timeout, on_page=bar.advance
                )
            info = {"dry_run": False, **dataclasses.asdict(done)}
            text = (
                f"{args.dst}: a compacted copy of {args.file}, {done.size_after:,} bytes "
                f"({done.hwm_after:,} pages; the original has {done.size_before:,} bytes)"
            )
        else:
            with filetools._Progress(f"{name}: compacting", show=show) as bar:

                def tick(_commits: int, moved: int, _total: int) -> None:
                    bar.total = max(_total, moved)
                    bar.advance(moved - bar.done)

                done = compacting.compact_file(
                    args.file,
                    batch=args.batch or compacting.DEFAULT_BATCH,
                    timeout=args.timeout,
                    on_commit=tick,
                )
            info = {"dry_run": False, **dataclasses.asdict(done)}
            info["gave_back_bytes"] = done.gave_back_bytes
            text = (
                f"{args.file}: {done.commits} commit(s), moved {done.moved_pages:,} page(s) "
                f"(rewrote {done.rewritten_pages:,}), {done.size_before:,} -> "
                f"{done.size_after:,} bytes, gave back {done.gave_back_bytes:,}"
                if done.commits
                else f"{args.file}: already compact; nothing to move, no commit"
            )
    except (FileFormatError, CorruptPageError) as e:  # damage, as ``check`` counts it
        problems = e.problems if isinstance(e, compacting.DamagedFileError) else [str(e)]
        if args.json:
            print(json.dumps({"file": args.file, "problems": problems}, indent=1))
        else:
            print(f"{args.file}: refused, the file has problems (nothing changed):")
            for p in problems:
                print(f"  {p}")
        return 1
    print(json.dumps(info, indent=1) if args.json else text)
    return 0


def _cmd_trace(args: argparse.Namespace) -> int:
    trace = generate(args.scenario, args.free_pages, args.txs, args.seed)
    if args.output:
        trace.save(args.output)
    else:
        trace.write(sys.stdout)
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    trace = read(args.trace)
    result = replay(trace, args.freelist, policy=args.policy, sync=args.sync, wall=True)
    print(json.dumps(result.as_dict()))
    return 0


def _median_run(runs: list[ReplayResult]) -> ReplayResult:
    totals = sorted(r.total_ns for r in runs)
    mid = statistics.median_low(totals)
    return next(r for r in runs if r.total_ns == mid)


class _Commits:
    """A freelist whose ``release`` (one call per commit of a replay) also
    reports the commit to ``step``: how ``compare``'s progress moves inside a
    long replay.  One Python call per commit is added to the timed commits
    (well under a microsecond each); without progress the freelist runs bare."""

    __slots__ = ("_fl", "release")

    def __init__(self, fl: Freelist, step: Callable[[], None]) -> None:
        self._fl = fl
        inner = fl.release

        def release(txid: int) -> None:
            inner(txid)
            step()

        self.release = release

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fl, name)


def _compare_rows(
    args: argparse.Namespace,
    specs: list[registry.FreelistSpec],
    tick: Callable[[str], None],
    step: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per size: ``results`` maps each spec's label to its median replay
    (every :class:`ReplayResult` field plus ``speedup`` against ``baseline``).
    ``tick(message)`` is called as each step starts; ``step(done, total)``, when
    given, after each commit of a replay."""
    labels = [sp.label for sp in specs]
    base = _baseline(labels)
    width = max(map(len, labels))
    rows: list[dict[str, Any]] = []
    for want in [0] if args.from_file else args.free_pages or DEFAULT_SIZES:
        txs = args.txs or DEFAULT_TXS
        note = None
        if args.from_file:
            tick(f"reading {args.from_file}")
            churn = churn_from_file(
                args.from_file,
                args.scenario,
                txs,
                args.seed,
                timeout=args.timeout,
                progress=not args.no_progress,
                lock=not args.no_lock,
                fit=args.txs is None,
            )
            trace, txs, note = churn.trace, churn.txs, _churn_note(args.from_file, churn)
        else:
            tick(f"generating {args.scenario} trace, {want:,} free pages")
            trace = generate(args.scenario, want, txs, args.seed)
        size = sum(n for _, n in trace.spans)
        results: dict[str, dict[str, Any]] = {}
        for sp in specs:
            runs = []
            for i in range(args.repeat):
                tick(f"{sp.label:{width}} {size:>9,} free pages, run {i + 1}/{args.repeat}")
                # The whole-loop clock (wall_ns) costs a second replay: only --json shows it.
                runs.append(replay(trace, _factory(sp, step, txs), sync=args.sync, wall=args.json))
            res = _median_run(runs).as_dict()
            res["type"], res["policy"] = sp.kind, sp.policy
            results[sp.label] = res
        for res in results.values():
            res["speedup"] = results[base]["total_ns"] / max(1, res["total_ns"])
        rows.append(
            {
                "scenario": args.scenario,
                "free_pages": size,
                "txs": txs,
                "ops": len(trace.ops),
                "start_hwm": trace.hwm,
                "baseline": base,
                "results": results,
                **({"note": note} if note else {}),
            }
        )
    return rows


def _churn_note(path: str, churn: FileChurn) -> str | None:
    """What to tell about a churn on a file: cut to fit it, or emptying it."""
    share = f"{churn.freed:,} of its {churn.in_use:,} pages in use"
    if churn.txs < churn.asked:
        return (
            f"note: {path}: the churn runs {churn.txs:,} transactions, not {churn.asked:,}: they "
            f"free {share} (at most half); --txs sets the count"
        )
    if churn.emptied:
        return (
            f"warning: {path}: the churn frees every page the file had in use ({share}) before its "
            f"{churn.txs:,} transactions end, so the rest of the replay churns an emptied "
            "file; leave out --txs to fit the churn to the file"
        )
    return None


def _factory(
    sp: registry.FreelistSpec, step: Callable[[int, int], None] | None, txs: int
) -> Callable[[list[int]], Freelist]:
    """The spec's factory; with ``step``, the first freelist it builds reports
    each commit (a second one, the whole-loop run of ``wall_ns``, is built bare:
    its clock times no callback)."""
    if step is None:
        return sp.factory
    make = sp.factory
    built = 0

    def build(ids: list[int]) -> Freelist:
        nonlocal built
        built += 1
        if built > 1:
            return make(ids)
        done = 0

        def commit() -> None:
            nonlocal done
            done += 1
            step(done, txs)

        return _Commits(make(ids), commit)

    return build


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
    """The table's footer: what each column means."""
    base = rows[0]["baseline"] if rows else "array"
    return "\n".join(
        [
            "time: the replay of the whole trace (median of --repeat runs)",
            f"speed-up: {base}'s time / this time",
            "us/op: microseconds per operation of the trace (allocate, free or commit)",
            "grown: pages the file grew by, when no free run fitted",
            "spans: free runs at the end; largest span: the longest, in pages",
            "free tail: free pages at the end of the file",
        ]
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
        for c in cells:
            print("  ".join(v.rjust(w) for v, w in zip(c, widths, strict=True)))
        print(_caption(rows))
        return
    table = Table(title=title, caption=_caption(rows), caption_justify="left")
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


def _run_with_progress(
    args: argparse.Namespace, specs: list[registry.FreelistSpec]
) -> list[dict[str, Any]]:
    """:func:`_compare_rows` with its progress on stderr, so stdout stays the
    table or JSON: a rich bar that also moves with the commits of a long replay
    (only on a terminal), or one line per step without rich; nothing with
    ``--no-progress``."""
    if args.no_progress:
        return _compare_rows(args, specs, lambda _msg: None)
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
        return _compare_rows(args, specs, lambda msg: print(msg, file=sys.stderr, flush=True))
    console = Console(stderr=True)
    if not console.is_terminal:
        return _compare_rows(args, specs, lambda _msg: None)  # a bar only on a terminal
    sizes = 1 if args.from_file else len(args.free_pages or DEFAULT_SIZES)
    steps = sizes * (1 + len(specs) * args.repeat)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=steps)
        done = 0
        due = 0.0

        def tick(msg: str) -> None:
            # Called as each step starts: the steps before it are complete.
            nonlocal done
            progress.update(task, description=msg, completed=done)
            done += 1

        def step(commits: int, total: int) -> None:
            # Inside a replay: at most ten updates a second.
            nonlocal due
            now = time.monotonic()
            if now >= due:
                due = now + 0.1
                progress.update(task, completed=done - 1 + min(1.0, commits / total))

        return _compare_rows(args, specs, tick, step)


def _check_compare_options(args: argparse.Namespace) -> None:
    """Refuse options that would have no effect, before anything runs."""
    if args.from_file and args.free_pages:
        raise InvalidArgumentError(
            "--free-pages has no effect with --from: the replay starts from the file's own "
            "free pages"
        )
    if not args.from_file:
        if args.no_lock:
            raise InvalidArgumentError("--no-lock has an effect only with --from FILE")
        if args.timeout != filetools.DEFAULT_TIMEOUT:
            raise InvalidArgumentError("--timeout has an effect only with --from FILE")


def _cmd_compare(args: argparse.Namespace) -> int:
    _check_compare_options(args)
    specs = _resolve_all(args.freelists, args.policy)
    if args.plot:
        filemap.check_plot_path(args.plot)  # fail before the long run, not after it
    rows = _run_with_progress(args, specs)
    for row in rows:
        if "note" in row:
            print(f"freelist: {row['note']}", file=sys.stderr)
    txs = rows[0]["txs"] if rows else args.txs or DEFAULT_TXS
    title = (
        f"{args.scenario} scenario, {txs} transactions, median of {args.repeat}"
        f"{', freelist synced at every commit' if args.sync else ''}"
        f"{f', starting from {args.from_file}' if args.from_file else ''}"
    )
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
    error (printed as one line on stderr) or bad usage, 130 when interrupted,
    141 when the reader of stdout went away (quietly, as after SIGPIPE).
    Import-path freelist specs (``package.module:Name``) resolve from the
    current directory too, searched after the installed packages, and only
    while the spec is resolved (:func:`freelist.registry.imports_from_cwd`).

    Runtime complexity: that of the command run.
    """
    args = _build_parser().parse_args(argv)
    try:
        with registry.imports_from_cwd():
            code: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler
    except BrokenPipeError:
        return _closed_pipe()
    except FreelistError as e:
        print(f"freelist: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("freelist: interrupted", file=sys.stderr)
        return 130
    return code


def _closed_pipe() -> int:
    """The reader of stdout went away (``freelist compare --json | head -1``):
    end quietly, as a tool killed by SIGPIPE does, with the shell's code 141.
    stdout now points at /dev/null, so the interpreter's own flush at exit
    raises nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor behind stdout (a test's capture)
        pass
    return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
