"""``freelist compact`` checked by bbolt itself (the Go helper's dump).

For every file of the interop tier (bbolt 1.3.6 builds it from a seeded
workload: every page size from 512 bytes to 64 KiB, synced and
``NoFreelistSync``, the array and the hashmap freelist, nested and inline
buckets, overflow values), compacting in place and compacting into a copy
leave a file whose bbolt ``tx.Check()`` is clean and whose dump hash (every
bucket path and sequence, key and value in order) equals the original's; the
freelist mode is kept; the copy has no free pages; the file ends within
1.10x of the packed size (plus a few pages).

SIGKILLs during a compaction and power-loss states of one (see
tests/test_compact.py for the mechanisms) are checked with bbolt's dump too.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from freelist.compact import compact_copy, compact_file

from ..test_compact import _CHILD, Recorder, crash_states, thorough

pytestmark = pytest.mark.interop

PAGE_SIZES = (512, 1024, 4096, 16384, 65536)
CASES = [
    (ps, nosync, fl, "small")
    for ps in PAGE_SIZES
    for nosync in (False, True)
    for fl in ("array", "map")
] + [(ps, nosync, "array", "medium") for ps in (1024, 4096) for nosync in (False, True)]


def _same(bbolt: ModuleType, path: Path, want: dict[str, object]) -> dict[str, object]:
    got: dict[str, object] = bbolt.dump(path)
    assert got["check_errors"] == [], got["check_errors"]
    assert got["hash"] == want["hash"]
    assert got["keys"] == want["keys"]
    assert got["buckets"] == want["buckets"]
    assert got["freelist_synced"] == want["freelist_synced"]
    return got


@pytest.mark.parametrize(
    "case",
    CASES,
    ids=[f"{ps}-{'nosync' if n else 'synced'}-{fl}-{sz}" for ps, n, fl, sz in CASES],
)
def test_compact_keeps_what_bbolt_sees(
    bbolt: ModuleType, tmp_path: Path, case: tuple[int, bool, str, str]
) -> None:
    page_size, nosync, freelist, size = case
    path = tmp_path / "db"
    bbolt.make(
        path,
        page_size=page_size,
        seed=page_size + len(size),
        nosync=nosync,
        freelist=freelist,
        size=size,
    )
    before = bbolt.dump(path)
    assert before["check_errors"] == []
    copy = tmp_path / "copy"
    compact_copy(path, copy)
    c = _same(bbolt, copy, before)
    assert c["free"] == 0
    assert c["pending"] == 0
    result = compact_file(path)
    after = _same(bbolt, path, before)
    assert result.moved_pages > 0
    assert after["hwm"] < before["hwm"]
    # the size target: within 1.10x of the packed copy, plus a few pages
    assert after["file_size"] <= 1.10 * c["file_size"] + 8 * page_size, (after, c)
    # a second run finds little or nothing left (the copy's exact packing is
    # the floor; in place may keep a few holes a second run can still fill)
    again = compact_file(path)
    assert again.size_after >= 0.9 * int(after["file_size"])


def _kill_point(rnd: random.Random) -> tuple[str, str]:
    """The child's kill point: after commit k (1 to 4), or (half the time)
    before its w-th write, sync or cut of the file (1 to 80), inside a commit."""
    if rnd.random() < 0.5:
        return str(rnd.randint(1, 4)), "0"
    return "0", str(rnd.randint(1, 80))


def test_sigkill_checked_by_bbolt(bbolt: ModuleType, tmp_path: Path) -> None:
    """Kills at random points of a compaction of a bbolt-made file."""
    rnd = random.Random("interop-kill")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    path = tmp_path / "db"
    kills = 0
    seed = 0
    want = 40 if thorough() else 10
    while kills < want:
        seed += 1
        path.unlink(missing_ok=True)
        bbolt.make(path, page_size=512, seed=seed, nosync=seed % 2 == 0, size="medium")
        before = bbolt.dump(path)
        while kills < want:
            child = subprocess.run(
                [sys.executable, "-c", _CHILD, str(path), *_kill_point(rnd), "64"],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            _same(bbolt, path, before)
            if child.returncode != -signal.SIGKILL:
                assert child.returncode == 0, child.stderr
                break
            kills += 1
        compact_file(path)
        _same(bbolt, path, before)


@pytest.mark.parametrize("nosync", [False, True], ids=["synced", "nosync"])
def test_power_loss_states_checked_by_bbolt(
    bbolt: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nosync: bool
) -> None:
    path = tmp_path / "db"
    bbolt.make(path, page_size=1024, seed=7, nosync=nosync, size="small")
    before = bbolt.dump(path)
    base = path.read_bytes()
    rec = Recorder(monkeypatch, path)
    result = compact_file(path, batch=16)
    monkeypatch.undo()
    assert result.commits >= 2
    image = tmp_path / "image"
    rnd = random.Random(f"interop-power-{nosync}")
    states = 0
    every = 1 if thorough() else 4
    for i, state in enumerate(crash_states(base, rec.ops, rnd, 2)):
        if i % every:
            continue
        image.write_bytes(state)
        _same(bbolt, image, before)
        states += 1
    assert states >= 10
    shutil.copy(path, image)
    _same(bbolt, image, before)
