"""Compaction: move the live pages of a page file down and give the space back.

A bbolt file never shrinks: pages freed by deletes stay in the file, spread
between the live ones, and a commit can only give back the free tail
(:class:`~freelist.PageFile`'s ``shrink=True``).  :func:`compact` moves the
live pages that lie highest in the file into the lowest free pages, a batch
per commit, copy-on-write:

* a moved page is written at its new id (its header says so);
* every page that refers to it is written anew in the same commit, at a new
  location: its branch parent, or the leaf holding its bucket's header, and so
  on up to the root, whose new id goes into the meta;
* the commit is an ordinary commit of the page file: the pages are synced
  before the meta, and the old locations become pending, then free.

After every commit the file is a valid database with the same contents; a kill
or a power loss at any moment leaves one.  When nothing live lies above the
lowest free pages, a last commit or two give back the tail and cut the file
to exactly its pages in use (:meth:`Transaction.shrink_to_fit
<freelist.Transaction.shrink_to_fit>`).

:func:`compact_copy` writes a compacted copy instead: the pages in tree order
(breadth first, so the leaves of each level lie in key order), no free pages.

The engine knows a page only through a describer of page references
(:class:`PageRefs`): list the children of a page, rewrite one reference, and
stamp a moved page with its new id.  :data:`BBOLT` is bbolt's layout (branch
elements, bucket headers in leaf values including those inside inline
buckets, overflow runs; the meta's root bucket is the file's root); a page file
of this library whose pages carry its own references passes its own.
"""

from __future__ import annotations

import heapq
import os
import struct
from array import array
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from . import bbolt, persist
from . import meta as metas
from ._fileio import FileIO
from .check import Bitmap
from .errors import (
    FileFormatError,
    FileIOError,
    FreelistError,
    InvalidArgumentError,
    PageFileArgumentError,
    ReachabilityError,
    TransactionError,
)
from .layout import (
    BRANCH_PAGE,
    LEAF_PAGE,
    NO_FREELIST,
    PAGE_HEADER_SIZE,
    Meta,
    freelist_page_size,
    pack_freelist_page,
)
from .pagefile import PageFile, Reachable, Transaction

__all__ = [
    "BBOLT",
    "DEFAULT_BATCH",
    "BboltRefs",
    "CompactPlan",
    "CompactResult",
    "DamagedFileError",
    "PageRefs",
    "ReadPages",
    "compact",
    "compact_copy",
    "compact_file",
    "file_format",
    "plan",
    "slack",
]

#: ``read(pgid, n)``: the bytes of pages ``pgid .. pgid+n-1``.
ReadPages = Callable[[int, int], bytes]
#: A reference from a page to a child: ``(slot, child pgid, child pages)``;
#: ``slot`` is where the reference lies, an int the describer chooses (bbolt's:
#: the byte offset of the u64 page id in the parent's run).
Ref = tuple[int, int, int]
#: Called after each commit with ``(commits, pages moved so far, pages to move)``.
OnCommit = Callable[[int, int, int], None]

#: Pages a compaction commit rewrites at most (moved pages plus the pages that
#: refer to them): bounds the memory of a commit to its plan (a few dozen bytes
#: a page) and a write buffer of :data:`WRITE_BYTES`.
DEFAULT_BATCH = 65536
#: Commits in a row that may fail to lower the top of the file before the
#: moves stop (each commit's rewritten parents leave holes the next one fills);
#: :meth:`_Engine.run` allows more when the batch is smaller than the packed size.
STALL_COMMITS = 4


def slack(target: int) -> int:
    """Pages past the packed size ``target`` that a file may keep and still
    count as compact (no commit): 4, plus 1/64 of the packed size.

    Runtime complexity: O(1).
    """
    return 4 + target // 64


#: Bytes gathered into one write: consecutive new pages go out in one ``pwrite``.
WRITE_BYTES = 8 << 20

_BIG_ENDIAN = struct.pack("=I", 1) != struct.pack("<I", 1)
_HEADER = struct.Struct("<QHHI")
_U64 = struct.Struct("<Q")
_BUCKET_SIZE = 16
_BUCKET_FLAG = 0x01


class DamagedFileError(FileFormatError):
    """The file fails its check, so nothing is moved: ``problems`` lists what
    the check found (the file is left as it was)."""

    def __init__(self, path: str, problems: list[str]) -> None:
        shown = "; ".join(problems[:5]) + (
            f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        )
        super().__init__(path, f"refusing to compact a damaged file: {shown}")
        self.problems = list(problems)


@runtime_checkable
class PageRefs(Protocol):
    """How the pages of a file refer to each other: what the compaction engine
    needs to move a page and rewrite the pages that name it.

    A page *object* is a run of pages starting at a page id (a page and its
    overflow pages).  The file's root object is the meta's root.
    """

    def root_pages(self, read: ReadPages, root: int) -> int:
        """How many pages the root object at ``root`` spans."""
        ...

    def children(self, read: ReadPages, pgid: int, pages: int) -> Iterable[Ref]:
        """The references of the object at ``pgid`` (``pages`` long):
        ``(slot, child, child pages)`` for each child object."""
        ...

    def rewrite(self, data: bytearray, slot: int, child: int) -> None:
        """Make the reference at ``slot`` of the object's bytes ``data`` name ``child``."""
        ...

    def moved(self, data: bytearray, pgid: int) -> None:
        """Stamp the object's bytes ``data`` with its new id ``pgid`` (if its
        pages carry their own id)."""
        ...


class BboltRefs:
    """bbolt's page references (see :mod:`freelist.bbolt` for the layout):

    * a branch page's elements name its children (the u64 at byte 8 of each
      16-byte element);
    * a leaf element with the bucket flag holds a bucket header whose first
      u64 is the bucket's root page; root 0 is an inline bucket, whose page
      follows in the value and whose own bucket elements may name pages;
    * an object spans its page and the overflow pages its header counts;
    * a page's header starts with its own id.

    It trusts a tree that :func:`freelist.bbolt.walk` has walked (the
    compaction checks the file first), but never reads outside the pages it
    is given: anything else is a :class:`~freelist.bbolt.BboltTreeError`.
    """

    def __init__(self, path: str = "<bbolt>") -> None:
        """A describer naming ``path`` in its errors.

        Runtime complexity: O(1).
        """
        self.path = path

    def _fail(self, message: str) -> bbolt.BboltTreeError:
        return bbolt.BboltTreeError(self.path, message)

    def _span(self, read: ReadPages, pgid: int, parent: int) -> int:
        head = read(pgid, 1)
        if len(head) < PAGE_HEADER_SIZE:
            raise self._fail(f"page {pgid} (named by page {parent}) could not be read")
        _id, flags, _count, overflow = _HEADER.unpack_from(head)
        if not flags & (BRANCH_PAGE | LEAF_PAGE):
            raise self._fail(f"page {pgid} (named by page {parent}) is not a tree page")
        return int(overflow) + 1

    def root_pages(self, read: ReadPages, root: int) -> int:
        """The root page's pages, from its header.

        :raises BboltTreeError: not a branch or leaf page.

        Runtime complexity: O(page size), one page read.
        """
        return self._span(read, root, -1)

    def children(self, read: ReadPages, pgid: int, pages: int) -> list[Ref]:
        """The child pages of the branch or leaf at ``pgid``, with each
        child's page count read from its header.

        :raises BboltTreeError: elements or values past the object's pages, a
            child that is not a tree page.

        Runtime complexity: O(elements) with the element flags of a leaf
        scanned in C, plus a page read per child.
        """
        first = read(pgid, 1)
        ps = len(first)
        _id, flags, count, _ov = _HEADER.unpack_from(first)
        need = PAGE_HEADER_SIZE + 16 * count
        if need > pages * ps:
            raise self._fail(f"page {pgid}: its elements run past its pages")
        buf = first if need <= ps else read(pgid, -(-need // ps))
        out: list[Ref] = []
        if flags & BRANCH_PAGE:
            ids = array("Q")
            ids.frombytes(buf[PAGE_HEADER_SIZE:need])
            if _BIG_ENDIAN:
                ids.byteswap()
            for i, child in enumerate(ids[1::2]):
                out.append((PAGE_HEADER_SIZE + 16 * i + 8, child, self._span(read, child, pgid)))
            return out
        if not flags & LEAF_PAGE or not count:
            return out
        words = array("I")
        words.frombytes(buf[PAGE_HEADER_SIZE:need])
        if _BIG_ENDIAN:
            words.byteswap()
        flags_of = words[0::4]
        if flags_of.count(0) == len(flags_of):  # no element is a bucket (scanned in C)
            return out
        data = read(pgid, pages)  # a leaf with buckets: its values are needed
        for slot, root in self._bucket_refs(data, 0, count, len(data), 0):
            out.append((slot, root, self._span(read, root, pgid)))
        return out

    def _bucket_refs(
        self, data: bytes, page_off: int, count: int, limit: int, depth: int
    ) -> Iterator[tuple[int, int]]:
        """``(slot, root)`` of every bucket header with a root page in the leaf
        (or inline leaf) at ``page_off`` of ``data``."""
        base = page_off + PAGE_HEADER_SIZE
        if base + 16 * count > limit:
            raise self._fail(f"an inline bucket's elements run past its value at byte {page_off}")
        for i in range(count):
            elem = base + 16 * i
            flags, pos, ksize, vsize = struct.unpack_from("<IIII", data, elem)
            if not flags & _BUCKET_FLAG:
                continue
            value = elem + pos + ksize
            if vsize < _BUCKET_SIZE or value + vsize > limit:
                raise self._fail(
                    f"the bucket value of element {i} at byte {elem} runs past its page"
                )
            root = _U64.unpack_from(data, value)[0]
            if root:
                yield value, root
            elif vsize > _BUCKET_SIZE + PAGE_HEADER_SIZE - 1:
                if depth >= bbolt.MAX_INLINE_DEPTH:
                    raise self._fail(f"inline buckets nest deeper than {bbolt.MAX_INLINE_DEPTH}")
                inline = value + _BUCKET_SIZE
                c = _HEADER.unpack_from(data, inline)[2]
                yield from self._bucket_refs(data, inline, c, value + vsize, depth + 1)

    def rewrite(self, data: bytearray, slot: int, child: int) -> None:
        """Write ``child`` as the u64 at byte ``slot``.

        Runtime complexity: O(1).
        """
        _U64.pack_into(data, slot, child)

    def moved(self, data: bytearray, pgid: int) -> None:
        """Write ``pgid`` into the page header's id.

        Runtime complexity: O(1).
        """
        _U64.pack_into(data, 0, pgid)


#: bbolt's layout, for any file (errors name ``<bbolt>``; :func:`compact` names the file).
BBOLT = BboltRefs()


# --- the tree of objects ------------------------------------------------------------


class _Tree:
    """Every object under the root: its page id, pages, parent (an index,
    -1 for the root) and the slot of the reference in the parent.  Four int
    arrays: 32 bytes an object."""

    def __init__(self) -> None:
        self.pgid = array("q")
        self.pages = array("q")
        self.parent = array("q")
        self.slot = array("q")

    def __len__(self) -> int:
        return len(self.pgid)

    def total(self) -> int:
        return sum(self.pages)

    def runs(self) -> Iterator[tuple[int, int]]:
        return zip(self.pgid, self.pages, strict=True)


def _build(refs: PageRefs, tx: Transaction, path: str) -> _Tree:
    """Walk the tree from the root breadth first into a :class:`_Tree`.

    :raises DamagedFileError: a reference outside ``[2, hwm)``, a page reached twice.
    """
    tree = _Tree()
    root = tx.root
    if not root:
        return tree
    hwm = tx.hwm
    read = tx.read
    seen = Bitmap(hwm)
    seen.set(0, 2)

    def add(pgid: int, n: int, parent: int, slot: int) -> None:
        if type(n) is not int or type(pgid) is not int or n < 1 or pgid < 2 or pgid + n > hwm:
            where = "the root" if parent < 0 else f"page {tree.pgid[parent]}"
            raise DamagedFileError(path, [f"{where} names pages {pgid}+{n!r}, outside [2, {hwm})"])
        if seen.any(pgid, n):
            raise DamagedFileError(path, [f"pages {pgid}+{n} are reached twice"])
        seen.set(pgid, n)
        tree.pgid.append(pgid)
        tree.pages.append(n)
        tree.parent.append(parent)
        tree.slot.append(slot)

    try:
        add(root, refs.root_pages(read, root), -1, 0)
        i = 0
        while i < len(tree.pgid):
            for slot, child, n in refs.children(read, tree.pgid[i], tree.pages[i]):
                if type(slot) is not int or not 0 <= slot < 1 << 63:
                    raise InvalidArgumentError(f"the describer gave slot {slot!r}, not an int >= 0")
                add(child, n, i, slot)
            i += 1
    except FreelistError:
        raise
    except Exception as e:  # a describer's own failure: never a raw exception
        raise ReachabilityError(path, f"the page describer failed: {type(e).__name__}: {e}") from e
    return tree


# --- free runs, first fit ------------------------------------------------------------


class _Runs:
    """The free runs at the start of a commit, taken first-fit as the plan
    places pages (a commit frees only into pending, so runs only shrink)."""

    def __init__(self, spans: list[tuple[int, int]]) -> None:
        spans.sort()
        self.starts = [s for s, _ in spans]
        self.sizes = [n for _, n in spans]
        self.cursor: dict[int, int] = {}

    def lowest(self, n: int) -> int:
        """Index of the lowest run of at least ``n`` pages, or -1."""
        i = self.cursor.get(n, 0)
        sizes = self.sizes
        end = len(sizes)
        while i < end and sizes[i] < n:
            i += 1
        self.cursor[n] = i
        return i if i < end else -1

    def take(self, i: int, n: int) -> int:
        start = self.starts[i]
        self.starts[i] += n
        self.sizes[i] -= n
        return start

    def give_back(self, i: int, n: int) -> None:
        """Undo the last :meth:`take` of ``n`` pages from run ``i``."""
        self.starts[i] -= n
        self.sizes[i] += n


# --- results -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompactPlan:
    """What compacting a file would do (see :func:`plan`).

    ``live_pages`` are the tree's pages; ``target_pages`` the high-water mark
    of a packed file (metas, tree, a freelist page when synced);
    ``move_pages``/``move_objects`` what lies at or above it and must move;
    ``gives_back_bytes`` the file size beyond ``target_pages``.
    """

    path: str
    page_size: int
    file_size: int
    hwm: int
    live_pages: int
    objects: int
    target_pages: int
    move_pages: int
    move_objects: int
    gives_back_bytes: int
    freelist_format: str


@dataclass(frozen=True, slots=True)
class CompactResult:
    """What :func:`compact` did: ``commits`` made, pages moved (objects below
    the top of the file moved into lower free pages), pages rewritten (moved
    pages and the pages naming them), and the file before and after."""

    path: str
    page_size: int
    commits: int
    moved_pages: int
    moved_objects: int
    rewritten_pages: int
    hwm_before: int
    hwm_after: int
    size_before: int
    size_after: int
    freelist_format: str

    @property
    def gave_back_bytes(self) -> int:
        """Bytes the file got shorter by."""
        return max(0, self.size_before - self.size_after)


def file_format(path: str | os.PathLike[str]) -> str:
    """The freelist format of the file at ``path``, from its newest meta:
    ``"none"`` (NoFreelistSync), ``"log"`` or ``"bbolt"``.  Reads the two
    meta pages only, without a lock (the open that follows reads them again).

    :raises FileFormatError: no valid meta (see :meth:`PageFile.open`).
    :raises MissingFileError: no such file.
    :raises FileIOError: the file cannot be read.

    Runtime complexity: O(1).
    """
    io = FileIO(os.fsdecode(path), readonly=True, create=False)
    try:
        _ps, verdicts = metas.read(io, None)
        meta = metas.choose(io, verdicts).meta
    finally:
        io.close()
    assert meta is not None
    return persist.reading(meta).name


def _check(pf: PageFile, tree: _Tree, reachable: Reachable | None) -> None:
    """Refuse a file whose check finds problems, or whose tree does not
    account for every page in use."""
    walk = reachable if reachable is not None else (lambda _pf: tree.runs())
    problems = pf.check(walk)
    if not problems and reachable is not None:
        fl = pf.freelist
        owned = sum(n for _s, n in pf.freelist_runs)
        expect = pf.meta.hwm - 2 - fl.free_count - fl.pending_count - owned
        if tree.total() != expect:
            problems.append(
                f"the references describe {tree.total()} pages in use, the walk {expect}"
            )
    if problems:
        raise DamagedFileError(pf.path, problems)


def _target(pf: PageFile, live: int) -> int:
    """The high-water mark of the packed file: metas, tree, freelist."""
    if pf.meta.freelist == NO_FREELIST:
        return 2 + live
    return 2 + live + max(1, -(-freelist_page_size(0) // pf.page_size))


def plan(pf: PageFile, refs: PageRefs | None = None, *, check: bool = False) -> CompactPlan:
    """What :func:`compact` would move and give back on the open file ``pf``,
    without changing it (``pf`` may be read-only).  ``refs`` defaults to
    bbolt's layout.  With ``check``, the file is checked first as
    :func:`compact` checks it (a file it would refuse is refused here too).

    :raises DamagedFileError: the references name pages outside the file or
        the same page twice; with ``check``, the check finds problems.
    :raises FreelistError: the describer or a read fails.

    Runtime complexity: O(objects + references), plus the describer's reads
    (and with ``check``, the check's walk).
    """
    bbolt_layout = refs is None or isinstance(refs, BboltRefs)
    refs = refs or BboltRefs(pf.path)
    with pf.view() as tx:
        tree = _build(refs, tx, pf.path)
    if check:
        _check(pf, tree, bbolt.reachable if bbolt_layout else None)
    live = tree.total()
    target = _target(pf, live)
    move_pages = move_objects = 0
    for p, n in tree.runs():
        if p + n > target:
            move_pages += n
            move_objects += 1
    st = pf.stats()
    return CompactPlan(
        path=pf.path,
        page_size=pf.page_size,
        file_size=st.file_size,
        hwm=pf.meta.hwm,
        live_pages=live,
        objects=len(tree),
        target_pages=target,
        move_pages=move_pages,
        move_objects=move_objects,
        gives_back_bytes=max(0, st.file_size - target * pf.page_size),
        freelist_format=persist.reading(pf.meta).name,
    )


# --- in place ------------------------------------------------------------------------


def compact(
    pf: PageFile,
    refs: PageRefs | None = None,
    *,
    batch: int = DEFAULT_BATCH,
    on_commit: OnCommit | None = None,
    check: bool = True,
) -> CompactResult:
    """Compact the open, writable page file ``pf`` in place (see the module
    docs): move the highest live objects into the lowest free pages, a batch
    of at most ``batch`` rewritten pages per commit, until nothing live lies
    above a free run that can take it; then give the tail back and cut the
    file to its pages in use.

    ``refs`` describes the page references (default: bbolt's layout).  Open
    ``pf`` with a first-fit freelist (``"hashmap:first-fit"`` or
    ``"array"``), which keeps the pages it hands out low, and with
    ``shrink=True``.  With ``check`` (the default) the file is first checked
    (:meth:`PageFile.check` with bbolt's walk for bbolt's layout, else with
    the describer's walk) and a file with problems is refused before anything
    changes.  A file with nothing to move and no tail to give back gets no
    commit.  ``on_commit(commits, moved, to_move)`` is called after each
    commit.

    :raises DamagedFileError: the check found problems (nothing changed).
    :raises InvalidArgumentError: ``batch`` below 1, or the describer gave a
        slot that is not an int or failed to rewrite a page.
    :raises ReachabilityError: the describer failed while listing references.
    :raises ReadOnlyError: ``pf`` is read-only.
    :raises TransactionError: a writer is already open on ``pf``, or another
        writer committed between two of the compaction's commits (its map of
        the tree is then stale; the file keeps every commit made).
    :raises FreelistError: a read, write or commit fails (the file keeps its
        last commit).

    Runtime complexity: O(objects + references) to walk the tree, plus per
    commit O(free runs) to plan and the freelist's cost to commit, plus
    O(pages rewritten * page size) of I/O.
    """
    if type(batch) is not int or batch < 1:
        raise InvalidArgumentError(f"batch must be an int >= 1, got {batch!r}")
    path = pf.path
    bbolt_layout = refs is None or isinstance(refs, BboltRefs)
    refs = refs or BboltRefs(path)
    size_before = pf.stats().file_size
    hwm_before = pf.meta.hwm
    with pf.view() as tx:
        tree = _build(refs, tx, path)
        read_at = (tx.txid, tx.root)  # the commit the tree was read at
    if check:
        _check(pf, tree, bbolt.reachable if bbolt_layout else None)
    engine = _Engine(pf, refs, tree, batch, on_commit, read_at=read_at)
    engine.run()
    st = pf.stats()
    return CompactResult(
        path=path,
        page_size=pf.page_size,
        commits=engine.commits,
        moved_pages=engine.moved_pages,
        moved_objects=engine.moved_objects,
        rewritten_pages=engine.rewritten,
        hwm_before=hwm_before,
        hwm_after=pf.meta.hwm,
        size_before=size_before,
        size_after=st.file_size,
        freelist_format=st.freelist_format,
    )


class _Engine:
    """The commits of one in-place compaction."""

    def __init__(
        self,
        pf: PageFile,
        refs: PageRefs,
        tree: _Tree,
        batch: int,
        on_commit: OnCommit | None,
        *,
        read_at: tuple[int, int],
    ) -> None:
        self.pf = pf
        self.refs = refs
        self.tree = tree
        self.batch = batch
        self.on_commit = on_commit
        self.commits = 0
        self.moved_pages = 0
        self.moved_objects = 0
        self.rewritten = 0
        self.heap = [(-p, i) for i, p in enumerate(tree.pgid)]
        heapq.heapify(self.heap)
        self.target = _target(pf, tree.total())
        self.to_move = sum(n for p, n in tree.runs() if p + n > self.target)
        # pages of the objects that end past the packed size: what must move
        self.above = self.to_move
        # the commit the tree was read at: another writer's commit makes it stale
        self.txid, self.root = read_at

    def slack_ok(self) -> bool:
        """Whether the file is already compact: longer than the packed size
        by at most :func:`slack` pages (a compaction leaves about that many
        holes behind: the last pages naming moved ones)."""
        st = self.pf.stats()
        pages = max(st.hwm, -(-st.file_size // st.page_size))
        return pages - self.target <= slack(self.target)

    def _top(self) -> int:
        """The end of the highest page in use (tree or the freelist's own)."""
        tree = self.tree
        top = 2
        heap = self.heap
        while heap and -heap[0][0] != tree.pgid[heap[0][1]]:
            heapq.heappop(heap)
        if heap:
            i = heap[0][1]
            top = tree.pgid[i] + tree.pages[i]
        for s, n in self.pf.freelist_runs:
            top = max(top, s + n)
        return top

    def run(self) -> None:
        """Commit batches while objects move down: until a commit finds
        nothing to move, or :data:`STALL_COMMITS` commits in a row lower
        neither the top of the file nor the pages that lie past the packed
        size by 1/1024 of that size (the pages naming the moved ones leave
        holes that the next batch fills, a few at a time; a batch smaller than
        the packed size gets as many commits as it takes to move it once);
        then settle."""
        if self.slack_ok():
            return
        stalled = 0
        # A small batch needs more commits to show progress: allow at least as
        # many stalled commits as it takes to move the packed size once.
        stall_limit = max(STALL_COMMITS, -(-self.target // self.batch))
        best_top, best_above = self._top(), self.above
        step = max(1, self.target >> 10)  # progress: at least 1/1024 of the packed size
        while self._commit(fit=False):
            top = self._top()
            if top <= best_top - step or self.above <= best_above - step:
                stalled = 0
                best_top = min(best_top, top)
                best_above = min(best_above, self.above)
            else:
                stalled += 1
                if stalled >= stall_limit:
                    break
        # Settle: the last pending pages become free, the freelist moves down,
        # and the tail goes, with no slack, while that gains anything.
        for _ in range(4):
            st = self.pf.stats()
            if self._top() >= st.hwm and st.file_size <= st.hwm * st.page_size:
                break
            self._commit(fit=True)
            after = self.pf.stats()
            if after.hwm >= st.hwm and after.file_size >= st.file_size:
                break

    def _commit(self, *, fit: bool) -> int:
        """One commit: plan, allocate, write, free, commit.  Returns the
        objects moved down (not counting the pages rewritten because they
        name one)."""
        pf, tree = self.pf, self.tree
        pgid, pages, parent = tree.pgid, tree.pages, tree.parent
        tx = pf.begin(True)
        try:
            if tx.txid != self.txid + 1 or tx.root != self.root:
                raise TransactionError(
                    pf.path,
                    f"another writer committed (txid {tx.txid - 1}, compaction expected "
                    f"{self.txid}): the compaction's map of the tree is stale; run it again",
                )
            runs = _Runs(pf.freelist.free_spans())
            place: dict[int, int] = {}  # object -> planned new id
            movers = moved = 0
            budget = 0 if fit else self.batch
            heap = self.heap
            stuck: list[tuple[int, int]] = []
            while heap and budget > 0:
                negp, c = heap[0]
                if -negp != pgid[c] or c in place:
                    heapq.heappop(heap)
                    continue
                p, n = pgid[c], pages[c]
                i = runs.lowest(n)
                if i < 0 or runs.starts[i] >= p:
                    if n == 1:
                        break  # no free page below the highest single page: done
                    stuck.append(heapq.heappop(heap))  # no lower run this long (yet)
                    continue
                chain = []
                a = parent[c]
                while a >= 0 and a not in place:
                    chain.append(a)
                    a = parent[a]
                cost = n + sum(pages[a] for a in chain)
                if cost > budget and place:
                    break
                taken = [(i, n)]
                at = [runs.take(i, n)]
                for a in chain:
                    j = runs.lowest(pages[a])
                    if j < 0:
                        break
                    taken.append((j, pages[a]))
                    at.append(runs.take(j, pages[a]))
                if len(at) < 1 + len(chain):
                    for j, m in reversed(taken):  # no room for the pages naming it
                        runs.give_back(j, m)
                    break
                heapq.heappop(heap)
                place[c] = at[0]
                for a, new in zip(chain, at[1:], strict=True):
                    place[a] = new
                movers += 1
                moved += n
                budget -= cost
            for item in stuck:
                heapq.heappush(heap, item)
            if not place and not fit:
                tx.rollback()  # nothing can move: no commit
                return 0
            if place:
                self._write(tx, place)
            if fit:
                tx.shrink_to_fit()
            tx.commit()
        except BaseException:
            if not tx.closed:
                tx.rollback()
            raise
        self.commits += 1
        self.txid = pf.meta.txid
        self.root = pf.meta.root
        self.moved_objects += movers
        self.moved_pages += moved
        self.rewritten += sum(pages[i] for i in place)
        for i, new in place.items():
            n = pages[i]
            self.above += n * ((new + n > self.target) - (pgid[i] + n > self.target))
            pgid[i] = new
            heapq.heappush(self.heap, (-new, i))
        if self.on_commit is not None:
            self.on_commit(self.commits, self.moved_pages, self.to_move)
        return movers

    def _write(self, tx: Transaction, place: dict[int, int]) -> None:
        """Allocate the planned runs, write every object of ``place`` at its new
        id with its references to moved children rewritten, free the old
        locations and point the meta at a moved root."""
        tree, refs = self.tree, self.refs
        pgid, pages, parent, slot = tree.pgid, tree.pages, tree.parent, tree.slot
        ps = self.pf.page_size
        limit = max(1, WRITE_BYTES // ps)
        # Chunks of consecutive planned ids (one allocation and one write each).
        order = sorted(place, key=place.__getitem__)
        chunks: list[list[int]] = []
        end = -1
        size = 0
        for i in order:
            at, n = place[i], pages[i]
            if at == end and size + n <= limit:
                chunks[-1].append(i)
                size += n
            else:
                chunks.append([i])
                size = n
            end = at + n
        new: dict[int, int] = {}
        for chunk in chunks:
            total = sum(pages[i] for i in chunk)
            got = tx.allocate(total)
            for i in chunk:
                new[i] = got
                got += pages[i]
        kids: dict[int, list[int]] = {}
        for i in place:
            a = parent[i]
            if a >= 0:
                kids.setdefault(a, []).append(i)
        read = tx.read
        for chunk in chunks:
            buf = bytearray()
            for i in chunk:
                data = bytearray(read(pgid[i], pages[i]))
                _patch(refs, data, new[i], [(slot[k], new[k]) for k in kids.get(i, ())])
                if len(data) != pages[i] * ps:
                    raise InvalidArgumentError(
                        f"the describer changed the length of the object at page {pgid[i]}"
                    )
                buf += data
            tx.write(new[chunk[0]], buf)
        old = sorted((pgid[i], pages[i]) for i in place)
        start, n = old[0]
        for s, m in old[1:]:
            if s == start + n:
                n += m
                continue
            tx.free(start, n)
            start, n = s, m
        tx.free(start, n)
        if 0 in new:
            tx.root = new[0]
        place.clear()
        place.update(new)


def _patch(refs: PageRefs, data: bytearray, pgid: int, moves: list[tuple[int, int]]) -> None:
    """Stamp ``data`` with its new id and point each moved child's slot at its
    new id, through the describer; its own failures become library errors."""
    try:
        refs.moved(data, pgid)
        for slot, child in moves:
            refs.rewrite(data, slot, child)
    except FreelistError:
        raise
    except Exception as e:
        raise InvalidArgumentError(
            f"the page describer failed to rewrite page {pgid}: {type(e).__name__}: {e}"
        ) from e


# --- the tool: open, lock, compact -------------------------------------------------


def compact_file(
    path: str | os.PathLike[str],
    *,
    batch: int = DEFAULT_BATCH,
    timeout: float | None = 5.0,
    on_commit: OnCommit | None = None,
) -> CompactResult:
    """Compact the bbolt file at ``path`` in place (see :func:`compact`),
    keeping its freelist format (synced, NoFreelistSync or the log).  Takes
    the file's exclusive lock, waiting at most ``timeout`` seconds.

    :raises FileLockedError: another process holds the file.
    :raises DamagedFileError: the check found problems (nothing changed).
    :raises FreelistError: the file cannot be opened, read or written (see
        :meth:`PageFile.open`).

    Runtime complexity: as :func:`compact`, plus opening the file.
    """
    name = os.fsdecode(path)
    fmt = file_format(name)
    pf = PageFile.open(
        name,
        freelist="hashmap:first-fit",
        freelist_format=fmt,
        reachable=bbolt.reachable,
        timeout=timeout,
        create=False,
        shrink=True,
    )
    with pf:
        return compact(pf, BboltRefs(name), batch=batch, on_commit=on_commit)


# --- a compacted copy ----------------------------------------------------------------


def compact_copy(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    refs: PageRefs | None = None,
    *,
    timeout: float | None = 5.0,
    on_page: Callable[[int], None] | None = None,
) -> CompactResult:
    """Write a compacted copy of the file ``src`` to the new file ``dst``: the
    tree's pages in breadth-first order from page 2 (so each level's pages lie
    in key order), no free pages, a freelist page (empty) when ``src`` syncs
    its freelist.  ``src`` is opened read-only with a shared lock and checked
    first; ``dst`` is written under a temporary name, synced, and renamed into
    place.  ``on_page(n)`` is called as pages are written.

    :raises PageFileArgumentError: ``dst`` exists, or is ``src``.
    :raises DamagedFileError: ``src`` fails its check.
    :raises FileLockedError: another process holds ``src`` exclusively.
    :raises FreelistError: ``src`` cannot be opened or read (see
        :meth:`PageFile.open`), ``dst`` cannot be written (a
        :class:`~freelist.FileIOError`).

    Runtime complexity: O(objects + references + live pages * page size).
    """
    s, d = os.fsdecode(src), os.fsdecode(dst)
    if os.path.lexists(d):
        raise PageFileArgumentError(d, "the destination exists; name a new file")
    bbolt_layout = refs is None or isinstance(refs, BboltRefs)
    refs = refs or BboltRefs(s)
    with PageFile.open(
        s, readonly=True, reachable=bbolt.reachable, timeout=timeout, create=False
    ) as pf:
        with pf.view() as tx:
            tree = _build(refs, tx, s)
        _check(pf, tree, bbolt.reachable if bbolt_layout else None)
        meta = pf.meta
        ps = meta.page_size
        size_before = pf.stats().file_size
        synced = meta.freelist != NO_FREELIST
        with pf.view() as tx:
            hwm = _write_copy(tx, refs, tree, d, ps=ps, meta=meta, synced=synced, on_page=on_page)
    return CompactResult(
        path=d,
        page_size=ps,
        commits=1,
        moved_pages=tree.total(),
        moved_objects=len(tree),
        rewritten_pages=tree.total(),
        hwm_before=meta.hwm,
        hwm_after=hwm,
        size_before=size_before,
        size_after=hwm * ps,
        freelist_format="bbolt" if synced else "none",
    )


def _write_copy(
    tx: Transaction,
    refs: PageRefs,
    tree: _Tree,
    dst: str,
    *,
    ps: int,
    meta: Meta,
    synced: bool,
    on_page: Callable[[int], None] | None,
) -> int:
    """Stream the tree breadth first into a temporary file beside ``dst``, then
    the freelist page and the metas; sync; rename.  Returns the copy's hwm."""
    tmp = f"{dst}.compact-tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as e:
        raise PageFileArgumentError(dst, f"cannot create {tmp}: {e.strerror}") from None
    try:
        # New ids: breadth first, in the order of the tree's index (which is
        # breadth first already), starting at page 2.
        n_obj = len(tree)
        new = array("q", bytes(8 * n_obj))
        nxt = 2
        for i in range(n_obj):
            new[i] = nxt
            nxt += tree.pages[i]
        kids: list[list[int]] = [[] for _ in range(n_obj)]
        for i in range(1, n_obj):
            kids[tree.parent[i]].append(i)
        buf = bytearray(bytes(2 * ps))  # the metas come last
        pos = 0
        for i in range(n_obj):
            data = bytearray(tx.read(tree.pgid[i], tree.pages[i]))
            _patch(refs, data, new[i], [(tree.slot[k], new[k]) for k in kids[i]])
            buf += data
            if len(buf) >= WRITE_BYTES:
                _pwrite(fd, buf, pos, dst)
                pos += len(buf)
                if on_page is not None:
                    on_page(len(buf) // ps)
                buf = bytearray()
        hwm = nxt
        freelist = NO_FREELIST
        if synced:
            freelist = hwm
            page = pack_freelist_page(hwm, array("Q"), ps)
            buf += page
            hwm += len(page) // ps
        _pwrite(fd, buf, pos, dst)
        if on_page is not None:
            on_page(len(buf) // ps)
        root = new[0] if n_obj else 0
        txid = max(meta.txid, 1)
        for t in (txid - 1, txid):
            m = Meta(ps, root, freelist, hwm, t, flags=0, sequence=meta.sequence)
            _pwrite(fd, m.pack_page(ps), (t % 2) * ps, dst)
        try:
            os.ftruncate(fd, hwm * ps)
            os.fsync(fd)
        except OSError as e:
            raise FileIOError(dst, f"cannot size and sync the copy: {e.strerror}") from None
    except BaseException:
        os.close(fd)
        with suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    try:
        os.rename(tmp, dst)
    except OSError as e:
        with suppress(OSError):
            os.unlink(tmp)
        raise FileIOError(dst, f"cannot rename the copy into place: {e.strerror}") from None
    try:
        dfd = os.open(os.path.dirname(os.path.abspath(dst)), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as e:
        raise FileIOError(dst, f"cannot sync the copy's folder: {e.strerror}") from None
    return hwm


def _pwrite(fd: int, data: bytes | bytearray, offset: int, path: str) -> None:
    view = memoryview(data)
    try:
        while view:
            n = os.pwrite(fd, view, offset)
            view = view[n:]
            offset += n
    except OSError as e:
        raise FileIOError(path, f"cannot write the copy: {e.strerror}") from None
