"""Shared test configuration: Hypothesis profiles and the freelist fixture.

Profiles: :mod:`freelist.testing.profiles` (``ci``, ``dev``, ``thorough``);
``FREELIST_HYPOTHESIS_PROFILE=<name>`` chooses one explicitly, else ``ci`` on CI,
else ``dev``.

Hypothesis loads its built-in ``ci`` profile by itself when ``CI`` is set; the
profile registered here under that name replaces it, and is then loaded
explicitly, so ours is the one in force.  ``pytest --hypothesis-profile=...``
still overrides the choice, because the plugin applies it after this file runs.

The freelists the protocol tests run on come from the registry: every built-in
spec of :func:`freelist.registry.builtin_specs`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings

from freelist import registry
from freelist._shared import SharedFreelist
from freelist.testing.profiles import PROFILES, chosen_profile, register_profiles

__all__ = ["FACTORIES", "PROFILE", "PROFILES", "FreelistFactory", "chosen_profile"]

register_profiles()
PROFILE = chosen_profile()
settings.load_profile(PROFILE)

FreelistFactory = Callable[..., SharedFreelist]


def _factory(spec: str) -> FreelistFactory:
    """``factory(ids=())``: the registry's factory for ``spec``, ids optional."""
    make = registry.resolve(spec).factory

    def build(ids: object = ()) -> SharedFreelist:
        fl = make(ids)
        assert isinstance(fl, SharedFreelist)
        return fl

    build.__name__ = build.__qualname__ = spec
    return build


#: Every freelist the protocol tests run on, by spec: one per built-in class and
#: policy (``hashmap:bbolt`` is the hashmap with bbolt's allocation rule: exact
#: fit, else a random larger run, from a seeded generator).
FACTORIES: dict[str, FreelistFactory] = {spec: _factory(spec) for spec in registry.builtin_specs()}


@pytest.fixture(params=list(FACTORIES))
def freelist_cls(request: pytest.FixtureRequest) -> FreelistFactory:
    """A built-in freelist factory: ``freelist_cls(ids)``."""
    return FACTORIES[request.param]


#: The freelists the page-file tests run with, by name.
PAGEFILE_KINDS = ["hashmap", "array"]


@pytest.fixture(params=PAGEFILE_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """A freelist name for ``PageFile.open(..., freelist=kind)``."""
    return str(request.param)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """A page file path in a fresh temporary folder (no file there yet)."""
    return tmp_path / "pages.db"
