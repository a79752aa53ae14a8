"""Shared test configuration: Hypothesis profiles and the freelist fixture.

Profiles (``FREELIST_HYPOTHESIS_PROFILE=<name>`` chooses one explicitly):

* ``ci``: loaded when the ``CI`` variable is set.  Derandomised, so a CI run
  repeats exactly; 200 examples per property (Hypothesis's own ``ci`` profile,
  which this one replaces under the same name, runs 100) and failing examples
  printed as a reproduction blob.
* ``dev``: the default on a workstation: random, 100 examples, no deadline.
* ``thorough``: a soak run: thousands of examples and long state machines.

Hypothesis loads its built-in ``ci`` profile by itself when ``CI`` is set; the
profile registered here under that name replaces it, and is then loaded
explicitly, so ours is the one in force.  ``pytest --hypothesis-profile=...``
still overrides the choice, because the plugin applies it after this file runs.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from freelist import ArrayFreelist, HashmapFreelist
from freelist._shared import SharedFreelist

#: The profiles, by name; tests/test_freelist.py checks the one in force.
PROFILES: dict[str, dict[str, object]] = {
    "ci": {
        "derandomize": True,
        "deadline": None,
        "max_examples": 200,
        "stateful_step_count": 50,
        "print_blob": True,
        "suppress_health_check": [HealthCheck.too_slow],
    },
    "dev": {
        "deadline": None,
        "max_examples": 100,
        "stateful_step_count": 50,
    },
    "thorough": {
        "deadline": None,
        "max_examples": 2500,
        "stateful_step_count": 200,
        "suppress_health_check": [HealthCheck.too_slow],
    },
}

for _name, _kwargs in PROFILES.items():
    settings.register_profile(_name, **_kwargs)


def chosen_profile(environ: Mapping[str, str] = os.environ) -> str:
    """The profile to load: the explicit choice, else ``ci`` on CI, else ``dev``."""
    explicit = environ.get("FREELIST_HYPOTHESIS_PROFILE")
    if explicit:
        return explicit
    return "ci" if environ.get("CI") else "dev"


PROFILE = chosen_profile()
settings.load_profile(PROFILE)

FreelistFactory = Callable[..., SharedFreelist]

#: Every freelist the protocol tests run on, by test id.  ``hashmap-bbolt`` is
#: the hashmap with bbolt's allocation rule (exact fit, else a random larger run),
#: ``hashmap-first-fit`` the hashmap with the array's rule.
FACTORIES: dict[str, FreelistFactory] = {
    "array": ArrayFreelist,
    "hashmap": HashmapFreelist,
    "hashmap-bbolt": functools.partial(HashmapFreelist, policy="bbolt", seed=7),
    "hashmap-first-fit": functools.partial(HashmapFreelist, policy="first-fit"),
}


@pytest.fixture(params=list(FACTORIES))
def freelist_cls(request: pytest.FixtureRequest) -> FreelistFactory:
    """A freelist class (or the bbolt-policy hashmap): ``freelist_cls(ids)``."""
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
