"""Presets: the domain's stage sets, probabilities, guards and labels."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import pytest

from salespipeline import Bant, Pipeline, StageBlockedError, ValidationError, presets

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)

EXPECTED = {
    presets.seven_stage: (
        "prospecting",
        "qualification",
        "initial_contact",
        "needs_assessment",
        "proposal",
        "negotiation",
        "closing",
    ),
    presets.six_stage: (
        "prospecting",
        "qualification",
        "needs_assessment",
        "proposal",
        "negotiation",
        "closing",
    ),
    presets.five_stage: ("prospecting", "qualification", "initial_contact", "proposal", "closing"),
    presets.four_stage: ("lead_generation", "qualification", "proposal", "closing"),
    presets.funnel: (
        "awareness",
        "interest",
        "evaluation",
        "decision",
        "purchase",
        "post_purchase",
    ),
}
ALL = list(EXPECTED)


@pytest.mark.parametrize("preset", ALL)
def test_stage_names_exactly(preset: Callable[..., Pipeline]) -> None:
    assert tuple(s.name for s in preset().stages) == EXPECTED[preset]


@pytest.mark.parametrize("preset", ALL)
def test_probabilities_never_decrease(preset: Callable[..., Pipeline]) -> None:
    probabilities = [s.probability for s in preset().stages]
    assert probabilities == sorted(probabilities)
    assert all(0 < p < 1 for p in probabilities)


@pytest.mark.parametrize("preset", ALL)
def test_bant_guard_only_on_proposal(preset: Callable[..., Pipeline]) -> None:
    for stage in preset().stages:
        assert stage.guard_names == (("bant",) if stage.name == "proposal" else ())


@pytest.mark.parametrize("preset", ALL)
def test_every_stage_has_a_stall_limit(preset: Callable[..., Pipeline]) -> None:
    assert all(s.rot_after is not None for s in preset().stages)


@pytest.mark.parametrize("preset", ALL)
def test_each_call_returns_a_new_equal_pipeline(preset: Callable[..., Pipeline]) -> None:
    first, second = preset(), preset()
    assert first == second and first is not second


def test_korean_labels() -> None:
    labels = [s.label for s in presets.seven_stage(labels="ko").stages]
    assert labels == [
        "잠재 고객 발굴",
        "리드 자격 확인",
        "초기 연락",
        "요구 사항 평가",
        "제안/견적",
        "협상",
        "거래 마감",
    ]
    assert presets.four_stage(labels="ko").stages[0].label == "리드 생성"
    funnel = [s.label for s in presets.funnel(labels="ko").stages]
    assert funnel == ["인식", "관심", "평가", "결정", "구매", "구매 이후"]


def test_korean_labels_do_not_change_names_or_identity_of_moves() -> None:
    english, korean = presets.five_stage(), presets.five_stage(labels="ko")
    assert [s.name for s in english.stages] == [s.name for s in korean.stages]
    deal = korean.start("d", at=T0)
    assert korean.moves(deal) == english.moves(deal)


def test_unknown_labels_language_is_refused() -> None:
    with pytest.raises(ValidationError, match="labels"):
        presets.six_stage(labels="fr")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "preset", [presets.seven_stage, presets.six_stage, presets.five_stage, presets.four_stage]
)
def test_proposal_requires_bant(preset: Callable[..., Pipeline]) -> None:
    pipeline = preset()
    deal = pipeline.start("d", at=T0)
    while pipeline.stages[pipeline.stage_names.index(deal.stage) + 1].name != "proposal":
        deal = pipeline.advance(deal, at=T0)
    with pytest.raises(StageBlockedError):
        pipeline.advance(deal, at=T0)
    qualified = deal.evolve(bant=Bant(True, True, True, True))
    assert pipeline.advance(qualified, at=T0).stage == "proposal"


def test_funnel_walk_to_retained_customer() -> None:
    funnel = presets.funnel()
    deal = funnel.start("visitor", at=T0)
    for _ in range(5):
        deal = funnel.advance(deal, at=T0)
    assert deal.stage == "post_purchase"
    assert funnel.win(deal, at=T0).stage == "won"
