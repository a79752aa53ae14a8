"""The Go helper itself: it builds, bbolt's array gives the fidelity results, make/dump agree."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.interop

DATA = Path(__file__).resolve().parent.parent / "data" / "fidelity"


@pytest.mark.parametrize("name", ["seed-2000.trace", "mixed-3000.trace"])
def test_bbolt_array_gives_the_recorded_fidelity_results(bbolt: ModuleType, name: str) -> None:
    expected = json.loads((DATA / "expected-array.json").read_text())["traces"][name]
    got = bbolt.replay(DATA / name, "array")
    for key in ("ops", "final_hwm", "free_count", "grown", "free_sha256"):
        assert got[key] == expected[key], key
    assert got["pending"] == 0
    assert got["wall_ns"] > 0


@pytest.mark.parametrize("nosync", [False, True])
def test_make_then_dump_is_clean_and_repeatable(
    bbolt: ModuleType, scratch: Path, nosync: bool
) -> None:
    a, b = scratch / "a.db", scratch / "b.db"
    bbolt.make(a, page_size=1024, seed=3, nosync=nosync)
    bbolt.make(b, page_size=1024, seed=3, nosync=nosync)
    before = a.read_bytes()
    da, db = bbolt.dump(a), bbolt.dump(b)
    assert da["check_errors"] == []
    assert da["freelist_synced"] is not nosync
    assert da["page_size"] == 1024
    assert da["free"] > 0  # the workload deletes
    assert da["buckets"] > 8
    assert da["keys"] > 100
    assert da["hash"] == db["hash"]  # seeded: the same workload gives the same contents
    assert a.read_bytes() == before  # dump (a read-only open) changes nothing


def test_dump_names_bbolts_refusal(bbolt: ModuleType, scratch: Path) -> None:
    junk = scratch / "junk.db"
    junk.write_bytes(b"\x01" * 8192)
    with pytest.raises(bbolt.BboltOpenError, match="invalid database"):
        bbolt.dump(junk)


def test_bloated_file_is_mostly_free_and_compacts(bbolt: ModuleType, scratch: Path) -> None:
    src, dst = scratch / "big.db", scratch / "small.db"
    bbolt.make(src, size="large", target_bytes=8 << 20, free_fraction=0.9, seed=1)
    d = bbolt.dump(src)
    assert d["check_errors"] == []
    assert d["file_size"] >= 8 << 20
    assert d["free"] / d["hwm"] > 0.8
    out = bbolt.compact(src, dst)
    assert out["dst_size"] < out["src_size"] / 4
    after = bbolt.dump(dst)
    assert after["check_errors"] == []
    assert after["hash"] == d["hash"]
