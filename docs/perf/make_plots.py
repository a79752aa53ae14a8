"""Draw the performance page's plot and tables from saved ``freelist compare --json`` output.

Run from the repository root after refreshing the JSON::

    freelist compare --repeat 3 --json > docs/perf/compare-nosync.json
    freelist compare --repeat 3 --sync --json > docs/perf/compare-sync.json
    python -m pytest benchmarks --benchmark-json=/tmp/bench.json
    python docs/perf/make_plots.py /tmp/bench.json

It writes ``docs/_static/replay.svg`` and ``docs/perf/tables.inc`` from the
``compare`` output (``{"rows": [{"free_pages", "ops", "start_hwm", "baseline",
"results": {spec: replay fields + "speedup"}}]}``, any set of freelists),
``docs/perf/policies.inc`` from ``policies.py``'s ``policies.json``, and
``docs/_static/operations.svg`` from the benchmark JSON.  Given a
pytest-benchmark JSON file, it first saves the part the plot needs (each
benchmark's group, parameters and summary statistics, without the raw timings)
as ``docs/perf/bench.json``; without one it uses that saved file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
STATIC = HERE.parent / "_static"


def load(name: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads((HERE / name).read_text())["rows"]
    return rows


def fmt(ns: float) -> str:
    return f"{ns / 1e9:.2f} s" if ns >= 1e9 else f"{ns / 1e6:.1f} ms"


def table(rows: list[dict[str, Any]], caption: str) -> str:
    """One line per size: each freelist's time, the speed-up of the others
    against the baseline, and file growth and runs of each."""
    labels = list(rows[0]["results"])
    base = rows[0]["baseline"]
    others = [lb for lb in labels if lb != base]
    short = "/".join(lb.removeprefix("hashmap:") for lb in labels)
    head = ["free pages", "ops", *labels]
    head += [f"{lb} speed-up" for lb in others]
    head += [f"{others[0]} us/op"] if others else []
    head += [f"file growth {short}", f"runs {short}"]
    lines = [f".. list-table:: {caption}", "   :header-rows: 1", ""]
    lines += [("   * - " if i == 0 else "     - ") + h for i, h in enumerate(head)]
    for r in rows:
        res = r["results"]
        start = r["start_hwm"]
        cells = [f"{r['free_pages']:,}", f"{r['ops']:,}"]
        cells += [fmt(res[lb]["total_ns"]) for lb in labels]
        cells += [f"{res[lb]['speedup']:.1f}x" for lb in others]
        cells += [f"{res[others[0]]['total_ns'] / r['ops'] / 1000:.2f}"] if others else []
        cells += [" / ".join(f"{res[lb]['final_hwm'] - start:,}" for lb in labels)]
        cells += [" / ".join(f"{res[lb]['spans']:,}" for lb in labels)]
        lines += [("   * - " if i == 0 else "     - ") + c for i, c in enumerate(cells)]
    return "\n".join(lines) + "\n"


def policies_table(path: Path) -> str:
    """The three rules on every scenario (``policies.py``'s JSON): pages the file
    grew by, free runs, longest run and free pages at the end of the file."""
    rows = json.loads(path.read_text())["rows"]
    specs = ("array", "hashmap:best-fit", "hashmap:first-fit")
    lines = [
        ".. list-table:: Array (first fit) / best fit / first-fit hashmap after 2,000 "
        "transactions of each scenario",
        "   :header-rows: 1",
        "",
        "   * - scenario",
        "     - free pages",
        "     - pages grown",
        "     - free runs",
        "     - longest run",
        "     - free at the end",
        "     - first fit = array",
    ]
    for r in rows:
        res = [r["results"][s] for s in specs]
        start = r["start_hwm"]
        lines += [
            f"   * - {r['scenario']}",
            f"     - {r['free_pages']:,}",
            "     - " + " / ".join(f"{x['final_hwm'] - start:,}" for x in res),
            "     - " + " / ".join(f"{x['spans']:,}" for x in res),
            "     - " + " / ".join(f"{x['largest_span']:,}" for x in res),
            "     - " + " / ".join(f"{x['free_tail']:,}" for x in res),
            f"     - {'yes' if r['first_fit_equals_array'] else 'NO'}",
        ]
    return "\n".join(lines) + "\n"


#: Benchmark groups drawn in the operations plot, and their panel titles.
PANELS = {
    "allocate: exact fit": "allocate, exact fit (4 x 2 pages)",
    "allocate: split": "allocate, split a run (4 x 3 pages)",
    "allocate: failing": "allocate, no run long enough",
    "allocate + free + release": "allocate + free + release, 1 page",
    "free 16 pages": "free 16 pages + release",
    "release_pending": "release_pending with readers",
}


def trim(raw: Path) -> None:
    """Save the summary of a pytest-benchmark JSON file as ``bench.json``."""
    data = json.loads(raw.read_text())
    keep = ("median", "iqr", "mean", "min", "max", "rounds")
    out = {
        "machine_info": {
            k: data["machine_info"].get(k) for k in ("python_version", "cpu", "system")
        },
        "datetime": data.get("datetime"),
        "benchmarks": [
            {
                "group": b["group"],
                "name": b["name"],
                "params": b["params"],
                "extra_info": b["extra_info"],
                "stats": {k: b["stats"][k] for k in keep},
            }
            for b in data["benchmarks"]
        ],
    }
    (HERE / "bench.json").write_text(json.dumps(out, indent=1) + "\n")


def operations_plot() -> None:
    """Median time of each operation group against free-list size, log-log."""
    benches = json.loads((HERE / "bench.json").read_text())["benchmarks"]
    fig, axes = plt.subplots(2, 3, figsize=(11, 6.6), sharex=True)
    for ax, (prefix, title) in zip(axes.flat, PANELS.items(), strict=True):
        lines: dict[tuple[str, str], list[tuple[int, float]]] = {}
        for b in benches:
            if b["group"].startswith(prefix):
                p = b["params"]
                lines.setdefault((p["kind"], p["frag"]), []).append(
                    (p["size"], b["stats"]["median"] * 1e6)
                )
        for (kind, frag), points in sorted(lines.items()):
            points.sort()
            ax.plot(
                [x for x, _ in points],
                [y for _, y in points],
                "-" if kind == "hashmap" else "--",
                marker="s" if kind == "hashmap" else "o",
                label=f"{kind}, runs {frag}",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[1]:
        ax.set_xlabel("free pages")
    for ax in axes[:, 0]:
        ax.set_ylabel("median (us)")
    fig.tight_layout()
    fig.savefig(STATIC / "operations.svg")
    plt.close(fig)


def main() -> None:
    if len(sys.argv) > 1:
        trim(Path(sys.argv[1]))
    nosync = load("compare-nosync.json")
    sync = load("compare-sync.json")
    fig, ax = plt.subplots(figsize=(6.8, 4.6))
    for rows, style, label in ((nosync, "-", ""), (sync, "--", ", synced")):
        sizes = [r["free_pages"] for r in rows]
        for kind, marker in zip(rows[0]["results"], "osD^v", strict=False):
            times = [r["results"][kind]["total_ns"] / 1e9 for r in rows]
            ax.plot(sizes, times, style, marker=marker, label=f"{kind}{label}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("free pages")
    ax.set_ylabel("seed trace replay, 2000 transactions (s)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    STATIC.mkdir(exist_ok=True)
    fig.savefig(STATIC / "replay.svg")
    text = table(nosync, "Seed trace, freelist not written at commit (etcd's setting)")
    text += "\n" + table(
        sync, "Seed trace, sorted freelist built at every commit (bbolt's default)"
    )
    (HERE / "tables.inc").write_text(text)
    if (HERE / "policies.json").exists():
        (HERE / "policies.inc").write_text(policies_table(HERE / "policies.json"))
    plt.close(fig)
    operations_plot()


if __name__ == "__main__":
    main()
