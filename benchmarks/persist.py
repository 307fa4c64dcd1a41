"""Persisted moves: ``Tracker.move`` against hand-written SQL doing the same work.

Every contender walks the same deals through the seven-stage preset on a fresh
database whose schema and deals were made by salespipeline. The reference is what
an app would write by hand knowing each deal's stage and version: one
``UPDATE … WHERE id = ? AND version = ?`` and one ``INSERT`` into the history, in
one transaction. A second reference also reads the row first, inside the
transaction, as an app that keeps nothing in memory must. The Tracker does more
than either: it loads the deal with its history, checks the move and its guards,
and writes the deal row in full.
"""

from __future__ import annotations

import importlib.util
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from salespipeline import Bant, Tracker, presets
from salespipeline.storage import SQLiteStore
from salespipeline.storage.base import DealStore

STAGES = presets.seven_stage().stage_names[:7]
MOVES_PER_DEAL = len(STAGES) - 1
QUALIFIED = Bant(budget=True, authority=True, need=True, timeline=True)

TRACKER = "salespipeline Tracker.move"
SQLALCHEMY = "salespipeline Tracker.move on SQLAlchemyStore"
REFERENCE = "hand-written SQL: UPDATE … WHERE version + INSERT"
REFERENCE_READ = "hand-written SQL: SELECT, UPDATE … WHERE version + INSERT"


class Conflict(Exception):
    """The hand-written update found another version (never expected here)."""


@attrs.frozen
class Backend:
    """How to make a fresh database and reach it with the store and by hand."""

    name: str
    fresh: Callable[[], str]  # a new, empty database: its path or conninfo
    store: Callable[[str], DealStore]
    connect: Callable[[str], Any]
    placeholder: str
    begin: str | None  # the statement that opens a write transaction, None: driver's own
    json_param: str = "?"  # how a JSON value is bound
    sqlalchemy_url: Callable[[str], str] | None = None  # the database as a SQLAlchemy URL
    async_store: Callable[[str], Any] | None = None  # an async store of the database, if any


def ids(n_deals: int) -> list[str]:
    return [f"deal-{i:06d}" for i in range(n_deals)]


def setup(backend: Backend, n_deals: int) -> str:
    """A fresh database holding ``n_deals`` new deals, written by a Tracker."""
    target = backend.fresh()
    with backend.store(target) as store:
        tracker = Tracker(store, presets.seven_stage())
        for deal_id in ids(n_deals):
            tracker.open("seven_stage", deal_id, amount=1000, bant=QUALIFIED)
    return target


class TrackerMover:
    """Moves deals with ``Tracker.move`` on its own store."""

    def __init__(self, backend: Backend, target: str, *, sqlalchemy: bool = False) -> None:
        self.engine: Any = None
        if sqlalchemy:
            from sqlalchemy import create_engine

            from salespipeline.storage import SQLAlchemyStore

            assert backend.sqlalchemy_url is not None
            self.engine = create_engine(backend.sqlalchemy_url(target))
            self.store: DealStore = SQLAlchemyStore(self.engine)
        else:
            self.store = backend.store(target)
        self.tracker = Tracker(self.store, presets.seven_stage(), record_definitions=False)

    def walk(self, deal_id: str) -> None:
        for stage in STAGES[1:]:
            self.tracker.move(deal_id, stage)

    def close(self) -> None:
        self.store.close()
        if self.engine is not None:
            self.engine.dispose()


class HandMover:
    """Moves deals with hand-written SQL, one transaction per move."""

    def __init__(self, backend: Backend, target: str, *, read_first: bool) -> None:
        p = backend.placeholder
        self.select = f"SELECT stage, version FROM sp_deals WHERE id = {p}"
        self.update = (
            f"UPDATE sp_deals SET stage = {p}, stage_entered_at_us = {p}, updated_at_us = {p}, "
            f"version = {p}, moves = moves + 1 WHERE id = {p} AND version = {p}"
        )
        self.insert = (
            "INSERT INTO sp_changes (deal_id, version, at_us, kind, from_stage, to_stage, "
            f"changed) VALUES ({p}, {p}, {p}, 'move', {p}, {p}, {backend.json_param})"
        )
        self.begin = backend.begin
        self.read_first = read_first
        self.connection = backend.connect(target)

    def walk(self, deal_id: str) -> None:
        stage, version = STAGES[0], 1
        for to in STAGES[1:]:
            with _transaction(self.connection, self.begin) as cursor:
                if self.read_first:
                    cursor.execute(self.select, (deal_id,))
                    stage, version = cursor.fetchone()
                now = time.time_ns() // 1000
                cursor.execute(self.update, (to, now, now, version + 1, deal_id, version))
                if cursor.rowcount != 1:
                    raise Conflict(deal_id)
                changed = f'{{"stage": ["{stage}", "{to}"]}}'
                cursor.execute(self.insert, (deal_id, version + 1, now, stage, to, changed))
            stage, version = to, version + 1

    def close(self) -> None:
        self.connection.close()


Mover = TrackerMover | HandMover
MOVERS: dict[str, Callable[[Backend, str], Mover]] = {
    TRACKER: TrackerMover,
    SQLALCHEMY: lambda backend, target: TrackerMover(backend, target, sqlalchemy=True),
    REFERENCE: lambda backend, target: HandMover(backend, target, read_first=False),
    REFERENCE_READ: lambda backend, target: HandMover(backend, target, read_first=True),
}


def run(backend: Backend, n_deals: int, *, chunks: int = 20) -> dict[str, float]:
    """Seconds each contender spent walking ``n_deals`` deals to ``closing``.

    Each contender has its own fresh database; they take turns chunk by chunk, so
    the noise of a shared disk and CPU falls on all of them alike.
    """
    deal_ids = ids(n_deals)
    movers = {
        name: make(backend, setup(backend, n_deals))
        for name, make in MOVERS.items()
        if name != SQLALCHEMY or backend.sqlalchemy_url is not None
    }
    spent = dict.fromkeys(movers, 0.0)
    size = max(1, n_deals // chunks)
    try:
        for turn, start in enumerate(range(0, n_deals, size)):
            names = list(movers)
            for name in names[turn % len(names) :] + names[: turn % len(names)]:
                started = time.perf_counter()
                for deal_id in deal_ids[start : start + size]:
                    movers[name].walk(deal_id)
                spent[name] += time.perf_counter() - started
    finally:
        for mover in movers.values():
            mover.close()
    return spent


@contextmanager
def _transaction(connection: Any, begin: str | None) -> Iterator[Any]:
    if begin is None:  # psycopg: the driver opens and ends the transaction
        with connection.transaction(), connection.cursor() as cursor:
            yield cursor
        return
    cursor = connection.cursor()
    cursor.execute(begin)
    try:
        yield cursor
    except BaseException:
        connection.rollback()
        raise
    cursor.execute("COMMIT")


# -- backends ----------------------------------------------------------------------


def _sqlite_connect(path: str) -> sqlite3.Connection:
    """A connection set up as ``SQLiteStore`` sets up its own (WAL, foreign keys)."""
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    connection.execute("PRAGMA busy_timeout = 30000")
    connection.execute("PRAGMA foreign_keys = ON")
    connection.execute("PRAGMA journal_mode = WAL")
    return connection


def sqlite_backend(directory: Path) -> Backend:
    counter = iter(range(1_000_000))
    return Backend(
        name="SQLite file (WAL)",
        fresh=lambda: str(directory / f"bench-{next(counter)}.sqlite"),
        store=SQLiteStore,
        connect=_sqlite_connect,
        placeholder="?",
        begin="BEGIN IMMEDIATE",
        sqlalchemy_url=_with_sqlalchemy(lambda path: f"sqlite:///{path}"),
    )


def _with_sqlalchemy(url: Callable[[str], str]) -> Callable[[str], str] | None:
    """``url`` when SQLAlchemy is installed (the SQLAlchemyStore contender runs), else None."""
    return url if importlib.util.find_spec("sqlalchemy") is not None else None


def _load_test_server() -> Any:
    """The test suite's throw-away server helper (``tests/_postgres.py``), or None."""
    path = Path(__file__).resolve().parent.parent / "tests" / "_postgres.py"
    spec = importlib.util.spec_from_file_location("_salespipeline_test_postgres", path)
    if not path.exists() or spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@contextmanager
def postgres_backend(*, durable: bool = False) -> Iterator[Backend | str]:
    """A PostgreSQL backend on a throw-away server, or why there is none; ``durable``:
    one that flushes every commit to disk (PostgreSQL's default), not the test
    suite's ``fsync=off``."""
    try:
        import psycopg  # noqa: F401  (only to know it is installed)

        helper = _load_test_server()
    except ImportError as error:
        yield f"skipped: {error}"
        return
    if helper is None:
        yield "skipped: tests/_postgres.py is not there"
        return
    initdb, pg_ctl = helper._binary("initdb"), helper._binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        yield "skipped: initdb/pg_ctl not found"
        return
    try:
        server = helper.PostgresServer(initdb, pg_ctl, durable=durable)
    except KeyError:
        yield "skipped: running as root without a 'postgres' user"
        return
    try:
        server.start()
    except Exception as error:
        shutil.rmtree(server.root, ignore_errors=True)
        yield f"skipped: the server did not start ({type(error).__name__})"
        return
    try:
        yield postgres(server)
    finally:
        server.stop()


def postgres(server: Any) -> Backend:
    """A backend on a running ``tests/_postgres.py`` server: a new schema per database."""
    import psycopg

    return Backend(
        name="PostgreSQL (unix socket)",
        fresh=server.fresh_schema,
        store=_postgres_store,
        connect=lambda conninfo: psycopg.connect(conninfo, autocommit=True),
        placeholder="%s",
        begin=None,
        json_param="CAST(%s AS JSONB)",
        sqlalchemy_url=_with_sqlalchemy(_load_test_server().sqlalchemy_url),
        async_store=_async_postgres_store,
    )


def _async_postgres_store(conninfo: str) -> Any:
    from salespipeline.aio import AsyncPostgresStore

    return AsyncPostgresStore(conninfo)


def _postgres_store(conninfo: str) -> DealStore:
    from salespipeline.storage import PostgresStore

    return PostgresStore(conninfo)


# -- the table ---------------------------------------------------------------------


def measure(backend: Backend, *, moves: int = 2_000, rounds: int = 3) -> dict[str, float]:
    """Moves per second of each contender (best of ``rounds`` interleaved runs)."""
    n_deals = max(1, moves // MOVES_PER_DEAL)
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, seconds in run(backend, n_deals).items():
            best[name] = min(best.get(name, seconds), seconds)
    return {name: n_deals * MOVES_PER_DEAL / seconds for name, seconds in best.items()}


@contextmanager
def backends() -> Iterator[list[Backend | str]]:
    """SQLite in a temporary directory, and PostgreSQL when it can be started."""
    directory = Path(tempfile.mkdtemp(prefix="sp-bench-"))
    try:
        with postgres_backend() as postgres:
            yield [sqlite_backend(directory), postgres]
    finally:
        shutil.rmtree(directory, ignore_errors=True)
