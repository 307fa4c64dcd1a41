"""SQLiteStore: the embedded default, one file that several processes may share.

Writes take SQLite's write lock up front (``BEGIN IMMEDIATE``) and wait for it up
to ``timeout`` seconds, so concurrent writers queue instead of failing with
"database is locked"; WAL journaling lets readers run while one process writes.

``synchronous`` is SQLite's durability setting: ``"full"`` (the default) syncs the
log to disk at every commit, so a committed change survives a power loss;
``"normal"`` syncs only at checkpoints, several times faster on disks where a sync
costs milliseconds, and in WAL mode a power loss may drop the last commits but never
corrupts the database (a crash of the process alone loses nothing).

Threads: a store owns one connection and serialises its calls with a lock, so one
store may be shared by the threads of a process. Processes: open one store per
process (a store is not usable in a child created by ``fork``; open a new one there).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Final

from salespipeline.deal import Deal
from salespipeline.errors import StorageError, ValidationError, shown
from salespipeline.storage import _codec
from salespipeline.storage._options import check_path, check_timeout
from salespipeline.storage._process import check_process, let_go
from salespipeline.storage.sql._dialect import AmountPart, Dialect
from salespipeline.storage.sql._schema import SQLITE_DDL
from salespipeline.storage.sql._store import SQLStore, Statements, UniqueViolation

__all__ = ["SQLiteStore"]

_SYNCHRONOUS: Final = ("full", "normal")

_DIALECT: Final = Dialect(
    name="sqlite",
    placeholder="?",
    json_param="?",
    modulo="%",
    pipeline_scan="+d.pipeline",
    amount=(AmountPart("amount_whole", split=10**9), AmountPart("amount_frac", -12, 10**6)),
    greatest_function="MAX",
)
"""SQLite has no exact decimal type: amounts are summed from their integer parts."""

_STATEMENTS: Final = Statements(
    _DIALECT, ddl=SQLITE_DDL, extra_deal_columns=tuple(part.column for part in _DIALECT.amount)
)


class SQLiteStore(SQLStore):
    """Deals in a SQLite file (or ``":memory:"``), safe for threads and processes."""

    sql = _STATEMENTS

    def __init__(
        self, path: str | os.PathLike[str], *, timeout: float = 30.0, synchronous: str = "full"
    ) -> None:
        if not isinstance(synchronous, str) or synchronous not in _SYNCHRONOUS:
            raise ValidationError(
                f"synchronous must be 'full' or 'normal', not {shown(synchronous)}"
            )
        self._path = check_path(path)
        seconds = check_timeout(timeout, zero=True)
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._connection: sqlite3.Connection | None = _connect(self._path, seconds, synchronous)
        try:
            self._ensure_schema()
        except BaseException:
            self.close()
            raise

    @property
    def path(self) -> str:
        return self._path

    def __repr__(self) -> str:
        return f"SQLiteStore({self._path!r})"

    def close(self) -> None:
        """Close the connection; in a forked child, let go of the inherited one untouched."""
        self._read_unread()
        with self._lock:
            connection, self._connection = self._connection, None
            if connection is not None and let_go(connection, self._pid):
                connection.close()

    def _row_values(self, deal: Deal) -> list[Any]:
        """The deal's columns with the amount as exact text, then its integer parts."""
        row = dict(zip(_codec.DEAL_COLUMNS, _codec.deal_values(deal), strict=True))
        row["amount"], *parts = _amount_values(deal)
        return [*row.values(), *parts]

    def _attribute_values(self, deal: Deal, name: str) -> tuple[Any, ...]:
        if name == "amount":
            return _amount_values(deal)
        return super()._attribute_values(deal, name)

    def _open_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise StorageError(f"{self!r} is closed")
        check_process(self, self._pid)
        return self._connection

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            try:
                cursor = self._open_connection().cursor()
                cursor.execute(begin)
                try:
                    yield cursor
                    cursor.execute("COMMIT")
                except BaseException:
                    cursor.connection.rollback()
                    raise
            except sqlite3.Error as error:
                raise _mapped(error, self._path) from error

    @contextmanager
    def _statement(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            try:
                yield self._open_connection().cursor()
            except sqlite3.Error as error:
                raise _mapped(error, self._path) from error

    def _read(self) -> AbstractContextManager[sqlite3.Cursor]:
        return self._transaction("BEGIN")

    def _write(self) -> AbstractContextManager[sqlite3.Cursor]:
        return self._transaction("BEGIN IMMEDIATE")


def _amount_values(deal: Deal) -> tuple[str, int, int]:
    """The amount as exact text, then its integer parts (``amount_whole``, ``amount_frac``),
    which SQL sums exactly."""
    return (str(deal.amount), *_codec.amount_parts(deal.amount))


def _connect(path: str, timeout: float, synchronous: str) -> sqlite3.Connection:
    try:
        connection = sqlite3.connect(
            path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as error:
        raise StorageError(f"cannot open SQLite database {path!r}: {error}") from error
    try:
        connection.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    except sqlite3.Error as error:
        connection.close()
        raise _mapped(error, path) from error
    return connection


def _mapped(error: sqlite3.Error, path: str) -> StorageError:
    if isinstance(error, sqlite3.IntegrityError) and "UNIQUE" in str(error):
        of_key = "sp_changes.deal_id, sp_changes.key" in str(error)
        return UniqueViolation(f"SQLite refused a duplicate row: {error}", of_key=of_key)
    if "locked" in str(error) or "busy" in str(error):
        return StorageError(f"SQLite database {path!r} stayed locked past the timeout: {error}")
    return StorageError(f"SQLite database {path!r} failed: {error}")
