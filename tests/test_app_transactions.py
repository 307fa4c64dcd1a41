"""Stores on an app's own connection: the app's transaction decides, the app's
connection is left as it was, and a connection that cannot take a call is refused
when the store is made (the contract itself runs on app connections in
test_storage.py)."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import SteppingClock
from salespipeline import Tracker, ValidationError, presets
from salespipeline.deal import Bant
from salespipeline.storage import DealStore, PostgresStore, SQLiteStore

QUALIFIED = Bant(budget=True, authority=True, need=True, timeline=True)
INVOICES = "CREATE TABLE IF NOT EXISTS invoices (deal_id TEXT PRIMARY KEY, total INTEGER)"


class App:
    """An app's connection, a store on it, and the invoice SQL the app runs itself."""

    def __init__(self, connection: Any, store: DealStore, mark: str) -> None:
        self.connection, self.store, self.mark = connection, store, mark
        self.tracker = Tracker(store, presets.four_stage(), clock=SteppingClock())
        self.tracker.open("four_stage", "d1", amount=900, bant=QUALIFIED)
        for _ in range(3):
            self.tracker.advance("d1")

    def invoice(self, deal_id: str) -> None:
        self.connection.execute(
            f"INSERT INTO invoices (deal_id, total) VALUES ({self.mark}, 900)", (deal_id,)
        )

    def invoices(self) -> list[Any]:
        return list(self.connection.execute("SELECT deal_id FROM invoices").fetchall())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[App]:
    """Each backend with an app connection in its driver's default transaction mode."""
    if request.param == "sqlite":
        connection: Any = sqlite3.connect(tmp_path / "app.sqlite", check_same_thread=False)
        mark, store = "?", None
    else:
        import psycopg

        connection = psycopg.connect(request.getfixturevalue("postgres_database"))
        mark = "%s"
    connection.execute(INVOICES)
    connection.commit()
    store = SQLiteStore(connection) if request.param == "sqlite" else PostgresStore(connection)
    yield App(connection, store, mark)
    store.close()
    connection.close()


def test_the_invoice_and_the_win_commit_together(app: App) -> None:
    with app.store.transaction():
        app.invoice("d1")
        app.tracker.win("d1")
    app.connection.rollback()  # nothing is left for the app to undo
    assert app.invoices() == [("d1",)]
    assert app.tracker.get("d1").stage == "won"


def test_an_error_after_the_win_leaves_the_deal_open_and_no_invoice(app: App) -> None:
    log_before = app.store.log()

    def fail() -> None:
        with app.store.transaction():
            app.invoice("d1")
            app.tracker.win("d1")
            _ = 1 / 0

    with pytest.raises(ZeroDivisionError):
        fail()
    app.connection.rollback()
    assert app.invoices() == []
    assert app.tracker.get("d1").stage == "closing"
    assert app.store.log() == log_before
    assert app.tracker.win("d1").stage == "won"  # nothing stale was remembered


def test_calls_join_a_transaction_the_app_has_open_and_its_rollback_undoes_them(
    app: App,
) -> None:
    app.invoice("d1")  # the driver begins the app's transaction
    app.tracker.win("d1")
    app.connection.rollback()
    assert app.invoices() == []
    assert app.tracker.get("d1").stage == "closing"
    assert [c.version for c in app.store.changes("d1")] == [1, 2, 3, 4]
    assert app.tracker.win("d1").version == 5  # nothing stale was remembered
    assert app.store.verify() == ()


def test_calls_in_a_transaction_the_app_has_open_commit_with_it(app: App) -> None:
    app.invoice("d1")
    app.tracker.win("d1")
    app.connection.commit()
    assert app.invoices() == [("d1",)]
    assert app.tracker.get("d1").stage == "won"


def test_a_call_outside_any_transaction_is_committed_and_leaves_none_open(app: App) -> None:
    app.tracker.win("d1")
    app.connection.rollback()
    assert app.tracker.get("d1").stage == "won"
    if isinstance(app.connection, sqlite3.Connection):
        assert not app.connection.in_transaction
    else:
        assert app.connection.info.transaction_status.name == "IDLE"


def test_closing_the_store_leaves_the_app_s_connection_open(app: App) -> None:
    app.store.close()
    assert app.invoices() == []


# -- refused at construction -----------------------------------------------------------


def test_a_closed_sqlite_connection_is_refused(tmp_path: Path) -> None:
    connection = sqlite3.connect(tmp_path / "closed.sqlite")
    connection.close()
    with pytest.raises(ValidationError, match="pass an open connection"):
        SQLiteStore(connection)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sqlite3's autocommit is Python 3.12+")
def test_a_sqlite_connection_that_is_always_in_a_transaction_is_committed_by_the_app(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pep249.sqlite"
    connection = sqlite3.connect(path, autocommit=False, check_same_thread=False)  # type: ignore[call-arg]
    store = SQLiteStore(connection)
    Tracker(store, presets.four_stage()).open("four_stage", "d1")
    assert _committed_ids(path) == []  # not yet
    connection.commit()
    assert _committed_ids(path) == [("d1",)]
    store.close()
    connection.close()


def _committed_ids(path: Path) -> list[Any]:
    reader = sqlite3.connect(path)
    try:
        tables = reader.execute("SELECT name FROM sqlite_master WHERE name = 'sp_deals'")
        if not tables.fetchall():
            return []  # even the store's tables are in the app's uncommitted transaction
        return reader.execute("SELECT id FROM sp_deals").fetchall()
    finally:
        reader.close()


@pytest.mark.postgres
@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda c: c.close(), id="closed"),
        pytest.param(lambda c: _fail(c), id="in a failed transaction"),
    ],
)
def test_a_postgres_connection_that_cannot_take_a_call_is_refused(
    postgres_database: str, spoil: Callable[[Any], None]
) -> None:
    import psycopg

    with psycopg.connect(postgres_database) as connection:
        spoil(connection)
        with pytest.raises(ValidationError, match=r"closed|roll it back first"):
            PostgresStore(connection)


def _fail(connection: Any) -> None:
    import psycopg

    with pytest.raises(psycopg.errors.DivisionByZero):
        connection.execute("SELECT 1 / 0")


@pytest.mark.postgres
def test_async_connections_and_pools_are_refused_by_the_sync_store(
    postgres_database: str,
) -> None:
    import asyncio

    import psycopg
    from psycopg_pool import AsyncConnectionPool

    async def refused() -> None:
        connection = await psycopg.AsyncConnection.connect(postgres_database)
        pool = AsyncConnectionPool(postgres_database, open=False)
        try:
            for value in (connection, pool):
                with pytest.raises(ValidationError, match="synchronous"):
                    PostgresStore(value)
        finally:
            await connection.close()

    asyncio.run(refused())


@pytest.mark.postgres
def test_a_closed_pool_is_refused(postgres_database: str) -> None:
    from psycopg_pool import ConnectionPool

    pool = ConnectionPool(postgres_database, open=True)
    pool.close()
    with pytest.raises(ValidationError, match="closed"):
        PostgresStore(pool)
