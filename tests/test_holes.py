"""Regression tests for the four holes (and the smaller ones) an outside
campaign found (issue 21).  Each failed on the code before its fix."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from freelist import PageFile, bbolt
from freelist.bbolt import BboltTreeError
from freelist.layout import LEAF_PAGE

from .bboltfile import branch_body, leaf_body, page, watchdog, write_file

PS = 4096


# ---------------------------------------------------------------------------
# Hole 1: leaf values past their page.


def test_a_leaf_value_past_its_page_stops_the_walk(tmp_path: Path) -> None:
    # A NoFreelistSync file: a leaf with one overflow page holds a value that
    # ends at byte 7016; its header's overflow is set to 0.  The walk must
    # refuse the leaf (its value runs past the page), not list page 4 free.
    path = tmp_path / "leaf.db"
    body = leaf_body([(0, b"key", b"v" * (7016 - 16 - 16 - 3))])
    leaf = page(body, 3, PS)
    assert len(leaf) == 2 * PS
    head = struct.pack("<QHHI", 3, LEAF_PAGE, 1, 0)  # overflow 0: one page
    root = page(branch_body([(b"k", 3)]), 2, PS)
    write_file(path, PS, 6, {2: root, 3: head + leaf[16:]}, root=2)
    with watchdog(20, "the walk"), pytest.raises(BboltTreeError) as info:
        PageFile.open(path, readonly=True, reachable=bbolt.reachable)
    assert "page 3" in str(info.value)
    assert "runs past" in str(info.value)
