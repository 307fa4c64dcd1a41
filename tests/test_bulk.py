"""Bulk commands: ``Tracker.open_many`` and ``Tracker.import_deal`` (sync and async).

The stores' ``add_many`` is held to ``StoreContract``; these tests check the
commands: all or nothing, the log, listeners, idempotency and every refusal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import T0, SteppingClock
from salespipeline import Tracker, guards, limits, log, presets
from salespipeline.aio import AsyncSQLiteStore, AsyncTracker
from salespipeline.deal import Deal
from salespipeline.errors import (
    DuplicateDealError,
    StageBlockedError,
    UnknownPipelineError,
    UnknownStageError,
    ValidationError,
)
from salespipeline.pipeline import Pipeline
from salespipeline.stages import LOST, WON, Stage
from salespipeline.storage import DealStore, MemoryStore, SQLiteStore
from salespipeline.testing import strategies

PIPELINE = presets.five_stage()
NAME = PIPELINE.name


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> DealStore:
    if request.param == "memory":
        return MemoryStore()
    return SQLiteStore(tmp_path / "deals.sqlite")


@pytest.fixture
def tracker(store: DealStore, clock: SteppingClock) -> Tracker:
    return Tracker(store, PIPELINE, clock=clock)


def at(hours: int) -> datetime:
    return T0 + timedelta(hours=hours)


def past(*stages: str) -> list[tuple[str, datetime]]:
    return [(stage, at(n)) for n, stage in enumerate(stages)]


# -- open_many ---------------------------------------------------------------------------


def test_open_many_opens_every_deal_and_listeners_hear_each_after_the_commit(
    tracker: Tracker, store: DealStore
) -> None:
    heard: list[tuple[str, str]] = []
    tracker.subscribe(lambda change, deal: heard.append((change.kind, deal.id)))
    deals = tracker.open_many(
        NAME, [{"id": "a", "amount": 5, "owner": "kim"}, {"id": "b"}], actor="bot"
    )
    assert [(d.id, d.stage, d.version) for d in deals] == [
        ("a", "prospecting", 1),
        ("b", "prospecting", 1),
    ]
    assert store.get("a") == deals[0] and store.get("a").owner == "kim"
    assert heard == [("open", "a"), ("open", "b")]
    assert [(c.kind, c.actor) for c in store.log()] == [("open", "bot"), ("open", "bot")]
    assert store.verify() == ()


def test_open_many_inside_a_transaction_tells_listeners_only_when_it_commits(
    tracker: Tracker, store: DealStore
) -> None:
    heard: list[str] = []
    tracker.subscribe(lambda change, deal: heard.append(deal.id))
    with store.transaction():
        tracker.open_many(NAME, [{"id": "a"}, {"id": "b"}])
        assert heard == []
    assert heard == ["a", "b"]


@pytest.mark.parametrize(
    ("items", "error"),
    [
        ([{"id": "a"}, {"id": "taken"}, {"id": "c"}], DuplicateDealError),
        ([{"id": "a"}, {"id": "a"}], DuplicateDealError),
        ([{"id": "a"}, {"id": "b", "amount": -1}], ValidationError),
        ([{"id": "a"}, {"id": "b", "colour": "red"}], ValidationError),
        ([{"id": "a"}, {"amount": 1}], ValidationError),
        ([{"id": "a"}, "b"], ValidationError),
        ("ab", ValidationError),
    ],
)
def test_open_many_writes_nothing_when_one_item_is_refused(
    tracker: Tracker, store: DealStore, items: Any, error: type[Exception]
) -> None:
    tracker.open(NAME, "taken")
    before = store.log()
    heard: list[str] = []
    tracker.subscribe(lambda change, deal: heard.append(deal.id))
    with pytest.raises(error):
        tracker.open_many(NAME, items)
    assert store.log() == before and store.count() == 1 and heard == []


def test_open_many_refuses_an_unknown_pipeline_and_too_many_items(
    tracker: Tracker, store: DealStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(UnknownPipelineError):
        tracker.open_many("nope", [{"id": "a"}])
    monkeypatch.setattr(limits, "MAX_BULK", 2)
    with pytest.raises(ValidationError, match="at most 2"):
        tracker.open_many(NAME, ({"id": f"d{n}"} for n in range(3)))
    assert store.count() == 0


def test_open_many_applies_the_first_stage_s_guards(store: DealStore) -> None:
    strict = Pipeline(
        "strict",
        [
            Stage("lead", probability=0.1, requires=guards.requires_fields("source")),
            Stage("closing", probability=0.5),
        ],
    )
    tracker = Tracker(store, strict)
    with pytest.raises(StageBlockedError):
        tracker.open_many("strict", [{"id": "a", "fields": {"source": "web"}}, {"id": "b"}])
    assert store.count() == 0


def test_open_many_with_a_key_logs_it_on_every_open(tracker: Tracker, store: DealStore) -> None:
    tracker.open_many(NAME, [{"id": "a"}, {"id": "b"}], key="batch-1")
    assert [(c.deal_id, c.kind, c.key) for c in store.log()] == [
        ("a", "open", "batch-1"),
        ("b", "open", "batch-1"),
    ]


def test_a_retried_open_many_with_its_key_writes_nothing_and_returns_the_same_deals(
    tracker: Tracker, store: DealStore
) -> None:
    heard: list[str] = []
    tracker.subscribe(lambda change, deal: heard.append(deal.id))
    first = tracker.open_many(NAME, [{"id": "a", "amount": 5}, {"id": "b"}], key="batch-1")
    tracker.update("a", amount=7)
    before = store.log()
    again = tracker.open_many(NAME, [{"id": "a", "amount": 5}, {"id": "b"}], key="batch-1")
    assert again == first and again[0].amount == 5  # as the open left it, not as it is now
    assert store.log() == before and heard == ["a", "b"]


def test_open_many_with_a_new_key_still_refuses_a_taken_id(
    tracker: Tracker, store: DealStore
) -> None:
    tracker.open_many(NAME, [{"id": "a"}], key="batch-1")
    with pytest.raises(DuplicateDealError):
        tracker.open_many(NAME, [{"id": "a"}], key="batch-2")
    with pytest.raises(DuplicateDealError):
        tracker.open_many(NAME, [{"id": "a"}])
    assert store.count() == 1


def test_a_batch_key_given_to_another_batch_is_refused(tracker: Tracker, store: DealStore) -> None:
    tracker.open_many(NAME, [{"id": "a"}, {"id": "b"}], key="batch-1")
    before = store.log()
    with pytest.raises(ValidationError, match="give each batch its own key") as refused:
        tracker.open_many(NAME, [{"id": "a"}, {"id": "c"}], key="batch-1")
    assert refused.value.field == "key" and store.log() == before
    tracker.update("a", amount=3, key="u-1")
    with pytest.raises(ValidationError, match="not a open"):
        tracker.open_many(NAME, [{"id": "a"}], key="u-1")


def test_open_many_refuses_a_bad_key_before_any_write(tracker: Tracker, store: DealStore) -> None:
    with pytest.raises(ValidationError):
        tracker.open_many(NAME, [{"id": "a"}], key="")
    assert store.count() == 0


@given(ids=st.lists(st.sampled_from("abcdef"), min_size=1, max_size=4, unique=True))
def test_open_many_with_a_key_is_idempotent_for_any_batch(ids: list[str]) -> None:
    store = MemoryStore()
    tracker = Tracker(store, PIPELINE, clock=SteppingClock())
    first = tracker.open_many(NAME, [{"id": i} for i in ids], key="k")
    log_after_first = store.log()
    assert tracker.open_many(NAME, [{"id": i} for i in ids], key="k") == first
    assert store.log() == log_after_first and len(log_after_first) == len(ids)


# -- import_deal -------------------------------------------------------------------------


def test_import_deal_takes_the_past_as_fact_and_logs_one_import_per_entry(
    tracker: Tracker, store: DealStore
) -> None:
    history = past("proposal", "qualification", LOST, "closing", WON)  # no move graph
    deal = tracker.import_deal(
        NAME, "old-7", history=history, lost_reason="price", amount=900, owner="kim"
    )
    assert (deal.stage, deal.version, deal.amount, deal.owner) == (WON, 5, 900, "kim")
    assert [(e.to_stage, e.at) for e in deal.history] == history
    assert deal.history[2].reason == "price" and deal.lost_reason is None
    assert (deal.created_at, deal.closed_at, deal.updated_at) == (at(0), at(4), at(4))
    changes = store.changes("old-7")
    assert [c.kind for c in changes] == ["import"] * 5
    assert log.replay(changes) == {"old-7": store.get("old-7")} and store.get("old-7") == deal
    assert store.verify() == ()


def test_an_imported_deal_moves_on_like_any_other(tracker: Tracker) -> None:
    tracker.import_deal(NAME, "d", history=past("qualification"), bant=None)
    assert tracker.advance("d").stage == "initial_contact"


def test_import_deal_with_a_key_is_idempotent(tracker: Tracker, store: DealStore) -> None:
    first = tracker.import_deal(
        NAME, "d", history=past("qualification", LOST), lost_reason="x", key="row-1"
    )
    again = tracker.import_deal(NAME, "d", history=past("qualification"), key="row-1")
    assert again == first and len(store.changes("d")) == 2
    with pytest.raises(DuplicateDealError):
        tracker.import_deal(NAME, "d", history=past("qualification"))


def test_listeners_hear_an_import_after_it_is_committed(tracker: Tracker) -> None:
    heard: list[tuple[str, int]] = []
    tracker.subscribe(lambda change, deal: heard.append((change.kind, deal.version)))
    tracker.import_deal(NAME, "d", history=past("qualification", "proposal"))
    assert heard == [("import", 2)]


REFUSALS: dict[str, tuple[dict[str, Any], type[Exception]]] = {
    "time runs backwards": (
        {"history": [("qualification", at(2)), ("proposal", at(1))]},
        ValidationError,
    ),
    "unknown stage": ({"history": past("qualification", "haggling")}, UnknownStageError),
    "lost without a reason": ({"history": past("qualification", LOST)}, ValidationError),
    "blank lost reason": (
        {"history": past("qualification", LOST), "lost_reason": " "},
        ValidationError,
    ),
    "reason but never lost": (
        {"history": past("qualification"), "lost_reason": "price"},
        ValidationError,
    ),
    "stays in a stage": ({"history": past("proposal", "proposal")}, ValidationError),
    "empty history": ({"history": []}, ValidationError),
    "not pairs": ({"history": ["proposal"]}, ValidationError),
    "a string": ({"history": "proposal"}, ValidationError),
    "naive time": ({"history": [("proposal", datetime(2026, 1, 1))]}, ValidationError),
    "unknown attribute": ({"history": past("proposal"), "colour": "red"}, ValidationError),
    "bad amount": ({"history": past("proposal"), "amount": -5}, ValidationError),
    "version attribute": ({"history": past("proposal"), "version": 3}, ValidationError),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_refused_import_writes_nothing(tracker: Tracker, store: DealStore, case: str) -> None:
    arguments, error = REFUSALS[case]
    tracker.open(NAME, "other")
    before = store.log()
    with pytest.raises(error):
        tracker.import_deal(NAME, "d", **arguments)
    assert store.log() == before and store.count() == 1


def test_import_deal_refuses_too_long_a_past_and_an_unknown_pipeline(
    tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(UnknownPipelineError):
        tracker.import_deal("nope", "d", history=past("proposal"))
    monkeypatch.setattr(limits, "MAX_PAST_VERSIONS", 2)
    with pytest.raises(ValidationError, match="1 to 2 entries"):
        tracker.import_deal(NAME, "d", history=past("prospecting", "proposal", "closing"))


@st.composite
def histories(draw: st.DrawFn, pipeline: Pipeline) -> list[tuple[str, datetime]]:
    """Any walk over the pipeline's stages (no stay), at times that never run backwards."""
    stages = draw(st.lists(st.sampled_from(pipeline.stage_names), min_size=1, max_size=12))
    walk = [stage for n, stage in enumerate(stages) if n == 0 or stage != stages[n - 1]]
    gaps = draw(st.lists(st.integers(0, 10**6), min_size=len(walk), max_size=len(walk)))
    start = draw(strategies.timestamps())
    times = [start + timedelta(seconds=sum(gaps[: n + 1])) for n in range(len(walk))]
    return list(zip(walk, times, strict=True))


@given(
    pipeline=strategies.pipelines(),
    data=st.data(),
)
def test_importing_any_history_then_replaying_the_log_gives_the_imported_deal(
    pipeline: Pipeline, data: st.DataObject
) -> None:
    history = data.draw(histories(pipeline))
    reason = "moved on" if any(stage == LOST for stage, _ in history) else None
    if reason is not None and pipeline.lost_reasons is not None:
        reason = pipeline.lost_reasons[0]
    store = MemoryStore()
    tracker = Tracker(store, pipeline, record_definitions=False)
    deal = tracker.import_deal(pipeline.name, "d", history=history, lost_reason=reason)
    assert [(e.to_stage, e.at) for e in deal.history] == history
    assert log.replay(store.log()) == {"d": deal} == {"d": store.get("d")}
    assert store.verify() == ()


# -- async: the same commands through AsyncTracker ---------------------------------------


def _async(scenario: Callable[[AsyncTracker, AsyncSQLiteStore], Any], path: Path) -> Any:
    async def main() -> Any:
        async with AsyncSQLiteStore(path) as store:
            return await scenario(AsyncTracker(store, PIPELINE, clock=SteppingClock()), store)

    return asyncio.run(main())


def test_async_open_many_and_import_deal_are_the_sync_commands(tmp_path: Path) -> None:
    async def scenario(tracker: AsyncTracker, store: AsyncSQLiteStore) -> Sequence[Deal]:
        heard: list[str] = []
        tracker.subscribe(lambda change, deal: heard.append(change.kind))
        deals = await tracker.open_many(NAME, [{"id": "a"}, {"id": "b", "amount": 3}])
        imported = await tracker.import_deal(
            NAME, "c", history=past("proposal", LOST), lost_reason="price", key="k"
        )
        assert await tracker.import_deal(NAME, "c", history=past("proposal"), key="k") == imported
        keyed = await tracker.open_many(NAME, [{"id": "e"}, {"id": "f"}], key="batch")
        assert await tracker.open_many(NAME, [{"id": "e"}, {"id": "f"}], key="batch") == keyed
        with pytest.raises(DuplicateDealError):
            await tracker.open_many(NAME, [{"id": "d"}, {"id": "a"}])
        assert heard == ["open", "open", "import", "open", "open"]  # the retry told no one
        assert [c.kind for c in await store.changes("c")] == ["import", "import"]
        assert await store.verify() == ()
        return (*deals, imported)

    deals = _async(scenario, tmp_path / "deals.sqlite")
    assert [d.id for d in deals] == ["a", "b", "c"] and deals[2].lost_reason == "price"
    with SQLiteStore(tmp_path / "deals.sqlite") as store:
        assert store.count() == 5
