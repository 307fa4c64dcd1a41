"""The shipped testing toolkit: strategies make valid values, the machine catches bugs."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import unicodedata
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import Phase, find, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.stateful import get_state_machine_test, run_state_machine_as_test

from salespipeline import LOST, WON, Deal, Pipeline, Stage, StageBlockedError, guards, presets
from salespipeline._unchecked import replace as _replace
from salespipeline.storage import MemoryStore, SQLiteStore
from salespipeline.testing import (
    FakeClock,
    PipelineStateMachine,
    StageCoverage,
    UnreachedStageWarning,
    strategies,
)
from salespipeline.testing.stateful import _policy_allows
from salespipeline.testing.strategies import _TEXT, _satisfying_changes

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

    def _moved(
        self,
        deal: Deal,
        target: int,
        when: datetime,
        reason: str | None,
        actor: str | None = None,
    ) -> Deal:
        moved = super()._moved(deal, target, when, reason, actor)
        return _replace(moved, version=deal.version)


class ForgetsLostReason(Pipeline):
    """Broken: ``lose`` drops the reason it was given."""

    def _moved(
        self,
        deal: Deal,
        target: int,
        when: datetime,
        reason: str | None,
        actor: str | None = None,
    ) -> Deal:
        moved = super()._moved(deal, target, when, reason, actor)
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


# -- cold: a new user's first run, with Hypothesis' default settings -----------------

USER_TESTS = textwrap.dedent(
    """
    from hypothesis import given, settings

    from salespipeline import presets
    from salespipeline.testing import PipelineStateMachine, strategies


    class SevenStageMachine(PipelineStateMachine):
        pipeline = presets.seven_stage()


    TestSevenStage = SevenStageMachine.TestCase
    TestSevenStage.settings = settings(max_examples=20, stateful_step_count=20)


    class AnyPipelineMachine(PipelineStateMachine):
        pipeline = strategies.pipelines(max_stages=6)


    TestAnyPipeline = AnyPipelineMachine.TestCase
    TestAnyPipeline.settings = settings(max_examples=20, stateful_step_count=20)


    @settings(max_examples=20)
    @given(strategies.deals(presets.funnel()))
    def test_deals_belong_to_their_pipeline(deal):
        assert deal.pipeline == "funnel"


    if __name__ == "__main__":
        TestSevenStage().runTest()
        TestAnyPipeline().runTest()
        test_deals_belong_to_their_pipeline()
    """
)


def _run_cold(command: list[str], folder: Path) -> None:
    """Run ``command`` in ``folder`` with a fresh, empty Hypothesis storage directory."""
    (folder / "test_first_property_tests.py").write_text(USER_TESTS, encoding="utf-8")
    storage = folder / ".hypothesis"
    env = {**os.environ, "HYPOTHESIS_STORAGE_DIRECTORY": str(storage)}
    env.pop("HYPOTHESIS_PROFILE", None)
    done = subprocess.run(
        command, cwd=folder, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "FailedHealthCheck" not in done.stdout + done.stderr
    built = sorted(p.name for p in storage.rglob("codec-*"))
    assert built == [], f"hypothesis built a codec table on first use: {built}"


@pytest.mark.parametrize("runner", ["pytest", "python"])
def test_a_new_users_first_property_tests_pass_cold(runner: str, tmp_path: Path) -> None:
    """Default health checks (too_slow after 1 s of drawing), nothing cached yet."""
    module = "test_first_property_tests.py"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", module]
    _run_cold(command if runner == "pytest" else [sys.executable, module], tmp_path)


@given(st.text(_TEXT, min_size=1))
def test_generated_text_is_what_every_store_keeps(text: str) -> None:
    assert "\x00" not in text
    assert all(unicodedata.category(ch) != "Cs" for ch in text)


def test_generated_text_reaches_beyond_ascii_and_the_bmp() -> None:
    assert ord(find(_TEXT, lambda ch: ord(ch) > 127)) > 127
    assert ord(find(_TEXT, lambda ch: ord(ch) > 0xFFFF)) > 0xFFFF


# -- stages behind custom guards, and stage coverage ---------------------------------

MEDDIC = ("metrics", "economic_buyer", "decision_criteria", "decision_process", "pain", "champion")
meddic = guards.rule(
    "meddic",
    lambda deal: sum(bool(deal.fields.get(item)) for item in MEDDIC) >= 5,
    "confirm five of the six MEDDIC items",
)
B2B = Pipeline(
    "b2b",
    [
        Stage("discovery", probability=0.1),
        Stage("demo", probability=0.3, requires=guards.bant("budget")),
        Stage("negotiation", probability=0.7, requires=meddic),
    ],
)
MEDDIC_DONE = st.sets(st.sampled_from(MEDDIC), min_size=5).map(
    lambda items: {"fields": dict.fromkeys(items, "yes")}
)
SHORT = settings(max_examples=20, stateful_step_count=20, derandomize=True, database=None)


def _run_test_case(machine: type[PipelineStateMachine], budget: settings = SHORT) -> None:
    case = machine.TestCase
    case.settings = budget
    case().runTest()


def test_a_stage_behind_a_guard_the_machine_cannot_pass_fails_the_run() -> None:
    with pytest.raises(AssertionError) as failure:
        _run_test_case(_machine(B2B))
    message = str(failure.value)
    assert "never entered 'negotiation', 'won'" in message
    assert "'meddic' on 'negotiation'" in message
    assert "satisfy = {'meddic': " in message


def test_satisfy_lets_the_machine_into_a_stage_behind_a_custom_guard() -> None:
    machine = _machine(B2B, satisfy={"meddic": MEDDIC_DONE})
    _run_test_case(machine)
    coverage = machine.coverage()
    assert coverage.unreached == ()
    assert coverage.entered["negotiation"] > 0
    assert coverage.blocked == {}


def test_satisfy_updates_add_to_the_deals_fields() -> None:
    pipeline = Pipeline(
        "two_rules",
        [
            Stage("lead", probability=0.1),
            Stage("deal", probability=0.5, requires=(_rule_on("champion"), _rule_on("region"))),
        ],
    )
    satisfy = {
        "has_champion": st.just({"fields": {"champion": "Dana"}}),
        "has_region": st.just({"fields": {"region": "EMEA"}}),
    }
    machine = _machine(pipeline, satisfy=satisfy)
    _run_test_case(machine)  # one update replacing the other's fields would never get in
    assert machine.coverage().entered["deal"] > 0


def test_satisfy_for_a_first_stage_guard_lets_deals_start() -> None:
    pipeline = Pipeline("gated", [Stage("vetted", probability=0.2, requires=_rule_on("vat"))])
    with pytest.raises(AssertionError, match="never entered 'vetted', 'won', 'lost'"):
        _run_test_case(_machine(pipeline))
    machine = _machine(pipeline, satisfy={"has_vat": st.just({"fields": {"vat": "DE1"}})})
    _run_test_case(machine)
    assert machine.coverage().unreached == ()


def test_a_custom_guard_with_a_built_in_alternative_blocks_nothing() -> None:
    either = guards.any_of(meddic, guards.bant("budget"))
    pipeline = Pipeline(
        "either", [Stage("a", probability=0.1), Stage("b", probability=0.5, requires=either)]
    )
    machine = _machine(pipeline)
    assert machine.coverage().blocked == {}
    assert _machine(B2B).coverage().blocked == {"negotiation": ("meddic",)}


def test_satisfy_must_name_a_guard_of_the_pipeline() -> None:
    machine = _machine(B2B, satisfy={"medic": MEDDIC_DONE})
    with pytest.raises(TypeError, match="satisfy names 'medic', but no stage of 'b2b'"):
        machine()


def test_satisfy_must_map_guard_names_to_strategies() -> None:
    with pytest.raises(TypeError, match="set `satisfy = "):
        _machine(B2B, satisfy={"meddic": {"fields": {}}})()


def test_a_satisfy_update_that_evolve_refuses_names_the_hook() -> None:
    machine = _machine(B2B, satisfy={"meddic": st.just({"stage": "negotiation"})})
    unshrunk = settings(SHORT, phases=[Phase.generate])  # the message, not a minimal run
    with pytest.raises(ValueError, match=r"\.satisfy drew \{'stage': 'negotiation'\}"):
        run_state_machine_as_test(machine, settings=unshrunk)


def test_short_runs_reach_every_stage_of_a_long_pipeline() -> None:
    for preset in ("seven_stage", "funnel"):
        machine = _machine(presets.PRESETS[preset]())
        run_state_machine_as_test(machine, settings=SHORT)
        assert machine.coverage().unreached == (), preset


@pytest.mark.parametrize("preset", ["seven_stage", "funnel"])
def test_short_runs_reach_every_stage_whatever_the_seed(preset: str) -> None:
    # Hypothesis mixes the constants of every loaded local module into its draws, so a
    # derandomized run is one seed of many, picked by what else is imported: a suite
    # that imported more modules once left 'won' unreached (as seed 15 did then).
    unseeded = settings(SHORT, derandomize=False)
    for n in range(16):
        machine = _machine(presets.PRESETS[preset]())
        seed(n)(get_state_machine_test(machine, settings=unseeded))()
        assert machine.coverage().unreached == (), f"seed {n}"


def test_a_stage_nothing_blocks_but_the_run_missed_is_a_warning() -> None:
    tiny = settings(max_examples=1, stateful_step_count=1, database=None)
    with pytest.warns(UnreachedStageWarning, match="never entered .*'won'"):
        _run_test_case(_machine(presets.seven_stage()), tiny)


def test_each_test_case_run_counts_afresh() -> None:
    machine = _machine(presets.four_stage())
    run_state_machine_as_test(machine, settings=settings(SHORT, max_examples=60))
    before = machine.coverage()
    _run_test_case(machine)  # 20 examples, counted from zero rather than on top of 60
    assert 0 < machine.coverage().examples < before.examples


def test_a_strategy_of_pipelines_has_no_stages_to_count() -> None:
    machine = _machine(strategies.pipelines(max_stages=3))
    run_state_machine_as_test(machine, settings=SHORT)
    assert machine.coverage().entered == {}
    machine.coverage().check()


def test_coverage_check_without_examples_is_silent() -> None:
    StageCoverage("M", 0, {"a": 0}, {"a": ("x",)}).check()


def _rule_on(field: str) -> Any:
    return guards.rule(f"has_{field}", lambda deal: bool(deal.fields.get(field)), f"{field}?")


# -- packaging --------------------------------------------------------------------


def test_importing_salespipeline_does_not_import_hypothesis() -> None:
    code = "import sys, salespipeline; sys.exit('hypothesis' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_toolkit_exports() -> None:
    import salespipeline.testing as testing

    assert {"PipelineStateMachine", "strategies", "FakeClock"} <= set(testing.__all__)
    assert {"StageCoverage", "UnreachedStageWarning", "Satisfy"} <= set(testing.__all__)
    assert testing.strategies is strategies
