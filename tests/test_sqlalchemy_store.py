"""SQLAlchemyStore: the whole store contract on an app's SQLAlchemy engine and connection,
SQLite and PostgreSQL, and the app's own transaction deciding."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sqlalchemy = pytest.importorskip("sqlalchemy", reason="the sqlalchemy extra is not installed")

from _postgres import sqlalchemy_url  # noqa: E402
from salespipeline import Bant, ConcurrencyError, Tracker, ValidationError, presets  # noqa: E402
from salespipeline.storage import DealStore, SQLAlchemyStore  # noqa: E402
from salespipeline.testing import StoreContract  # noqa: E402


class _Engines:
    """Makes engines (and connections) for a contract class and disposes of them after."""

    @pytest.fixture(autouse=True)
    def _engines(self) -> Iterator[None]:
        self.opened: list[Any] = []
        yield
        for thing in reversed(self.opened):
            (thing.close if hasattr(thing, "in_transaction") else thing.dispose)()

    def engine(self) -> Any:
        engine = sqlalchemy.create_engine(self.url)
        self.opened.append(engine)
        return engine

    def connection(self) -> Any:
        connection = self.engine().connect()
        self.opened.append(connection)
        return connection


class TestSQLiteEngine(_Engines, StoreContract):
    @pytest.fixture(autouse=True)
    def _file(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path / 'deals.sqlite'}"

    def make_store(self) -> DealStore:
        return SQLAlchemyStore(self.engine())

    def reopen_store(self) -> DealStore:
        return SQLAlchemyStore(self.engine())


class TestSQLiteConnection(TestSQLiteEngine):
    def make_store(self) -> DealStore:
        return SQLAlchemyStore(self.connection())

    def reopen_store(self) -> DealStore:
        return SQLAlchemyStore(self.connection())


class TestSQLiteEnginePrefixed(TestSQLiteEngine):
    def make_store(self) -> DealStore:
        return SQLAlchemyStore(self.engine(), prefix="crm_")

    def reopen_store(self) -> DealStore:
        return SQLAlchemyStore(self.engine(), prefix="crm_")


@pytest.mark.postgres
class TestPostgresEngine(_Engines, StoreContract):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_database: str) -> None:
        self.url = sqlalchemy_url(postgres_database)

    def make_store(self) -> DealStore:
        return SQLAlchemyStore(self.engine())

    def reopen_store(self) -> DealStore:
        return SQLAlchemyStore(self.engine())


@pytest.mark.postgres
class TestPostgresConnection(TestPostgresEngine):
    def make_store(self) -> DealStore:
        return SQLAlchemyStore(self.connection())

    def reopen_store(self) -> DealStore:
        return SQLAlchemyStore(self.connection())


# -- the app's own transaction ---------------------------------------------------------

INVOICES = "CREATE TABLE invoices (deal_id TEXT PRIMARY KEY, total INTEGER)"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Any]:
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'app.sqlite'}")
    with engine.begin() as connection:
        connection.exec_driver_sql(INVOICES)
    yield engine
    engine.dispose()


def _tracker(store: DealStore) -> Tracker:
    tracker = Tracker(store, presets.four_stage())
    tracker.open("four_stage", "d1", bant=Bant(True, True, True, True))
    for _ in range(3):
        tracker.advance("d1")
    return tracker


def _invoices(engine: Any) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.exec_driver_sql("SELECT deal_id FROM invoices").all())


def test_the_app_s_sqlalchemy_transaction_decides(engine: Any) -> None:
    with engine.connect() as connection:
        tracker = _tracker(SQLAlchemyStore(connection))
        connection.commit()
        connection.exec_driver_sql("INSERT INTO invoices VALUES ('d1', 900)")
        tracker.win("d1")
        connection.rollback()
        assert tracker.get("d1").stage == "closing"
        connection.exec_driver_sql("INSERT INTO invoices VALUES ('d1', 900)")
        tracker.win("d1")
        connection.commit()
    assert _invoices(engine) == [("d1",)]
    with engine.connect() as connection:
        assert SQLAlchemyStore(connection).get("d1").stage == "won"


def test_a_store_transaction_on_an_engine_commits_or_rolls_back_as_a_whole(engine: Any) -> None:
    store = SQLAlchemyStore(engine)
    tracker = _tracker(store)

    def fail() -> None:
        with store.transaction():
            tracker.win("d1")
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        fail()
    assert tracker.get("d1").stage == "closing"
    assert [c.version for c in store.changes("d1")] == [1, 2, 3, 4]
    with store.transaction():
        tracker.win("d1")
    assert tracker.get("d1").stage == "won"


def test_what_the_store_cannot_speak_is_refused_at_once(engine: Any) -> None:
    with pytest.raises(ValidationError, match="Engine or Connection"):
        SQLAlchemyStore("sqlite:///deals.sqlite")
    connection = engine.connect()
    connection.close()
    with pytest.raises(ValidationError, match="closed"):
        SQLAlchemyStore(connection)


# -- PostgreSQL on an engine: statements atomic on their own run in autocommit ----------


@pytest.fixture
def pg_engine(postgres_database: str) -> Iterator[Any]:
    engine = sqlalchemy.create_engine(sqlalchemy_url(postgres_database))
    yield engine
    engine.dispose()


def _traced(engine: Any, tmp_path: Path, work: Any) -> str:
    """What the driver sent while ``work()`` ran (libpq's trace of the pooled connection)."""
    trace = tmp_path / "libpq.trace"
    with trace.open("w") as out:
        with engine.connect() as connection:
            connection.connection.dbapi_connection.pgconn.trace(out.fileno())
        try:
            work()
        finally:
            with engine.connect() as connection:
                connection.connection.dbapi_connection.pgconn.untrace()
    return trace.read_text()


@pytest.mark.postgres
def test_a_move_on_a_postgres_engine_is_one_statement_without_begin_or_commit(
    pg_engine: Any, tmp_path: Path
) -> None:
    store = SQLAlchemyStore(pg_engine)
    tracker = _tracker(store)
    sent = _traced(pg_engine, tmp_path, lambda: tracker.win("d1"))
    assert "WITH moved AS (UPDATE" in sent
    assert '"BEGIN"' not in sent and '"COMMIT"' not in sent
    assert SQLAlchemyStore(pg_engine).get("d1").stage == "won"


@pytest.mark.postgres
@pytest.mark.parametrize("level", [None, "AUTOCOMMIT", "SERIALIZABLE"])
def test_the_engine_s_connections_are_left_as_the_app_configured_them(
    postgres_database: str, level: str | None
) -> None:
    options = {} if level is None else {"isolation_level": level}
    engine = sqlalchemy.create_engine(sqlalchemy_url(postgres_database), **options)
    try:
        with engine.connect() as connection:
            before = connection.get_isolation_level()
        tracker = _tracker(SQLAlchemyStore(engine))
        tracker.win("d1")
        with engine.connect() as connection:
            driver = connection.connection.dbapi_connection
            assert connection.get_isolation_level() == before
            assert driver.autocommit is (level == "AUTOCOMMIT")
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_refused_save_on_an_engine_leaves_no_transaction_open(pg_engine: Any) -> None:
    store = SQLAlchemyStore(pg_engine)
    tracker = _tracker(store)
    stale = store.get("d1")
    tracker.win("d1")
    with pytest.raises(ConcurrencyError):
        store.save(presets.four_stage().win(stale))
    with pg_engine.connect() as connection:
        driver = connection.connection.dbapi_connection
        assert driver.info.transaction_status == driver.info.transaction_status.IDLE
        assert driver.autocommit is False
    assert store.get("d1").stage == "won"
