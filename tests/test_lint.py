"""Lint: each finding code on a small definition that has it, and none where it is absent."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import attrs
import pytest
from hypothesis import given

from salespipeline import Finding, Pipeline, Stage, guards, presets
from salespipeline.errors import ValidationError
from salespipeline.testing import strategies

UNSETTABLE = "x" * 300  # longer than any custom field key a deal can carry


def _pipeline(*probabilities: float, **options: Any) -> Pipeline:
    requires = options.pop("requires", {})
    stages = [
        Stage(f"s{i}", probability=p, requires=requires.get(i, ()))
        for i, p in enumerate(probabilities)
    ]
    return Pipeline("p", stages, **options)


def _codes(pipeline: Pipeline) -> list[str]:
    return [finding.code for finding in pipeline.lint()]


@pytest.mark.parametrize("factory", list(presets.PRESETS.values()))
@pytest.mark.parametrize("labels", ["en", "ko"])
def test_presets_are_lint_clean(factory: Any, labels: Any) -> None:
    assert factory(labels=labels).lint() == ()


def test_a_clean_pipeline_has_no_findings() -> None:
    assert _pipeline(0.1, 0.4, 0.8, lost_reasons=["price", "timing"]).lint() == ()


def test_decreasing_probability_names_the_lower_stage() -> None:
    findings = _pipeline(0.1, 0.6, 0.4, 0.9).lint()
    assert findings == (
        Finding(
            "decreasing-probability",
            "stage 's2' has probability 0.4, lower than 0.6 of the stage before it ('s1')",
            "s2",
        ),
    )


def test_equal_probabilities_are_not_decreasing() -> None:
    assert _codes(_pipeline(0.3, 0.3)) == []


def test_certain_before_won() -> None:
    findings = _pipeline(0.5, 1.0).lint()
    assert [(f.code, f.stage) for f in findings] == [("certain-before-won", "s1")]


def test_guard_on_first_stage() -> None:
    findings = _pipeline(0.1, 0.5, requires={0: guards.bant()}).lint()
    assert [(f.code, f.stage) for f in findings] == [("guard-on-first-stage", "s0")]
    assert "bant" in findings[0].message


def test_guard_on_a_later_stage_is_fine() -> None:
    assert _codes(_pipeline(0.1, 0.5, requires={1: guards.bant()})) == []


def test_unenterable_stage_and_the_dead_end_before_it() -> None:
    pipeline = _pipeline(0.1, 0.5, 0.8, requires={1: guards.requires_fields(UNSETTABLE)})
    findings = pipeline.lint()
    assert [(f.code, f.stage) for f in findings] == [
        ("unenterable-stage", "s1"),
        ("dead-end", "s0"),
    ]
    assert "can only leave it by being lost" in findings[1].message


def test_skipping_is_a_way_around_an_unenterable_stage() -> None:
    pipeline = _pipeline(
        0.1, 0.5, 0.8, allow_skip=True, requires={1: guards.requires_fields(UNSETTABLE)}
    )
    assert _codes(pipeline) == ["unenterable-stage"]


def test_an_unenterable_last_stage_makes_every_earlier_stage_a_dead_end() -> None:
    pipeline = _pipeline(0.1, 0.5, 0.8, requires={2: guards.requires_fields("ok", UNSETTABLE)})
    findings = pipeline.lint()
    assert [(f.code, f.stage) for f in findings] == [
        ("unenterable-stage", "s2"),
        ("dead-end", "s0"),
        ("dead-end", "s1"),
    ]


@pytest.mark.parametrize("name", ["a\x00b", "lone \ud800"])
def test_a_field_name_no_backend_can_keep_is_refused_when_the_guard_is_made(name: str) -> None:
    """It used to be a lint finding, then PostgreSQL refused the definition: now it is refused."""
    with pytest.raises(ValidationError, match="field name"):
        guards.requires_fields(name)
    with pytest.raises(ValidationError, match="field name"):
        guards.RequiresFields((name,))


@pytest.mark.parametrize(
    ("guard", "unenterable"),
    [
        (guards.requires_fields(UNSETTABLE) & guards.bant(), True),
        (guards.requires_fields(UNSETTABLE) | guards.bant(), False),
        (guards.requires_fields(UNSETTABLE) | guards.requires_fields("y" * 201), True),
        (guards.all_of(guards.any_of(guards.requires_fields(UNSETTABLE))), True),
        (guards.rule("never", lambda d: False, "never"), False),
    ],
)
def test_combinators_refuse_everything_only_when_provable(guard: Any, unenterable: bool) -> None:
    codes = _codes(_pipeline(0.1, 0.5, requires={1: guard}))
    assert ("unenterable-stage" in codes) is unenterable


def test_single_lost_reason() -> None:
    findings = _pipeline(0.1, 0.5, lost_reasons=["price"]).lint()
    assert [(f.code, f.stage) for f in findings] == [("single-lost-reason", None)]


def test_near_duplicate_lost_reasons_are_grouped() -> None:
    reasons = ["Price", "price ", "timing", "No  decision", "no decision"]
    findings = _pipeline(0.1, 0.5, lost_reasons=reasons).lint()
    assert [f.code for f in findings] == ["near-duplicate-lost-reason"] * 2
    assert "'Price', 'price '" in findings[0].message
    assert "'No  decision', 'no decision'" in findings[1].message


def test_field_shadows_attribute() -> None:
    requires = {1: guards.requires_fields("amount", "use_case") | guards.requires_fields("budget")}
    findings = _pipeline(0.1, 0.5, requires=requires).lint()
    assert [(f.code, f.stage) for f in findings] == [
        ("field-shadows-attribute", "s1"),
        ("field-shadows-attribute", "s1"),
    ]
    assert "'amount'" in findings[0].message
    assert "'budget'" in findings[1].message


def test_near_duplicate_field_across_stages() -> None:
    requires = {
        1: guards.requires_fields("decision_maker"),
        2: guards.requires_fields("DecisionMaker"),
    }
    findings = _pipeline(0.1, 0.5, 0.7, requires=requires).lint()
    assert [(f.code, f.stage) for f in findings] == [("near-duplicate-field", "s1")]
    assert "'decision_maker' (stage 's1'), 'DecisionMaker' (stage 's2')" in findings[0].message


def test_the_same_field_required_twice_is_not_a_near_duplicate() -> None:
    requires = {1: guards.requires_fields("champion"), 2: guards.requires_fields("champion")}
    assert _codes(_pipeline(0.1, 0.5, 0.7, requires=requires)) == []


def test_too_many_stages() -> None:
    assert _codes(_pipeline(*[0.1] * 9)) == []
    findings = _pipeline(*[0.1] * 10).lint()
    assert [(f.code, f.stage) for f in findings] == [("too-many-stages", None)]


def test_findings_are_frozen_values() -> None:
    finding = Finding("dead-end", "message", "s0")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        finding.code = "other"  # type: ignore[misc]
    assert finding == Finding("dead-end", "message", "s0")


@given(strategies.pipelines())
def test_generated_pipelines_lint_without_error_and_name_their_stages(pipeline: Pipeline) -> None:
    findings = pipeline.lint()
    assert all(f.stage is None or f.stage in pipeline.stage_names for f in findings)
    # Generated guards only ever require fields a deal can carry: nothing is unreachable.
    assert not {"unenterable-stage", "dead-end"} & {f.code for f in findings}


@given(strategies.pipelines(guards=False))
def test_decreasing_probability_is_reported_exactly_when_one_drops(pipeline: Pipeline) -> None:
    probabilities = [s.probability for s in pipeline.stages]
    decreasing = any(b < a for a, b in pairwise(probabilities))
    assert ("decreasing-probability" in _codes(pipeline)) is decreasing
