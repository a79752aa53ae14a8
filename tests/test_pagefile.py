"""PageFile: transactions, persistence, modes, and every error, with both freelists."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from freelist import (
    ArrayFreelist,
    ClosedError,
    DataTooLargeError,
    DoubleFreeError,
    FileLockedError,
    FreelistError,
    HashmapFreelist,
    InvalidArgumentError,
    NotAllocatedError,
    PageFile,
    PageRangeError,
    PageSizeMismatchError,
    ReachabilityError,
    ReadOnlyError,
    TransactionError,
)
from freelist.layout import NO_FREELIST


def root_walk(pf: PageFile) -> list[tuple[int, int]]:
    """The test files' layout: the root page lists (start, n) runs of data."""
    root = pf.meta.root
    if not root:
        return []
    data = pf.begin(False)
    try:
        raw = data.read(root)
    finally:
        data.rollback()
    (count,) = struct.unpack_from("<I", raw)
    runs = [struct.unpack_from("<QQ", raw, 4 + 16 * i) for i in range(count)]
    return [(root, 1), *runs]


def write_root(tx: object, runs: list[tuple[int, int]]) -> None:
    """Allocate a new root page listing ``runs`` and make it the root."""
    from freelist import Transaction

    assert isinstance(tx, Transaction)
    old = tx.root
    page = tx.allocate(1)
    body = struct.pack("<I", len(runs)) + b"".join(struct.pack("<QQ", s, n) for s, n in runs)
    tx.write(page, body)
    tx.root = page
    if old:
        tx.free(old)


def test_create_commit_reopen(path: Path, kind: str) -> None:
    with PageFile.open(path, freelist=kind) as pf:
        assert pf.meta.txid == 1
        assert pf.page_size == 4096
        with pf.update() as tx:
            a = tx.allocate(3)
            tx.write(a, b"A" * 9000)
            write_root(tx, [(a, 3)])
        assert pf.meta.txid == 2
        assert pf.check(root_walk) == []
    with PageFile.open(path, freelist=kind) as pf:
        assert pf.meta.txid == 2
        with pf.view() as r:
            assert r.read(a, 3)[:9000] == b"A" * 9000
        assert root_walk(pf)[1:] == [(a, 3)]
        assert pf.check(root_walk) == []


def test_pages_are_reused_after_release(path: Path, kind: str) -> None:
    with PageFile.open(path, freelist=kind) as pf:
        with pf.update() as tx:
            a = tx.allocate(2)
        with pf.update() as tx:
            tx.free(a, 2)
        # the next writer releases them first (no reader is open)
        with pf.update() as tx:
            assert tx.allocate(2) == a


def test_reader_keeps_freed_pages_from_reuse(path: Path, kind: str) -> None:
    with PageFile.open(path, freelist=kind) as pf:
        with pf.update() as tx:
            a = tx.allocate(1)
            tx.write(a, b"old")
            write_root(tx, [(a, 1)])
        reader = pf.begin(False)
        with pf.update() as tx:
            tx.free(a)
        with pf.update() as tx:
            b = tx.allocate(1)
            assert b != a, "a page an open reader can see was reused"
            tx.write(b, b"new")
        assert reader.read(a)[:3] == b"old"
        assert a not in pf.freelist.free_page_ids()
        reader.rollback()
        with pf.update():  # a writer first releases what no reader can see
            assert a in pf.freelist.free_page_ids()


def test_rollback_restores_the_freelist(path: Path, kind: str) -> None:
    with PageFile.open(path, freelist=kind) as pf:
        with pf.update() as tx:
            pages = [tx.allocate(1) for _ in range(6)]
        with pf.update() as tx:
            for p in pages[:4]:
                tx.free(p)
        with pf.update():
            pass  # releases them
        tx = pf.begin(True)  # releases pending pages first: snapshot after it
        before = (pf.freelist.free_page_ids(), pf.freelist.pending_page_ids(), pf.meta)
        tx.allocate(2)
        tx.allocate(5)  # grows the file
        tx.free(pages[5])
        tx.rollback()
        assert (pf.freelist.free_page_ids(), pf.freelist.pending_page_ids(), pf.meta) == before
        with pf.update() as tx:
            assert tx.hwm == pf.meta.hwm


def test_update_rolls_back_on_exception(path: Path, kind: str) -> None:
    with PageFile.open(path, freelist=kind) as pf:
        meta = pf.meta

        def fail() -> None:
            with pf.update() as tx:
                tx.allocate(1)
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            fail()
        assert pf.meta == meta
        assert pf.check() == []


def test_freelist_object_is_accepted(path: Path) -> None:
    fl = HashmapFreelist(policy="bbolt")
    with PageFile.open(path, freelist=fl) as pf:
        assert pf.freelist is fl
        with pf.update() as tx:
            tx.allocate(1)
    with PageFile.open(path, freelist=ArrayFreelist()) as pf:
        assert isinstance(pf.freelist, ArrayFreelist)


def test_page_size_is_settable_and_checked(path: Path) -> None:
    with PageFile.open(path, page_size=1024) as pf:
        assert pf.page_size == 1024
    with PageFile.open(path) as pf:  # the file's own size
        assert pf.page_size == 1024
    with pytest.raises(PageSizeMismatchError):
        PageFile.open(path, page_size=8192)
    for bad in (1000, 256, 1 << 25, 4096.0):
        with pytest.raises(InvalidArgumentError):
            PageFile.open(path, page_size=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="new file"):  # read up to 16 MiB, create less
        PageFile.open(path.with_name("new.db"), page_size=1 << 17)
    assert path.with_name("new.db").stat().st_size == 0


def test_large_freelist_uses_overflow_pages_and_the_0xffff_count(path: Path) -> None:
    n = 0x10000 + 5
    with PageFile.open(path, page_size=4096) as pf:
        with pf.update() as tx:
            big = tx.allocate(n)
        with pf.update() as tx:
            tx.free(big, n)
        with pf.update():
            pass
        # the run is free again, less the pages the new freelist page took from it
        assert pf.freelist.count >= n
        assert pf.freelist.free_count >= n - 200
        assert pf.check() == []
    with PageFile.open(path, freelist="array") as pf:
        assert pf.freelist.count >= n
        assert pf.check() == []


def test_sync_modes_move_both_ways(path: Path, kind: str) -> None:
    with PageFile.open(path, freelist=kind) as pf, pf.update() as tx:
        a = tx.allocate(2)
        write_root(tx, [(a, 2)])
    with PageFile.open(path, freelist=kind, sync_freelist=False) as pf:
        with pf.update() as tx:
            b = tx.allocate(1)
            write_root(tx, [(a, 2), (b, 1)])
        assert pf.meta.freelist == NO_FREELIST
        free_before = pf.freelist.all_page_ids()
    with pytest.raises(ReachabilityError):
        PageFile.open(path, freelist=kind)
    with PageFile.open(path, freelist=kind, reachable=root_walk) as pf:
        assert pf.freelist.all_page_ids() == free_before
        assert pf.check(root_walk) == []
        with pf.update():
            pass
        assert pf.meta.freelist != NO_FREELIST
    with PageFile.open(path, freelist=kind) as pf:
        assert pf.check(root_walk) == []


def test_reachability_walk_outside_the_file(path: Path) -> None:
    with PageFile.open(path, sync_freelist=False) as pf, pf.update() as tx:
        tx.allocate(1)
    with pytest.raises(ReachabilityError):
        PageFile.open(path, reachable=lambda _pf: [(10**6, 1)])


def test_check_finds_leaks_and_overlaps(path: Path) -> None:
    with PageFile.open(path) as pf:
        with pf.update() as tx:
            a = tx.allocate(1)
            write_root(tx, [(a, 1)])
            tx.allocate(1)  # allocated, referenced by nothing: a leak
        problems = pf.check(root_walk)
        assert any("neither reachable nor free" in p for p in problems)
        with pf.update() as tx:
            tx.free(a)
        problems = pf.check(root_walk)
        assert any("both reachable and free" in p for p in problems)


# --- errors -------------------------------------------------------------------


def test_transaction_errors(path: Path, kind: str) -> None:
    with PageFile.open(path, freelist=kind) as pf:
        with pf.update() as tx:
            a = tx.allocate(2)
            with pytest.raises(DataTooLargeError):
                tx.write(a, b"x" * (2 * 4096 + 1))
            with pytest.raises(NotAllocatedError):
                tx.write(a + 1, b"x")
            with pytest.raises(PageRangeError):
                tx.read(0)
            with pytest.raises(PageRangeError):
                tx.read(a, 100)
            with pytest.raises(PageRangeError):
                tx.free(1)
            with pytest.raises(PageRangeError):
                tx.root = 10**6
            with pytest.raises(InvalidArgumentError):
                tx.allocate(0)
            with pytest.raises(TransactionError):
                pf.begin(True)
        with pf.update() as tx:
            tx.free(a, 2)
            with pytest.raises(DoubleFreeError):
                tx.free(a)
        with pf.view() as r:
            with pytest.raises(ReadOnlyError):
                r.allocate(1)
            with pytest.raises(ReadOnlyError):
                r.free(a)
            with pytest.raises(ReadOnlyError):
                r.root = 0
        tx = pf.begin(True)
        tx.commit()
        with pytest.raises(ClosedError):
            tx.allocate(1)
        tx.rollback()  # harmless on a closed transaction
        assert pf.check() == []


def test_errors_leave_the_file_unchanged(path: Path) -> None:
    with PageFile.open(path) as pf:
        with pf.update() as tx:
            a = tx.allocate(1)
        with pf.update() as tx:
            state = (pf.freelist.all_page_ids(), pf.freelist.pending_page_ids(), tx.hwm, tx.root)
            for call in (lambda: tx.free(a, 10**6), lambda: tx.free(0), lambda: tx.write(a, b"")):
                with pytest.raises(FreelistError):
                    call()
            after = (pf.freelist.all_page_ids(), pf.freelist.pending_page_ids(), tx.hwm, tx.root)
            assert after == state
        assert pf.check() == []


def test_close_with_open_transactions_is_an_error(path: Path) -> None:
    pf = PageFile.open(path)
    r = pf.begin(False)
    with pytest.raises(TransactionError):
        pf.close()
    r.rollback()
    pf.close()
    pf.close()  # twice is harmless
    assert pf.closed
    with pytest.raises(ClosedError):
        pf.begin(False)
    with pytest.raises(ClosedError):
        pf.stats()


def test_readonly_open(path: Path) -> None:
    with PageFile.open(path) as pf, pf.update() as tx:
        tx.allocate(1)
    with PageFile.open(path, readonly=True) as pf:
        with pytest.raises(ReadOnlyError):
            pf.begin(True)
        with pf.view() as r:
            assert r.txid == 2


LOCKER = """
import sys, time
from freelist import PageFile
pf = PageFile.open(sys.argv[1])
print("locked", flush=True)
time.sleep(30)
"""


def test_second_process_cannot_open_for_writing(path: Path) -> None:
    with PageFile.open(path):
        pass
    child = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(FileLockedError, match="locked"):
            PageFile.open(path, timeout=0.1)
        with pytest.raises(FileLockedError):
            PageFile.open(path, readonly=True, timeout=0)
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    with PageFile.open(path, timeout=1):
        pass


def test_growth_remaps_and_keeps_earlier_reads(path: Path) -> None:
    with PageFile.open(path, page_size=1024) as pf:
        with pf.update() as tx:
            a = tx.allocate(1)
            tx.write(a, b"first")
        r = pf.begin(False)
        kept = r.read(a)
        with pf.update() as tx:
            big = tx.allocate(5000)  # grows the file well past its map
            tx.write(big, b"z" * 1024 * 5000)
            assert tx.read(big + 4999)[:1] == b"z"
        assert kept[:5] == b"first"
        assert r.read(a)[:5] == b"first"
        r.rollback()
        assert pf.stats().file_size >= (big + 5000) * 1024
        assert os.path.getsize(path) == pf.stats().file_size


def test_stats(path: Path, kind: str) -> None:
    with PageFile.open(path, freelist=kind) as pf:
        with pf.update() as tx:
            pages = [tx.allocate(1) for _ in range(5)]
        with pf.update() as tx:
            for p in pages[1:4]:
                tx.free(p)
        s = pf.stats()
        assert (s.page_size, s.txid, s.pending) == (4096, 3, 3 + 1)  # + the old freelist page
        with pf.update():
            pass
        s = pf.stats()
        spans = pf.freelist.free_spans()
        assert (s.free, s.pending) == (pf.freelist.free_count, pf.freelist.pending_count)
        assert s.free >= 2  # three freed pages, one taken by the new freelist page
        assert (s.spans, s.largest_span) == (len(spans), max(n for _, n in spans))
        assert s.freelist == ("HashmapFreelist" if kind == "hashmap" else "ArrayFreelist")
        assert s.sync_freelist
