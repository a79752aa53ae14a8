"""Reading real bbolt databases: metas, freelist pages, and the tree walk."""

from __future__ import annotations

import gzip
import json
from array import array
from pathlib import Path

import pytest

from freelist import PageFile, PageSizeMismatchError, ReachabilityError
from freelist.bbolt import page_types, reachable
from freelist.cli import main
from freelist.layout import (
    CREATE_PAGE_SIZES,
    LEAF_PAGE,
    NO_FREELIST,
    READ_PAGE_SIZES,
    Meta,
    PageHeader,
    freelist_page_size,
    pack_freelist_page,
)
from freelist.runs import runs_of

DATA = Path(__file__).parent / "data" / "bbolt"
EXPECTED = json.loads((DATA / "expected.json").read_text())


@pytest.fixture(params=sorted(EXPECTED))
def db(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, dict[str, object]]:
    name = str(request.param)
    path = tmp_path / name
    path.write_bytes(gzip.decompress((DATA / f"{name}.gz").read_bytes()))
    return path, EXPECTED[name]


@pytest.mark.parametrize("kind", ["hashmap", "array"])
def test_reads_bbolt_files_exactly(db: tuple[Path, dict[str, object]], kind: str) -> None:
    path, want = db
    with PageFile.open(path, readonly=True, freelist=kind, reachable=reachable) as pf:
        assert pf.page_size == want["page_size"]
        assert pf.meta.hwm == want["hwm"]
        assert pf.meta.txid == want["txid"]
        free = pf.freelist.all_page_ids()
        assert len(free) == want["free_count"] == want["stats_free_page_n"]
        assert [list(r) for r in runs_of(free)] == want["free_spans"]
        assert dict(page_types(pf)) == {k: v for k, v in want["page_types"].items() if v}  # type: ignore[attr-defined]
        assert pf.check(reachable) == []


def test_nosync_files_need_the_walk(db: tuple[Path, dict[str, object]]) -> None:
    path, _ = db
    with PageFile.open(path, readonly=True, reachable=reachable) as pf:
        nosync = pf.meta.freelist == NO_FREELIST
    if nosync:
        with pytest.raises(ReachabilityError, match="reachable"):
            PageFile.open(path, readonly=True)
    else:
        with PageFile.open(path, readonly=True) as pf:
            assert pf.check(reachable) == []


def test_synced_freelist_agrees_with_the_walk(db: tuple[Path, dict[str, object]]) -> None:
    # For synced files, the free pages on the freelist page are exactly the
    # pages the tree does not reach (besides metas and the freelist page).
    path, _ = db
    with PageFile.open(path, readonly=True, reachable=reachable) as pf:
        used = {p for s, n in reachable(pf) for p in range(s, s + n)}
        free = set(pf.freelist.all_page_ids())
        assert used.isdisjoint(free)
        own: set[int] = set()
        if pf.meta.freelist != NO_FREELIST:
            with pf.view() as r:
                head = PageHeader.unpack(r.read(pf.meta.freelist))
            own = set(range(pf.meta.freelist, pf.meta.freelist + 1 + head.overflow))
        assert used | free | own | {0, 1} == set(range(pf.meta.hwm))


# --- every page size bbolt writes and reads (issue 11, item 1) ------------------------


def _leaf(pgid: int) -> bytes:
    """An empty bbolt leaf page header: the smallest tree bbolt's walk accepts."""
    return PageHeader(pgid, LEAF_PAGE, 0, 0).pack()


def _written_by_pagefile(path: Path, ps: int, free: int) -> tuple[int, int]:
    """A file this library writes at page size ``ps`` with ``free`` free pages and a
    bbolt leaf as the root; its (hwm, root)."""
    with PageFile.open(path, page_size=ps) as pf:
        with pf.update() as tx:
            root = tx.allocate(1)
            tx.write(root, _leaf(root))
            tx.root = root
            big = tx.allocate(free)
        with pf.update() as tx:
            tx.free(big, free)
        with pf.update():
            pass  # the freed run is released and listed on the freelist page
        return pf.meta.hwm, root


def _written_by_hand(path: Path, ps: int, free: int) -> tuple[int, int]:
    """A sparse file in bbolt's layout at a page size too large to create: metas,
    the freelist page 2 listing pages 4.., the root leaf 3."""
    hwm = 4 + free
    ids = list(range(4, hwm))
    with open(path, "wb") as f:
        f.truncate(hwm * ps)
        for txid in (1, 2):
            f.seek((txid % 2) * ps)
            f.write(Meta(ps, 3, 2, hwm, txid).pack_page(512)[:128])
        f.seek(2 * ps)
        f.write(pack_freelist_page(2, array("Q", ids), ps)[: freelist_page_size(len(ids))])
        f.seek(3 * ps)
        f.write(_leaf(3))
    return hwm, 3


SIZES = [(ps, 0x10000 + 2000 if ps in (512, 4096, 65536) else 40) for ps in READ_PAGE_SIZES]


@pytest.mark.parametrize(("ps", "free"), SIZES, ids=[f"{ps}" for ps, _ in SIZES])
def test_every_page_size_opens_checks_and_inspects(
    tmp_path: Path, ps: int, free: int, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / f"p{ps}.db"
    make = _written_by_pagefile if ps in CREATE_PAGE_SIZES else _written_by_hand
    hwm, root = make(path, ps, free)
    with PageFile.open(path, readonly=True, reachable=reachable) as pf:
        assert (pf.page_size, pf.meta.hwm, pf.meta.root) == (ps, hwm, root)
        # (less the freelist's pages a commit took from the run, plus the ones it freed)
        assert free - 1100 < pf.freelist.count <= free + 8
        if free > 0x10000:
            assert pf.freelist.count > 0xFFFF  # the long form of the count
        assert pf.check(reachable) == []
        assert dict(page_types(pf))["leaf"] == 1
    with pytest.raises(PageSizeMismatchError):
        PageFile.open(path, readonly=True, page_size=ps * 2 if ps < 1 << 24 else ps // 2)
    capsys.readouterr()
    assert main(["check", str(path), "--walk", "bbolt"]) == 0
    assert main(["inspect", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert report["page_size"] == ps
    assert report["free_pages"] == pf.freelist.count
