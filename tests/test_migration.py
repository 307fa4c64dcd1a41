"""Migrations: seven stages to five, history kept, the move recorded, whole stores moved."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salespipeline import (
    LOST,
    WON,
    Bant,
    Deal,
    DefinitionError,
    Migration,
    Pipeline,
    Stage,
    TransitionNotAllowedError,
    UnknownStageError,
    ValidationError,
    presets,
)
from salespipeline.migration import migrate_store
from salespipeline.storage import DealStore, MemoryStore, SQLiteStore
from salespipeline.testing import strategies

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
LATER = T0 + timedelta(days=30)
SEVEN_TO_FIVE = {"needs_assessment": "initial_contact", "negotiation": "closing"}
REASON = "migrated from seven_stage v1 to five_stage v1"


@pytest.fixture
def seven() -> Pipeline:
    return presets.seven_stage()


@pytest.fixture
def five() -> Pipeline:
    return presets.five_stage()


@pytest.fixture
def migration(seven: Pipeline, five: Pipeline) -> Migration:
    return Migration(seven, five, SEVEN_TO_FIVE)


def _deal_in(pipeline: Pipeline, stage: str, deal_id: str = "d1") -> Deal:
    """A qualified deal walked from the first stage to ``stage`` (lost from the first)."""
    deal = pipeline.start(deal_id, amount=1000, bant=Bant(True, True, True, True), at=T0)
    if stage == LOST:
        return pipeline.lose(deal, "price", at=T0 + timedelta(days=1))
    for step, name in enumerate(pipeline.stage_names[1:-1], 1):
        if deal.stage == stage:
            break
        deal = pipeline.move(deal, name, at=T0 + timedelta(days=step))
    assert deal.stage == stage
    return deal


def test_a_deal_moves_to_its_mapped_stage_with_its_history_kept(
    seven: Pipeline, migration: Migration
) -> None:
    deal = _deal_in(seven, "needs_assessment")
    moved = migration.apply(deal, at=LATER)
    assert moved.pipeline == "five_stage"
    assert moved.stage == "initial_contact"
    assert moved.version == deal.version + 1
    assert moved.history[:-1] == deal.history
    last = moved.history[-1]
    assert (last.from_stage, last.to_stage, last.at, last.version) == (
        "needs_assessment",
        "initial_contact",
        LATER,
        deal.version + 1,
    )
    assert last.reason == REASON
    assert moved.stage_entered_at == LATER
    assert (moved.amount, moved.bant, moved.created_at) == (deal.amount, deal.bant, T0)


def test_apply_is_pure(seven: Pipeline, migration: Migration) -> None:
    deal = _deal_in(seven, "negotiation")
    before = (deal.pipeline, deal.stage, deal.version, deal.history)
    migration.apply(deal, at=LATER)
    assert (deal.pipeline, deal.stage, deal.version, deal.history) == before


def test_identical_names_map_to_themselves_and_the_move_is_still_recorded(
    seven: Pipeline, migration: Migration
) -> None:
    moved = migration.apply(_deal_in(seven, "proposal"), at=LATER)
    assert moved.stage == "proposal"
    assert (moved.history[-1].from_stage, moved.history[-1].to_stage) == ("proposal", "proposal")


@pytest.mark.parametrize("stage", [WON, LOST])
def test_closed_deals_stay_closed(seven: Pipeline, migration: Migration, stage: str) -> None:
    deal = _deal_in(seven, stage)
    moved = migration.apply(deal, at=LATER)
    assert moved.stage == stage
    assert moved.closed_at == deal.closed_at
    assert moved.lost_reason == deal.lost_reason


def test_a_migrated_lost_deal_reopens_to_a_named_stage(
    seven: Pipeline, five: Pipeline, migration: Migration
) -> None:
    moved = migration.apply(_deal_in(seven, LOST), at=LATER)
    reopened = five.reopen(moved, "qualification", at=LATER + timedelta(days=1))
    assert (reopened.stage, reopened.lost_reason, reopened.closed_at) == (
        "qualification",
        None,
        None,
    )


def test_a_migrated_lost_deal_reopens_by_default_to_the_stage_it_was_lost_from(
    seven: Pipeline, five: Pipeline, migration: Migration
) -> None:
    # Regression: the migration record (lost -> lost) used to be taken as "lost from".
    moved = migration.apply(_deal_in(seven, LOST), at=LATER)
    assert moved.history[-1].from_stage == LOST
    assert five.reopen(moved, at=LATER).stage == "prospecting"


def test_reopen_names_a_lost_from_stage_the_new_pipeline_lacks(
    seven: Pipeline, five: Pipeline, migration: Migration
) -> None:
    assessed = _deal_in(seven, "needs_assessment")
    lost = seven.lose(assessed, "price", at=LATER)
    moved = migration.apply(lost, at=LATER)
    with pytest.raises(TransitionNotAllowedError, match=r"'needs_assessment'.*name the stage"):
        five.reopen(moved, at=LATER)
    assert five.reopen(moved, "initial_contact", at=LATER).stage == "initial_contact"


def test_the_full_table_of_the_seven_to_five_migration(migration: Migration) -> None:
    assert dict(migration.stages) == {
        "prospecting": "prospecting",
        "qualification": "qualification",
        "initial_contact": "initial_contact",
        "needs_assessment": "initial_contact",
        "proposal": "proposal",
        "negotiation": "closing",
        "closing": "closing",
        WON: WON,
        LOST: LOST,
    }


def test_a_migrated_deal_moves_on_in_the_target_pipeline(
    seven: Pipeline, five: Pipeline, migration: Migration
) -> None:
    moved = migration.apply(_deal_in(seven, "needs_assessment"), at=LATER)
    on = five.advance(moved, at=LATER + timedelta(days=1))
    assert on.stage == "proposal"
    assert five.win(five.advance(on, at=LATER + timedelta(days=2))).stage == WON


def test_every_mapping_problem_is_listed_at_once(seven: Pipeline, five: Pipeline) -> None:
    with pytest.raises(DefinitionError) as raised:
        Migration(seven, five, {"negotiation": "haggling", "pricing": "closing", WON: LOST})
    problems = raised.value.problems
    assert problems == (
        "mapping names stage 'pricing', which seven_stage does not have",
        "mapping sends 'negotiation' to 'haggling', which is not an open stage of five_stage",
        "won always maps to won, not 'lost'",
        "stage 'needs_assessment' is not mapped and five_stage has no stage of that name",
    )


def test_an_open_stage_cannot_be_mapped_to_won(seven: Pipeline, five: Pipeline) -> None:
    with pytest.raises(DefinitionError, match="not an open stage of five_stage"):
        Migration(seven, five, {**SEVEN_TO_FIVE, "closing": WON})


def test_source_and_target_must_differ(seven: Pipeline) -> None:
    with pytest.raises(DefinitionError, match="give the target a new name or version"):
        Migration(seven, presets.seven_stage(labels="ko"), {})


def test_source_and_target_must_be_pipelines(seven: Pipeline) -> None:
    with pytest.raises(DefinitionError, match="target must be a Pipeline"):
        Migration(seven, "five_stage", {})  # type: ignore[arg-type]


def test_a_deal_of_another_pipeline_is_refused(five: Pipeline, migration: Migration) -> None:
    with pytest.raises(ValidationError, match="belongs to pipeline 'five_stage'") as raised:
        migration.apply(five.start("x", at=T0), at=LATER)
    assert raised.value.deal_id == "x"


def test_time_never_runs_backwards(seven: Pipeline, migration: Migration) -> None:
    deal = _deal_in(seven, "proposal")
    with pytest.raises(ValidationError, match="time runs backwards"):
        migration.apply(deal, at=T0)


def test_at_defaults_to_the_target_clock(seven: Pipeline) -> None:
    migration = Migration(seven, presets.five_stage(clock=lambda: LATER), SEVEN_TO_FIVE)
    assert migration.apply(_deal_in(seven, "proposal")).history[-1].at == LATER


def test_a_stage_the_source_does_not_have_is_unknown(migration: Migration) -> None:
    other = Pipeline("seven_stage", [Stage("elsewhere", probability=0.1)])
    with pytest.raises(UnknownStageError):
        migration.apply(other.start("x", at=T0), at=LATER)


def test_a_new_version_of_the_same_pipeline(seven: Pipeline) -> None:
    v2 = Pipeline("seven_stage", presets.five_stage().stages, version=2)
    migration = Migration(seven, v2, SEVEN_TO_FIVE)
    moved = migration.apply(_deal_in(seven, "negotiation"), at=LATER)
    assert (moved.pipeline, moved.stage) == ("seven_stage", "closing")
    assert moved.history[-1].reason == "migrated from seven_stage v1 to seven_stage v2"
    assert migration.apply(moved, at=LATER) is moved


@given(st.data())
def test_migration_keeps_every_deal_valid(data: st.DataObject) -> None:
    seven, five = presets.seven_stage(), presets.five_stage()
    deal = data.draw(strategies.deals(seven))
    at = deal.updated_at + timedelta(seconds=data.draw(st.integers(0, 10**6)))
    moved = Migration(seven, five, SEVEN_TO_FIVE).apply(deal, at=at)
    assert moved.history[:-1] == deal.history
    assert moved.history[-1].from_stage == deal.stage
    assert moved.stage in five.stage_names
    assert moved.is_open == deal.is_open
    assert (moved.probability, moved.amount, moved.fields) == (
        deal.probability,
        deal.amount,
        deal.fields,
    )


# -- whole stores ------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DealStore]:
    made: DealStore = (
        MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "s.db")
    )
    with made:
        yield made


def _fill(store: DealStore, seven: Pipeline) -> list[Deal]:
    store.save_pipeline(seven)
    names = seven.stage_names
    deals = [_deal_in(seven, names[i % len(names)], f"deal-{i:02d}") for i in range(11)]
    for deal in deals:
        store.add(deal)
    return deals


def test_migrate_store_moves_every_deal_in_batches(
    store: DealStore, seven: Pipeline, migration: Migration
) -> None:
    deals = _fill(store, seven)
    other = presets.four_stage().start("other", at=T0)
    store.add(other)
    seen: list[int] = []
    moved = migrate_store(store, migration, at=LATER, batch_size=4, progress=seen.append)
    assert moved == 11
    assert seen == [4, 8, 11]
    assert list(store.find(pipeline="seven_stage")) == []
    for deal in deals:
        stored = store.get(deal.id)
        assert stored == migration.apply(deal, at=LATER)
        assert stored.history[:-1] == deal.history
    assert store.get("other") == other
    assert "five_stage" in [p.name for p in store.pipelines()]


def test_migrate_store_can_run_again(
    store: DealStore, seven: Pipeline, migration: Migration
) -> None:
    _fill(store, seven)
    assert migrate_store(store, migration, at=LATER) == 11
    assert migrate_store(store, migration, at=LATER) == 0


def test_migrate_store_reloads_a_deal_changed_meanwhile(
    seven: Pipeline, migration: Migration
) -> None:
    class Busy(MemoryStore):
        """Moves deal-01 on, as another user would, just before its migration is saved."""

        interfered = False

        def save(self, deal: Deal) -> None:
            if deal.id == "deal-01" and not self.interfered:
                self.interfered = True
                current = self.get("deal-01")
                super().save(seven.advance(current, at=current.updated_at))
            super().save(deal)

    with Busy() as store:
        _fill(store, seven)
        assert migrate_store(store, migration, at=LATER) == 11
        stored = store.get("deal-01")
    assert stored.history[-2].to_stage == "initial_contact"
    assert stored.stage == "initial_contact"
    assert stored.history[-1].reason == REASON


def test_migrate_store_refuses_a_bad_batch_size(migration: Migration) -> None:
    with MemoryStore() as store, pytest.raises(ValidationError, match="batch_size"):
        migrate_store(store, migration, batch_size=0)
