"""Listeners: order, filters, errors, unsubscribe; and, through a Tracker, only committed moves."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salespipeline import (
    Bant,
    ConcurrencyError,
    Deal,
    Pipeline,
    SalesPipelineError,
    Stage,
    StageBlockedError,
    StageChange,
    TransitionNotAllowedError,
    UnknownStageError,
    ValidationError,
    guards,
    log,
)
from salespipeline._listeners import EVENTS, ListenerFailure, Listeners, event_of
from salespipeline.storage import MemoryStore, SQLiteStore
from salespipeline.tracker import Tracker

T0 = datetime(2026, 2, 2, 9, 0, tzinfo=timezone.utc)
PIPELINE = Pipeline(
    "p",
    [Stage(n, probability=p) for n, p in (("lead", 0.1), ("demo", 0.3), ("proposal", 0.6))],
    allow_skip=True,
)


def _notify(listeners: Listeners, before: Deal | None, after: Deal) -> tuple[ListenerFailure, ...]:
    """Dispatch the changes from ``before`` to ``after`` as the Tracker would, one by one."""
    since = 0 if before is None else before.version
    failures: list[ListenerFailure] = []
    for change in log.recorded(after):
        if change.version > since:
            failures.extend(listeners.notify(change, after, PIPELINE))
    return tuple(failures)


Record = list[tuple[str, str | None, str, int]]


def recorder(record: Record, tag: str) -> Any:
    def listener(change: StageChange, deal: Deal) -> None:
        record.append((tag, change.from_stage, change.to_stage, deal.version))

    return listener


def walk(listeners: Listeners, *steps: str) -> Deal:
    """Start a deal and apply each step through ``listeners`` as a committed change."""
    deal = PIPELINE.start("d", at=T0)
    _notify(listeners, None, deal)
    for step in steps:
        before = deal
        if step == "update":
            deal = deal.evolve(next_action="call")
        elif step == "lose":
            deal = PIPELINE.lose(deal, "price", at=T0)
        elif step == "reopen":
            deal = PIPELINE.reopen(deal, at=T0)
        else:
            deal = PIPELINE.move(deal, step, at=T0)
        _notify(listeners, before, deal)
    return deal


# -- the registry ------------------------------------------------------------------


def test_listeners_run_in_subscription_order() -> None:
    listeners, record = Listeners(), []
    for tag in "abc":
        listeners.subscribe(recorder(record, tag))
    walk(listeners, "demo")
    assert [r[0] for r in record] == ["a", "b", "c", "a", "b", "c"]
    assert record[-1] == ("c", "lead", "demo", 2)


@pytest.mark.parametrize(
    ("steps", "kinds"),
    [
        ((), ["start"]),
        (("demo",), ["start", "advance"]),
        (("proposal",), ["start", "move"]),
        (("proposal", "demo"), ["start", "move", "move"]),
        (("proposal", "won"), ["start", "move", "win"]),
        (("demo", "lose", "reopen"), ["start", "advance", "lose", "reopen"]),
    ],
)
def test_event_kinds_are_read_from_the_change(steps: tuple[str, ...], kinds: list[str]) -> None:
    listeners = Listeners()
    heard: list[str] = []
    deal = walk(listeners, *steps)
    assert [event_of(ch, PIPELINE) for ch in deal.history] == kinds
    for kind in EVENTS:
        listeners.subscribe(lambda ch, d, k=kind: heard.append(k), event=kind)
    walk(listeners, *steps)
    assert heard == kinds


def test_stage_filter_matches_the_destination() -> None:
    listeners, record = Listeners(), []
    listeners.subscribe(recorder(record, "proposal"), stage="proposal")
    listeners.subscribe(recorder(record, "closed"), stage=["won", "lost"])
    walk(listeners, "demo", "proposal", "lose", "reopen", "won")
    assert record == [
        ("proposal", "demo", "proposal", 3),
        ("closed", "proposal", "lost", 4),
        ("proposal", "lost", "proposal", 5),
        ("closed", "proposal", "won", 6),
    ]


def test_stage_and_event_filters_combine() -> None:
    listeners, record = Listeners(), []
    listeners.subscribe(recorder(record, "x"), stage="proposal", event="reopen")
    walk(listeners, "proposal", "lose", "reopen")
    assert record == [("x", "lost", "proposal", 4)]


def test_updates_are_heard_only_when_asked_for_with_their_own_change() -> None:
    listeners, default, updates = Listeners(), [], []
    listeners.subscribe(recorder(default, "all"))
    listeners.subscribe(recorder(updates, "upd"), event="update")
    walk(listeners, "demo", "update")
    assert [r[2] for r in default] == ["lead", "demo"]
    assert updates == [("upd", None, None, 3)]  # the update's own change moves no stage


def test_several_new_history_entries_are_dispatched_in_order() -> None:
    listeners, record = Listeners(), []
    listeners.subscribe(recorder(record, "r"))
    start = PIPELINE.start("d", at=T0)
    later = PIPELINE.move(PIPELINE.advance(start, at=T0), "won", at=T0)
    _notify(listeners, start, later)
    assert record == [("r", "lead", "demo", 3), ("r", "demo", "won", 3)]


def test_no_newer_version_dispatches_nothing() -> None:
    listeners, record = Listeners(), []
    listeners.subscribe(recorder(record, "r"))
    deal = PIPELINE.start("d", at=T0)
    assert _notify(listeners, deal, deal) == ()
    assert record == []


def test_a_raising_listener_is_logged_recorded_and_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    listeners, record = Listeners(), []

    def broken(change: StageChange, deal: Deal) -> None:
        raise RuntimeError("mail server down")

    listeners.subscribe(recorder(record, "before"))
    listeners.subscribe(broken)
    listeners.subscribe(recorder(record, "after"))
    deal = PIPELINE.start("d", at=T0)
    with caplog.at_level(logging.ERROR, logger="salespipeline.listeners"):
        (failure,) = _notify(listeners, None, deal)
    assert [r[0] for r in record] == ["before", "after"]
    assert (failure.listener, failure.event, failure.deal) == (broken, "start", deal)
    assert str(failure.error) == "mail server down"
    assert listeners.failures == (failure,)
    (logged,) = caplog.records
    assert logged.name == "salespipeline.listeners"
    assert "'d'" in logged.getMessage()
    assert logged.exc_info is not None


def test_failures_are_bounded_to_the_most_recent() -> None:
    listeners = Listeners()
    listeners.subscribe(lambda ch, d: 1 / 0, event="update")
    deal = PIPELINE.start("d", at=T0)
    for _ in range(150):
        deal, before = deal.evolve(next_action="x"), deal
        _notify(listeners, before, deal)
    assert len(listeners.failures) == 100
    assert [f.deal.version for f in listeners.failures] == list(range(52, 152))


def test_unsubscribe_stops_the_listener_and_calling_it_twice_is_harmless() -> None:
    listeners, record = Listeners(), []
    unsubscribe = listeners.subscribe(recorder(record, "r"))
    walk(listeners)
    assert unsubscribe.active
    unsubscribe()
    unsubscribe()
    assert not unsubscribe.active
    assert len(listeners) == 0
    walk(listeners, "demo")
    assert len(record) == 1


def test_the_same_callback_subscribed_twice_is_two_subscriptions() -> None:
    listeners, record = Listeners(), []
    callback = recorder(record, "r")
    first = listeners.subscribe(callback)
    listeners.subscribe(callback)
    first()
    walk(listeners)
    assert len(record) == 1


def test_a_listener_unsubscribed_mid_dispatch_is_not_called_for_that_change() -> None:
    listeners, record = Listeners(), []
    later = None

    def first(change: StageChange, deal: Deal) -> None:
        assert later is not None
        later()

    listeners.subscribe(first)
    later = listeners.subscribe(recorder(record, "later"))
    walk(listeners)
    assert record == []


def test_unsubscribe_handle_is_a_context_manager() -> None:
    listeners, record = Listeners(), []
    with listeners.subscribe(recorder(record, "r")) as handle:
        walk(listeners)
    assert not handle.active
    walk(listeners)
    assert len(record) == 1


async def _async_listener(change: StageChange, deal: Deal) -> None:
    pass


@pytest.mark.parametrize(
    "kwargs",
    [
        {"callback": "not callable"},
        {"callback": _async_listener},
        {"event": "moved"},
        {"event": []},
        {"stage": []},
        {"stage": 3},
        {"stage": [["lead"]]},
    ],
)
def test_bad_subscriptions_are_validation_errors(kwargs: dict[str, Any]) -> None:
    args = {"callback": lambda ch, d: None, **kwargs}
    with pytest.raises(ValidationError):
        Listeners().subscribe(args.pop("callback"), **args)


def test_a_stage_no_pipeline_has_is_refused_when_stages_are_known() -> None:
    with pytest.raises(UnknownStageError, match="propsal"):
        Listeners().subscribe(lambda ch, d: None, stage="propsal", known_stages=("proposal",))


def test_async_apps_hand_changes_to_the_event_loop() -> None:
    async def main() -> list[tuple[str, str]]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[StageChange, Deal]] = asyncio.Queue()
        listeners = Listeners()
        listeners.subscribe(lambda ch, d: loop.call_soon_threadsafe(queue.put_nowait, (ch, d)))
        await asyncio.to_thread(walk, listeners, "demo", "won")
        seen = [await asyncio.wait_for(queue.get(), timeout=5) for _ in range(3)]
        return [(d.id, ch.to_stage) for ch, d in seen]

    assert asyncio.run(main()) == [("d", "lead"), ("d", "demo"), ("d", "won")]


# -- through a Tracker: only committed changes -------------------------------------

GATED = Pipeline(
    "gated",
    [
        Stage("lead", probability=0.1),
        Stage("demo", probability=0.3),
        Stage("proposal", probability=0.6, requires=guards.bant("budget")),
    ],
)


class Interfering(MemoryStore):
    """A store that runs ``before_save`` once, just before the next save."""

    before_save: Callable[[], object] | None = None

    def save(self, deal: Deal) -> None:
        hook, self.before_save = self.before_save, None
        if hook is not None:
            hook()
        super().save(deal)


class AlwaysConflicting(MemoryStore):
    def save(self, deal: Deal) -> None:
        raise ConcurrencyError(deal.id, expected=deal.version - 1, actual=deal.version)


def heard(record: list[StageChange]) -> Callable[[log.Change, Deal], None]:
    """A listener recording the history entry of each stage change it hears."""
    return lambda change, deal: record.append(change.entry) if change.entry else None


def all_history(store: Any) -> list[StageChange]:
    return sorted(
        (ch for d in store.find() for ch in store.history(d.id)),
        key=lambda ch: (ch.deal_id, ch.version),
    )


def by_key(record: list[StageChange]) -> list[StageChange]:
    return sorted(record, key=lambda ch: (ch.deal_id, ch.version))


def test_tracker_listeners_hear_committed_moves_not_refused_ones(clock: Any) -> None:
    tracker, record = Tracker(MemoryStore(), GATED, clock=clock), []
    tracker.subscribe(heard(record))
    tracker.open("gated", "d")
    tracker.advance("d")
    with pytest.raises(StageBlockedError):
        tracker.advance("d")
    with pytest.raises(TransitionNotAllowedError):
        tracker.move("d", "won")
    with pytest.raises(ValidationError):
        tracker.lose("d", " ")
    tracker.update("d", bant=Bant(budget=True))
    tracker.advance("d")
    assert [(ch.from_stage, ch.to_stage) for ch in record] == [
        (None, "lead"),
        ("lead", "demo"),
        ("demo", "proposal"),
    ]
    assert record == list(tracker.store.history("d"))


def test_tracker_update_events_carry_the_updated_deal(clock: Any) -> None:
    tracker, seen = Tracker(MemoryStore(), GATED, clock=clock), []
    tracker.subscribe(
        lambda ch, d: seen.append((ch.to_stage, d.version, d.next_action)), event="update"
    )
    tracker.open("gated", "d")
    tracker.update("d", next_action="send the quote")
    assert seen == [(None, 2, "send the quote")]


def test_a_raising_listener_does_not_undo_the_move(clock: Any) -> None:
    tracker, record = Tracker(MemoryStore(), GATED, clock=clock), []
    tracker.subscribe(lambda ch, d: 1 / 0, stage="demo")
    tracker.subscribe(heard(record), stage="demo")
    tracker.open("gated", "d")
    moved = tracker.advance("d")
    assert tracker.get("d") == moved
    assert moved.stage == "demo"
    assert [ch.to_stage for ch in record] == ["demo"]
    (failure,) = tracker.listener_errors
    assert isinstance(failure.error, ZeroDivisionError)
    assert failure.change.entry == moved.history[-1]


def test_a_change_made_by_a_listener_is_heard_after_the_one_that_caused_it(clock: Any) -> None:
    tracker, record = Tracker(MemoryStore(), GATED, clock=clock), []
    tracker.subscribe(lambda ch, d: tracker.advance(d.id), event="start")
    tracker.subscribe(heard(record))
    tracker.open("gated", "d")
    assert [(ch.to_stage, ch.version) for ch in record] == [("lead", 1), ("demo", 2)]
    assert record == list(tracker.store.history("d"))


def test_a_failing_nested_listener_is_recorded_and_the_outer_dispatch_goes_on(
    clock: Any,
) -> None:
    tracker, record = Tracker(MemoryStore(), GATED, clock=clock), []
    tracker.subscribe(lambda ch, d: tracker.advance(d.id), event="start")
    tracker.subscribe(lambda ch, d: 1 / 0, event="advance")
    tracker.subscribe(heard(record))
    tracker.open("gated", "d")
    assert [ch.to_stage for ch in record] == ["lead", "demo"]
    assert [f.event for f in tracker.listener_errors] == ["advance"]


def test_tracker_refuses_a_stage_none_of_its_pipelines_has(clock: Any) -> None:
    tracker = Tracker(MemoryStore(), GATED, clock=clock)
    with pytest.raises(UnknownStageError):
        tracker.subscribe(lambda ch, d: None, stage="propsal")
    tracker.subscribe(lambda ch, d: None, stage=["proposal", "won"])


def test_a_move_that_fails_on_conflicts_is_never_heard(clock: Any) -> None:
    store = AlwaysConflicting()
    tracker, record = Tracker(MemoryStore(), GATED, clock=clock), []
    tracker.open("gated", "d")
    store.add(tracker.get("d"))
    conflicted = Tracker(store, GATED, clock=clock, retries=2)
    conflicted.subscribe(heard(record))
    with pytest.raises(ConcurrencyError):
        conflicted.advance("d")
    assert record == []


def test_two_concurrent_advances_are_heard_once(clock: Any) -> None:
    store = Interfering()
    mine, theirs = Tracker(store, GATED, clock=clock), Tracker(store, GATED, clock=clock)
    my_record, their_record = [], []
    mine.subscribe(heard(my_record))
    theirs.subscribe(heard(their_record))
    theirs.open("gated", "d")
    store.before_save = lambda: theirs.advance("d")
    assert mine.advance("d").stage == "demo"
    assert my_record == []
    assert [ch.to_stage for ch in their_record] == ["lead", "demo"]


def test_a_retried_move_is_heard_once_with_the_version_it_committed(clock: Any) -> None:
    store = Interfering()
    mine, theirs = Tracker(store, GATED, clock=clock), Tracker(store, GATED, clock=clock)
    record: list[StageChange] = []
    mine.subscribe(heard(record))
    theirs.open("gated", "d")
    store.before_save = lambda: theirs.update("d", next_action="call")
    mine.advance("d")
    assert [(ch.to_stage, ch.version) for ch in record] == [("demo", 3)]


def test_a_listener_hears_the_changes_made_after_it_subscribed_in_a_block(clock: Any) -> None:
    store = MemoryStore()
    tracker, record = Tracker(store, GATED, clock=clock), []
    tracker.open("gated", "d")
    with store.transaction():
        tracker.advance("d")  # nobody listens yet: nothing waits for the commit
        tracker.subscribe(heard(record))
        tracker.move("d", "lead")
        assert record == []
    assert [(ch.from_stage, ch.to_stage) for ch in record] == [("demo", "lead")]


OPS = st.lists(
    st.tuples(
        st.sampled_from(["open", "advance", "move", "win", "lose", "reopen", "update"]),
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(["lead", "demo", "proposal", "won", "lost"]),
    ),
    max_size=30,
)


def stepping() -> Callable[[], datetime]:
    minutes = itertools.count()
    return lambda: T0 + timedelta(minutes=next(minutes))


def apply(tracker: Tracker, op: str, id: str, stage: str) -> None:
    """One random operation; refusals and conflicts are expected and ignored."""
    try:
        if op == "open":
            tracker.open("gated", id)
        elif op == "move":
            tracker.move(id, stage, reason="price" if stage == "lost" else None)
        elif op == "lose":
            tracker.lose(id, "no budget")
        elif op == "update":
            tracker.update(id, bant=Bant(budget=stage != "lead"))
        else:
            getattr(tracker, op)(id)
    except SalesPipelineError:
        pass


@given(OPS)
def test_listeners_hear_exactly_the_stored_history(ops: list[tuple[str, str, str]]) -> None:
    tracker, record = Tracker(MemoryStore(), GATED, clock=stepping()), []
    tracker.subscribe(heard(record))
    for op in ops:
        apply(tracker, *op)
    assert by_key(record) == all_history(tracker.store)


@settings(max_examples=10)
@given(st.lists(OPS, min_size=3, max_size=3))
def test_threads_with_their_own_trackers_hear_exactly_the_stored_history(
    tmp_path_factory: pytest.TempPathFactory, plans: list[list[tuple[str, str, str]]]
) -> None:
    """Each thread has its own store and Tracker on one SQLite file; with few or no
    retries some moves end in ConcurrencyError, and those must not be heard."""
    path = tmp_path_factory.mktemp("listeners") / "deals.db"
    record: list[StageChange] = []
    stores = [SQLiteStore(path) for _ in plans]
    trackers = [Tracker(s, GATED, retries=i % 2) for i, s in enumerate(stores)]
    for tracker in trackers:
        tracker.subscribe(heard(record))
    start = threading.Barrier(len(plans))

    def run(tracker: Tracker, plan: list[tuple[str, str, str]]) -> None:
        start.wait()
        for op in plan:
            apply(tracker, *op)

    threads = [
        threading.Thread(target=run, args=(t, p)) for t, p in zip(trackers, plans, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert by_key(record) == all_history(stores[0])
    finally:
        for store in stores:
            store.close()
