"""The change log: one Change per version, and replay rebuilds every deal at any time."""

from __future__ import annotations

import copy
import functools
import itertools
import json
import pickle
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import find, given
from hypothesis import strategies as st

from salespipeline import (
    LOST,
    WON,
    Bant,
    Deal,
    Migration,
    Pipeline,
    ValidationError,
    log,
    presets,
)
from salespipeline._checks import thaw
from salespipeline.deal import BANT_CRITERIA, STATE
from salespipeline.stages import STAGE_CATEGORIES
from salespipeline.testing import strategies
from salespipeline.testing._stories import _ahead
from salespipeline.testing.strategies import _TEXT

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
FIVE = presets.five_stage()
RENAMED = Pipeline("five_stage_renamed", FIVE.stages)
PIPELINES = {FIVE.name: FIVE, RENAMED.name: RENAMED}
MIGRATIONS = {FIVE.name: Migration(FIVE, RENAMED), RENAMED.name: Migration(RENAMED, FIVE)}
IDS = ("acme", "globex", "initech")
STAGE_FACTS = frozenset({"stage", "stage_entered_at", "closed_at", "lost_reason"})


def later(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def exactly(deals: Mapping[str, Deal]) -> dict[str, str]:
    """Each deal as JSON text: stricter than ``==``, for which ``1 == True``."""
    return {id: json.dumps(deal.to_dict(), sort_keys=True) for id, deal in deals.items()}


# -- generated stories: operations on several deals, and the change each one logs -------

# Equal times are common on purpose: the last version at a time is the one replay gives.
PAUSES = st.sampled_from(
    [timedelta(0), timedelta(0), timedelta(microseconds=1), timedelta(hours=1), timedelta(days=3)]
)
ACTORS = st.none() | st.sampled_from(["ana", "박지성"])
FULL_BANT = Bant(budget=True, authority=True, need=True, timeline=True)
# Values that are == but encode differently (1, 1.0, True; "1.0" and "1.00"; 0.0 and -0.0)
# come up often, so a change between them must be logged too.
TRICKY = st.sampled_from([0, 1, True, False, 0.0, 1.0, -0.0, "1", None, [], {}])
UPDATES: dict[str, st.SearchStrategy[Any]] = {
    "amount": st.sampled_from([0, "0.00", 1, "1.0", "1.00", "2500.5"]) | strategies.amounts(),
    "owner": st.none()
    | st.sampled_from(["ana", "bo"])
    | st.text(_TEXT, min_size=1, max_size=8).filter(str.strip),
    "close_date": st.none() | st.dates(date(2025, 1, 1), date(2027, 12, 31)),
    "forecast_category": st.none() | st.sampled_from(STAGE_CATEGORIES),
    "fields": strategies.fields() | st.dictionaries(st.sampled_from(["seats", "tier"]), TRICKY),
    "next_action": st.none() | st.sampled_from(["call", "send the quote"]),
    "next_action_at": st.none() | st.sampled_from([T0, later(48)]),
    "bant": st.just(FULL_BANT) | strategies.bants(),
    "probability": st.none() | st.sampled_from([0, 0.0, -0.0, 1, 0.25]) | st.floats(0, 1),
}
# None keeps updated_at (evolve reads no clock); True dates the update at the story's now.
DATED = st.booleans()
# Strategies are built once, here: building them inside every draw costs most of a run.
SOME_UPDATES = st.fixed_dictionaries({}, optional=UPDATES)
BOOLEANS = st.booleans()
KEYS = st.none() | st.sampled_from(["k-1", "k-2"])
LOST_REASONS = st.sampled_from(["price", "timing"])
UPDATE_REASONS = st.none() | st.just("asked by the buyer")
DEAL_CHOICES = tuple(st.sampled_from(IDS[:n]) for n in range(1, len(IDS) + 1))
OPERATIONS = st.sampled_from(["update", "move", "move", "move", "walk", "walk", "migrate"])
AHEAD = st.sampled_from([True, True, True, False])
WALKS = st.sampled_from([2, 99])  # 99: all the way to WON
TICKS = st.sampled_from([timedelta(0), timedelta(minutes=1)])


@functools.cache
def one_of_these(options: tuple[str, ...]) -> st.SearchStrategy[str]:
    return st.sampled_from(options)


@attrs.frozen
class Step:
    """One operation of a story: the deal before (None: not yet), after, and its Change."""

    before: Deal | None
    after: Deal
    change: log.Change
    updates: frozenset[str] = frozenset()


def _started(draw: st.DrawFn, pipeline: Pipeline, deal_id: str, now: datetime) -> Deal:
    values = draw(SOME_UPDATES)
    values["bant"] = FULL_BANT  # qualified, as proposal asks (updates may unqualify it)
    return pipeline.start(deal_id, at=now, actor=draw(ACTORS), **values)


def _moved(draw: st.DrawFn, pipeline: Pipeline, deal: Deal, now: datetime) -> Deal | None:
    """``deal`` after a legal move of a drawn kind (advance, win, lose, reopen, move).

    Most moves go one stage ahead when they can, so stories reach WON too.
    """
    targets = pipeline.moves(deal)
    if not targets:
        return None
    position = pipeline.positions
    ahead = [t for t in targets if position[t] == position[deal.stage] + 1]
    to = ahead[0] if ahead and draw(AHEAD) else draw(one_of_these(targets))
    actor = draw(ACTORS)
    if deal.stage == LOST and draw(BOOLEANS):
        return pipeline.reopen(deal, to, at=now, actor=actor)
    if to == LOST:
        return pipeline.lose(deal, draw(LOST_REASONS), at=now, actor=actor)
    if to == WON:
        return pipeline.win(deal, at=now, actor=actor)
    if deal.is_open and position[to] == position[deal.stage] + 1 and draw(BOOLEANS):
        return pipeline.advance(deal, at=now, actor=actor)
    return pipeline.move(deal, to, at=now, actor=actor)


def _walked(draw: st.DrawFn, pipeline: Pipeline, deal: Deal, now: datetime) -> list[Deal]:
    """``deal`` moved a drawn number of stages ahead, a tick apart (WON after the last),
    while its guards let it."""
    walk, tick = [], draw(TICKS)
    for n in range(draw(WALKS)):
        if (to := _ahead(pipeline, deal)) is None:
            break
        at, actor = now + n * tick, draw(ACTORS)
        if to == WON:
            deal = pipeline.win(deal, at=at, actor=actor)
        else:
            deal = pipeline.advance(deal, at=at, actor=actor)
        walk.append(deal)
    return walk


def _steps(draw: st.DrawFn, before: Deal | None, deal_id: str, now: datetime) -> list[Step]:
    """The next step on the deal, or a walk of moves ahead (a step each)."""
    if before is None or not before.is_open or draw(OPERATIONS) != "walk":
        return [_step(draw, before, deal_id, now)]
    steps = []
    for after in _walked(draw, PIPELINES[before.pipeline], before, now):
        steps.append(Step(before, after, log.derive(before, after, key=draw(KEYS))))
        before = after
    return steps or [_step(draw, before, deal_id, now)]


def _step(draw: st.DrawFn, before: Deal | None, deal_id: str, now: datetime) -> Step:
    key = draw(KEYS)
    if before is None:
        after = _started(draw, FIVE, deal_id, now)
        return Step(before, after, log.derive(None, after, key=key))
    operation = draw(OPERATIONS)
    moved = None
    if operation == "migrate":
        moved = MIGRATIONS[before.pipeline].apply(before, at=now)
    elif operation in ("move", "walk"):
        moved = _moved(draw, PIPELINES[before.pipeline], before, now)
    if moved is not None:
        actor = moved.history[-1].actor if draw(BOOLEANS) else None  # may repeat the entry's
        return Step(before, moved, log.derive(before, moved, actor=actor, key=key))
    updates = draw(SOME_UPDATES)
    after = before.evolve(at=now if draw(DATED) else None, **updates)
    change = log.derive(before, after, key=key, actor=draw(ACTORS), reason=draw(UPDATE_REASONS))
    return Step(before, after, change, frozenset(updates))


STEP_COUNTS = st.integers(1, 16)


@st.composite
def stories(draw: st.DrawFn) -> list[Step]:
    """Operations on up to three deals, in time order (often several at one time).

    Deals start in FIVE, and a migration moves one to RENAMED (and back). A walk moves
    one deal several stages ahead (each move a step), so stories reach WON often.
    """
    now, deals, steps = T0, dict[str, Deal](), list[Step]()
    count = draw(STEP_COUNTS)
    while len(steps) < count:
        now += draw(PAUSES)
        if steps and draw(BOOLEANS):  # runs of steps on one deal take it far
            deal_id = steps[-1].after.id
        else:
            deal_id = draw(DEAL_CHOICES[min(len(deals), len(IDS) - 1)])
        for step in _steps(draw, deals.get(deal_id), deal_id, now)[: count - len(steps)]:
            deals[deal_id], now = step.after, max(now, step.after.updated_at)
            steps.append(step)
    return steps


def as_of(steps: Iterable[Step], until: datetime) -> dict[str, Deal]:
    """Each deal's last version at ``until`` (the model replay must agree with)."""
    deals: dict[str, Deal] = {}
    for step in steps:
        if step.after.updated_at <= until:
            deals[step.after.id] = step.after
    return dict(sorted(deals.items()))


def moments(changes: Iterable[log.Change]) -> list[datetime]:
    """Every change's time, just before it, between it and the next, and before them all."""
    times = sorted({change.at for change in changes})
    between = [a + (b - a) / 2 for a, b in itertools.pairwise(times)]
    just_before = [t - timedelta(microseconds=1) for t in times]
    return [T0 - timedelta(days=1), *times, *just_before, *between]


@given(stories())
def test_replay_gives_every_deal_as_it_stood_at_any_time(steps: list[Step]) -> None:
    changes = [step.change for step in steps]
    for until in moments(changes):
        replayed = log.replay(changes, until=until)
        expected = as_of(steps, until)
        assert replayed == expected, until
        assert exactly(replayed) == exactly(expected), until
    final = as_of(steps, datetime.max.replace(tzinfo=timezone.utc))
    assert exactly(log.replay(changes)) == exactly(final)


def test_replay_before_the_first_change_has_no_deal() -> None:
    opened = log.derive(None, FIVE.start("acme", at=T0))
    assert log.replay([opened], until=T0 - timedelta(microseconds=1)) == {}
    assert list(log.replay([opened], until=T0)) == ["acme"]


def test_replay_at_a_shared_time_gives_the_last_version_then() -> None:
    deal = FIVE.start("acme", at=T0)
    first = deal.evolve(amount=10, at=later(1))
    second = first.evolve(amount=20, at=later(1))
    changes = [log.derive(None, deal), log.derive(deal, first), log.derive(first, second)]
    assert log.replay(changes, until=later(1))["acme"] == second
    assert log.replay(changes, until=later(0.5))["acme"] == deal


@given(st.data())
def test_replay_does_not_depend_on_the_order_of_its_input(data: st.DataObject) -> None:
    changes = [step.change for step in data.draw(stories())]
    shuffled = data.draw(st.permutations(changes))
    until = data.draw(st.sampled_from(moments(changes)))
    assert exactly(log.replay(shuffled)) == exactly(log.replay(changes))
    assert log.replay(shuffled, until=until) == log.replay(changes, until=until)


@given(stories())
def test_each_change_describes_its_version(steps: list[Step]) -> None:
    for step in steps:
        change, before, after = step.change, step.before, step.after
        assert (change.deal_id, change.version, change.at) == (
            after.id,
            after.version,
            after.updated_at,
        )
        if before is None:
            assert change.kind == "open"
            assert set(change.changed) == set(STATE)
            assert all(old is None for old, _ in change.changed.values())
        elif before.pipeline != after.pipeline:
            assert change.kind == "migrate"
            assert change.changed["pipeline"] == (before.pipeline, after.pipeline)
            assert set(change.changed) <= STAGE_FACTS | {"pipeline"}
            assert change.entry == after.history[-1]
        elif len(after.history) > len(before.history):
            assert change.kind == "move"
            assert "stage" in change.changed
            assert set(change.changed) <= STAGE_FACTS
            assert change.entry == after.history[-1]
        else:
            assert change.kind == "update"
            assert change.entry is None
            altered = {n for n in step.updates if getattr(before, n) != getattr(after, n)}
            assert altered <= set(change.changed) <= step.updates
        pairs = [[thaw(old), thaw(new)] for old, new in change.changed.values()]
        assert json.loads(json.dumps(pairs, allow_nan=False)) == pairs  # JSON-compatible


@given(stories())
def test_recorded_changes_replay_to_the_deal(steps: list[Step]) -> None:
    for deal in {step.after.id: step.after for step in steps}.values():
        changes = log.recorded(deal)
        assert [c.version for c in changes] == list(range(1, deal.version + 1))
        assert changes[0].kind == "open"
        assert len([c for c in changes if c.kind == "move"]) == len(deal.history) - 1
        replayed = log.replay(changes)
        assert replayed == {deal.id: deal}
        assert exactly(replayed) == exactly({deal.id: deal})


@given(st.data())
def test_generated_deals_round_trip_through_dicts_and_json(data: st.DataObject) -> None:
    pipeline = data.draw(
        st.sampled_from([FIVE, presets.four_stage()]) | strategies.pipelines(2, 5)
    )
    deal = data.draw(strategies.deals(pipeline))
    assert Deal.from_dict(deal.to_dict()) == deal
    text = json.dumps(deal.to_dict(), allow_nan=False)
    assert Deal.from_dict(json.loads(text)) == deal
    assert json.dumps(Deal.from_dict(json.loads(text)).to_dict(), allow_nan=False) == text


@given(stories())
def test_story_deals_round_trip_through_json(steps: list[Step]) -> None:
    for deal in {step.after.id: step.after for step in steps}.values():
        text = json.dumps(deal.to_dict(), allow_nan=False, sort_keys=True)
        again = Deal.from_dict(json.loads(text))
        assert again == deal
        assert json.dumps(again.to_dict(), allow_nan=False, sort_keys=True) == text


def test_generated_deals_carry_the_part_2_attributes() -> None:
    deal_strategy = strategies.deals(FIVE, max_steps=6)
    assert find(deal_strategy, lambda d: d.owner is not None).owner
    assert find(deal_strategy, lambda d: d.close_date is not None).close_date
    assert find(deal_strategy, lambda d: d.forecast_category is not None).forecast_category
    late = find(deal_strategy, lambda d: d.updated_at > d.history[-1].at)
    assert late.version > late.history[-1].version
    plain = find(deal_strategy, lambda d: True)
    assert (plain.owner, plain.close_date, plain.forecast_category) == (None, None, None)


# -- hand-worked: what each kind of change lists ----------------------------------------


def iso(hours: float) -> str:
    return later(hours).isoformat()


def test_an_open_lists_every_attribute_with_old_none() -> None:
    deal = FIVE.start("acme", amount=1000, owner="ana", at=T0, actor="ana")
    change = log.derive(None, deal)
    assert (change.kind, change.version, change.from_stage, change.to_stage) == (
        "open",
        1,
        None,
        "prospecting",
    )
    assert change.actor == "ana"
    assert set(change.changed) == set(STATE)
    assert change.changed["amount"] == (None, "1000")
    assert change.changed["owner"] == (None, "ana")
    assert change.changed["stage"] == (None, "prospecting")
    assert change.changed["created_at"] == (None, iso(0))
    assert change.changed["bant"] == (None, dict.fromkeys(BANT_CRITERIA, False))
    assert change.changed["close_date"] == (None, None)


def test_an_update_lists_only_what_it_altered() -> None:
    deal = FIVE.start("acme", amount=1000, owner="ana", at=T0)
    updated = deal.evolve(amount=1500, owner="ana", close_date=date(2026, 3, 31), at=later(24))
    change = log.derive(deal, updated, reason="bigger team")
    assert (change.kind, change.at, change.reason) == ("update", later(24), "bigger team")
    assert change.changed == {"amount": ("1000", "1500"), "close_date": (None, "2026-03-31")}
    assert (change.from_stage, change.to_stage, change.entry) == (None, None, None)


def test_an_update_that_alters_nothing_is_still_a_version() -> None:
    deal = FIVE.start("acme", at=T0)
    change = log.derive(deal, deal.evolve(amount=0))
    assert (change.kind, change.version, dict(change.changed)) == ("update", 2, {})


def test_a_move_lists_the_stage_facts_it_altered() -> None:
    deal = FIVE.start("acme", at=T0)
    moved = FIVE.advance(deal, at=later(48), actor="bo")
    change = log.derive(deal, moved)
    assert (change.kind, change.from_stage, change.to_stage, change.actor) == (
        "move",
        "prospecting",
        "qualification",
        "bo",
    )
    assert change.changed == {
        "stage": ("prospecting", "qualification"),
        "stage_entered_at": (iso(0), iso(48)),
    }


def test_a_loss_lists_the_close_and_its_reason() -> None:
    deal = FIVE.advance(FIVE.start("acme", at=T0), at=later(1))
    lost = FIVE.lose(deal, "price", at=later(2))
    change = log.derive(deal, lost)
    assert (change.kind, change.to_stage, change.reason) == ("move", LOST, "price")
    assert change.changed == {
        "stage": ("qualification", LOST),
        "stage_entered_at": (iso(1), iso(2)),
        "closed_at": (None, iso(2)),
        "lost_reason": (None, "price"),
    }
    reopened = FIVE.reopen(lost, at=later(3))
    back = log.derive(lost, reopened)
    assert back.changed == {
        "stage": (LOST, "qualification"),
        "stage_entered_at": (iso(2), iso(3)),
        "closed_at": (iso(2), None),
        "lost_reason": ("price", None),
    }


def test_a_story_replays_step_by_step() -> None:
    opened = FIVE.start("acme", amount=1000, at=T0)
    updated = opened.evolve(amount=1200, at=later(1))
    moved = FIVE.advance(updated, at=later(2))
    lost = FIVE.lose(moved, "timing", at=later(3))
    versions = [opened, updated, moved, lost]
    changes = [log.derive(a, b) for a, b in zip([None, *versions[:-1]], versions, strict=True)]
    assert [c.kind for c in changes] == ["open", "update", "move", "move"]
    for hours, expected in [(0, opened), (1.5, updated), (2, moved), (99, lost)]:
        assert log.replay(changes, until=later(hours)) == {"acme": expected}


def test_equal_values_that_encode_differently_are_a_change() -> None:
    deal = FIVE.start("acme", amount="1.0", fields={"seats": 1}, probability=0.0, at=T0)
    after = deal.evolve(amount="1.00", fields={"seats": True}, probability=-0.0)
    change = log.derive(deal, after)
    assert change.changed == {
        "amount": ("1.0", "1.00"),
        "fields": ({"seats": 1}, {"seats": True}),
        "probability": (0.0, -0.0),
    }
    replayed = log.replay([log.derive(None, deal), change])
    assert exactly(replayed) == exactly({"acme": after})


def test_a_save_may_fill_in_the_actor_a_move_lacks_but_not_contradict_it() -> None:
    deal = FIVE.start("acme", at=T0)
    moved = FIVE.advance(deal, at=later(1))
    filled = log.derive(deal, moved, actor="carol")
    assert filled.actor == "carol"
    assert filled.entry == attrs.evolve(moved.history[-1], actor="carol")
    signed = FIVE.advance(deal, at=later(1), actor="ana")
    with pytest.raises(ValidationError, match="actor"):
        log.derive(deal, signed, actor="carol")
    with pytest.raises(ValidationError, match="reason"):
        log.derive(deal, moved, reason="not on the entry")


def test_recorded_marks_the_versions_it_cannot_describe() -> None:
    deal = FIVE.start("acme", at=T0)
    evolved = deal.evolve(amount=5, at=later(1))
    moved = FIVE.advance(evolved, at=later(2))
    changes = log.recorded(moved)
    assert [(c.kind, c.version, c.at) for c in changes] == [
        ("open", 1, T0),
        ("update", 2, T0),
        ("move", 3, later(2)),
    ]
    assert (changes[1].reason, dict(changes[1].changed)) == (log.PRE_LOG, {})
    assert changes[0].changed["amount"] == (None, "5")  # as known when the log was written
    assert log.replay(changes) == {"acme": moved}


def test_recorded_puts_actor_and_key_on_the_last_change() -> None:
    deal = FIVE.advance(FIVE.start("acme", at=T0), at=later(1), actor="ana")
    changes = log.recorded(deal, actor="ana", key="import-1")
    assert (changes[-1].actor, changes[-1].key) == ("ana", "import-1")
    assert [c.key for c in changes[:-1]] == [None]
    assert log.replay(changes) == {"acme": deal}
    with pytest.raises(ValidationError, match="actor"):
        log.recorded(deal, actor="bo")  # the move's entry says ana
    unsigned = FIVE.advance(FIVE.start("acme", at=T0), at=later(1))
    filled = log.replay(log.recorded(unsigned, actor="bo"))["acme"]
    assert filled.history[-1] == attrs.evolve(unsigned.history[-1], actor="bo")


def test_a_migration_is_logged_as_one() -> None:
    lost = FIVE.lose(FIVE.start("acme", at=T0), "price", at=later(1))
    migrated = MIGRATIONS[FIVE.name].apply(lost, at=later(2))
    change = log.derive(lost, migrated)
    assert (change.kind, change.from_stage, change.to_stage) == ("migrate", LOST, LOST)
    assert change.changed == {
        "pipeline": (FIVE.name, RENAMED.name),
        "stage_entered_at": (iso(1), iso(2)),
    }
    assert log.replay([*log.recorded(lost), change]) == {"acme": migrated}


def test_recorded_keeps_the_loss_of_a_migrated_deal() -> None:
    lost = FIVE.lose(FIVE.start("acme", at=T0), "price", at=later(1))
    migrated = MIGRATIONS[FIVE.name].apply(lost, at=later(2))
    replayed = log.replay(log.recorded(migrated))["acme"]
    assert (replayed.lost_reason, replayed.closed_at) == ("price", later(1))
    assert replayed == migrated


def test_recorded_of_a_new_deal_is_its_open() -> None:
    deal = FIVE.start("acme", at=T0, owner="ana")
    assert log.recorded(deal) == (log.derive(None, deal),)


def test_erased_deals_are_gone_from_then_on() -> None:
    deal = FIVE.start("acme", at=T0)
    changes = [log.derive(None, deal), log.Change("acme", 2, later(1), "erase")]
    assert log.replay(changes, until=later(0.5)) == {"acme": deal}
    assert log.replay(changes) == {}


def test_changes_pickle_and_copy_as_values() -> None:
    deal = FIVE.start("acme", fields={"seats": [1, 2]}, at=T0)
    change = log.derive(None, deal).with_position(7)
    assert pickle.loads(pickle.dumps(change)) == change
    assert copy.deepcopy(change) == change
    assert change.position == 7


def test_changed_is_read_only() -> None:
    change = log.derive(None, FIVE.start("acme", at=T0))
    with pytest.raises(TypeError):
        change.changed["amount"] = (None, "5")  # type: ignore[index]


# -- bad input is a ValidationError -----------------------------------------------------

GOOD: dict[str, Any] = {"deal_id": "acme", "version": 2, "at": T0, "kind": "update"}
NAIVE = datetime(2026, 1, 5, 9, 0)


def test_the_good_change_is_accepted() -> None:
    change = log.Change(**GOOD, actor="ana", reason="why", key="k" * 200)
    assert (change.version, change.kind, change.key) == (2, "update", "k" * 200)


@pytest.mark.parametrize(
    "bad",
    [
        {"changed": {"colour": (None, "red")}},
        {"changed": {"history": (None, [])}},
        {"changed": {1: (None, 2)}},
        {"changed": {"amount": "5"}},
        {"changed": {"amount": ("1", "2", "3")}},
        {"changed": {"amount": ("1",)}},
        {"changed": {"amount": (None, Decimal(5))}},
        {"changed": {"fields": (None, {"a": float("nan")})}},
        {"changed": [("amount", (None, "5"))]},
        {"kind": "delete"},
        {"kind": "UPDATE"},
        {"kind": None},
        {"kind": ["update"]},
        {"actor": ""},
        {"actor": "   "},
        {"actor": "a" * 201},
        {"actor": 7},
        {"key": "k" * 201},
        {"key": " "},
        {"reason": "r" * 201},
        {"deal_id": "ac\x00me"},
        {"actor": "an\x00a"},
        {"reason": "lone \ud800 surrogate"},
        {"key": "\udfff"},
        {"changed": {"owner": (None, "\ud800")}},
        {"at": NAIVE},
        {"at": "2026-01-05T09:00:00+00:00"},
        {"version": 0},
        {"version": -1},
        {"version": True},
        {"version": 2**31},
        {"version": 1.0},
        {"position": 0},
        {"kind": "move"},  # without to_stage
        {"kind": "open"},
        {"kind": "update", "to_stage": "qualification"},
        {"kind": "update", "from_stage": "prospecting"},
        {"kind": "open", "from_stage": "prospecting", "to_stage": "qualification"},
        {"kind": "move", "to_stage": "s" * 65},
    ],
    ids=repr,
)
def test_a_change_refuses_bad_input(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        log.Change(**{**GOOD, **bad})


JUNK = st.sampled_from(
    [None, "", " ", "x" * 201, "a\x00", "\ud800", 0, -1, True, 2**31, 1.5, [], {}, NAIVE, b"x"]
)
NAMES = st.sampled_from([None, "", "colour", "history", "id", "\ud800", 1, True, b"stage"])


@given(
    st.fixed_dictionaries(
        {
            "deal_id": st.just("acme") | JUNK,
            "version": st.integers(1, 3) | JUNK,
            "at": st.just(T0) | JUNK,
            "kind": st.sampled_from(log.KINDS) | JUNK,
            "actor": ACTORS | JUNK,
            "key": st.none() | JUNK,
            "from_stage": st.none() | st.just("prospecting") | JUNK,
            "to_stage": st.none() | st.just("qualification") | JUNK,
            "changed": st.dictionaries(st.sampled_from(STATE) | NAMES, st.tuples(JUNK, JUNK))
            | JUNK,
        }
    )
)
def test_a_change_is_made_or_refused_with_a_validation_error(values: dict[str, Any]) -> None:
    try:
        change = log.Change(**values)
    except ValidationError:
        return
    assert change.kind in log.KINDS
    assert set(change.changed) <= set(log.ATTRIBUTES)


def opened(deal_id: str = "acme", **values: Any) -> tuple[Deal, log.Change]:
    deal = FIVE.start(deal_id, at=T0, **values)
    return deal, log.derive(None, deal)


def test_replay_refuses_a_version_gap() -> None:
    deal, first = opened()
    third = log.derive(deal.evolve(), deal.evolve().evolve())
    with pytest.raises(ValidationError, match="version 3 where version 2") as error:
        log.replay([first, third])
    assert error.value.deal_id == "acme"


def test_replay_refuses_a_repeated_version() -> None:
    _, first = opened()
    with pytest.raises(ValidationError, match="version"):
        log.replay([first, first])


def test_replay_refuses_times_that_run_backwards() -> None:
    deal, first = opened()
    early = attrs.evolve(log.derive(deal, deal.evolve(amount=5)), at=T0 - timedelta(seconds=1))
    with pytest.raises(ValidationError, match="backwards"):
        log.replay([first, early])


def test_replay_refuses_an_old_value_that_contradicts_the_state_before() -> None:
    deal, first = opened(amount=10)
    update = log.derive(deal, deal.evolve(amount=20))
    wrong = attrs.evolve(update, changed={"amount": ("15", "20")})
    assert log.replay([first, update])["acme"].amount == 20
    with pytest.raises(ValidationError, match="amount"):
        log.replay([first, wrong])


def test_replay_refuses_a_first_change_with_an_old_value() -> None:
    _, first = opened()
    wrong = attrs.evolve(first, changed={**first.changed, "amount": ("5", "0")})
    with pytest.raises(ValidationError, match="amount"):
        log.replay([wrong])


def test_replay_refuses_a_log_that_does_not_open_the_deal() -> None:
    with pytest.raises(ValidationError, match="open"):
        log.replay([log.Change("acme", 1, T0, "update", changed={"amount": (None, "5")})])


@pytest.mark.parametrize("changes", [5, None, "acme", b"acme", {"acme": 1}, [1], [None]], ids=repr)
def test_replay_refuses_what_is_not_an_iterable_of_changes(changes: Any) -> None:
    with pytest.raises(ValidationError):
        log.replay(changes)


def test_replay_refuses_a_single_change_and_a_naive_until() -> None:
    _, first = opened()
    with pytest.raises(ValidationError):
        log.replay(first)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="until"):
        log.replay([first], until=NAIVE)


JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([10**400, -1, 2**63, 0.5, -0.0, 1e300])
    | st.text(_TEXT, max_size=8)
    | st.sampled_from(["2026-01-05", iso(0), "prospecting", "lost", "USD", "1.5", "budget"])
)
JSON_VALUES = (
    JSON_LEAVES
    | st.lists(JSON_LEAVES, max_size=3)
    | st.dictionaries(st.sampled_from(["budget", "need", "seats", ""]), JSON_LEAVES, max_size=3)
)


@given(st.dictionaries(st.sampled_from(STATE), JSON_VALUES), st.data())
def test_replay_of_any_well_formed_changes_gives_deals_or_a_validation_error(
    news: dict[str, Any], data: st.DataObject
) -> None:
    _, first = opened()
    state = {name: new for name, (_, new) in first.changed.items()}
    chosen = data.draw(st.sets(st.sampled_from(sorted(news)))) if news else set()
    mixed = {**state, **{name: news[name] for name in chosen}}
    open_ = attrs.evolve(first, changed={name: (None, value) for name, value in mixed.items()})
    update = log.Change(
        "acme", 2, later(1), "update", changed={n: (state[n], v) for n, v in news.items()}
    )
    for changes in ([open_], [first, update]):
        try:
            deals = log.replay(changes)
        except ValidationError:
            continue
        assert set(deals) == {"acme"}
        assert deals["acme"].version == len(changes)


def test_a_huge_integer_probability_is_a_validation_error() -> None:
    _, first = opened()
    huge = log.Change("acme", 2, later(1), "update", changed={"probability": (None, 10**400)})
    with pytest.raises(ValidationError, match="probability"):
        log.replay([first, huge])
    with pytest.raises(ValidationError, match="probability"):
        Deal.from_dict({**FIVE.start("acme", at=T0).to_dict(), "probability": 10**400})


def test_an_integer_probability_is_read_as_a_float() -> None:
    _, first = opened()
    one = log.Change("acme", 2, later(1), "update", changed={"probability": (None, 1)})
    probability = log.replay([first, one])["acme"].probability
    assert (probability, type(probability)) == (1.0, float)


def test_derive_refuses_a_version_jump() -> None:
    deal = FIVE.start("acme", at=T0)
    with pytest.raises(ValidationError, match="version 3") as error:
        log.derive(deal, deal.evolve().evolve())
    assert error.value.deal_id == "acme"


def test_derive_refuses_a_first_change_that_is_not_version_1() -> None:
    deal = FIVE.start("acme", at=T0)
    with pytest.raises(ValidationError, match="recorded"):
        log.derive(None, FIVE.advance(deal, at=later(1)))


def test_derive_refuses_another_deal() -> None:
    with pytest.raises(ValidationError):
        log.derive(FIVE.start("acme", at=T0), FIVE.start("globex", at=T0).evolve())


@pytest.mark.parametrize("moved", [False, True], ids=["update", "move"])
def test_derive_refuses_a_changed_created_at(moved: bool) -> None:
    before = FIVE.start("acme", at=T0)
    other = FIVE.start("acme", at=later(1))
    after = FIVE.advance(other, at=later(2)) if moved else other.evolve()
    with pytest.raises(ValidationError, match="created_at"):
        log.derive(before, after)


def test_derive_refuses_time_running_backwards() -> None:
    before = FIVE.start("acme", at=T0).evolve(at=later(2))
    after = attrs.evolve(before, version=3, updated_at=later(1))
    with pytest.raises(ValidationError, match="backwards"):
        log.derive(before, after)


def test_derive_and_recorded_refuse_a_move_timed_before_its_version() -> None:
    deal = FIVE.start("acme", at=T0)
    moved = FIVE.advance(deal, at=later(1))
    late = attrs.evolve(moved, updated_at=later(2))  # valid, but its move was at 1 h
    with pytest.raises(ValidationError, match="updated_at") as error:
        log.derive(deal, late)
    assert error.value.field == "updated_at"
    with pytest.raises(ValidationError, match="updated_at"):
        log.recorded(late)
    with pytest.raises(ValidationError, match="updated_at"):
        log.derive(None, attrs.evolve(deal, updated_at=later(2)))


def _lost() -> Deal:
    return FIVE.lose(FIVE.start("acme", at=T0), "price", at=later(1))


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("pipeline", lambda d: attrs.evolve(d, pipeline="other", version=d.version + 1)),
        ("lost_reason", lambda d: attrs.evolve(d, lost_reason="timing", version=d.version + 1)),
        ("closed_at", lambda d: attrs.evolve(d, closed_at=later(5), version=d.version + 1)),
    ],
)
def test_derive_refuses_a_lifecycle_attribute_changed_without_a_move(name: str, make: Any) -> None:
    before = _lost()
    after = make(before)
    with pytest.raises(ValidationError, match=name):
        log.derive(before, after)


def test_derive_refuses_two_moves_in_one_version() -> None:
    deal = FIVE.start("acme", at=T0)
    twice = FIVE.advance(FIVE.advance(deal, at=later(1)), at=later(2))  # entries v2, v3
    with pytest.raises(ValidationError, match="at most one history entry"):
        log.derive(deal.evolve().evolve(), attrs.evolve(twice, version=4))


def test_derive_refuses_a_move_entry_of_another_version() -> None:
    deal = FIVE.start("acme", at=T0)
    moved = FIVE.advance(deal, at=later(1))  # its entry is v2
    with pytest.raises(ValidationError, match="of the deal's version"):
        log.derive(deal.evolve(), attrs.evolve(moved, version=3))
