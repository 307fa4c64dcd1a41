"""The demo simulation behind ``salespipeline demo`` (private).

Deals are driven through a ``Tracker`` on a simulated clock seeded from one
``random.Random``: the same seed gives the same database and the same report,
whatever the time of day. Each stage has a chance to move on, to lose the deal, or
to let it sit; deals without BANT qualification are qualified or lost before the
stage whose guards ask for it.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Final

from salespipeline.deal import Bant, Deal
from salespipeline.errors import StageBlockedError
from salespipeline.pipeline import Pipeline
from salespipeline.storage import SQLiteStore
from salespipeline.tracker import Tracker

__all__ = ["END", "START", "SimulatedClock", "open_store", "simulate"]

START: Final = datetime(2026, 1, 1, tzinfo=timezone.utc)
END: Final = START + timedelta(days=180)
LOST_REASONS: Final = ("price", "timing", "competitor", "no decision", "no budget")
_ADVANCE: Final = 0.66
_LOSE: Final = 0.14
_QUALIFY: Final = 0.6
_MEAN_DAYS: Final = 9.0
_NEXT_ACTIONS: Final = ("call back", "send the proposal", "book a demo", "chase the contract")


def open_store(path: str | os.PathLike[str]) -> SQLiteStore:
    """A SQLite store that syncs to disk at checkpoints rather than every commit.

    Demo data is disposable, so the last commits may be lost on a power failure
    (never corrupted: WAL mode); in exchange a thousand deals take a second, not
    fifteen, on disks where each sync costs milliseconds.
    """
    return SQLiteStore(path, synchronous="normal")


class SimulatedClock:
    """A clock the simulation sets by hand; it never reads the wall clock."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def simulate(
    tracker: Tracker,
    pipeline: Pipeline,
    clock: SimulatedClock,
    *,
    deals: int,
    seed: int,
    first_id: int = 0,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Open ``deals`` deals between START and END and walk each until it closes or END."""
    rng = random.Random(seed)
    for number in range(first_id, first_id + deals):
        clock.now = START + timedelta(days=rng.uniform(0, 170))
        deal = tracker.open(
            pipeline.name,
            f"deal-{number:06d}",
            amount=Decimal(rng.randrange(10, 500)) * 100,
            bant=Bant(*(rng.random() < 0.7 for _ in range(4))),
        )
        _walk(tracker, pipeline, clock, rng, deal)
        if progress is not None:
            progress(number - first_id + 1)


def _walk(
    tracker: Tracker, pipeline: Pipeline, clock: SimulatedClock, rng: random.Random, deal: Deal
) -> None:
    last = pipeline.stages[-1].name
    while deal.is_open:
        step = timedelta(days=rng.expovariate(1 / _MEAN_DAYS))
        if clock.now + step > END:
            _plan_follow_up(tracker, clock, rng, deal)
            return
        clock.now += step
        roll = rng.random()
        if roll < _LOSE:
            deal = tracker.lose(deal.id, rng.choice(LOST_REASONS))
        elif roll < _LOSE + _ADVANCE:
            deal = tracker.win(deal.id) if deal.stage == last else _advance(tracker, rng, deal)


def _plan_follow_up(
    tracker: Tracker, clock: SimulatedClock, rng: random.Random, deal: Deal
) -> None:
    """An open deal gets a next action, some already past due at END (follow-ups)."""
    due = END + timedelta(days=rng.uniform(-21, 14))
    action = rng.choice(_NEXT_ACTIONS)
    tracker.update(deal.id, next_action=action, next_action_at=max(due, clock.now))


def _advance(tracker: Tracker, rng: random.Random, deal: Deal) -> Deal:
    try:
        return tracker.advance(deal.id)
    except StageBlockedError:
        if rng.random() < _QUALIFY:
            tracker.update(deal.id, bant=Bant(True, True, True, True))
            return tracker.advance(deal.id)
        return tracker.lose(deal.id, "no budget")
