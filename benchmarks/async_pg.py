"""Async moves on PostgreSQL: ``AsyncTracker.move`` with many tasks on one event loop.

Three contenders walk the same number of deals through the seven-stage preset, each
on a fresh schema made by salespipeline: ``AsyncTracker.move`` on an
``AsyncPostgresStore`` with ``TASKS`` tasks on one loop; the sync ``Tracker.move``
driven by one thread (what an app gains by going async); and hand-written async
psycopg doing the same ``UPDATE … WHERE version`` + ``INSERT`` per move on a pool
of the same size, with the same tasks (the bar: what the library costs). A fourth
contender is that hand-written code keeping the log's promise too (positions rise in
commit order: the store's advisory lock taken before the insert, held to the commit),
to tell what the promise costs from what the library does. Bars from issue 18:
async ≥ 1.5x sync; async ≥ 0.8x hand-written. Each is measured on two
servers: a durable one (PostgreSQL's default, each commit waits for the disk's
flush, as in production) and the test suite's ``fsync=off`` one (no commit waits
on the disk: the CPU is all there is to share, and async gains the least).

    python benchmarks/async_pg.py            # the full size (moves=2,000)
    python benchmarks/async_pg.py --quick    # a smoke size (its numbers mean nothing)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import persist
from salespipeline import Tracker, presets
from salespipeline.aio import AsyncPostgresStore, AsyncTracker

TASKS = 50
CONNECTIONS = 8
ASYNC = "salespipeline AsyncTracker.move, 50 tasks on one loop"
SYNC = "salespipeline Tracker.move, 1 thread"
HAND = "hand-written async psycopg: UPDATE … WHERE version + INSERT, 50 tasks"
HAND_ORDERED = (
    "hand-written async psycopg, positions in commit order: UPDATE … WHERE version, "
    "the log's advisory lock, INSERT, 50 tasks"
)


async def _in_tasks(walk: Any, deal_ids: list[str]) -> None:
    """``walk(id)`` for every deal, ``TASKS`` tasks taking the deals in turn."""
    queue = list(reversed(deal_ids))

    async def worker() -> None:
        while queue:
            await walk(queue.pop())

    await asyncio.gather(*(worker() for _ in range(TASKS)))


async def _async_tracker(conninfo: str, deal_ids: list[str]) -> float:
    async with AsyncPostgresStore(conninfo, max_connections=CONNECTIONS) as store:
        tracker = AsyncTracker(store, presets.seven_stage(), record_definitions=False)

        async def walk(deal_id: str) -> None:
            for stage in persist.STAGES[1:]:
                await tracker.move(deal_id, stage)

        await asyncio.gather(*(store.count() for _ in range(TASKS)))  # the pool grown, as theirs
        started = time.perf_counter()
        await _in_tasks(walk, deal_ids)
        return time.perf_counter() - started


def _sync_tracker(conninfo: str, deal_ids: list[str]) -> float:
    with persist._postgres_store(conninfo) as store:
        tracker = Tracker(store, presets.seven_stage(), record_definitions=False)
        started = time.perf_counter()
        for deal_id in deal_ids:
            for stage in persist.STAGES[1:]:
                tracker.move(deal_id, stage)
        return time.perf_counter() - started


async def _hand_written(conninfo: str, deal_ids: list[str], *, ordered: bool = False) -> float:
    """The hand-written moves; ``ordered``: taking the store's log lock before the insert."""
    from psycopg_pool import AsyncConnectionPool

    from salespipeline.storage.postgres import _LOG_LOCK

    update = (
        "UPDATE sp_deals SET stage = %s, stage_entered_at_us = %s, updated_at_us = %s, "
        "version = %s, moves = moves + 1 WHERE id = %s AND version = %s"
    )
    insert = (
        "INSERT INTO sp_changes (deal_id, version, at_us, kind, from_stage, to_stage, "
        "changed) VALUES (%s, %s, %s, 'move', %s, %s, CAST(%s AS JSONB))"
    )
    async with AsyncConnectionPool(
        conninfo, min_size=CONNECTIONS, max_size=CONNECTIONS, kwargs={"autocommit": True}
    ) as pool:
        await pool.wait()

        async def walk(deal_id: str) -> None:
            stage, version = persist.STAGES[0], 1
            for to in persist.STAGES[1:]:
                async with pool.connection() as connection, connection.transaction():
                    now = time.time_ns() // 1000
                    cursor = await connection.execute(
                        update, (to, now, now, version + 1, deal_id, version)
                    )
                    if cursor.rowcount != 1:
                        raise persist.Conflict(deal_id)
                    if ordered:
                        await connection.execute("SELECT pg_advisory_xact_lock(%s)", (_LOG_LOCK,))
                    changed = f'{{"stage": ["{stage}", "{to}"]}}'
                    await connection.execute(
                        insert, (deal_id, version + 1, now, stage, to, changed)
                    )
                stage, version = to, version + 1

        started = time.perf_counter()
        await _in_tasks(walk, deal_ids)
        return time.perf_counter() - started


def measure(backend: persist.Backend, *, moves: int = 2_000, rounds: int = 3) -> dict[str, float]:
    """Moves per second of each contender on ``backend`` (best of ``rounds`` runs)."""
    n_deals = max(1, moves // persist.MOVES_PER_DEAL)
    deal_ids = persist.ids(n_deals)
    best: dict[str, float] = {}
    for _ in range(rounds):
        spent = {
            ASYNC: asyncio.run(_async_tracker(persist.setup(backend, n_deals), deal_ids)),
            SYNC: _sync_tracker(persist.setup(backend, n_deals), deal_ids),
            HAND: asyncio.run(_hand_written(persist.setup(backend, n_deals), deal_ids)),
            HAND_ORDERED: asyncio.run(
                _hand_written(persist.setup(backend, n_deals), deal_ids, ordered=True)
            ),
        }
        for name, seconds in spent.items():
            best[name] = min(best.get(name, seconds), seconds)
    return {name: n_deals * persist.MOVES_PER_DEAL / seconds for name, seconds in best.items()}


SERVERS = {
    "durable (PostgreSQL's default: every commit flushed to disk)": True,
    "test server (fsync=off: no commit waits on the disk)": False,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke size (seconds)")
    quick = parser.parse_args().quick
    for server, durable in SERVERS.items():
        with persist.postgres_backend(durable=durable) as backend:
            if isinstance(backend, str):
                print(backend)
                return
            rates = measure(backend, moves=60 if quick else 2_000, rounds=1 if quick else 3)
        print(f"PostgreSQL server: {server}")
        for name, rate in rates.items():
            print(f"  {name}: {rate:,.0f} moves/s")
        print(f"  async / sync: {rates[ASYNC] / rates[SYNC]:.2f}x (bar 1.5x)")
        print(f"  async / hand-written: {rates[ASYNC] / rates[HAND]:.2f}x (bar 0.8x, goal 0.9x)")
        print(f"  async / hand-written in commit order: {rates[ASYNC] / rates[HAND_ORDERED]:.2f}x")
        promise = rates[HAND_ORDERED] / rates[HAND]
        print(f"  hand-written in commit order / hand-written: {promise:.2f}x")


if __name__ == "__main__":
    main()
