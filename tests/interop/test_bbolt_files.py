"""Real bbolt files, made by bbolt in the test run at every page size it can create.

For each: ``PageFile`` opens it (read-only; the freelist page, or bbolt's tree walk
when the freelist is not synced), and it, ``freelist check`` and ``freelist inspect``
agree with bbolt's own ``tx.Check`` and ``Stats``; ``freelist compare --from`` runs on
it, and the trace it draws from the file gives bbolt's array results.  Then the file
is opened writable by ``PageFile`` for commits that allocate, write and free pages:
bbolt's content hash is unchanged (no page of the tree was handed out), its Check is
clean, and bbolt writes on to the file itself without trouble.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import ModuleType

import pytest

from freelist import PageFile
from freelist import bbolt as bbolt_walk
from freelist.cli import main
from freelist.fromfile import trace_from_file
from freelist.trace import replay

pytestmark = pytest.mark.interop

PAGE_SIZES = [512, 1024, 4096, 8192, 16384, 65536]
MODES = [(False, "array"), (True, "map")]  # (NoFreelistSync, bbolt's FreelistType)
MODE_IDS = ["synced-array", "nosync-map"]


@pytest.fixture
def made(bbolt: ModuleType, scratch: Path, request: pytest.FixtureRequest) -> Path:
    page_size, (nosync, kind) = request.param
    path = scratch / f"bbolt-{page_size}-{'nosync' if nosync else 'synced'}.db"
    bbolt.make(path, page_size=page_size, seed=page_size, nosync=nosync, freelist=kind)
    return path


CASES = [(ps, mode) for ps in PAGE_SIZES for mode in MODES]
CASE_IDS = [f"{ps}-{m}" for ps in PAGE_SIZES for m in MODE_IDS]


@pytest.mark.parametrize("made", CASES, ids=CASE_IDS, indirect=True)
def test_library_reads_bbolt_files_as_bbolt_does(
    bbolt: ModuleType, made: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = made.read_bytes()
    theirs = bbolt.dump(made)
    assert theirs["check_errors"] == []
    assert theirs["free"] > 0
    with PageFile.open(made, readonly=True, reachable=bbolt_walk.reachable) as pf:
        st = pf.stats()
        assert pf.check(bbolt_walk.reachable) == []
        assert (st.page_size, st.hwm, st.txid) == (
            theirs["page_size"],
            theirs["hwm"],
            theirs["txid"],
        )
        assert (st.free + st.pending, 0) == (theirs["free"], theirs["pending"])
        assert pf.stored_freelist()["format"] == ("bbolt" if theirs["freelist_synced"] else "none")

    assert main(["check", str(made)]) == 0
    assert "ok (with bbolt's tree walk)" in capsys.readouterr().out
    assert main(["inspect", "--json", str(made)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["free_pages"] + info["pending_pages"] == theirs["free"]
    assert info["meta"]["hwm"] == theirs["hwm"]
    assert info["freelist_synced"] is theirs["freelist_synced"]
    assert info["page_types"]["free"] == theirs["free"]
    tree = theirs["tree"]  # bbolt's Stats of the root bucket, every bucket under it
    assert (info["page_types"]["branch"], info["page_types"]["leaf"]) == (
        tree["branch"],
        tree["leaf"],
    )
    overflow = tree["branch_overflow"] + tree["leaf_overflow"]
    synced = 1 if theirs["freelist_synced"] else 0
    assert info["compacted"]["pages"] == 2 + tree["branch"] + tree["leaf"] + overflow + synced

    args = ["compare", "--from", str(made), "--txs", "30", "--json"]
    assert main([*args, "--freelists", "array,hashmap"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert rows[0]["free_pages"] == theirs["free"]
    assert made.read_bytes() == original  # all of it read-only


@pytest.mark.parametrize("made", CASES[::3], ids=CASE_IDS[::3], indirect=True)
def test_a_trace_drawn_from_a_bbolt_file_gives_bbolts_results(
    bbolt: ModuleType, made: Path, scratch: Path
) -> None:
    trace = trace_from_file(str(made), "mixed", 60, seed=3)
    path = scratch / "from-file.trace"
    trace.save(path)
    ours = replay(trace, "array")
    theirs = bbolt.replay(path, "array")
    keys = ("final_hwm", "grown", "free_count", "free_sha256")
    assert {k: getattr(ours, k) for k in keys} == {k: theirs[k] for k in keys}


WRITE_CASES = [
    (ps, *mode, shrink)
    for ps in (512, 4096, 65536)
    for mode in MODES
    for shrink in ((True, False) if ps == 4096 else (True,))
]
WRITE_IDS = [
    f"{ps}-{'nosync' if nosync else 'synced'}-{'shrink' if s else 'noshrink'}"
    for ps, nosync, _kind, s in WRITE_CASES
]


@pytest.mark.parametrize("case", WRITE_CASES, ids=WRITE_IDS)
@pytest.mark.parametrize("spec", ["hashmap", "array"])
def test_pagefile_commits_leave_a_bbolt_file_intact(
    bbolt: ModuleType, scratch: Path, case: tuple[int, bool, str, bool], spec: str
) -> None:
    page_size, nosync, kind, shrink = case
    path = scratch / "theirs.db"
    bbolt.make(path, page_size=page_size, seed=7, nosync=nosync, freelist=kind)
    before = bbolt.dump(path)
    rng = random.Random(page_size)
    fmt = "none" if nosync else "bbolt"
    held: list[tuple[int, int]] = []
    with PageFile.open(
        path, freelist=spec, freelist_format=fmt, reachable=bbolt_walk.reachable, shrink=shrink
    ) as pf:
        reused = 0
        for i in range(25):
            with pf.update() as tx:
                hwm = tx.hwm
                for start, n in held:  # what the previous commit allocated
                    tx.free(start, n)
                held = []
                if i < 24:
                    for n in (1, 1, 2, rng.randint(1, 4), rng.choice([1, 8])):
                        start = tx.allocate(n)
                        reused += start < hwm
                        tx.write(start, rng.randbytes(n * page_size))
                        held.append((start, n))
        st = pf.stats()
        assert pf.check(bbolt_walk.reachable) == []
    assert reused > 0  # pages bbolt had freed were handed out, and written over
    after = bbolt.dump(path)
    assert after["check_errors"] == []
    assert after["hash"] == before["hash"]
    assert after["freelist_synced"] is not nosync
    assert (after["free"], after["pending"]) == (st.free + st.pending, 0)
    assert after["hwm"] == st.hwm
    churned = bbolt.dump(path, churn=10)["churn"]
    assert churned["check_errors"] == []
    assert churned["hash"] == before["hash"]


def test_a_freelist_of_more_than_0xffff_ids_both_ways(bbolt: ModuleType, scratch: Path) -> None:
    """Past 0xFFFF ids a freelist page's header count is 0xFFFF and the first u64
    holds the real count: bbolt's page read by PageFile, PageFile's read by bbolt."""
    path = scratch / "bloated.db"
    bbolt.make(path, page_size=1024, size="large", target_bytes=96 << 20, free_fraction=0.9)
    theirs = bbolt.dump(path)
    assert theirs["free"] > 0xFFFF
    with PageFile.open(path, freelist="hashmap") as pf:
        assert pf.stats().free == theirs["free"]
        for _ in range(3):
            with pf.update() as tx:
                start = tx.allocate(3)
                tx.write(start, b"x" * 3 * 1024)
                tx.free(start, 3)
        st = pf.stats()
    after = bbolt.dump(path)
    assert after["check_errors"] == []
    assert after["hash"] == theirs["hash"]
    assert after["free"] == st.free + st.pending > 0xFFFF


@pytest.mark.parametrize("nosync", [False, True], ids=["synced-to-none", "nosync-to-bbolt"])
def test_pagefile_converts_a_bbolt_file_between_freelist_modes(
    bbolt: ModuleType, scratch: Path, nosync: bool
) -> None:
    """A commit writes the format PageFile was opened with: a synced bbolt file
    becomes NoFreelistSync and the other way round, and bbolt reads it so."""
    path = scratch / "theirs.db"
    bbolt.make(path, page_size=4096, seed=3, nosync=nosync)
    before = bbolt.dump(path)
    fmt = "bbolt" if nosync else "none"
    with PageFile.open(path, freelist_format=fmt, reachable=bbolt_walk.reachable) as pf:
        for _ in range(3):
            with pf.update() as tx:
                start = tx.allocate(2)
                tx.write(start, b"\xff" * 8192)
                tx.free(start, 2)
        st = pf.stats()
    after = bbolt.dump(path)
    assert after["freelist_synced"] is nosync
    assert after["check_errors"] == []
    assert after["hash"] == before["hash"]
    assert after["free"] == st.free + st.pending
