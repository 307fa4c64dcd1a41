"""Tracker: load, check, apply, save; retried on conflicts with the first load's destination."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salespipeline import (
    LOST,
    WON,
    Bant,
    ConcurrencyError,
    DealNotFoundError,
    DefinitionError,
    DuplicateDealError,
    Pipeline,
    SalesPipelineError,
    Stage,
    StageBlockedError,
    Tracker,
    TransitionNotAllowedError,
    UnknownPipelineError,
    ValidationError,
    guards,
)
from salespipeline.deal import Deal
from salespipeline.storage import MemoryStore, SQLiteStore

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
QUALIFIED = Bant(budget=True, authority=True, need=True, timeline=True)


class Clock:
    """Each call returns the next hour."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        current = self.now
        self.now += HOUR
        return current


def sales() -> Pipeline:
    return Pipeline(
        "sales",
        [
            Stage("lead", probability=0.1),
            Stage("proposal", probability=0.5, requires=guards.bant()),
            Stage("closing", probability=0.8),
        ],
    )


class InterferingStore(MemoryStore):
    """A MemoryStore where another writer commits ``interfere(stored)`` before our saves."""

    def __init__(self, interfere: Callable[[Deal], Deal], *, times: int = 1) -> None:
        super().__init__()
        self.interfere = interfere
        self.times = times
        self.attempts = 0

    def save(self, deal: Deal) -> None:
        self.attempts += 1
        if self.times > 0:
            self.times -= 1
            MemoryStore.save(self, self.interfere(self.get(deal.id)))
        super().save(deal)


@pytest.fixture
def tracker() -> Tracker:
    return Tracker(MemoryStore(), [sales()], clock=Clock())


# -- each operation -----------------------------------------------------------------------


def test_open_stores_a_deal_in_the_first_stage_at_the_clock_time(tracker: Tracker) -> None:
    deal = tracker.open("sales", "d1", amount="100.25", fields={"owner": "지민"})
    assert (deal.stage, deal.created_at, deal.amount) == ("lead", T0, Decimal("100.25"))
    assert tracker.get("d1") == deal


def test_each_operation_is_stored_with_the_clock_time(tracker: Tracker) -> None:
    tracker.open("sales", "d1", bant=QUALIFIED)
    steps: list[Callable[[], Deal]] = [
        lambda: tracker.advance("d1"),
        lambda: tracker.lose("d1", "price"),
        lambda: tracker.reopen("d1"),
        lambda: tracker.update("d1", amount=900, next_action="call"),
        lambda: tracker.move("d1", "closing", reason="signed LOI"),
        lambda: tracker.win("d1"),
    ]
    for step in steps:
        assert step() == tracker.get("d1")
    final = tracker.get("d1")
    stages = ["lead", "proposal", LOST, "proposal", "closing", WON]
    assert [c.to_stage for c in final.history] == stages
    # the update is stamped with the clock too (T0 + 4h): every change has its time
    assert [c.at for c in final.history] == [T0 + n * HOUR for n in (0, 1, 2, 3, 5, 6)]
    assert [c.at for c in tracker.store.changes("d1")] == [T0 + n * HOUR for n in range(7)]
    assert final.history[-2].reason == "signed LOI"
    assert (final.version, final.amount, final.next_action) == (7, 900, "call")


def test_reopen_takes_an_explicit_destination(tracker: Tracker) -> None:
    tracker.open("sales", "d1", bant=QUALIFIED)
    tracker.advance("d1")
    tracker.lose("d1", "timing")
    assert tracker.reopen("d1", "lead").stage == "lead"


def test_deals_passes_the_filters_to_the_store(tracker: Tracker) -> None:
    tracker.open("sales", "a")
    tracker.open("sales", "b")
    tracker.lose("b", "price")
    assert [d.id for d in tracker.deals(open=True)] == ["a"]
    assert [d.id for d in tracker.deals(pipeline="sales", stage=LOST)] == ["b"]


# -- refusals write nothing --------------------------------------------------------------


def test_a_guard_refusal_writes_nothing(tracker: Tracker) -> None:
    before = tracker.open("sales", "d1")
    with pytest.raises(StageBlockedError) as error:
        tracker.advance("d1")
    assert len(error.value.violations) == 4
    assert tracker.get("d1") == before


@pytest.mark.parametrize(
    ("operation", "error"),
    [
        (lambda t: t.move("d1", "closing"), TransitionNotAllowedError),
        (lambda t: t.move("d1", "nowhere"), KeyError),
        (lambda t: t.lose("d1", " "), ValidationError),
        (lambda t: t.reopen("d1"), TransitionNotAllowedError),
        (lambda t: t.update("d1", stage="closing"), ValidationError),
        (lambda t: t.update("d1", amount=-1), ValidationError),
        (lambda t: t.advance("missing"), DealNotFoundError),
    ],
)
def test_refused_operations_raise_typed_errors_and_change_nothing(
    tracker: Tracker, operation: Callable[[Tracker], Any], error: type[Exception]
) -> None:
    before = tracker.open("sales", "d1")
    with pytest.raises(error) as raised:
        operation(tracker)
    assert isinstance(raised.value, SalesPipelineError)
    assert tracker.get("d1") == before


def test_opening_a_taken_id_or_an_unknown_pipeline_is_refused(tracker: Tracker) -> None:
    first = tracker.open("sales", "d1")
    with pytest.raises(DuplicateDealError):
        tracker.open("sales", "d1", amount=5)
    with pytest.raises(UnknownPipelineError) as error:
        tracker.open("marketing", "d2")
    assert error.value.known == ("sales",)
    assert list(tracker.deals()) == [first]


def test_a_stored_deal_of_an_unknown_pipeline_is_refused(tracker: Tracker) -> None:
    other = Pipeline("other", [Stage("a", probability=0.5), Stage("b", probability=0.6)])
    tracker.store.add(other.start("x", at=T0))
    with pytest.raises(UnknownPipelineError):
        tracker.advance("x")


# -- definitions and construction ----------------------------------------------------------


def test_the_tracker_records_its_pipelines_in_the_store() -> None:
    store = MemoryStore()
    Tracker(store, sales())
    assert store.pipelines() == (sales(),)


def test_a_pipeline_that_cannot_be_data_is_refused_unless_recording_is_off() -> None:
    custom = Pipeline(
        "custom",
        [Stage("a", probability=0.5, requires=guards.rule("vip", lambda d: True, "vip only"))],
    )
    with pytest.raises(DefinitionError):
        Tracker(MemoryStore(), [custom])
    store = MemoryStore()
    Tracker(store, [custom], record_definitions=False).open("custom", "x")
    assert store.pipelines() == ()
    assert store.get("x").stage == "a"


@pytest.mark.parametrize(
    "arguments",
    [
        {"store": "not a store"},
        {"pipelines": []},
        {"pipelines": [sales(), sales()]},
        {"pipelines": ["sales"]},
        {"pipelines": 42},
        {"retries": -1},
        {"retries": True},
        {"clock": "now"},
    ],
)
def test_bad_construction_arguments_are_validation_errors(arguments: dict[str, Any]) -> None:
    options: dict[str, Any] = {"store": MemoryStore(), "pipelines": [sales()], **arguments}
    with pytest.raises(ValidationError):
        Tracker(options.pop("store"), options.pop("pipelines"), **options)


def test_the_default_clock_is_the_system_clock_in_utc() -> None:
    before = datetime.now(timezone.utc)
    deal = Tracker(MemoryStore(), [sales()]).open("sales", "d1")
    assert before <= deal.created_at <= datetime.now(timezone.utc)
    assert deal.created_at.tzinfo is timezone.utc


def test_a_clock_behind_the_last_change_records_the_last_change_time() -> None:
    times = iter([T0 + HOUR, T0])
    tracker = Tracker(MemoryStore(), [sales()], clock=lambda: next(times))
    tracker.open("sales", "d1")
    assert tracker.lose("d1", "price").closed_at == T0 + HOUR


def test_a_naive_clock_is_a_validation_error() -> None:
    tracker = Tracker(MemoryStore(), [sales()], clock=lambda: datetime(2026, 1, 1))
    with pytest.raises(ValidationError):
        tracker.open("sales", "d1")


# -- conflicts and retries ------------------------------------------------------------------


def _tracker_on(store: MemoryStore, **options: Any) -> Tracker:
    tracker = Tracker(store, [sales()], clock=Clock(), **options)
    tracker.open("sales", "d1", bant=QUALIFIED)
    return tracker


def test_two_concurrent_advances_move_the_deal_one_stage() -> None:
    pipeline = sales()
    store = InterferingStore(lambda d: pipeline.advance(d, at=d.stage_entered_at))
    tracker = _tracker_on(store)
    result = tracker.advance("d1")
    assert result.stage == "proposal"
    assert result == store.get("d1")
    assert [c.to_stage for c in store.history("d1")] == ["lead", "proposal"]


def test_a_retry_reapplies_the_destination_after_an_unrelated_change() -> None:
    store = InterferingStore(lambda d: d.evolve(amount=500))
    tracker = _tracker_on(store)
    result = tracker.advance("d1")
    assert (result.stage, result.amount, result.version) == ("proposal", 500, 3)
    assert store.attempts == 2


def test_a_retry_checks_the_guards_again() -> None:
    store = InterferingStore(lambda d: d.evolve(bant=Bant()))
    tracker = _tracker_on(store)
    with pytest.raises(StageBlockedError):
        tracker.advance("d1")
    assert store.get("d1").stage == "lead"
    assert store.get("d1").version == 2


def test_a_concurrent_loss_is_not_lost_twice() -> None:
    pipeline = sales()
    store = InterferingStore(lambda d: pipeline.lose(d, "timing", at=d.stage_entered_at))
    tracker = _tracker_on(store)
    assert tracker.lose("d1", "price").lost_reason == "timing"
    assert [c.to_stage for c in store.history("d1")] == ["lead", LOST]


def test_a_concurrent_identical_update_is_not_written_twice() -> None:
    store = InterferingStore(lambda d: d.evolve(amount=77))
    tracker = _tracker_on(store)
    assert tracker.update("d1", amount=77).version == 2
    assert store.get("d1").version == 2


def test_a_retried_update_sets_only_its_own_attributes_over_the_other_writers() -> None:
    store = InterferingStore(lambda d: d.evolve(owner="bob", amount=5), times=2)
    tracker = _tracker_on(store)
    result = tracker.update("d1", amount=77)
    assert (result.owner, result.amount, result.version) == ("bob", 77, 4)
    assert store.attempts == 3


def test_an_advance_racing_a_loss_is_refused_and_does_not_reopen_the_deal() -> None:
    """Alice advances while Bob loses the deal: Alice's move was decided on 'lead'."""
    pipeline = sales()
    store = InterferingStore(lambda d: pipeline.lose(d, "timing", at=d.stage_entered_at))
    tracker = _tracker_on(store)
    with pytest.raises(ConcurrencyError) as refused:
        tracker.advance("d1")
    assert (refused.value.seen, refused.value.found) == ("lead", LOST)
    assert "'lead'" in str(refused.value) and "'lost'" in str(refused.value)
    assert [c.to_stage for c in store.history("d1")] == ["lead", LOST]


def test_a_loss_decided_in_one_stage_is_refused_once_another_writer_advanced() -> None:
    pipeline = sales()
    store = InterferingStore(lambda d: pipeline.advance(d, at=d.stage_entered_at))
    tracker = _tracker_on(store)
    with pytest.raises(ConcurrencyError) as refused:
        tracker.lose("d1", "price")
    assert (refused.value.seen, refused.value.found) == ("lead", "proposal")
    assert store.get("d1").is_open


def test_a_win_is_refused_when_another_writer_lost_the_deal_meanwhile() -> None:
    pipeline = sales()
    store = InterferingStore(lambda d: pipeline.lose(d, "timing", at=d.stage_entered_at), times=0)
    tracker = _tracker_on(store)
    tracker.advance("d1")
    tracker.advance("d1")
    store.times = 1
    with pytest.raises(ConcurrencyError):
        tracker.win("d1")
    assert [c.to_stage for c in store.history("d1")] == ["lead", "proposal", "closing", LOST]


def test_an_update_that_changes_nothing_writes_nothing_and_notifies_no_one(
    tracker: Tracker,
) -> None:
    tracker.open("sales", "d1", amount=100)
    heard: list[object] = []
    tracker.subscribe(lambda change, deal: heard.append(deal), event="update")
    assert tracker.update("d1").version == 1
    assert tracker.update("d1", amount="100.00", currency="USD").version == 1
    assert tracker.get("d1").version == 1
    assert heard == []
    assert tracker.update("d1", amount=101).version == 2
    assert len(heard) == 1


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_retries_run_out_with_concurrency_error(retries: int) -> None:
    store = InterferingStore(lambda d: d.evolve(amount=d.amount + 1), times=retries + 1)
    tracker = _tracker_on(store, retries=retries)
    with pytest.raises(ConcurrencyError):
        tracker.advance("d1")
    assert store.attempts == retries + 1
    assert store.get("d1").stage == "lead"


def test_two_trackers_on_one_sqlite_file_see_each_others_changes(tmp_path: Any) -> None:
    path = tmp_path / "deals.sqlite"
    with SQLiteStore(path) as one, SQLiteStore(path) as two:
        first, second = Tracker(one, [sales()]), Tracker(two, [sales()])
        first.open("sales", "d1", bant=QUALIFIED)
        second.advance("d1")
        assert first.advance("d1").stage == "closing"
        assert [c.version for c in second.get("d1").history] == [1, 2, 3]


# -- the tracker agrees with the pure pipeline -------------------------------------------

OPERATIONS = st.one_of(
    st.tuples(st.just("move"), st.sampled_from(["lead", "proposal", "closing", WON, LOST])),
    st.tuples(st.sampled_from(["advance", "win", "reopen"]), st.none()),
    st.tuples(st.just("lose"), st.sampled_from(["price", "timing"])),
    st.tuples(st.just("qualify"), st.booleans()),
)


def _pure(pipeline: Pipeline, deal: Deal, name: str, arg: Any, at: datetime) -> Deal:
    if name == "move":
        reason = "moved" if arg == LOST else None
        return pipeline.move(deal, arg, at=at, reason=reason)
    if name == "lose":
        return pipeline.lose(deal, arg, at=at)
    if name == "qualify":
        bant = QUALIFIED if arg else Bant()
        return deal if deal.bant == bant else deal.evolve(bant=bant, at=at)  # no change, no write
    return {"advance": pipeline.advance, "win": pipeline.win, "reopen": pipeline.reopen}[name](
        deal, at=at
    )


def _tracked(tracker: Tracker, name: str, arg: Any) -> Deal:
    if name == "move":
        return tracker.move("d", arg, reason="moved" if arg == LOST else None)
    if name == "lose":
        return tracker.lose("d", arg)
    if name == "qualify":
        return tracker.update("d", bant=QUALIFIED if arg else Bant())
    return {"advance": tracker.advance, "win": tracker.win, "reopen": tracker.reopen}[name]("d")


@given(st.lists(OPERATIONS, max_size=12))
def test_tracker_operations_equal_the_pure_operations(operations: list[Any]) -> None:
    pipeline, clock = sales(), Clock()
    tracker = Tracker(MemoryStore(), [pipeline], clock=clock)
    model = tracker.open("sales", "d")
    for name, arg in operations:
        at = clock.now
        try:
            expected: Deal | type[Exception] = _pure(pipeline, model, name, arg, at)
        except SalesPipelineError as error:
            expected = type(error)
        clock.now = at
        try:
            got: Deal | type[Exception] = _tracked(tracker, name, arg)
        except SalesPipelineError as error:
            got = type(error)
        assert got == expected
        if isinstance(expected, Deal):
            model = expected
        assert tracker.get("d") == model
