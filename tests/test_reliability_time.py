"""Time: history never runs backwards, and every stored timestamp is UTC.

The clock is a fake (frozen, stepping, stepping backwards, or in another time
zone). A Pipeline move dated before the deal's last change is refused and nothing is
stored; through a Tracker, whose clock may lag (several hosts, several clocks), a
move is stamped no earlier than the last change, so history still never runs
backwards. Raw stored values are checked in SQLite and PostgreSQL: every ``*_us``
column is microseconds since 1970-01-01T00:00:00 UTC of the instant the clock gave.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from _reliability_workers import (
    PIPELINE_NAME,
    QUALIFIED,
    StoreSpec,
    dump_tables,
    open_store,
    open_tracker,
    pipeline,
    raw_rows,
)
from salespipeline import ValidationError

T0 = datetime(2026, 3, 29, 0, 30, tzinfo=timezone.utc)  # a DST change night in Europe
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
KST = timezone(timedelta(hours=9))
NEWFOUNDLAND = timezone(timedelta(hours=-3, minutes=-30))


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


class ScriptedClock:
    """A fake clock that returns the given instants in turn, then the last one forever."""

    def __init__(self, *instants: datetime) -> None:
        self.given: list[datetime] = []
        self._next: Iterator[datetime] = itertools.chain(instants, itertools.repeat(instants[-1]))

    def __call__(self) -> datetime:
        moment = next(self._next)
        self.given.append(moment)
        return moment


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> StoreSpec:
    if request.param == "sqlite":
        return StoreSpec("sqlite", str(tmp_path / "time.sqlite"))
    return StoreSpec("postgres", request.getfixturevalue("postgres_database"))


def stored_at_us(spec: StoreSpec, deal_id: str) -> list[int]:
    rows = raw_rows(
        spec,
        "SELECT at_us FROM sp_changes WHERE deal_id = ? AND to_stage IS NOT NULL ORDER BY version",
        (deal_id,),
    )
    return [row[0] for row in rows]


def test_a_move_dated_before_the_last_change_is_refused_and_nothing_is_stored(
    spec: StoreSpec,
) -> None:
    flow = pipeline()
    with open_store(spec) as store:
        store.add(flow.start("d", bant=QUALIFIED, at=T0 + timedelta(hours=2)))
        before = dump_tables(spec)
        deal = store.get("d")
        for earlier in (T0, T0 + timedelta(hours=2) - timedelta(microseconds=1)):
            with pytest.raises(ValidationError, match="time runs backwards"):
                flow.advance(deal, at=earlier)
            with pytest.raises(ValidationError, match="time runs backwards"):
                flow.lose(deal, "price", at=earlier.astimezone(KST))
        assert dump_tables(spec) == before
        store.save(flow.advance(deal, at=T0 + timedelta(hours=2)))  # equal is allowed
        assert stored_at_us(spec, "d") == [micros(T0 + timedelta(hours=2))] * 2


def test_a_tracker_clock_that_steps_back_never_makes_history_run_backwards(
    spec: StoreSpec,
) -> None:
    hour = timedelta(hours=1)
    clock = ScriptedClock(
        T0 + 3 * hour, T0 + hour, T0 + 5 * hour, T0, T0 + 4 * hour, T0 + 6 * hour
    )
    with open_store(spec) as store:
        tracker = open_tracker(store, clock=clock)
        tracker.open(PIPELINE_NAME, "d", bant=QUALIFIED)
        for _ in range(4):
            tracker.advance("d")
        tracker.lose("d", "price")
        history = tracker.get("d").history
    expected = list(itertools.accumulate(clock.given[: len(history)], max))
    assert [change.at for change in history] == expected
    assert stored_at_us(spec, "d") == [micros(moment) for moment in expected]
    assert stored_at_us(spec, "d") == sorted(stored_at_us(spec, "d"))


def test_a_frozen_clock_records_every_move_at_the_same_instant(spec: StoreSpec) -> None:
    with open_store(spec) as store:
        tracker = open_tracker(store, clock=lambda: T0)
        tracker.open(PIPELINE_NAME, "d", bant=QUALIFIED)
        for _ in range(6):
            tracker.advance("d")
        deal = tracker.win("d")
    assert [change.version for change in deal.history] == list(range(1, 9))
    assert stored_at_us(spec, "d") == [micros(T0)] * 8
    assert deal.created_at == deal.closed_at == T0


def test_every_stored_timestamp_is_utc_whatever_zone_the_clock_speaks(spec: StoreSpec) -> None:
    """A clock in +09:00 or -03:30 is stored as the same instant's UTC microseconds."""
    instants = [T0 + timedelta(minutes=17 * n, microseconds=n) for n in range(6)]
    zones = [KST, NEWFOUNDLAND, timezone.utc]
    clock = ScriptedClock(*(moment.astimezone(zones[n % 3]) for n, moment in enumerate(instants)))
    due = (T0 + timedelta(days=2)).astimezone(NEWFOUNDLAND)
    with open_store(spec) as store:
        tracker = open_tracker(store, clock=clock)
        tracker.open(PIPELINE_NAME, "d", bant=QUALIFIED)
        tracker.advance("d")
        tracker.update("d", next_action="call", next_action_at=due)
        tracker.advance("d")
        deal = tracker.lose("d", "timing")
    (row,) = raw_rows(
        spec,
        "SELECT created_at_us, stage_entered_at_us, closed_at_us, next_action_at_us "
        "FROM sp_deals WHERE id = 'd'",
    )
    changes = stored_at_us(spec, "d")  # the update read the clock too (instant 2)
    assert changes == [micros(instants[n]) for n in (0, 1, 3, 4)]
    assert row == (changes[0], changes[-1], changes[-1], micros(due))
    for moment in (deal.created_at, deal.stage_entered_at, deal.closed_at, deal.next_action_at):
        assert moment is not None and moment.tzinfo is timezone.utc
    assert [change.at.tzinfo for change in deal.history] == [timezone.utc] * 4


def test_a_naive_clock_is_refused_before_anything_is_stored(spec: StoreSpec) -> None:
    naive: Any = datetime(2026, 1, 5, 9, 0)
    with open_store(spec) as store:
        tracker = open_tracker(store, clock=lambda: T0)
        tracker.open(PIPELINE_NAME, "d")
        before = dump_tables(spec)
        lagging = open_tracker(store, clock=lambda: naive)
        with pytest.raises(ValidationError, match="timezone-aware"):
            lagging.advance("d")
        with pytest.raises(ValidationError, match="timezone-aware"):
            lagging.open(PIPELINE_NAME, "e")
        with pytest.raises(ValidationError, match="timezone-aware"):
            tracker.update("d", next_action_at=naive)
        assert dump_tables(spec) == before
