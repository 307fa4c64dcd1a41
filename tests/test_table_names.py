"""prefix= and schema=: a SQL store's tables beside an app's own, or in a schema of their own."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from salespipeline import Tracker, ValidationError, presets
from salespipeline.storage import DealStore, PostgresStore, SQLiteStore
from salespipeline.testing import StoreContract


class TestSQLitePrefixed(StoreContract):
    @pytest.fixture(autouse=True)
    def _file(self, tmp_path: Path) -> None:
        self.path = tmp_path / "app.sqlite"

    def make_store(self) -> DealStore:
        return SQLiteStore(self.path, prefix="crm_")

    def reopen_store(self) -> DealStore:
        return SQLiteStore(self.path, prefix="crm_")


@pytest.mark.postgres
class TestPostgresInASchema(StoreContract):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_database: str) -> None:
        self.conninfo = postgres_database
        self.schema = f"sales_{uuid.uuid4().hex[:8]}"

    def make_store(self) -> DealStore:
        return PostgresStore(self.conninfo, schema=self.schema, prefix="crm_")

    def reopen_store(self) -> DealStore:
        return PostgresStore(self.conninfo, schema=self.schema, prefix="crm_")


def _sqlite_names(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        return {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}


def test_two_prefixes_in_one_file_keep_apart(tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite"
    with SQLiteStore(path, prefix="crm_") as crm, SQLiteStore(path, prefix="mkt_") as marketing:
        Tracker(crm, presets.four_stage()).open("four_stage", "d1")
        Tracker(marketing, presets.funnel()).open("funnel", "d1")
        assert [d.pipeline for d in crm.find()] == ["four_stage"]
        assert [d.pipeline for d in marketing.find()] == ["funnel"]
        assert crm.verify() == marketing.verify() == ()
    names = _sqlite_names(path)
    assert {"crm_deals", "crm_changes", "mkt_deals", "crm_changes_key", "mkt_deals_owner"} <= names
    assert not any(name.startswith("sp_") for name in names)


def test_a_prefixed_store_maps_a_reused_key_to_its_error(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "app.sqlite", prefix="crm_") as store:
        tracker = Tracker(store, presets.four_stage())
        tracker.open("four_stage", "d1")
        tracker.update("d1", owner="kim", key="k1")
        with pytest.raises(ValidationError, match="key"):
            tracker.advance("d1", key="k1")


@pytest.mark.parametrize("prefix", ["", "crm", "CRM_", "1crm_", "crm-x_", "a" * 30 + "_", 7])
def test_a_prefix_that_is_not_a_plain_name_is_refused_before_any_file(
    tmp_path: Path, prefix: Any
) -> None:
    path = tmp_path / "app.sqlite"
    with pytest.raises(ValidationError, match="prefix"):
        SQLiteStore(path, prefix=prefix)
    assert not path.exists()


def test_sqlite_has_no_schemas(tmp_path: Path) -> None:
    from salespipeline.storage.sql._names import check_names

    with pytest.raises(ValidationError, match="SQLite has no schemas"):
        check_names("sp_", "sales", schemas=False)


@pytest.mark.postgres
@pytest.mark.parametrize("schema", ["", "sales-x", '"; DROP TABLE x; --', "9lives", 3])
def test_a_schema_that_is_not_an_identifier_is_refused(
    postgres_database: str, schema: Any
) -> None:
    with pytest.raises(ValidationError, match="schema must be an identifier"):
        PostgresStore(postgres_database, schema=schema)


@pytest.mark.postgres
def test_the_tables_live_in_the_schema_asked_for(postgres_database: str) -> None:
    import psycopg

    schema = f"sales_{uuid.uuid4().hex[:8]}"
    with PostgresStore(postgres_database, schema=schema, prefix="crm_") as store:
        Tracker(store, presets.four_stage()).open("four_stage", "d1")
    with psycopg.connect(postgres_database) as connection:
        rows = connection.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema IN (%s, current_schema()) ORDER BY table_name",
            (schema,),
        ).fetchall()
    assert rows == [
        (schema, f"crm_{name}") for name in ("changes", "consumers", "deals", "meta", "pipelines")
    ]
