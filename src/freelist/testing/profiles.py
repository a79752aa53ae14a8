"""Hypothesis settings profiles for freelist test suites: ``ci``, ``dev``, ``thorough``.

:func:`register_profiles` registers them with Hypothesis (nothing is
registered on import); :func:`chosen_profile` picks one from the environment:
``FREELIST_HYPOTHESIS_PROFILE=<name>`` explicitly, else ``ci`` when the ``CI``
variable is set, else ``dev``.

* ``ci``: derandomised, so a CI run repeats exactly; 200 examples per property
  (Hypothesis's own ``ci`` profile, which this one replaces under the same
  name, runs 100) and failing examples printed as a reproduction blob;
* ``dev``: random, 100 examples, no deadline;
* ``thorough``: a soak run: thousands of examples and long state machines.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from hypothesis import HealthCheck, settings

__all__ = ["PROFILES", "chosen_profile", "register_profiles"]

#: The profiles, by name: keyword arguments of :class:`hypothesis.settings`.
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


def register_profiles() -> None:
    """Register every profile of :data:`PROFILES` with Hypothesis (``ci``
    replaces Hypothesis's own profile of that name).

    Runtime complexity: O(1).
    """
    for name, kwargs in PROFILES.items():
        settings.register_profile(name, **kwargs)  # type: ignore[arg-type]


def chosen_profile(environ: Mapping[str, str] = os.environ) -> str:
    """The profile to load: ``FREELIST_HYPOTHESIS_PROFILE`` when set, else
    ``ci`` when ``CI`` is set, else ``dev``.

    Runtime complexity: O(1).
    """
    explicit = environ.get("FREELIST_HYPOTHESIS_PROFILE")
    if explicit:
        return explicit
    return "ci" if environ.get("CI") else "dev"
