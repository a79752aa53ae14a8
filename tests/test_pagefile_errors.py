"""PageFile under bad input and faults: each opening failure its own exception,
argument types, failed calls that change nothing, the commit order, I/O faults.

Every test runs with both freelist classes where the freelist matters.
"""

from __future__ import annotations

import errno
import inspect
import mmap
import os
import re
import struct
from array import array
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from freelist import (
    ArrayFreelist,
    BadMagicError,
    ClosedError,
    DataTooLargeError,
    DoubleFreeError,
    FileFormatError,
    FileIOError,
    FileLockedError,
    FileTooShortError,
    Freelist,
    FreelistError,
    FreelistPageError,
    HashmapFreelist,
    InvalidArgumentError,
    MetaConflictError,
    MissingFileError,
    NotAllocatedError,
    NoValidMetaError,
    PageFile,
    PageFileError,
    PageFileTypeError,
    PageRangeError,
    PageSizeMismatchError,
    ReachabilityError,
    ReadOnlyError,
    Transaction,
    TransactionError,
    UnsupportedVersionError,
)
from freelist.layout import (
    FREELIST_PAGE,
    NO_FREELIST,
    Meta,
    PageHeader,
    pack_freelist_page,
    unpack_freelist_ids,
)

PS = 4096


def state(pf: PageFile, tx: Transaction | None = None) -> tuple[Any, ...]:
    """Everything a failed call must leave as it was."""
    fl = pf.freelist
    extra = (tx.hwm, tx.root, tx.closed) if tx is not None else ()
    return (fl.all_page_ids(), fl.pending_page_ids(), pf.meta, pf.stats().file_size, *extra)


def make_file(path: Path, kind: str = "hashmap", commits: int = 3) -> Meta:
    """A file with a few commits, a root page and some free pages; its newest meta."""
    with PageFile.open(path, freelist=kind) as pf:
        for i in range(commits):
            with pf.update() as tx:
                old = tx.root
                page = tx.allocate(2)
                tx.write(page, bytes([65 + i]) * 100)
                tx.root = page
                if old:
                    tx.free(old, 2)
        return pf.meta


# --- the public names ---------------------------------------------------------


def test_open_signature_matches_the_issue() -> None:
    params = inspect.signature(PageFile.open).parameters
    assert params["page_size"].default == 4096
    assert params["freelist"].default == "hashmap"
    assert params["sync_freelist"].default is True
    assert params["reachable"].default is None
    assert params["timeout"].default is None
    for name in ("freelist", "page_size", "sync_freelist", "reachable", "timeout"):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY


def test_default_page_size_adopts_an_existing_files_size(path: Path) -> None:
    with PageFile.open(path) as pf:
        assert pf.page_size == 4096
    other = path.with_name("small.db")
    with PageFile.open(other, page_size=1024):
        pass
    with PageFile.open(other) as pf:  # no page_size: the file's own
        assert pf.page_size == 1024
    with pytest.raises(PageSizeMismatchError, match="1024, not 4096"):
        PageFile.open(other, page_size=4096)  # given explicitly: must match
    with pytest.raises(PageFileTypeError):
        PageFile.open(other, page_size=True)


def test_transaction_attributes_are_read_only(path: Path) -> None:
    with PageFile.open(path) as pf, pf.update() as tx:
        for name in ("txid", "writable", "closed"):
            with pytest.raises(AttributeError):
                setattr(tx, name, 5)
        assert (tx.txid, tx.writable, tx.closed) == (2, True, False)


# --- opening: each failure its own exception, the file untouched ---------------


def _rewrite_meta(data: bytearray, meta: Meta, **changes: int) -> None:
    fields = {
        "page_size": meta.page_size,
        "root": meta.root,
        "freelist": meta.freelist,
        "hwm": meta.hwm,
        "txid": meta.txid,
    }
    fields.update(changes)
    new = Meta(**fields)
    page = new.txid % 2
    data[page * PS : (page + 1) * PS] = new.pack_page(PS)


def _set_freelist_page(data: bytearray, pgid: int, ids: Iterable[int]) -> None:
    body = pack_freelist_page(pgid, array("Q", ids), PS)
    data[pgid * PS : pgid * PS + len(body)] = body


DAMAGE: dict[str, tuple[Callable[[bytearray, Meta], bytes], type[Exception], str]] = {
    "100 bytes": (lambda d, _m: bytes(d[:100]), FileTooShortError, "too short"),
    "under two metas": (lambda d, _m: bytes(d[:5000]), FileTooShortError, "5000 bytes"),
    "both hwm past the end": (
        lambda d, _m: bytes(d[: 2 * PS + 100]),
        FileTooShortError,
        "outside the file",
    ),
    "all zero": (lambda d, _m: bytes(len(d)), BadMagicError, "no valid meta page"),
    "both hwm past the end of valid metas": (
        lambda d, m: (
            _rewrite_meta(d, m, txid=m.txid - 1, hwm=10**9),
            _rewrite_meta(d, m, hwm=10**9),
            bytes(d),
        )[2],
        FileTooShortError,
        "high-water mark 1000000000 outside the file",
    ),
    "bad magic": (
        lambda d, _m: bytes(d[:16] + b"\1\2\3\4" + d[20 : PS + 16] + b"\1\2\3\4" + d[PS + 20 :]),
        BadMagicError,
        "bad magic",
    ),
    "bad version": (
        lambda d, _m: _version(d),
        UnsupportedVersionError,
        "version 9",
    ),
    "both checksums": (
        lambda d, _m: bytes(d[:72] + b"\0" * 8 + d[80 : PS + 72] + b"\0" * 8 + d[PS + 80 :]),
        NoValidMetaError,
        "checksum mismatch",
    ),
    "mixed faults": (
        lambda d, _m: bytes(d[:72] + b"\0" * 8 + d[80 : PS + 16] + b"\0\0\0\0" + d[PS + 20 :]),
        NoValidMetaError,
        "checksum mismatch; meta page 1: bad magic",
    ),
    "freelist page out of range": (
        lambda d, m: (_rewrite_meta(d, m, freelist=m.hwm + 7), bytes(d))[1],
        FreelistPageError,
        "outside",
    ),
    "freelist page of the wrong type": (
        lambda d, m: (struct.pack_into("<H", d, m.freelist * PS + 8, 0x02), bytes(d))[1],
        FreelistPageError,
        "not a freelist page",
    ),
    "freelist overflow past the hwm": (
        lambda d, m: (struct.pack_into("<I", d, m.freelist * PS + 12, 10**6), bytes(d))[1],
        FreelistPageError,
        "passes the high-water mark",
    ),
    "freelist lists its own page": (
        lambda d, m: (_set_freelist_page(d, m.freelist, [m.freelist]), bytes(d))[1],
        FreelistPageError,
        "its own page",
    ),
    "freelist lists ids past the hwm": (
        lambda d, m: (_set_freelist_page(d, m.freelist, [m.hwm + 3]), bytes(d))[1],
        FreelistPageError,
        "outside",
    ),
    "freelist repeats an id": (
        lambda d, m: (_set_freelist_page(d, m.freelist, [m.root, m.root]), bytes(d))[1],
        FreelistPageError,
        "duplicate",
    ),
    "freelist count past the file": (
        lambda d, m: (struct.pack_into("<H", d, m.freelist * PS + 10, 0xFFFE), bytes(d))[1],
        FreelistPageError,
        "more than its pages hold",
    ),
}


def _version(d: bytearray) -> bytes:
    for page in (0, 1):
        struct.pack_into("<I", d, page * PS + 20, 9)
    return bytes(d)


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_each_opening_failure_is_its_own_clear_error(path: Path, case: str) -> None:
    meta = make_file(path)
    damage, error, message = DAMAGE[case]
    data = damage(bytearray(path.read_bytes()), meta)
    path.write_bytes(data)
    with pytest.raises(error, match=message) as info:
        PageFile.open(path)
    assert isinstance(info.value, FileFormatError)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == data, "a failed open changed the file"


def test_opening_error_classes_are_distinct() -> None:
    classes = [
        MissingFileError,
        FileTooShortError,
        BadMagicError,
        UnsupportedVersionError,
        PageSizeMismatchError,
        NoValidMetaError,
        FreelistPageError,
    ]
    assert len(set(classes)) == len(classes)
    for cls in classes:
        assert issubclass(cls, PageFileError)
        assert issubclass(cls, FreelistError)
    assert issubclass(BadMagicError, NoValidMetaError)  # both metas bad, for one reason
    assert issubclass(UnsupportedVersionError, NoValidMetaError)


def test_missing_file_is_its_own_error(path: Path) -> None:
    with pytest.raises(MissingFileError, match="no such file") as info:
        PageFile.open(path, create=False)
    assert info.value.path == str(path)
    with pytest.raises(MissingFileError):
        PageFile.open(path, readonly=True)
    with pytest.raises(MissingFileError):
        PageFile.open(path.parent / "no-such-dir" / "x.db")
    assert not path.exists()


def test_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    for readonly in (False, True):
        with pytest.raises(FileIOError, match="directory") as info:
            PageFile.open(tmp_path, readonly=readonly)
        assert info.value.path == str(tmp_path)


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for readonly in (True, False):
        with pytest.raises(FileIOError, match="not a regular file"):
            PageFile.open(fifo, readonly=readonly, timeout=0)


def test_no_permission_is_a_clear_error(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_file(path)
    data = path.read_bytes()
    real_open = os.open

    def refuse(p: Any, flags: int, mode: int = 0o777) -> int:
        if os.fspath(p) == str(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(p))
        return real_open(p, flags, mode)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(FileIOError, match="Permission denied") as info:
        PageFile.open(path)
    assert not isinstance(info.value, OSError)
    monkeypatch.undo()
    assert path.read_bytes() == data


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"timeout": "soon"}, InvalidArgumentError),
        ({"timeout": -1}, InvalidArgumentError),
        ({"timeout": float("nan")}, InvalidArgumentError),
        ({"timeout": True}, InvalidArgumentError),
        ({"page_size": 4096.0}, PageFileTypeError),
        ({"page_size": 3000}, InvalidArgumentError),
        ({"freelist": "tree"}, InvalidArgumentError),
        ({"freelist": ArrayFreelist}, PageFileTypeError),
        ({"freelist": 7}, PageFileTypeError),
        ({"reachable": 5}, PageFileTypeError),
    ],
)
def test_bad_open_arguments(path: Path, kwargs: dict[str, Any], error: type[Exception]) -> None:
    make_file(path)
    data = path.read_bytes()
    with pytest.raises(error):
        PageFile.open(path, **kwargs)
    assert path.read_bytes() == data
    with PageFile.open(path, timeout=0):  # and nothing is left locked
        pass


def test_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(PageFileTypeError):
        PageFile.open(3)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="null"):
        PageFile.open(str(tmp_path / "a\0b"))
    with PageFile.open(os.fsencode(tmp_path / "b.db")) as pf:  # type: ignore[arg-type]
        assert pf.path == str(tmp_path / "b.db")


def test_a_freelist_object_serves_one_open_file(tmp_path: Path, kind: str) -> None:
    fl = HashmapFreelist() if kind == "hashmap" else ArrayFreelist()
    with PageFile.open(tmp_path / "a.db", freelist=fl):
        with pytest.raises(InvalidArgumentError, match="another open PageFile"):
            PageFile.open(tmp_path / "b.db", freelist=fl)
        assert not (tmp_path / "b.db").exists() or (tmp_path / "b.db").stat().st_size == 0
    with PageFile.open(tmp_path / "b.db", freelist=fl) as pf:  # free again once closed
        assert pf.freelist is fl
    busy = HashmapFreelist([5, 6])
    busy.free(3, 9)
    with pytest.raises(InvalidArgumentError, match="pending"):
        PageFile.open(tmp_path / "c.db", freelist=busy)


def test_a_failed_open_releases_the_lock_and_the_freelist(path: Path) -> None:
    make_file(path)
    data = bytearray(path.read_bytes())
    _version(data)
    path.write_bytes(bytes(data))
    fl = HashmapFreelist()
    with pytest.raises(UnsupportedVersionError):
        PageFile.open(path, freelist=fl, timeout=0)
    with pytest.raises(UnsupportedVersionError):  # not FileLockedError
        PageFile.open(path, freelist=fl, timeout=0)


def test_an_unclosed_file_releases_its_lock_when_collected(path: Path) -> None:
    import gc

    pf = PageFile.open(path)
    del pf
    gc.collect()
    with PageFile.open(path, timeout=0):
        pass


def test_shared_lock_for_readers_exclusive_for_a_writer(path: Path) -> None:
    make_file(path)
    r1 = PageFile.open(path, readonly=True, timeout=0)
    r2 = PageFile.open(path, readonly=True, timeout=0)  # shared: both get it
    with pytest.raises(FileLockedError, match="locked"):
        PageFile.open(path, timeout=0.1)
    r1.close()
    r2.close()
    with PageFile.open(path, timeout=0), pytest.raises(FileLockedError):
        PageFile.open(path, readonly=True, timeout=0)


# --- truncation and torn metas ---------------------------------------------------


def test_truncation_that_cuts_the_newest_commit_falls_back(path: Path, kind: str) -> None:
    with PageFile.open(path, freelist=kind) as pf:
        with pf.update() as tx:
            a = tx.allocate(1)
            tx.write(a, b"old")
            tx.root = a
        older = pf.meta
        with pf.update() as tx:
            b = tx.allocate(40)  # grows the file; the newest hwm is far past the older
            tx.write(b, b"new")
            tx.root = b
        newest = pf.meta
    assert newest.hwm > older.hwm + 30
    os.truncate(path, older.hwm * PS + 123)  # mid-page, past the older commit's pages
    with PageFile.open(path, freelist=kind) as pf:
        assert pf.meta == older
        with pf.view() as r:
            assert r.read(pf.meta.root)[:3] == b"old"
        problems = pf.check()
        assert len(problems) == 1
        assert "outside the file" in problems[0]
        with pf.update() as tx:  # writing again grows the file and rewrites that meta
            c = tx.allocate(50)
            tx.write(c, b"again")
            tx.root = c
            tx.free(a)
        assert pf.check() == []
    with PageFile.open(path, freelist=kind) as pf:
        assert pf.check() == []


def test_truncating_slack_past_the_hwm_loses_nothing(path: Path, kind: str) -> None:
    with PageFile.open(path, freelist=kind) as pf:
        with pf.update() as tx:
            a = tx.allocate(3)
            tx.write(a, b"x" * 3 * PS)
            tx.root = a
        meta = pf.meta
        size = pf.stats().file_size
    assert size > meta.hwm * PS + 1000
    os.truncate(path, meta.hwm * PS + 1000)  # not a whole number of pages
    with PageFile.open(path, freelist=kind) as pf:
        assert pf.meta == meta
        assert pf.check() == []
        with pf.update() as tx:
            b = tx.allocate(10)  # grows from an unaligned size
            tx.write(b, b"y" * 10 * PS)
        assert pf.stats().file_size % PS == 0
        with pf.view() as r:
            assert r.read(b + 9) == b"y" * PS
        assert pf.check() == []


@pytest.mark.parametrize("how", ["checksum", "torn half", "zeroed"])
def test_torn_newest_meta_recovers_the_previous_commit(path: Path, kind: str, how: str) -> None:
    with PageFile.open(path, freelist=kind):
        pass
    previous = make_file(path, kind, commits=2)
    with PageFile.open(path, freelist=kind) as pf:
        with pf.update() as tx:
            page = tx.allocate(1)
            tx.write(page, b"lost")
            tx.root = page
            tx.free(previous.root, 2)
        newest = pf.meta
    data = bytearray(path.read_bytes())
    off = (newest.txid % 2) * PS
    if how == "checksum":
        data[off + 72] ^= 0x40
    elif how == "torn half":  # the first half of the write reached the disk, with old bytes after
        data[off + 48 : off + 80] = b"\x55" * 32
    else:
        data[off : off + PS] = bytes(PS)
    path.write_bytes(bytes(data))
    with PageFile.open(path, freelist=kind) as pf:
        assert pf.meta == previous
        with pf.view() as r:
            assert r.read(previous.root)[:100] == b"B" * 100
        (problem,) = pf.check()
        assert problem.startswith(f"meta page {newest.txid % 2}: ")
        with pf.update() as tx:  # the next commit rewrites the torn meta
            tx.root = previous.root
        assert pf.check() == []


def test_a_corrupt_older_meta_is_reported_not_used(path: Path, kind: str) -> None:
    newest = make_file(path, kind)
    data = bytearray(path.read_bytes())
    other = 1 - newest.txid % 2
    data[other * PS + 30] ^= 1
    path.write_bytes(bytes(data))
    with PageFile.open(path, freelist=kind) as pf:
        assert pf.meta == newest
        assert pf.check() == [f"meta page {other}: checksum mismatch"]


def test_freelist_out_of_range_in_the_older_meta_only_is_reported(path: Path) -> None:
    newest = make_file(path)
    data = bytearray(path.read_bytes())
    older, _ = Meta.unpack(bytes(data), (1 - newest.txid % 2) * PS)
    _rewrite_meta(data, older, freelist=older.hwm + 1)
    path.write_bytes(bytes(data))
    with PageFile.open(path) as pf:
        assert pf.meta == newest
        (problem,) = pf.check()
        assert "freelist page" in problem
        assert "outside" in problem


# --- argument types and failed calls ------------------------------------------------


class Index:
    """An int-like that is not an int (as NumPy's integers are)."""

    def __init__(self, v: int) -> None:
        self.v = v

    def __index__(self) -> int:
        return self.v


def test_bad_argument_types_are_clear_errors_and_change_nothing(path: Path, kind: str) -> None:
    with PageFile.open(path, freelist=kind) as pf:
        with pf.update() as tx:
            kept = tx.allocate(2)
            tx.root = kept
        tx = pf.begin(True)
        a = tx.allocate(2)
        tx.write(a, b"keep")
        before = state(pf, tx)
        calls: list[Callable[[], object]] = [
            lambda: tx.write(float(a), b"x"),  # type: ignore[arg-type]
            lambda: tx.write([a], b"x"),  # type: ignore[arg-type]
            lambda: tx.write(True, b"x"),  # type: ignore[arg-type]
            lambda: tx.write(a, "text"),  # type: ignore[arg-type]
            lambda: tx.write(a, 5),  # type: ignore[arg-type]
            lambda: tx.write(a, None),  # type: ignore[arg-type]
            lambda: tx.read(True),
            lambda: tx.read(2.0),  # type: ignore[arg-type]
            lambda: tx.read("3"),  # type: ignore[arg-type]
            lambda: tx.read(a, 1.0),  # type: ignore[arg-type]
            lambda: tx.free(float(kept)),  # type: ignore[arg-type]
            lambda: tx.free(kept, True),
            lambda: tx.allocate(1.5),  # type: ignore[arg-type]
            lambda: tx.allocate(True),
            lambda: tx.allocate(None),  # type: ignore[arg-type]
            lambda: setattr(tx, "root", False),
            lambda: setattr(tx, "root", "5"),
        ]
        for call in calls:
            with pytest.raises(PageFileTypeError) as info:
                call()
            assert isinstance(info.value, TypeError)
            assert isinstance(info.value, FreelistError)
            assert info.value.path == str(path)
        assert state(pf, tx) == before
        assert tx.read(Index(a))[:4] == b"keep"  # int-likes are accepted
        tx.rollback()
        assert pf.check() == []


def test_failed_calls_change_nothing(path: Path, kind: str) -> None:
    with PageFile.open(path, freelist=kind) as pf:
        with pf.update() as tx:
            kept = tx.allocate(2)
            tx.write(kept, b"kept")
            tx.root = kept
            spare = tx.allocate(8)
        with pf.update() as tx:
            tx.free(spare, 8)
        with pf.update():
            pass  # spare is free now
        r = pf.begin(False)
        tx = pf.begin(True)
        a = tx.allocate(1)
        tx.write(a, b"mine")
        spare = next(s for s, n in pf.freelist.free_spans() if n >= 3)
        before = state(pf, tx)
        huge = 2**64
        failing: list[tuple[Callable[[], object], type[Exception]]] = [
            (lambda: tx.write(a, b"x" * (PS + 1)), DataTooLargeError),
            (lambda: tx.write(a, array("Q", [7] * (PS // 8 + 1))), DataTooLargeError),
            (lambda: tx.write(kept, b"x"), NotAllocatedError),  # committed, not ours
            (lambda: tx.write(spare, b"x"), NotAllocatedError),  # free
            (lambda: tx.write(huge, b"x"), NotAllocatedError),
            (lambda: tx.free(spare), DoubleFreeError),  # free, not allocated
            (lambda: tx.free(spare + 1, 2), DoubleFreeError),
            (lambda: tx.free(0), PageRangeError),
            (lambda: tx.free(-3), PageRangeError),
            (lambda: tx.free(a, 0), PageRangeError),
            (lambda: tx.free(huge), PageRangeError),
            (lambda: tx.free(tx.hwm), PageRangeError),
            (lambda: tx.free(pf.meta.freelist), NotAllocatedError),
            (lambda: tx.read(1), PageRangeError),
            (lambda: tx.read(-1), PageRangeError),
            (lambda: tx.read(tx.hwm), PageRangeError),
            (lambda: tx.read(a, huge), PageRangeError),
            (lambda: tx.allocate(0), InvalidArgumentError),
            (lambda: tx.allocate(-5), InvalidArgumentError),
            (lambda: tx.allocate(huge), InvalidArgumentError),
            (lambda: setattr(tx, "root", spare), NotAllocatedError),  # a free page
            (lambda: setattr(tx, "root", pf.meta.freelist), NotAllocatedError),
            (lambda: setattr(tx, "root", 1), PageRangeError),
            (lambda: setattr(tx, "root", huge), PageRangeError),
            (lambda: r.allocate(1), ReadOnlyError),
            (lambda: r.write(a, b"x"), ReadOnlyError),
            (lambda: r.free(kept), ReadOnlyError),
            (lambda: setattr(r, "root", kept), ReadOnlyError),
            (r.commit, ReadOnlyError),
            (lambda: r.read(r.hwm), PageRangeError),
            (lambda: pf.begin(True), TransactionError),
            (pf.close, TransactionError),
        ]
        for call, error in failing:
            with pytest.raises(error) as info:
                call()
            assert isinstance(info.value, FreelistError)
            assert str(path) in str(info.value), info.value
            assert state(pf, tx) == before, call
        assert tx.read(a)[:4] == b"mine"
        assert r.read(kept)[:4] == b"kept"
        tx.commit()
        r.rollback()
        with pytest.raises(ClosedError):
            tx.write(a, b"x")
        with pytest.raises(ClosedError):
            r.read(kept)
        assert pf.check() == []
    with pytest.raises(ClosedError):
        pf.begin(False)


def test_write_takes_any_bytes_like_object_by_its_size_in_bytes(path: Path, kind: str) -> None:
    with PageFile.open(path, freelist=kind) as pf, pf.update() as tx:
        a = tx.allocate(1)
        b = tx.allocate(1)
        tx.write(b, b"neighbour")
        with pytest.raises(DataTooLargeError, match="4104 bytes"):
            tx.write(a, array("Q", range(PS // 8 + 1)))  # 513 items, 4104 bytes
        tx.write(a, array("Q", [1, 2]))
        assert tx.read(a)[:16] == struct.pack("<QQ", 1, 2)
        tx.write(a, bytearray(b"bytearray"))
        tx.write(a, memoryview(b"0123456789")[::2])  # not contiguous
        assert tx.read(a)[:5] == b"02468"
        tx.write(a, memoryview(b"x" * PS))
        assert tx.read(b)[:9] == b"neighbour"


def test_huge_allocation_fails_and_leaves_the_file(path: Path, kind: str) -> None:
    with PageFile.open(path, freelist=kind) as pf:
        tx = pf.begin(True)
        before = state(pf, tx)
        for n in (2**40, 2**52, 2**63):
            with pytest.raises(FileIOError, match=r"cannot (grow|map)"):
                tx.allocate(n)
            assert state(pf, tx) == before
        with pytest.raises(InvalidArgumentError):
            tx.allocate(2**64)
        assert tx.allocate(1) == 3
        tx.commit()
        assert pf.check() == []


def test_a_failed_remap_restores_the_file_size(
    path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with PageFile.open(path, freelist=kind) as pf:
        tx = pf.begin(True)
        before = state(pf, tx)

        def no_map(*_args: Any, **_kw: Any) -> mmap.mmap:
            raise OSError(errno.ENOMEM, "Cannot allocate memory")

        monkeypatch.setattr(mmap, "mmap", no_map)
        with pytest.raises(FileIOError, match="cannot map"):
            tx.allocate(100)
        monkeypatch.undo()
        assert state(pf, tx) == before
        assert os.path.getsize(path) == before[3]
        assert tx.allocate(100) == 3
        tx.rollback()


# --- the root --------------------------------------------------------------------


def test_committing_a_freed_root_is_refused_and_leaves_the_tx_open(path: Path, kind: str) -> None:
    with PageFile.open(path, freelist=kind) as pf:
        with pf.update() as tx:
            root = tx.allocate(1)
            tx.root = root
        tx = pf.begin(True)
        tx.free(root)
        before = state(pf, tx)
        with pytest.raises(NotAllocatedError, match="root page"):
            tx.commit()
        assert state(pf, tx) == before
        assert not tx.closed
        new = tx.allocate(1)
        tx.root = new
        tx.commit()
        assert pf.meta.root == new
        with pytest.raises(NotAllocatedError), pf.update() as tx:  # the block rolls back
            tx.free(new)
        assert pf.meta.root == new
        with pf.update() as tx:  # and the writer slot is free again
            assert tx.root == new
        assert pf.check() == []


# --- the freelist page ----------------------------------------------------------------


def test_the_freelist_page_cannot_be_freed_by_the_caller(path: Path, kind: str) -> None:
    with PageFile.open(path, freelist=kind) as pf:
        with pf.update() as tx:
            tx.allocate(3)
        fl = pf.meta.freelist
        with pf.update() as tx:
            with pytest.raises(NotAllocatedError, match="freelist's own"):
                tx.free(fl)
            with pytest.raises(NotAllocatedError, match="freelist's own"):
                tx.free(2, fl - 1)  # a run that covers it
        assert pf.meta.freelist != fl  # the page file moved it itself
        assert pf.check() == []


def test_check_reports_freelist_header_problems(path: Path) -> None:
    meta = make_file(path)
    data = bytearray(path.read_bytes())
    start = meta.freelist * PS
    ids = unpack_freelist_ids(bytes(data), start, len(data)).tolist()
    struct.pack_into("<Q", data, start, 999)  # wrong id in the header
    path.write_bytes(bytes(data))
    with PageFile.open(path) as pf:
        assert pf.check() == [f"freelist page {meta.freelist} has id 999 in its header"]
    # the long form (count 0xFFFF, real count in the first u64) for a short list
    body = struct.pack("<QHHI", meta.freelist, FREELIST_PAGE, 0xFFFF, 0)
    body += struct.pack("<Q", len(ids)) + array("Q", ids).tobytes()
    data[start : start + len(body)] = body
    path.write_bytes(bytes(data))
    with PageFile.open(path) as pf:
        (problem,) = pf.check()
        assert "0xFFFF rule" in problem


def test_check_reports_a_root_on_the_freelist_page(path: Path) -> None:
    meta = make_file(path)
    data = bytearray(path.read_bytes())
    _rewrite_meta(data, meta, root=meta.freelist)
    path.write_bytes(bytes(data))
    with pytest.raises(FreelistPageError, match="root page"):  # its next commit would free it
        PageFile.open(path)
    with PageFile.open(path, reachable=_runs_walk([])) as pf:  # the repair path
        assert any(f"root page {meta.freelist} is one of the" in p for p in pf.check())


@pytest.mark.parametrize("count", [0, 1, 0xFFFE, 0xFFFF, 0x10000])
def test_freelist_page_count_rule_at_the_boundary(count: int) -> None:
    ids = array("Q", range(2, 2 + count))
    data = pack_freelist_page(7, ids, 1024)
    hdr = PageHeader.unpack(data)
    assert hdr.count == (0xFFFF if count >= 0xFFFF else count)
    assert (hdr.overflow + 1) * 1024 == len(data)
    if count >= 0xFFFF:
        assert struct.unpack_from("<Q", data, 16) == (count,)
    assert unpack_freelist_ids(data, 0, len(data)) == ids


def test_layout_errors_are_library_errors() -> None:
    with pytest.raises(InvalidArgumentError):
        PageHeader(-1, 0, 0, 0).pack()
    with pytest.raises(InvalidArgumentError):
        Meta(4096, 2**64, 2, 3, 4).pack_page(4096)
    with pytest.raises(InvalidArgumentError):
        pack_freelist_page(2, [-5], 4096)  # type: ignore[arg-type]
    page = pack_freelist_page(2, array("Q", [3, 4, 5]), 4096)
    with pytest.raises(FreelistError):
        unpack_freelist_ids(page[:30], 0, 4096)  # limit past the buffer: cut short
    assert pack_freelist_page(2, [3], 1024)[16:24] == struct.pack("<Q", 3)  # type: ignore[arg-type]


# --- reachability walks --------------------------------------------------------------


def _nosync_file(path: Path, kind: str) -> tuple[int, int]:
    with PageFile.open(path, freelist=kind, sync_freelist=False) as pf, pf.update() as tx:
        a = tx.allocate(2)
        tx.root = a
    return a, 2


@pytest.mark.parametrize(
    "walk",
    [
        lambda _pf: None,
        lambda _pf: [5],
        lambda _pf: [(3.0, 1)],
        lambda _pf: [("3", 1)],
        lambda _pf: [(3, 1, 1)],
        lambda _pf: [(True, 1)],
        lambda _pf: [(0, 1)],
        lambda _pf: [(3, 10**9)],
    ],
)
def test_a_bad_walk_is_a_reachability_error(path: Path, kind: str, walk: Any) -> None:
    _nosync_file(path, kind)
    data = path.read_bytes()
    with pytest.raises(ReachabilityError) as info:
        PageFile.open(path, freelist=kind, reachable=walk)
    assert info.value.path == str(path)
    assert path.read_bytes() == data
    good = [(3, 2)]
    with PageFile.open(path, freelist=kind, reachable=lambda _pf: good) as pf:
        assert pf.check(lambda _pf: good) == []
        if walk(pf) is not None:
            assert pf.check(walk) != []  # reported, not raised


def test_walk_with_int_likes(path: Path, kind: str) -> None:
    a, n = _nosync_file(path, kind)
    with PageFile.open(path, freelist=kind, reachable=lambda _pf: [(Index(a), Index(n))]) as pf:
        assert pf.check(lambda _pf: [(a, n)]) == []


# --- any Freelist ----------------------------------------------------------------------


class Delegating:
    """A Freelist that is no subclass of the library's: only the protocol is used."""

    def __init__(self) -> None:
        self._fl = HashmapFreelist()
        self.calls: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        self.calls.add(name)
        return getattr(self._fl, name)

    free_count = property(lambda self: self._fl.free_count)
    pending_count = property(lambda self: self._fl.pending_count)
    count = property(lambda self: self._fl.count)


def test_any_object_satisfying_the_protocol(path: Path) -> None:
    fl = Delegating()
    assert isinstance(fl, Freelist)
    with PageFile.open(path, freelist=fl) as pf:  # type: ignore[arg-type]
        pages = []
        for _ in range(5):
            with pf.update() as tx:
                pages.append(tx.allocate(2))
                tx.write(pages[-1], b"z")
        with pf.update() as tx:
            tx.free(pages[1], 2)
        with pf.update():
            assert pages[1] in pf.freelist.free_page_ids()  # released
        assert pf.check() == []
    assert fl.calls <= {name for name in dir(Freelist) if not name.startswith("_")}
    with PageFile.open(path, freelist=Delegating()) as pf:  # type: ignore[arg-type]
        assert pf.check() == []


# --- the commit protocol and I/O faults --------------------------------------------


def _record(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int]]:
    events: list[tuple[str, int, int]] = []
    real_pwrite, real_sync = os.pwrite, getattr(os, "fdatasync", os.fsync)

    def pwrite(fd: int, data: Any, offset: int) -> int:
        events.append(("write", offset, len(data)))
        return real_pwrite(fd, data, offset)

    def sync(fd: int) -> None:
        events.append(("sync", 0, 0))
        real_sync(fd)

    monkeypatch.setattr(os, "pwrite", pwrite)
    monkeypatch.setattr(os, "fdatasync" if hasattr(os, "fdatasync") else "fsync", sync)
    return events


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "nosync"])
def test_commit_order_data_sync_meta_sync(
    path: Path, kind: str, sync: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    with PageFile.open(path, freelist=kind, sync_freelist=sync, reachable=lambda _pf: []) as pf:
        events = _record(monkeypatch)
        with pf.update() as tx:
            a = tx.allocate(3)
            tx.write(a, b"d" * 3 * PS)
            txid = tx.txid
        first_sync = events.index(("sync", 0, 0))
        assert events[first_sync:] == [
            ("sync", 0, 0),
            ("write", (txid % 2) * PS, PS),  # the meta page, alone
            ("sync", 0, 0),
        ]
        writes = events[:first_sync]
        assert writes[0] == ("write", a * PS, 3 * PS)  # the data, first
        assert all(off >= 2 * PS for _, off, _ in writes), "a meta page written before the sync"
        assert len(writes) == (2 if sync else 1)  # the freelist page, with sync


def test_a_failed_meta_write_stops_writers_until_reopened(
    path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_file(path, kind)
    pf = PageFile.open(path, freelist=kind)
    before = state(pf)
    calls = 0
    real_sync = os.fdatasync

    def failing(fd: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:  # the sync after the meta write
            raise OSError(errno.EIO, "Input/output error")
        real_sync(fd)

    monkeypatch.setattr(os, "fdatasync", failing)
    tx = pf.begin(True)
    a = tx.allocate(1)
    tx.write(a, b"maybe")
    tx.root = a
    with pytest.raises(FileIOError, match="cannot sync") as info:
        tx.commit()
    assert not isinstance(info.value, OSError)
    monkeypatch.undo()
    assert tx.closed
    assert state(pf) == before
    with pytest.raises(TransactionError, match="reopen"):
        pf.begin(True)
    with pf.view() as r:  # readers still work
        assert r.txid == before[2].txid
    pf.close()
    with PageFile.open(path, freelist=kind) as pf:  # the meta did reach the file here
        assert pf.meta.txid in (before[2].txid, before[2].txid + 1)
        assert pf.check() == []
        with pf.update() as tx:
            tx.allocate(1)


def test_a_failed_data_sync_rolls_back_and_writing_goes_on(
    path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_file(path, kind)
    with PageFile.open(path, freelist=kind) as pf:
        with pf.update():
            pass  # settle pending pages
        tx = pf.begin(True)
        before = state(pf)

        def failing(_fd: int) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        tx.allocate(5)
        monkeypatch.setattr(os, "fdatasync", failing)
        with pytest.raises(FileIOError, match="No space left"):
            tx.commit()
        monkeypatch.undo()
        assert state(pf)[:3] == before[:3]
        with pf.update() as tx:
            tx.allocate(1)
        assert pf.check() == []


def test_a_failed_create_leaves_an_empty_file_that_the_next_open_initialises(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(*_: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", failing)
    with pytest.raises(FileIOError, match="No space left"):
        PageFile.open(path)
    monkeypatch.undo()
    assert path.stat().st_size == 0
    with PageFile.open(path) as pf:
        assert pf.meta.txid == 1
        assert pf.check() == []


def test_a_failed_data_write_is_a_file_io_error(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with PageFile.open(path) as pf:
        tx = pf.begin(True)
        a = tx.allocate(1)

        def failing(*_: Any) -> int:
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(os, "pwrite", failing)
        with pytest.raises(FileIOError, match="cannot write"):
            tx.write(a, b"x")
        monkeypatch.undo()
        tx.rollback()
        assert pf.check() == []


# --- readers keep their snapshot ---------------------------------------------------------


def test_readers_keep_their_snapshots_while_writers_reuse_pages(path: Path, kind: str) -> None:
    """Two readers at different snapshots; writers free and reuse everything they may."""
    with PageFile.open(path, freelist=kind, page_size=1024) as pf:
        with pf.update() as tx:
            x = tx.allocate(2)
            tx.write(x, b"X1" * 1024)
            tx.root = x
        r1 = pf.begin(False)
        with pf.update() as tx:
            y = tx.allocate(2)
            tx.write(y, b"Y2" * 1024)
            tx.root = y
            tx.free(x, 2)
        r2 = pf.begin(False)
        for i in range(6):  # churn: allocate all free pages, overwrite them, free them
            with pf.update() as tx:
                got = [tx.allocate(1) for _ in range(pf.freelist.free_count + 2)]
                for p in got:
                    tx.write(p, bytes([i]) * 1024)
                assert not {x, x + 1, y, y + 1} & set(got), "a page a reader sees was reused"
            with pf.update() as tx:
                for p in got:
                    tx.free(p)
            assert r1.read(x, 2) == b"X1" * 1024
            assert r2.read(y, 2) == b"Y2" * 1024
        r1.rollback()
        with pf.update() as tx:  # freed by transaction 3: pending while snapshot 3 is open
            got = [tx.allocate(1) for _ in range(pf.freelist.free_count)]
            assert not {x, x + 1, y, y + 1} & set(got)
            tx.rollback()
        assert r2.read(y, 2) == b"Y2" * 1024
        r2.rollback()
        with pf.update() as tx:  # no reader left: x is reused, y (the root) never
            got = [tx.allocate(1) for _ in range(pf.freelist.free_count)]
            assert {x, x + 1} <= set(got)
            assert not {y, y + 1} & set(got)
            tx.rollback()
        assert pf.check() == []


# --- the command line ---------------------------------------------------------------------


def test_cli_check_without_and_with_a_walk(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from freelist.cli import main

    meta = make_file(path)
    assert main(["check", str(path), "--walk", "none"]) == 0
    assert "ok (without a reachability walk)" in capsys.readouterr().out
    data = bytearray(path.read_bytes())
    struct.pack_into("<Q", data, meta.freelist * PS, 12345)  # a wrong id in its header
    path.write_bytes(bytes(data))
    assert main(["check", str(path), "--walk", "none"]) == 1
    assert "has id 12345 in its header" in capsys.readouterr().out
    # a nosync page file of this project is not a bbolt tree: a clear error naming the file
    nosync = path.with_name("nosync.db")
    _nosync_file(nosync, "hashmap")
    assert main(["check", str(nosync), "--walk", "bbolt"]) == 1  # a problem of the file
    assert str(nosync) in capsys.readouterr().out


def test_bbolt_walk_errors_name_the_file(path: Path) -> None:
    from freelist.bbolt import reachable

    with PageFile.open(path, page_size=1024) as pf, pf.update() as tx:
        leaf = tx.allocate(1)
        tx.write(leaf, struct.pack("<QHHI", leaf, 0x02, 5000, 0))  # 5000 elements: past the page
        tx.root = leaf
    with PageFile.open(path) as pf:
        with pytest.raises(FileFormatError, match="past the end") as info:
            reachable(pf)
        assert info.value.path == str(path)
        assert pf.check() == []


def test_close_with_open_transactions_under_an_exception(path: Path) -> None:
    """Documented: closing with open transactions is a TransactionError, also from
    ``with``; the original exception is kept as its context."""

    def body() -> None:
        with PageFile.open(path) as pf:
            pf.begin(False)
            raise KeyError("original")

    with pytest.raises(TransactionError) as info:
        body()
    assert isinstance(info.value.__context__, KeyError)


# --- issue 7: regressions, each failing on the code before its fix --------------------


def _runs_walk(runs: list[tuple[int, int]]) -> Callable[[PageFile], list[tuple[int, int]]]:
    return lambda _pf: list(runs)


@pytest.mark.parametrize("page_size", [512, 1024])
def test_freelist_pages_never_leak_past_0xffff_ids(path: Path, kind: str, page_size: int) -> None:
    # Bug 1: the header recorded fewer overflow pages than the commit reserved
    # (the count was taken after the freelist's own run came out of the free set).
    with PageFile.open(path, freelist=kind, page_size=page_size) as pf:
        with pf.update() as tx:
            root = tx.allocate(1)
            big = tx.allocate(0x10000 + 50)
            tx.root = root
        with pf.update() as tx:
            tx.free(big, 0x10000 + 50)
        for _ in range(3):
            with pf.update():
                pass  # releases the pending run: the freelist's own run changes the count
            assert pf.check(_runs_walk([(root, 1)])) == []
    with PageFile.open(path, freelist=kind) as pf:
        assert pf.check(_runs_walk([(root, 1)])) == []


@pytest.mark.parametrize("k", [249, 250])
def test_freelist_pages_never_leak_in_small_commits(path: Path, kind: str, k: int) -> None:
    # Bug 1 at 1 KiB pages: k single free pages put the freelist at a page
    # boundary that its own allocation crosses.
    with PageFile.open(path, freelist=kind, page_size=1024) as pf:
        with pf.update() as tx:
            root = tx.allocate(1)
            tx.root = root
            big = tx.allocate(600)
        with pf.update() as tx:
            for i in range(0, 2 * k, 2):
                tx.free(big + i, 1)
    live = [(root, 1)] + [(big + i, 1) for i in range(1, 2 * k, 2)] + [(big + 2 * k, 600 - 2 * k)]
    for _ in range(3):
        with PageFile.open(path, freelist=kind) as pf, pf.update():
            pass
        with PageFile.open(path, freelist=kind) as pf:
            assert pf.check(_runs_walk(live)) == []


def _freelist_ids_damage(path: Path, ids: Callable[[Meta], list[int]]) -> Meta:
    meta = make_file(path, commits=5)
    data = bytearray(path.read_bytes())
    _set_freelist_page(data, meta.freelist, ids(meta))
    path.write_bytes(bytes(data))
    return meta


FREELIST_ID_DAMAGE: dict[str, Callable[[Meta], list[int]]] = {
    "unsorted": lambda m: [m.hwm - 1, 3],
    "repeated": lambda _m: [3, 3],
    "repeated unsorted": lambda _m: [4, 3, 4],
    "the root page": lambda m: [m.root],
    "a meta page": lambda _m: [1],
    "its own page": lambda m: [m.freelist],
    "past the hwm": lambda m: [m.hwm],
}


@pytest.mark.parametrize("case", sorted(FREELIST_ID_DAMAGE))
def test_a_damaged_freelist_page_is_refused_or_rebuilt(path: Path, kind: str, case: str) -> None:
    # Bug 2: open trusted unsorted/repeated ids and ids of pages in use.
    meta = _freelist_ids_damage(path, FREELIST_ID_DAMAGE[case])
    data = path.read_bytes()
    with pytest.raises(FreelistPageError, match=f"freelist page {meta.freelist}") as info:
        PageFile.open(path, freelist=kind)
    assert info.value.path == str(path)
    assert "reachable=" in str(info.value)
    assert path.read_bytes() == data
    # The repair path: a walk rebuilds the free pages, no live page is handed out.
    walk = _runs_walk([(meta.root, 2)])
    with PageFile.open(path, freelist=kind, reachable=walk) as pf:
        free = set(pf.freelist.all_page_ids())
        assert free.isdisjoint({0, 1, meta.root, meta.root + 1, meta.freelist})
        with pf.update() as tx:
            got = [tx.allocate(1) for _ in range(len(free) + 2)]
            assert not set(got) & {meta.root, meta.root + 1, meta.freelist}
            for p in got:
                tx.free(p)
        assert pf.check(walk) == []
    with PageFile.open(path, freelist=kind) as pf:  # the next commit wrote a sound page
        assert pf.check(walk) == []
        with pf.view() as tx:
            assert tx.read(meta.root)[:1] == b"E"


def _meta_page(ps: int, txid: int, **fields: int) -> bytes:
    m = Meta(
        page_size=ps,
        root=fields.get("root", 0),
        freelist=fields.get("freelist", 2),
        hwm=fields.get("hwm", 3),
        txid=txid,
    )
    return m.pack_page(ps)


def test_metas_that_disagree_on_the_page_size_are_an_error(path: Path) -> None:
    # Bug 3: a valid meta 0 claiming 4096 won over a newer meta 1 valid at 1024.
    with PageFile.open(path, page_size=1024) as pf:
        for _ in range(4):
            with pf.update() as tx:
                tx.allocate(8)
        newest = pf.meta
    data = bytearray(path.read_bytes())
    assert newest.txid % 2 == 1  # the newest meta is page 1, at offset 1024
    # An older txid at another page size, self-consistent there (no synced freelist).
    data[0:1024] = _meta_page(4096, 0, hwm=3, freelist=NO_FREELIST)[:1024]
    path.write_bytes(bytes(data))
    with pytest.raises(MetaConflictError, match="page sizes 1024, 4096") as info:
        PageFile.open(path, reachable=_runs_walk([]))
    assert isinstance(info.value, NoValidMetaError)
    assert info.value.path == str(path)


def test_a_meta_is_valid_only_at_the_page_size_it_was_read_with(path: Path) -> None:
    with PageFile.open(path, page_size=1024):
        pass
    data = bytearray(path.read_bytes())
    data[1024:2048] = _meta_page(2048, 1)[:1024]  # meta 1 claims another page size
    path.write_bytes(bytes(data))
    with PageFile.open(path) as pf:  # meta 0 (txid 0) at 1024 is the only valid one
        assert (pf.page_size, pf.meta.txid) == (1024, 0)
        problems = pf.check()
    assert any("meta page 1" in p and "page size" in p for p in problems)


def _set_txid(path: Path, txid: int) -> None:
    data = bytearray(path.read_bytes())
    meta = Meta.unpack(bytes(data), 0)[0]
    for t in (txid - 1, txid):
        m = Meta(meta.page_size, 0, 2, 3, t)
        data[(t % 2) * PS : (t % 2 + 1) * PS] = m.pack_page(PS)
    path.write_bytes(bytes(data))


def test_the_last_txid_refuses_a_writer_and_never_wedges(path: Path, kind: str) -> None:
    # Bug 4: the next update() failed, its rollback raised and the slot stayed taken.
    with PageFile.open(path):
        pass
    _set_txid(path, 2**64 - 1)
    pf = PageFile.open(path, freelist=kind)
    before = state(pf)
    with pytest.raises(TransactionError, match="txid") as info, pf.update():
        pass
    assert info.value.path == str(path)
    assert state(pf) == before
    with pf.view() as r:
        assert r.txid == 2**64 - 1
    pf.close()
    assert pf.closed


class BadIndex:
    def __index__(self) -> Any:
        return "7"  # noqa: PLE0305


def test_no_raw_exception_from_odd_arguments(path: Path, kind: str, tmp_path: Path) -> None:
    # Bug 6: each of these escaped as a raw ValueError, TypeError or OverflowError.
    released = memoryview(b"abc")
    released.release()
    with open(tmp_path / "m.bin", "w+b") as f:
        f.write(b"x" * 16)
        f.flush()
        closed_map = mmap.mmap(f.fileno(), 16)
    closed_map.close()
    with PageFile.open(path, freelist=kind) as pf, pf.update() as tx:
        page = tx.allocate(1)
        before = state(pf, tx)
        calls: list[Callable[[], object]] = [
            lambda: tx.write(page, released),
            lambda: tx.write(page, closed_map),  # type: ignore[arg-type]
            lambda: tx.write(BadIndex(), b"x"),  # type: ignore[arg-type]
            lambda: tx.read(BadIndex()),  # type: ignore[arg-type]
            lambda: tx.allocate(BadIndex()),  # type: ignore[arg-type]
            lambda: tx.free(page, BadIndex()),  # type: ignore[arg-type]
            lambda: setattr(tx, "root", BadIndex()),
            lambda: pf.check(5),  # type: ignore[arg-type]
        ]
        for call in calls:
            with pytest.raises(PageFileError) as info:
                call()
            assert info.value.path == str(path)
        assert state(pf, tx) == before
    other = path.with_name("t.db")
    with PageFile.open(other, timeout=10**400):  # huge: waits forever, no OverflowError
        pass


@pytest.mark.parametrize("name", ["readonly", "create", "sync_freelist"])
@pytest.mark.parametrize("value", ["False", 0, 1, None, "yes"])
def test_flags_take_bools_only(path: Path, name: str, value: object) -> None:
    with pytest.raises(PageFileTypeError, match=name) as info:
        PageFile.open(path, **{name: value})
    assert info.value.path == str(path)
    assert not path.exists()


def test_a_failed_open_releases_the_lock_while_its_exception_lives(path: Path) -> None:
    # Bug 7: the map's duplicate descriptor kept the flock while the traceback lived.
    _freelist_ids_damage(path, lambda m: [m.hwm + 3])
    try:
        PageFile.open(path, timeout=0)
    except FreelistPageError:
        with pytest.raises(FreelistPageError):  # not FileLockedError
            PageFile.open(path, timeout=0)
    else:
        pytest.fail("the damaged file opened")


def test_check_keeps_one_bit_per_page(path: Path) -> None:
    # Bug 8: a sparse file with a huge high-water mark cost memory linear in its pages.
    import tracemalloc

    hwm = 1 << 22
    with PageFile.open(path, page_size=1024) as pf:
        with pf.update() as tx:
            root = tx.allocate(1)
            tx.root = root
        meta = pf.meta
    data = bytearray(path.read_bytes())
    page = meta.txid % 2
    big = Meta(1024, root, meta.freelist, hwm, meta.txid)
    data[page * 1024 : (page + 1) * 1024] = big.pack_page(1024)
    path.write_bytes(bytes(data))
    os.truncate(path, hwm * 1024)  # sparse
    with PageFile.open(path, readonly=True) as pf:
        tracemalloc.start()
        try:
            problems = pf.check(_runs_walk([(root, 1)]))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    lost = hwm - meta.hwm
    assert any(p.startswith(f"{lost} page(s) neither reachable nor free") for p in problems)
    assert peak < hwm // 2, peak  # one bit per page is hwm / 8 bytes


TRUNCATED_READ = """
import os, sys
from freelist import FileTooShortError, PageFile
path, kind = sys.argv[1], sys.argv[2]
with PageFile.open(path, freelist=kind) as pf:
    with pf.update() as tx:
        tx.root = tx.allocate(20)
    os.truncate(path, 3 * 4096)  # as another process would, outside the lock
    with pf.view() as r:
        try:
            r.read(3)  # before the fix: a mapped read past the end, SIGBUS
        except FileTooShortError as e:
            assert e.path == path and "truncated" in str(e), e
            print("clear error")
    try:
        pf.check()
    except FileTooShortError:
        print("check: clear error")
"""


def test_truncation_by_another_process_is_a_clear_error(path: Path, kind: str) -> None:
    # Bug 8: a mapped read past the truncated end died with SIGBUS (in a child,
    # so that the bug, if it came back, would not kill the test run).
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", TRUNCATED_READ, str(path), kind],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, (run.returncode, run.stderr)
    assert run.stdout.split("\n")[:2] == ["clear error", "check: clear error"], run.stdout


def test_error_messages_do_not_repeat_themselves(path: Path) -> None:
    for case in sorted(DAMAGE):
        meta = make_file(path)
        damage, error, _ = DAMAGE[case]
        path.write_bytes(damage(bytearray(path.read_bytes()), meta))
        with pytest.raises(error) as info:
            PageFile.open(path)
        text = str(info.value)
        assert not re.search(r"\b(\w+ \w+) \d+:? \1\b", text), text
        assert text.startswith(f"{path}: "), text
        assert text.count(str(path)) == 1, text
        path.unlink()


# --- the classes of those bugs ----------------------------------------------------------

DAMAGE_CASES = int(os.environ.get("FREELIST_DAMAGE_CASES", "0")) or (
    2000 if settings().max_examples >= 1000 else 60
)


def test_damaged_freelist_pages_never_hand_out_a_live_page(tmp_path: Path) -> None:
    """Seeded byte damage to the newest freelist page: open either refuses with
    a FileFormatError naming the file, or every page it then hands out is free:
    never a meta or the root; and where open without a walk refused the page,
    open with the walk rebuilds the list and hands out no page the walk
    reaches (the root's second page) nor the damaged page itself."""
    import random

    rng = random.Random(7)
    base = tmp_path / "base.db"
    meta = make_file(base, commits=6)
    live = {0, 1, meta.root, meta.root + 1}  # what the walk knows
    walk = _runs_walk([(meta.root, 2)])
    clean = base.read_bytes()
    path = tmp_path / "d.db"
    outcomes: dict[str, int] = {}
    for case in range(DAMAGE_CASES):
        data = bytearray(clean)
        start = meta.freelist * PS
        for _ in range(rng.choice([1, 2, 4, 16])):
            at = start + rng.choice([rng.randrange(0, 16), rng.randrange(16, 16 + 8 * 8)])
            data[at] = rng.randrange(256)
        path.write_bytes(bytes(data))
        refused = False
        for how in ({}, {"reachable": walk}):
            opened = _outcome(lambda how=how: PageFile.open(path, **how))  # type: ignore[arg-type]
            if isinstance(opened, PageFileError):
                assert isinstance(opened, FileFormatError), (case, opened)
                assert opened.path == str(path), case
                assert not how, (case, opened)  # a walk always rebuilds a damaged list
                outcomes["refused"] = outcomes.get("refused", 0) + 1
                refused = True
                continue
            assert isinstance(opened, PageFile)
            with opened as pf:
                with pf.update() as tx:
                    got = {tx.allocate(1) for _ in range(pf.freelist.free_count)}
                    must_not = live | {meta.freelist} if refused else {0, 1, meta.root}
                    assert not got & must_not, (case, how, sorted(got & must_not))
                    tx.rollback()
                outcomes["opened"] = outcomes.get("opened", 0) + 1
    assert outcomes.get("refused"), outcomes
    assert outcomes.get("opened"), outcomes


def _outcome(call: Callable[[], object]) -> object:
    """What ``call`` returned, or the PageFileError it raised (anything else escapes)."""
    try:
        return call()
    except PageFileError as e:
        return e


def _odd_values() -> list[object]:
    released = memoryview(b"x")
    released.release()
    return [
        None,
        True,
        False,
        -1,
        0,
        2**64,
        2**400,
        1.5,
        float("nan"),
        float("inf"),
        "3",
        b"3",
        [3],
        (3, 1),
        object(),
        Index(3),
        BadIndex(),
        released,
        int,
    ]


def test_no_call_leaks_a_raw_exception(path: Path, kind: str) -> None:
    """Every public PageFile and Transaction call, with every odd value in
    every argument: a library error naming the file or success, and a failure
    changes nothing."""
    make_file(path, kind)
    with PageFile.open(path, freelist=kind) as pf:
        tx = pf.begin(True)
        page = tx.allocate(2)
        calls: dict[str, Callable[[object], object]] = {
            "allocate": tx.allocate,
            "write pgid": lambda v: tx.write(v, b"x"),  # type: ignore[arg-type]
            "write data": lambda v: tx.write(page, v),  # type: ignore[arg-type]
            "read pgid": tx.read,
            "read n": lambda v: tx.read(page, v),  # type: ignore[arg-type]
            "free pgid": tx.free,
            "free n": lambda v: tx.free(page, v),  # type: ignore[arg-type]
            "root": lambda v: setattr(tx, "root", v),
            "check": pf.check,
        }
        for name, call in calls.items():
            for value in _odd_values():
                before = state(pf, tx)
                got = _outcome(lambda call=call, value=value: call(value))
                if isinstance(got, PageFileError):
                    assert got.path == str(path), (name, value)
                    assert state(pf, tx) == before, (name, value)
        tx.rollback()
    for name in (
        "freelist",
        "page_size",
        "sync_freelist",
        "reachable",
        "timeout",
        "readonly",
        "create",
    ):
        for value in _odd_values():
            got = _outcome(lambda name=name, value=value: PageFile.open(path, **{name: value}))
            if isinstance(got, PageFile):
                got.close()
            else:
                assert isinstance(got, PageFileError), (name, value)
                assert got.path == str(path), (name, value)


def test_a_header_claiming_more_pages_than_a_writer_reserves_is_refused(
    path: Path, kind: str
) -> None:
    # Found by the damage campaign: a freelist header whose overflow field
    # claims the pages after it made the next commit free them with the
    # freelist's own run, pages in use among them.  Open refuses it; a rebuild
    # from a walk takes as the freelist's own only the pages the walk does not
    # reach.
    meta = make_file(path, commits=5)
    fl, hwm = meta.freelist, meta.hwm
    assert hwm - fl >= 3
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, fl * PS + 12, hwm - fl - 1)  # overflow: to the end
    path.write_bytes(bytes(data))
    with pytest.raises(FreelistPageError, match=f"claims {hwm - fl} pages"):
        PageFile.open(path, freelist=kind)
    # Say the last page is in use too: the claim must not make it free.
    live = {meta.root, meta.root + 1, hwm - 1}
    walk = _runs_walk([(meta.root, 2), (hwm - 1, 1)])
    with PageFile.open(path, freelist=kind, reachable=walk) as pf:
        for _ in range(2):  # the first commit frees the claimed pages the walk did not reach
            with pf.update() as tx:
                got = [tx.allocate(1) for _ in range(pf.freelist.free_count + 2)]
                assert not set(got) & live
                for p in got:
                    tx.free(p)
        assert pf.check(walk) == []
        with pf.view() as tx:
            assert tx.read(meta.root)[:1] == b"E"
