"""The shipped testing toolkit: strategies make valid values, the machine catches bugs."""

from __future__ import annotations

import itertools
import subprocess
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.stateful import run_state_machine_as_test

from salespipeline import LOST, WON, Deal, Pipeline, Stage, StageBlockedError, guards, presets
from salespipeline._unchecked import replace as _replace
from salespipeline.storage import MemoryStore, SQLiteStore
from salespipeline.testing import FakeClock, PipelineStateMachine, strategies
from salespipeline.testing.stateful import _policy_allows
from salespipeline.testing.strategies import _satisfying_changes

# -- strategies -----------------------------------------------------------------


@given(strategies.pipelines())
def test_generated_pipelines_are_valid_and_within_bounds(pipeline: Pipeline) -> None:
    assert 2 <= len(pipeline.stages) <= 12
    names = [s.name for s in pipeline.stages]
    assert len(set(names)) == len(names)
    assert Pipeline.from_dict(pipeline.to_dict()) == pipeline  # built-in guards only


@given(strategies.pipelines(3, 4, allow_skip=True, allow_back=False, guards=False))
def test_pipeline_options_are_respected(pipeline: Pipeline) -> None:
    assert 3 <= len(pipeline.stages) <= 4
    assert pipeline.allow_skip and not pipeline.allow_back
    assert all(stage.requires == () for stage in pipeline.stages)


def test_pipelines_refuses_impossible_bounds() -> None:
    with pytest.raises(InvalidArgument):
        find(strategies.pipelines(5, 2), lambda p: True)


def test_pipelines_shrink_to_two_bare_stages() -> None:
    smallest = find(strategies.pipelines(), lambda p: True)
    assert len(smallest.stages) == 2
    assert all(stage.requires == () for stage in smallest.stages)


@given(st.data())
def test_deals_pass_validation_and_have_real_histories(data: st.DataObject) -> None:
    pipeline = data.draw(strategies.pipelines(max_stages=6))
    deal = data.draw(strategies.deals(pipeline))
    assert Deal(**attrs.asdict(deal, recurse=False)) == deal
    assert deal.pipeline == pipeline.name
    assert deal.history[0].to_stage == pipeline.stages[0].name
    for change in deal.history[1:]:
        assert change.from_stage is not None
        assert _policy_allows(pipeline, change.from_stage, change.to_stage)
    times = [change.at for change in deal.history]
    assert times == sorted(times)


def test_deals_are_qualified_on_the_way_into_a_guarded_stage() -> None:
    pipeline = presets.four_stage()
    deal = find(strategies.deals(pipeline, max_steps=12), lambda d: d.stage == "proposal")
    stages = [c.to_stage for c in deal.history]
    assert stages in (
        ["lead_generation", "qualification", "proposal"],
        ["lead_generation", LOST, "proposal"],
    )
    assert deal.bant.qualified
    assert deal.version == 4  # start, a move, evolve(bant=...), the move into proposal


def test_deals_can_be_won_and_shrink_to_a_short_story() -> None:
    pipeline = presets.four_stage()
    won = find(strategies.deals(pipeline, max_steps=12), lambda d: d.stage == WON)
    stages = [c.to_stage for c in won.history]
    # Advancing all the way takes five entries; losing and reopening at closing, four.
    assert stages in (
        ["lead_generation", "qualification", "proposal", "closing", WON],
        ["lead_generation", LOST, "closing", WON],
    )


def test_fresh_deal_is_the_minimal_deal() -> None:
    deal = find(strategies.deals(presets.seven_stage()), lambda d: True)
    assert deal.version == 1
    assert deal.stage == "prospecting"
    assert deal.amount == Decimal(0)


@given(strategies.deals(presets.funnel(), ids=st.just("acme-1")))
def test_deals_take_the_ids_they_are_given(deal: Deal) -> None:
    assert deal.id == "acme-1"


def test_bants_reach_every_score() -> None:
    for score in range(5):
        assert find(strategies.bants(), lambda b, s=score: b.score == s).score == score


@given(st.data())
def test_moves_draws_any_stage_name_by_default(data: st.DataObject) -> None:
    pipeline = presets.five_stage()
    deal = data.draw(strategies.deals(pipeline))
    to = data.draw(strategies.moves(pipeline, deal))
    assert to in pipeline.stage_names


@given(st.data())
def test_legal_moves_are_allowed_moves(data: st.DataObject) -> None:
    pipeline = data.draw(strategies.pipelines(max_stages=5))
    deal = data.draw(strategies.deals(pipeline))
    if deal.stage != WON:
        to = data.draw(strategies.moves(pipeline, deal, legal=True))
        assert pipeline.check(deal, to) == ()


def test_legal_moves_of_a_won_deal_are_empty() -> None:
    pipeline = presets.four_stage()
    won = find(strategies.deals(pipeline, max_steps=12), lambda d: d.stage == WON)
    assert strategies.moves(pipeline, won, legal=True).is_empty
    assert not strategies.moves(pipeline, won).is_empty


@given(strategies.guards(), st.data())
def test_generated_guards_can_be_satisfied_by_evolve(guard: Any, data: st.DataObject) -> None:
    deal = data.draw(strategies.deals(presets.funnel(), max_steps=2))
    changes = _satisfying_changes((guard,), deal)
    assert changes is not None
    assert guard(deal.evolve(**changes) if changes else deal) == ()


def test_satisfying_changes_gives_up_on_a_custom_guard_that_refuses(t0: datetime) -> None:
    never = guards.rule("never", lambda deal: False, "never allowed")
    deal = presets.funnel().start("d", at=t0)
    assert _satisfying_changes((never,), deal) is None


def test_satisfying_changes_takes_the_built_in_option_of_any_of(t0: datetime) -> None:
    never = guards.rule("never", lambda deal: False, "never allowed")
    either = guards.any_of(never, guards.bant("budget"))
    deal = presets.funnel().start("d", at=t0)
    changes = _satisfying_changes((either,), deal)
    assert changes is not None
    assert changes["bant"].budget
    assert either(deal.evolve(**changes)) == ()


# -- the state machine on real pipelines -----------------------------------------


class SevenStageMachine(PipelineStateMachine):
    pipeline = presets.seven_stage()


TestSevenStage = SevenStageMachine.TestCase
TestSevenStage.settings = settings(TestSevenStage.settings, stateful_step_count=30)


def _machine(pipeline: Pipeline | st.SearchStrategy[Pipeline], **extra: Any) -> type[Any]:
    return type("Machine", (PipelineStateMachine,), {"pipeline": pipeline, **extra})


@pytest.mark.parametrize("preset", sorted(presets.PRESETS))
def test_every_preset_keeps_its_promises(preset: str) -> None:
    machine = _machine(presets.PRESETS[preset]())
    run_state_machine_as_test(machine, settings=settings(max_examples=40, stateful_step_count=30))


def test_generated_pipelines_keep_their_promises() -> None:
    machine = _machine(strategies.pipelines(max_stages=8))
    run_state_machine_as_test(machine, settings=settings(max_examples=60, stateful_step_count=30))


def test_korean_labels_and_lost_reasons_keep_their_promises() -> None:
    pipeline = Pipeline(
        "ko",
        [
            Stage("send", label="발굴", probability=0.1),
            Stage("model", label="제안", probability=0.5, requires=guards.bant("budget")),
            Stage("states", label="마감", probability=0.9, requires=guards.min_amount(100)),
        ],
        allow_skip=True,
        lost_reasons=["price", "timing"],
    )
    run_state_machine_as_test(_machine(pipeline), settings=settings(max_examples=40))


def test_machine_needs_a_pipeline() -> None:
    class NoPipeline(PipelineStateMachine):
        pass

    with pytest.raises(TypeError, match="set `pipeline = "):
        NoPipeline()


def test_fake_clock_moves_only_forward(t0: datetime) -> None:
    clock = FakeClock(t0)
    clock.advance(t0 - t0)
    assert clock() == t0
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(t0 - t0.replace(year=2027))


# -- the machine catches bugs -----------------------------------------------------


def _guarded(cls: type[Pipeline]) -> Pipeline:
    return cls(
        "guarded",
        [
            Stage("lead", probability=0.1),
            Stage("proposal", probability=0.5, requires=guards.bant()),
            Stage("closing", probability=0.9, requires=guards.min_amount(1000)),
        ],
    )


class IgnoresGuards(Pipeline):
    """Broken: asks no guard at all (check, moves and move agree, all wrong)."""

    def _violations(self, deal: Deal, target: int) -> tuple[Any, ...]:
        return ()


class MoveSkipsGuards(Pipeline):
    """Broken: ``move`` lets a blocked deal through; ``check`` and ``moves`` still refuse."""

    def move(
        self, deal: Deal, to: str, *, at: datetime | None = None, reason: str | None = None
    ) -> Deal:
        try:
            return super().move(deal, to, at=at, reason=reason)
        except StageBlockedError:
            return self._moved(deal, self.stage_names.index(to), at or self.clock(), reason)


class LeavesWon(Pipeline):
    """Broken: a won deal can be moved back to an open stage."""

    def _graph_refusal(self, source: int, target: int) -> str | None:
        if source == len(self.stages) and target < len(self.stages):
            return None
        return super()._graph_refusal(source, target)

    def moves(self, deal: Deal) -> tuple[str, ...]:
        return tuple(n for n in self.stage_names if not self.check(deal, n))


class KeepsVersion(Pipeline):
    """Broken: a move does not bump the deal's version."""

    def _moved(self, deal: Deal, target: int, when: datetime, reason: str | None) -> Deal:
        moved = super()._moved(deal, target, when, reason)
        return _replace(moved, version=deal.version)


class ForgetsLostReason(Pipeline):
    """Broken: ``lose`` drops the reason it was given."""

    def _moved(self, deal: Deal, target: int, when: datetime, reason: str | None) -> Deal:
        moved = super()._moved(deal, target, when, reason)
        return _replace(moved, lost_reason=None) if moved.stage == LOST else moved


CATCHING = settings(
    max_examples=400,
    stateful_step_count=25,
    derandomize=True,
    database=None,
    phases=[Phase.generate],
)


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (IgnoresGuards, "although its guards refused"),
        (MoveSkipsGuards, "although check\\(\\) refused it"),
        (LeavesWon, "WON deal has moves|no such move exists"),
        (KeepsVersion, "version"),
        (ForgetsLostReason, "lost_reason"),
    ],
)
def test_machine_catches_a_broken_pipeline(broken: type[Pipeline], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        run_state_machine_as_test(_machine(_guarded(broken)), settings=CATCHING)


def test_machine_passes_the_same_pipeline_unbroken() -> None:
    run_state_machine_as_test(_machine(_guarded(Pipeline)), settings=settings(max_examples=60))


# -- the store hook -------------------------------------------------------------------


STORED = settings(max_examples=30, stateful_step_count=30)


def test_store_hook_keeps_a_memory_store_equal_to_the_model() -> None:
    run_state_machine_as_test(_machine(presets.five_stage(), store=MemoryStore), settings=STORED)


def test_store_hook_keeps_a_sqlite_file_equal_to_the_model(tmp_path: Path) -> None:
    runs = itertools.count()

    def store() -> SQLiteStore:
        return SQLiteStore(tmp_path / f"run-{next(runs)}.db")

    machine = _machine(strategies.pipelines(max_stages=7), store=store)
    run_state_machine_as_test(machine, settings=STORED)
    assert next(runs) > 1


class ForgetsFields(MemoryStore):
    """Broken: saves every change without the deal's custom fields."""

    def save(self, deal: Deal) -> None:
        super().save(attrs.evolve(deal, fields={}))


def test_store_hook_catches_a_store_that_loses_data() -> None:
    machine = _machine(presets.four_stage(), store=ForgetsFields)
    with pytest.raises(AssertionError, match="store has"):
        run_state_machine_as_test(machine, settings=CATCHING)


# -- packaging --------------------------------------------------------------------


def test_importing_salespipeline_does_not_import_hypothesis() -> None:
    code = "import sys, salespipeline; sys.exit('hypothesis' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_toolkit_exports() -> None:
    import salespipeline.testing as testing

    assert {"PipelineStateMachine", "strategies", "FakeClock"} <= set(testing.__all__)
    assert testing.strategies is strategies
