"""The two meta pages: read, validate, choose, write.

One :func:`validate` judges a meta for the open path and for
:meth:`PageFile.check <freelist.PageFile.check>` alike.  A meta is valid when
its magic, version and checksum are good, its page header names the page it
sits on (a meta copied or swapped onto the other page is not valid there),
and its page size is the one it was read at: meta 0 sits at offset 0 whatever
the page size, so it names the page size; meta 1 sits at offset
``page_size`` and is looked for, as bbolt does, at every page size from 512
bytes up to 16 MiB (:data:`~freelist.layout.READ_PAGE_SIZES`).

:func:`choose` takes the newest valid meta, and :func:`write` puts the next
commit's meta on the other page, so no commit overwrites the state the file
was opened at.  Valid metas at two different page
sizes contradict each other: that file is refused with
:class:`~freelist.MetaConflictError` rather than opened at one of them (which
could step back to an older commit and read the file at the wrong offsets).
"""

from __future__ import annotations

from typing import NamedTuple

from . import persist
from ._fileio import FileIO
from .errors import (
    BadMagicError,
    FileFormatError,
    FileTooShortError,
    FreelistPageError,
    InvalidArgumentError,
    MetaConflictError,
    NoValidMetaError,
    PageSizeMismatchError,
    UnsupportedVersionError,
)
from .layout import (
    MAGIC,
    META_SIZE,
    NO_FREELIST,
    PAGE_HEADER_SIZE,
    READ_PAGE_SIZES,
    Meta,
)

__all__ = [
    "SPARSE_PAGES",
    "Verdict",
    "choose",
    "most_pages",
    "problems",
    "read",
    "validate",
    "write",
]

_META_BYTES = PAGE_HEADER_SIZE + META_SIZE


class Verdict(NamedTuple):
    """What :func:`validate` found in one meta page."""

    page: int
    meta: Meta | None  # None: unusable (torn, corrupt, not a meta, outside the file)
    problem: str  # empty when sound; set with a usable meta for a bad freelist id
    error: type[FileFormatError]


def _sound(meta: Meta, stored: int, ps: int) -> bool:
    """Magic, version and checksum good, and read at its own page size."""
    return (
        meta.magic == MAGIC
        and persist.known(meta)
        and meta.page_size == ps
        and meta.checksum() == stored
    )


#: A meta may claim this many pages whatever the file holds; past it, a
#: page for every 8 bytes the file holds on disk (see :func:`validate`).
SPARSE_PAGES = 1 << 23


def most_pages(held: int) -> int:
    """The most pages a meta may claim in a file that holds ``held`` bytes on
    disk: :data:`SPARSE_PAGES`, or one page per 8 bytes held.

    Everything the open path and the check keep per page (a bit of the walk's
    bitmap, a byte of a free map, 8 bytes of a free id) then costs about what
    the file holds, never more than a few tens of MiB beyond it, however
    sparse the file.  A file whose pages were all written holds at least
    512 bytes a page, except on a file system that compresses or skips
    all-zero blocks (ZFS, btrfs): there a real file of mostly zero pages past
    :data:`SPARSE_PAGES` pages could be refused.

    Runtime complexity: O(1).
    """
    return max(SPARSE_PAGES, held // 8)


def validate(raw: bytes, page: int, ps: int, size: int, held: int | None = None) -> Verdict:
    """Judge the meta whose page starts ``raw`` (meta ``page``, read at page
    size ``ps``) in a file of ``size`` bytes holding ``held`` bytes on disk
    (None: ``size``).

    Runtime complexity: O(1).
    """
    where = f"meta page {page}"
    if len(raw) < _META_BYTES:
        return Verdict(page, None, f"{where}: cut short at the end of the file", FileTooShortError)
    meta, stored = Meta.unpack(raw, 0)
    header_id = int.from_bytes(raw[0:8], "little")
    if meta.magic != MAGIC:
        return Verdict(page, None, f"{where}: bad magic {meta.magic:#x}", BadMagicError)
    if meta.version not in persist.versions():
        problem = f"{where}: unsupported version {meta.version}"
        return Verdict(page, None, problem, UnsupportedVersionError)
    if not persist.known(meta):
        formats = ", ".join(
            f"{cls.name} {cls.version}/{cls.flags:#x}" for cls in persist.FORMATS.values()
        )
        problem = (
            f"{where}: version {meta.version} with flags {meta.flags:#x}, which no "
            "freelist format writes (a format's flag, such as the freelist-log flag, goes "
            f"with its version only; version/flags: {formats})"
        )
        return Verdict(page, None, problem, NoValidMetaError)
    if meta.checksum() != stored:
        return Verdict(page, None, f"{where}: checksum mismatch", NoValidMetaError)
    if meta.page_size != ps:
        problem = f"{where}: page size {meta.page_size}, but read at page size {ps}"
        return Verdict(page, None, problem, NoValidMetaError)
    if header_id != page:
        # Every writer (bbolt, and this library's commits and copies) names the
        # page a meta sits on in its header; the checksum does not cover the
        # header, so a meta copied or swapped onto the other page shows here.
        problem = f"{where}: its header names page {header_id}, not its own (a misplaced meta)"
        return Verdict(page, None, problem, NoValidMetaError)
    if not meta.hwm >= 2 or meta.hwm * ps > size:
        problem = (
            f"{where}: high-water mark {meta.hwm} outside the file "
            f"({size} bytes, {size // ps} pages)"
        )
        return Verdict(page, None, problem, FileTooShortError)
    held = size if held is None else held
    most = most_pages(held)
    if meta.hwm > most:
        problem = (
            f"{where}: high-water mark {meta.hwm} pages, but the file holds only "
            f"{held} bytes on disk (a sparse file; at most {most} pages are read)"
        )
        return Verdict(page, None, problem, FileTooShortError)
    if meta.freelist != NO_FREELIST and not 2 <= meta.freelist < meta.hwm:
        problem = f"{where}: freelist page {meta.freelist} outside [2, {meta.hwm})"
        return Verdict(page, meta, problem, FreelistPageError)
    return Verdict(page, meta, "", FileFormatError)


def _raw(io: FileIO, offset: int) -> bytes:
    return io.pread(_META_BYTES, offset)


def read(io: FileIO, want: int | None) -> tuple[int, list[Verdict]]:
    """Find the page size and judge both metas at it.

    :raises FileTooShortError: too short for two metas.
    :raises MetaConflictError: valid metas at different page sizes.
    :raises PageSizeMismatchError: ``want`` given and a valid meta says otherwise.
    :raises FileIOError: the file cannot be read.

    Runtime complexity: O(1): at most 17 small reads.
    """
    size = io.size()
    if size < 2 * READ_PAGE_SIZES[0]:
        raise io.error(FileTooShortError, f"too short to be a page file ({size} bytes)")
    head = _raw(io, 0)
    first, stored = Meta.unpack(head, 0)
    claimed = first.page_size if first.page_size in READ_PAGE_SIZES else None
    sound0 = claimed is not None and _sound(first, stored, claimed)
    if sound0 and claimed is not None and 2 * claimed > size:
        raise io.error(
            FileTooShortError,
            f"the file is {size} bytes, shorter than its two {claimed}-byte meta pages",
        )
    # Every offset where a meta 1 could sit, and whether one valid at that page size does.
    found = []
    for ps in READ_PAGE_SIZES:
        if 2 * ps > size:
            break
        meta, stored1 = Meta.unpack(_raw(io, ps), 0)
        if _sound(meta, stored1, ps):
            found.append(ps)
    sizes = set(found)
    if sound0 and claimed is not None:
        sizes.add(claimed)
        if claimed in found:
            sizes = {claimed}  # a consistent pair; other offsets hold ordinary pages
    if len(sizes) > 1:
        raise io.error(
            MetaConflictError,
            "the meta pages contradict each other: valid metas at page sizes "
            + ", ".join(str(s) for s in sorted(sizes))
            + " (a meta is valid only at the page size it was read at)",
        )
    ps = sizes.pop() if sizes else _likeliest(io, claimed, size)
    if want is not None and (sound0 or found) and ps != want:
        raise io.error(PageSizeMismatchError, f"page size is {ps}, not {want}")
    held = io.held()
    return ps, [validate(_raw(io, p * ps), p, ps, size, held) for p in (0, 1)]


def _likeliest(io: FileIO, claimed: int | None, size: int) -> int:
    """The page size to report the faults at when no meta is valid: meta 0's
    claim, else the first at which meta 1 carries the magic, else 4096."""
    if claimed is not None and 2 * claimed <= size:
        return claimed
    for ps in READ_PAGE_SIZES:
        if 2 * ps > size:
            break
        if Meta.unpack(_raw(io, ps), 0)[0].magic == MAGIC:
            return ps
    return 4096 if size >= 2 * 4096 else READ_PAGE_SIZES[0]


def choose(io: FileIO, verdicts: list[Verdict]) -> Verdict:
    """The verdict of the newest valid meta (its ``meta`` is set, its
    ``page`` says where it sits: the next commit writes the other page).

    Two valid metas with the same txid (a commit copied to both pages) are
    one state; the one on page ``txid % 2`` is taken, so the next commit
    writes page ``(txid + 1) % 2``, where bbolt would write it.

    :raises FileFormatError: the subclass for the fault when no meta is
        usable (mixed faults: :class:`~freelist.NoValidMetaError`), or the
        newest one's problem (a freelist page out of range).

    Runtime complexity: O(1).
    """
    usable = [v for v in verdicts if v.meta is not None]
    if not usable:
        problems = "; ".join(v.problem for v in verdicts)
        kinds = {v.error for v in verdicts}
        error = kinds.pop() if len(kinds) == 1 else NoValidMetaError
        raise io.error(error, f"no valid meta page: {problems}")
    newest = max(usable, key=_rank)
    if newest.problem:
        raise io.error(newest.error, newest.problem)
    assert newest.meta is not None
    return newest


def _rank(v: Verdict) -> tuple[int, bool]:
    """Newer first; of two with one txid, the one on page ``txid % 2``."""
    assert v.meta is not None
    return v.meta.txid, v.page == v.meta.txid % 2


def problems(io: FileIO, ps: int) -> list[str]:
    """What is wrong with either meta page at page size ``ps`` (for ``check``).

    :raises FileIOError: the file cannot be read.

    Runtime complexity: O(1).
    """
    size = io.size()
    if size < 2 * ps:
        return [f"the file is {size} bytes, shorter than its meta pages"]
    held = io.held()
    out = [validate(_raw(io, p * ps), p, ps, size, held).problem for p in (0, 1)]
    return [p for p in out if p]


def write(io: FileIO, meta: Meta, page: int) -> None:
    """Write ``meta`` to meta page ``page`` (0 or 1), its header naming that
    page (not synced).

    A commit writes the page that does *not* hold the meta the file was
    opened at (or last committed): never the newest acknowledged state, even
    when the metas sit on pages other than ``txid % 2`` (bbolt's rule, which
    would overwrite the newest meta then), or when the open fell back to the
    older meta.  A commit that changes the file's format, or lowers its
    high-water mark, then writes the same meta to the other page too, once
    its own copy is durable: no meta of the old format (which bbolt would
    open), or whose pages pass the shorter file, is left behind.

    :raises FileIOError: the write failed.
    :raises InvalidArgumentError: a field does not fit its width, or
        ``page`` is not 0 or 1.

    Runtime complexity: O(page_size).
    """
    if page not in (0, 1):
        raise InvalidArgumentError(f"a meta page is 0 or 1, not {page!r}")
    io.pwrite(meta.pack_page(meta.page_size, page), page * meta.page_size)
