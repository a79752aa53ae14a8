"""Tests of the public conformance suite, :mod:`freelist.testing`, and of the
third-party example allocator in ``examples/`` (correct, and each broken variant
caught)."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import unittest
from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from freelist import (
    ArrayFreelist,
    BaseFreelist,
    FreelistError,
    HashmapFreelist,
    InvalidArgumentError,
    MissingExtraError,
    registry,
)
from freelist._shared import SharedFreelist
from freelist.testing import (
    BUILTIN_CHOICES,
    CHOICES,
    FreelistMachine,
    allowed_starts,
    assert_conforms,
)
from freelist.testing.strategies import Call, call_sequences

from .conftest import FACTORIES

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def examples() -> Iterator[tuple[Any, Any]]:
    """The example modules ``bitmap_freelist`` (on :class:`freelist.BaseFreelist`)
    and ``broken_bitmaps`` (variants of ``standalone_bitmap``, the whole
    protocol written out)."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        yield (
            importlib.import_module("bitmap_freelist"),
            importlib.import_module("broken_bitmaps"),
        )
    finally:
        sys.path.remove(str(EXAMPLES))


# ---------------------------------------------------------------------------
# The rule table and the project's own use of the suite.


def test_every_builtin_spec_has_an_allocation_rule() -> None:
    missing = [s for s in registry.builtin_specs() if s not in BUILTIN_CHOICES]
    assert not missing, f"add these specs to freelist.testing.BUILTIN_CHOICES: {missing}"
    assert set(BUILTIN_CHOICES.values()) <= set(CHOICES)
    assert BUILTIN_CHOICES["array"] == "first-fit"
    assert BUILTIN_CHOICES["hashmap:first-fit"] == "first-fit"


def test_the_protocol_tests_cover_every_builtin_spec() -> None:
    assert list(FACTORIES) == registry.builtin_specs()


def test_the_stateful_tests_cover_every_builtin_spec() -> None:
    from . import test_stateful

    cases = {name for name in vars(test_stateful) if name.startswith("Test")}
    assert len(cases) == len(registry.builtin_specs())
    for name in cases:
        assert issubclass(getattr(test_stateful, name), unittest.TestCase)


@pytest.mark.parametrize("spec", registry.builtin_specs())
def test_builtins_conform_through_assert_conforms(spec: str) -> None:
    """A short run through the public entry point (tests/test_stateful.py runs
    the long one under the profile in force)."""
    assert_conforms(registry.resolve(spec).factory, choice=BUILTIN_CHOICES[spec], max_examples=10)


# ---------------------------------------------------------------------------
# Allocation rules.


@pytest.mark.parametrize(
    ("choice", "want"),
    [
        ("any", {2, 3, 7, 10, 11, 12}),
        ("first-fit", {2}),
        ("best-fit", {7}),
        ("exact-fit", {7}),
    ],
)
def test_allowed_starts_by_rule(choice: str, want: set[int]) -> None:
    free = {2, 3, 4, 7, 8, 10, 11, 12, 13}  # runs (2, 3), (7, 2), (10, 4)
    assert allowed_starts(choice, free, 2) == want


def test_exact_fit_allows_any_longer_run_when_none_is_exact() -> None:
    assert allowed_starts("exact-fit", {2, 3, 4, 10, 11, 12, 13}, 2) == {2, 10}
    assert allowed_starts("best-fit", {2, 3, 4, 10, 11, 12, 13}, 2) == {2}


@pytest.mark.parametrize("choice", CHOICES)
def test_no_run_allows_only_zero(choice: str) -> None:
    assert allowed_starts(choice, {2, 4, 6}, 2) == {0}


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="choice"):
        allowed_starts("worst-fit", {2}, 1)
    with pytest.raises(InvalidArgumentError, match="choice"):
        assert_conforms(ArrayFreelist, choice="worst-fit")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="callable"):
        assert_conforms(42)  # type: ignore[arg-type]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InvalidArgumentError, match="max_examples"):
            assert_conforms(ArrayFreelist, max_examples=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="stateful_step_count"):
            assert_conforms(ArrayFreelist, stateful_step_count=bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# What the suite reports.


def test_a_wrong_rule_fails_with_the_minimal_program() -> None:
    """The best-fit hashmap is not first fit: the report names the rule, the
    call and the shortest program, one call a line."""
    with pytest.raises(AssertionError) as info:
        assert_conforms(HashmapFreelist, choice="first-fit", derandomize=True)
    text = str(info.value)
    assert "does not conform (choice='first-fit')" in text
    assert "allowed by 'first-fit'" in text
    assert "state.build(ids=" in text
    assert "state.allocate(n=" in text
    assert isinstance(info.value.__cause__, AssertionError)


class _Crashing(ArrayFreelist):
    def release_pending(self) -> None:
        raise KeyError("oops")


def test_an_unexpected_exception_counts_as_a_failure() -> None:
    with pytest.raises(AssertionError, match="KeyError") as info:
        assert_conforms(_Crashing, choice="first-fit", derandomize=True)
    assert isinstance(info.value.__cause__, KeyError)


class _Unrefusing(ArrayFreelist):
    def remove_reader(self, txid: int) -> None:
        if txid in self.readers:
            super().remove_reader(txid)


def test_a_call_that_must_be_refused_and_is_not() -> None:
    with pytest.raises(AssertionError, match="was accepted; it must raise InvalidArgumentError"):
        assert_conforms(_Unrefusing, choice="first-fit", derandomize=True)


class _ProtocolOnly:
    """Exactly the protocol's members, delegated: no ``_check``, no ``readers``."""

    def __init__(self, ids: Iterable[int] = ()) -> None:
        self._fl = ArrayFreelist(ids)

    free_count = property(lambda self: self._fl.free_count)
    pending_count = property(lambda self: self._fl.pending_count)
    count = property(lambda self: self._fl.count)

    def __getattr__(self, name: str) -> Any:
        if name in {"readers", "_check", "_allocs"}:
            raise AttributeError(name)
        return getattr(self._fl, name)

    def page_id_array(self) -> array[int]:
        return self._fl.page_id_array()


def test_a_class_with_only_the_protocol_conforms() -> None:
    assert not hasattr(_ProtocolOnly([2]), "readers")
    assert not hasattr(_ProtocolOnly([2]), "_check")
    assert_conforms(_ProtocolOnly, choice="first-fit", max_examples=20)


class _NotAFreelist:
    def __init__(self, ids: Iterable[int] = ()) -> None:
        self.ids = list(ids)

    def allocate(self, txid: int, n: int) -> int:
        return 0 * txid * n


def test_a_factory_that_builds_no_freelist_is_told_what_is_missing() -> None:
    with pytest.raises(AssertionError, match=r"lacks members of the Freelist protocol: add_reader"):
        assert_conforms(_NotAFreelist, max_examples=5, derandomize=True)


def test_for_factory_gives_a_test_case_with_the_settings() -> None:
    quick = settings(max_examples=5, derandomize=True, database=None, deadline=None)
    case = FreelistMachine.for_factory(ArrayFreelist, choice="first-fit", settings=quick)
    assert issubclass(case, unittest.TestCase)
    assert case.settings is quick  # type: ignore[attr-defined]
    assert case.__name__ == "TestArrayFreelistMachine"
    result = unittest.TestResult()
    case("runTest").run(result)
    assert result.wasSuccessful()

    bad = FreelistMachine.for_factory(HashmapFreelist, choice="first-fit", settings=FIND)
    result = unittest.TestResult()
    bad("runTest").run(result)
    assert len(result.failures) == 1


def test_an_unbound_machine_says_how_to_bind_it() -> None:
    with pytest.raises(InvalidArgumentError, match="for_factory"):
        FreelistMachine().build([2, 3])


# ---------------------------------------------------------------------------
# Hypothesis is an extra.


def test_import_freelist_does_not_import_hypothesis() -> None:
    code = (
        "import sys, freelist, freelist.registry, freelist.trace, freelist.pagefile\n"
        "assert 'hypothesis' not in sys.modules, 'hypothesis was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_freelist_testing_without_hypothesis_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [m for m in sys.modules if m == "hypothesis" or m.startswith("hypothesis.")]:
        monkeypatch.setitem(sys.modules, name, None)  # type: ignore[arg-type]
    for name in [m for m in sys.modules if m.startswith("freelist.testing")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(MissingExtraError) as info:
        importlib.import_module("freelist.testing")
    assert isinstance(info.value, ImportError)
    assert isinstance(info.value, FreelistError)
    assert "pip install 'freelist[testing]'" in str(info.value)
    assert info.value.name == "hypothesis"


# ---------------------------------------------------------------------------
# The example allocator and its broken variants.


def test_the_example_bitmap_freelist_conforms(examples: tuple[Any, Any]) -> None:
    bitmap, _ = examples
    assert isinstance(bitmap.BitmapFreelist([2, 3, 5]), BaseFreelist)
    assert_conforms(bitmap.BitmapFreelist, choice="first-fit", max_examples=30)


def test_the_example_is_forty_lines_at_most() -> None:
    """The issue's promise: a working first fit on the base class in 40 lines."""
    lines = (EXAMPLES / "bitmap_freelist.py").read_text().splitlines()
    assert len(lines) <= 40


def test_the_standalone_example_conforms(examples: tuple[Any, Any]) -> None:
    """The variant that writes the whole protocol itself, without the base class
    (the broken variants' parent)."""
    _, broken = examples
    standalone = broken.StandaloneBitmap
    assert not isinstance(standalone([2, 3, 5]), SharedFreelist)
    assert_conforms(standalone, choice="first-fit", max_examples=30)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=call_sequences(max_page=40))
def test_the_bitmap_agrees_with_the_array_call_by_call(
    examples: tuple[Any, Any], calls: list[Call]
) -> None:
    """Differential test with the call-sequence strategy: both are first fit,
    so every outcome (return value or error type) and view must match."""
    bitmap, _ = examples
    ids = [2, 3, 4, 7, 9, 10, 11, 20, 21, 22, 23, 30]
    mine, ref = bitmap.BitmapFreelist(ids), ArrayFreelist(ids)
    for call in calls:
        assert call.outcome(mine) == call.outcome(ref), str(call)
        assert mine.all_page_ids() == ref.all_page_ids(), str(call)
        assert mine.pending_page_ids() == ref.pending_page_ids(), str(call)


def _broken() -> list[str]:
    sys.path.insert(0, str(EXAMPLES))
    try:
        return [cls.__name__ for cls, _, _ in importlib.import_module("broken_bitmaps").BROKEN]
    finally:
        sys.path.remove(str(EXAMPLES))


#: Finding the bug, without shrinking it, in a fixed run: fast and repeatable.
FIND = settings(
    max_examples=200,
    stateful_step_count=50,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.parametrize("name", _broken())
def test_each_broken_variant_is_caught(examples: tuple[Any, Any], name: str) -> None:
    _, broken = examples
    cls, _, choice = next(row for row in broken.BROKEN if row[0].__name__ == name)
    case = FreelistMachine.for_factory(cls, choice=choice, settings=FIND)
    result = unittest.TestResult()
    case("runTest").run(result)
    assert len(result.failures) + len(result.errors) == 1, f"{name} was not caught"


def test_at_least_six_kinds_of_bug(examples: tuple[Any, Any]) -> None:
    _, broken = examples
    assert len({what for _, what, _ in broken.BROKEN}) >= 6


def test_a_broken_variant_is_reported_with_its_program(examples: tuple[Any, Any]) -> None:
    _, broken = examples
    with pytest.raises(AssertionError) as info:
        assert_conforms(broken.RollbackLosesPages, choice="first-fit", derandomize=True)
    text = str(info.value)
    assert text.startswith("RollbackLosesPages does not conform")
    assert "state.rollback()" in text
    # Each step names its freelist calls, txids included.
    (line,) = [x for x in text.splitlines() if x.startswith("state.rollback()")]
    assert re.fullmatch(r"state\.rollback\(\)  # rollback\(\d+\)", line), line
    assert "  # writer txid 2" in text


def test_the_wrong_rule_variant_passes_under_any(examples: tuple[Any, Any]) -> None:
    _, broken = examples
    assert_conforms(broken.ExactFitFirst, choice="any", max_examples=30)


# ---------------------------------------------------------------------------
# Benchmarking the example through public functions.


@pytest.mark.parametrize("scenario", ["seed", "mixed"])
def test_replay_takes_a_third_party_factory(examples: tuple[Any, Any], scenario: str) -> None:
    """Both first fit: the bitmap ends exactly where the array does."""
    from freelist import trace

    bitmap, _ = examples
    tr = trace.generate(scenario, free_pages=2000, txs=50, seed=1)
    mine = trace.replay(tr, bitmap.BitmapFreelist)
    ref = trace.replay(tr, "array")
    assert mine.type == "BitmapFreelist"
    assert (mine.final_hwm, mine.free_count, mine.spans, mine.free_sha256) == (
        ref.final_hwm,
        ref.free_count,
        ref.spans,
        ref.free_sha256,
    )


def test_the_benchmark_example_runs(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(EXAMPLES), "BENCH_FREE_PAGES": "300", "BENCH_TXS": "10"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--benchmark-disable",
            str(EXAMPLES / "bench_bitmap.py"),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "15 passed" in done.stdout
