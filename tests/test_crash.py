"""Crash safety: SIGKILL a committing writer at random moments, reopen, verify.

A child process (crash_writer.py's main, forked) commits in a loop and prints
each txid after its commit returned.  After each kill the file is reopened and must hold every
reported commit (the one in flight may or may not be there), every data run the
root lists must carry its transaction's stamp, and ``check()`` with the root
walk must find nothing: no page both free and referenced, none lost.

Each freelist class runs with each freelist format: bbolt's page, none (the
free pages rebuilt from the walk) and the log.  The normal suite kills 15 times
in each configuration, 25 with the log (50 log kills in all; its small files
checkpoint every few dozen commits, so kills land while checkpoints are written:
the test checks several checkpoints were made over the run).

In the "shrink" configurations (the bbolt page and the log) the writer also
grows the file by a large run every third commit and frees it in the next, so
commits cut the file back (shrinking is on: the default); a kill can land
between a commit's meta and its cut.  After each kill ``check()`` also finds
both metas inside the file, and over the loop the file must have got shorter at
least once.  The thorough
profile (FREELIST_HYPOTHESIS_PROFILE=thorough, or pytest
--hypothesis-profile=thorough, or FREELIST_THOROUGH=1) runs 200 in each.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import struct
import sys
import time
from pathlib import Path
from typing import IO

import pytest
from hypothesis import settings

from freelist import PageFile, persist

from . import crash_writer
from .crash_writer import root_walk

WRITER = Path(__file__).with_name("crash_writer.py")


def kills(fmt: str) -> int:
    """Kills per configuration: 15 (25 for the log), or 200 under the thorough profile."""
    thorough = (
        os.environ.get("FREELIST_THOROUGH")
        or os.environ.get("FREELIST_HYPOTHESIS_PROFILE") == "thorough"
        or settings.get_current_profile_name() == "thorough"
    )
    return 200 if thorough else 25 if fmt == "log" else 15


def verify(path: Path, kind: str, fmt: str, reported: int, checkpoints: set[int]) -> int:
    with PageFile.open(path, freelist=kind, freelist_format=fmt, reachable=root_walk) as pf:
        txid = pf.meta.txid
        assert txid >= reported, f"commit {reported} returned but the file is at {txid}"
        assert txid <= reported + 1, "a commit that never started is in the file"
        if pf.meta.root:
            with pf.view() as r:
                raw = r.read(pf.meta.root)
                stamp, count = struct.unpack_from("<QI", raw)
                assert stamp == txid
                for i in range(count):
                    start, n = struct.unpack_from("<QQ", raw, 12 + 16 * i)
                    data = r.read(start, n)
                    assert data == struct.pack("<Q", txid) * (n * 1024 // 8), (start, n)
        assert pf.check(root_walk) == []
        if fmt == "log" and pf.meta.version == 3:
            about = persist.describe(pf._state.io, pf.meta)
            assert about["errors"] == []
            checkpoints.add(about["checkpoint_txid"])
        return txid


def start_writer(args: list[str]) -> tuple[int, IO[str]]:
    """Fork the writer (:func:`crash_writer.main` with ``args``) and return its
    pid and its stdout.  A fork, not a new interpreter: the child starts in a
    few milliseconds instead of the tenth of a second an import of the package
    takes, which was most of this test's time; the kill is the same SIGKILL."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the writer, until it is killed
        try:
            os.close(read_end)
            os.dup2(write_end, 1)
            sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
            sys.argv = [str(WRITER), *args]
            crash_writer.main()
        finally:
            os._exit(1)
    os.close(write_end)
    return pid, os.fdopen(read_end)


@pytest.mark.parametrize(
    ("fmt", "shrink"),
    [("bbolt", False), ("none", False), ("log", False), ("bbolt", True), ("log", True)],
    ids=["bbolt", "none", "log", "bbolt-shrink", "log-shrink"],
)
@pytest.mark.parametrize("kind", ["hashmap", "array"])
def test_kill_at_random_moments(tmp_path: Path, kind: str, fmt: str, shrink: bool) -> None:
    path = tmp_path / "crash.db"
    rnd = random.Random(f"{kind}{fmt}{'shrink' if shrink else ''}")
    sizes: list[int] = []
    reported = 1  # a new file starts at txid 1
    checkpoints: set[int] = set()
    for kill in range(kills(fmt)):
        args = [str(path), kind, fmt, str(kill), "1" if shrink else "0"]
        pid, out_pipe = start_writer(args)
        first = out_pipe.readline()  # wait until it commits at least once
        assert first.strip(), "the writer died before committing"
        time.sleep(rnd.uniform(0.0, 0.05))
        os.kill(pid, signal.SIGKILL)
        out = first + out_pipe.read()
        out_pipe.close()
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status), status
        assert os.WTERMSIG(status) == signal.SIGKILL
        lines = out.split()
        reported = max(reported, int(lines[-1]))
        reported = verify(path, kind, fmt, reported, checkpoints)
        sizes.append(path.stat().st_size)
    if shrink:
        assert any(b < a for a, b in itertools.pairwise(sizes)), f"never shrank: {sizes}"
    if fmt == "log":
        # Checkpoints were written between kills (and so some kills fell in them).
        assert len(checkpoints) >= 5, checkpoints
