"""Draining the change log: ``consumer.poll`` against a hand-written paging loop.

Both read the same ``sp_changes`` table, written by a Tracker (deals opened and
updated), page by page in position order, and record their progress once per page.
The reference is what an app would write by hand: ``SELECT … WHERE position > ?
ORDER BY position LIMIT ?`` and an upsert of its position, its handler given the raw
row (on PostgreSQL with ``changed`` as text, as the store reads it, not parsed). ``poll``
also decodes each row into a checked ``Change``, whose ``changed`` is parsed on first use.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from benchmarks.persist import QUALIFIED, Backend, _transaction
from salespipeline import Tracker, presets

OURS = "salespipeline consumer.poll (no-op handler)"
REFERENCE = "hand-written SELECT … WHERE position > ? LIMIT ? paging loop"
COLUMNS = (
    "position, deal_id, version, at_us, kind, actor, reason, key, from_stage, to_stage, changed"
)


def fill(backend: Backend, n_changes: int) -> str:
    """A fresh database whose log holds ``n_changes`` changes (five per deal)."""
    target = backend.fresh()
    with backend.store(target) as store:
        tracker = Tracker(store, presets.seven_stage(), actor="bench")
        for n in range(max(1, n_changes // 5)):
            deal_id = f"deal-{n:06d}"
            tracker.open("seven_stage", deal_id, amount=1000, bant=QUALIFIED)
            for step in range(1, 5):
                tracker.update(deal_id, amount=1000 + step, owner=f"rep-{step}")
    return target


def drain_ours(backend: Backend, target: str, name: str, page: int) -> tuple[int, float]:
    with backend.store(target) as store:
        consumer = store.consumer(name)
        started = time.perf_counter()
        handled = 0
        while count := consumer.poll(_ignore, limit=page):
            handled += count
        return handled, time.perf_counter() - started


def drain_by_hand(backend: Backend, target: str, name: str, page: int) -> tuple[int, float]:
    p = backend.placeholder
    select = f"SELECT {COLUMNS} FROM sp_changes WHERE position > {p} ORDER BY position LIMIT {p}"
    record = (
        f"INSERT INTO sp_consumers (name, position) VALUES ({p}, {p}) "
        "ON CONFLICT (name) DO UPDATE SET position = excluded.position"
    )
    connection = backend.connect(target)
    if hasattr(connection, "adapters"):  # psycopg: JSONB as text, as the store reads it
        from psycopg.types.string import TextLoader

        connection.adapters.register_loader("jsonb", TextLoader)
    try:
        started = time.perf_counter()
        handled, after = 0, 0
        while True:
            rows = connection.execute(select, (after, page)).fetchall()
            if not rows:
                break
            for row in rows:
                _ignore(row)
            after = rows[-1][0]
            handled += len(rows)
            with _transaction(connection, backend.begin) as cursor:
                cursor.execute(record, (name, after))
        return handled, time.perf_counter() - started
    finally:
        connection.close()


def _ignore(change: Any) -> None:
    """The no-op handler."""


_names = itertools.count()


def measure(backend: Backend, *, changes: int, rounds: int, page: int = 500) -> dict[str, float]:
    """Changes drained per second by each contender, best of ``rounds`` turns each."""
    target = fill(backend, changes)
    best = {OURS: 0.0, REFERENCE: 0.0}
    for _ in range(rounds):
        for label, drain in ((REFERENCE, drain_by_hand), (OURS, drain_ours)):
            handled, seconds = drain(backend, target, f"bench-{next(_names)}", page)
            best[label] = max(best[label], handled / max(seconds, 1e-9))
    return best
