"""The registry of freelists by name: one place that PageFile, traces and the CLI use."""

from __future__ import annotations

import pytest

from freelist import ArrayFreelist, Freelist, HashmapFreelist, InvalidArgumentError, registry
from freelist.errors import InvalidTypeError


def test_builtin_specs_cover_every_class_and_policy() -> None:
    specs = registry.builtin_specs()
    assert "array" in specs
    from freelist import POLICIES

    for p in POLICIES:
        assert f"hashmap:{p}" in specs
    for s in specs:
        fl = registry.make(s, [2, 3, 5])
        assert isinstance(fl, Freelist)
        assert fl.free_page_ids() == [2, 3, 5]


def test_resolve_names_and_policies() -> None:
    a = registry.resolve("array")
    assert (a.label, a.kind, a.policy) == ("array", "array", None)
    assert isinstance(a.make(), ArrayFreelist)
    h = registry.resolve("hashmap")
    assert (h.label, h.policy) == ("hashmap:best-fit", "best-fit")
    fl = registry.make("hashmap:bbolt", [4])
    assert isinstance(fl, HashmapFreelist)
    assert fl.policy == "bbolt"
    # `policy=` fills in for a name that gives none, and never overrides one that does.
    assert registry.resolve("hashmap", policy="bbolt").policy == "bbolt"
    assert registry.resolve("hashmap:best-fit", policy="bbolt").policy == "best-fit"


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("heap", "unknown freelist"),
        ("hashmap:worst-fit", "policy must be one of"),
        ("array:first-fit", "takes no policy"),
        ("no_such_module_xyz:Thing", "cannot import"),
        ("freelist.array:NoSuchClass", "has no attribute"),
        ("freelist.array:__doc__", "not callable"),
        (":Thing", "import path"),
    ],
)
def test_bad_specs_are_refused_clearly(spec: str, words: str) -> None:
    with pytest.raises(InvalidArgumentError, match=words):
        registry.resolve(spec)


def test_spec_must_be_a_str() -> None:
    with pytest.raises(InvalidTypeError):
        registry.resolve(3)  # type: ignore[arg-type]


def test_import_path_builds_a_user_freelist() -> None:
    spec = registry.resolve("freelist.array:ArrayFreelist")
    assert spec.kind == "freelist.array:ArrayFreelist"
    assert spec.make([7, 8]).free_spans() == [(7, 2)]


def _boom(ids: list[int]) -> Freelist:
    raise ZeroDivisionError(len(ids))


def test_user_factory_failures_are_wrapped() -> None:
    with pytest.raises(InvalidArgumentError, match="does not satisfy the Freelist protocol"):
        registry.make("builtins:list")
    with pytest.raises(InvalidArgumentError, match="raised ZeroDivisionError"):
        registry.FreelistSpec("boom", "boom", None, _boom).make([])
