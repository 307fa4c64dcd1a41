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

An app's own ``sqlite3.Connection`` may be passed instead of a path: the store then
uses it as the app configured it, never closes it, and joins any transaction the
app has open on it (each call a savepoint), so the app's commit decides.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ClassVar, Final, cast

from salespipeline.deal import Deal
from salespipeline.errors import StorageError, ValidationError, shown
from salespipeline.storage import _codec
from salespipeline.storage._blocks import Blocks
from salespipeline.storage._options import check_path, check_timeout
from salespipeline.storage._process import check_process, let_go
from salespipeline.storage.sql._dialect import AmountPart, Dialect, json_each_field_match
from salespipeline.storage.sql._names import DEFAULT, Names, Renamed, check_names
from salespipeline.storage.sql._plan import Statement, Steps
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
    updated_scan="+d.updated_at_us",
    amount=(AmountPart("amount_whole", split=10**9), AmountPart("amount_frac", -12, 10**6)),
    field_match=json_each_field_match,
    index_names="SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'sp_deals'",
    greatest_function="MAX",
    since="likelihood({}, 0.01)",
)
"""SQLite has no exact decimal type: amounts are summed from their integer parts."""

_STATEMENTS: Final = Statements(
    _DIALECT, ddl=SQLITE_DDL, extra_deal_columns=tuple(part.column for part in _DIALECT.amount)
)


def _amount_values(deal: Deal) -> tuple[str, int, int]:
    """The amount as exact text, then its integer parts (``amount_whole``, ``amount_frac``),
    which SQL sums exactly."""
    return (str(deal.amount), *_codec.amount_parts(deal.amount))


class SQLiteStore(SQLStore):
    """Deals in a SQLite file (or ``":memory:"``), safe for threads and processes."""

    sql = _STATEMENTS
    _encoders: ClassVar[Mapping[str, Callable[[Deal], tuple[Any, ...]]]] = {
        **_codec.ENCODERS,
        "amount": _amount_values,
    }

    def __init__(
        self,
        path: str | os.PathLike[str] | sqlite3.Connection,
        *,
        timeout: float | None = None,
        synchronous: str | None = None,
        prefix: str = "sp_",
    ) -> None:
        seconds = check_options(path, timeout, synchronous)
        self._names = check_names(prefix, None, schemas=False)
        self._lock = threading.RLock()
        self._blocks = Blocks()
        self._pid = os.getpid()
        self._owned = not isinstance(path, sqlite3.Connection)
        if isinstance(path, sqlite3.Connection):
            self._path = _adopted(path)
            self._connection: sqlite3.Connection | None = path
            _configure(path, self._path, seconds, synchronous)
        else:
            self._path = check_path(path)
            seconds = 30.0 if seconds is None else seconds
            self._connection = _connect(self._path, seconds)
            _configure(self._connection, self._path, seconds, synchronous or "full", wal=True)
        try:
            self._ensure_schema()
        except BaseException:
            self.close()
            raise

    @property
    def path(self) -> str:
        """The database file (``""`` for an in-memory database of an app's connection)."""
        return self._path

    def __repr__(self) -> str:
        return f"SQLiteStore({self._path!r})"

    def close(self) -> None:
        """Close the connection (an app's own is let go, open); in a forked child, let go
        of the inherited one untouched."""
        self._read_unread()
        with self._lock:
            connection, self._connection = self._connection, None
            if connection is not None and self._owned and let_go(connection, self._pid):
                connection.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Make this thread's calls inside the block one transaction (other threads wait).

        It takes the write lock when it begins (``BEGIN IMMEDIATE``); inside a
        transaction the app has open on its connection, or inside another block, it is
        a savepoint, and the app's commit decides.
        """
        with self._blocks.entered() as depth, self._lock:
            with self._errors_mapped():
                cursor = self._open_connection().cursor()
                savepoint = f"sp_block_{depth}" if cursor.connection.in_transaction else None
                cursor.execute(
                    "BEGIN IMMEDIATE" if savepoint is None else f"SAVEPOINT {savepoint}"
                )
            try:
                yield
            except BaseException:
                with contextlib.suppress(sqlite3.Error):  # the block's own error says more
                    _undo(cursor, savepoint)
                raise
            with self._errors_mapped():
                cursor.execute("COMMIT" if savepoint is None else f"RELEASE {savepoint}")

    def _when_committed(self, callback: Callable[[], None]) -> None:
        self._blocks.when_committed(callback)

    def _in_transaction(self) -> bool:
        connection = self._connection
        return connection is not None and connection.in_transaction

    def _row_values(self, deal: Deal) -> list[Any]:
        """The deal's columns with the amount as exact text, then its integer parts."""
        row = dict(zip(_codec.DEAL_COLUMNS, _codec.deal_values(deal), strict=True))
        row["amount"], *parts = _amount_values(deal)
        return [*row.values(), *parts]

    def _deleting_securely(self, deletes: Steps[None]) -> Steps[None]:
        """Overwrite what the erase deletes with zeros (``secure_delete``), then put the
        connection's own setting back."""
        kept = int((yield Statement("PRAGMA secure_delete", (), "one"))[0])
        yield Statement("PRAGMA secure_delete = 1")
        try:
            yield from deletes
        finally:
            yield Statement(f"PRAGMA secure_delete = {kept}")

    def _erased(self) -> None:
        """Copy the zeroed pages into the database file and empty the WAL, whose frames
        still hold the erased rows. Best effort, never raised: the erase is committed,
        a reader still open keeps the frames, and inside a transaction the app began on
        its own connection the app checkpoints after its commit (see the how-to)."""
        if self._in_transaction():
            return
        with contextlib.suppress(StorageError), self._statement() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cursor.fetchall()

    def _open_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise StorageError(f"{self!r} is closed")
        check_process(self, self._pid)
        return self._connection

    def _transaction(self, begin: str) -> _Transaction:
        return _Transaction(self, begin)

    def _statement(self) -> AbstractContextManager[sqlite3.Cursor]:
        return _Statements(self)

    def _cursor(self) -> sqlite3.Cursor:
        """A cursor on the connection, its statements renamed when the tables are."""
        cursor = self._open_connection().cursor()
        if self._names is DEFAULT:
            return cursor
        return cast(sqlite3.Cursor, Renamed(cursor, self._names))  # it passes attributes on

    @contextmanager
    def _errors_mapped(self) -> Iterator[None]:
        """Raise SQLite's errors as this library's."""
        try:
            yield
        except sqlite3.Error as error:
            raise _mapped(error, self._path, self._names) from error

    def _read(self) -> AbstractContextManager[sqlite3.Cursor]:
        return self._transaction("BEGIN")

    def _write(self) -> AbstractContextManager[sqlite3.Cursor]:
        return self._transaction("BEGIN IMMEDIATE")


def check_options(path: object, timeout: object, synchronous: object) -> float | None:
    """``SQLiteStore``'s arguments checked before any I/O; the timeout in seconds, if given."""
    if not isinstance(path, sqlite3.Connection):
        check_path(path)
    if synchronous is not None and (
        not isinstance(synchronous, str) or synchronous not in _SYNCHRONOUS
    ):
        raise ValidationError(f"synchronous must be 'full' or 'normal', not {shown(synchronous)}")
    return None if timeout is None else check_timeout(timeout, zero=True)


def _connect(path: str, timeout: float) -> sqlite3.Connection:
    try:
        return sqlite3.connect(
            path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as error:
        raise StorageError(f"cannot open SQLite database {path!r}: {error}") from error


def _configure(
    connection: sqlite3.Connection,
    path: str,
    timeout: float | None,
    synchronous: str | None,
    *,
    wal: bool = False,
) -> None:
    """Set what the store needs or was asked for; an app's connection keeps the rest."""
    pragmas = [] if timeout is None else [f"busy_timeout = {int(timeout * 1000)}"]
    if wal:
        pragmas += ["foreign_keys = ON", "journal_mode = WAL", "secure_delete = ON"]
    if synchronous is not None:
        pragmas.append(f"synchronous = {synchronous.upper()}")
    try:
        for pragma in pragmas:
            connection.execute(f"PRAGMA {pragma}")
    except sqlite3.Error as error:
        if wal:
            connection.close()
        raise _mapped(error, path) from error


def _adopted(connection: sqlite3.Connection) -> str:
    """The file an app's open connection reads (``""``: in memory); refused when closed."""
    try:
        rows = connection.execute("PRAGMA database_list").fetchall()
    except sqlite3.ProgrammingError as error:
        raise ValidationError(
            f"the sqlite3.Connection cannot be used ({error}): pass an open connection,"
            " made with check_same_thread=False if threads share the store"
        ) from None
    except sqlite3.Error as error:
        raise StorageError(f"the sqlite3.Connection failed: {error}") from error
    return next((str(row[2]) for row in rows if row[1] == "main"), "")


class _Statements:
    """A cursor whose statements each commit on their own, under the store's lock,
    SQLite's errors raised as this library's. A class, not a generator context
    manager: a load opens one for every deal it reads."""

    __slots__ = ("_store",)

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    def __enter__(self) -> sqlite3.Cursor:
        store = self._store
        store._lock.acquire()
        try:
            return store._cursor()
        except BaseException as error:
            store._lock.release()
            if isinstance(error, sqlite3.Error):
                raise _mapped(error, store._path, store._names) from error
            raise

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        store = self._store
        store._lock.release()
        if isinstance(error, sqlite3.Error):
            raise _mapped(error, store._path, store._names) from error


class _Transaction:
    """A cursor in a transaction begun with ``begin`` (a savepoint inside one already
    open) under the store's lock: committed when the block ends, rolled back when it
    raises, SQLite's errors raised as this library's. A class, not a generator context
    manager: a save opens one on every move."""

    __slots__ = ("_begin", "_cursor", "_savepoint", "_store")

    def __init__(self, store: SQLiteStore, begin: str) -> None:
        self._store, self._begin = store, begin

    def __enter__(self) -> sqlite3.Cursor:
        store = self._store
        store._lock.acquire()
        try:
            cursor = store._cursor()
            savepoint = "sp_call" if cursor.connection.in_transaction else None
            cursor.execute(self._begin if savepoint is None else f"SAVEPOINT {savepoint}")
        except BaseException as error:
            store._lock.release()
            if isinstance(error, sqlite3.Error):
                raise _mapped(error, store._path, store._names) from error
            raise
        self._cursor, self._savepoint = cursor, savepoint
        return cursor

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        store, cursor, savepoint = self._store, self._cursor, self._savepoint
        try:
            if error is None:
                try:
                    cursor.execute("COMMIT" if savepoint is None else f"RELEASE {savepoint}")
                except BaseException:
                    _undo(cursor, savepoint)
                    raise
            else:
                _undo(cursor, savepoint)
        except sqlite3.Error as failure:
            raise _mapped(failure, store._path, store._names) from failure
        finally:
            store._lock.release()
        if isinstance(error, sqlite3.Error):
            raise _mapped(error, store._path, store._names) from error


def _undo(cursor: sqlite3.Cursor, savepoint: str | None) -> None:
    """Roll back a transaction (None) or to ``savepoint``, which is then let go."""
    if savepoint is None:
        cursor.connection.rollback()
        return
    cursor.execute(f"ROLLBACK TO {savepoint}")
    cursor.execute(f"RELEASE {savepoint}")


def _mapped(error: sqlite3.Error, path: str, names: Names = DEFAULT) -> StorageError:
    if isinstance(error, sqlite3.IntegrityError) and "UNIQUE" in str(error):
        table = names.of("sp_changes")
        of_key = f"{table}.deal_id, {table}.key" in str(error)
        return UniqueViolation(f"SQLite refused a duplicate row: {error}", of_key=of_key)
    if "locked" in str(error) or "busy" in str(error):
        return StorageError(f"SQLite database {path!r} stayed locked past the timeout: {error}")
    return StorageError(f"SQLite database {path!r} failed: {error}")
