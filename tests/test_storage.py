"""Storage: the shipped contract against all three stores, then what only a database shows.

The database-specific tests reach under the store with raw SQL: corrupt rows must
raise ``CorruptRecordError`` naming the deal, a newer schema must be refused, a save
that fails half-way must leave nothing behind, and backend errors must arrive as
``StorageError`` with the original chained.
"""

from __future__ import annotations

import calendar
import os
import re
import sqlite3
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from _backends import Backend, postgres_raw, sqlite_raw
from salespipeline import (
    ConcurrencyError,
    CorruptRecordError,
    DealNotFoundError,
    StorageError,
    Tracker,
)
from salespipeline.storage import DealStore, MemoryStore, PostgresStore, SQLiteStore
from salespipeline.testing import StoreContract
from salespipeline.testing.contract import QUALIFIED, T0, contract_pipeline, rich_deal

# -- the contract, three times ---------------------------------------------------------


class TestMemoryStore(StoreContract):
    def make_store(self) -> DealStore:
        return MemoryStore()


class TestSQLiteInMemory(StoreContract):
    def make_store(self) -> DealStore:
        return SQLiteStore(":memory:")


class TestSQLiteFile(StoreContract):
    @pytest.fixture(autouse=True)
    def _file(self, tmp_path: Path) -> None:
        self.path = tmp_path / "deals.sqlite"

    def make_store(self) -> DealStore:
        return SQLiteStore(self.path)

    def reopen_store(self) -> DealStore:
        return SQLiteStore(self.path)


@pytest.mark.postgres
class TestPostgres(StoreContract):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_database: str) -> None:
        self.conninfo = postgres_database

    def make_store(self) -> DealStore:
        return PostgresStore(self.conninfo)

    def reopen_store(self) -> DealStore:
        return PostgresStore(self.conninfo)


class TestSQLiteAppConnection(StoreContract):
    """An app's own connection, in sqlite3's default (implicit transaction) mode."""

    @pytest.fixture(autouse=True)
    def _file(self, tmp_path: Path) -> Iterator[None]:
        self.path = tmp_path / "app.sqlite"
        self.connections: list[sqlite3.Connection] = []
        yield
        for connection in self.connections:
            connection.close()

    def make_store(self) -> DealStore:
        connection = sqlite3.connect(self.path, check_same_thread=False)
        self.connections.append(connection)
        return SQLiteStore(connection)

    def reopen_store(self) -> DealStore:
        return self.make_store()


@pytest.mark.postgres
class TestPostgresAppConnection(StoreContract):
    """An app's own psycopg connection, not in autocommit mode (psycopg's default)."""

    @pytest.fixture(autouse=True)
    def _database(self, postgres_database: str) -> Iterator[None]:
        self.conninfo = postgres_database
        self.connections: list[Any] = []
        yield
        for connection in self.connections:
            connection.close()

    def make_store(self) -> DealStore:
        import psycopg

        connection = psycopg.connect(self.conninfo)
        self.connections.append(connection)
        return PostgresStore(connection)

    def reopen_store(self) -> DealStore:
        return self.make_store()


@pytest.mark.postgres
class TestPostgresAppPool(StoreContract):
    """An app's own psycopg_pool.ConnectionPool, its connections not in autocommit mode."""

    @pytest.fixture(autouse=True)
    def _database(self, postgres_database: str) -> Iterator[None]:
        self.conninfo = postgres_database
        self.pools: list[Any] = []
        yield
        for pool in self.pools:
            pool.close()

    def make_store(self) -> DealStore:
        from psycopg_pool import ConnectionPool

        pool = ConnectionPool(self.conninfo, min_size=1, max_size=3, open=True)
        self.pools.append(pool)
        return PostgresStore(pool)

    def reopen_store(self) -> DealStore:
        return self.make_store()


def _documented_adapter() -> type[DealStore]:
    """The ``ShelfStore`` from docs/how-to/storage-adapter.md (its first python block)."""
    page = Path(__file__).resolve().parent.parent / "docs" / "how-to" / "storage-adapter.md"
    code = re.search(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.DOTALL)
    assert code is not None
    namespace: dict[str, Any] = {"__name__": "storage_adapter_doc"}
    exec(compile(code.group(1), str(page), "exec"), namespace)
    store: type[DealStore] = namespace["ShelfStore"]
    return store


class TestDocumentedShelfStore(StoreContract):
    """The how-to's example adapter passes the contract it tells readers to run."""

    @pytest.fixture(autouse=True)
    def _file(self, tmp_path: Path) -> None:
        self.path = tmp_path / "deals.shelf"
        self.store_class = _documented_adapter()

    transactions = False  # the guide's adapter leaves transaction() out
    erasure = False  # and erase()

    def make_store(self) -> DealStore:
        return self.store_class(self.path)  # type: ignore[call-arg]

    def reopen_store(self) -> DealStore:
        return self.store_class(self.path)  # type: ignore[call-arg]


# -- raw access to each database ---------------------------------------------------------


@pytest.fixture
def stored(backend: Backend) -> Iterator[DealStore]:
    """A store on ``backend`` holding ``rich_deal`` under the id ``deal-1``."""
    with backend.open() as store:
        store.add(rich_deal(contract_pipeline()))
        yield store


# -- corrupt rows ------------------------------------------------------------------------

CORRUPTIONS = {
    "unknown stage": ("UPDATE sp_deals SET stage = ? WHERE id = ?", ("",)),
    "bad amount": ("UPDATE sp_deals SET amount = ? WHERE id = ?", ("-5",)),
    "bad currency": ("UPDATE sp_deals SET currency = ? WHERE id = ?", ("DOLLARS",)),
    "history gap": ("DELETE FROM sp_changes WHERE version = 3 AND deal_id = ?", ()),
    "no history": ("DELETE FROM sp_changes WHERE deal_id = ?", ()),
    "stage disagrees with history": ("UPDATE sp_deals SET stage = ? WHERE id = ?", ("lead",)),
    "probability out of range": ("UPDATE sp_deals SET probability = ? WHERE id = ?", (7.5,)),
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_corrupt_row_raises_corrupt_record_error_naming_the_deal(
    backend: Backend, stored: DealStore, corruption: str
) -> None:
    sql, values = CORRUPTIONS[corruption]
    backend.raw(sql, (*values, "deal-1"))
    with pytest.raises(CorruptRecordError) as error:
        stored.get("deal-1")
    assert error.value.deal_id == "deal-1"
    assert "deal-1" in str(error.value)
    with pytest.raises(CorruptRecordError):
        list(stored.find())


def test_undecodable_sqlite_columns_are_corrupt_records(tmp_path: Path) -> None:
    path = tmp_path / "deals.sqlite"
    cases = {
        "fields": "{not json",
        "amount": "twelve",
        "bant_need": 2,
        "created_at_us": "yesterday",
    }
    with SQLiteStore(path) as store:
        for index, (column, value) in enumerate(cases.items()):
            store.add(rich_deal(contract_pipeline(), id=f"d{index}"))
            sqlite_raw(path)(
                f"UPDATE sp_deals SET {column} = ? WHERE id = ?", (value, f"d{index}")
            )
            with pytest.raises(CorruptRecordError) as error:
                store.get(f"d{index}")
            assert error.value.deal_id == f"d{index}"
            assert error.value.__cause__ is not None


# -- schema ----------------------------------------------------------------------------------


def test_the_schema_version_is_recorded(backend: Backend, stored: DealStore) -> None:
    assert backend.raw("SELECT value FROM sp_meta WHERE key = ?", ("schema_version",)) == [("3",)]


def test_a_newer_schema_is_refused_with_a_clear_error(backend: Backend) -> None:
    backend.open().close()
    backend.raw("UPDATE sp_meta SET value = ? WHERE key = ?", ("99", "schema_version"))
    with pytest.raises(StorageError, match="schema version 99, newer"):
        backend.open()


def test_opening_twice_does_not_recreate_or_duplicate_anything(backend: Backend) -> None:
    with backend.open() as store:
        store.add(rich_deal(contract_pipeline()))
    with backend.open() as store:
        assert [d.id for d in store.find()] == ["deal-1"]
    assert backend.raw("SELECT COUNT(*) FROM sp_meta", ()) == [(1,)]


# -- how values are stored -------------------------------------------------------------------


def test_sqlite_keeps_amounts_as_exact_text_with_integer_parts(tmp_path: Path) -> None:
    path = tmp_path / "deals.sqlite"
    with SQLiteStore(path) as store:
        store.add(contract_pipeline().start("x", amount="1234.5000", at=T0))
    rows = sqlite_raw(path)(
        "SELECT typeof(amount), amount, amount_whole, amount_frac, typeof(created_at_us), "
        "created_at_us FROM sp_deals",
        (),
    )
    micros = calendar.timegm(T0.utctimetuple()) * 10**6 + T0.microsecond
    assert rows[0] == ("text", "1234.5000", 1234, 500_000_000_000, "integer", micros)


def test_sqlite_keeps_unicode_fields_readable(tmp_path: Path) -> None:
    path = tmp_path / "deals.sqlite"
    with SQLiteStore(path) as store:
        store.add(rich_deal(contract_pipeline()))
    [(fields,)] = sqlite_raw(path)("SELECT fields FROM sp_deals", ())
    assert "김민수" in fields


@pytest.mark.postgres
def test_postgres_column_types_are_exact(postgres_database: str) -> None:
    PostgresStore(postgres_database).close()
    rows = postgres_raw(postgres_database)(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = ? AND column_name IN (?, ?, ?, ?)",
        ("sp_deals", "amount", "created_at_us", "fields", "bant_need"),
    )
    assert dict(rows) == {
        "amount": "numeric",
        "created_at_us": "bigint",
        "fields": "jsonb",
        "bant_need": "boolean",
    }


# -- atomicity with a failure injected half-way --------------------------------------------


def test_a_save_failing_after_the_deal_row_rolls_the_row_back(
    backend: Backend, stored: DealStore
) -> None:
    pipeline = contract_pipeline()
    deal = stored.get("deal-1")
    backend.raw(
        "INSERT INTO sp_changes (deal_id, version, from_stage, to_stage, at_us, reason, kind, "
        "changed) VALUES (?, ?, ?, ?, ?, ?, 'move', '{}')",
        ("deal-1", deal.version + 1, "closing", "won", 0, None),
    )
    with pytest.raises(CorruptRecordError):
        stored.save(pipeline.win(deal, at=T0.replace(year=2027)))
    assert stored.get("deal-1") == deal


# -- backend errors arrive as StorageError ---------------------------------------------------


def test_a_broken_table_surfaces_as_storage_error_with_the_cause(
    backend: Backend, stored: DealStore
) -> None:
    backend.raw("DROP TABLE sp_changes", ())
    with pytest.raises(StorageError) as error:
        stored.get("deal-1")
    assert error.value.__cause__ is not None
    assert not isinstance(error.value, (sqlite3.Error, ConcurrencyError))


def test_a_sqlite_file_locked_past_the_timeout_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "deals.sqlite"
    pipeline = contract_pipeline()
    with SQLiteStore(path, timeout=0.05) as store:
        store.add(pipeline.start("x", at=T0))
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StorageError, match="locked") as error:
                store.save(pipeline.lose(store.get("x"), "price", at=T0))
            assert isinstance(error.value.__cause__, sqlite3.OperationalError)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert store.get("x").stage == "lead"


def test_a_sqlite_path_that_cannot_be_opened_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"cannot open|failed"):
        SQLiteStore(tmp_path / "missing-dir" / "deals.sqlite")


@pytest.mark.postgres
def test_an_unreachable_postgres_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="cannot connect"):
        PostgresStore(f"host={tmp_path} port=1 user=nobody dbname=nothing", timeout=0.5)


def test_postgres_store_is_importable_without_psycopg_and_fails_only_on_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setitem(sys.modules, "psycopg_pool", None)
    with pytest.raises(StorageError, match=r"salespipeline\[postgres\]"):
        PostgresStore("dbname=anything")


# -- definitions recorded by a Tracker -----------------------------------------------------


def test_a_tracker_records_its_pipelines_for_report_only_readers(backend: Backend) -> None:
    pipeline = contract_pipeline()
    with backend.open() as store:
        tracker = Tracker(store, [pipeline])
        tracker.open("contract", "t1", amount=Decimal("5.5"), bant=QUALIFIED)
        tracker.advance("t1")
    with backend.open() as reader:
        assert reader.pipelines() == (pipeline,)
        report = reader.report("contract", as_of=T0.replace(year=2030))
        assert report.stage_counts["proposal"] == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_sqlite_store_refuses_work_in_a_forked_child(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "deals.sqlite") as store:
        pid = os.fork()
        if pid == 0:  # the child: must refuse, whatever happens exit without pytest
            try:
                store.get("x")
            except StorageError as error:
                os._exit(0 if "another process" in str(error) else 1)
            except BaseException:
                os._exit(2)
            os._exit(3)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        with pytest.raises(DealNotFoundError):
            store.get("x")  # the parent's store still works
