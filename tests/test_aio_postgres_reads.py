"""What AsyncPostgresStore reads: a report in one snapshot."""

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
