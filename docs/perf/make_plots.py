"""Draw the performance page's plot and tables from saved ``freelist compare --json`` output.

Run from the repository root after refreshing the JSON::

    freelist compare --repeat 3 --json > docs/perf/compare-nosync.json
    freelist compare --repeat 3 --sync --json > docs/perf/compare-sync.json
    python docs/perf/make_plots.py

It writes ``docs/_static/replay.svg`` and ``docs/perf/tables.inc`` (included by
``docs/performance.rst``).
"""

from __future__ import annotations

import json
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
    lines = [
        f".. list-table:: {caption}",
        "   :header-rows: 1",
        "",
        "   * - free pages",
        "     - ops",
        "     - array",
        "     - hashmap",
        "     - speed-up",
        "     - hashmap us/op",
        "     - file growth a / h",
        "     - runs a / h",
    ]
    for r in rows:
        a, h = r["array"], r["hashmap"]
        start = r["start_hwm"]
        lines += [
            f"   * - {r['free_pages']:,}",
            f"     - {r['ops']:,}",
            f"     - {fmt(a['total_ns'])}",
            f"     - {fmt(h['total_ns'])}",
            f"     - {r['speedup']:.1f}x",
            f"     - {h['total_ns'] / r['ops'] / 1000:.2f}",
            f"     - {a['final_hwm'] - start:,} / {h['final_hwm'] - start:,}",
            f"     - {a['spans']:,} / {h['spans']:,}",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    nosync = load("compare-nosync.json")
    sync = load("compare-sync.json")
    fig, ax = plt.subplots(figsize=(6.8, 4.6))
    for rows, style, label in ((nosync, "-", ""), (sync, "--", ", synced")):
        sizes = [r["free_pages"] for r in rows]
        for kind, marker in (("array", "o"), ("hashmap", "s")):
            times = [r[kind]["total_ns"] / 1e9 for r in rows]
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


if __name__ == "__main__":
    main()
