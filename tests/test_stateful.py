"""Stateful test: every built-in freelist driven beside the page-level model.

The state machine, the model and the strategies are the public conformance
suite, :mod:`freelist.testing` (see :mod:`freelist.testing.machine` for the
model's rules): the library is protected by the same checks its users run on
their own freelists.  One test case per built-in spec of the registry, each
checking the allocation rule :data:`freelist.testing.BUILTIN_CHOICES` gives it
(a spec missing there falls back to ``"any"`` here and fails
``tests/test_testing.py``), under the Hypothesis profile in force.
"""

from __future__ import annotations

import re

from freelist import registry
from freelist.testing import BUILTIN_CHOICES, FreelistMachine


def _case_name(spec: str) -> str:
    """``hashmap:best-fit`` -> ``HashmapBestFit``."""
    return "".join(part.title() for part in re.split(r"[^A-Za-z0-9]+", spec) if part)


for _spec in registry.builtin_specs():
    _name = _case_name(_spec)
    globals()[f"Test{_name}"] = FreelistMachine.for_factory(
        registry.resolve(_spec).factory, choice=BUILTIN_CHOICES.get(_spec, "any"), name=_name
    )
