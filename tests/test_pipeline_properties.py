"""Properties of the foundation: random walks against an independent oracle of the moves.

The oracle below is written from the move rules in DESIGN.md, not from
``_engine.edges``; the engine test sends every (stage, destination) pair through
the compiled python-statemachine class and compares it with the hot-path lookup.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from salespipeline import (
    LOST,
    WON,
    Bant,
    Deal,
    Pipeline,
    SalesPipelineError,
    Stage,
    StageBlockedError,
    StageChange,
    TransitionNotAllowedError,
    Violation,
    _engine,
    presets,
)
from salespipeline.testing import strategies
from salespipeline.testing.strategies import _satisfying_changes

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
PRESETS = sorted(presets.PRESETS)

any_pipeline = st.one_of(
    st.sampled_from(PRESETS).map(lambda name: presets.PRESETS[name]()),
    strategies.pipelines(),
)


# -- the oracle -------------------------------------------------------------------


def documented_moves(pipeline: Pipeline, source: str) -> set[str]:
    """Where DESIGN.md says a deal in ``source`` may go (guards aside)."""
    open_stages = [stage.name for stage in pipeline.stages]
    if source == WON:
        return set()
    if source == LOST:
        return set(open_stages)
    here = open_stages.index(source)
    allowed = {LOST}
    for there, name in enumerate(open_stages):
        forward = there == here + 1 or (there > here + 1 and pipeline.allow_skip)
        back = there < here and pipeline.allow_back
        if forward or back:
            allowed.add(name)
    if here == len(open_stages) - 1 or pipeline.allow_skip:
        allowed.add(WON)
    return allowed


def guard_violations(pipeline: Pipeline, deal: Deal, to: str) -> tuple[Violation, ...]:
    """The destination's guards asked directly, not through the pipeline's code."""
    requires = {stage.name: stage.requires for stage in pipeline.stages}.get(to, ())
    return tuple(v for guard in requires for v in guard(deal))


def reason_for(pipeline: Pipeline) -> str:
    return (pipeline.lost_reasons or ("price",))[0]


def deal_in(pipeline: Pipeline, stage: str, **values: Any) -> Deal:
    """A deal sitting in ``stage`` since T0, built by hand."""
    closed = stage in (WON, LOST)
    return Deal(
        "d",
        pipeline.name,
        stage,
        created_at=T0,
        stage_entered_at=T0,
        closed_at=T0 if closed else None,
        lost_reason=reason_for(pipeline) if stage == LOST else None,
        history=(StageChange("d", None, stage, T0, 1),),
        **values,
    )


# -- one checked operation ----------------------------------------------------------


def attempt(pipeline: Pipeline, deal: Deal, to: str | None, call: Callable[[], Deal]) -> Deal:
    """Run ``call`` (an operation towards ``to``; None: it must be refused) and check it."""
    snapshot = copy.deepcopy(deal)
    exists = to is not None and to in documented_moves(pipeline, deal.stage)
    violations = guard_violations(pipeline, deal, to) if exists and to else ()
    checked = to is not None and pipeline.check(deal, to) == ()
    listed = to is not None and to in pipeline.moves(deal)
    assert checked == listed == (exists and not violations)
    after = outcome(call)
    event("moved" if isinstance(after, Deal) else f"refused: {getattr(after, '__name__', '?')}")
    if not isinstance(after, Deal):
        assert deal == snapshot
        assert not checked
        assert after is (StageBlockedError if exists else TransitionNotAllowedError)
        if exists:
            assert refusal_violations(call) == violations
        return deal
    assert deal == snapshot
    assert checked
    assert to is not None
    assert_moved(pipeline, deal, after, to)
    return after


def refusal_violations(call: Callable[[], Deal]) -> tuple[Violation, ...]:
    with pytest.raises(StageBlockedError) as refused:
        call()
    return refused.value.violations


def assert_moved(pipeline: Pipeline, before: Deal, after: Deal, to: str) -> None:
    assert after.stage == to
    assert after.version == before.version + 1
    assert after.history[:-1] == before.history
    last = after.history[-1]
    assert (last.from_stage, last.to_stage, last.version) == (before.stage, to, after.version)
    assert last.at >= before.history[-1].at
    assert_unbroken(after)
    if to == WON:
        assert pipeline.moves(after) == ()


def assert_unbroken(deal: Deal) -> None:
    history = deal.history
    assert history[0].from_stage is None
    for previous, change in itertools.pairwise(history):
        assert change.from_stage == previous.to_stage
        assert change.version > previous.version
        assert change.at >= previous.at
        assert previous.to_stage != WON
    assert history[-1].to_stage == deal.stage
    assert history[-1].version <= deal.version


# -- random walks ----------------------------------------------------------------------


def next_stage(pipeline: Pipeline, deal: Deal) -> str | None:
    names = [stage.name for stage in pipeline.stages]
    if deal.stage not in names or deal.stage == names[-1]:
        return None
    return names[names.index(deal.stage) + 1]


def step(pipeline: Pipeline, deal: Deal, data: st.DataObject) -> Deal:
    at = deal.updated_at
    kind = data.draw(st.sampled_from(["move", "advance", "win", "lose", "reopen", "qualify"]))
    to = data.draw(st.sampled_from(pipeline.stage_names))
    if kind == "qualify":
        changes = _satisfying_changes(pipeline.stage(to).requires, deal)
        return deal.evolve(**changes) if changes else deal
    if kind == "move":
        why = reason_for(pipeline) if to == LOST else None
        return attempt(pipeline, deal, to, lambda: pipeline.move(deal, to, at=at, reason=why))
    if kind == "advance":
        target = next_stage(pipeline, deal)
        return attempt(pipeline, deal, target, lambda: pipeline.advance(deal, at=at))
    if kind == "win":
        return attempt(pipeline, deal, WON, lambda: pipeline.win(deal, at=at))
    if kind == "lose":
        lose = pipeline.lose
        return attempt(pipeline, deal, LOST, lambda: lose(deal, reason_for(pipeline), at=at))
    chosen = data.draw(st.none() | st.just(to))
    target = (chosen or deal.history[-1].from_stage) if deal.stage == LOST else None
    return attempt(pipeline, deal, target, lambda: pipeline.reopen(deal, chosen, at=at))


@given(any_pipeline, st.data())
def test_random_walks_follow_the_documented_rules(pipeline: Pipeline, data: st.DataObject) -> None:
    deal = data.draw(strategies.deals(pipeline, max_steps=3))
    for _ in range(data.draw(st.integers(0, 20))):
        deal = step(pipeline, deal, data)
        assert_unbroken(deal)


@given(any_pipeline, st.data())
def test_check_refuses_exactly_the_undocumented_moves(
    pipeline: Pipeline, data: st.DataObject
) -> None:
    source = data.draw(st.sampled_from(pipeline.stage_names))
    deal = deal_in(pipeline, source)
    for to in pipeline.stage_names:
        refused_by_graph = any(v.rule == "transition" for v in pipeline.check(deal, to))
        assert refused_by_graph == (to not in documented_moves(pipeline, source))


@given(any_pipeline, st.data())
def test_moves_are_the_checked_destinations_in_stage_order(
    pipeline: Pipeline, data: st.DataObject
) -> None:
    deal = data.draw(strategies.deals(pipeline))
    expected = tuple(to for to in pipeline.stage_names if pipeline.check(deal, to) == ())
    assert pipeline.moves(deal) == expected


# -- the named operations are moves ----------------------------------------------------


def outcome(call: Callable[[], Deal]) -> object:
    try:
        return call()
    except SalesPipelineError as refused:
        return type(refused)


@given(any_pipeline, st.data())
def test_named_operations_equal_the_move_they_stand_for(
    pipeline: Pipeline, data: st.DataObject
) -> None:
    deal = data.draw(strategies.deals(pipeline))
    at = data.draw(st.sampled_from([deal.updated_at, datetime(2200, 1, 1, tzinfo=timezone.utc)]))
    reason = reason_for(pipeline)
    assert outcome(lambda: pipeline.win(deal, at=at)) == outcome(
        lambda: pipeline.move(deal, WON, at=at)
    )
    assert outcome(lambda: pipeline.lose(deal, reason, at=at)) == outcome(
        lambda: pipeline.move(deal, LOST, at=at, reason=reason)
    )
    target = next_stage(pipeline, deal)
    if target is not None:
        assert outcome(lambda: pipeline.advance(deal, at=at)) == outcome(
            lambda: pipeline.move(deal, target, at=at)
        )
    if deal.stage == LOST:
        to = data.draw(st.sampled_from([stage.name for stage in pipeline.stages]))
        assert outcome(lambda: pipeline.reopen(deal, to, at=at)) == outcome(
            lambda: pipeline.move(deal, to, at=at)
        )
        back = deal.history[-1].from_stage
        assert back is not None
        assert outcome(lambda: pipeline.reopen(deal, at=at)) == outcome(
            lambda: pipeline.move(deal, back, at=at)
        )


@given(any_pipeline, st.data())
def test_evolve_raises_the_version_by_one_and_keeps_the_history(
    pipeline: Pipeline, data: st.DataObject
) -> None:
    deal = data.draw(strategies.deals(pipeline))
    amount = data.draw(strategies.amounts())
    evolved = deal.evolve(amount=amount, bant=Bant(True, True, True, True))
    assert (evolved.version, evolved.history, evolved.stage) == (
        deal.version + 1,
        deal.history,
        deal.stage,
    )
    assert evolved.amount == amount


def test_won_is_final_for_every_preset_and_destination() -> None:
    for name in PRESETS:
        pipeline = presets.PRESETS[name]()
        won = deal_in(pipeline, WON)
        for to in pipeline.stage_names:
            with pytest.raises(TransitionNotAllowedError):
                pipeline.move(won, to, at=T0, reason=reason_for(pipeline))


# -- engine and hot-path lookup agree ----------------------------------------------------


def engine_outcome(pipeline: Pipeline, deal: Deal, source: int, target: int) -> str:
    """Send the move through a real python-statemachine instance, guards as a validator."""
    names = pipeline.stage_names

    def guard(index: int) -> None:
        violations = pipeline.check(deal, names[index])
        if violations:
            raise StageBlockedError(deal.id, names[index], violations)

    try:
        moved = _engine.run(pipeline._graph, source, target, guard)
    except StageBlockedError:
        return "blocked"
    return "moved" if moved else "no such move"


def pipeline_outcome(pipeline: Pipeline, deal: Deal, to: str) -> str:
    why = reason_for(pipeline) if to == LOST else None
    try:
        pipeline.move(deal, to, at=T0, reason=why)
    except TransitionNotAllowedError:
        return "no such move"
    except StageBlockedError:
        return "blocked"
    return "moved"


def assert_engine_agrees(pipeline: Pipeline, values: dict[str, Any]) -> None:
    graph = pipeline._graph
    names = pipeline.stage_names
    for source, stage in enumerate(names):
        deal = deal_in(pipeline, stage, **values)
        for target, to in enumerate(names):
            in_lookup = target in graph.targets[source]
            assert _engine.run(graph, source, target, lambda _: None) == in_lookup
            assert in_lookup == (to in documented_moves(pipeline, stage))
            assert engine_outcome(pipeline, deal, source, target) == pipeline_outcome(
                pipeline, deal, to
            )


deal_values = st.fixed_dictionaries(
    {"amount": strategies.amounts(max_value=200_000), "bant": strategies.bants()},
    optional={"fields": strategies.fields()},
)


@pytest.mark.parametrize("preset", PRESETS)
@settings(max_examples=10)
@given(values=deal_values)
def test_engine_and_lookup_agree_on_every_preset(preset: str, values: dict[str, Any]) -> None:
    assert_engine_agrees(presets.PRESETS[preset](), values)


@settings(max_examples=15)
@given(strategies.pipelines(max_stages=8), deal_values)
def test_engine_and_lookup_agree_on_generated_pipelines(
    pipeline: Pipeline, values: dict[str, Any]
) -> None:
    assert_engine_agrees(pipeline, values)


@pytest.mark.parametrize("allow_skip", [False, True])
@pytest.mark.parametrize("allow_back", [False, True])
def test_engine_lookup_and_oracle_agree_on_every_shape_up_to_twelve_stages(
    allow_skip: bool, allow_back: bool
) -> None:
    for n in range(1, 13):
        stages = [Stage(f"s{i}", probability=i / n) for i in range(n)]
        pipeline = Pipeline("shape", stages, allow_skip=allow_skip, allow_back=allow_back)
        for source, stage in enumerate(pipeline.stage_names):
            for target, to in enumerate(pipeline.stage_names):
                in_lookup = target in pipeline._graph.targets[source]
                assert in_lookup == (to in documented_moves(pipeline, stage))
                assert _engine.run(pipeline._graph, source, target, lambda _: None) == in_lookup


def test_engine_blocks_an_unqualified_deal_at_proposal() -> None:
    pipeline = presets.seven_stage()
    deal = deal_in(pipeline, "needs_assessment", amount=Decimal(10))
    source, target = pipeline.stage_names.index("needs_assessment"), 4
    assert engine_outcome(pipeline, deal, source, target) == "blocked"
    qualified = deal.evolve(bant=Bant(True, True, True, True))
    assert engine_outcome(pipeline, qualified, source, target) == "moved"
