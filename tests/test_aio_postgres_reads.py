"""What AsyncPostgresStore reads: a report in one snapshot, and a move's load no more
rows than the sync store's, whatever the deal's history."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import pytest

from salespipeline import Bant, Tracker, presets
from salespipeline.aio import AsyncPostgresStore, AsyncTracker
from salespipeline.storage import PostgresStore
from salespipeline.storage.sql._plan import Statement
from salespipeline.storage.sql._store import LOAD_LATEST

pytest.importorskip("psycopg")
pytest.importorskip("psycopg_pool")

R = TypeVar("R")
QUALIFIED = Bant(budget=True, authority=True, need=True, timeline=True)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
PIPELINE = presets.four_stage()


def run(scenario: Callable[[], Awaitable[R]]) -> R:
    return asyncio.run(scenario())  # type: ignore[arg-type]


def _after_each_statement(
    monkeypatch: pytest.MonkeyPatch, hook: Callable[[Statement, Any], None]
) -> None:
    """Call ``hook(statement, result)`` after every statement the async store runs."""
    original = AsyncPostgresStore._execute

    async def execute(self: AsyncPostgresStore, cursor: Any, statement: Statement) -> Any:
        result = await original(self, cursor, statement)
        hook(statement, result)
        return result

    monkeypatch.setattr(AsyncPostgresStore, "_execute", execute)


@pytest.mark.postgres
def test_a_write_between_the_report_s_statements_leaves_its_figures_as_of_its_snapshot(
    postgres_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_of = T0 + timedelta(hours=1)
    writer = PostgresStore(postgres_database)
    late = Tracker(writer, PIPELINE, clock=lambda: T0 + timedelta(hours=2))
    grouped: list[str] = []

    def write_after_the_grouped_rows(statement: Statement, result: Any) -> None:
        if "GROUP BY" in statement.sql and not grouped:
            grouped.append(statement.sql)
            late.advance("d0")  # changed after as_of: the log's reads would rebuild it

    async def scenario() -> None:
        async with AsyncPostgresStore(postgres_database) as store:
            tracker = AsyncTracker(store, PIPELINE, clock=lambda: T0)
            for i in range(3):
                await tracker.open("four_stage", f"d{i}", amount=100, bant=QUALIFIED)
            before = await store.report(PIPELINE, as_of=as_of)
            _after_each_statement(monkeypatch, write_after_the_grouped_rows)
            during = await store.report(PIPELINE, as_of=as_of)
            assert grouped, "the report ran no grouped statement"
            assert during == before
            assert during.deals == 3 and during.stage_counts["lead_generation"] == 3
            assert await store.report(PIPELINE, as_of=as_of) == before  # d0 rebuilt now

    try:
        run(scenario)
    finally:
        writer.close()


@pytest.mark.postgres
def test_the_async_report_equals_the_sync_one(postgres_database: str) -> None:
    sync = PostgresStore(postgres_database)
    tracker = Tracker(sync, PIPELINE, clock=lambda: T0)
    for i in range(4):
        tracker.open("four_stage", f"d{i}", amount=100 + i, bant=QUALIFIED)
    later = Tracker(sync, PIPELINE, clock=lambda: T0 + timedelta(days=2))
    later.advance("d1")
    later.lose("d2", "no budget")
    as_ofs = (T0 + timedelta(days=1), T0 + timedelta(days=3))

    async def scenario() -> list[Any]:
        async with AsyncPostgresStore(postgres_database) as store:
            return [await store.report(PIPELINE, as_of=t) for t in as_ofs]

    try:
        assert run(scenario) == [sync.report(PIPELINE, as_of=t) for t in as_ofs]
    finally:
        sync.close()


# -- a move's load: the latest history entries, however long the history ----------------


def _opened_with_history(conninfo: str, entries: dict[str, int]) -> None:
    """Deals with ``entries[id]`` history entries each (lost and reopened in turn)."""
    pipeline = presets.four_stage()
    with PostgresStore(conninfo) as store:
        tracker = Tracker(store, pipeline)
        for id, count in entries.items():
            tracker.open("four_stage", id, bant=QUALIFIED)
            for i in range(count - 1):
                (tracker.reopen(id) if i % 2 else tracker.lose(id, "no budget"))


@pytest.mark.postgres
def test_a_cold_move_reads_as_many_history_rows_whatever_the_history(
    postgres_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _opened_with_history(postgres_database, {"short": 7, "long": 601})
    read: dict[str, int] = {}
    moving: list[str] = []

    def count_rows(statement: Statement, result: Any) -> None:
        if moving and statement.fetch == "all":
            read[moving[0]] = read.get(moving[0], 0) + len(result)

    _after_each_statement(monkeypatch, count_rows)

    async def scenario() -> list[Any]:
        moved = []
        for id in ("short", "long"):
            async with AsyncPostgresStore(postgres_database) as store:  # a fresh store: cold
                moving[:] = [id]
                deal = await AsyncTracker(store, PIPELINE, record_definitions=False).lose(
                    id, "no budget"
                )
                moving.clear()
                moved.append((deal, await store.get(id)))
        return moved

    (short, short_stored), (long, long_stored) = run(scenario)
    assert read == {"short": 1 + 7, "long": 1 + LOAD_LATEST}  # the row, its latest entries
    assert tuple(long.history) == tuple(long_stored.history)  # the older ones read when needed
    assert len(long.history) == 602 and long == long_stored
    assert tuple(short.history) == tuple(short_stored.history)


@pytest.mark.postgres
def test_an_older_history_left_unread_is_read_before_the_store_closes(
    postgres_database: str,
) -> None:
    _opened_with_history(postgres_database, {"long": 101})

    async def scenario() -> Any:
        async with AsyncPostgresStore(postgres_database) as store:
            return await store.load("long")

    deal = run(scenario)
    assert [entry.version for entry in deal.history] == list(range(1, 102))


@pytest.mark.postgres
def test_on_an_app_s_pool_the_older_history_is_read_when_first_needed(
    postgres_database: str,
) -> None:
    import psycopg_pool

    _opened_with_history(postgres_database, {"long": 41})

    async def scenario() -> Any:
        pool = psycopg_pool.AsyncConnectionPool(postgres_database, min_size=1, open=False)
        async with pool, AsyncPostgresStore(pool) as store:
            deal = await store.load("long")
            assert not deal.history.loaded  # the older entries are not read yet
            assert [e.version for e in deal.history] == list(range(1, 42))
            return deal, await store.get("long")

    loaded, stored = run(scenario)
    assert loaded == stored


@pytest.mark.postgres
def test_on_an_app_s_connection_a_load_reads_the_whole_history(postgres_database: str) -> None:
    import psycopg

    _opened_with_history(postgres_database, {"long": 41})

    async def scenario() -> Any:
        connection = await psycopg.AsyncConnection.connect(postgres_database)
        try:
            async with AsyncPostgresStore(connection) as store:
                return await store.load("long")
        finally:
            await connection.close()

    deal = run(scenario)
    assert deal.history.loaded and len(deal.history) == 41
