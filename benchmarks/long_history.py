"""A move on a deal with a long history against the same move on a deal with a short one.

DESIGN.md: a move costs the same whatever the deal's history length (a deal with
10,000 entries moves within 1.5x of one with 7), for pure operations and the Tracker
alike. Three measurements, each the long deal's cost as a multiple of the short's:

- pure: ``pipeline.lose`` / ``pipeline.reopen`` in turn on the deal value;
- the Tracker on a deal its store remembers (the usual case: the store read or
  wrote it last), which reads nothing before it writes;
- the Tracker on deals its store has never seen (a fresh store per round), which
  loads each deal first: the row and its latest history entries only;
- where the backend has an async store (PostgreSQL), the ``AsyncTracker`` on deals
  a fresh async store has never seen, which loads them as the sync one does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from benchmarks._timing import best_times
from benchmarks.persist import Backend
from salespipeline import LOST, Deal, Pipeline, Stage, Tracker
from salespipeline.aio import AsyncTracker

SHORT = 7
PURE = "pure lose/reopen"
WARM = "Tracker, deal remembered by its store"
COLD = "Tracker, deal loaded by a fresh store"
ASYNC_COLD = "AsyncTracker, deal loaded by a fresh async store"

_T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def pipeline() -> Pipeline:
    return Pipeline("p", [Stage("a", probability=0.2), Stage("b", probability=0.6)])


def built(pipe: Pipeline, id: str, entries: int) -> Deal:
    """Deal ``id`` with ``entries`` history entries: opened, then lost and reopened in turn."""
    deal = pipe.start(id, at=_T0)
    at = _T0
    for _ in range(entries - 1):
        at += timedelta(seconds=1)
        deal = pipe.reopen(deal, at=at) if deal.stage == LOST else pipe.lose(deal, "x", at=at)
    return deal


def _flip(pipe: Pipeline, deal: Deal) -> Deal:
    return pipe.reopen(deal) if deal.stage == LOST else pipe.lose(deal, "x")


def _move(tracker: Tracker, id: str, stage: str) -> str:
    """Move deal ``id`` (known to be in ``stage``) once; the stage it is in after."""
    return tracker.reopen(id).stage if stage == LOST else tracker.lose(id, "x").stage


def pure(entries: int, *, moves: int, rounds: int) -> dict[str, float]:
    """Seconds per pure move, on a deal of ``SHORT`` and one of ``entries`` entries."""
    pipe = pipeline()
    deals = {SHORT: built(pipe, "short", SHORT), entries: built(pipe, "long", entries)}

    def run(deal: Deal) -> None:
        for _ in range(moves):
            deal = _flip(pipe, deal)

    times = best_times(
        {str(n): ((lambda d=deal: d), run) for n, deal in deals.items()}, rounds=rounds
    )
    return {name: seconds / moves for name, seconds in times.items()}


def tracked(
    backend: Backend, entries: int, *, deals: int, moves: int, rounds: int
) -> dict[str, dict[str, float]]:
    """Seconds per Tracker move, warm and cold, on short and long deals of one database."""
    pipe = pipeline()
    target = backend.fresh()
    stages: dict[str, str] = {}
    with backend.store(target) as store:
        Tracker(store, pipe)  # records the definition
        for size, name in ((SHORT, "short"), (entries, "long")):
            for n in range(deals):
                deal = built(pipe, f"{name}-{n}", size)
                store.add(deal)
                stages[deal.id] = deal.stage

    opened: list[Tracker] = []

    def ids(name: str) -> list[str]:
        return [f"{name}-{n}" for n in range(deals)]

    def warm(name: str) -> tuple[Callable[[], Any], Callable[[Any], None]]:
        def prepare() -> Tracker:
            tracker = Tracker(backend.store(target), pipe, record_definitions=False)
            opened.append(tracker)
            for id in ids(name):  # remembered from here on
                stages[id] = _move(tracker, id, stages[id])
            return tracker

        def run(tracker: Tracker) -> None:
            for _ in range(max(1, moves // deals)):
                for id in ids(name):
                    stages[id] = _move(tracker, id, stages[id])

        return prepare, run

    def cold(name: str) -> tuple[Callable[[], Any], Callable[[Any], None]]:
        def prepare() -> Tracker:
            opened.append(Tracker(backend.store(target), pipe, record_definitions=False))
            return opened[-1]

        def run(tracker: Tracker) -> None:
            for id in ids(name):
                stages[id] = _move(tracker, id, stages[id])

        return prepare, run

    warm_moves = max(1, moves // deals) * deals
    warm_times = best_times({"short": warm("short"), "long": warm("long")}, rounds=rounds)
    cold_times = best_times({"short": cold("short"), "long": cold("long")}, rounds=rounds)
    for tracker in opened:
        tracker.store.close()
    measured = {
        WARM: {name: seconds / warm_moves for name, seconds in warm_times.items()},
        COLD: {name: seconds / deals for name, seconds in cold_times.items()},
    }
    if backend.async_store is not None:
        measured[ASYNC_COLD] = _async_cold(backend.async_store, target, ids, stages, rounds)
    return measured


def _async_cold(
    make: Callable[[str], Any],
    target: str,
    ids: Callable[[str], list[str]],
    stages: dict[str, str],
    rounds: int,
) -> dict[str, float]:
    """Seconds per ``AsyncTracker`` move on deals a fresh async store loads first."""
    loop = asyncio.new_event_loop()
    opened: list[Any] = []

    def cold(name: str) -> tuple[Callable[[], Any], Callable[[Any], None]]:
        def prepare() -> AsyncTracker:
            opened.append(make(target))
            loop.run_until_complete(opened[-1].open())
            return AsyncTracker(opened[-1], pipeline(), record_definitions=False)

        async def moves(tracker: AsyncTracker) -> None:
            for id in ids(name):
                flip = tracker.reopen(id) if stages[id] == LOST else tracker.lose(id, "x")
                stages[id] = (await flip).stage

        return prepare, lambda tracker: loop.run_until_complete(moves(tracker))

    try:
        times = best_times({"short": cold("short"), "long": cold("long")}, rounds=rounds)
        for store in opened:
            loop.run_until_complete(store.close())
    finally:
        loop.close()
    return {name: seconds / len(ids(name)) for name, seconds in times.items()}
