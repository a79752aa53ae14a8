"""Fixtures of the interop tier: ``bbolt``, the Go helper (:mod:`tests.interop.gohelper`),
and ``scratch``, a directory for the databases a test makes.

Tests that take ``bbolt`` skip with one line naming the Debian packages when Go or
bbolt's source is missing; under ``CI=true`` the fixture fails instead.

``scratch`` is on ``/dev/shm`` (memory) when the machine has it: every PageFile
commit syncs the file twice, which on a busy disk made the tier's commits take
20 times longer than everything else in it, and nothing here needs the data on
disk (crash safety is tests/test_crash.py's subject).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.interop import gohelper

SHM = Path("/dev/shm")


def scratch_root() -> Path | None:
    """Where ``scratch`` directories go: ``/dev/shm`` when writable, else None (tmp_path)."""
    return SHM if SHM.is_dir() and os.access(SHM, os.W_OK) else None


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """A new empty directory, in memory when the machine allows; removed afterwards."""
    root = scratch_root()
    if root is None:
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=root, prefix="freelist-interop-") as d:
        yield Path(d)


@pytest.fixture(scope="session")
def bbolt() -> ModuleType:
    """The :mod:`tests.interop.gohelper` module, its helper built."""
    if gohelper.binary() is None:
        pytest.skip(gohelper.MISSING)
    return gohelper
