"""The command line, end to end through main()."""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from freelist import PageFile
from freelist.cli import main

DATA = Path(__file__).parent / "data" / "fidelity"
BBOLT = Path(__file__).parent / "data" / "bbolt"


def test_compare_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--free-pages", "500", "3000", "--txs", "40"]) == 0
    out = capsys.readouterr().out
    assert "seed scenario" in out
    assert "3,000" in out
    assert "speed-up" in out


def test_compare_json_and_plot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    plot = tmp_path / "p.svg"
    args = ["compare", "--free-pages", "800", "--txs", "30", "--repeat", "3"]
    assert main([*args, "--json", "--plot", str(plot), "--sync"]) == 0
    data = json.loads(capsys.readouterr().out)
    (row,) = data["rows"]
    assert row["free_pages"] == 800
    assert row["baseline"] == "array"
    res = row["results"]
    assert list(res) == ["array", "hashmap:best-fit"]
    assert res["array"]["sync"] is True
    assert res["array"]["type"] == "array"
    assert res["hashmap:best-fit"]["policy"] == "best-fit"
    array, hashmap = res["array"], res["hashmap:best-fit"]
    assert hashmap["speedup"] == pytest.approx(array["total_ns"] / hashmap["total_ns"])
    assert array["speedup"] == 1
    assert plot.read_text().lstrip().startswith("<?xml")


def test_compare_any_set_of_freelists(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Three specs side by side; first fit gives the array's results exactly."""
    plot = tmp_path / "p.svg"
    specs = "hashmap:best-fit,array,hashmap:first-fit"
    args = ["compare", "--free-pages", "700", "--txs", "60", "--freelists", specs]
    assert main([*args, "--json", "--plot", str(plot)]) == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    res = row["results"]
    assert list(res) == specs.split(",")
    assert row["baseline"] == "array"
    for key in ("final_hwm", "free_count", "free_sha256", "spans", "largest_span", "free_tail"):
        assert res["hashmap:first-fit"][key] == res["array"][key]
    assert res["hashmap:first-fit"]["policy"] == "first-fit"
    text = plot.read_text()
    assert all(spec in text for spec in specs.split(","))


def test_compare_without_the_array_measures_against_the_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["compare", "--free-pages", "600", "--txs", "20", "--freelists", "hashmap:first-fit"]
    assert main([*args, "--freelists", "hashmap,hashmap:first-fit", "--policy", "bbolt"]) == 0
    out = capsys.readouterr().out
    assert "speed-up: hashmap:bbolt's time / this time" in out
    assert "hashmap:first-fit" in out
    assert "free tail" in out


def test_compare_takes_an_import_path(capsys: pytest.CaptureFixture[str]) -> None:
    spec = "freelist.array:ArrayFreelist"
    args = ["compare", "--free-pages", "500", "--txs", "20", "--json"]
    assert main([*args, "--freelists", f"array,{spec}"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert row["results"][spec]["free_sha256"] == row["results"]["array"]["free_sha256"]


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ("array,hashmap:worst-fit", "worst-fit"),
        ("array,array", "twice"),
        ("nosuch", "unknown freelist"),
        ("array,no.such.module:X", "cannot import"),
    ],
)
def test_compare_refuses_bad_freelists_before_running(
    capsys: pytest.CaptureFixture[str], specs: str, message: str
) -> None:
    assert main(["compare", "--free-pages", "100000000", "--freelists", specs]) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert "generating" not in captured.err


def test_replay_takes_any_spec(capsys: pytest.CaptureFixture[str]) -> None:
    trace = str(DATA / "seed-2000.trace")
    expected = json.loads((DATA / "expected-array.json").read_text())["traces"]["seed-2000.trace"]
    assert main(["replay", trace, "--freelist", "hashmap:first-fit"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["policy"] == "first-fit"
    assert first["free_sha256"] == expected["free_sha256"]
    assert main(["replay", trace, "--freelist", "hashmap", "--policy", "first-fit"]) == 0
    assert json.loads(capsys.readouterr().out)["free_sha256"] == expected["free_sha256"]
    assert main(["replay", trace, "--freelist", "freelist.hashmap:HashmapFreelist"]) == 0
    other = json.loads(capsys.readouterr().out)
    assert other["type"] == "freelist.hashmap:HashmapFreelist"
    assert {"free_tail", "spans"} <= set(other)
    assert main(["replay", trace, "--freelist", "hashmap:nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_trace_then_replay(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "w.trace"
    assert (
        main(
            ["trace", "--scenario", "mixed", "--free-pages", "900", "--txs", "30", "-o", str(path)]
        )
        == 0
    )
    assert path.read_text().startswith("H ")
    assert main(["replay", str(path), "--freelist", "array"]) == 0
    result = json.loads(capsys.readouterr().out)
    keys = "type policy sync ops total_ns alloc_ns free_ns commit_ns grown final_hwm free_count"
    assert {*keys.split(), "free_sha256"} <= set(result)


def test_replay_fidelity_trace(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(DATA / "seed-2000.trace"), "--freelist", "array"]) == 0
    result = json.loads(capsys.readouterr().out)
    expected = json.loads((DATA / "expected-array.json").read_text())["traces"]["seed-2000.trace"]
    assert result["free_sha256"] == expected["free_sha256"]


def test_errors_are_one_line_with_exit_code_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.trace"
    bad.write_text("H 10\nF 3\n")
    assert main(["replay", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("freelist: error:")
    assert "bad.trace:2" in err
    assert "Traceback" not in err


def test_trace_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "--free-pages", "50", "--txs", "3"]) == 0
    assert capsys.readouterr().out.startswith("H ")


def test_bad_option_exits_with_usage() -> None:
    with pytest.raises(SystemExit) as info:
        main(["compare", "--free-pages", "0"])
    assert info.value.code == 2


def test_compare_without_rich_prints_plain_text(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for mod in ("rich", "rich.console", "rich.table", "rich.progress"):
        monkeypatch.setitem(sys.modules, mod, None)
    assert main(["compare", "--free-pages", "700", "--txs", "20"]) == 0
    captured = capsys.readouterr()
    assert "free pages" in captured.out
    assert "\u2503" not in captured.out  # no rich box drawing
    assert "700" in captured.err  # progress lines go to stderr


def test_plot_without_matplotlib_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code = main(["compare", "--free-pages", "300", "--txs", "5", "--plot", str(tmp_path / "p.png")])
    assert code == 2
    assert "needs matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()


def _bbolt_file(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(gzip.decompress((BBOLT / f"{name}.gz").read_bytes()))
    return path


@pytest.mark.parametrize("name", ["nosync-nested.db", "synced-array.db"])
def test_check_and_inspect_bbolt_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    path = _bbolt_file(tmp_path, name)
    want = json.loads((BBOLT / "expected.json").read_text())[name]
    assert main(["check", str(path)]) == 0
    assert "ok (with bbolt's tree walk)" in capsys.readouterr().out
    assert main(["inspect", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["free_pages"] == want["free_count"]
    assert info["meta"]["hwm"] == want["hwm"]
    assert info["page_types"]["leaf"] == want["page_types"]["leaf"]
    assert sum(int(k) * v for k, v in info["span_sizes"].items()) == want["free_count"]
    assert main(["inspect", str(path)]) == 0
    assert "runs, longest" in capsys.readouterr().out


def test_check_nosync_without_walk_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = _bbolt_file(tmp_path, "nosync-hashmap.db")
    assert main(["check", str(path), "--walk", "none"]) == 2
    assert "--walk bbolt" in capsys.readouterr().err


def test_check_reports_problems_with_exit_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "p.db"
    with PageFile.open(path) as pf:
        for _ in range(2):
            with pf.update() as tx:
                tx.allocate(1)
    data = bytearray(path.read_bytes())
    data[40:48] = b"\xff" * 8  # tear meta page 0 (the newest is txid 3, page 1)
    path.write_bytes(bytes(data))
    assert main(["check", str(path)]) == 1
    assert "meta page 0: checksum mismatch" in capsys.readouterr().out
    assert main(["check", str(tmp_path / "missing.db")]) == 2


def test_plot_to_a_missing_folder_fails_before_the_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "no" / "such" / "p.png"
    assert main(["compare", "--free-pages", "300", "--txs", "5", "--plot", str(target)]) == 2
    captured = capsys.readouterr()
    assert "no writable folder" in captured.err
    assert "generating" not in captured.err  # nothing ran
    assert captured.out == ""


def test_plot_with_an_unknown_suffix_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["compare", "--free-pages", "300", "--txs", "5", "--plot", str(tmp_path / "p.pdf")])
    assert code == 2
    assert "png or .svg" in capsys.readouterr().err


# --- compare --from FILE: a real file's free pages under the scenario's churn ---


def test_compare_from_a_bbolt_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = _bbolt_file(tmp_path, "nosync-hashmap.db")
    want = json.loads((BBOLT / "expected.json").read_text())["nosync-hashmap.db"]
    args = ["compare", "--from", str(path), "--txs", "30", "--scenario", "mixed"]
    assert main([*args, "--json", "--policy", "bbolt"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert str(path) in data["title"]
    (row,) = data["rows"]  # one row: the file, not the --free-pages sizes
    assert row["free_pages"] == want["free_count"]
    assert row["start_hwm"] == want["hwm"]
    res = row["results"]
    assert res["hashmap:bbolt"]["policy"] == "bbolt"
    assert res["array"]["ops"] == res["hashmap:bbolt"]["ops"] == row["ops"] > 30
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "speed-up" in out
    assert "750" in out


def test_compare_from_a_missing_file_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["compare", "--from", str(tmp_path / "none.db"), "--txs", "5"]) == 2
    err = capsys.readouterr().err
    assert "freelist: error:" in err
    assert "none.db: no such file" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "tail"),
    [
        ("H 10\nS 6 4\n", 4),  # pages 6..9 free, the file ends at 10
        ("H 11\nS 6 4\n", 0),  # page 10 is in use
        ("H 10\nS 3 2\nS 8 2\nA 2\n", 2),  # the allocation takes 3..4; 8..9 stays
        ("H 10\nS 8 2\nA 2\n", 0),  # nothing free at the end
        ("H 10\nS 3 3\nA 4\nC\nF 0\nC\n", 4),  # grown to 14, then 10..13 freed
    ],
)
def test_replay_reports_the_free_tail(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, tail: int
) -> None:
    path = tmp_path / "t.trace"
    path.write_text(text)
    for spec in ("array", "hashmap:first-fit", "hashmap:best-fit"):
        assert main(["replay", str(path), "--freelist", spec]) == 0
        assert json.loads(capsys.readouterr().out)["free_tail"] == tail


def test_import_path_specs_resolve_from_the_current_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As with `python -m`: a module beside the user is found without PYTHONPATH.
    (tmp_path / "myfl_here.py").write_text(
        "from freelist import ArrayFreelist\n\nclass Mine(ArrayFreelist):\n    pass\n"
    )
    (tmp_path / "t.trace").write_text("H 10\nS 6 4\nA 2\nC\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert main(["replay", "t.trace", "--freelist", "myfl_here:Mine"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["type"] == "myfl_here:Mine"
    assert out["free_count"] == 2


# --- conventions: exit codes, several files, JSON, progress, pipes, cut lists -------


def _damaged_tree(tmp_path: Path) -> Path:
    """A bbolt file whose root page is overwritten with zeros: its tree is damaged."""
    path = _bbolt_file(tmp_path, "synced-array.db")
    with PageFile.open(path, readonly=True) as pf:
        root, size = pf.meta.root, pf.stats().page_size
    data = bytearray(path.read_bytes())
    data[root * size : (root + 1) * size] = bytes(size)
    path.write_bytes(bytes(data))
    return path


def test_check_exits_1_for_damage_2_for_errors_and_takes_several_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    sound = _bbolt_file(tmp_path, "synced-hashmap-nested.db")
    damaged = _damaged_tree(tmp_path)
    assert main(["check", str(sound), str(sound)]) == 0
    assert capsys.readouterr().out.count("ok (with bbolt's tree walk)") == 2
    assert main(["check", "--walk", "bbolt", str(sound), str(damaged)]) == 1
    out = capsys.readouterr().out
    assert f"{sound}: ok" in out
    assert f"{damaged}: " in out.replace(f"{sound}: ok", "")
    # A file that cannot be checked (missing) is an error, 2, whatever the others show.
    assert main(["check", str(damaged), str(tmp_path / "missing.db")]) == 2
    captured = capsys.readouterr()
    assert "missing.db: no such file" in captured.err
    with pytest.raises(SystemExit) as usage:
        main(["check"])  # no file: a usage error
    assert usage.value.code == 2


def test_check_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sound = _bbolt_file(tmp_path, "nosync-nested.db")
    damaged = _damaged_tree(tmp_path)
    assert main(["check", "--json", "--walk", "bbolt", str(sound), str(damaged)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False
    first, second = data["files"]
    assert first == {"file": str(sound), "ok": True, "walk": "bbolt", "problems": [], "error": None}
    assert second["ok"] is False
    assert second["problems"]
    assert second["error"] is None
    assert main(["check", "--json", str(tmp_path / "none.db")]) == 2
    (only,) = json.loads(capsys.readouterr().out)["files"]
    assert "no such file" in only["error"]


def test_no_progress_silences_stderr(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from freelist import filetools

    for mod in ("rich", "rich.console", "rich.progress", "rich.table"):
        monkeypatch.setitem(sys.modules, mod, None)  # plain lines, shown on any stderr
    monkeypatch.setattr(filetools, "PROGRESS_DELAY", -1.0)
    path = _bbolt_file(tmp_path, "nosync-hashmap.db")
    assert main(["check", str(path)]) == 0
    assert "walking the tree" in capsys.readouterr().err  # progress by default
    for argv in (
        ["check", str(path), "--no-progress"],
        ["inspect", str(path), "--no-progress"],
        ["compare", "--free-pages", "300", "--txs", "5", "--no-progress"],
        ["compare", "--from", str(path), "--txs", "5", "--no-progress"],
    ):
        assert main(argv) == 0
        assert capsys.readouterr().err == "", argv


def test_a_closed_pipe_ends_quietly() -> None:
    """``freelist compare --json | head -1``: the reader goes away first."""
    argv = ["compare", "--free-pages", "300", "--txs", "9", "--json"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "freelist", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # nobody reads: the first write meets a closed pipe
    _, err = proc.communicate(timeout=60)
    assert b"Traceback" not in err
    assert err == b""
    assert proc.returncode == 141


def test_the_run_sizes_line_says_it_was_cut(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "runs.db"
    with PageFile.open(path) as pf:
        with pf.update() as tx:
            runs = []
            for k in range(1, 26):
                runs.append(tx.allocate(k))
                tx.allocate(1)  # a page in use between two runs
        with pf.update() as tx:
            for k, start in enumerate(runs, 1):
                tx.free(start, k)
        with pf.update() as tx:
            tx.allocate(1)  # a commit after the frees releases them
    assert main(["inspect", str(path)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "run sizes" in x)
    assert "and 5 longer sizes (--json lists them all)" in line
    assert main(["inspect", str(path), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["span_sizes"]) == 25


def test_compare_progress_moves_inside_a_replay() -> None:
    """``step(commits, total)`` follows each replay commit by commit."""
    from freelist import cli, registry

    args = cli._build_parser().parse_args(["compare", "--free-pages", "400", "--txs", "30"])
    seen: list[tuple[int, int]] = []
    specs = [registry.resolve(s) for s in ("array", "hashmap")]
    rows = cli._compare_rows(args, specs, lambda _m: None, lambda d, t: seen.append((d, t)))
    assert seen == [(d, 30) for d in range(1, 31)] * 2
    # With --json the whole-loop run (wall_ns) is a second freelist, built bare:
    # the bar neither counts it nor goes back, and its clock times no callback.
    args = cli._build_parser().parse_args(
        ["compare", "--free-pages", "400", "--txs", "30", "--json"]
    )
    seen.clear()
    rows = cli._compare_rows(args, specs, lambda _m: None, lambda d, t: seen.append((d, t)))
    assert seen == [(d, 30) for d in range(1, 31)] * 2
    assert rows[0]["results"]["array"]["wall_ns"] > 0
    res = rows[0]["results"]
    assert res["array"]["free_sha256"] == cli.replay(cli.generate("seed", 400, 30, 1)).free_sha256


def test_help_shows_the_lock_timeout_and_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("check", "inspect", "compare", "compact"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--timeout SECONDS" in text
        assert "(default 5.0;" in text
        assert "--no-progress" in text


def test_the_table_footer_explains_every_column(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "--free-pages", "300", "--txs", "5"]) == 0
    out = capsys.readouterr().out
    for column in ("time:", "speed-up:", "us/op: microseconds per operation", "grown:"):
        assert column in out
    assert "spans: free runs at the end; largest span:" in out
    assert "free tail:" in out


# --- live files: a writer holds the lock ---------------------------------------------


@pytest.fixture
def held(tmp_path: Path) -> Iterator[Path]:
    """A bbolt file whose exclusive lock another open file holds, as a bbolt
    writer such as etcd does (flock, the call bbolt uses)."""
    path = _bbolt_file(tmp_path, "synced-array.db")
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield path
    finally:
        os.close(fd)


def test_a_locked_file_says_how_to_read_it(capsys: pytest.CaptureFixture[str], held: Path) -> None:
    for argv in (["check", str(held)], ["compare", "--from", str(held), "--txs", "5"]):
        assert main([*argv, "--timeout", "0"]) == 2
        err = capsys.readouterr().err
        assert "locked by another process (waited 0.0 s)" in err
        assert "--no-lock reads a snapshot" in err
        assert "etcdctl snapshot save copy.db" in err


def test_no_lock_reads_a_snapshot_of_a_held_file(
    capsys: pytest.CaptureFixture[str], held: Path
) -> None:
    want = json.loads((BBOLT / "expected.json").read_text())["synced-array.db"]
    assert main(["check", str(held), "--no-lock"]) == 0
    assert f"{held}: ok (with bbolt's tree walk)" in capsys.readouterr().out
    assert main(["inspect", str(held), "--no-lock", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["file"] == str(held)
    assert info["free_pages"] == want["free_count"]
    args = ["compare", "--from", str(held), "--no-lock", "--txs", "5", "--json"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["rows"][0]["free_pages"] == want["free_count"]


def test_a_snapshot_is_taken_again_when_a_commit_lands_during_the_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from freelist import FileLockedError, filetools

    path = tmp_path / "live.db"
    with PageFile.open(path) as pf, pf.update() as tx:
        tx.root = tx.allocate(2)
    copies: list[int] = []
    real_copy = filetools.shutil.copyfile

    def copy_then_commit(src: str, dst: str) -> str:
        out = real_copy(src, dst)
        copies.append(1)
        if len(copies) <= commits:  # a writer commits while the copy runs
            with PageFile.open(src) as pf, pf.update() as tx:
                tx.allocate(1)
        return out

    monkeypatch.setattr(filetools.shutil, "copyfile", copy_then_commit)
    folder = tmp_path / "snap"
    folder.mkdir()
    commits = 1
    copy = filetools.snapshot(str(path), str(folder))
    assert len(copies) == 2
    with PageFile.open(copy, readonly=True) as snap, PageFile.open(path, readonly=True) as live:
        assert snap.meta == live.meta  # the copy holds the newest commit
        assert snap.check() == []
    copies.clear()
    commits = 99
    with pytest.raises(FileLockedError, match="a commit landed during each of 3 copies"):
        filetools.snapshot(str(path), str(folder))


# --- compare --from on any file ---------------------------------------------------------


def test_compare_from_fits_the_churn_to_a_small_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from freelist.fromfile import churn_from_file

    path = _bbolt_file(tmp_path, "synced-array.db")
    assert main(["compare", "--from", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    (row,) = json.loads(captured.out)["rows"]
    churn = churn_from_file(str(path), progress=False)
    assert row["txs"] == churn.txs < churn.asked == 2000
    assert 0 < churn.freed <= churn.in_use // 2
    assert not churn.emptied
    assert f"the churn runs {churn.txs} transactions, not 2,000" in captured.err
    assert "--txs sets the count" in row["note"]
    # Asked for explicitly, the long churn runs, with a warning that it empties the file.
    assert main(["compare", "--from", str(path), "--txs", "2000"]) == 0
    captured = capsys.readouterr()
    assert "2000 transactions" in captured.out
    assert "freelist: warning:" in captured.err
    assert "frees every page the file had in use" in captured.err
    assert churn_from_file(str(path), txs=2000, progress=False, fit=False).emptied


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--from", "FILE", "--free-pages", "1000"], "--free-pages has no effect with --from"),
        (["--no-lock"], "--no-lock has an effect only with --from FILE"),
        (["--timeout", "9"], "--timeout has an effect only with --from FILE"),
    ],
)
def test_compare_refuses_options_without_effect(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    path = _bbolt_file(tmp_path, "synced-array.db")
    argv = [str(path) if a == "FILE" else a for a in argv]
    assert main(["compare", "--txs", "5", *argv]) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""


def test_check_of_a_file_that_is_no_page_file_is_a_problem(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Damage met while opening counts like damage met while checking: exit 1."""
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a page file" * 1000)
    assert main(["check", str(junk), "--no-lock"]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{junk}: ")
    assert "freelist-snapshot" not in out  # the file asked for, not its snapshot
