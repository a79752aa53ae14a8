"""The base of the freelist's on-disk formats and their registered table.

:class:`Commit` is what a commit hands a format, :class:`Written` what the
format wrote, :class:`Stored` what it found on disk for a meta;
:class:`FreelistFormat` is the base every format derives from, and
:func:`register` adds one to :data:`FORMATS`, from which :func:`reading`,
:func:`writing` and the meta validation derive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from .._fileio import FileIO
from .._shared import SharedFreelist
from ..errors import InvalidArgumentError, UnsupportedVersionError
from ..layout import Meta
from ..protocol import Freelist
from ..runs import run_chunks
from . import freemap

if TYPE_CHECKING:
    from .log import LogChain

__all__ = [
    "FORMATS",
    "Commit",
    "FreelistFormat",
    "Run",
    "Stored",
    "Written",
    "describe",
    "known",
    "load_into",
    "reading",
    "register",
    "versions",
    "writing",
]

#: A run of pages ``(start, n)``.
Run = tuple[int, int]


#: The registered formats, by the name ``PageFile.open`` takes, in the order
#: :func:`reading` asks them (see :func:`register`).  Everything that knows
#: formats derives from this table: the names ``PageFile.open`` accepts,
#: :func:`reading` and :func:`writing`, the meta versions and flags
#: :func:`freelist.meta.validate` accepts, the open's fallback and resume,
#: and whether a commit converts the file.
FORMATS: dict[str, type[FreelistFormat]] = {}


@dataclass(kw_only=True)
class Commit:
    """What a format's :meth:`~FreelistFormat.write` works with at commit.

    ``owned``: the runs the committed freelist occupies; ``taken``/``freed``:
    the runs this transaction took from the free-or-pending set and freed,
    in order (``allocate`` appends to ``taken``, :meth:`free` to ``freed``).
    ``rewrite``: the set also changed in a way ``taken``/``freed`` do not say
    (a shrinking commit took the free tail off it and lowered the high-water
    mark): a format that stores changes writes the whole set this time.
    """

    io: FileIO
    fl: Freelist
    txid: int
    page_size: int
    allocate: Callable[[int], int]
    owned: list[Run]
    taken: list[Run]
    freed: list[Run]
    rewrite: bool = False

    def free(self, start: int, n: int) -> None:
        """Free pages of the stored freelist (pending in this transaction).

        Runtime complexity: the freelist's free.
        """
        self.fl.free(self.txid, start, n)
        self.freed.append((start, n))

    def free_owned(self) -> None:
        """Free every run the committed freelist occupies.

        Runtime complexity: O(len(owned)) frees.
        """
        for start, n in self.owned:
            self.free(start, n)


class Written(NamedTuple):
    """What a format's :meth:`~FreelistFormat.write` wrote, returned to the
    commit: nothing in it is shared with the page file's state."""

    #: The meta's freelist field (the first page of what was written, or all ones).
    field: int
    #: The runs the new freelist occupies, sorted: a list of the format's own,
    #: which becomes the page file's once the commit is durable.
    owned: list[Run]
    #: The bytes written for the freelist.
    nbytes: int


@dataclass
class Stored:
    """What a format found on disk for one meta.

    ``ids`` are the free and pending ids as stored, sorted (None: the format
    stores none, rebuild them from a walk; a rebuild's ids may be a stream);
    ``owned`` the runs the format occupies;
    ``errors`` make the file unsafe to allocate from (open refuses it);
    ``warnings`` are deviations ``check`` reports but open tolerates.
    """

    ids: Iterable[int] | None
    owned: list[Run] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    chain: LogChain | None = None


class FreelistFormat:
    """An on-disk format of the freelist: the base of every registered format.

    A format owns its identity: ``name`` is what ``PageFile.open(freelist_format=...)``
    takes; ``version`` and ``flags`` go into the metas of the commits that
    write it (the flag bits of all registered formats are the ones
    :meth:`reads` compares; a meta's other bits are none of theirs);
    :meth:`reads` says whether a meta was written with it; ``falls_back``: a damaged stored
    freelist makes the open fall back to the other meta (one commit older)
    when that one reads back sound; :meth:`resume` picks up what the open
    read.  An instance serves one open file's commits.
    """

    name: ClassVar[str]
    version: ClassVar[int]
    flags: ClassVar[int] = 0
    falls_back: ClassVar[bool] = False

    @classmethod
    def reads(cls, meta: Meta) -> bool:
        """Whether ``meta`` was written with this format: its version and
        format flags are this format's.

        Runtime complexity: O(1).
        """
        return meta.version == cls.version and meta.flags & _owned_flags() == cls.flags

    def read(self, io: FileIO, meta: Meta) -> Stored:
        """Read and validate the free pages ``meta`` names.

        :raises FileIOError: the file cannot be read.

        Runtime complexity: O(F) for F stored ids.
        """
        raise NotImplementedError

    def write(self, c: Commit) -> Written:
        """Free the pages the stored freelist no longer needs and write the new
        one (allocating through ``c.allocate``); not synced.

        :raises FileIOError: the write failed.

        Runtime complexity: as the format; O(F) at most, plus the I/O.
        """
        raise NotImplementedError

    def published(self) -> None:
        """The commit whose freelist :meth:`write` wrote is durable.

        Runtime complexity: O(1).
        """

    def resume(self, stored: Stored) -> None:
        """Continue from what the open read (``stored``, by whichever format
        the file's meta was written with) at the next commit.

        Runtime complexity: O(1).
        """

    def converts(self, meta: Meta) -> bool:
        """Whether a commit writing this format over a file at ``meta``
        changes the file's meta version: then the commit copies its meta to
        both meta pages, leaving no meta of the old version (which bbolt
        would open, or refuse) behind.

        Runtime complexity: O(1).
        """
        return meta.version != self.version

    def details(self, stored: Stored, meta: Meta) -> dict[str, Any]:  # noqa: ARG002
        """What ``freelist inspect`` shows of ``stored`` beyond its format,
        pages and errors (see :func:`describe`); none by default.

        Runtime complexity: O(1).
        """
        return {}


def _owned_flags() -> int:
    """The meta flag bits the registered formats own (a meta's other flag
    bits are none of theirs)."""
    owned = 0
    for cls in FORMATS.values():
        owned |= cls.flags
    return owned


def register(cls: type[FreelistFormat]) -> type[FreelistFormat]:
    """Add the format ``cls`` to :data:`FORMATS` (a class decorator).
    :func:`reading` asks the formats in the order they were registered.

    :raises InvalidArgumentError: a format of that name is registered.

    Runtime complexity: O(1).
    """
    if cls.name in FORMATS:
        raise InvalidArgumentError(f"a freelist format named {cls.name!r} is registered")
    FORMATS[cls.name] = cls
    return cls


def reading(meta: Meta) -> FreelistFormat:
    """A new instance of the format ``meta`` was written with: the first
    registered one whose :meth:`~FreelistFormat.reads` accepts it.

    :raises UnsupportedVersionError: no format reads it (a meta
        :func:`freelist.meta.validate` accepts always has one).

    Runtime complexity: O(formats).
    """
    for cls in FORMATS.values():
        if cls.reads(meta):
            return cls()
    raise UnsupportedVersionError(
        "<meta>", f"no freelist format reads version {meta.version} with flags {meta.flags:#x}"
    )


def known(meta: Meta) -> bool:
    """Whether a registered format reads ``meta`` (its version and flags).

    Runtime complexity: O(formats).
    """
    return any(cls.reads(meta) for cls in FORMATS.values())


def versions() -> set[int]:
    """The meta versions of the registered formats.

    Runtime complexity: O(formats).
    """
    return {cls.version for cls in FORMATS.values()}


def writing(name: str) -> FreelistFormat:
    """A new instance of the format ``name`` (one of :data:`FORMATS`).

    :raises KeyError: an unknown name (the page file checks names first).

    Runtime complexity: O(1).
    """
    return FORMATS[name]()


def describe(io: FileIO, meta: Meta) -> dict[str, Any]:
    """What ``freelist inspect`` shows about the stored freelist of ``meta``:
    ``format``, ``pages`` (pages it occupies), ``errors``, and what the
    format adds (:meth:`FreelistFormat.details`; the log: ``chain_runs``,
    ``checkpoint_txid``, ``checkpoint_age``, ``checkpoint_bytes`` and
    ``log_bytes``).

    :raises FileIOError: the file cannot be read.

    Runtime complexity: as the format's read.
    """
    fmt = reading(meta)
    stored = fmt.read(io, meta)
    out: dict[str, Any] = {
        "format": fmt.name,
        "pages": sum(n for _, n in stored.owned),
        "errors": list(stored.errors),
    }
    out.update(fmt.details(stored, meta))
    return out


def load_into(fl: Freelist, stored: Stored, hwm: int, *, page_map: bool) -> None:
    """Replace ``fl``'s free set with ``stored.ids`` (verified by the
    format's reader, or made by a walk): sorted, unique, inside ``[2, hwm)``.

    The library's own freelists are built straight from what was read, with
    no list of ids: from a :class:`~freelist.persist.FreeMap` (whose bytes
    become the freelist's page map) or from the id array's runs; with
    ``page_map`` (a writable open) the page map is built from the ids too,
    where :func:`~freelist.persist.free_map_fits` allows (a byte set per id,
    in C), so the first write need not build it from the runs.  Any other
    :class:`~freelist.Freelist` gets ``init(ids)``.

    :raises InvalidPageIdsError: ``fl.init`` refused the ids (a freelist of
        the caller's).
    :raises InvalidArgumentError: ``stored.ids`` is None (nothing to load).

    Runtime complexity: O(F) for F ids (O(hwm) in C for a free map).
    """
    ids = stored.ids
    if ids is None:
        raise InvalidArgumentError("no stored ids to load: rebuild them from a walk")
    if not isinstance(fl, SharedFreelist):
        fl.init(ids)
    elif isinstance(ids, freemap.FreeMap):
        fl._init_verified(ids, ids.runs, ids.release())
    elif page_map and isinstance(ids, Sequence) and freemap.free_map_fits(hwm, 8 * len(ids)):
        fmap = freemap.FreeMap(hwm)
        fmap.load(ids)
        fl._init_verified(ids, partial(run_chunks, ids), fmap.release())
    else:
        fl._init_verified(ids, partial(run_chunks, ids))
