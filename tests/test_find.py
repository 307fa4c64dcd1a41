"""``store.find`` and ``store.count``: filters, keyset pages, names, indexes, concurrency.

The StoreContract holds every store to the documented cases; here the three shipped
stores are held to a plain Python reading of the filters for generated deals and
filters, the SQL plans are checked to seek with an index, and pages are read while
another thread moves the deals.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _backends import Backend
from salespipeline import limits
from salespipeline.deal import Deal
from salespipeline.errors import UnknownStageError, ValidationError
from salespipeline.stages import LOST, WON
from salespipeline.storage import DealStore, MemoryStore, PostgresStore, SQLiteStore
from salespipeline.storage.base import Query, check_query
from salespipeline.storage.sql._schema import FIND_INDEXES
from salespipeline.storage.sql._store import SQLStore
from salespipeline.testing import strategies
from salespipeline.testing.contract import QUALIFIED, T0, contract_pipeline

PIPELINES = (contract_pipeline(), contract_pipeline("other"))
OWNERS = (None, "ann", "bob")
FIELD_VALUES = (1, 1.0, True, 0, False, "1", None, 0.5, "서울")
"""Values JSON readers confuse: 1, 1.0 and True; 0 and False; 1 and "1"; null and absent."""


# -- a plain reading of the filters, written apart from Query ---------------------------


def _same_json(stored: object, wanted: object) -> bool:
    if wanted is None or isinstance(wanted, bool):
        return stored is wanted
    if isinstance(wanted, str):
        return isinstance(stored, str) and stored == wanted
    return isinstance(stored, (int, float)) and not isinstance(stored, bool) and stored == wanted


def _plain(deals: list[Deal], filters: dict[str, Any]) -> list[Deal]:
    """``find``'s answer for ``filters``, by list comprehension."""
    kept = sorted(deals, key=lambda d: d.id)
    f = filters
    if f.get("pipeline") is not None:
        kept = [d for d in kept if d.pipeline == f["pipeline"]]
    if f.get("stage") is not None:
        kept = [d for d in kept if d.stage == f["stage"]]
    if f.get("open") is not None:
        kept = [d for d in kept if (d.stage not in (WON, LOST)) == f["open"]]
    if f.get("owner") is not None:
        kept = [d for d in kept if d.owner == f["owner"]]
    if f.get("updated_since") is not None:
        kept = [d for d in kept if d.updated_at >= f["updated_since"]]
    for key, wanted in (f.get("fields") or {}).items():
        kept = [d for d in kept if key in d.fields and _same_json(d.fields[key], wanted)]
    if f.get("after") is not None:
        kept = [d for d in kept if d.id > f["after"]]
    return kept if f.get("limit") is None else kept[: f["limit"]]


# -- generated deals and filters ------------------------------------------------------------

_IDS = st.text(alphabet="abAB가😀_9", min_size=1, max_size=3)


@st.composite
def _deal_sets(draw: st.DrawFn) -> list[Deal]:
    deals = []
    for id in draw(st.lists(_IDS, unique=True, max_size=9)):
        pipeline = draw(st.sampled_from(PIPELINES))
        deal = draw(strategies.deals(pipeline, max_steps=3, ids=st.just(id)))
        fields = draw(
            st.dictionaries(
                st.sampled_from(["tier", "vip"]), st.sampled_from(FIELD_VALUES), min_size=1
            )
        )
        later = max(deal.updated_at, T0) + timedelta(hours=draw(st.integers(0, 4)))
        deals.append(deal.evolve(owner=draw(st.sampled_from(OWNERS)), fields=fields, at=later))
    return deals


def _filters(deals: list[Deal]) -> st.SearchStrategy[dict[str, Any]]:
    stages = sorted({s for p in PIPELINES for s in p.stage_names})
    times = [d.updated_at for d in deals] + [T0, T0 + timedelta(hours=2)]
    ids = [d.id for d in deals] + ["a", "가"]
    options = {
        "pipeline": st.sampled_from([p.name for p in PIPELINES]),
        "stage": st.sampled_from(stages),
        "open": st.booleans(),
        "owner": st.sampled_from(OWNERS[1:]),
        "fields": st.dictionaries(
            st.sampled_from(["tier", "vip", "absent"]), st.sampled_from(FIELD_VALUES), max_size=2
        ),
        "updated_since": st.sampled_from(times),
        "limit": st.integers(0, 4),
        "after": st.sampled_from(ids),
    }
    return st.fixed_dictionaries({}, optional=options)


def _fresh_sqlite() -> DealStore:
    return SQLiteStore(":memory:")


def _stores(request: pytest.FixtureRequest) -> dict[str, Callable[[], DealStore]]:
    """Fresh empty stores per example: memory and SQLite always, PostgreSQL when marked."""
    makers: dict[str, Callable[[], DealStore]] = {"memory": MemoryStore, "sqlite": _fresh_sqlite}
    if request.node.get_closest_marker("postgres"):
        conninfo = request.getfixturevalue("postgres_database")
        makers["postgres"] = lambda: _emptied(PostgresStore(conninfo))
    return makers


def _emptied(store: PostgresStore) -> PostgresStore:
    with store._write() as cursor:
        for table in ("sp_changes", "sp_deals", "sp_pipelines"):
            cursor.execute(f"DELETE FROM {table}")
    return store


def _agree(makers: dict[str, Callable[[], DealStore]], *, examples: int) -> None:
    @settings(max_examples=examples, deadline=None)
    @given(st.data())
    def check(data: st.DataObject) -> None:
        deals = data.draw(_deal_sets())
        filters = data.draw(_filters(deals))
        counted = {k: v for k, v in filters.items() if k not in ("limit", "after")}
        whole = _plain(deals, counted)
        for name, make in makers.items():
            with make() as store:
                for pipeline in PIPELINES:
                    store.save_pipeline(pipeline)
                for deal in deals:
                    store.add(deal)
                assert list(store.find(**filters)) == _plain(deals, filters), name
                assert store.count(**counted) == len(whole), name
                assert _paged(store, counted, size=2) == whole, name

    check()


def _paged(
    store: DealStore, filters: dict[str, Any], *, size: int, pause: float = 0
) -> list[Deal]:
    """Every page of ``find(**filters)``, ``size`` deals each, ``pause`` seconds apart."""
    seen: list[Deal] = []
    while page := list(store.find(**filters, limit=size, after=seen[-1].id if seen else None)):
        seen.extend(page)
        time.sleep(pause)
    return seen


def test_memory_and_sqlite_agree_with_a_plain_filter(request: pytest.FixtureRequest) -> None:
    _agree(_stores(request), examples=settings().max_examples)


@pytest.mark.postgres
def test_postgres_agrees_with_memory_sqlite_and_a_plain_filter(
    request: pytest.FixtureRequest,
) -> None:
    _agree(_stores(request), examples=min(settings().max_examples, 40))


# -- arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"limit": -1}, "limit"),
        ({"limit": limits.MAX_FIND_PAGE + 1}, "10,000"),
        ({"after": 3}, "after"),
        ({"order_by": "updated_at"}, "'id'"),
        ({"updated_since": datetime(2026, 1, 1)}, "updated_since"),
        ({"fields": {"tier": [1]}}, "fields['tier']"),
        ({"fields": {"tier": 2**53 + 1}}, "2**53"),
        ({"owner": ""}, None),
    ],
)
def test_a_bad_argument_is_named_in_the_error(
    arguments: dict[str, Any], named: str | None
) -> None:
    if named is None:  # an empty owner is text like any other: nobody has it
        assert check_query(**arguments) == Query(owner="")
        return
    with pytest.raises(ValidationError) as error:
        check_query(**arguments)
    assert named in str(error.value)


def test_field_numbers_at_the_limit_are_accepted() -> None:
    query = check_query(fields={"b": -(2**53), "a": 2.0**53})
    assert query.fields == (("a", 2.0**53), ("b", -(2**53)))


def test_the_default_count_counts_what_find_yields() -> None:
    class Plain(MemoryStore):
        count = DealStore.count
        _carries = DealStore._carries

    store = Plain()
    pipeline = PIPELINES[0]
    for n in range(4):
        store.add(pipeline.start(f"d{n}", at=T0).evolve(owner="ann" if n % 2 else None, at=T0))
    assert store.count() == 4 and store.count(owner="ann") == 2
    assert store.count(pipeline="contract", stage="lead") == 4
    with pytest.raises(UnknownStageError):
        store.count(stage="negotiation")


def test_a_stage_is_known_from_a_stored_deal_when_no_definition_is_recorded() -> None:
    store = MemoryStore()
    store.add(PIPELINES[0].start("x", at=T0))
    assert [d.id for d in store.find(pipeline="contract", stage="lead")] == ["x"]
    with pytest.raises(UnknownStageError):
        list(store.find(pipeline="contract", stage="proposal"))  # no definition, no deal there
    store.save_pipeline(PIPELINES[0])
    assert list(store.find(pipeline="contract", stage="proposal")) == []


# -- SQL: indexes and plans -------------------------------------------------------------------


def _fill(store: DealStore, count: int) -> None:
    pipeline = PIPELINES[0]
    store.save_pipeline(pipeline)
    for n in range(count):
        deal = pipeline.start(f"d{n:05}", bant=QUALIFIED, at=T0)
        if n % 40 == 0:
            deal = pipeline.advance(deal, at=T0 + timedelta(minutes=1))
        store.add(deal.evolve(owner=f"owner-{n % 97}", at=T0 + timedelta(minutes=n + 1)))


_PLANNED: dict[str, tuple[Query, tuple[str, ...]]] = {
    "owner": (Query(owner="owner-5"), ("sp_deals_owner",)),
    "stage": (Query(stage="proposal"), ("sp_deals_stage", "sp_deals_pipeline_stage")),
    "pipeline and stage": (
        Query(pipeline="contract", stage="proposal"),
        ("sp_deals_stage", "sp_deals_pipeline_stage"),
    ),
    "updated_since": (
        Query(updated_since=T0 + timedelta(minutes=1991)),
        ("sp_deals_updated",),
    ),
}


def _plans(store: SQLStore, query: Query) -> Iterator[str]:
    """The plan text of a page's SELECT and of the count, as the database explains them."""
    postgres = isinstance(store, PostgresStore)
    statement, params = store._find_statement(query, None, 50)
    conditions, counted = store._conditions(query, None)
    counting = f"SELECT COUNT(*) FROM sp_deals WHERE {conditions}"
    for sql, values in ((statement, params), (counting, counted)):
        with store._read() as cursor:
            if postgres:
                cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(("EXPLAIN " if postgres else "EXPLAIN QUERY PLAN ") + sql, values)
            yield " ".join(str(part) for row in cursor.fetchall() for part in row)


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SQLiteStore]:
    path = tmp_path_factory.mktemp("plans") / "deals.sqlite"
    with SQLiteStore(path, synchronous="normal") as store:
        _fill(store, 2000)
        with store._write() as cursor:
            cursor.execute("ANALYZE")
        yield store


@pytest.mark.parametrize("case", sorted(_PLANNED))
def test_sqlite_seeks_each_filter_with_an_index(planned: SQLiteStore, case: str) -> None:
    query, indexes = _PLANNED[case]
    for plan in _plans(planned, query):
        assert any(f"INDEX {index}" in plan for index in indexes), plan


@pytest.mark.postgres
def test_postgres_seeks_each_filter_with_an_index(postgres_database: str) -> None:
    with PostgresStore(postgres_database) as store:
        _fill(store, 2000)
        with store._statement() as cursor:
            cursor.execute("ANALYZE sp_deals")
        for case, (query, indexes) in sorted(_PLANNED.items()):
            for plan in _plans(store, query):
                assert any(index in plan for index in indexes), (case, plan)


def test_a_schema_3_database_without_the_find_indexes_gains_them(backend: Backend) -> None:
    with backend.open() as store:
        store.add(PIPELINES[0].start("x", at=T0).evolve(owner="ann", at=T0))
    for name in FIND_INDEXES:
        backend.raw(f"DROP INDEX {name}", ())
    with backend.open() as store:
        assert [d.id for d in store.find(owner="ann")] == ["x"]
    if backend.name == "sqlite":
        rows = backend.raw("SELECT name FROM sqlite_master WHERE type = 'index'", ())
    else:
        rows = backend.raw("SELECT indexname FROM pg_indexes WHERE tablename = 'sp_deals'", ())
    assert set(FIND_INDEXES) <= {row[0] for row in rows}


# -- pages under concurrent writes --------------------------------------------------------------


def _moves(store: DealStore, ids: list[str], stop: threading.Event, counted: list[int]) -> None:
    """Move, lose, reopen and update deals (their stage and updated_at) until ``stop``,
    counting the saves in ``counted[0]``."""
    pipeline = PIPELINES[0]
    done, at = 0, T0 + timedelta(days=1)
    while not stop.is_set():
        for id in ids[done % 7 :: 7]:
            deal = store.get(id)
            at += timedelta(seconds=1)
            if deal.stage == LOST:
                moved = pipeline.reopen(deal, at=at)
            elif deal.stage == "lead":
                moved = pipeline.advance(deal, at=at)
            elif done % 2:
                moved = pipeline.lose(deal, "price", at=at)
            else:
                moved = deal.evolve(owner="moved", at=at)
            store.save(moved)
            done += 1
            counted[0] = done
            if stop.is_set():
                break


@pytest.mark.parametrize(
    "kind", ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_pages_by_id_see_each_deal_once_while_deals_move(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "memory":
        reader = writer = MemoryStore()
    elif kind == "sqlite":
        reader, writer = SQLiteStore(tmp_path / "d.sqlite"), SQLiteStore(tmp_path / "d.sqlite")
    else:
        conninfo = request.getfixturevalue("postgres_database")
        reader, writer = PostgresStore(conninfo), PostgresStore(conninfo)
    try:
        _fill(writer, 120)
        ids = sorted(d.id for d in writer.find())
        stop, counted = threading.Event(), [0]
        thread = threading.Thread(target=_moves, args=(writer, ids, stop, counted))
        thread.start()
        try:
            while counted[0] == 0 and thread.is_alive():  # the writer is under way
                time.sleep(0.001)
            before = counted[0]
            passes = [[d.id for d in _paged(reader, {"pipeline": "contract"}, size=7, pause=1e-3)]]
            passes += [[d.id for d in _paged(reader, {}, size=11, pause=1e-3)] for _ in range(3)]
            during = counted[0] - before
        finally:
            stop.set()
            thread.join(timeout=60)
        assert before > 0 and during > 0  # deals moved while the pages were read
        assert all(seen == ids for seen in passes)
    finally:
        reader.close()
        if writer is not reader:
            writer.close()


def test_tracker_deals_take_every_filter_and_know_their_own_pipelines() -> None:
    from salespipeline import Tracker, presets
    from salespipeline.storage import MemoryStore

    tracker = Tracker(
        MemoryStore(), [presets.four_stage(), presets.funnel()], record_definitions=False
    )
    for n in range(4):
        tracker.open("four_stage", f"d{n}", owner="kim" if n % 2 else "lee")
    assert [d.id for d in tracker.deals(owner="kim", limit=1)] == ["d1"]
    assert [d.id for d in tracker.deals(pipeline="four_stage", after="d2")] == ["d3"]
    assert list(tracker.deals(pipeline="funnel")) == []  # known to the tracker, no deals yet


# -- one statement a page on PostgreSQL -------------------------------------------------------


class _CountingStore(PostgresStore):
    """A PostgresStore that records the statements it runs and the read transactions it opens."""

    def __init__(self, conninfo: str) -> None:
        self.ran: list[str] = []
        self.reads = 0
        super().__init__(conninfo)

    def _cursor(self, connection: Any) -> Any:
        store, cursor = self, super()._cursor(connection)

        class Counted:
            def execute(self, sql: str, params: Any = (), /, **options: Any) -> object:
                store.ran.append(sql)
                return cursor.execute(sql, params, **options)

            def __getattr__(self, name: str) -> Any:
                return getattr(cursor, name)

        return Counted()

    def _read(self) -> Any:
        self.reads += 1
        return super()._read()


@pytest.mark.postgres
def test_a_postgres_page_and_its_histories_are_one_statement(postgres_database: str) -> None:
    from salespipeline.testing.contract import rich_deal

    pipeline = contract_pipeline()
    with _CountingStore(postgres_database) as store:
        store.add(rich_deal(pipeline, "a"))
        store.add(pipeline.start("b", at=T0).evolve(owner="ann", at=T0))
        store.ran.clear()
        store.reads = 0
        found = list(store.find(limit=2))
        assert (len(store.ran), store.reads) == (1, 0)  # no read transaction, one statement
        assert found == [store.get("a"), store.get("b")] == [rich_deal(pipeline, "a"), found[1]]
        assert len(found[0].history) == 5  # lost, reopened, moved: every entry came back


@pytest.mark.postgres
def test_a_postgres_page_reads_its_rows_in_binary_and_amounts_and_fields_as_text(
    postgres_database: str,
) -> None:
    from decimal import Decimal

    pipeline = contract_pipeline()
    stored = pipeline.start("a", at=T0, owner="ann").evolve(
        amount=Decimal("1234567.50"),
        fields={"région": "Île", "nested": {"list": [1, 2.5, None, True]}},
        probability=0.1,
        next_action="call",
        next_action_at=T0 + timedelta(days=2, microseconds=7),
        at=T0 + timedelta(microseconds=1),
    )
    with _CountingStore(postgres_database) as store:
        store.add(stored)
        ran: list[dict[str, Any]] = []
        execute = store._cursor

        def cursor(connection: Any) -> Any:
            inner = execute(connection)

            class Options:
                def execute(self, sql: str, params: Any = (), /, **options: Any) -> object:
                    ran.append(options)
                    return inner.execute(sql, params, **options)

                def __getattr__(self, name: str) -> Any:
                    return getattr(inner, name)

            return Options()

        store._cursor = cursor  # type: ignore[method-assign]
        (found,) = store.find(owner="ann", limit=1)
    assert ran == [{"binary": True}]
    assert found == stored and str(found.amount) == "1234567.50"
    assert found.fields == stored.fields and found.next_action_at == stored.next_action_at
    assert found.updated_at == stored.updated_at and found.updated_at.tzinfo is not None
    assert found.history[0].at is found.created_at  # the entry shares the deal's time


@pytest.mark.postgres
def test_a_postgres_page_still_reads_a_deal_without_history_as_corrupt(
    postgres_database: str,
) -> None:
    from salespipeline.errors import CorruptRecordError

    with PostgresStore(postgres_database) as store:
        store.add(PIPELINES[0].start("x", at=T0))
        with store._write() as cursor:
            cursor.execute("DELETE FROM sp_changes WHERE deal_id = 'x'")
        with pytest.raises(CorruptRecordError, match="no history rows") as error:
            list(store.find())
        assert error.value.deal_id == "x"
