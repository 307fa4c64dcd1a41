"""Storage hardening: bad constructor arguments, corrupt stored data, forks, and what a read costs.

Each test here failed before its fix (issue 15). The promises every store keeps
(forged deals refused, one definition decoded) are in the shipped ``StoreContract``;
these are the ones only the SQL stores or their constructors show.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from _backends import Backend, sqlite_raw
from salespipeline import (
    CorruptRecordError,
    StorageError,
    Tracker,
    UnknownPipelineError,
    ValidationError,
    guards,
)
from salespipeline.deal import Deal
from salespipeline.limits import MAX_DEPTH, MAX_FIELDS_BYTES
from salespipeline.pipeline import Pipeline
from salespipeline.stages import Stage
from salespipeline.storage import DealStore, MemoryStore, PostgresStore, SQLiteStore
from salespipeline.testing.contract import QUALIFIED, T0, contract_pipeline, rich_deal

# -- constructors refuse bad arguments at once ---------------------------------------------


@pytest.mark.parametrize("path", [5, None, 2.5, "a\x00b", "lone \udc80 surrogate"])
def test_sqlite_store_refuses_a_path_that_is_not_one(path: Any) -> None:
    with pytest.raises(ValidationError, match="path"):
        SQLiteStore(path)


BAD_TIMEOUTS = [float("nan"), float("inf"), -1, -0.5, True, "5", None, 10**400, 1e12]


@pytest.mark.parametrize("timeout", [t for t in BAD_TIMEOUTS if t is not None], ids=repr)
def test_sqlite_store_refuses_a_timeout_that_is_not_seconds(timeout: Any) -> None:
    with pytest.raises(ValidationError, match="timeout"):
        SQLiteStore(":memory:", timeout=timeout)


def test_sqlite_store_s_timeout_none_is_its_default() -> None:
    """None means "not given": 30 seconds on a path (an app's connection keeps its own)."""
    with SQLiteStore(":memory:", timeout=None) as store, store._statement() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone()[0] == 30_000


@pytest.mark.parametrize("timeout", [0, 0.25, 30, 86_400])
def test_sqlite_store_takes_any_sensible_timeout(timeout: float) -> None:
    SQLiteStore(":memory:", timeout=timeout).close()


@pytest.mark.parametrize("synchronous", ["off", "FULLY", 1, ["full"]], ids=repr)
def test_sqlite_store_refuses_an_unknown_synchronous(synchronous: Any) -> None:
    with pytest.raises(ValidationError, match="synchronous"):
        SQLiteStore(":memory:", synchronous=synchronous)


@pytest.mark.parametrize("count", [0, -1, "4", True, 2.0, None], ids=repr)
def test_postgres_store_refuses_a_pool_size_that_is_not_one(count: Any) -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(ValidationError, match="max_connections"):
        PostgresStore("dbname=anything", max_connections=count)


@pytest.mark.parametrize("timeout", [*BAD_TIMEOUTS, 0], ids=repr)
def test_postgres_store_refuses_a_timeout_that_is_not_seconds(timeout: Any) -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(ValidationError, match="timeout"):
        PostgresStore("dbname=anything", timeout=timeout)


@pytest.mark.parametrize(
    ("conninfo", "problem"),
    [
        ("garbage", 'missing "=" after "garbage"'),
        ("host=x port", 'missing "=" after "port"'),
        ("postgresql://user:s3cret@[::1", "IPv6"),
        ("dbname=a\x00b", "NUL"),
        (5, "must be a string"),
    ],
)
def test_postgres_store_refuses_a_malformed_conninfo_at_once(conninfo: Any, problem: str) -> None:
    pytest.importorskip("psycopg")
    started = time.monotonic()
    with pytest.raises(ValidationError, match="conninfo") as error:
        PostgresStore(conninfo, timeout=30)
    assert time.monotonic() - started < 2, "a malformed conninfo waited for the pool"
    assert problem in str(error.value)
    assert "s3cret" not in str(error.value)


# -- corrupt stored data gives typed errors ------------------------------------------------


def _nested(depth: int, leaf: str = '"lead"') -> str:
    return "[" * depth + leaf + "]" * depth


@pytest.fixture
def reported(backend: Backend) -> Iterator[DealStore]:
    """A store on ``backend`` with a few deals of ``contract`` and the definition recorded."""
    pipeline = contract_pipeline()
    with backend.open() as store:
        store.save_pipeline(pipeline)
        store.add(rich_deal(pipeline))
        store.add(pipeline.start("plain", at=T0))
        yield store


@pytest.mark.parametrize("column", ["entered_stages", "stays_more"])
@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1_000, 100_000])
def test_deep_json_in_a_figure_column_is_a_storage_error_in_the_report(
    backend: Backend, reported: DealStore, column: str, depth: int
) -> None:
    backend.raw(f"UPDATE sp_deals SET {column} = ? WHERE id = ?", (_nested(depth), "deal-1"))
    with pytest.raises(StorageError, match="cannot be aggregated"):
        reported.report("contract", as_of=T0.replace(year=2030))


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100_000])
def test_deep_json_in_fields_is_a_corrupt_record(
    backend: Backend, reported: DealStore, depth: int
) -> None:
    value = '{"a":' + _nested(depth, "1") + "}"
    mark = "CAST(? AS JSONB)" if backend.name == "postgres" else "?"
    try:
        backend.raw(f"UPDATE sp_deals SET fields = {mark} WHERE id = ?", (value, "deal-1"))
    except Exception:  # PostgreSQL's own parser refuses the deepest values: nothing stored
        pytest.skip("the database refused to store JSON this deep")
    with pytest.raises(CorruptRecordError, match="deal-1"):
        reported.get("deal-1")


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100_000])
def test_a_deep_stored_definition_is_a_storage_error_naming_the_pipeline(
    backend: Backend, reported: DealStore, depth: int
) -> None:
    definition = '{"name":"contract","stages":' + _nested(depth, "{}") + "}"
    mark = "CAST(? AS JSONB)" if backend.name == "postgres" else "?"
    try:
        backend.raw(f"UPDATE sp_pipelines SET definition = {mark}", (definition,))
    except Exception:
        pytest.skip("the database refused to store JSON this deep")
    with pytest.raises(StorageError, match="'contract'"):
        reported.pipeline("contract")
    with pytest.raises(StorageError, match="'contract'"):
        reported.pipelines()


@pytest.mark.parametrize("version", ["²", "٢", "two", "", " 2", "2.0", "9" * 5_000, "-1", "02"])
def test_a_schema_version_that_is_not_a_number_is_refused_on_open(
    backend: Backend, version: str
) -> None:
    backend.open().close()
    backend.raw("UPDATE sp_meta SET value = ? WHERE key = ?", (version, "schema_version"))
    with pytest.raises(StorageError, match="schema version"):
        backend.open()


# -- fork: a child never touches the parent's connections --------------------------------


def _in_child(work: Any) -> int:
    """Run ``work()`` in a forked child; its exit code (0 when it returned True)."""
    pid = os.fork()
    if pid == 0:  # the child: whatever happens, leave without running pytest's teardown
        try:
            os._exit(0 if work() else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _refuses_everything(store: DealStore) -> bool:
    pipeline = contract_pipeline()
    calls = [
        lambda: store.get("deal-1"),
        lambda: list(store.find()),
        lambda: store.add(pipeline.start("child", at=T0)),
        lambda: store.save(pipeline.win(rich_deal(pipeline), at=T0.replace(year=2027))),
        lambda: store.pipelines(),
        lambda: store.pipeline("contract"),
        lambda: store.report(pipeline, as_of=T0),
    ]
    for call in calls:
        try:
            call()
        except StorageError as error:
            if "another process" not in str(error):
                return False
        else:
            return False
    store.close()
    store.close()
    return True


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_refuses_work_and_its_close_leaves_the_parent_working(
    backend: Backend, reported: DealStore
) -> None:
    before = reported.get("deal-1")
    assert _in_child(lambda: _refuses_everything(reported)) == 0
    for _ in range(8):  # every pooled connection is still the parent's and still open
        assert reported.get("deal-1") == before
    reported.add(contract_pipeline().start("after-fork", at=T0))
    assert reported.get("after-fork").stage == "lead"


# -- get() reads the deal row once, whatever the history length ---------------------------

LARGEST_FIELDS = {"blob": "x" * (MAX_FIELDS_BYTES - len('{"blob":""}'))}


def _long_history(pipeline: Pipeline, moves: int) -> Deal:
    deal = pipeline.advance(
        pipeline.start("long", bant=QUALIFIED, fields=LARGEST_FIELDS, at=T0), at=T0
    )
    for step in range(moves - 1):
        to = "closing" if deal.stage == "proposal" else "proposal"
        deal = pipeline.move(deal, to, at=T0 + timedelta(seconds=step + 1))
    return deal


@attrs.define
class _Counted:
    """A cursor that records every value it hands back."""

    cursor: Any
    fetched: list[Any]
    statements: list[str]

    @property
    def rowcount(self) -> int:
        return int(self.cursor.rowcount)

    @property
    def description(self) -> Any:
        return self.cursor.description

    @property
    def lastrowid(self) -> Any:
        return getattr(self.cursor, "lastrowid", None)

    def execute(self, sql: str, params: Sequence[Any] = (), **options: Any) -> object:
        self.statements.append(sql)
        return self.cursor.execute(sql, params, **options)

    def executemany(self, sql: str, params: Any) -> object:
        self.statements.append(sql)
        return self.cursor.executemany(sql, params)

    def fetchone(self) -> Any:
        row = self.cursor.fetchone()
        self.fetched.extend(row or ())
        return row

    def fetchall(self) -> list[Any]:
        rows = self.cursor.fetchall()
        for row in rows:
            self.fetched.extend(row)
        return list(rows)


@attrs.define
class Reads:
    """What a store fetched and executed while counted."""

    fetched: list[Any] = attrs.Factory(list)
    statements: list[str] = attrs.Factory(list)

    def characters(self) -> int:
        return sum(len(v) for v in self.fetched if isinstance(v, (str, bytes)))

    def clear(self) -> None:
        self.fetched.clear()
        self.statements.clear()


def counting(store: DealStore, monkeypatch: pytest.MonkeyPatch) -> Reads:
    """Wrap every cursor ``store`` opens so that ``Reads`` sees what it fetches."""
    reads = Reads()
    for name in ("_read", "_write", "_statement"):
        original = getattr(store, name)

        @contextmanager
        def wrapped(original: Any = original) -> Iterator[_Counted]:
            with original() as cursor:
                yield _Counted(cursor, reads.fetched, reads.statements)

        monkeypatch.setattr(store, name, wrapped)
    return reads


def test_get_reads_the_deal_row_once_whatever_the_history_length(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = contract_pipeline()
    deal = _long_history(pipeline, 500)
    assert len(deal.history) == 501
    with backend.open() as store:
        store.add(deal)
        reads = counting(store, monkeypatch)
        assert store.get("long") == deal
    size = len(LARGEST_FIELDS["blob"])
    assert size < reads.characters() < 2 * size, "the deal row came back once per history row"
    assert len(reads.statements) == 1, "a load is one statement (one round trip, one snapshot)"


def test_a_tracker_move_reads_no_history_back_to_save(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The save compares the history with the one the load returned, not with a re-read."""
    pipeline = contract_pipeline()
    with backend.open() as store:
        store.add(_long_history(pipeline, 500))
        tracker = Tracker(store, [pipeline], clock=lambda: T0.replace(year=2027))
        loaded = store.get("long")
        reads = counting(store, monkeypatch)
        change = store.save(pipeline.lose(loaded, "price", at=T0.replace(year=2027)))
        assert change is not None
        # at most the position the database gave the new change (PostgreSQL's RETURNING)
        assert reads.fetched in ([], [change.position]), "the save read rows back"
        tracker.reopen("long")
        selects = [s for s in reads.statements if s.lstrip().upper().startswith("SELECT")]
        assert selects == [], "a move on a deal the store remembers reads nothing"


def test_a_deal_saved_through_another_store_is_checked_against_the_database(
    backend: Backend,
) -> None:
    """Without a load to compare with, the store reads the stored history (never trusts it)."""
    pipeline = contract_pipeline()
    with backend.open() as writer, backend.open() as other:
        writer.add(pipeline.advance(pipeline.start("x", bant=QUALIFIED, at=T0), at=T0))
        loaded = other.get("x")
        forged = attrs.evolve(
            loaded,
            history=(loaded.history[0], attrs.evolve(loaded.history[1], reason="rewritten")),
        )
        with pytest.raises(ValidationError):
            writer.save(pipeline.lose(forged, "price", at=T0))
        writer.save(pipeline.lose(loaded, "price", at=T0))
        assert writer.get("x").stage == "lost"


# -- only the asked definition is decoded ---------------------------------------------------


@attrs.frozen
class Meddic:
    """A custom guard kind, registered only while a test needs it."""

    name: str = "meddic"

    def __call__(self, deal: Deal) -> list[guards.Violation]:
        return []

    def spec(self) -> dict[str, Any]:
        return {"guard": "meddic"}


def partner() -> Pipeline:
    return Pipeline("partner", [Stage("intro", probability=0.2), Stage("deal", probability=0.6)])


def b2b() -> Pipeline:
    stages = [
        Stage("lead", probability=0.1),
        Stage("proposal", probability=0.5, requires=guards.all_of(Meddic(), guards.bant())),
    ]
    return Pipeline("b2b", stages)


def _record(store: DealStore) -> None:
    for pipeline in (b2b(), partner()):
        store.save_pipeline(pipeline)
    store.add(partner().start("p1", at=T0))


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_one_definition_is_decoded_when_another_names_an_unregistered_guard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    store: DealStore = MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "d.sqlite")
    with monkeypatch.context() as registered:
        registered.setitem(guards.KINDS.factories, "meddic", Meddic)
        _record(store)
    assert store.pipeline("partner") == partner()
    assert store.report("partner", as_of=T0).stage_counts["intro"] == 1
    with pytest.raises(StorageError) as error:
        store.pipeline("b2b")
    message = str(error.value)
    assert "pipeline 'b2b'" in message
    assert "guard kind 'meddic', which is not registered" in message
    assert "guards.register('meddic', factory)" in message
    with pytest.raises(UnknownPipelineError) as unknown:
        store.pipeline("nope")
    assert unknown.value.known == ("b2b", "partner")
    store.close()


def test_a_definition_that_is_invalid_otherwise_names_its_problems(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite"
    with SQLiteStore(path) as store:
        store.save_pipeline(partner())
    sqlite_raw(path)(
        "UPDATE sp_pipelines SET definition = ?",
        ('{"format":1,"name":"partner","stages":[{"name":"intro","probability":7}]}',),
    )
    with SQLiteStore(path) as store, pytest.raises(StorageError) as error:
        store.pipeline("partner")
    assert "pipeline 'partner' is not a valid definition: " in str(error.value)
    assert "probability" in str(error.value)
    assert "\n" not in str(error.value)


def test_a_deep_value_given_to_save_pipeline_is_a_validation_error(tmp_path: Path) -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    for store in (MemoryStore(), SQLiteStore(tmp_path / "d.sqlite")):
        with store, pytest.raises(ValidationError, match="takes a Pipeline"):
            store.save_pipeline(deep)


def test_a_long_timeout_is_kept_whole(tmp_path: Path) -> None:
    """SQLite's busy timeout is an int of milliseconds: past 2**31 it waited not at all."""
    with SQLiteStore(tmp_path / "d.sqlite", timeout=2_000_000) as store:
        connection = store._connection
        assert connection is not None
        assert connection.execute("PRAGMA busy_timeout").fetchone() == (2_000_000_000,)
    with pytest.raises(ValidationError, match="timeout"):
        SQLiteStore(tmp_path / "d.sqlite", timeout=3_000_000)
