"""The SQL backends the store tests run on, with raw SQL access beside each store."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from salespipeline.storage import DealStore, PostgresStore, SQLiteStore

RawSQL = Callable[[str, tuple[Any, ...]], list[Any]]


@attrs.frozen
class Backend:
    """Opens stores on one database and runs raw SQL (``?`` marks) beside them."""

    name: str
    open: Callable[[], DealStore]
    raw: RawSQL


def sqlite_raw(path: Path) -> RawSQL:
    def run(sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with sqlite3.connect(path) as connection:
            return connection.execute(sql, params).fetchall()

    return run


def postgres_raw(conninfo: str) -> RawSQL:
    import psycopg

    def run(sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            cursor = connection.execute(sql.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []

    return run


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each SQL backend in turn: a SQLite file, then a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        path = tmp_path / "deals.sqlite"
        return Backend("sqlite", lambda: SQLiteStore(path), sqlite_raw(path))
    conninfo = request.getfixturevalue("postgres_database")
    return Backend("postgres", lambda: PostgresStore(conninfo), postgres_raw(conninfo))
