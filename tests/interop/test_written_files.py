"""bbolt reads what this library writes.

Every freelist class and every format that writes bbolt's layout ("bbolt", "none";
shrinking on and off) on a file whose root is a valid bbolt leaf, after commits that
allocate, write and free (:class:`~tests.interop.treewriter.TreeWriter`): bbolt opens
the file, ``tx.Check`` is clean, its content hash is the tree's, its free count is the
library's free plus pending pages (bbolt reads both from the freelist page, or finds
both unreachable), and bbolt can go on writing to the file itself.  A "log" file is
refused with bbolt's version error, and left byte for byte as it was.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from freelist import PageFile, PageFileStats, registry
from freelist import bbolt as bbolt_walk
from tests.interop.conftest import scratch_root
from tests.interop.treewriter import TreeWriter

pytestmark = pytest.mark.interop

COMMITS = 24


def write_tree(
    path: Path, *, spec: str, fmt: str, shrink: bool, page_size: int, seed: int
) -> tuple[TreeWriter, PageFileStats]:
    writer = TreeWriter(page_size, seed)
    with PageFile.open(
        path, freelist=spec, freelist_format=fmt, shrink=shrink, page_size=page_size
    ) as pf:
        for _ in range(COMMITS):
            with pf.update() as tx:
                writer.mutate()
                writer.flush(tx)
        stats = pf.stats()
        assert pf.check(bbolt_walk.reachable) == []
    return writer, stats


def assert_bbolt_agrees(
    bbolt: ModuleType, path: Path, writer: TreeWriter, stats: PageFileStats, fmt: str
) -> None:
    got = bbolt.dump(path)
    assert got["check_errors"] == []
    assert got["hash"] == bbolt.content_hash(writer.tree())
    assert got["freelist_synced"] is (fmt == "bbolt")
    assert got["hwm"] == stats.hwm
    assert got["txid"] == stats.txid
    assert got["page_size"] == stats.page_size
    assert (got["free"], got["pending"]) == (stats.free + stats.pending, 0)
    with PageFile.open(path, readonly=True, reachable=bbolt_walk.reachable) as pf:
        types = bbolt_walk.page_types(pf)
    assert (types["branch"], types["leaf"]) == (got["tree"]["branch"], got["tree"]["leaf"])
    assert got["tree"]["inline_buckets"] + got["tree"]["leaf"] > 1
    # bbolt goes on writing to the file, in its freelist mode, and still finds it sound.
    churned = bbolt.dump(path, churn=12)["churn"]
    assert churned["check_errors"] == []
    assert churned["hash"] == got["hash"]


@pytest.mark.parametrize("shrink", [True, False], ids=["shrink", "noshrink"])
@pytest.mark.parametrize("fmt", ["bbolt", "none"])
@pytest.mark.parametrize("spec", registry.builtin_specs())
def test_bbolt_reads_every_freelist_and_format(
    bbolt: ModuleType, scratch: Path, spec: str, fmt: str, shrink: bool
) -> None:
    path = scratch / "ours.db"
    writer, stats = write_tree(path, spec=spec, fmt=fmt, shrink=shrink, page_size=4096, seed=11)
    assert stats.free + stats.pending > 0  # the commits freed pages
    assert_bbolt_agrees(bbolt, path, writer, stats, fmt)


@pytest.mark.parametrize("fmt", ["bbolt", "none"])
@pytest.mark.parametrize("page_size", [512, 1024, 8192, 16384, 65536])
def test_bbolt_reads_our_files_at_every_page_size(
    bbolt: ModuleType, scratch: Path, page_size: int, fmt: str
) -> None:
    path = scratch / "ours.db"
    writer, stats = write_tree(
        path, spec="hashmap", fmt=fmt, shrink=True, page_size=page_size, seed=page_size
    )
    assert_bbolt_agrees(bbolt, path, writer, stats, fmt)


@pytest.mark.parametrize("page_size", [512, 4096, 65536])
def test_bbolt_refuses_a_log_file_and_leaves_it_alone(
    bbolt: ModuleType, scratch: Path, page_size: int
) -> None:
    path = scratch / "log.db"
    write_tree(path, spec="hashmap", fmt="log", shrink=True, page_size=page_size, seed=5)
    before = path.read_bytes()
    for writable in (False, True):
        with pytest.raises(bbolt.BboltOpenError) as refused:
            bbolt.dump(path, writable=writable)
        assert refused.value.message == "version mismatch"
        assert path.read_bytes() == before


def _examples() -> int:
    thorough = (
        os.environ.get("FREELIST_THOROUGH")
        or os.environ.get("FREELIST_HYPOTHESIS_PROFILE") == "thorough"
        or settings.get_current_profile_name() == "thorough"
    )
    return 300 if thorough else 6


@settings(max_examples=_examples(), deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    page_size=st.sampled_from([512, 1024, 4096, 65536]),
    spec=st.sampled_from(registry.builtin_specs()),
    fmt=st.sampled_from(["bbolt", "none"]),
    shrink=st.booleans(),
    commits=st.integers(1, 30),
    hold=st.integers(0, 4),
)
def test_bbolt_reads_random_histories(
    bbolt: ModuleType,
    *,
    seed: int,
    page_size: int,
    spec: str,
    fmt: str,
    shrink: bool,
    commits: int,
    hold: int,
) -> None:
    """Random tree histories, with a reader held open across ``hold`` commits now and
    then (its snapshot keeps freed pages pending, and they are written as such)."""
    writer = TreeWriter(page_size, seed)
    with tempfile.TemporaryDirectory(dir=scratch_root()) as tmp:
        path = Path(tmp, "ours.db")
        with PageFile.open(
            path, freelist=spec, freelist_format=fmt, shrink=shrink, page_size=page_size
        ) as pf:
            reader = None
            for i in range(commits):
                if hold and reader is None and i % (hold + 1) == 0:
                    reader = pf.begin(False)
                with pf.update() as tx:
                    writer.mutate()
                    writer.flush(tx)
                if reader is not None and i % (hold + 1) == hold:
                    reader.rollback()
                    reader = None
            if reader is not None:
                reader.rollback()
            stats = pf.stats()
        got = bbolt.dump(path)
        assert got["check_errors"] == []
        assert got["hash"] == bbolt.content_hash(writer.tree())
        assert (got["free"], got["pending"]) == (stats.free + stats.pending, 0)
        assert got["hwm"] == stats.hwm
