"""Fixtures of the interop tier: ``bbolt``, the Go helper (:mod:`tests.interop.gohelper`).

Tests that take the fixture skip with one line naming the Debian packages when
Go or bbolt's source is missing; under ``CI=true`` the fixture fails instead.
"""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.interop import gohelper


@pytest.fixture(scope="session")
def bbolt() -> ModuleType:
    """The :mod:`tests.interop.gohelper` module, its helper built."""
    if gohelper.binary() is None:
        pytest.skip(gohelper.MISSING)
    return gohelper
