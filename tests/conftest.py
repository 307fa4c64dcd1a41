"""Shared test configuration: hypothesis profiles and common fixtures."""

from __future__ import annotations

import os
import zlib
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With ``SALESPIPELINE_TEST_SHARD=i/n``, run only shard ``i`` of ``n`` (0-based).

    CI splits the quick suites of the other Pythons this way, so that each test runs
    on 3.11 (the whole suite) and on one other version. A test's shard is fixed by
    its node id, so it is the same on every machine.
    """
    shard = os.environ.get("SALESPIPELINE_TEST_SHARD")
    if not shard:
        return
    index, _, count = shard.partition("/")
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise pytest.UsageError(f"SALESPIPELINE_TEST_SHARD must be i/n with i < n, not {shard!r}")
    kept, dropped = [], []
    for item in items:
        mine = zlib.crc32(item.nodeid.encode()) % int(count) == int(index)
        (kept if mine else dropped).append(item)
    config.hook.pytest_deselected(items=dropped)
    items[:] = kept


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
