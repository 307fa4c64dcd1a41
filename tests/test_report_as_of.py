"""``report(as_of=...)``: the pipeline as it stood at any instant, on every store.

Generated stories (opens, moves, updates, owner changes and migrations, often at
equal times; ``test_log.stories``) are written through each store; for any
``as_of`` and owner the store's report must equal the pure report over the store's
own log replayed up to ``as_of``. Then the hand-worked cases and the refusals.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _backends import Backend
from _dataset import AS_OF, DAY, NOW, T, abc, hand_worked
from _postgres import PostgresServer
from salespipeline import log, metrics
from salespipeline.deal import Deal
from salespipeline.errors import ValidationError
from salespipeline.metrics import OwnerFigures
from salespipeline.pipeline import Pipeline
from salespipeline.storage import DealStore, MemoryStore, PostgresStore, SQLiteStore
from test_log import FIVE, Step, moments, stories

STALLING_FIVE = Pipeline(
    FIVE.name, [attrs.evolve(s, rot_after=timedelta(hours=2)) for s in FIVE.stages]
)
"""FIVE, its stages stalling after two hours, so stalls at ``as_of`` are checked too."""
OWNERS = st.sampled_from([None, None, "ana", "bo"])


def written(store: DealStore, steps: list[Step]) -> DealStore:
    """``store`` after each step of the story, saved as the story made it."""
    for step in steps:
        if step.before is None:
            store.add(step.after)
        else:
            store.save(step.after, actor=step.change.actor, reason=step.change.reason)
    return store


def whole_log(store: DealStore) -> Iterator[log.Change]:
    after = 0
    while page := store.log(after=after):
        yield from page
        after = page[-1].position or after


def replayed(store: DealStore, as_of: datetime, owner: str | None) -> metrics.PipelineReport:
    """The pure report over ``store``'s log replayed up to ``as_of``: what must come out."""
    deals = log.replay(whole_log(store), until=as_of).values()
    return metrics.report(deals, STALLING_FIVE, as_of=as_of, owner=owner)


def instants(data: st.DataObject, store: DealStore) -> list[datetime]:
    """Some of the log's own instants, just before them and between them, and one drawn."""
    times = moments(whole_log(store))
    return [*data.draw(st.lists(st.sampled_from(times), max_size=5)), times[0] + DAY * 30]


def check_store(store: DealStore, data: st.DataObject) -> None:
    written(store, data.draw(stories()))
    for as_of in instants(data, store):
        owner = data.draw(OWNERS)
        expected = replayed(store, as_of, owner)
        assert store.report(STALLING_FIVE, as_of=as_of, owner=owner) == expected


@given(st.data())
def test_memory_report_as_of_equals_the_replayed_log(data: st.DataObject) -> None:
    check_store(MemoryStore(), data)


@settings(max_examples=60)
@given(st.data())
def test_sqlite_report_as_of_equals_the_replayed_log(data: st.DataObject) -> None:
    with SQLiteStore(":memory:") as store:
        check_store(store, data)


@pytest.mark.postgres
def test_postgres_report_as_of_equals_the_replayed_log(postgres_server: PostgresServer) -> None:
    @settings(max_examples=30, deadline=None)
    @given(st.data())
    def check(data: st.DataObject) -> None:
        with PostgresStore(postgres_server.fresh_schema(), max_connections=1) as store:
            check_store(store, data)

    check()


def test_sql_rebuilds_more_deals_than_one_batch(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages of two deals, five of them changed at one same instant (paged by id there)."""
    from salespipeline.storage.sql import _replayed

    monkeypatch.setattr(_replayed, "BATCH", 2)
    p = abc()
    alike = [p.advance(p.start(f"t{i}", amount=i, at=T + DAY), at=T + 8 * DAY) for i in range(5)]
    with backend.open() as store:
        for deal in [*hand_worked(p), *alike]:
            store.add(deal)
        for as_of in (T + DAY, T + 3 * DAY, NOW, T + 8 * DAY):
            stood = log.replay(whole_log(store), until=as_of).values()
            assert store.report(p, as_of=as_of) == metrics.report(stood, p, as_of=as_of)
        assert store.report(p, as_of=T + 3 * DAY).stage_counts["a"] == 6


# -- hand-worked ------------------------------------------------------------------


def test_a_report_of_day_3_sees_the_deals_as_they_stood_then() -> None:
    """hand_worked at day 3: d1 in c, d2 and d3 in b, d4 in a, d5 in b, d6 lost."""
    p = abc()
    store = MemoryStore()
    for deal in hand_worked(p):
        store.add(deal)
    report = store.report(p, as_of=T + 3 * DAY)
    assert (report.deals, report.open_deals, report.won, report.lost) == (6, 5, 0, 1)
    assert dict(report.stage_counts) == {"a": 1, "b": 3, "c": 1, "won": 0, "lost": 1}
    assert (report.open_value, report.weighted_pipeline) == (Decimal(10500), Decimal(4350))
    assert (report.win_rate, report.stalled) == (0.0, 0)  # d5: 2 days in b, under 3


def test_a_report_before_the_first_deal_is_empty() -> None:
    p = abc()
    store = MemoryStore()
    for deal in hand_worked(p):
        store.add(deal)
    before = T - DAY
    assert store.report(p, as_of=before) == metrics.report([], p, as_of=before)
    assert store.report(p, as_of=before).deals == 0


def test_the_pure_report_leaves_out_deals_opened_later() -> None:
    p = abc()
    early = [d for d in hand_worked(p) if d.id in ("d1", "d6")]  # both done by day 4
    late = p.start("late", amount=7, at=T + 20 * DAY)
    assert metrics.report([*early, late], p, as_of=AS_OF) == metrics.report(early, p, as_of=AS_OF)


def test_the_pure_report_refuses_a_deal_changed_after_as_of() -> None:
    p = abc()
    with pytest.raises(ValidationError, match=r"d3.*after as_of.*log\.replay") as caught:
        metrics.report(hand_worked(p), p, as_of=NOW)  # d3 was won on day 10
    assert (caught.value.deal_id, caught.value.field) == ("d3", "as_of")


# -- now=, the deprecated alias ---------------------------------------------------------


def test_now_is_a_deprecated_alias_of_as_of() -> None:
    p = abc()
    store = MemoryStore()
    for deal in hand_worked(p):
        store.add(deal)
    with pytest.warns(DeprecationWarning, match="as_of"):
        pure = metrics.report(hand_worked(p), p, now=AS_OF)
    with pytest.warns(DeprecationWarning, match="as_of"):
        stored = store.report(p, now=NOW)
    assert pure == metrics.report(hand_worked(p), p, as_of=AS_OF)
    assert stored == store.report(p, as_of=NOW)


def test_now_and_as_of_together_are_refused() -> None:
    p = abc()
    with pytest.raises(ValidationError, match="as_of= alone"):
        metrics.report([], p, as_of=AS_OF, now=AS_OF)
    with SQLiteStore(":memory:") as store, pytest.raises(ValidationError, match="as_of= alone"):
        store.report(p, as_of=AS_OF, now=AS_OF)


# -- bad input ----------------------------------------------------------------------------

BAD_AS_OF = [
    (datetime(2026, 1, 1), "timezone-aware"),
    ("2026-01-01", "as_of must be an aware datetime"),
    (T.date(), "as_of must be an aware datetime"),
    (1767225600, "as_of must be an aware datetime"),
]
BAD_OWNERS = [("", "blank"), ("  ", "blank"), ("x" * 201, "owner"), (7, "owner")]


def stores() -> list[DealStore]:
    return [MemoryStore(), SQLiteStore(":memory:")]


@pytest.mark.parametrize(("as_of", "message"), BAD_AS_OF)
def test_a_bad_as_of_is_refused_naming_it(as_of: object, message: str) -> None:
    p = abc()
    with pytest.raises(ValidationError, match=message) as caught:
        metrics.report(hand_worked(p), p, as_of=as_of)  # type: ignore[arg-type]
    assert caught.value.field == "as_of"
    with pytest.raises(ValidationError, match=message):
        metrics.by_owner([], p, as_of=as_of)  # type: ignore[arg-type]
    for store in stores():
        with store, pytest.raises(ValidationError, match=message):
            store.report(p, as_of=as_of)  # type: ignore[arg-type]


@pytest.mark.parametrize(("owner", "message"), BAD_OWNERS)
def test_a_bad_owner_is_refused_naming_it(owner: object, message: str) -> None:
    p = abc()
    with pytest.raises(ValidationError, match=message) as caught:
        metrics.report([], p, as_of=AS_OF, owner=owner)  # type: ignore[arg-type]
    assert caught.value.field == "owner"
    for store in stores():
        with store, pytest.raises(ValidationError, match=message):
            store.report(p, as_of=AS_OF, owner=owner)  # type: ignore[arg-type]


# -- owner= and by_owner ------------------------------------------------------------------

OWNED = {"d1": "kim", "d2": "kim", "d3": "lee", "d4": "lee"}  # d5 and d6: nobody's


def owned(p: Pipeline) -> list[Deal]:
    """hand_worked with owners, set when each deal last changed (so as they end)."""
    return [
        d.evolve(owner=OWNED[d.id], at=d.updated_at) if d.id in OWNED else d
        for d in hand_worked(p)
    ]


def test_by_owner_hand_worked() -> None:
    p = abc()
    rows = metrics.by_owner(owned(p), p, as_of=AS_OF)
    assert [r.owner for r in rows] == ["kim", "lee", None]
    kim, lee, nobody = rows
    assert (kim.deals, kim.open_deals, kim.won, kim.lost) == (2, 0, 1, 1)
    assert (kim.won_value, kim.lost_value, kim.win_rate, kim.cycle_length) == (
        Decimal(1000),
        Decimal(3000),
        0.5,
        4 * DAY,
    )
    assert (lee.open_value, lee.won_value, lee.win_rate, lee.cycle_length) == (
        Decimal(500),
        Decimal(2000),
        1.0,
        9 * DAY,
    )
    assert (nobody.open_value, nobody.lost_value, nobody.win_rate, nobody.cycle_length) == (
        Decimal(4000),
        Decimal(1500),
        0.0,
        None,
    )
    assert all(r.currency == "USD" for r in rows)


def test_owner_keeps_that_owners_deals_on_every_store() -> None:
    p = abc()
    deals = owned(p)
    expected = metrics.report([d for d in deals if d.owner == "kim"], p, as_of=AS_OF)
    assert metrics.report(deals, p, as_of=AS_OF, owner="kim") == expected
    for store in stores():
        with store:
            for deal in deals:
                store.add(deal)
            assert store.report(p, as_of=AS_OF, owner="kim") == expected
            assert store.report(p, as_of=AS_OF, owner="nobody").deals == 0
            assert store.by_owner(p, as_of=AS_OF) == metrics.by_owner(deals, p, as_of=AS_OF)


@settings(max_examples=60)
@given(st.data())
def test_each_owner_row_is_that_owners_report(data: st.DataObject) -> None:
    store = written(MemoryStore(), data.draw(stories()))
    as_of = data.draw(st.sampled_from(instants(data, store)))
    deals = list(log.replay(whole_log(store), until=as_of).values())
    rows = metrics.by_owner(deals, STALLING_FIVE, as_of=as_of)
    whole = metrics.report(deals, STALLING_FIVE, as_of=as_of)
    assert sum(r.deals for r in rows) == whole.deals
    assert sum(r.won for r in rows) == whole.won
    for row in rows:
        if row.owner is not None:
            alone = metrics.report(deals, STALLING_FIVE, as_of=as_of, owner=row.owner)
            assert row == OwnerFigures.of(row.owner, alone)
    assert store.by_owner(STALLING_FIVE, as_of=as_of) == rows
