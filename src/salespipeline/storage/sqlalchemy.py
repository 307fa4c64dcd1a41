"""SQLAlchemyStore: deals in a database an app reaches through SQLAlchemy Core 2.

``pip install 'salespipeline[sqlalchemy]'``. Give it the app's ``Engine`` (each
call checks a connection out of the engine's pool) or one ``Connection`` (the
store's calls then join the transaction the app has open on it, each a
savepoint, and the app's commit decides). No ORM model is asked of the app.

The store speaks the SQL of the SQLite and PostgreSQL stores, through the driver
connection SQLAlchemy holds, inside the transactions SQLAlchemy begins, so it
keeps every promise of theirs (the same schema, log, checks and errors): SQLite
through ``pysqlite``, PostgreSQL through ``psycopg`` (3). Other dialects are
refused when the store is made. On a PostgreSQL engine, outside a block, a
statement atomic on its own (a move's load, and its save) runs in autocommit on a
connection of the engine's pool, as ``PostgresStore`` runs it: one round trip
instead of three; the connection goes back to the pool as it came.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final, cast

from salespipeline.errors import StorageError, ValidationError
from salespipeline.storage._blocks import Blocks
from salespipeline.storage.postgres import PostgresStore, _json_as_text, _unique
from salespipeline.storage.sql._names import DEFAULT, Renamed, check_names
from salespipeline.storage.sql._store import Cursor, SQLStore
from salespipeline.storage.sqlite import SQLiteStore, _mapped

__all__ = ["SQLAlchemyStore"]

_DRIVERS: Final = {"sqlite": "pysqlite", "postgresql": "psycopg"}


def _import_sqlalchemy() -> Any:
    try:
        import sqlalchemy
    except ImportError as error:
        raise StorageError(
            "SQLAlchemyStore needs SQLAlchemy 2: pip install 'salespipeline[sqlalchemy]'"
        ) from error
    return sqlalchemy


class SQLAlchemyStore(SQLStore):
    """Deals in the database of a SQLAlchemy ``Engine`` or ``Connection`` (SQLite, PostgreSQL)."""

    def __new__(cls, bind: Any, **names: Any) -> SQLAlchemyStore:
        kind = _OnSQLite if _dialect(bind) == "sqlite" else _OnPostgres
        return super().__new__(kind if cls is SQLAlchemyStore else cls)

    def __init__(self, bind: Any, *, schema: str | None = None, prefix: str = "sp_") -> None:
        sqlalchemy = _import_sqlalchemy()
        self._names = check_names(prefix, schema, schemas=_dialect(bind) == "postgresql")
        self._sqlalchemy = sqlalchemy
        self._engine: Any = bind if isinstance(bind, sqlalchemy.engine.Engine) else None
        self._connection: Any = None if self._engine is not None else bind
        if self._connection is not None and (
            self._connection.closed or self._connection.invalidated
        ):
            raise ValidationError("the SQLAlchemy Connection is closed: pass an open connection")
        self._lock = threading.RLock()
        self._blocks = Blocks()
        self._pinned = threading.local()  # the connection of this thread's block
        self._closed = False
        self._name = repr(bind.engine.url.render_as_string(hide_password=True))
        self._path = self._name
        self._ensure_schema()

    def __repr__(self) -> str:
        return f"SQLAlchemyStore({self._name})"

    def close(self) -> None:
        """Let go of the engine or connection (the app's, left open)."""
        self._read_unread()
        self._closed = True

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Make this thread's calls inside the block one transaction on one connection
        (a savepoint inside another block, or inside the app's own transaction)."""
        with self._blocks.entered(), self._connected() as connection:
            pinned = getattr(self._pinned, "connection", None)
            self._pinned.connection = connection
            try:
                with self._begun(connection, write=True):
                    yield
            finally:
                self._pinned.connection = pinned

    def _when_committed(self, callback: Callable[[], None]) -> None:
        self._blocks.when_committed(callback)

    def _in_transaction(self) -> bool:
        if getattr(self._pinned, "connection", None) is not None:
            return True
        return self._connection is not None and bool(self._connection.in_transaction())

    @contextmanager
    def _read(self) -> Iterator[Any]:
        with self._call(write=False) as cursor:
            yield cursor

    @contextmanager
    def _write(self) -> Iterator[Any]:
        with self._call(write=True) as cursor:
            yield cursor

    @contextmanager
    def _statement(self) -> Iterator[Any]:
        with self._call(write=self._statements_write) as cursor:
            yield cursor

    _statements_write = True
    """Whether ``_statement`` may write (PostgreSQL's moves do; SQLite's are reads)."""

    @contextmanager
    def _call(self, *, write: bool) -> Iterator[Cursor]:
        """A driver cursor inside a transaction (or savepoint) of its own."""
        with (
            self._connected() as connection,
            self._begun(connection, write=write) as cursor,
            self._errors_mapped(),
        ):
            yield cursor

    @contextmanager
    def _connected(self) -> Iterator[Any]:
        """This thread's block's connection, the app's (one call at a time), or the pool's."""
        if self._closed:
            raise StorageError(f"{self!r} is closed")
        pinned = getattr(self._pinned, "connection", None)
        if pinned is not None:
            yield pinned
        elif self._connection is not None:
            with self._lock:
                yield self._connection
        else:
            with self._errors_mapped():
                connection = self._engine.connect()
            try:
                yield connection
            finally:
                connection.close()

    @contextmanager
    def _begun(self, connection: Any, *, write: bool) -> Iterator[Cursor]:
        """A transaction on ``connection`` (a savepoint inside one), and a driver cursor in it."""
        with self._errors_mapped():
            nested = connection.in_transaction()
            block = connection.begin_nested() if nested else connection.begin()
            driver = connection.connection.dbapi_connection
            cursor = self._opened(driver, first=not nested, write=write)
        try:
            yield cursor
        except BaseException:
            with self._errors_mapped():
                block.rollback()
            raise
        with self._errors_mapped():
            block.commit()

    def _opened(self, driver: Any, *, first: bool, write: bool) -> Cursor:
        """A cursor on the driver connection, its transaction begun as the store begins one."""
        return cast(Cursor, driver.cursor())

    @contextmanager
    def _errors_mapped(self) -> Iterator[None]:
        """Raise the driver's and SQLAlchemy's errors as this library's."""
        sqlalchemy = self._sqlalchemy
        try:
            yield
        except sqlalchemy.exc.DBAPIError as error:
            raise self._as_storage_error(error.orig) from error
        except sqlalchemy.exc.SQLAlchemyError as error:
            raise StorageError(f"SQLAlchemy {self._name} failed: {error}") from error
        except self._driver_errors as error:
            raise self._as_storage_error(error) from error

    _driver_errors: tuple[type[BaseException], ...] = ()

    def _as_storage_error(self, error: Any) -> StorageError:
        return StorageError(f"{self._name} failed: {error}")


class _OnSQLite(SQLAlchemyStore, SQLiteStore):
    """SQLite through SQLAlchemy's pysqlite driver."""

    sql = SQLiteStore.sql
    _statements_write = False

    def __init__(self, bind: Any, *, schema: str | None = None, prefix: str = "sp_") -> None:
        import sqlite3

        self._driver_errors = (sqlite3.Error,)
        SQLAlchemyStore.__init__(self, bind, schema=schema, prefix=prefix)

    def _opened(self, driver: Any, *, first: bool, write: bool) -> Cursor:
        cursor = driver.cursor()
        if first and not driver.in_transaction:  # pysqlite leaves BEGIN to the first write
            cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        return cast(Cursor, cursor if self._names is DEFAULT else Renamed(cursor, self._names))

    def _as_storage_error(self, error: Any) -> StorageError:
        return _mapped(error, self._name, self._names)


class _OnPostgres(SQLAlchemyStore, PostgresStore):
    """PostgreSQL through SQLAlchemy's psycopg (3) driver."""

    sql = PostgresStore.sql

    def __init__(self, bind: Any, *, schema: str | None = None, prefix: str = "sp_") -> None:
        import psycopg

        self._psycopg = psycopg
        self._owned = False
        self._driver_errors = (psycopg.Error,)
        SQLAlchemyStore.__init__(self, bind, schema=schema, prefix=prefix)

    def _opened(self, driver: Any, *, first: bool, write: bool) -> Cursor:
        cursor = driver.cursor()
        _json_as_text(cursor)
        if first and not write:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return cast(Cursor, cursor if self._names is DEFAULT else Renamed(cursor, self._names))

    @contextmanager
    def _statement(self) -> Iterator[Any]:
        """On the engine, outside a block: a statement in autocommit, one round trip
        where ``BEGIN``, it and ``COMMIT`` take three (as ``PostgresStore`` runs it)."""
        if self._engine is None or getattr(self._pinned, "connection", None) is not None:
            with super()._statement() as cursor:
                yield cursor
            return
        with self._alone() as cursor:
            yield cursor

    @contextmanager
    def _alone(self) -> Iterator[Cursor]:
        """A driver cursor in autocommit on a connection of the engine's pool, checked out
        as ``Engine.raw_connection`` does (the pool's events, pre-ping and reset apply);
        the driver's autocommit is put back as it was before it returns to the pool."""
        if self._closed:
            raise StorageError(f"{self!r} is closed")
        with self._errors_mapped():
            pooled = self._engine.raw_connection()
        try:
            driver = pooled.dbapi_connection
            was = driver.autocommit
            with self._errors_mapped():
                driver.autocommit = True
                try:
                    yield self._opened(driver, first=False, write=True)
                finally:
                    driver.autocommit = was
        finally:
            pooled.close()

    def _as_storage_error(self, error: Any) -> StorageError:
        if isinstance(error, self._psycopg.errors.UniqueViolation):
            return _unique(error, self._names)
        return StorageError(f"PostgreSQL {self._name} failed: {error}")


def _dialect(bind: Any) -> str:
    """The dialect of an Engine or Connection, refused when the store cannot speak it."""
    sqlalchemy = _import_sqlalchemy()
    if not isinstance(bind, (sqlalchemy.engine.Engine, sqlalchemy.engine.Connection)):
        raise ValidationError(
            f"SQLAlchemyStore takes a SQLAlchemy Engine or Connection, not {type(bind).__name__}"
            " (an AsyncEngine is for the async stores)"
        )
    dialect = bind.dialect
    if _DRIVERS.get(dialect.name) != dialect.driver:
        wanted = ", ".join(f"{name}+{driver}" for name, driver in _DRIVERS.items())
        raise ValidationError(
            f"SQLAlchemyStore speaks {wanted}, not {dialect.name}+{dialect.driver}"
        )
    return str(dialect.name)
