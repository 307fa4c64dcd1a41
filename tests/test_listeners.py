"""Listeners: order, filters, errors, unsubscribe; and, through a Tracker, only committed moves."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Any

import pytest

from salespipeline import (
    Deal,
    Pipeline,
    Stage,
    StageChange,
    UnknownStageError,
    ValidationError,
)
from salespipeline._listeners import EVENTS, Listeners, event_of

T0 = datetime(2026, 2, 2, 9, 0, tzinfo=timezone.utc)
PIPELINE = Pipeline(
    "p",
    [Stage(n, probability=p) for n, p in (("lead", 0.1), ("demo", 0.3), ("proposal", 0.6))],
    allow_skip=True,
)

Record = list[tuple[str, str | None, str, int]]


def recorder(record: Record, tag: str) -> Any:
    def listener(change: StageChange, deal: Deal) -> None:
        record.append((tag, change.from_stage, change.to_stage, deal.version))

    return listener


def walk(listeners: Listeners, *steps: str) -> Deal:
    """Start a deal and apply each step through ``listeners`` as a committed change."""
    deal = PIPELINE.start("d", at=T0)
    listeners.notify(None, deal, PIPELINE)
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
        listeners.notify(before, deal, PIPELINE)
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


def test_updates_are_heard_only_when_asked_for_with_the_last_stage_change() -> None:
    listeners, default, updates = Listeners(), [], []
    listeners.subscribe(recorder(default, "all"))
    listeners.subscribe(recorder(updates, "upd"), event="update")
    walk(listeners, "demo", "update")
    assert [r[2] for r in default] == ["lead", "demo"]
    assert updates == [("upd", "lead", "demo", 3)]  # the change that entered demo, deal v3


def test_several_new_history_entries_are_dispatched_in_order() -> None:
    listeners, record = Listeners(), []
    listeners.subscribe(recorder(record, "r"))
    start = PIPELINE.start("d", at=T0)
    later = PIPELINE.move(PIPELINE.advance(start, at=T0), "won", at=T0)
    listeners.notify(start, later, PIPELINE)
    assert record == [("r", "lead", "demo", 3), ("r", "demo", "won", 3)]


def test_no_newer_version_dispatches_nothing() -> None:
    listeners, record = Listeners(), []
    listeners.subscribe(recorder(record, "r"))
    deal = PIPELINE.start("d", at=T0)
    assert listeners.notify(deal, deal, PIPELINE) == ()
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
        (failure,) = listeners.notify(None, deal, PIPELINE)
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
        listeners.notify(before, deal, PIPELINE)
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
