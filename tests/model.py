"""The page-level model, from :mod:`freelist.testing.model` (the public copy is
the only one), plus :func:`allowed_starts` by freelist spec for the tests that
are parametrised over :data:`conftest.FACTORIES`."""

from __future__ import annotations

from collections.abc import Collection

from freelist.testing import BUILTIN_CHOICES
from freelist.testing.model import (
    allowed_starts as allowed_by_choice,
)
from freelist.testing.model import (
    check,
    first_fit,
    kept_by_release_pending,
    maximal_runs,
    observe,
    released_by_range,
)

__all__ = [
    "allowed_starts",
    "check",
    "first_fit",
    "kept_by_release_pending",
    "maximal_runs",
    "observe",
    "released_by_range",
]


def allowed_starts(spec: str, free: Collection[int], n: int) -> set[int]:
    """The starts that ``allocate(txid, n)`` may return for the built-in
    freelist ``spec`` (a key of ``conftest.FACTORIES``), by its rule in
    :data:`freelist.testing.BUILTIN_CHOICES`; 0 means none."""
    return allowed_by_choice(BUILTIN_CHOICES[spec], free, n)
