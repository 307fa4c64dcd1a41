"""AsyncPostgresStore: deals in PostgreSQL through psycopg's async API, for asyncio.

The sync ``PostgresStore``'s plans (``storage.sql._plan``: its statements, checks,
derived figures and log), awaited on ``psycopg.AsyncConnection`` cursors: no thread,
and no second copy of the store's logic. The store keeps an ``AsyncConnectionPool``
of its own, or uses an app's ``AsyncConnection`` or ``AsyncConnectionPool`` (never
closed by the store). A ``transaction()`` block gives this task's calls one
connection and one transaction; tasks started inside the block join it.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from salespipeline.aio._store import AsyncDealStore
from salespipeline.deal import Deal, StageChange
from salespipeline.errors import StorageError, ValidationError
from salespipeline.log import Change
from salespipeline.pipeline import Pipeline
from salespipeline.storage._erasure import check_erasure
from salespipeline.storage._options import check_count, check_timeout
from salespipeline.storage._query import FieldValue
from salespipeline.storage.base import (
    Read,
    check_id,
    check_pipeline_name,
    check_query,
    decode_all,
    recorded_pipeline,
    verifying,
)
from salespipeline.storage.postgres import (
    Mapped,
    PostgresSQL,
    _adopted,
    _describe,
    _import_psycopg,
    _json_as_text,
    _parsed,
)
from salespipeline.storage.sql._names import DEFAULT, Names, Renamed, check_names
from salespipeline.storage.sql._plan import (
    ROWS,
    Plan,
    Statement,
    Within,
    awaited,
    result,
)
from salespipeline.storage.sql._store import Window, encoded_adds

if TYPE_CHECKING:
    from salespipeline.metrics import PipelineReport

__all__ = ["AsyncPostgresStore"]

T = TypeVar("T")


class AsyncPostgresStore(AsyncDealStore):
    """Deals in a PostgreSQL database for asyncio: a libpq ``conninfo`` (the store
    keeps its own ``AsyncConnectionPool``), or an app's ``AsyncConnection`` or pool.

    The arguments are checked at once; nothing is opened until ``async with store:``
    or ``await store.open()``, which also creates or upgrades the schema.
    """

    def __init__(
        self,
        conninfo: str | Any,
        *,
        max_connections: int = 4,
        timeout: float = 10.0,
        schema: str | None = None,
        prefix: str = "sp_",
    ) -> None:
        self._size = check_count(max_connections, "max_connections")
        self._timeout = check_timeout(timeout, zero=False)
        self._names: Names = check_names(prefix, schema, schemas=True)
        self._psycopg, self._pools = _import_psycopg()
        self._owned = isinstance(conninfo, str)
        self._conninfo = conninfo
        self._connection: Any = None
        self._pool: Any = None
        self._name = _describe(_parsed(self._adopt(conninfo)))
        self._plans = _Plans(self, self._names)
        self._errors = Mapped(self._psycopg, self._names, self._name)  # kept: no state
        self._open = False
        self._lock: Any = None  # one call at a time on an app's connection
        self._pinned: contextvars.ContextVar[_Pin | None] = contextvars.ContextVar(
            f"salespipeline-pg-block-{id(self)}", default=None
        )

    def _adopt(self, given: object) -> object:
        """The conninfo of what was given; an app's connection or pool is kept."""
        psycopg, pools = self._psycopg, self._pools
        if isinstance(given, (psycopg.Connection, pools.ConnectionPool)):
            raise ValidationError(
                f"AsyncPostgresStore is asynchronous and cannot use a {type(given).__name__}: "
                "pass a psycopg.AsyncConnection, a psycopg_pool.AsyncConnectionPool or a "
                "conninfo string (or use PostgresStore)"
            )
        if isinstance(given, psycopg.AsyncConnection):
            self._connection = given
            return _adopted(given)
        if isinstance(given, pools.AsyncConnectionPool):
            if given.closed:
                raise ValidationError(
                    "the AsyncConnectionPool is closed: open it first (await pool.open())"
                )
            self._pool = given
            return given.conninfo
        return given

    def __repr__(self) -> str:
        return f"AsyncPostgresStore({self._name})"

    async def open(self) -> None:
        if self._open:
            return
        if self._owned and self._pool is None:
            self._pool = await self._own_pool()
        self._open = True
        try:
            await self._run(self._plans._schema_plan())
        except BaseException:
            await self.close()
            raise

    async def _own_pool(self) -> Any:
        pool = self._pools.AsyncConnectionPool(
            self._conninfo,
            min_size=1,
            max_size=self._size,
            kwargs={"autocommit": True},
            timeout=self._timeout,
            open=False,
            name="salespipeline-async",
            configure=_configured,
        )
        try:
            await pool.open(wait=True, timeout=self._timeout)
        except self._psycopg.Error as error:
            await pool.close()
            raise StorageError(f"cannot connect to PostgreSQL {self._name}: {error}") from error
        return pool

    async def close(self) -> None:
        """Close the store's own pool; an app's pool or connection is let go, open. The
        older history of a loaded deal still in use is read first (as the sync store does),
        so it can be read after the store is gone."""
        if self._open:
            self._plans._read_unread()
        self._open = False
        if self._owned:
            pool, self._pool = self._pool, None
            if pool is not None:
                await pool.close()

    # -- the async driver of the plans ---------------------------------------------

    def _run(self, plan: Plan[T]) -> Awaitable[T]:
        """Run ``plan``, each transaction it asks for awaited on a connection."""
        return awaited(plan, self._within)

    def _within(self, within: Within[T]) -> Awaitable[T]:
        if within.kind == "statement" and self._owned and self._pin() is None:
            return self._alone(within)
        return self._transacted(within)

    async def _transacted(self, within: Within[T]) -> T:
        """A transaction of ``within``'s kind on this task's block's connection, the
        app's, or one of the pool's."""
        with self._errors:
            async with self._borrowed() as connection:
                first = connection.info.transaction_status == self._idle
                async with connection.transaction():
                    cursor = self._cursor(connection)
                    if within.kind == "read" and first:
                        await cursor.execute(
                            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
                        )
                    return await self._steps(cursor, within)

    async def _alone(self, within: Within[T]) -> T:
        """Statements each atomic on their own (autocommit), on a connection of the
        store's pool: the move's path, with no layer it does not need. The connection is
        taken and given back without the pool's context manager, which would also
        commit it (nothing to commit in autocommit: the pool's ``putconn`` checks its
        state and resets or replaces one left mid-statement)."""
        if not self._open:
            raise StorageError(f"{self!r} is not open: use `async with` or `await store.open()`")
        with self._errors:
            pool = self._pool
            connection = await pool.getconn()
            try:
                return await self._steps(connection.cursor(), within)
            finally:
                await pool.putconn(connection)

    def _steps(self, cursor: Any, within: Within[T]) -> Awaitable[T]:
        return awaited(within.steps, functools.partial(self._execute, cursor))

    async def _execute(self, cursor: Any, statement: Statement) -> Any:
        run = cursor.executemany if statement.many else cursor.execute
        sql = statement.sql if self._names is DEFAULT else self._names.rename(statement.sql)
        if statement.binary:
            await cursor.execute(sql, statement.params, binary=True)
        else:
            await run(sql, statement.params)
        rows = await cursor.fetchall() if statement.fetch in ROWS else None
        return result(statement, cursor, rows)

    @property
    def _idle(self) -> Any:
        return self._psycopg.pq.TransactionStatus.IDLE

    def _cursor(self, connection: Any) -> Any:
        cursor = connection.cursor()
        if not self._owned:  # an app's connection keeps its own JSON loading
            _json_as_text(cursor)
        return cursor

    def _pin(self) -> _Pin | None:
        pin = self._pinned.get()
        return pin if pin is not None and pin.open else None

    @asynccontextmanager
    async def _borrowed(self) -> AsyncIterator[Any]:
        """A connection for one call: this task's block's, the app's, or the pool's."""
        pin = self._pin()
        if pin is not None:
            yield pin.connection
            return
        if not self._open:
            raise StorageError(f"{self!r} is not open: use `async with` or `await store.open()`")
        if self._connection is not None:
            async with self._app_lock():
                yield self._connection
            return
        async with self._pool.connection() as connection:
            yield connection

    def _app_lock(self) -> Any:
        if self._lock is None:
            import asyncio

            self._lock = asyncio.Lock()
        return self._lock

    def _later(self) -> tuple[object, dict[str, Any]] | None:
        """How to connect for reading later what a load left unread: the store's conninfo,
        or an app's pool's conninfo and options (None on an app's own connection)."""
        if self._owned:
            return self._conninfo, {}
        if self._pool is not None:
            return self._pool.conninfo, dict(self._pool.kwargs or {})
        return None

    @contextlib.contextmanager
    def _sync_cursor(self) -> Iterator[Any]:
        """A cursor on a sync connection of its own, for one read outside the event loop's
        connections (each statement atomic on its own)."""
        later = self._later()
        if later is None or not self._open:
            raise StorageError(f"{self!r} is not open: use `async with` or `await store.open()`")
        conninfo, options = later
        with self._errors:
            connection = self._psycopg.connect(conninfo, **{**options, "autocommit": True})
            with connection:
                cursor = connection.cursor()
                _json_as_text(cursor)
                yield cursor if self._names is DEFAULT else Renamed(cursor, self._names)

    def _in_transaction(self) -> bool:
        if self._pin() is not None:
            return True
        connection = self._connection
        return connection is not None and connection.info.transaction_status != self._idle

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Make this task's calls inside the block one transaction on one connection
        (a savepoint inside another block, or inside the app's own transaction)."""
        raised: BaseException | None = None
        try:
            with self._blocks.entered():
                async with self._borrowed() as connection, connection.transaction():
                    pin = _Pin(connection)
                    token = self._pinned.set(pin)
                    try:
                        yield
                    except BaseException as error:
                        raised = error
                        raise
                    finally:
                        pin.open = False
                        self._pinned.reset(token)
        except self._psycopg.Error as error:
            if error is raised:
                raise
            with self._errors:
                raise

    # -- the store's calls: its plans, awaited -------------------------------------

    async def add(
        self,
        deal: Deal,
        *,
        actor: str | None = None,
        reason: str | None = None,
        key: str | None = None,
    ) -> Change:
        return await self._run(self._plans._add(deal, actor, reason, key))

    async def add_many(
        self,
        deals: Iterable[Deal],
        *,
        actor: str | None = None,
        reason: str | None = None,
        key: str | None = None,
        imported: bool = False,
    ) -> tuple[Change, ...]:
        planned = encoded_adds(deals, actor, reason, key, imported)
        return await self._run(self._plans._add_many(planned, key))

    async def save(
        self,
        deal: Deal,
        *,
        actor: str | None = None,
        reason: str | None = None,
        key: str | None = None,
    ) -> Change:
        return await self._run(self._plans._save(deal, actor, reason, key))

    async def get(self, id: str) -> Deal:
        return (await self._run(self._plans._load(check_id(id), lazy=False)))[0]

    async def load(self, id: str) -> Deal:
        """The deal to change, with its latest history entries (``SQLStore.load``'s plan);
        the older ones are read when first needed (``_Plans._statement``)."""
        return (await self._run(self._plans._load(check_id(id))))[0]

    def last_known(self, id: str) -> Deal | None:
        return self._plans.last_known(id)

    async def changes(self, id: str, *, key: str | None = None) -> tuple[Change, ...]:
        return await self._run(self._plans._changes(id, key))

    async def log(self, *, after: int = 0, limit: int = 1000) -> tuple[Change, ...]:
        return await self._run(self._plans._log(after, limit))

    async def erase(
        self,
        id: str,
        *,
        actor: str,
        reason: str,
        key: str | None = None,
        at: datetime | None = None,
    ) -> Change:
        return await self._run(self._plans._erase(check_erasure(id, actor, reason, key, at)))

    async def consumer_position(self, name: str) -> int:
        return await self._run(self._plans._consumer_position(name))

    async def record_consumer_position(
        self, name: str, position: int, *, backwards: bool = False
    ) -> None:
        await self._run(self._plans._record_consumer_position(name, position, backwards))

    async def verify(self) -> tuple[str, ...]:
        """``DealStore.verify``'s algorithm (``verifying``), its reads awaited here."""
        steps = verifying()
        answer: Any = None
        while True:
            try:
                read = steps.send(answer)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            answer = await self._answer(read)

    async def _answer(self, read: Read) -> Any:
        name, arguments = read
        if name == "find":
            return [deal async for deal in self.find(**arguments)]
        return await getattr(self, name)(**arguments)

    def find(self, **filters: Any) -> AsyncIterator[Deal]:
        """``DealStore.find``'s deals (its filters, checked at once), paged by keyset."""
        return self._found(check_query(**filters))

    async def _found(self, query: Any) -> AsyncIterator[Deal]:
        plans = self._plans
        query = await self._run(plans._named(query))
        window = Window.first(query, plans.find_batch)
        while window is not None:
            page = await self._run(plans._page(query, window.after, window.size))
            for deal in page:
                yield deal
            window = window.next(page)

    async def count(
        self,
        *,
        pipeline: str | None = None,
        stage: str | None = None,
        open: bool | None = None,
        owner: str | None = None,
        fields: Mapping[str, FieldValue] | None = None,
        updated_since: datetime | None = None,
    ) -> int:
        query = check_query(
            pipeline=pipeline,
            stage=stage,
            open=open,
            owner=owner,
            fields=fields,
            updated_since=updated_since,
        )
        return await self._run(self._plans._count(await self._run(self._plans._named(query))))

    async def history(self, id: str) -> tuple[StageChange, ...]:
        return tuple((await self.get(id)).history)

    async def save_pipeline(self, pipeline: Pipeline) -> None:
        await self._run(self._plans._save_pipeline(pipeline))

    async def pipelines(self) -> tuple[Pipeline, ...]:
        return decode_all(await self._run(self._plans._recorded()))

    async def pipeline(self, name: str) -> Pipeline:
        name = check_pipeline_name(name)
        return recorded_pipeline(name, await self._run(self._plans._recorded()))

    async def report(
        self,
        pipeline: Pipeline | str,
        *,
        as_of: datetime | None = None,
        owner: str | None = None,
        currency: str | None = None,
        rates: Mapping[str, Decimal | int] | None = None,
        now: datetime | None = None,
    ) -> PipelineReport:
        """``PostgresStore.report``: the same plan, its statements awaited in one read
        transaction (one snapshot)."""
        resolved = pipeline if isinstance(pipeline, Pipeline) else await self.pipeline(pipeline)
        plan = self._plans._reported(
            resolved, as_of=as_of, now=now, owner=owner, currency=currency, rates=rates
        )
        return await self._run(plan)


class _Pin:
    """The connection of a task's outermost block, while the block is open."""

    __slots__ = ("connection", "open")

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.open = True


class _Plans(PostgresSQL):
    """The PostgreSQL store's plans, for the async store to await: no I/O of its own.

    A load for a change reads the deal's latest history entries, as the sync store's
    does; the older ones, when first needed (``deal.history`` is a plain sequence, so
    that read cannot be awaited), are read on a sync connection of their own. On an
    app's own connection, whose open transaction another could not see, loads read
    the whole history.
    """

    def __init__(self, store: AsyncPostgresStore, names: Names) -> None:
        self._store = store
        self._names = names
        self._lazy_loads = store._later() is not None  # type: ignore[misc]

    def __repr__(self) -> str:
        return repr(self._store)

    def _driven(self) -> NoReturn:
        raise StorageError(f"{self!r} runs its plans itself; it has no sync cursor")

    def _read(self) -> AbstractContextManager[Any]:
        self._driven()

    def _write(self) -> AbstractContextManager[Any]:
        self._driven()

    def _statement(self) -> AbstractContextManager[Any]:
        """The sync cursor an older history is read with (``_read_older``, the one plan run
        synchronously here); the async store awaits every other."""
        return self._store._sync_cursor()

    def transaction(self) -> AbstractContextManager[None]:
        self._driven()

    def close(self) -> None:
        """Nothing to close: the async store owns the connections."""

    def _in_transaction(self) -> bool:
        return self._store._in_transaction()

    def _when_committed(self, callback: Callable[[], None]) -> None:
        self._store._when_committed(callback)

    def _selected(self, query: Any) -> Iterator[Deal]:
        self._driven()


async def _configured(connection: Any) -> None:
    _json_as_text(connection)
