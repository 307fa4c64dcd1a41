"""The generated constructors and copiers make the same frozen values the classes do."""

from __future__ import annotations

from datetime import datetime, timezone

import attrs
import pytest

from salespipeline import Bant, presets
from salespipeline._unchecked import after_move, generate, replace, stage_change
from salespipeline.deal import Deal, StageChange

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
T1 = datetime(2026, 1, 2, tzinfo=timezone.utc)


@pytest.fixture
def deal() -> Deal:
    return presets.seven_stage().start("d-1", amount=5, bant=Bant(budget=True), at=T0)


def test_a_generated_change_is_a_frozen_stage_change_equal_to_a_checked_one() -> None:
    made = stage_change("d-1", "prospecting", "qualification", T1, 2, "why", "ana")
    checked = StageChange("d-1", "prospecting", "qualification", T1, 2, "why", "ana")
    assert type(made) is StageChange
    assert made == checked and hash(made) == hash(checked)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.reason = "other"  # type: ignore[misc]


def test_a_moved_copy_is_a_frozen_deal_with_the_moved_fields_and_the_rest_kept(
    deal: Deal,
) -> None:
    moved = after_move(
        deal,
        stage="qualification",
        stage_entered_at=T1,
        closed_at=None,
        lost_reason=None,
        updated_at=T1,
        version=2,
        history=deal.history,
    )
    assert type(moved) is Deal
    assert (moved.stage, moved.stage_entered_at, moved.version) == ("qualification", T1, 2)
    assert moved.bant is deal.bant and moved.amount is deal.amount
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        moved.stage = "proposal"  # type: ignore[misc]


def test_a_replaced_copy_equals_its_source_but_for_the_changes(deal: Deal) -> None:
    assert replace(deal) == deal
    assert replace(deal, owner="bo") == attrs.evolve(deal, owner="bo")


def test_only_a_slotted_class_gets_a_generated_constructor() -> None:
    @attrs.frozen(slots=False)
    class Loose:
        value: int

    with pytest.raises(TypeError, match="slotted"):
        generate(Loose, "loose", "A Loose.", given=("value",))
