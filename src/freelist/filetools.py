"""Command-line tools that work on page files: ``freelist check`` and ``freelist inspect``.

Both open the file read-only (a shared lock) and work on this project's page
files and on real bbolt databases alike.  ``--walk bbolt`` walks bbolt's B+tree
to find the pages in use, which a file without a synced freelist needs; the
default ``auto`` walks when the root page looks like a bbolt tree page.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any

from . import bbolt
from .errors import ReachabilityError
from .layout import BRANCH_PAGE, LEAF_PAGE, NO_FREELIST, Meta, PageHeader
from .pagefile import PageFile, Reachable

__all__ = ["add_commands", "open_for_tools"]


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the page-file subcommands on the ``freelist`` CLI's subparsers.

    Each subcommand sets ``func``: a callable taking the parsed namespace and
    returning the process exit code.

    Runtime complexity: O(1).
    """
    for name, func, text in (
        ("check", _cmd_check, "check a page file or bbolt database; exit 1 if it has problems"),
        ("inspect", _cmd_inspect, "show a file's metas, freelist and fragmentation"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("file", metavar="FILE")
        p.add_argument(
            "--walk",
            choices=["auto", "bbolt", "none"],
            default="auto",
            help="how to find the pages in use: bbolt's tree walk, none, or auto (default)",
        )
        p.add_argument(
            "--freelist",
            default="hashmap",
            metavar="SPEC",
            help="freelist to load the file into: array, hashmap[:POLICY] or "
            "package.module:Name (default hashmap)",
        )
        p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the lock")
        if name == "inspect":
            p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(func=func)


def _looks_like_bbolt(pf: PageFile) -> bool:
    root = pf.meta.root
    if not 2 <= root < pf.meta.hwm:
        return False
    with pf.view() as tx:
        head = PageHeader.unpack(tx.read(root))
    return head.id == root and head.flags in (BRANCH_PAGE, LEAF_PAGE)


def open_for_tools(
    path: str, walk: str, freelist: str, timeout: float
) -> tuple[PageFile, Reachable | None]:
    """Open ``path`` read-only and choose the reachability walk for it.

    :raises FreelistError: the file cannot be opened (see :meth:`PageFile.open`).

    Runtime complexity: as :meth:`PageFile.open`, plus the walk when one is used.
    """
    walker: Reachable | None = bbolt.reachable if walk in ("auto", "bbolt") else None
    try:
        pf = PageFile.open(
            path, readonly=True, freelist=freelist, reachable=walker, timeout=timeout
        )
    except ReachabilityError as e:
        if walker is not None:
            raise
        raise ReachabilityError(
            path, "the freelist is not synced to disk; --walk bbolt rebuilds it from the tree"
        ) from e
    if walk == "auto" and not _looks_like_bbolt(pf):
        walker = None
    return pf, walker


def _cmd_check(args: argparse.Namespace) -> int:
    pf, walker = open_for_tools(args.file, args.walk, args.freelist, args.timeout)
    with pf:
        problems = pf.check(walker)
    if problems:
        for p in problems:
            print(f"{args.file}: {p}")
        return 1
    how = "with bbolt's tree walk" if walker else "without a reachability walk"
    print(f"{args.file}: ok ({how})")
    return 0


def _meta_dict(m: Meta) -> dict[str, Any]:
    return {
        "txid": m.txid,
        "root": m.root,
        "freelist": None if m.freelist == NO_FREELIST else m.freelist,
        "hwm": m.hwm,
        "page_size": m.page_size,
    }


def _cmd_inspect(args: argparse.Namespace) -> int:
    pf, walker = open_for_tools(args.file, args.walk, args.freelist, args.timeout)
    with pf:
        st = pf.stats()
        spans = pf.freelist.free_spans()
        hist = Counter(n for _, n in spans)
        info: dict[str, Any] = {
            "file": args.file,
            "page_size": st.page_size,
            "file_size": st.file_size,
            "meta": _meta_dict(pf.meta),
            "freelist_synced": pf.meta.freelist != NO_FREELIST,
            "free_pages": st.free,
            "pending_pages": st.pending,
            "spans": st.spans,
            "largest_span": st.largest_span,
            "span_sizes": {str(k): hist[k] for k in sorted(hist)},
        }
        if walker is not None:
            info["page_types"] = dict(bbolt.page_types(pf))
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    m = info["meta"]
    print(f"{args.file}: page size {st.page_size}, {st.file_size:,} bytes")
    print(f"  meta: txid {m['txid']}, root {m['root']}, high-water mark {m['hwm']:,}, ", end="")
    print(f"freelist page {m['freelist'] if m['freelist'] is not None else 'not synced'}")
    print(f"  free pages {st.free:,}, pending {st.pending:,}, ", end="")
    print(f"in {st.spans:,} runs, longest {st.largest_span:,}")
    if "page_types" in info:
        print("  pages: " + ", ".join(f"{k} {v:,}" for k, v in info["page_types"].items()))
    if hist:
        print("  run sizes: " + ", ".join(f"{k}x{hist[k]}" for k in sorted(hist)[:20]))
    return 0
