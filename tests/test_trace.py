"""Traces: parsing, writing, generation, replay, and fidelity to bbolt."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from freelist import ArrayFreelist, HashmapFreelist, TraceError
from freelist.cli import main
from freelist.trace import (
    MAX_TRACE_PAGES,
    SCENARIOS,
    Trace,
    free_sha256,
    generate,
    parse,
    read,
    replay,
)

from .bboltfile import watchdog

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


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_first_fit_reproduces_bbolt_exactly(name: str) -> None:
    """The first-fit hashmap makes the array's choices, so bbolt's results."""
    trace = read(DATA / name)
    fl = HashmapFreelist(trace.free_ids(), policy="first-fit")
    result = replay(trace, lambda _ids: fl)
    fl._check()
    want = EXPECTED[name]
    got = {
        k: getattr(result, k) for k in ("ops", "final_hwm", "free_count", "grown", "free_sha256")
    }
    assert got == {k: want[k] for k in got}
    assert replay(trace, "hashmap:first-fit").free_sha256 == want["free_sha256"]


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
        ("H 10\nS 4 2\nD 5 1\n", "overlaps the initial free run 4\\+2"),
        ("H 10\nS 4 2\nD 2 3\n", "overlaps the initial free run"),
        ("H 20\nD 3 1\nC\nD 3 1\n", "page 3 was already freed by an earlier D"),
        ("H 20\nD 3 4\nC\nD 6 2\n", "page 6 was already freed by an earlier D"),
        ("H 10\nC 1\n", "takes no numbers"),
        ("H\n", "takes 1 number"),
        ("H 1\n", "below 2"),
        ("H 10\nS 2 0\n", "below 1"),
        ("H 10\nD 3 0\n", "below 1"),
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


def _holding(kind: str, page: int) -> Callable[[list[int]], ArrayFreelist | HashmapFreelist]:
    """A factory whose freelist already holds ``page`` pending (freed by txid 1,
    so the trace's first commit, txid 2, makes it free).

    A trace that parses cannot free a page twice by itself (parse refuses a
    repeated F or D), so a refusal at replay needs a freelist that knows more
    than the trace: here one page the trace thinks is in use.
    """

    def make(ids: list[int]) -> ArrayFreelist | HashmapFreelist:
        fl = ArrayFreelist(ids) if kind == "array" else HashmapFreelist(ids)
        fl.free(1, page)
        return fl

    return make


@pytest.mark.parametrize("kind", ["array", "hashmap"])
def test_replay_reports_file_and_line_of_a_refused_free(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.trace"
    path.write_text("H 12\nS 2 2\n# a comment\nA 1\nC\nD 8 3\n")
    trace = read(path)
    assert [op[0] for op in trace.ops] == ["A", "C", "D"]  # it parses
    with pytest.raises(TraceError) as info:
        replay(trace, _holding(kind, 9))
    message = str(info.value)
    assert message.startswith(f"{path}:6: D 8 3: "), message
    assert "page 9 is already free" in message


@pytest.mark.parametrize("kind", ["array", "hashmap"])
def test_refused_operation_changes_nothing(kind: str) -> None:
    # D 8 3 covers pages 8, 9 and 10; page 9 is free already, so the whole
    # free is refused and neither 8 nor 10 becomes pending.
    trace = parse(["H 12", "S 2 2", "A 1", "C", "D 8 3"])
    made: list[ArrayFreelist | HashmapFreelist] = []

    def factory(ids: list[int]) -> ArrayFreelist | HashmapFreelist:
        made.append(_holding(kind, 9)(ids))
        return made[0]

    with pytest.raises(TraceError):
        replay(trace, factory)
    (fl,) = made
    assert fl.free_page_ids() == [3, 9]  # page 2 went to the allocation
    assert fl.pending_page_ids() == {}
    fl._check()


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


class _Recorder:
    """Wrap a freelist: record what allocate returns and what page_id_array gives."""

    def __init__(self, fl: ArrayFreelist | HashmapFreelist) -> None:
        self.fl = fl
        self.allocated: list[int] = []
        self.serialised: list[tuple[list[int], list[int], int]] = []

    def allocate(self, txid: int, n: int) -> int:
        s = self.fl.allocate(txid, n)
        self.allocated.append(s)
        return s

    def free(self, txid: int, start: int, n: int = 1) -> None:
        self.fl.free(txid, start, n)

    def release(self, txid: int) -> None:
        self.fl.release(txid)

    def page_id_array(self) -> object:
        pending = sorted(p for ids in self.fl.pending_page_ids().values() for p in ids)
        want = sorted(self.fl.free_page_ids() + pending)
        got = self.fl.page_id_array()
        self.serialised.append((list(got), want, len(pending)))
        return got

    def free_page_ids(self) -> list[int]:
        return self.fl.free_page_ids()

    def free_spans(self) -> list[tuple[int, int]]:
        return self.fl.free_spans()


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("kind", ["array", "hashmap", "bbolt"])
def test_replay_matches_a_model_of_the_file(scenario: str, kind: str) -> None:
    """Every allocation takes free pages, every free gives back in-use pages, and
    the final free set is what a page-by-page model of the file says."""
    trace = generate(scenario, 600, 60, seed=5)
    ids = trace.free_ids()
    fl = (
        ArrayFreelist(ids)
        if kind == "array"
        else HashmapFreelist(ids, policy="best-fit" if kind == "hashmap" else "bbolt")
    )
    rec = _Recorder(fl)
    result = replay(trace, lambda _ids: rec, sync=True)  # type: ignore[arg-type,return-value]
    free = set(ids)
    hwm = trace.hwm
    runs: list[tuple[int, int]] = []
    allocated = iter(rec.allocated)
    for code, a, b in trace.ops:
        if code == "A":
            s = next(allocated)
            if s:
                run = set(range(s, s + a))
                assert run <= free, "allocated pages that were not free"
                free -= run
            else:
                s, hwm = hwm, hwm + a
            runs.append((s, a))
        elif code in "FD":
            s, n = runs[a] if code == "F" else (a, b)
            run = set(range(s, s + n))
            assert not run & free, "freed pages that were free"
            free |= run
    assert result.final_hwm == hwm
    assert fl.free_page_ids() == sorted(free)
    assert result.free_sha256 == free_sha256(sorted(free))
    assert result.spans == len(fl.free_spans())
    fl._check()
    # with sync, each commit wrote the free and the pending ids, sorted
    assert len(rec.serialised) == sum(1 for op in trace.ops if op[0] == "C")
    assert any(pending for _, _, pending in rec.serialised), "pending ids were never written"
    for got, want, _ in rec.serialised:
        assert got == want


def test_seed_trace_keeps_its_mix_when_the_file_is_small() -> None:
    # 300 free pages in a ~1,200-page file: D runs out of in-use pages early and
    # becomes F of live allocations, so transactions keep about 10 operations.
    trace = generate("seed", 300, 600, seed=1)
    commits = sum(1 for op in trace.ops if op[0] == "C")
    assert commits == 600
    assert len(trace.ops) / commits > 8


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


# --- limits: what a trace may ask for (issue 7 bugs 6 and 8) ----------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # 10^12 pages on H/S lines: used to build a list of 10^12 ids (MemoryError)
        ("H 1000000000002\nS 2 1000000000000\n", "more than 67,108,864 pages"),
        (f"H {2**40}\nS 2 900\nS 950 {2**26 - 899}\n", "more than 67,108,864 pages"),
        ("H 10\nA 1000000000000\n", "more than 67,108,864 pages"),
        ("H 1000000000002\nD 2 1000000000000\n", "more than 67,108,864 pages"),
        ("H 1000000000002\nA 40000000\nA 40000000\n", "more than 67,108,864 pages"),
        (f"H {2**64}\n", "not below 2\\*\\*64"),
    ],
)
def test_parse_refuses_traces_past_the_limits(text: str, message: str) -> None:
    with pytest.raises(TraceError, match=message) as info:
        parse(text.splitlines(), name="big.trace")
    assert str(info.value).startswith("big.trace:")


def test_the_limit_itself_is_accepted() -> None:
    trace = parse(["H 100", "S 2 10", f"A {MAX_TRACE_PAGES - 10}"])
    assert trace.ops == [("A", MAX_TRACE_PAGES - 10, 0)]


def test_cli_replay_of_a_huge_trace_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "huge.trace"
    path.write_text("H 1000000000002\nS 2 1000000000000\nA 1\nC\n")
    assert main(["replay", str(path)]) != 0
    err = capsys.readouterr().err
    assert f"{path}:2" in err
    assert "more than" in err
    assert "Traceback" not in err


def test_replay_refuses_a_huge_trace_built_in_memory() -> None:
    # A Trace made without parse: replay checks before building the freelist.
    with pytest.raises(TraceError, match="initial free pages, more than"):
        replay(Trace(10**12 + 2, [(2, 10**12)], [("C", 0, 0)], [1], "mem"), "array")


def test_generate_refuses_more_free_pages_than_the_limit() -> None:
    with pytest.raises(TraceError, match="at most"):
        generate("seed", MAX_TRACE_PAGES + 1, 1)


def test_read_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "trace.fifo"
    os.mkfifo(fifo)
    with watchdog(10, "reading a FIFO"), pytest.raises(TraceError, match="not a regular file"):
        read(fifo)


def test_read_refuses_a_directory(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=str(tmp_path)):
        read(tmp_path)


def test_cli_replay_of_a_fifo_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "trace.fifo"
    os.mkfifo(fifo)
    with watchdog(10, "freelist replay on a FIFO"):
        assert main(["replay", str(fifo)]) != 0
    assert "not a regular file" in capsys.readouterr().err


def test_trace_module_re_exports_the_split_modules() -> None:
    from freelist import replay as replay_mod
    from freelist import scenarios, trace, traceformat

    assert trace.Trace is traceformat.Trace
    assert trace.parse is traceformat.parse
    assert trace.read is traceformat.read
    assert trace.replay is replay_mod.replay
    assert trace.run_ops is replay_mod.run_ops
    assert trace.ReplayResult is replay_mod.ReplayResult
    assert trace.generate is scenarios.generate
    assert trace.SCENARIOS is scenarios.SCENARIOS
    fl = trace.make_freelist("hashmap:bbolt", [2, 3])
    assert isinstance(fl, HashmapFreelist)
    assert fl.policy == "bbolt"
    assert fl.free_page_ids() == [2, 3]
