"""Erasure: no trace of an erased deal's personal data in any table, nor in SQLite's files."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from _backends import Backend, RawSQL, postgres_raw
from salespipeline import Pipeline, Stage, StorageError, Tracker, ValidationError, log
from salespipeline.aio import AsyncSQLiteStore, AsyncTracker
from salespipeline.errors import DealNotFoundError
from salespipeline.storage import DealStore, MemoryStore, PostgresStore, SQLiteStore

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=timezone.utc)
PIPELINE = Pipeline(
    "erasure",
    [Stage("lead", probability=0.1), Stage("talks", probability=0.5)],
)
SECRETS = (
    "FIELD-SECRET-kim@example.com",
    "BIG-FIELD-SECRET",
    "OLD-OWNER-SECRET",
    "OWNER-SECRET",
    "NEXT-ACTION-SECRET",
    "MOVE-REASON-SECRET",
    "LOST-REASON-SECRET",
    "UPDATE-REASON-SECRET",
    "ACTOR-SECRET",
    "KEY-SECRET",
)
"""Distinctive text the erased deal carries in every place a deal can hold it."""


def _clock() -> Callable[[], datetime]:
    times = (T0 + timedelta(minutes=n) for n in range(1_000_000))
    return lambda: next(times)


def _story(tracker: Tracker) -> None:
    """Deals around the one to erase (sharing its pages), and its past full of secrets."""
    for n in range(30):
        tracker.open("erasure", f"before-{n}", owner="someone", fields={"n": n})
    tracker.open(
        "erasure",
        "subject",
        owner="OLD-OWNER-SECRET",
        fields={"email": "FIELD-SECRET-kim@example.com", "notes": "BIG-FIELD-SECRET " * 800},
        next_action="NEXT-ACTION-SECRET",
        actor="ACTOR-SECRET",
        key="KEY-SECRET-open",
    )
    tracker.update("subject", owner="OWNER-SECRET", reason="UPDATE-REASON-SECRET")
    tracker.move("subject", "talks", reason="MOVE-REASON-SECRET", actor="ACTOR-SECRET")
    tracker.lose("subject", "LOST-REASON-SECRET", key="KEY-SECRET-lose")
    tracker.reopen("subject", actor="ACTOR-SECRET")
    for n in range(30):
        tracker.open("erasure", f"after-{n}", owner="someone", fields={"n": n})


def _found(texts: Iterator[str]) -> set[str]:
    everything = "\n".join(texts)
    return {secret for secret in SECRETS if secret in everything}


def _sqlite_rows(path: Path) -> Iterator[str]:
    """Every value of every row of every table in the file, as text."""
    with sqlite3.connect(path) as connection:
        tables = [
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        assert tables
        for table in tables:
            for row in connection.execute(f'SELECT * FROM "{table}"'):
                yield from (str(value) for value in row)


def _postgres_rows(raw: RawSQL, schema: str | None) -> Iterator[str]:
    """Every row of every table in the store's schema, as PostgreSQL's text of it."""
    where = "current_schema()" if schema is None else "?"
    tables = raw(
        "SELECT table_schema, table_name FROM information_schema.tables "
        f"WHERE table_schema = {where}",
        () if schema is None else (schema,),
    )
    assert tables
    for table_schema, name in tables:
        for (text,) in raw(f'SELECT t::text FROM "{table_schema}"."{name}" t', ()):
            yield text


def _file_bytes(path: Path) -> str:
    """The database file and its WAL as text (bytes that are not UTF-8 kept as escapes)."""
    parts = [p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists()]
    return b"\n".join(parts).decode("utf-8", errors="backslashreplace")


def _erase_and_check(store: DealStore, rows: Callable[[], Iterator[str]]) -> None:
    tracker = Tracker(store, PIPELINE, clock=_clock())
    _story(tracker)
    assert _found(rows()) == set(SECRETS)  # the scan would see them
    change = tracker.erase("subject", actor="dpo", reason="request 17")
    assert _found(rows()) == set()
    assert (change.kind, change.actor, change.reason) == ("erase", "dpo", "request 17")
    with pytest.raises(DealNotFoundError):
        tracker.get("subject")
    assert len(list(tracker.deals())) == 60
    assert store.verify() == ()


def test_no_table_of_a_sql_backend_keeps_the_erased_deal_s_data(backend: Backend) -> None:
    with backend.open() as store:
        if backend.name == "sqlite":
            path = Path(store.path)  # type: ignore[attr-defined]
            _erase_and_check(store, lambda: _sqlite_rows(path))
        else:
            _erase_and_check(store, lambda: _postgres_rows(backend.raw, None))


@pytest.mark.postgres
def test_no_table_of_a_postgres_schema_keeps_the_erased_deal_s_data(
    postgres_database: str,
) -> None:
    schema = f"crm_{uuid.uuid4().hex[:8]}"
    with PostgresStore(postgres_database, schema=schema, prefix="crm_") as store:
        _erase_and_check(store, lambda: _postgres_rows(postgres_raw(postgres_database), schema))


def test_no_table_of_a_prefixed_sqlite_file_keeps_the_erased_deal_s_data(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.sqlite"
    with SQLiteStore(path, prefix="crm_") as store:
        _erase_and_check(store, lambda: _sqlite_rows(path))


def test_the_sqlite_file_and_its_wal_no_longer_hold_the_erased_bytes(tmp_path: Path) -> None:
    path = tmp_path / "deals.sqlite"
    with SQLiteStore(path) as store:
        tracker = Tracker(store, PIPELINE, clock=_clock())
        _story(tracker)
        assert _found(iter([_file_bytes(path)])) == set(SECRETS)
        tracker.erase("subject", actor="dpo", reason="request 17")
        assert _found(iter([_file_bytes(path)])) == set()
        tracker.open("erasure", "later", fields={"n": 1})  # the WAL fills again, cleanly
        assert _found(iter([_file_bytes(path)])) == set()
    assert _found(iter([_file_bytes(path)])) == set()


def test_an_app_connection_without_secure_delete_still_loses_what_erase_deletes(
    tmp_path: Path,
) -> None:
    """``secure_delete`` is on for the erase's own deletes whatever the app set; the
    app's setting is put back afterwards."""
    path = tmp_path / "app.sqlite"
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA secure_delete = ON")  # for the story's own rewrites
    store = SQLiteStore(connection)
    tracker = Tracker(store, PIPELINE, clock=_clock())
    _story(tracker)
    connection.execute("PRAGMA secure_delete = OFF")
    tracker.erase("subject", actor="dpo", reason="request 17")
    assert connection.execute("PRAGMA secure_delete").fetchone() == (0,)
    assert _found(iter([_file_bytes(path)])) == set()
    store.close()
    connection.close()


def test_an_erase_inside_an_app_transaction_cleans_the_files_when_it_commits(
    tmp_path: Path,
) -> None:
    path = tmp_path / "deals.sqlite"
    with SQLiteStore(path) as store:
        tracker = Tracker(store, PIPELINE, clock=_clock())
        _story(tracker)
        with store.transaction():
            tracker.erase("subject", actor="dpo", reason="request 17")
        assert _found(_sqlite_rows(path)) == set()
        assert _found(iter([_file_bytes(path)])) == set()


def test_memory_store_keeps_nothing_of_the_erased_deal() -> None:
    store = MemoryStore()
    tracker = Tracker(store, PIPELINE, clock=_clock())
    _story(tracker)
    tracker.erase("subject", actor="dpo", reason="request 17")
    kept = [repr(change) for change in store.log()] + [repr(deal) for deal in store.find()]
    kept += [repr(vars(store))]
    assert _found(iter(kept)) == set()


def test_async_tracker_erases_through_the_same_command(tmp_path: Path) -> None:
    path = tmp_path / "deals.sqlite"

    async def scenario() -> None:
        async with AsyncSQLiteStore(path) as store:
            tracker = AsyncTracker(store, PIPELINE, clock=_clock(), actor="dpo-desk")
            await tracker.open("erasure", "subject", owner="OWNER-SECRET")
            await tracker.open("erasure", "kept")
            with pytest.raises(ValidationError):
                await tracker.erase("subject", reason=" ")
            change = await tracker.erase("subject", reason="request 17", key="gdpr-17")
            again = await tracker.erase("subject", reason="request 17", key="gdpr-17")
            assert change == again and change.actor == "dpo-desk"
            with pytest.raises(DealNotFoundError):
                await tracker.get("subject")
            assert [c.kind for c in await store.log()] == ["open", "erase"]
            assert await store.verify() == ()

    asyncio.run(scenario())
    assert _found(iter([_file_bytes(path)])) == set()


@pytest.mark.parametrize(
    "call",
    [
        {"reason": ""},
        {"reason": "request", "actor": ""},
        {"reason": "request"},  # the tracker has no actor
        {"reason": "request", "key": "\x00"},
    ],
)
def test_tracker_refusals_come_before_any_io(call: dict[str, Any]) -> None:
    store = MemoryStore()
    tracker = Tracker(store, PIPELINE, clock=_clock())
    tracker.open("erasure", "subject")
    before = store.log()
    with pytest.raises(ValidationError):
        tracker.erase("subject", **call)
    assert store.log() == before and tracker.get("subject").version == 1


def test_replay_leaves_out_a_deal_whose_log_holds_only_its_erase_change() -> None:
    deal = PIPELINE.start("kept", at=T0)
    erased = log.Change("gone", 7, T0 + timedelta(hours=2), "erase", actor="dpo")
    changes = [log.derive(None, deal), erased]
    assert log.replay(changes) == {"kept": deal}
    assert log.replay(changes, until=T0 + timedelta(hours=1)) == {"kept": deal}
    assert log.replay([erased], until=T0) == {}


def test_a_store_without_erase_refuses_it_with_storage_error() -> None:
    class Partial(MemoryStore):
        erase = DealStore.erase

    store = Partial()
    tracker = Tracker(store, PIPELINE, clock=_clock(), actor="dpo")
    tracker.open("erasure", "subject")
    with pytest.raises(StorageError, match="erase"):
        tracker.erase("subject", reason="request 17")
    assert tracker.get("subject").version == 1


def test_an_erase_inside_the_app_s_own_transaction_leaves_the_checkpoint_to_the_app(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.sqlite"
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA secure_delete = ON")
    store = SQLiteStore(connection)
    tracker = Tracker(store, PIPELINE, clock=_clock())
    _story(tracker)
    connection.execute("BEGIN IMMEDIATE")
    change = tracker.erase("subject", actor="dpo", reason="request 17")
    connection.execute("COMMIT")
    assert change.kind == "erase" and store.verify() == ()
    assert _found(_sqlite_rows(path)) == set()
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert _found(iter([_file_bytes(path)])) == set()
    store.close()
    connection.close()
