"""Shared test configuration: hypothesis profiles and common fixtures."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import settings

from _backends import backend  # noqa: F401  (shared fixtures)
from _postgres import postgres_database, postgres_server  # noqa: F401  (shared fixtures)

settings.register_profile("default", max_examples=100, deadline=None)
settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True, print_blob=True)
settings.register_profile("quick", max_examples=25, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


class SteppingClock:
    """A fake clock: each call returns the next instant, ``step`` apart."""

    def __init__(self, start: datetime = T0, step: timedelta = timedelta(hours=1)) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> datetime:
        current = self.now
        self.now += self.step
        return current


@pytest.fixture
def t0() -> datetime:
    return T0


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()
