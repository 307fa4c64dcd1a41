"""PostgresStore: deals in PostgreSQL through psycopg 3 (``pip install salespipeline[postgres]``).

Threads: the store keeps a small connection pool (``psycopg_pool``); each call
borrows one connection for one transaction, so threads of a process share one
store and run in parallel. Processes: open one store per process.

Writes are ``UPDATE ... WHERE id = %s AND version = %s``: PostgreSQL's row lock
makes a second writer wait for the first, then find the version changed, which
surfaces as ``ConcurrencyError``. A save is one statement (the update, and the new
history rows inserted from its ``RETURNING``), atomic on its own, and ``get`` is one
statement too: a move costs two round trips. A ``find`` page is one statement too,
each deal's history aggregated as JSON beside its row, so the deals and their
histories come from one snapshot in one round trip.

An app's own ``psycopg.Connection`` or ``psycopg_pool.ConnectionPool`` may be passed
instead: the store then never closes it and leaves its settings alone. Every call
on an app's connection runs in ``connection.transaction()``, so it joins a
transaction the app has open (a savepoint) and never leaves one open itself; one
connection serves one call at a time.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Final, cast

from salespipeline.errors import StorageError, ValidationError
from salespipeline.storage import _codec
from salespipeline.storage._blocks import Blocks
from salespipeline.storage._options import check_count, check_timeout
from salespipeline.storage._process import check_process, let_go
from salespipeline.storage.sql._dialect import AmountPart, Dialect, jsonb_field_match
from salespipeline.storage.sql._names import DEFAULT, Names, Renamed, check_names
from salespipeline.storage.sql._plan import Statement, Steps, Within
from salespipeline.storage.sql._schema import POSTGRES_DDL
from salespipeline.storage.sql._store import Cursor, SQLStore, Statements, UniqueViolation

__all__ = ["Mapped", "PostgresSQL", "PostgresStore"]

_DIALECT: Final = Dialect(
    name="postgres",
    placeholder="%s",
    json_param="CAST(%s AS JSONB)",
    modulo="%%",
    pipeline_scan="d.pipeline",
    amount=(AmountPart("amount"),),
    field_match=jsonb_field_match,
    index_names="SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "WHERE i.indrelid = to_regclass('sp_deals')",
    history_json="CAST(array_to_json(ARRAY(SELECT json_build_array({values}) {rows} "
    "ORDER BY {order})) AS TEXT)",
    page_text=("amount", "fields"),
    binary_pages=True,
)
"""psycopg's marks are ``%s`` (so ``%`` is written ``%%``); NUMERIC sums amounts exactly.
A find page comes in binary (its JSONB and NUMERIC read as text, so no JSON loader is
involved): the integers of its times need no parsing."""

_STATEMENTS: Final = Statements(_DIALECT, ddl=POSTGRES_DDL)
_SCHEMA_LOCK: Final = 0x5350_5343  # "SPSC": serialises schema creation across sessions
_LOG_LOCK: Final = 0x5350_4C47  # "SPLG": held from a change's insert to its commit


def _import_psycopg() -> tuple[Any, Any]:
    try:
        import psycopg
        import psycopg_pool
    except ImportError as error:
        raise StorageError(
            "PostgresStore needs psycopg 3 and psycopg_pool: pip install 'salespipeline[postgres]'"
        ) from error
    return psycopg, psycopg_pool


class PostgresSQL(SQLStore):
    """What PostgreSQL spells its own way in the SQL store's plans, for a sync driver
    (``PostgresStore``) and an async one (``aio.AsyncPostgresStore``) alike."""

    sql = _STATEMENTS
    _row_lock = " FOR UPDATE"  # an erase reads the version a concurrent save may raise

    def _lock_schema(self) -> Steps[None]:
        yield Statement("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        if self._names.schema is not None:
            yield Statement(f'CREATE SCHEMA IF NOT EXISTS "{self._names.schema}"')

    def _update(
        self, columns: Sequence[str], params: Sequence[Any], change: Sequence[Any]
    ) -> Within[int | None]:
        """The deal row and its change row in one statement, so one round trip."""
        moved = Statement(_moved_statement(tuple(columns)), [*params, *change[1:]], "one")
        return Within("statement", _position(moved))

    def _insert_log(self, values: Sequence[Any]) -> Steps[int]:
        row = yield Statement(f"{self.sql.insert_log} RETURNING position", values, "one")
        return int(row[0])

    _log_lock = (Statement("SELECT pg_advisory_xact_lock(%s)", (_LOG_LOCK,)),)


class PostgresStore(PostgresSQL):
    """Deals in a PostgreSQL database: a libpq ``conninfo`` string or URL (the store
    keeps its own pool), or an app's ``psycopg.Connection`` or ``ConnectionPool``."""

    def __init__(
        self,
        conninfo: str | Any,
        *,
        max_connections: int = 4,
        timeout: float = 10.0,
        schema: str | None = None,
        prefix: str = "sp_",
    ) -> None:
        size = check_count(max_connections, "max_connections")
        timeout = check_timeout(timeout, zero=False)
        self._names = check_names(prefix, schema, schemas=True)
        self._psycopg, pool_module = _import_psycopg()
        self._pid = os.getpid()
        self._pool: Any = None
        self._connection: Any = None  # an app's own connection, shared under the lock
        self._owned = isinstance(conninfo, str)
        self._lock = threading.RLock()
        self._blocks = Blocks()
        self._pinned = threading.local()  # the connection of this thread's block
        if isinstance(conninfo, self._psycopg.Connection):
            self._name = _describe(_parsed(_adopted(conninfo)))
            self._connection = conninfo
        elif isinstance(conninfo, pool_module.ConnectionPool):
            if conninfo.closed:
                raise ValidationError("the ConnectionPool is closed: pass an open pool")
            self._name = _describe(_parsed(conninfo.conninfo))
            self._pool = conninfo
        else:
            _refuse_async(conninfo, self._psycopg, pool_module)
            self._name = _describe(_parsed(conninfo))
            self._pool = self._own_pool(pool_module, conninfo, size, timeout)
        self._errors = Mapped(self._psycopg, self._names, self._name)  # kept: no state
        try:
            self._ensure_schema()
        except BaseException:
            self.close()
            raise

    def _own_pool(self, pool_module: Any, conninfo: str, size: int, timeout: float) -> Any:
        pool = pool_module.ConnectionPool(
            conninfo,
            min_size=1,
            max_size=size,
            kwargs={"autocommit": True},
            timeout=timeout,
            open=False,
            name="salespipeline",
            configure=_json_as_text,
        )
        try:
            pool.open(wait=True, timeout=timeout)
        except self._psycopg.Error as error:
            pool.close()
            raise StorageError(f"cannot connect to PostgreSQL {self._name}: {error}") from error
        return pool

    def __repr__(self) -> str:
        return f"PostgresStore({self._name})"

    def close(self) -> None:
        """Close the store's own pool (an app's pool or connection is let go, open); in a
        forked child, let go of the inherited one untouched."""
        self._read_unread()
        pool, self._pool, self._connection = self._pool, None, None
        if pool is not None and self._owned and let_go(pool, self._pid):
            pool.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Make this thread's calls inside the block one transaction on one connection.

        Inside another block, or a transaction the app has open on its connection,
        it is a savepoint, and the outer transaction decides.
        """
        with (
            self._blocks.entered(),
            self._entered(self._borrowed()) as connection,  # an outer block's, if any
            self._entered(connection.transaction()),  # a savepoint inside one
        ):
            outer = getattr(self._pinned, "connection", None)
            self._pinned.connection = connection
            try:
                yield
            finally:
                self._pinned.connection = outer

    @contextmanager
    def _entered(self, block: AbstractContextManager[Any]) -> Iterator[Any]:
        """``block`` entered and left with psycopg's errors mapped; the caller's own
        errors inside pass through as they are."""
        with self._errors:
            value = block.__enter__()
        try:
            yield value
        except BaseException as error:
            with self._errors:
                block.__exit__(type(error), error, error.__traceback__)
            raise
        with self._errors:
            block.__exit__(None, None, None)

    def _when_committed(self, callback: Callable[[], None]) -> None:
        self._blocks.when_committed(callback)

    def _in_transaction(self) -> bool:
        if getattr(self._pinned, "connection", None) is not None:
            return True
        connection = self._connection
        idle = self._psycopg.pq.TransactionStatus.IDLE
        return connection is not None and connection.info.transaction_status != idle

    def _open_pool(self) -> Any:
        if self._pool is None:
            raise StorageError(f"{self!r} is closed")
        check_process(self, self._pid)
        return self._pool

    @contextmanager
    def _borrowed(self) -> Iterator[Any]:
        """A connection for one call: this thread's block's, the app's, or the pool's."""
        pinned = getattr(self._pinned, "connection", None)
        if pinned is not None:
            yield pinned
        elif self._connection is not None:
            check_process(self, self._pid)
            with self._lock:
                yield self._connection
        else:
            with self._open_pool().connection() as connection:
                yield connection

    def _cursor(self, connection: Any) -> Cursor:
        cursor = connection.cursor()
        if not self._owned:  # an app's connection keeps its own JSON loading
            _json_as_text(cursor)
        if self._names is not DEFAULT:
            cursor = Renamed(cursor, self._names)
        return cast(Cursor, cursor)

    @contextmanager
    def _transaction(self, *, read_only: bool) -> Iterator[Cursor]:
        with self._errors, self._borrowed() as connection:
            first = connection.info.transaction_status == self._psycopg.pq.TransactionStatus.IDLE
            with connection.transaction():
                cursor = self._cursor(connection)
                if read_only and first:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield cursor

    @contextmanager
    def _statement(self) -> Iterator[Cursor]:
        if not self._owned or getattr(self._pinned, "connection", None) is not None:
            with self._transaction(read_only=False) as cursor:  # never left, or aborted, open
                yield cursor
            return
        with self._errors, self._open_pool().connection() as connection:
            yield self._cursor(connection)

    def _read(self) -> AbstractContextManager[Cursor]:
        return self._transaction(read_only=True)

    def _write(self) -> AbstractContextManager[Cursor]:
        return self._transaction(read_only=False)


@functools.lru_cache(maxsize=256)
def _moved_statement(columns: tuple[str, ...]) -> str:
    """The update of ``columns`` whose ``RETURNING`` feeds the insert of the change row.

    The advisory lock is taken only after the update matched (it reads ``moved``), so
    a writer holds it from its insert to its commit and positions rise in commit
    order; no writer waits for it while holding the lock another writer needs. The
    statement returns the new position, or no row when the stored deal moved on.
    """
    casts = ["INTEGER", "BIGINT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "TEXT", "JSONB"]
    names = _codec.LOG_COLUMNS[2:]
    row = ", ".join(f"CAST(%s AS {cast})" for cast in casts)
    return (
        f"WITH moved AS ({_STATEMENTS.update_columns(columns)} RETURNING id), "
        f"locked AS (SELECT pg_advisory_xact_lock({_LOG_LOCK}) IS NULL AS free FROM moved) "
        f"INSERT INTO sp_changes ({', '.join(_codec.LOG_COLUMNS[1:])}) "
        f"SELECT moved.id, {', '.join(f'v.{n}' for n in names)} FROM moved, locked, "
        f"(VALUES ({row})) AS v ({', '.join(names)}) RETURNING position"
    )


def _position(moved: Statement) -> Steps[int | None]:
    """Run ``_moved_statement``: the change's position, or None when no row matched."""
    row = yield moved
    return None if row is None else int(row[0])


class Mapped:
    """Raise psycopg's errors as this library's (``name``: where the store connects).

    A small class, not a generator context manager: it is entered on every call of
    the stores (twice a move), and it holds nothing but its arguments, so one can be
    kept and entered again, even by calls running at once.
    """

    __slots__ = ("_name", "_names", "_psycopg")

    def __init__(self, psycopg: Any, names: Names, name: str) -> None:
        self._psycopg, self._names, self._name = psycopg, names, name

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> None:
        psycopg = self._psycopg
        if error is None or not isinstance(error, psycopg.Error):
            return
        if isinstance(error, psycopg.errors.UniqueViolation):
            raise _unique(error, self._names) from error
        raise StorageError(f"PostgreSQL {self._name} failed: {error}") from error


def _unique(error: Any, names: Names = DEFAULT) -> UniqueViolation:
    of_key = getattr(error.diag, "constraint_name", None) == names.of("sp_changes_key")
    return UniqueViolation(f"PostgreSQL refused a duplicate row: {error}", of_key=of_key)


def _adopted(connection: Any) -> str:
    """The conninfo of an app's connection, refused when it cannot take a call now."""
    from psycopg.pq import TransactionStatus

    if connection.closed:
        raise ValidationError("the psycopg connection is closed: pass an open connection")
    status = connection.info.transaction_status
    if status == TransactionStatus.INERROR:
        raise ValidationError(
            "the psycopg connection is in a failed transaction: roll it back first "
            "(connection.rollback())"
        )
    if status == TransactionStatus.ACTIVE:
        raise ValidationError("the psycopg connection is busy running a query")
    return str(connection.info.dsn)


def _refuse_async(conninfo: object, psycopg: Any, pool_module: Any) -> None:
    """Refuse an async connection or pool with the way to a sync one."""
    if isinstance(conninfo, (psycopg.AsyncConnection, pool_module.AsyncConnectionPool)):
        raise ValidationError(
            f"PostgresStore is synchronous and cannot use a {type(conninfo).__name__}: pass "
            "a psycopg.Connection, a psycopg_pool.ConnectionPool or a conninfo string"
        )


def _json_as_text(connection: Any) -> None:
    """Read JSONB as text, so the codec decodes it and maps bad JSON to our errors.

    (The driver's own loader would raise a bare RecursionError on deeply nested data.)
    """
    from psycopg.types.string import TextLoader

    connection.adapters.register_loader("jsonb", TextLoader)


def _parsed(conninfo: object) -> dict[str, Any]:
    """The parts of a libpq ``conninfo`` (``key=value`` pairs or a URI); malformed is refused.

    The pool would otherwise retry a string libpq cannot parse until its timeout. The
    message does not repeat a string that may hold a password.
    """
    if not isinstance(conninfo, str):
        raise ValidationError(f"conninfo must be a string, not {type(conninfo).__name__}")
    if "\x00" in conninfo:
        raise ValidationError("conninfo must not contain NUL characters")
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        return conninfo_to_dict(conninfo)
    except ProgrammingError as error:
        problem = str(error)
        if "@" in conninfo or "password" in conninfo:  # libpq may quote a URI whole
            problem = problem.replace(conninfo, "…")
        problem = " ".join(problem.split())
        raise ValidationError(f"conninfo is not a libpq connection string: {problem}") from None


def _describe(parts: dict[str, Any]) -> str:
    """Where the store connects, without the password (for messages and repr)."""
    shown = {k: parts[k] for k in ("host", "port", "dbname", "user") if parts.get(k)}
    return " ".join(f"{k}={v}" for k, v in shown.items()) or "(default connection)"
