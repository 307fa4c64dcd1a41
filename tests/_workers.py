"""Top-level worker functions for tests/test_multiprocess.py ("spawn" children import them)."""

from __future__ import annotations

from typing import Any

from salespipeline import ConcurrencyError, Pipeline, Stage, Tracker, TransitionNotAllowedError
from salespipeline.storage import DealStore, PostgresStore, SQLiteStore

DEAL_ID = "shared"


def ping_pong() -> Pipeline:
    """Two open stages a deal can be moved back and forth between."""
    return Pipeline("ping_pong", [Stage("ping", probability=0.2), Stage("pong", probability=0.5)])


def open_store(kind: str, target: str) -> DealStore:
    return SQLiteStore(target) if kind == "sqlite" else PostgresStore(target)


def mover(kind: str, target: str, worker: int, rounds: int, barrier: Any, results: Any) -> None:
    """Move the shared deal to the other stage ``rounds`` times; report the moves it wrote.

    Each move carries a unique reason, so a returned deal whose last change has that
    reason was written by this call (a retry that finds the deal already there returns
    someone else's change).
    """
    written: list[str] = []
    with open_store(kind, target) as store:
        tracker = Tracker(store, [ping_pong()], retries=50)
        barrier.wait()
        for round in range(rounds):
            tag = f"w{worker}-{round}"
            seen = tracker.get(DEAL_ID)
            destination = "pong" if seen.stage == "ping" else "ping"
            try:
                moved = tracker.move(DEAL_ID, destination, reason=tag)
            except (ConcurrencyError, TransitionNotAllowedError):
                continue
            if moved.history[-1].reason == tag:
                written.append(tag)
    results.put((worker, written))
