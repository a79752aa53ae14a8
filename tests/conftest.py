"""Shared test configuration: Hypothesis profiles and the freelist-class fixture.

Profiles (choose with FREELIST_HYPOTHESIS_PROFILE):

* ``ci``: loaded when the ``CI`` variable is set; derandomised so CI runs repeat,
  with more examples than Hypothesis's own ``ci`` profile, which this replaces.
* ``dev``: the default locally, random, quick.
* ``thorough``: thousands of examples and long state-machine runs, for a soak.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, settings

from freelist import ArrayFreelist, HashmapFreelist
from freelist._shared import SharedFreelist

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=300,
    stateful_step_count=60,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=100, stateful_step_count=50)
settings.register_profile(
    "thorough",
    deadline=None,
    max_examples=3000,
    stateful_step_count=200,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(
    os.environ.get("FREELIST_HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)

FreelistFactory = Callable[..., SharedFreelist]

FACTORIES: dict[str, FreelistFactory] = {
    "array": ArrayFreelist,
    "hashmap": HashmapFreelist,
    "hashmap-bbolt": lambda ids=(): HashmapFreelist(ids, policy="bbolt", seed=7),
}


@pytest.fixture(params=sorted(FACTORIES))
def make(request: pytest.FixtureRequest) -> FreelistFactory:
    """Build a freelist of each kind: ``make(ids)``."""
    return FACTORIES[request.param]
