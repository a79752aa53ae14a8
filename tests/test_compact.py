"""``freelist compact``: relocation in place and compacted copies.

Files come from two sources here: the real bbolt databases of tests/data/bbolt
and trees generated with :mod:`tests.bboltfile` (every page size, synced and
``NoFreelistSync``, nested buckets, an inline bucket whose own sub-bucket
names a page, leaves with overflow pages, pages scattered over a file mostly
free).  The interop tier (tests/interop/test_compact_interop.py) checks the
same against bbolt itself.

Contents are compared with this file's own walk of bbolt's layout: every
bucket path, key and value in order (:func:`contents`), independent of the
engine's describer.

Crash safety: a child process compacts with a small batch and is SIGKILLed,
either right after its k-th commit (a kill point in ``on_commit``) or after a
random delay (anywhere, inside a commit too); the file must then check clean
with the same contents, and compacting again must finish.  Power loss: the
writes, syncs and size changes of a compaction are recorded through the file
layer (:class:`freelist._fileio.FileIO`), and disk states are rebuilt from
every synced prefix plus random subsets (and torn sector prefixes) of the
writes not yet synced; each must open to a committed state with the same
contents.  The thorough profile (``FREELIST_THOROUGH=1`` or the Hypothesis
profile ``thorough``) multiplies the kills and states.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from freelist import PageFile, bbolt
from freelist._fileio import FileIO
from freelist.cli import main
from freelist.compact import (
    DamagedFileError,
    compact,
    compact_copy,
    compact_file,
    plan,
)
from freelist.errors import (
    FileLockedError,
    InvalidArgumentError,
    PageFileArgumentError,
    ReachabilityError,
    TransactionError,
)
from freelist.layout import BRANCH_PAGE, NO_FREELIST

from .bboltfile import (
    BUCKET_FLAG,
    HEADER,
    branch_body,
    bucket,
    leaf_body,
    page,
    write_file,
)

DATA = Path(__file__).parent / "data" / "bbolt"
REAL = sorted(p.name.removesuffix(".gz") for p in DATA.glob("*.db.gz"))


def thorough() -> bool:
    """Whether the long campaign runs (see the module docs)."""
    return bool(
        os.environ.get("FREELIST_THOROUGH")
        or os.environ.get("FREELIST_HYPOTHESIS_PROFILE") == "thorough"
        or settings.get_current_profile_name() == "thorough"
    )


# --- contents: this file's own walk of keys and values -------------------------------


def _items(read: Any, root: int) -> Iterator[tuple[tuple[bytes, ...], bytes, bytes]]:
    def obj(pgid: int) -> bytes:
        overflow = HEADER.unpack_from(read(pgid, 1))[3]
        return bytes(read(pgid, overflow + 1))

    def leaf(data: bytes, off: int, path: tuple[bytes, ...]) -> Iterator[Any]:
        count = HEADER.unpack_from(data, off)[2]
        for i in range(count):
            e = off + 16 + 16 * i
            flags, pos, ks, vs = struct.unpack_from("<IIII", data, e)
            key = data[e + pos : e + pos + ks]
            value = data[e + pos + ks : e + pos + ks + vs]
            if flags & BUCKET_FLAG:
                sub_root, seq = struct.unpack_from("<QQ", value)
                yield path, key, b"bucket %d" % seq
                if sub_root:
                    yield from tree(sub_root, (*path, key))
                elif len(value) > 16:
                    yield from leaf(value, 16, (*path, key))
            else:
                yield path, key, value

    def tree(pgid: int, path: tuple[bytes, ...]) -> Iterator[Any]:
        data = obj(pgid)
        _id, flags, count, _ov = HEADER.unpack_from(data)
        if flags & BRANCH_PAGE:
            for i in range(count):
                yield from tree(struct.unpack_from("<IIQ", data, 16 + 16 * i)[2], path)
        else:
            yield from leaf(data, 0, path)

    if root:
        yield from tree(root, ())


def contents(path: Path) -> tuple[str, int]:
    """SHA-256 over every bucket path, key and value in order, and their number."""
    with PageFile.open(path, readonly=True, reachable=bbolt.reachable) as pf, pf.view() as tx:
        h = hashlib.sha256()
        n = 0
        for item in _items(tx.read, pf.meta.root):
            h.update(repr(item).encode())
            n += 1
        return h.hexdigest(), n


def inspect(path: Path) -> dict[str, Any]:
    """Check problems, the meta, free and pending counts, file size, the packed target."""
    with PageFile.open(path, readonly=True, reachable=bbolt.reachable) as pf:
        st = pf.stats()
        return {
            "problems": pf.check(bbolt.reachable),
            "meta": pf.meta,
            "free": st.free,
            "pending": st.pending,
            "size": st.file_size,
            "target": plan(pf).target_pages,
            "page_size": st.page_size,
        }


# --- files ---------------------------------------------------------------------------


def real_file(tmp_path: Path, name: str) -> Path:
    out = tmp_path / name
    out.write_bytes(gzip.decompress((DATA / f"{name}.gz").read_bytes()))
    return out


def generated(
    path: Path, page_size: int, *, synced: bool, seed: int = 0, leaves: int = 24, spread: int = 4
) -> Path:
    """A bbolt file with every kind of reference, its pages scattered.

    The root bucket holds ``kv`` (a branch over ``leaves`` leaves, some with
    overflow pages), ``nest`` (a leaf holding sub-bucket ``a`` with a page,
    inline bucket ``b`` and inline bucket ``c`` whose own sub-bucket ``d``
    names a page) and inline bucket ``e``.  Objects sit at random places in a
    file ``spread`` times their size; the rest is free.
    """
    r = random.Random(f"{seed}-{page_size}-{synced}")
    big = page_size * 2 + 100
    kv_leaves = []
    for i in range(leaves):
        items = [(0, b"k%03d-%02d" % (i, j), b"v" * r.randint(1, 40)) for j in range(3)]
        if i % 5 == 2:
            items.append((0, b"k%03d-big" % i, bytes([i]) * big))  # overflow pages
        kv_leaves.append(items)
    n_pages: dict[str, int] = {}

    def size_of(body: bytes) -> int:
        return max(1, -(-len(body) // page_size))

    # Lay out: names first, ids after (ids are chosen once sizes are known).
    leaf_names = [f"leaf{i}" for i in range(leaves)]
    for name, items in zip(leaf_names, kv_leaves, strict=True):
        n_pages[name] = size_of(leaf_body(items))
    n_pages["kvroot"] = size_of(branch_body([(items[0][1], 0) for items in kv_leaves]))
    n_pages["a"] = 1
    n_pages["d"] = 1
    n_pages["nest"] = 2 if page_size < 1024 else 1
    n_pages["root"] = 1
    total = sum(n_pages.values())
    hwm = 3 + total * spread
    slots = list(range(3, hwm))
    ids: dict[str, int] = {}
    taken: set[int] = set()
    for name in sorted(n_pages, key=lambda k: -n_pages[k]):
        n = n_pages[name]
        while True:
            s = r.choice(slots[: len(slots) - n])
            if not any(p in taken for p in range(s - 1, s + n + 1)):
                break
        ids[name] = s
        taken.update(range(s, s + n))
    pages: dict[int, bytes] = {}

    def put(name: str, body: bytes) -> None:
        data = page(body, ids[name], page_size)
        assert len(data) == n_pages[name] * page_size, name
        pages[ids[name]] = data

    for name, items in zip(leaf_names, kv_leaves, strict=True):
        put(name, leaf_body(items))
    put(
        "kvroot",
        branch_body(
            [(items[0][1], ids[n]) for n, items in zip(leaf_names, kv_leaves, strict=True)]
        ),
    )
    put("a", leaf_body([(0, b"a1", b"x"), (0, b"a2", b"y")]))
    put("d", leaf_body([(0, b"d1", b"deep")]))
    inline_b = leaf_body([(0, b"b1", b"inline")])
    inline_c = leaf_body([(BUCKET_FLAG, b"d", bucket(ids["d"])), (0, b"c1", b"z")])
    nest_items = [
        (BUCKET_FLAG, b"a", bucket(ids["a"])),
        (BUCKET_FLAG, b"b", bucket(0, inline_b)),
        (BUCKET_FLAG, b"c", bucket(0, inline_c)),
    ]
    if page_size < 1024:
        nest_items.append((0, b"pad", b"p" * page_size))  # a second page for the leaf
    put("nest", leaf_body(nest_items))
    put(
        "root",
        leaf_body(
            [
                (BUCKET_FLAG, b"e", bucket(0, leaf_body([(0, b"e1", b"E")]))),
                (BUCKET_FLAG, b"kv", bucket(ids["kvroot"])),
                (BUCKET_FLAG, b"nest", bucket(ids["nest"])),
            ]
        ),
    )
    free = [p for p in range(2, hwm) if p not in taken]
    freelist = None
    if synced:
        if 16 + 8 * len(free) <= page_size:
            freelist = free.pop(r.randrange(len(free)))  # one page, somewhere in the middle
        else:
            freelist = hwm  # an overflowing freelist at the end
            hwm += -(-(16 + 8 * len(free)) // page_size)
    write_file(path, page_size, hwm, pages, root=ids["root"], freelist=freelist, free_ids=free)
    return path


PAGE_SIZES = (512, 1024, 4096, 16384, 65536)


def verify_compacted(path: Path, before: tuple[str, int], synced: bool) -> dict[str, Any]:
    info = inspect(path)
    assert info["problems"] == []
    assert contents(path) == before
    assert (info["meta"].freelist != NO_FREELIST) == synced
    ps = info["page_size"]
    # the size target: 1.10x the packed size, plus a few pages
    assert info["size"] <= 1.10 * info["target"] * ps + 8 * ps, info
    return info


# --- in place and copy: contents, sizes, modes -----------------------------------------


@pytest.mark.parametrize("name", REAL)
def test_real_bbolt_files(tmp_path: Path, name: str) -> None:
    path = real_file(tmp_path, name)
    before = contents(path)
    synced = not name.startswith("nosync")
    size0 = path.stat().st_size
    result = compact_file(path, batch=64)
    assert result.commits > 0
    assert result.moved_pages > 0
    info = verify_compacted(path, before, synced)
    assert info["size"] < size0 / 2
    assert info["meta"].hwm < result.hwm_before / 2
    assert result.size_after == info["size"]
    # the copy: tree order, no free pages, same contents
    copy = tmp_path / "copy.db"
    orig = tmp_path / "orig"
    orig.mkdir()
    done = compact_copy(real_file(orig, name), copy)
    cinfo = inspect(copy)
    assert cinfo["problems"] == []
    assert cinfo["free"] == 0
    assert cinfo["pending"] == 0
    assert contents(copy) == before
    assert cinfo["meta"].hwm == cinfo["target"] == done.hwm_after
    assert (cinfo["meta"].freelist != NO_FREELIST) == synced
    assert_tree_order(copy)


def assert_tree_order(path: Path) -> None:
    """The tree's objects, breadth first from the root, lie one after the
    other from page 2 (and a synced freelist right after them)."""
    with PageFile.open(path, readonly=True, reachable=bbolt.reachable) as pf:
        order = [(p, n) for p, n, _f in _bfs(pf)]
        at = 2
        for p, n in order:
            assert p == at, (p, at)
            at += n
        assert pf.meta.hwm == at + sum(n for _s, n in pf.freelist_runs)


def _bfs(pf: PageFile) -> list[tuple[int, int, int]]:
    """``(pgid, pages, flags)`` breadth first, children in element order
    (this file's own walk, not the engine's)."""
    out = []
    with pf.view() as tx:
        queue = [pf.meta.root]
        while queue:
            nxt = []
            for pgid in queue:
                data = bytes(tx.read(pgid, 1))
                overflow = HEADER.unpack_from(data)[3]
                data = bytes(tx.read(pgid, overflow + 1))
                flags = HEADER.unpack_from(data)[1]
                out.append((pgid, overflow + 1, flags))
                count = HEADER.unpack_from(data)[2]
                if flags & BRANCH_PAGE:
                    nxt += [struct.unpack_from("<IIQ", data, 16 + 16 * i)[2] for i in range(count)]
                else:
                    nxt += _sub_roots(data, 0)
            queue = nxt
    return out


def _sub_roots(data: bytes, off: int) -> list[int]:
    roots = []
    count = HEADER.unpack_from(data, off)[2]
    for i in range(count):
        e = off + 16 + 16 * i
        flags, pos, ks, vs = struct.unpack_from("<IIII", data, e)
        if flags & BUCKET_FLAG:
            v = e + pos + ks
            root = struct.unpack_from("<Q", data, v)[0]
            if root:
                roots.append(root)
            elif vs > 16:
                roots += _sub_roots(data[v + 16 : v + vs], 0)
    return roots


@pytest.mark.parametrize("synced", [True, False], ids=["synced", "nosync"])
@pytest.mark.parametrize("page_size", PAGE_SIZES)
def test_every_page_size_and_mode(tmp_path: Path, page_size: int, synced: bool) -> None:
    path = generated(tmp_path / "g.db", page_size, synced=synced)
    before = contents(path)
    assert before[1] > 80  # every kind of element is there
    assert inspect(path)["problems"] == []
    src_bytes = path.read_bytes()
    copy = tmp_path / "copy.db"
    compact_copy(path, copy)
    assert path.read_bytes() == src_bytes  # the source is left alone
    result = compact_file(path, batch=16)
    assert result.moved_pages > 0
    verify_compacted(path, before, synced)
    cinfo = inspect(copy)
    assert contents(copy) == before
    assert_tree_order(copy)
    assert cinfo["free"] == 0
    assert cinfo["problems"] == []
    # in place ends within a few pages of the packed copy
    assert inspect(path)["meta"].hwm <= cinfo["meta"].hwm + 8


def test_nested_inline_and_overflow_references_are_rewritten(tmp_path: Path) -> None:
    """The pages named from inside an inline bucket and the overflow leaves move too."""
    path = generated(tmp_path / "g.db", 1024, synced=True, spread=8)
    before = contents(path)
    result = compact_file(path, batch=1000)
    info = verify_compacted(path, before, True)
    # every object now lies below the packed size plus a few holes
    assert info["meta"].hwm <= info["target"] + 8
    assert result.moved_objects > 5


def test_already_compact_file_gets_no_commit(tmp_path: Path) -> None:
    path = real_file(tmp_path, "synced-array.db")
    copy = tmp_path / "copy.db"
    compact_copy(path, copy)
    raw = copy.read_bytes()
    result = compact_file(copy)
    assert result.commits == 0
    assert copy.read_bytes() == raw
    # and a file this compaction made: a second run finds nothing to do
    compact_file(path)
    raw = path.read_bytes()
    again = compact_file(path)
    assert again.commits == 0
    assert path.read_bytes() == raw


def test_dry_run_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    path = real_file(tmp_path, "nosync-nested.db")
    raw = path.read_bytes()
    assert main(["compact", str(path), "--dry-run", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert path.read_bytes() == raw
    assert info["dry_run"]
    assert info["move_pages"] > 0
    assert info["gives_back_bytes"] == info["file_size"] - info["target_pages"] * 4096
    assert main(["compact", str(path), "--json", "--no-progress"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["commits"] > 0
    assert done["gave_back_bytes"] > 0.8 * info["gives_back_bytes"]
    assert main(["compact", str(path)]) == 0
    assert "already compact" in capsys.readouterr().out
    copy = tmp_path / "c.db"
    assert main(["compact", str(path), str(copy)]) == 0
    assert "compacted copy" in capsys.readouterr().out
    assert main(["compact", str(path), str(copy)]) == 2  # the copy exists
    # inspect reports the in-place estimate beside the copy's
    assert main(["inspect", str(path), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert "compact_in_place" in rep
    assert rep["compact_in_place"]["move_pages"] > 0


def test_inspect_estimate_matches_the_dry_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    path = real_file(tmp_path, "synced-hashmap-nested.db")
    assert main(["inspect", str(path), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert main(["compact", str(path), "--dry-run", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert rep["compact_in_place"]["move_pages"] == dry["move_pages"]
    assert rep["compact_in_place"]["gives_back_bytes"] == dry["gives_back_bytes"]
    assert main(["inspect", str(path)]) == 0
    assert "freelist compact (in place) moves about" in capsys.readouterr().out


# --- refusals ------------------------------------------------------------------------


def _damage_branch_to_free_page(path: Path) -> None:
    """Point a branch element of kv's root at a free page."""
    with PageFile.open(path, readonly=True, reachable=bbolt.reachable) as pf:
        ps = pf.page_size
        free = pf.freelist.free_page_ids()
        with pf.view() as tx:
            branch = next(
                p for p, _n, f in bbolt.walk(tx.read, pf.meta.root, pf.meta.hwm) if f & BRANCH_PAGE
            )
    with open(path, "r+b") as f:
        f.seek(branch * ps + 16 + 8)
        f.write(struct.pack("<Q", free[len(free) // 2]))


def _damage_shared_child(path: Path) -> None:
    """Make two branch elements name the same child."""
    with PageFile.open(path, readonly=True, reachable=bbolt.reachable) as pf:
        ps = pf.page_size
        with pf.view() as tx:
            branch = next(
                p for p, _n, f in bbolt.walk(tx.read, pf.meta.root, pf.meta.hwm) if f & BRANCH_PAGE
            )
            raw = tx.read(branch)
    first = raw[16 + 8 : 16 + 16]
    with open(path, "r+b") as f:
        f.seek(branch * ps + 32 + 8)
        f.write(first)


def _damage_freelist_lists_live_page(path: Path) -> None:
    """Drop a free page from the synced freelist: a leaked page nobody accounts for."""
    with PageFile.open(path, readonly=True) as pf:
        ps = pf.page_size
        fl = pf.meta.freelist
        ids = pf.freelist.free_page_ids()
        pages = pf.freelist_runs[0][1]
    from freelist.layout import pack_freelist_page

    with open(path, "r+b") as f:
        f.seek(fl * ps)
        f.write(pack_freelist_page(fl, ids[1:], ps, pages))


@pytest.mark.parametrize(
    "damage",
    [_damage_branch_to_free_page, _damage_shared_child, _damage_freelist_lists_live_page],
    ids=["child-is-free", "shared-child", "leaked-page"],
)
def test_damaged_files_are_refused_and_left_alone(
    tmp_path: Path, damage: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = real_file(tmp_path, "synced-array.db")
    damage(path)
    raw = path.read_bytes()
    with pytest.raises(DamagedFileError) as e:
        compact_file(path)
    assert e.value.problems
    assert path.read_bytes() == raw
    assert main(["compact", str(path)]) == 1
    out = capsys.readouterr().out
    assert "refused" in out
    assert path.read_bytes() == raw
    with pytest.raises(DamagedFileError):
        compact_copy(path, tmp_path / "copy.db")
    assert not (tmp_path / "copy.db").exists()


def test_a_held_file_is_refused(tmp_path: Path) -> None:
    path = real_file(tmp_path, "synced-array.db")
    raw = path.read_bytes()
    with PageFile.open(path, timeout=0):  # holds the exclusive lock
        with pytest.raises(FileLockedError):
            compact_file(path, timeout=0.05)
        assert main(["compact", str(path), "--timeout", "0"]) == 2
    assert path.read_bytes() == raw


def test_bad_arguments(tmp_path: Path) -> None:
    path = real_file(tmp_path, "synced-array.db")
    with PageFile.open(path, reachable=bbolt.reachable) as pf, pytest.raises(InvalidArgumentError):
        compact(pf, batch=0)
    with pytest.raises(PageFileArgumentError):
        compact_copy(path, path)


# --- a page file of this library with its own describer --------------------------------


class RunList:
    """The crash writer's layout: the root page lists ``(start, n)`` data runs
    (u64 pairs from byte 12); data pages carry no id of their own."""

    def root_pages(self, read: Any, root: int) -> int:  # noqa: ARG002
        return 1

    def children(self, read: Any, pgid: int, pages: int) -> list[tuple[int, int, int]]:  # noqa: ARG002
        raw = read(pgid, 1)
        if pgid != root_of(raw):
            return []
        count = struct.unpack_from("<I", raw, 8)[0]
        return [(12 + 16 * i, *struct.unpack_from("<QQ", raw, 12 + 16 * i)) for i in range(count)]

    def rewrite(self, data: bytearray, slot: int, child: int) -> None:
        struct.pack_into("<Q", data, slot, child)

    def moved(self, data: bytearray, pgid: int) -> None:
        pass


_ROOT_MAGIC = b"ROOT"


def root_of(raw: bytes) -> int:
    return struct.unpack_from("<Q", raw, 0)[0] if raw[-4:] == _ROOT_MAGIC else -1


def test_a_library_page_file_with_its_own_describer(tmp_path: Path) -> None:
    """A page file whose root lists data runs: the runs move, the root is
    rewritten with their new ids, the data and the check stay right."""
    path = tmp_path / "own.db"
    r = random.Random(5)
    ps = 1024

    def walk(pf: PageFile) -> list[tuple[int, int]]:
        return root_walk_own(pf)

    with PageFile.open(path, page_size=ps, freelist="hashmap", reachable=walk) as pf:
        keep: list[tuple[int, int]] = []
        for _ in range(30):
            with pf.update() as tx:
                runs = [(tx.allocate(n), n) for n in (r.choice([1, 1, 2, 3, 5]) for _ in range(8))]
                for s, n in runs:
                    tx.write(s, struct.pack("<Q", s) * (n * ps // 8))
                keep += runs[:2]
                for s, n in runs[2:]:
                    tx.free(s, n)
                old = pf.meta.root
                root = tx.allocate(1)
                body = struct.pack("<QI", root, len(keep)) + b"".join(
                    struct.pack("<QQ", s, n) for s, n in keep
                )
                tx.write(root, body.ljust(ps - 4, b"\0") + _ROOT_MAGIC)
                tx.root = root
                if old:
                    tx.free(old, 1)
        expect = []
        with pf.view() as tx:
            for s, n in keep:
                expect.append(tx.read(s, n))
        hwm0 = pf.meta.hwm
    with PageFile.open(path, freelist="hashmap:first-fit", reachable=walk) as pf:
        assert pf.check(walk) == []
        result = compact(pf, RunList(), batch=10)
        assert result.moved_pages > 0
        assert pf.meta.hwm < hwm0
        assert pf.check(walk) == []
        with pf.view() as tx:
            raw = tx.read(pf.meta.root)
            count = struct.unpack_from("<I", raw, 8)[0]
            runs = [struct.unpack_from("<QQ", raw, 12 + 16 * i) for i in range(count)]
            got = [tx.read(s, n) for s, n in runs]
        assert got == expect
        live = 1 + sum(n for _s, n in runs)
        assert pf.meta.hwm <= 2 + live + 2 + 8


def root_walk_own(pf: PageFile) -> list[tuple[int, int]]:
    root = pf.meta.root
    if not root:
        return []
    with pf.view() as tx:
        raw = tx.read(root)
    count = struct.unpack_from("<I", raw, 8)[0]
    return [(root, 1)] + [struct.unpack_from("<QQ", raw, 12 + 16 * i) for i in range(count)]


# --- SIGKILL during compact ----------------------------------------------------------

_CHILD = """
import os, signal, sys
from freelist._fileio import FileIO
from freelist.compact import compact_file
path, k, w, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def hit(commits, moved, total):
    print(commits, flush=True)
    if commits == k:
        os.kill(os.getpid(), signal.SIGKILL)
calls = 0
def dying(real):
    def op(self, *args):
        global calls
        calls += 1
        if calls == w:  # in the middle of a commit: before this write, sync or cut
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, *args)
    return op
FileIO.pwrite = dying(FileIO.pwrite)
FileIO.sync = dying(FileIO.sync)
FileIO.truncate = dying(FileIO.truncate)
compact_file(path, batch=batch, on_commit=hit)
print("done", flush=True)
"""


def kills_wanted() -> tuple[int, int]:
    """(kills after a commit, kills before a write, sync or cut inside one)."""
    return (120, 120) if thorough() else (20, 12)


def _check_after_kill(path: Path, before: tuple[str, int], synced: bool) -> None:
    info = inspect(path)
    assert info["problems"] == [], info["problems"]
    assert contents(path) == before
    assert (info["meta"].freelist != NO_FREELIST) == synced


@pytest.mark.parametrize("synced", [True, False], ids=["synced", "nosync"])
def test_sigkill_during_compact(tmp_path: Path, synced: bool) -> None:
    at_commit, at_random = kills_wanted()
    at_commit //= 2
    at_random //= 2
    rnd = random.Random(f"kill-{synced}")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    path = tmp_path / "k.db"
    seed = 0
    kills = 0
    finished = 0

    def fresh() -> tuple[str, int]:
        nonlocal seed
        seed += 1
        generated(path, 512, synced=synced, seed=seed, leaves=30)
        return contents(path)

    before = fresh()
    while kills < at_commit + at_random:
        # first after the k-th commit, then before the w-th write, sync or cut
        # of the file: a point inside a commit, drawn among the run's first ones
        at_write = kills >= at_commit
        k = rnd.randint(1, 3)
        w = rnd.randint(1, 60) if at_write else 0
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(path), str(0 if at_write else k), str(w), "2"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert child.stdout is not None
        out = child.stdout.read()
        child.stdout.close()
        child.wait()
        if child.returncode == -signal.SIGKILL:
            kills += 1
        else:
            assert child.returncode == 0, (child.returncode, out, kills)
            assert "done" in out, out
        _check_after_kill(path, before, synced)
        if "done" in out:
            finished += 1
            again = compact_file(path)  # it finished: little or nothing left
            assert again.size_after >= 0.9 * again.size_before, again
            before = fresh()
    # after the last kill, compacting again finishes
    compact_file(path)
    verify_compacted(path, before, synced)
    assert kills >= at_commit + at_random


# --- power loss: record writes and syncs, replay unsynced subsets -----------------------


class Recorder:
    """Every write, sync and size change the file layer makes to one path."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
        self.ops: list[tuple[str, int, bytes]] = []
        target = os.fsdecode(path)
        real_pwrite, real_sync = FileIO.pwrite, FileIO.sync
        real_truncate, real_ensure = FileIO.truncate, FileIO.ensure_size
        ops = self.ops

        def pwrite(io: FileIO, data: Any, offset: int) -> None:
            if io.path == target:
                ops.append(("w", offset, bytes(data)))
            real_pwrite(io, data, offset)

        def sync(io: FileIO) -> None:
            real_sync(io)
            if io.path == target:
                ops.append(("s", 0, b""))

        def truncate(io: FileIO, size: int) -> None:
            real_truncate(io, size)
            if io.path == target:
                ops.append(("t", size, b""))

        def ensure_size(io: FileIO, size: int) -> None:
            real_ensure(io, size)
            if io.path == target:
                ops.append(("t", io.size(), b""))

        monkeypatch.setattr(FileIO, "pwrite", pwrite)
        monkeypatch.setattr(FileIO, "sync", sync)
        monkeypatch.setattr(FileIO, "truncate", truncate)
        monkeypatch.setattr(FileIO, "ensure_size", ensure_size)


def _apply(image: bytearray, op: tuple[str, int, bytes], torn: int | None = None) -> None:
    kind, arg, data = op
    if kind == "w":
        if torn is not None:
            data = data[: torn * 512]
        end = arg + len(data)
        if end > len(image):
            image.extend(bytes(end - len(image)))
        image[arg:end] = data
    elif kind == "t":
        if arg < len(image):
            del image[arg:]
        else:
            image.extend(bytes(arg - len(image)))


def crash_states(
    base: bytes, ops: list[tuple[str, int, bytes]], rnd: random.Random, per_point: int
) -> Iterator[bytes]:
    """Disk images a power loss could leave: at each op, everything up to
    the last sync, plus random subsets (some torn) of the ops after it."""
    synced = bytearray(base)
    pending: list[tuple[str, int, bytes]] = []
    for op in ops:
        if op[0] == "s":
            for p in pending:
                _apply(synced, p)
            pending = []
            continue
        pending.append(op)
        for _ in range(per_point):
            image = bytearray(synced)
            for p in pending:
                if rnd.random() < 0.5:
                    continue
                torn = None
                if p[0] == "w" and len(p[2]) > 512 and rnd.random() < 0.3:
                    torn = rnd.randrange(len(p[2]) // 512)
                _apply(image, p, torn)
            yield bytes(image)


@pytest.mark.parametrize("synced", [True, False], ids=["synced", "nosync"])
def test_power_loss_states_open_to_a_commit_with_the_same_contents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synced: bool
) -> None:
    path = generated(tmp_path / "p.db", 512, synced=synced, seed=3, leaves=20)
    before = contents(path)
    base = path.read_bytes()
    rec = Recorder(monkeypatch, path)
    result = compact_file(path, batch=6)
    monkeypatch.undo()
    assert result.commits >= 5
    syncs = sum(1 for op in rec.ops if op[0] == "s")
    assert syncs >= 2 * result.commits
    rnd = random.Random(f"power-{synced}")
    image_path = tmp_path / "image.db"
    states = 0
    txids = set()
    per_point = 12 if thorough() else 3
    for image in crash_states(base, rec.ops, rnd, per_point):
        image_path.write_bytes(image)
        info = inspect(image_path)
        assert info["problems"] == [], (states, info["problems"])
        assert contents(image_path) == before, states
        txids.add(info["meta"].txid)
        states += 1
    assert states >= 50
    assert len(txids) >= result.commits  # states of every commit were reached
    # and the final image is the compacted file
    shutil.copy(path, image_path)
    verify_compacted(image_path, before, synced)


def test_another_writer_between_commits_stops_the_compaction(tmp_path: Path) -> None:
    path = real_file(tmp_path, "synced-array.db")
    before = contents(path)
    with PageFile.open(path, freelist="hashmap:first-fit", reachable=bbolt.reachable) as pf:

        def meddle(commits: int, _moved: int, _total: int) -> None:
            if commits == 1:
                with pf.update():
                    pass

        with pytest.raises(TransactionError, match="another writer committed"):
            compact(pf, batch=8, on_commit=meddle)
    assert inspect(path)["problems"] == []
    assert contents(path) == before


class Failing(RunList):
    """A describer whose listing fails with an exception of its own."""

    def children(self, read: Any, pgid: int, pages: int) -> list[tuple[int, int, int]]:  # noqa: ARG002
        raise ValueError("not my format")


def test_a_failing_describer_raises_a_library_error(tmp_path: Path) -> None:
    path = real_file(tmp_path, "synced-array.db")
    raw = path.read_bytes()
    with PageFile.open(path, reachable=bbolt.reachable) as pf:
        with pytest.raises(ReachabilityError, match="describer failed"):
            compact(pf, Failing())
        with pytest.raises(ReachabilityError):
            plan(pf, Failing())
    assert path.read_bytes() == raw


def _damage_root_not_a_tree_page(path: Path) -> None:
    """Zero the root page: the tree walk stops on a page that is not a tree page."""
    with PageFile.open(path, readonly=True) as pf:
        ps, root = pf.page_size, pf.meta.root
    with open(path, "r+b") as f:
        f.seek(root * ps)
        f.write(bytes(ps))


@pytest.mark.parametrize("damage", [_damage_root_not_a_tree_page, _damage_branch_to_free_page])
@pytest.mark.parametrize(
    "extra", [[], ["--dry-run"], ["COPY"]], ids=["in-place", "dry-run", "copy"]
)
def test_the_cli_refuses_a_damaged_file_with_status_1(
    tmp_path: Path, damage: Any, extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = real_file(tmp_path, "synced-array.db")
    damage(path)
    raw = path.read_bytes()
    copy = tmp_path / "copy.db"
    args = [str(copy) if a == "COPY" else a for a in extra]
    assert main(["compact", str(path), *args, "--no-progress"]) == 1
    assert "refused, the file has problems" in capsys.readouterr().out
    assert path.read_bytes() == raw
    assert not copy.exists()


@pytest.mark.parametrize(
    "args",
    [["--dry-run", "DST"], ["--dry-run", "--batch", "8"], ["DST", "--batch", "8"]],
    ids=["dry-run-with-dst", "dry-run-with-batch", "copy-with-batch"],
)
def test_the_cli_refuses_options_with_no_effect(
    tmp_path: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = real_file(tmp_path, "synced-array.db")
    raw = path.read_bytes()
    dst = tmp_path / "copy.db"
    argv = [str(dst) for a in args if a == "DST"] + [a for a in args if a != "DST"]
    assert main(["compact", str(path), *argv]) == 2
    err = capsys.readouterr().err
    assert "no DST" in err or "has an effect only" in err
    assert path.read_bytes() == raw
    assert not dst.exists()
