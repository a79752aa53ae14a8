"""Command-line tools that work on page files: ``freelist check`` and ``freelist inspect``.

Both open the file read-only (a shared lock) and work on this project's page
files and on real bbolt databases alike.  ``--walk bbolt`` walks bbolt's B+tree
to find the pages in use, which a file without a synced freelist needs; the
default ``auto`` walks when the root page looks like a bbolt tree page.

``inspect`` reports the metas, the free runs, the pages by kind, what a
compacted copy would need, what ``freelist compact`` would move and give back
in place, and the free tail; ``--plot map.png`` draws where the
pages are (see :mod:`freelist.filemap`).  :func:`scan_file` does the work in
one pass over the tree and the free runs, with memory bounded by the map's
cells (not by the file's size).  A pass that lasts more than a moment shows a
progress bar on stderr (:mod:`rich`, the ``cli`` extra; plain lines without it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from . import bbolt, filemap
from .errors import (
    CorruptPageError,
    FileFormatError,
    FileIOError,
    FileLockedError,
    FreelistError,
    InvalidArgumentError,
    MissingFileError,
    PageFileError,
    ReachabilityError,
)
from .filemap import MAX_CELLS, PageMap
from .layout import (
    BRANCH_PAGE,
    LEAF_PAGE,
    META_SIZE,
    NO_FREELIST,
    PAGE_HEADER_SIZE,
    READ_PAGE_SIZES,
    Meta,
    PageHeader,
)
from .pagefile import PageFile, Reachable
from .runs import runs_of

__all__ = [
    "DEFAULT_TIMEOUT",
    "FileScan",
    "add_commands",
    "add_file_options",
    "add_progress_option",
    "open_for_tools",
    "scan_file",
    "snapshot",
]

#: The ways to find the pages in use (``--walk``).
WALKS = ("auto", "bbolt", "none")

#: Seconds a pass runs before its progress bar appears.
PROGRESS_DELAY = 0.5

#: Seconds a command waits for a file's lock by default (``--timeout``).
DEFAULT_TIMEOUT = 5.0

#: Sizes of the "run sizes" line of ``inspect`` (``--json`` lists them all).
RUN_SIZES_SHOWN = 20

Advance = Callable[[int], None]


def add_progress_option(p: argparse.ArgumentParser) -> None:
    """Add ``--no-progress`` to a subcommand that shows progress on stderr.

    Runtime complexity: O(1).
    """
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="show no progress on stderr (by default a pass that lasts more than half a "
        "second shows a bar, or plain lines without the cli extra)",
    )


def add_file_options(p: argparse.ArgumentParser) -> None:
    """Add the options of a subcommand that opens a file read-only: ``--timeout``
    for the shared lock and ``--no-lock`` for a snapshot without it.

    Runtime complexity: O(1).
    """
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="seconds to wait for the file's shared lock (default %(default)s; 0: do not "
        "wait, inf: wait for ever); a bbolt writer such as etcd holds an exclusive lock "
        "for as long as it runs",
    )
    p.add_argument(
        "--no-lock",
        action="store_true",
        help="do not take the lock: read a snapshot of a file a writer holds (a copy in "
        "$TMPDIR, taken again when a commit lands during it; needs the file's size free "
        "there)",
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be at least 0, got {text}")
    return value


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the page-file subcommands on the ``freelist`` CLI's subparsers.

    Each subcommand sets ``func``: a callable taking the parsed namespace and
    returning the process exit code.

    Runtime complexity: O(1).
    """
    for name, func, text in (
        (
            "check",
            _cmd_check,
            "check page files or bbolt databases: exit 0 when every file is sound, 1 when "
            "a file has problems (damage included), 2 on an error (a file that cannot be "
            "opened: missing, locked, unreadable; bad options)",
        ),
        (
            "inspect",
            _cmd_inspect,
            "show a file's metas, free runs, pages by kind, what a compacted copy would "
            "need and the free tail; --plot draws where the pages are",
        ),
    ):
        p = sub.add_parser(name, help=text, description=text)
        if name == "check":
            p.add_argument("files", nargs="+", metavar="FILE", help="page files or bbolt databases")
        else:
            p.add_argument("file", metavar="FILE", help="a page file or a bbolt database")
        p.add_argument(
            "--walk",
            choices=WALKS,
            default="auto",
            help="how to find the pages in use: bbolt's tree walk, none, or auto (default: "
            "walk when the root looks like a bbolt tree page)",
        )
        p.add_argument(
            "--freelist",
            default="hashmap",
            metavar="SPEC",
            help="freelist to load the file into: array, hashmap[:POLICY] or "
            "package.module:Name (default hashmap)",
        )
        add_file_options(p)
        add_progress_option(p)
        p.add_argument("--json", action="store_true", help="print JSON")
        if name == "inspect":
            p.add_argument(
                "--plot",
                metavar="FILE",
                help="draw a map of the file's pages by kind, with a histogram of free-run "
                "lengths (.png or .svg; needs the plot extra)",
            )
        p.set_defaults(func=func)


# --- progress ---------------------------------------------------------------------


class _Progress:
    """Progress of a pass over ``total`` pages, on stderr once it has lasted
    :data:`PROGRESS_DELAY` seconds: a rich bar, or a plain line every few
    seconds without rich.  Silent for short passes."""

    def __init__(self, what: str, total: int = 0, *, show: bool = True) -> None:
        self.what = what
        self.show = show
        self.total = total
        self.done = 0
        self._t0 = time.monotonic()
        self._next = self._t0 + PROGRESS_DELAY
        self._bar: Any = None
        self._task: Any = None
        self._plain = False

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now < self._next or not self.show:
            return
        if self._bar is None and not self._plain:
            self._start()
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, total=self.total or None)
            self._next = now + 0.1
        else:
            of = f" of {self.total:,}" if self.total else ""
            print(f"freelist: {self.what}: {self.done:,}{of} pages", file=sys.stderr, flush=True)
            self._next = now + 2.0

    def _start(self) -> None:
        try:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )
        except ImportError:
            self._plain = True
            return
        console = Console(stderr=True)
        if not console.is_terminal:
            self.show = False  # a bar only on a terminal (rich would leave a blank line)
            return
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("pages"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(self.what, total=self.total or None)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tree(pf: PageFile) -> Iterator[tuple[int, int, int]]:
    """``(pgid, pages, flags)`` of every tree page of the bbolt file ``pf``, streamed."""
    meta = pf.meta
    if not meta.root:
        return
    tx = pf.begin(False)
    try:
        yield from bbolt.walk(tx.read, meta.root, meta.hwm, pf.path)
    finally:
        tx.rollback()


def _walker(progress: _Progress | None) -> Reachable:
    """bbolt's reachability walk, streamed, reporting each page to ``progress``."""

    def reach(pf: PageFile) -> Iterator[tuple[int, int]]:
        for pgid, n, _flags in _tree(pf):
            if progress is not None:
                progress.advance(n)
            yield pgid, n

    return reach


# --- opening -----------------------------------------------------------------------

#: Copies :func:`snapshot` takes before it gives up on a file that keeps changing.
SNAPSHOT_TRIES = 3

#: Bytes of a meta page that a commit rewrites: its page header, fields and checksum.
_META_SPAN = PAGE_HEADER_SIZE + META_SIZE

_LOCK_HINT = (
    "a bbolt writer such as etcd holds its file's lock for as long as it runs; "
    "--no-lock reads a snapshot without the lock, or copy the file while no writer "
    "runs (for etcd: etcdctl snapshot save copy.db) and read the copy"
)


def _metas(path: str) -> bytes:
    """The bytes of both meta pages' fields, at every page size a file may have:
    what changes when a writer commits (page 0 at offset 0, page 1 at one page
    size, whatever that size is)."""
    with open(path, "rb") as f:
        out = [f.read(_META_SPAN)]
        for ps in READ_PAGE_SIZES:
            f.seek(ps)
            out.append(f.read(_META_SPAN))
    return b"".join(out)


def snapshot(path: str, folder: str, *, tries: int = SNAPSHOT_TRIES) -> str:
    """Copy ``path`` into ``folder`` without taking its lock and return the
    copy's path: a consistent snapshot of a file that a writer holds.

    A writer never rewrites a page that its newest committed meta reaches
    (copy-on-write) until a later commit has freed it, so a copy during which
    neither meta page changed holds a whole tree and freelist of that meta.
    The metas are read before and after the copy and in the copy itself; when
    they differ (a commit landed during the copy, or a meta page was copied
    half written) the copy is taken again, up to ``tries`` times.

    :raises FileLockedError: every copy saw a commit land: the writer commits
        more often than the file can be copied.
    :raises FileIOError: the file cannot be read or the copy written (no space
        left, say).
    :raises MissingFileError: ``path`` does not exist.

    Runtime complexity: O(file size) per copy, at most ``tries`` copies.
    """
    if not os.path.exists(path):
        raise MissingFileError(path, "no such file")
    dest = os.path.join(folder, os.path.basename(path) or "snapshot.db")
    for _ in range(tries):
        try:
            before = _metas(path)
            shutil.copyfile(path, dest)
            if before == _metas(path) == _metas(dest):
                return dest
        except OSError as e:
            raise FileIOError(path, f"cannot copy it to {folder}: {e.strerror or e}") from e
    raise FileLockedError(
        path,
        f"a commit landed during each of {tries} copies (--no-lock); copy the file while "
        "no writer runs (for etcd: etcdctl snapshot save copy.db) and read the copy",
    )


def _looks_like_bbolt(pf: PageFile) -> bool:
    root = pf.meta.root
    if not 2 <= root < pf.meta.hwm:
        return False
    with pf.view() as tx:
        head = PageHeader.unpack(tx.read(root))
    return head.id == root and head.flags in (BRANCH_PAGE, LEAF_PAGE)


def open_for_tools(
    path: str,
    walk: str,
    freelist: str,
    timeout: float,
    *,
    progress: bool = False,
    lock: bool = True,
) -> tuple[PageFile, Reachable | None]:
    """Open ``path`` read-only and choose the reachability walk for it.

    With ``lock`` (the default) the file is opened under a shared lock, waiting
    up to ``timeout`` seconds; without it, a :func:`snapshot` of the file is
    opened instead (the copy is deleted at once: the open file keeps it until
    it is closed), for a file a writer holds.

    ``walk`` is ``"auto"`` (bbolt's tree walk when the root looks like a bbolt
    tree page), ``"bbolt"`` or ``"none"``.  Returns the file and the walk to
    use with :meth:`PageFile.check` (None: no walk).  With ``progress``, a
    walk that rebuilds the free pages at opening (a file without a synced
    freelist) shows a progress bar on stderr when it lasts more than a moment.

    :raises FreelistError: the file cannot be opened (see :meth:`PageFile.open`);
        :class:`ReachabilityError` when its freelist is not synced and ``walk``
        is ``"none"``; :class:`FileLockedError` says how to read a file that
        a writer holds.
    :raises InvalidArgumentError: ``walk`` is not one of the three.

    Runtime complexity: as :meth:`PageFile.open`, plus the walk when one is used.
    """
    if walk not in WALKS:
        raise InvalidArgumentError(f"{path}: walk must be one of {', '.join(WALKS)}, got {walk!r}")
    bar = _Progress(f"{os.path.basename(path)}: walking the tree") if progress else None
    walker: Reachable | None = bbolt.reachable if walk in ("auto", "bbolt") else None
    folder = None if lock else tempfile.mkdtemp(prefix="freelist-snapshot-")
    try:
        copy = path if folder is None else snapshot(path, folder)
        try:
            pf = PageFile.open(
                copy,
                readonly=True,
                freelist=freelist,
                reachable=_walker(bar) if walker is not None else None,
                timeout=timeout,
            )
        except PageFileError as e:
            if copy != path:  # name the file asked for, not its snapshot
                e.args = (str(e).replace(copy, path),)
                e.path = path
            raise
    except FileLockedError as e:
        if "--no-lock" in str(e):
            raise
        raise FileLockedError(path, f"{str(e).removeprefix(f'{path}: ')}; {_LOCK_HINT}") from e
    except ReachabilityError as e:
        if walker is not None:
            raise
        raise ReachabilityError(
            path, "the freelist is not synced to disk; --walk bbolt rebuilds it from the tree"
        ) from e
    finally:
        if bar is not None:
            bar.close()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    if walk == "auto" and not _looks_like_bbolt(pf):
        walker = None
    return pf, walker


# --- scanning ----------------------------------------------------------------------


@dataclass(slots=True)
class FileScan:
    """What :func:`scan_file` found: the page map and the figures of the reports.

    ``map`` counts pages by kind (:data:`freelist.filemap.KINDS`); ``tree``
    counts tree page *objects* the way bbolt's page walk does (``branch`` and
    ``leaf``, each with its overflow pages); ``run_lengths`` maps a free-run
    length to its number of runs; ``walked`` says whether the tree was walked
    (without a walk, pages in use are of kind ``used`` and none is
    ``unreachable``).
    """

    path: str
    page_size: int
    file_size: int
    meta: Meta
    map: PageMap
    walked: bool
    freelist_pages: int
    free: int
    pending: int
    free_tail: int
    tree: Counter[str] = field(default_factory=Counter)
    run_lengths: Counter[int] = field(default_factory=Counter)

    @property
    def synced(self) -> bool:
        """Whether the file keeps its freelist on disk (not ``NoFreelistSync``)."""
        return self.meta.freelist != NO_FREELIST

    @property
    def in_use(self) -> int:
        """Pages below the high-water mark that are neither free nor pending."""
        return self.meta.hwm - self.free - self.pending

    @property
    def compacted_pages(self) -> int:
        """The pages a compacted copy would need: the two metas, the tree (every
        page in use but the freelist's and, after a walk, the unreachable
        ones), and one freelist page when the file syncs its freelist.  An
        estimate: a copy packs its leaves to bbolt's fill percent, which may
        differ from this file's."""
        t = self.map.total()
        if self.walked:
            tree = t["branch"] + t["leaf"] + t["overflow"]
        else:
            tree = self.in_use - 2 - self.freelist_pages
        return 2 + tree + (1 if self.synced else 0)

    def in_place(self) -> dict[str, int]:
        """What ``freelist compact FILE`` would do in place, estimated from the
        map: the pages in use (tree pages, or pages ``used`` without a walk)
        that lie at or past the compacted size and must move down
        (``move_pages``; exact when the map has a cell a page, else counted
        a cell at a time), and the bytes given back (the file past the
        compacted size).  The pages naming the last pages moved may leave a
        few holes, so the result can be a few pages longer.

        Runtime complexity: O(cells * kinds).
        """
        target = self.compacted_pages
        pm = self.map
        kinds = ("branch", "leaf", "overflow", "used")
        move = 0
        if pm.cells:
            first = min(target // pm.per, pm.cells)
            for c in range(first, pm.cells):
                counts = pm.counts(c)
                n = sum(counts.get(k, 0) for k in kinds)
                if c == first:  # the cell the target falls in: its share past it
                    past = c * pm.per + pm.cell_pages(c) - target
                    n = min(n, max(0, past))
                move += n
        back = max(0, self.file_size - target * self.page_size)
        return {"move_pages": move, "gives_back_bytes": back}

    def report(self) -> dict[str, Any]:
        """The figures as a JSON-ready dict: pages by kind, in use, compacted
        copy (pages, bytes, and the bytes and share of the file it gives back),
        free tail (pages and bytes below the high-water mark, bytes past it).

        Runtime complexity: O(kinds).
        """
        ps = self.page_size
        compact = self.compacted_pages * ps
        back = max(0, self.file_size - compact)
        return {
            "pages": {k: v for k, v in self.map.total().items() if v},
            "in_use_pages": self.in_use,
            "in_use_bytes": self.in_use * ps,
            "compacted": {
                "pages": self.compacted_pages,
                "bytes": compact,
                "gives_back_bytes": back,
                "gives_back_share": round(back / self.file_size, 4) if self.file_size else 0.0,
            },
            "compact_in_place": self.in_place(),
            "free_tail": {
                "pages": self.free_tail,
                "bytes": self.free_tail * ps,
                "past_hwm_bytes": max(0, self.file_size - self.meta.hwm * ps),
            },
        }


def scan_file(
    pf: PageFile,
    *,
    walk: bool,
    max_cells: int = MAX_CELLS,
    progress: Advance | None = None,
) -> FileScan:
    """Classify every page of the open file ``pf`` below its high-water mark, in
    one pass: metas, freelist pages, free and pending runs from the freelist,
    and with ``walk`` bbolt's tree (branch, leaf, overflow; the pages left are
    unreachable).  Without ``walk`` the pages left are ``used``.  ``progress``
    is called with the number of pages classified at each step.

    Memory: the map's ``max_cells`` cells (a 10^7-page file takes the same as a
    10^5-page one), plus the freelist's own runs.

    :raises FileFormatError: the tree walk finds a malformed tree.
    :raises ClosedError: ``pf`` is closed.
    :raises InvalidArgumentError: ``max_cells`` below 1.

    Runtime complexity: O(tree pages + elements + S log S + cells * kinds) for S
    free runs.
    """
    meta = pf.meta
    hwm = meta.hwm
    st = pf.stats()
    pmap = PageMap(hwm, max_cells)
    tick = progress or (lambda _n: None)
    pmap.add(0, 2, "meta")
    nfl = 0
    for s, n in pf.freelist_runs:  # bbolt's page and overflow, or the log's chain
        pmap.add(s, n, "freelist")
        nfl += n
    tick(2 + nfl)
    spans = sorted(pf.freelist.free_spans())
    lengths: Counter[int] = Counter()
    for s, n in spans:
        pmap.add(s, n, "free")
        lengths[n] += 1
        tick(n)
    pending = sorted(p for ids in pf.freelist.pending_page_ids().values() for p in ids)
    for s, n in runs_of(pending):
        pmap.add(s, n, "pending")
    tick(len(pending))
    tree: Counter[str] = Counter()
    if walk:
        for pgid, n, flags in _tree(pf):
            kind = "branch" if flags & BRANCH_PAGE else "leaf"
            tree[kind] += 1
            pmap.add(pgid, 1, kind)
            if n > 1:
                pmap.add(pgid + 1, n - 1, "overflow")
            tick(n)
    before = sum(pmap.totals)
    pmap.fill("unreachable" if walk else "used")
    tick(sum(pmap.totals) - before)
    tail = spans[-1][1] if spans and spans[-1][0] + spans[-1][1] == hwm else 0
    return FileScan(
        path=pf.path,
        page_size=st.page_size,
        file_size=st.file_size,
        meta=meta,
        map=pmap,
        walked=walk,
        freelist_pages=nfl,
        free=st.free,
        pending=st.pending,
        free_tail=tail,
        tree=tree,
        run_lengths=lengths,
    )


# --- commands ----------------------------------------------------------------------


def _check_one(args: argparse.Namespace, path: str) -> dict[str, Any]:
    """Check one file: ``{"file", "ok", "walk", "problems", "error"}``.

    Damage the checker meets on its way (a malformed file or tree, a corrupt
    page) is a problem of the file; a file that cannot be checked as asked
    (missing, locked, unreadable, not synced without a walk) is an error."""
    out: dict[str, Any] = {"file": path, "ok": False, "walk": None, "problems": [], "error": None}
    show = not args.no_progress
    opened = path  # the snapshot's path under --no-lock: messages name the file asked for
    try:
        pf, walker = open_for_tools(
            path, args.walk, args.freelist, args.timeout, progress=show, lock=not args.no_lock
        )
        opened = pf.path
        with pf:
            out["walk"] = "bbolt" if walker is not None else "none"
            if walker is not None:
                st = pf.stats()
                total = st.hwm - st.free - st.pending  # the tree's pages and any leaked ones
                what = f"{os.path.basename(path)}: checking"
                with _Progress(what, total, show=show) as bar:
                    problems = pf.check(_walker(bar))
            else:
                problems = pf.check(None)
    except (FileFormatError, CorruptPageError) as e:  # bbolt's tree errors included
        problems = [str(e).replace(opened, path).removeprefix(f"{path}: ")]
    except FreelistError as e:
        out["error"] = str(e).replace(opened, path)
        return out
    out["problems"] = [str(p).replace(opened, path) for p in problems]
    out["ok"] = not problems
    return out


def _cmd_check(args: argparse.Namespace) -> int:
    results = [_check_one(args, path) for path in args.files]
    if args.json:
        print(json.dumps({"ok": all(r["ok"] for r in results), "files": results}, indent=1))
    else:
        for r in results:
            if r["error"] is not None:
                print(f"freelist: error: {r['error']}", file=sys.stderr)
            elif r["problems"]:
                for p in r["problems"]:
                    print(f"{r['file']}: {p}")
            else:
                walked = r["walk"] == "bbolt"
                how = "with bbolt's tree walk" if walked else "without a reachability walk"
                print(f"{r['file']}: ok ({how})")
    if any(r["error"] is not None for r in results):
        return 2
    return 0 if all(r["ok"] for r in results) else 1


def _meta_dict(m: Meta) -> dict[str, Any]:
    return {
        "txid": m.txid,
        "root": m.root,
        "freelist": None if m.freelist == NO_FREELIST else m.freelist,
        "hwm": m.hwm,
        "page_size": m.page_size,
    }


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} bytes" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")  # pragma: no cover


def _cmd_inspect(args: argparse.Namespace) -> int:
    if args.plot:
        filemap.check_plot_path(args.plot)  # fail before the long pass, not after it
    show = not args.no_progress
    pf, walker = open_for_tools(
        args.file, args.walk, args.freelist, args.timeout, progress=show, lock=not args.no_lock
    )
    with pf:
        what = f"{os.path.basename(args.file)}: mapping pages"
        with _Progress(what, pf.meta.hwm, show=show) as bar:
            scan = scan_file(pf, walk=walker is not None, progress=bar.advance)
        st = pf.stats()
        stored = pf.stored_freelist()
    hist = scan.run_lengths
    info: dict[str, Any] = {
        "file": args.file,
        "page_size": st.page_size,
        "file_size": st.file_size,
        "meta": _meta_dict(scan.meta),
        "freelist_synced": scan.synced,
        "stored_freelist": stored,
        "free_pages": st.free,
        "pending_pages": st.pending,
        "spans": st.spans,
        "largest_span": st.largest_span,
        "span_sizes": {str(k): hist[k] for k in sorted(hist)},
        **scan.report(),
    }
    if walker is not None:
        # bbolt's page walk counts: overflow pages with their owner, pending as free
        types = Counter(meta=2, freelist=1 if scan.synced else 0, **scan.tree)
        types["free"] = st.free + st.pending
        info["page_types"] = {k: v for k, v in types.items() if v}
    if args.plot:
        filemap.draw(scan.map, hist, args.plot, title=args.file, page_size=scan.page_size)
        info["plot"] = args.plot
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    _print_inspect(info)
    return 0


def _print_inspect(info: dict[str, Any]) -> None:
    m, ps = info["meta"], info["page_size"]
    print(f"{info['file']}: page size {ps}, {info['file_size']:,} bytes")
    print(f"  meta: txid {m['txid']}, root {m['root']}, high-water mark {m['hwm']:,}, ", end="")
    print(f"freelist page {m['freelist'] if m['freelist'] is not None else 'not synced'}")
    sf = info["stored_freelist"]
    line = f"  stored freelist: {sf['format']}, {sf['pages']:,} page(s)"
    if "chain_runs" in sf:
        line += (
            f", a chain of {sf['chain_runs']} run(s), checkpoint at txid {sf['checkpoint_txid']}"
            f" ({sf['checkpoint_age']} commit(s) ago, {_size(sf['checkpoint_bytes'])}),"
            f" {_size(sf['log_bytes'])} of records since"
        )
    print(line + ("; " + "; ".join(sf["errors"]) if sf["errors"] else ""))
    print(f"  free pages {info['free_pages']:,}, pending {info['pending_pages']:,}, ", end="")
    print(f"in {info['spans']:,} runs, longest {info['largest_span']:,}")
    print("  pages: " + ", ".join(f"{k} {v:,}" for k, v in info["pages"].items()))
    if "page_types" in info:
        print(
            "  bbolt's page walk: " + ", ".join(f"{k} {v:,}" for k, v in info["page_types"].items())
        )
    print(f"  in use: {info['in_use_pages']:,} pages ({_size(info['in_use_bytes'])})")
    c = info["compacted"]
    print(
        f"  a compacted copy needs about {c['pages']:,} pages ({_size(c['bytes'])}), "
        f"giving back {_size(c['gives_back_bytes'])}, {c['gives_back_share']:.0%} of the file"
    )
    ip = info["compact_in_place"]
    print(
        f"  freelist compact (in place) moves about {ip['move_pages']:,} pages and gives back "
        f"about {_size(ip['gives_back_bytes'])}"
    )
    t = info["free_tail"]
    past = (
        f", plus {_size(t['past_hwm_bytes'])} past the high-water mark"
        if t["past_hwm_bytes"]
        else ""
    )
    print(f"  free tail: {t['pages']:,} pages ({_size(t['bytes'])}) at the end{past}")
    sizes = list(info["span_sizes"].items())
    if sizes:
        shown = ", ".join(f"{k}x{v}" for k, v in sizes[:RUN_SIZES_SHOWN])
        more = len(sizes) - RUN_SIZES_SHOWN
        if more > 0:
            shown += f", ... and {more:,} longer sizes (--json lists them all)"
        print(f"  run sizes (length x runs): {shown}")
    if "plot" in info:
        print(f"  map of the pages written to {info['plot']}")
