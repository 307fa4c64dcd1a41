"""Pipeline: definition checks, operations and refusals, by example."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from salespipeline import (
    LOST,
    WON,
    Bant,
    Deal,
    DefinitionError,
    GuardError,
    Pipeline,
    Stage,
    StageBlockedError,
    TransitionNotAllowedError,
    UnknownStageError,
    ValidationError,
    Violation,
    guards,
)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
QUALIFIED = Bant(True, True, True, True)


@pytest.fixture
def pipeline() -> Pipeline:
    return Pipeline(
        "b2b",
        [
            Stage("lead", probability=0.1),
            Stage("qualified", probability=0.3, requires=guards.requires_fields("owner")),
            Stage("proposal", probability=0.6, requires=guards.bant()),
            Stage("closing", probability=0.9),
        ],
        lost_reasons=["price", "timing"],
    )


@pytest.fixture
def deal(pipeline: Pipeline) -> Deal:
    return pipeline.start("d1", amount="1000", fields={"owner": "ana"}, at=T0)


def walk_to(pipeline: Pipeline, deal: Deal, stage: str) -> Deal:
    deal = deal.evolve(bant=QUALIFIED)
    at = deal.stage_entered_at
    while deal.stage != stage:
        at += HOUR
        deal = pipeline.advance(deal, at=at)
    return deal


# -- definition -----------------------------------------------------------------


def test_definition_error_lists_every_problem() -> None:
    with pytest.raises(DefinitionError) as caught:
        Pipeline(
            "bad name!",
            [
                Stage("Lead", probability=0.1),
                Stage("won", probability=0.5),
                Stage("demo", probability=1.5),
                Stage("demo", probability=0.5),
            ],
            lost_reasons=[],
            version=0,
        )
    problems = caught.value.problems
    assert len(problems) == 7
    joined = "\n".join(problems)
    for needle in (
        "pipeline name",
        "'Lead'",
        "reserved",
        "not in [0, 1]",
        "used twice",
        "version",
        "lost_reasons",
    ):
        assert needle in joined


def test_definition_error_for_no_stages() -> None:
    with pytest.raises(DefinitionError, match="at least one open stage"):
        Pipeline("p", [])


def test_definition_error_for_non_stage_items() -> None:
    with pytest.raises(DefinitionError, match="not a Stage"):
        Pipeline("p", ["lead"])  # type: ignore[list-item]


def test_stage_names_that_shadow_statemachine_api_work() -> None:
    names = ["send", "model", "states", "name", "id"]
    pipeline = Pipeline("odd", [Stage(n, probability=0.2) for n in names])
    deal = pipeline.start("d", at=T0)
    for name in names[1:]:
        deal = pipeline.advance(deal, at=T0)
        assert deal.stage == name
    assert pipeline.win(deal, at=T0).stage == WON


def test_pipelines_with_same_definition_are_equal_and_hash_alike(pipeline: Pipeline) -> None:
    twin = Pipeline(pipeline.name, pipeline.stages, lost_reasons=pipeline.lost_reasons)
    assert twin == pipeline and hash(twin) == hash(pipeline)
    assert twin != Pipeline(pipeline.name, pipeline.stages, version=2)


def test_stage_lookup_and_names(pipeline: Pipeline) -> None:
    assert pipeline.stage("proposal").probability == 0.6
    assert pipeline.stage(WON).probability == 1.0
    assert pipeline.stage_names == ("lead", "qualified", "proposal", "closing", WON, LOST)
    with pytest.raises(UnknownStageError, match="'nope'"):
        pipeline.stage("nope")


# -- start ----------------------------------------------------------------------


def test_start_enters_first_stage_with_one_history_entry(pipeline: Pipeline) -> None:
    deal = pipeline.start("d1", amount=10, at=T0)
    assert deal.stage == "lead"
    assert deal.version == 1
    assert deal.created_at == deal.stage_entered_at == T0
    assert [(c.from_stage, c.to_stage, c.version) for c in deal.history] == [(None, "lead", 1)]


def test_start_applies_first_stage_guards() -> None:
    pipeline = Pipeline("p", [Stage("lead", probability=0.1, requires=guards.min_amount(100))])
    with pytest.raises(StageBlockedError) as caught:
        pipeline.start("d1", amount=5, at=T0)
    assert caught.value.stage == "lead"
    assert caught.value.from_stage is None


def test_start_uses_the_pipeline_clock() -> None:
    pipeline = Pipeline("p", [Stage("lead", probability=0.1)], clock=lambda: T0)
    assert pipeline.start("d1").created_at == T0


def test_start_rejects_naive_at(pipeline: Pipeline) -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        pipeline.start("d1", at=datetime(2026, 1, 1))


# -- moves ----------------------------------------------------------------------


def test_advance_moves_one_stage_and_records_history(pipeline: Pipeline, deal: Deal) -> None:
    moved = pipeline.advance(deal, at=T0 + HOUR)
    assert moved.stage == "qualified"
    assert moved.version == 2
    assert moved.stage_entered_at == T0 + HOUR
    assert moved.history[-1].from_stage == "lead"
    assert deal.stage == "lead" and deal.version == 1  # input untouched


def test_advance_from_last_open_stage_says_use_win(pipeline: Pipeline, deal: Deal) -> None:
    closing = walk_to(pipeline, deal, "closing")
    with pytest.raises(TransitionNotAllowedError, match="win"):
        pipeline.advance(closing)


def test_skip_is_refused_by_default(pipeline: Pipeline, deal: Deal) -> None:
    with pytest.raises(TransitionNotAllowedError) as caught:
        pipeline.move(deal, "proposal", at=T0)
    error = caught.value
    assert (error.deal_id, error.from_stage, error.to_stage) == ("d1", "lead", "proposal")
    assert "skipping" in str(error)


def test_skip_allowed_when_configured(pipeline: Pipeline, deal: Deal) -> None:
    skipping = Pipeline(pipeline.name, pipeline.stages, allow_skip=True)
    assert skipping.move(deal.evolve(bant=QUALIFIED), "proposal", at=T0).stage == "proposal"
    assert skipping.win(deal, at=T0).stage == WON


def test_back_allowed_by_default_and_refusable(pipeline: Pipeline, deal: Deal) -> None:
    ahead = walk_to(pipeline, deal, "proposal")
    assert pipeline.move(ahead, "lead").stage == "lead"
    forward_only = Pipeline(pipeline.name, pipeline.stages, allow_back=False)
    with pytest.raises(TransitionNotAllowedError, match="moving back"):
        forward_only.move(ahead, "lead")


def test_staying_is_not_a_move(pipeline: Pipeline, deal: Deal) -> None:
    with pytest.raises(TransitionNotAllowedError, match="already in 'lead'"):
        pipeline.move(deal, "lead")


def test_win_only_from_last_open_stage(pipeline: Pipeline, deal: Deal) -> None:
    with pytest.raises(TransitionNotAllowedError):
        pipeline.win(deal)
    won = pipeline.win(walk_to(pipeline, deal, "closing"), at=T0 + 10 * HOUR)
    assert won.stage == WON
    assert won.closed_at == T0 + 10 * HOUR
    assert not won.is_open


def test_won_is_final(pipeline: Pipeline, deal: Deal) -> None:
    won = pipeline.win(walk_to(pipeline, deal, "closing"))
    assert pipeline.moves(won) == ()
    for target in pipeline.stage_names:
        if target != WON:
            with pytest.raises(TransitionNotAllowedError):
                pipeline.move(won, target, reason="price")


def test_stage_blocked_reports_every_violation(pipeline: Pipeline, deal: Deal) -> None:
    qualified = pipeline.advance(deal, at=T0)
    with pytest.raises(StageBlockedError) as caught:
        pipeline.advance(qualified, at=T0)
    error = caught.value
    assert error.stage == "proposal" and error.from_stage == "qualified"
    assert [v.field for v in error.violations] == [
        "bant.budget",
        "bant.authority",
        "bant.need",
        "bant.timeline",
    ]
    assert "deal 'd1'" in str(error) and "'proposal'" in str(error)


def test_unknown_stage_is_typed_and_a_key_error(pipeline: Pipeline, deal: Deal) -> None:
    for call in (
        lambda: pipeline.move(deal, "nowhere"),
        lambda: pipeline.check(deal, "nowhere"),
    ):
        with pytest.raises(UnknownStageError) as caught:
            call()
        assert isinstance(caught.value, KeyError)
        assert caught.value.deal_id == "d1"


def test_deal_of_another_pipeline_is_refused(pipeline: Pipeline, deal: Deal) -> None:
    other = Pipeline("other", pipeline.stages)
    with pytest.raises(ValidationError, match="belongs to pipeline 'b2b'"):
        other.advance(deal)


def test_time_never_runs_backwards(pipeline: Pipeline, deal: Deal) -> None:
    with pytest.raises(ValidationError, match="backwards"):
        pipeline.advance(deal, at=T0 - timedelta(seconds=1))
    assert pipeline.advance(deal, at=T0).stage_entered_at == T0  # equal time allowed


# -- lose and reopen ------------------------------------------------------------


def test_lose_needs_a_listed_reason(pipeline: Pipeline, deal: Deal) -> None:
    for reason in (None, "  ", "weather"):
        with pytest.raises(ValidationError, match="reason"):
            pipeline.move(deal, LOST, reason=reason)
    lost = pipeline.lose(deal, "price", at=T0 + HOUR)
    assert (lost.stage, lost.lost_reason, lost.closed_at) == (LOST, "price", T0 + HOUR)
    assert lost.history[-1].reason == "price"
    assert pipeline.move(deal, LOST, reason="price", at=T0 + HOUR) == lost


def test_reopen_returns_to_the_stage_it_was_lost_from(pipeline: Pipeline, deal: Deal) -> None:
    lost = pipeline.lose(pipeline.advance(deal, at=T0), "timing", at=T0)
    reopened = pipeline.reopen(lost, at=T0 + HOUR)
    assert reopened.stage == "qualified"
    assert reopened.lost_reason is None and reopened.closed_at is None
    assert pipeline.move(lost, "qualified", at=T0 + HOUR) == reopened


def test_reopen_applies_destination_guards(pipeline: Pipeline, deal: Deal) -> None:
    lost = pipeline.lose(deal, "price", at=T0)
    with pytest.raises(StageBlockedError):
        pipeline.reopen(lost, "proposal")


def test_reopen_only_from_lost(pipeline: Pipeline, deal: Deal) -> None:
    with pytest.raises(TransitionNotAllowedError, match="only a lost deal"):
        pipeline.reopen(deal)


def test_lost_cannot_go_straight_to_won(pipeline: Pipeline, deal: Deal) -> None:
    lost = pipeline.lose(deal, "price", at=T0)
    with pytest.raises(TransitionNotAllowedError):
        pipeline.win(lost)


# -- queries --------------------------------------------------------------------


def test_check_returns_reasons_and_never_raises_for_missing_move(
    pipeline: Pipeline, deal: Deal
) -> None:
    assert pipeline.check(deal, "qualified") == ()
    (violation,) = pipeline.check(deal, "closing")
    assert violation.rule == "transition"
    no_owner = deal.evolve(fields={})
    assert pipeline.check(no_owner, "qualified") == (
        Violation("requires_fields", "field 'owner' is required", field="fields.owner"),
    )


def test_moves_lists_allowed_destinations_in_stage_order(pipeline: Pipeline, deal: Deal) -> None:
    assert pipeline.moves(deal) == ("qualified", LOST)
    assert pipeline.moves(deal.evolve(fields={})) == (LOST,)
    closing = walk_to(pipeline, deal, "closing")
    assert pipeline.moves(closing) == ("lead", "qualified", "proposal", WON, LOST)


def test_probability_override_and_terminal(pipeline: Pipeline, deal: Deal) -> None:
    assert pipeline.probability(deal) == 0.1
    assert pipeline.probability(deal.evolve(probability=0.25)) == 0.25
    assert pipeline.probability(pipeline.lose(deal, "price")) == 0.0
    assert pipeline.probability(pipeline.win(walk_to(pipeline, deal, "closing"))) == 1.0


# -- guards that misbehave ------------------------------------------------------


def test_raising_guard_refuses_with_guard_error_chaining_cause(deal: Deal) -> None:
    def broken(d: Deal) -> bool:
        raise ZeroDivisionError("oops")

    pipeline = Pipeline(
        "b2b",
        [
            Stage("lead", probability=0.1),
            Stage("qualified", probability=0.3, requires=guards.rule("broken", broken, "never")),
        ],
    )
    with pytest.raises(GuardError) as caught:
        pipeline.advance(deal)
    assert isinstance(caught.value.__cause__, ZeroDivisionError)
    assert caught.value.guard == "broken" and caught.value.stage == "qualified"


def test_guard_returning_wrong_type_is_guard_error(deal: Deal) -> None:
    class Sloppy:
        name = "sloppy"

        def __call__(self, d: Deal) -> bool:
            return True

    pipeline = Pipeline(
        "b2b",
        [Stage("lead", probability=0.1), Stage("qualified", probability=0.3, requires=Sloppy())],
    )
    with pytest.raises(GuardError, match="sloppy"):
        pipeline.advance(deal)


def test_amounts_stay_decimal_through_moves(pipeline: Pipeline, deal: Deal) -> None:
    assert pipeline.advance(deal, at=T0).amount == Decimal("1000")
