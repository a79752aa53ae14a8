"""The freelist log format: round trips, conversions, bytes per commit, damage."""

from __future__ import annotations

import random
import struct
from array import array
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from freelist import (
    DoubleFreeError,
    FileIOError,
    FreelistPageError,
    NoValidMetaError,
    PageFile,
    PageFileArgumentError,
    PageFileTypeError,
    freelog,
    persist,
    registry,
    runs,
)
from freelist._shared import SharedFreelist
from freelist.layout import (
    FREELIST_LOG_PAGE,
    LOG_VERSION,
    META_FLAG_FREELIST_LOG,
    VERSION,
    Meta,
)
from freelist.persist import freemap
from freelist.runs import run_chunks, runs_of

PS = 1024
SPECS = list(registry.builtin_specs())

Runs = list[tuple[int, int]]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests that open a file (those taking ``path``) run with both replays; the
    others (the replay functions on bytes) do not open a file, so the way an
    open replays cannot matter to them: they run once."""
    if "path" in metafunc.fixturenames:
        metafunc.parametrize("replay_onto", ["free-map", "dict"], indirect=True)


@pytest.fixture(autouse=True)
def replay_onto(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test here that opens a file runs with both ways an open replays
    the records: onto a free map (a byte per page; what files of up to 2**20
    pages use, so every file here) and onto a dictionary of the pages the
    records name (big files with few free pages)."""
    param = getattr(request, "param", "free-map")
    if param == "free-map":
        yield param
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(persist.freemap, "free_map_fits", lambda _hwm, _bytes: False)
        yield param


def churn(pf: PageFile, live: Runs, commits: int, seed: int) -> list[int]:
    """Seed-like commits: allocate a few runs, free a few live ones; the root is
    the first live page.  Returns the pages changed per commit."""
    r = random.Random(seed)
    changed = []
    for _ in range(commits):
        n = 0
        with pf.update() as tx:
            for _ in range(r.randint(0, 4)):
                k = r.choice([1, 1, 2, 3])
                live.append((tx.allocate(k), k))
                n += k
            r.shuffle(live)
            for _ in range(r.randint(0, 3)):
                if len(live) > 1:
                    s, k = live.pop()
                    tx.free(s, k)
                    n += k
            live.sort()
            tx.root = live[0][0] if live else 0
        changed.append(n)
    return changed


def walk_of(live: Runs) -> Callable[[PageFile], Runs]:
    return lambda _pf: list(live)


def read_meta(path: Path, page: int) -> Meta:
    raw = path.read_bytes()
    return Meta.unpack(raw, page * PS)[0]


def newest(path: Path) -> Meta:
    return max((read_meta(path, p) for p in (0, 1)), key=lambda m: m.txid)


def poke(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(data)


@pytest.mark.parametrize("spec", SPECS)
def test_round_trip_every_freelist(path: Path, spec: str, replay_onto: str) -> None:
    live: Runs = []
    with PageFile.open(path, freelist=spec, freelist_format="log", page_size=PS) as pf:
        churn(pf, live, 120, seed=1)
        assert pf.check(walk_of(live)) == []
        want = pf.freelist.all_page_ids()
        about = persist.describe(pf._state.io, pf.meta)
        assert about["format"] == "log"
        assert about["errors"] == []
    with PageFile.open(path, freelist=spec, freelist_format="log") as pf:
        assert pf.freelist.all_page_ids() == want
        fl = pf.freelist
        assert isinstance(fl, SharedFreelist)
        # The replay's free map became the freelist's page map (with the
        # free map; the dict replay leaves it to be built at its first use).
        assert fl._map_stale == (replay_onto == "dict")
        fl._check()
        assert fl.freed(want[0])
        assert not fl.freed(pf.meta.root)
        fl._check()
        assert pf.check(walk_of(live)) == []
        churn(pf, live, 40, seed=2)  # the chain read back is extended
        fl._check()
        assert pf.check(walk_of(live)) == []
    with PageFile.open(path, freelist=spec, freelist_format="log") as pf:
        assert pf.check(walk_of(live)) == []


def test_checkpoints_and_chain(path: Path) -> None:
    """Record runs accumulate until they pass the checkpoint's size (or a
    page), then a checkpoint replaces the chain."""
    live: Runs = []
    seen_ckpt, longest = set(), 0
    with PageFile.open(path, freelist_format="log", page_size=512) as pf:
        with pf.update() as tx:
            live.append((tx.allocate(400), 400))
        for i in range(150):
            churn(pf, live, 1, seed=i)
            about = persist.describe(pf._state.io, pf.meta)
            seen_ckpt.add(about["checkpoint_txid"])
            longest = max(longest, about["chain_runs"])
            assert about["log_bytes"] <= max(about["checkpoint_bytes"], 512)
            assert about["checkpoint_age"] == pf.meta.txid - about["checkpoint_txid"]
        assert pf.check(walk_of(live)) == []
    assert len(seen_ckpt) > 3
    assert longest > 2  # sealed record runs, not only the rewritten tail


def test_bytes_per_commit(path: Path) -> None:
    """Amortised over many commits (checkpoints included), the log writes at
    most 64 bytes per page changed plus one page; the bbolt page rewrites the
    whole list."""
    live: Runs = []
    with PageFile.open(path, freelist_format="log", page_size=PS) as pf:
        with pf.update() as tx:
            big = tx.allocate(2000)
        with pf.update() as tx:
            for p in range(big, big + 2000, 2):  # 1000 free pages, all apart
                tx.free(p, 1)
            live += [(p, 1) for p in range(big + 1, big + 2000, 2)]
        start = pf.stats().freelist_bytes_total
        ckpt = persist.describe(pf._state.io, pf.meta)["checkpoint_txid"]
        changed = churn(pf, live, 250, seed=3)
        assert persist.describe(pf._state.io, pf.meta)["checkpoint_txid"] != ckpt
        log_total = pf.stats().freelist_bytes_total - start
        assert pf.stats().freelist_bytes_last > 0
        assert pf.check(walk_of(live)) == []
    assert log_total <= 64 * sum(changed) + PS * len(changed)
    with PageFile.open(path, freelist_format="bbolt") as pf:
        churn(pf, live, 5, seed=4)
        assert pf.stats().freelist_bytes_last >= 8 * pf.freelist.count > 3000


@pytest.mark.parametrize("kind", ["hashmap", "array"])
def test_convert_between_formats(path: Path, kind: str) -> None:
    live: Runs = []
    walk = walk_of(live)
    for i, fmt in enumerate(["log", "bbolt", "log", "none", "log", "none", "bbolt", "log"]):
        with PageFile.open(
            path, freelist=kind, freelist_format=fmt, reachable=walk, page_size=PS
        ) as pf:
            assert pf.check(walk) == []
            churn(pf, live, 3, seed=i)
            assert pf.stats().freelist_format == fmt
            assert pf.check(walk) == []
        m0, m1 = read_meta(path, 0), read_meta(path, 1)
        if fmt == "log":
            # Both metas name log states: bbolt refuses the file ("version mismatch").
            for m in (m0, m1):
                assert (m.version, m.flags) == (LOG_VERSION, META_FLAG_FREELIST_LOG)
        else:
            top = newest(path)
            assert (top.version, top.flags) == (VERSION, 0)


def test_converting_commit_writes_both_metas(path: Path) -> None:
    with PageFile.open(path, page_size=PS) as pf, pf.update():
        pass
    assert {read_meta(path, p).version for p in (0, 1)} == {VERSION}
    with PageFile.open(path, freelist_format="log") as pf, pf.update():
        pass
    assert [read_meta(path, p) for p in (0, 1)] == [newest(path)] * 2


def test_arguments(path: Path) -> None:
    with pytest.raises(PageFileArgumentError, match="freelist_format must be one of"):
        PageFile.open(path, freelist_format="lsm")
    with pytest.raises(PageFileTypeError, match="freelist_format must be a str"):
        PageFile.open(path, freelist_format=1)  # type: ignore[arg-type]
    with pytest.raises(PageFileArgumentError, match="sync_freelist=False"):
        PageFile.open(path, freelist_format="log", sync_freelist=False)
    assert not path.exists()
    with PageFile.open(path, freelist_format="none", sync_freelist=False) as pf:
        assert pf.stats().freelist_format == "none"
    with PageFile.open(path, sync_freelist=False, reachable=lambda _pf: []) as pf:
        assert pf.stats().freelist_format == "none"


def test_failed_commit_leaves_the_chain(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit whose sync fails is rolled back; the log must extend the chain
    the last durable commit left, not the one the failed commit wrote."""
    live: Runs = []
    with PageFile.open(path, freelist_format="log", page_size=PS) as pf:
        churn(pf, live, 5, seed=5)
        io = pf._state.io
        real = io.sync
        monkeypatch.setattr(io, "sync", lambda: (_ for _ in ()).throw(FileIOError("x", "boom")))
        with pytest.raises(FileIOError), pf.update() as tx:
            tx.free(*live[-1])
        monkeypatch.setattr(io, "sync", real)
        churn(pf, live, 3, seed=6)  # the same open goes on from the durable chain
        assert pf.check() == []
    with PageFile.open(path, freelist_format="log") as pf:
        assert pf.check() == []


# ----------------------------------------------------------------------
# Damage.


def log_file(path: Path, commits: int = 30) -> tuple[Runs, Meta]:
    live: Runs = []
    with PageFile.open(path, freelist_format="log", page_size=PS) as pf:
        churn(pf, live, commits, seed=7)
        meta = pf.meta
    return live, meta


def chain_of(path: Path) -> list[freelog.LogRun]:
    raw = path.read_bytes()
    meta = newest(path)
    out, pgid = [], meta.freelist
    while pgid:
        run = freelog.unpack_run(raw, pgid, PS, meta.hwm)
        out.append(run)
        pgid = run.prev
    return out


def find_log_file(path: Path) -> tuple[Runs, Meta]:
    """A log file whose newest chain has a record run and whose head differs
    from the older meta's head (so a damaged head can fall back)."""
    for commits in range(20, 80):
        path.unlink(missing_ok=True)
        live, meta = log_file(path, commits)
        older = read_meta(path, 1 - meta.txid % 2)
        if chain_of(path)[0].kind == freelog.RECORDS and older.freelist != meta.freelist:
            return live, meta
    raise AssertionError("no such file")


def test_bad_checksum_falls_back_to_the_older_meta(path: Path) -> None:
    _live, meta = find_log_file(path)
    poke(path, meta.freelist * PS + freelog.HEADER_SIZE, b"\xff\xff")  # a flipped record
    with PageFile.open(path, freelist_format="log") as pf:
        assert pf.meta.txid == meta.txid - 1
        assert pf.check() == []
        assert persist.describe(pf._state.io, meta)["errors"]  # the newer chain's damage
    # Both chains damaged: a clear error naming the page and the repair path.
    older = read_meta(path, 1 - meta.txid % 2)
    poke(path, older.freelist * PS + 8, b"\x00")  # the flags of the older head
    with pytest.raises(FreelistPageError, match=rf"freelist log page {meta.freelist} .*reachable="):
        PageFile.open(path, freelist_format="log")


def test_damaged_chain_repaired_from_a_walk(path: Path) -> None:
    live, _meta = log_file(path)
    for p in (0, 1):
        m = read_meta(path, p)
        poke(path, m.freelist * PS + 20, b"\0\0\0\0")  # the crc
    with pytest.raises(FreelistPageError, match="fails its checksum"):
        PageFile.open(path, freelist_format="log")
    walk = walk_of(live)
    with PageFile.open(path, freelist_format="log", reachable=walk) as pf:
        with pf.update():
            pass  # a checkpoint replaces the damaged chain
        assert pf.check(walk) == []
    with PageFile.open(path, freelist_format="log") as pf:
        assert pf.check(walk) == []


def rewrite_head(path: Path, **change: object) -> tuple[Meta, freelog.LogRun]:
    """Rewrite the newest meta's head run with fields changed, checksum valid,
    and point both metas at it (so no fallback hides the damage)."""
    meta = newest(path)
    head = chain_of(path)[0]
    fields = {"kind": head.kind, "prev": head.prev, "txid": head.txid, "payload": head.payload}
    fields.update(change)
    poke(path, head.pgid * PS, freelog.pack_run(head.pgid, head.pages, PS, **fields))  # type: ignore[arg-type]
    for p in (0, 1):
        m = Meta(
            PS,
            meta.root,
            meta.freelist,
            meta.hwm,
            meta.txid - p,
            meta.flags,
            0,
            version=meta.version,
        )
        raw = bytearray(m.pack_page(PS))
        raw[0:8] = ((meta.txid - p) % 2).to_bytes(8, "little")
        poke(path, ((meta.txid - p) % 2) * PS, bytes(raw))
    return meta, head


def test_record_past_the_high_water_mark(path: Path) -> None:
    find_log_file(path)
    meta = newest(path)
    bad = freelog.encode_records([(meta.hwm - 1, 2)], freelog.FREE)
    head = chain_of(path)[0]
    rewrite_head(path, payload=head.payload + bad)
    k = len(head.payload) // freelog.RECORD.size
    with pytest.raises(
        FreelistPageError,
        match=rf"log page {head.pgid}: record {k} names pages {meta.hwm - 1}\+2 .*high-water",
    ):
        PageFile.open(path, freelist_format="log")


def test_a_bad_record_is_named_in_its_own_run(path: Path) -> None:
    """Runs are replayed in batches; the error still names the run that holds
    the bad record and its index there."""
    live: Runs = []
    with PageFile.open(path, freelist_format="log", page_size=PS) as pf:
        with pf.update() as tx:
            big = tx.allocate(12_000)
        with pf.update() as tx:
            for p in range(big, big + 12_000, 2):  # a 48 KB checkpoint
                tx.free(p, 1)
            live += [(p, 1) for p in range(big + 1, big + 12_000, 2)]
        for seed in range(400):
            churn(pf, live, 1, seed=seed)
            if persist.describe(pf._state.io, pf.meta)["chain_runs"] >= 5:
                break
    chain = chain_of(path)
    assert len(chain) >= 5
    meta = newest(path)
    victim = chain[2]  # an older, sealed record run, in a batch with the others
    assert victim.kind == freelog.RECORDS
    bad = freelog.RECORD.pack(meta.hwm - 1, 2 << 1 | freelog.FREE)
    payload = victim.payload[: freelog.RECORD.size] + bad + victim.payload[2 * 16 :]
    fields = {"kind": victim.kind, "prev": victim.prev, "txid": victim.txid}
    poke(path, victim.pgid * PS, freelog.pack_run(victim.pgid, 1, PS, payload=payload, **fields))
    with pytest.raises(
        FreelistPageError,
        match=rf"log page {victim.pgid}: record 1 names pages {meta.hwm - 1}\+2 ",
    ):
        PageFile.open(path, freelist_format="log")


def test_truncated_chain(path: Path) -> None:
    find_log_file(path)
    rewrite_head(path, prev=0)
    with pytest.raises(FreelistPageError, match="ends without a checkpoint"):
        PageFile.open(path, freelist_format="log")


def test_chain_pointing_at_a_data_page(path: Path) -> None:
    live, _ = find_log_file(path)
    poke(path, live[0][0] * PS, b"data" * (PS // 4))  # (the test never wrote it)
    rewrite_head(path, prev=live[0][0])
    with pytest.raises(FreelistPageError, match="is not a freelist log page"):
        PageFile.open(path, freelist_format="log")


def test_stale_page(path: Path) -> None:
    find_log_file(path)
    top = newest(path)
    rewrite_head(path, txid=top.txid + 5)
    with pytest.raises(FreelistPageError, match="stale page"):
        PageFile.open(path, freelist_format="log")


def test_torn_run(path: Path) -> None:
    """A run cut short (its second half never written) fails its checksum."""
    live: Runs = []
    with PageFile.open(path, freelist_format="log", page_size=PS) as pf:
        with pf.update() as tx:
            big = tx.allocate(1000)
        with pf.update() as tx:
            for p in range(big, big + 1000, 2):
                tx.free(p, 1)  # a commit whose records take several pages
        live += [(p, 1) for p in range(big + 1, big + 1000, 2)]
    head = chain_of(path)[0]
    assert head.pages > 1
    poke(path, (head.pgid + head.pages - 1) * PS, bytes(PS))
    other = read_meta(path, 1 - newest(path).txid % 2)
    if other.freelist != head.pgid:  # no fallback
        poke(path, other.freelist * PS + 20, b"\0\0\0\0")
    with pytest.raises(FreelistPageError, match=rf"page {head.pgid} fails its checksum"):
        PageFile.open(path, freelist_format="log")


def test_meta_flag_without_log_version(path: Path) -> None:
    with PageFile.open(path, page_size=PS):
        pass
    for p in (0, 1):
        m = read_meta(path, p)
        bad = Meta(PS, 0, m.freelist, m.hwm, m.txid, META_FLAG_FREELIST_LOG, 0)
        raw = bytearray(bad.pack_page(PS))
        raw[0:8] = p.to_bytes(8, "little")
        poke(path, p * PS, bytes(raw))
    with pytest.raises(NoValidMetaError, match="freelist-log flag"):
        PageFile.open(path)


def test_log_page_layout(path: Path) -> None:
    find_log_file(path)
    raw = path.read_bytes()
    head = chain_of(path)[0]
    pid, flags, count, overflow = struct.unpack_from("<QHHI", raw, head.pgid * PS)
    assert (pid, flags, count, overflow) == (head.pgid, FREELIST_LOG_PAGE, 0, head.pages - 1)
    assert len(head.payload) % freelog.RECORD.size == 0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(2, 60), st.integers(1, 4), st.integers(0, 1)), max_size=40),
    st.lists(st.integers(2, 63), unique=True),
)
def test_replay_matches_a_plain_replay(
    records: list[tuple[int, int, int]], base: list[int]
) -> None:
    """The C-level replay (one-page records in bulk, longer ones in order)
    gives what replaying every record in order does."""
    payload = b"".join(freelog.RECORD.pack(s, n << 1 | op) for s, n, op in records)
    state: dict[int, int] = {}
    assert persist.log._replay(payload, state, 64) == -1
    want: dict[int, int] = {}
    for s, n, op in records:
        for p in range(s, s + n):
            want[p] = op
    assert state == want
    ids = sorted(base)
    expect = sorted(
        (set(ids) - {p for p, o in want.items() if not o}) | {p for p, o in want.items() if o}
    )
    if state:
        assert persist.log._apply(array("Q", ids), state) == expect
    pm = persist.FreeMap(64)
    pm.load(ids)
    assert pm.replay(payload) == -1
    assert list(pm) == expect
    assert len(pm) == len(expect)
    # runs, as the hashmap is built from them: starts and lengths, maximal
    assert _flat(pm.runs()) == _flat(run_chunks(expect))
    assert _flat(pm.runs()) == [(s, n) for s, n in runs_of(expect)]
    assert all((p in pm) == (p in expect) for p in range(-1, 66))
    for s, n, _ in records:
        assert pm.first_in(s, n) == next((p for p in expect if s <= p < s + n), -1)


def _flat(chunks: Iterable[tuple[list[int], list[int]]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for starts, lens in chunks:
        assert len(starts) == len(lens)
        out += zip(starts, lens, strict=True)
    return out


@settings(max_examples=300, deadline=None)
@given(
    st.sets(st.integers(2, 63)),
    st.integers(1, 70),
    st.integers(2, 64),
)
def test_runs_come_whole_across_chunks(pages: set[int], chunk: int, hwm: int) -> None:
    """Runs that cross a chunk's end (of the free map's pages, or of the
    ids) come out whole, once, in order, from both groupings."""
    pages = {p for p in pages if p < hwm}
    want: list[tuple[int, int]] = []  # grouped page by page
    for p in sorted(pages):
        if want and sum(want[-1]) == p:
            want[-1] = (want[-1][0], want[-1][1] + 1)
        else:
            want.append((p, 1))
    saved = (freemap.RUN_CHUNK, runs.RUN_CHUNK)
    freemap.RUN_CHUNK = runs.RUN_CHUNK = chunk
    try:
        fm = persist.FreeMap(hwm)
        fm.load(sorted(pages))
        assert _flat(fm.runs()) == want
        assert _flat(run_chunks(iter(sorted(pages)))) == want
    finally:
        freemap.RUN_CHUNK, runs.RUN_CHUNK = saved


def test_replay_refuses_a_record_past_the_high_water_mark() -> None:
    state: dict[int, int] = {}
    for replay in (
        lambda payload: persist.log._replay(payload, state, 64),
        persist.FreeMap(64).replay,
    ):
        payload = freelog.encode_records([(5, 1), (60, 5)], freelog.FREE)
        assert replay(payload) == 1
        payload = freelog.encode_records([(64, 1)], freelog.TAKE)
        assert replay(payload) == 0
        payload = freelog.encode_records([(7, 2), (3, 1), (1, 1)], freelog.TAKE)
        assert replay(payload) == 2
        payload = freelog.RECORD.pack(9, 0 << 1 | 1)  # a record of no pages
        assert replay(payload) == 0
    assert state == {}  # a bad record leaves the state as it was
    pm = persist.FreeMap(64)
    pm.load([10, 11])
    assert pm.replay(freelog.encode_records([(10, 1), (70, 1)], freelog.TAKE)) == 1
    assert list(pm) == [10, 11]


def test_a_free_map_longer_than_the_page_map_may_be(path: Path, replay_onto: str) -> None:
    """A few long free runs far into the file: the replay's free map is cut to
    the hashmap's page-map bound (which follows its runs) and the pages past
    it are answered by the runs, after open as before."""
    with PageFile.open(path, freelist_format="log", page_size=512) as pf:
        with pf.update() as tx:
            start = tx.allocate(20_000)
        with pf.update() as tx:
            tx.free(start + 12_000, 3_000)
            tx.free(start + 16_000, 3_000)
            tx.root = start
        want = pf.freelist.all_page_ids()
    with PageFile.open(path, freelist="hashmap", freelist_format="log") as pf:
        fl = pf.freelist
        assert isinstance(fl, SharedFreelist)
        assert fl.all_page_ids() == want
        assert fl._map_stale == (replay_onto == "dict")
        fl._check()
        assert fl.freed(want[-1])
        assert fl._far
        assert len(fl._map) < want[-1]
        with (
            pytest.raises(DoubleFreeError, match=f"page {want[-1]} is already free"),
            pf.update() as tx,
        ):
            tx.free(want[-1])
        fl._check()
