"""Traces: parsing, writing, generation, replay, and fidelity to bbolt."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from freelist import ArrayFreelist, HashmapFreelist, TraceError
from freelist.trace import SCENARIOS, Trace, free_sha256, generate, parse, read, replay

DATA = Path(__file__).parent / "data" / "fidelity"
EXPECTED = json.loads((DATA / "expected-array.json").read_text())["traces"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_array_reproduces_bbolt_exactly(name: str) -> None:
    result = replay(read(DATA / name), "array")
    want = EXPECTED[name]
    got = {
        k: getattr(result, k) for k in ("ops", "final_hwm", "free_count", "grown", "free_sha256")
    }
    assert got == {k: want[k] for k in got}


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("policy", ["best-fit", "bbolt"])
def test_hashmap_replays_fidelity_traces_soundly(name: str, policy: str) -> None:
    trace = read(DATA / name)
    fl = HashmapFreelist(trace.free_ids(), policy=policy)  # type: ignore[arg-type]
    result = replay(trace, lambda _ids: fl)
    fl._check()
    assert result.free_count == fl.free_count
    array = replay(trace, "array")
    # best fit never grows the file more than first fit on these traces
    if policy == "best-fit":
        assert result.final_hwm <= array.final_hwm
        assert result.spans <= array.spans


def test_sha256_format() -> None:
    assert free_sha256([2, 10]) == free_sha256(iter([2, 10]))
    assert free_sha256([2, 10]) == hashlib.sha256(b"2\n10\n").hexdigest()
    assert free_sha256([]) == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_generated_traces_round_trip_and_replay(scenario: str, tmp_path: Path) -> None:
    trace = generate(scenario, 1500, 120, seed=3)
    assert trace.ops
    assert generate(scenario, 1500, 120, seed=3).ops == trace.ops, "not deterministic"
    path = tmp_path / "t.trace"
    trace.save(path)
    again = read(path)
    assert (again.hwm, again.spans, again.ops) == (trace.hwm, trace.spans, trace.ops)
    a = replay(again, "array")
    h = replay(again, "hashmap")
    assert a.ops == h.ops == len(trace.ops)
    assert a.total_ns >= a.alloc_ns + a.free_ns + a.commit_ns - 10**6
    # best fit keeps the file within 2% of first fit (the fragmentation target)
    grown_a = a.final_hwm - trace.hwm
    assert h.final_hwm - trace.hwm <= grown_a + max(2, 0.02 * trace.hwm)


def test_seed_scenario_shape() -> None:
    trace = generate("seed", 4000, 400, seed=1)
    sizes = [n for _, n in trace.spans]
    assert set(sizes) <= {1, 2}
    assert sum(sizes) == 4000
    assert 3 * 4000 < trace.hwm < 5 * 4000, "the file is about 4x the free pages"
    allocs = [a for code, a, _ in trace.ops if code == "A"]
    one_page = sum(1 for a in allocs if a == 1) / len(allocs)
    assert 0.85 < one_page < 0.95
    assert max(allocs) <= 16
    freed = sum(b for code, _, b in trace.ops if code == "D") + sum(
        allocs[a] for code, a, _ in trace.ops if code == "F"
    )
    assert 0.5 < freed / sum(allocs) < 2.0, "each transaction frees about what it allocates"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("S 2 1\n", "must start with 'H"),
        ("H 10\nH 12\n", "second 'H'"),
        ("H 10\nS 2\n", "takes 2 number"),
        ("H 10\nS 2 x\n", "not a whole number"),
        ("H 10\nS 4 1\nS 3 1\n", "out of order"),
        ("H 10\nS 8 4\n", "passes the high-water mark"),
        ("H 10\nA 0\n", "cannot allocate 0"),
        ("H 10\nF 0\n", "does not exist"),
        ("H 10\nA 1\nF 0\nF 0\n", "already freed"),
        ("H 10\nD 9 2\n", "outside the file"),
        ("H 10\nD 1 1\n", "outside the file"),
        ("H 10\nX 1\n", "unknown operation"),
        ("H 10\nA 1\nS 2 1\n", "after the first operation"),
        ("", "no 'H' line"),
    ],
)
def test_parse_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(TraceError, match=message) as info:
        parse(text.splitlines(), name="t")
    if text:
        assert f"t:{len(text.splitlines())}:" in str(info.value)


def test_comments_and_blank_lines_are_skipped() -> None:
    trace = parse(["# a comment", "H 10", "", "S 2 2", "A 1", "C"])
    assert trace.spans == [(2, 2)]
    assert trace.lines == [5, 6]


def test_replay_reports_the_line_of_a_refused_free() -> None:
    trace = parse(["H 20", "S 2 2", "A 1", "C", "D 5 1", "D 5 1"])
    with pytest.raises(TraceError, match="line 6"):
        replay(trace, "hashmap")


def test_replay_grows_at_the_high_water_mark() -> None:
    trace = parse(["H 10", "S 4 1", "A 2", "A 1", "A 1", "F 0", "C", "A 2"])
    result = replay(trace, ArrayFreelist)
    # A 2 grows (10, 11); A 1 takes 4; A 1 grows (12); F 0 frees 10-11; A 2 reuses them
    assert (result.grown, result.final_hwm, result.free_count) == (2, 13, 0)


def test_replay_with_sync_gives_the_same_result() -> None:
    trace = generate("seed", 3000, 100, seed=2)
    for kind in ("array", "hashmap"):
        plain = replay(trace, kind)
        synced = replay(trace, kind, sync=True)
        assert synced.sync
        assert (plain.final_hwm, plain.free_sha256) == (synced.final_hwm, synced.free_sha256)


def test_read_errors(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot read"):
        read(tmp_path / "missing.trace")
    (tmp_path / "bin.trace").write_bytes(b"H 10\n\xff\xfe\n")
    with pytest.raises(TraceError):
        read(tmp_path / "bin.trace")
    with pytest.raises(TraceError, match="cannot write"):
        Trace(10).save(tmp_path / "no" / "such" / "dir.trace")


def test_generate_rejects_bad_arguments() -> None:
    with pytest.raises(TraceError, match="unknown scenario"):
        generate("nope", 10, 10)
    with pytest.raises(TraceError):
        generate("seed", 0, 10)
