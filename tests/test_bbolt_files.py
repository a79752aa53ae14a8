"""Reading real bbolt databases: metas, freelist pages, and the tree walk."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from freelist import PageFile, ReachabilityError
from freelist._shared import runs_of
from freelist.bbolt import page_types, reachable
from freelist.layout import NO_FREELIST, PageHeader

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
