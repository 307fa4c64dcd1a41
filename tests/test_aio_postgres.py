"""AsyncPostgresStore: the whole async store contract on the suite's throw-away
PostgreSQL, its refusals of what it cannot use, and an app's transaction joined."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import pytest

from salespipeline import Bant, ValidationError, presets
from salespipeline.aio import AsyncDealStore, AsyncPostgresStore, AsyncTracker
from salespipeline.errors import StorageError
from salespipeline.storage import PostgresStore
from salespipeline.testing import AsyncStoreContract

psycopg = pytest.importorskip("psycopg")
psycopg_pool = pytest.importorskip("psycopg_pool")

R = TypeVar("R")
QUALIFIED = Bant(budget=True, authority=True, need=True, timeline=True)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


@pytest.mark.postgres
class TestAsyncPostgres(AsyncStoreContract):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_database: str) -> None:
        self.conninfo = postgres_database

    def make_async_store(self) -> AsyncDealStore:
        return AsyncPostgresStore(self.conninfo)

    def reopen_async_store(self) -> AsyncDealStore:
        return AsyncPostgresStore(self.conninfo)


@pytest.mark.postgres
class TestAsyncPostgresPrefixed(AsyncStoreContract):
    """Tables named with another prefix, in a schema of their own (a new one per test)."""

    @pytest.fixture(autouse=True)
    def _database(self, postgres_database: str) -> None:
        self.conninfo = postgres_database
        self.schema = f"crm_{uuid.uuid4().hex[:8]}"

    def make_async_store(self) -> AsyncDealStore:
        return AsyncPostgresStore(self.conninfo, schema=self.schema, prefix="app_")

    def reopen_async_store(self) -> AsyncDealStore:
        return AsyncPostgresStore(self.conninfo, schema=self.schema, prefix="app_")


def run(scenario: Callable[[], Awaitable[R]]) -> R:
    return asyncio.run(scenario())  # type: ignore[arg-type]


@pytest.fixture
def conninfo(postgres_database: str) -> str:
    return postgres_database


@pytest.mark.postgres
def test_a_sync_connection_or_pool_is_refused_with_the_async_one_named(conninfo: str) -> None:
    with (
        psycopg.connect(conninfo) as connection,
        pytest.raises(ValidationError, match=r"psycopg\.AsyncConnection"),
    ):
        AsyncPostgresStore(connection)
    with (
        psycopg_pool.ConnectionPool(conninfo, min_size=1, open=True) as pool,
        pytest.raises(ValidationError, match="AsyncConnectionPool"),
    ):
        AsyncPostgresStore(pool)


@pytest.mark.postgres
def test_the_sync_store_refuses_async_connections_and_pools(conninfo: str) -> None:
    async def scenario() -> None:
        connection = await psycopg.AsyncConnection.connect(conninfo)
        try:
            with pytest.raises(ValidationError, match="synchronous"):
                PostgresStore(connection)
        finally:
            await connection.close()
        pool = psycopg_pool.AsyncConnectionPool(conninfo, min_size=1, open=False)
        with pytest.raises(ValidationError, match="synchronous"):
            PostgresStore(pool)

    run(scenario)


@pytest.mark.postgres
def test_a_closed_or_failed_connection_and_a_closed_pool_are_refused_with_the_fix(
    conninfo: str,
) -> None:
    async def scenario() -> None:
        connection = await psycopg.AsyncConnection.connect(conninfo)
        with pytest.raises(psycopg.Error):
            await connection.execute("SELECT 1/0")
        with pytest.raises(ValidationError, match=r"roll it back first"):
            AsyncPostgresStore(connection)
        await connection.close()
        with pytest.raises(ValidationError, match="closed: pass an open connection"):
            AsyncPostgresStore(connection)
        pool = psycopg_pool.AsyncConnectionPool(conninfo, min_size=1, open=False)
        with pytest.raises(ValidationError, match=r"await pool.open\(\)"):
            AsyncPostgresStore(pool)

    run(scenario)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"max_connections": 0}, "max_connections"),
        ({"timeout": -1}, "timeout"),
        ({"schema": "no-such name"}, "schema"),
        ({"prefix": "1x"}, "prefix"),
    ],
)
def test_bad_options_are_refused_when_the_store_is_made(
    options: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValidationError, match=named):
        AsyncPostgresStore("host=/nowhere dbname=x", **options)


def test_nothing_is_opened_before_open_and_calls_before_say_how() -> None:
    store = AsyncPostgresStore("host=/nowhere dbname=x")
    with pytest.raises(StorageError, match=r"await store\.open"):
        run(lambda: store.get("a"))


@pytest.mark.postgres
def test_an_app_s_async_pool_is_used_and_left_open(conninfo: str) -> None:
    async def scenario() -> None:
        async with psycopg_pool.AsyncConnectionPool(conninfo, min_size=1, max_size=3) as pool:
            async with AsyncPostgresStore(pool) as store:
                tracker = AsyncTracker(store, presets.four_stage())
                await tracker.open("four_stage", "a", bant=QUALIFIED)
                assert (await tracker.advance("a")).stage == "qualification"
            assert not pool.closed
            async with pool.connection() as connection:
                cursor = await connection.execute("SELECT stage FROM sp_deals WHERE id = 'a'")
                assert await cursor.fetchone() == ("qualification",)

    run(scenario)


async def lose_then_fail(store: AsyncDealStore, tracker: AsyncTracker) -> None:
    async with store.transaction():
        await tracker.lose("a", "no budget")
        raise RuntimeError("the invoice could not be written")


@pytest.mark.postgres
def test_a_tracker_call_joins_the_app_s_transaction_and_rolls_back_with_it(
    conninfo: str,
) -> None:
    async def scenario() -> None:
        connection = await psycopg.AsyncConnection.connect(conninfo)
        try:
            async with AsyncPostgresStore(connection) as store:
                tracker = AsyncTracker(store, presets.four_stage())
                await tracker.open("four_stage", "a", bant=QUALIFIED)
                with pytest.raises(RuntimeError, match="invoice"):
                    await lose_then_fail(store, tracker)
                assert (await store.get("a")).stage == "lead_generation"
                assert [c.version for c in await store.changes("a")] == [1]
                async with store.transaction():
                    await tracker.advance("a")
                assert (await store.get("a")).version == 2
        finally:
            await connection.close()

    run(scenario)


async def win_inside(connection: Any, tracker: AsyncTracker) -> None:
    async with connection.transaction():
        await tracker.win("a")
        raise RuntimeError("the invoice could not be written")


@pytest.mark.postgres
def test_an_exception_after_win_in_the_app_s_own_transaction_leaves_the_deal_open(
    conninfo: str,
) -> None:
    async def scenario() -> None:
        connection = await psycopg.AsyncConnection.connect(conninfo)
        try:
            async with AsyncPostgresStore(connection) as store:
                tracker = AsyncTracker(store, presets.four_stage())
                await tracker.open("four_stage", "a", bant=QUALIFIED)
                for stage in ("qualification", "proposal", "closing"):
                    await tracker.move("a", stage)
                with pytest.raises(RuntimeError, match="invoice"):
                    await win_inside(connection, tracker)
                assert (await store.get("a")).is_open
                assert [c.to_stage for c in await store.changes("a")][-1] == "closing"
        finally:
            await connection.close()

    run(scenario)


async def cancelled_after(work: Awaitable[Any], steps: int) -> None:
    """Start ``work``, let the loop run ``steps`` times, cancel it and wait for its end."""
    task = asyncio.ensure_future(work)
    for _ in range(steps):
        await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait([task])


@pytest.mark.postgres
def test_a_save_cancelled_at_any_point_leaves_the_deal_saved_or_untouched(conninfo: str) -> None:
    async def scenario() -> None:
        async with AsyncPostgresStore(conninfo) as store:
            await store.add(presets.four_stage().start("a", bant=QUALIFIED, at=T0))
            for steps in range(16):
                stored = await store.get("a")
                changed = stored.evolve(
                    amount=stored.amount + 1, at=stored.updated_at + timedelta(minutes=1)
                )
                await cancelled_after(store.save(changed), steps)
                after = await store.get("a")
                assert after.version in (stored.version, changed.version)
                expected = changed if after.version > stored.version else stored
                assert after.amount == expected.amount
            versions = [change.version for change in await store.changes("a")]
            assert versions == list(range(1, (await store.get("a")).version + 1))
            assert await store.verify() == ()

    run(scenario)
