"""Ready-made stage sets from the domain sources, in English or Korean labels.

Each preset returns a new, lint-clean ``Pipeline``: probabilities rise stage by
stage, each stage has a stall limit, and ``proposal`` (where the set has one)
requires full BANT qualification, since real selling effort starts there.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Final, Literal

from salespipeline import guards
from salespipeline.errors import ValidationError, shown
from salespipeline.pipeline import Clock, Pipeline
from salespipeline.stages import Stage

__all__ = ["PRESETS", "five_stage", "four_stage", "funnel", "seven_stage", "six_stage"]

Labels = Literal["en", "ko"]

# name: (English label, Korean label, probability, days before a deal is stalled)
_CATALOGUE: Final[dict[str, tuple[str, str, float, int]]] = {
    "prospecting": ("Prospecting", "잠재 고객 발굴", 0.05, 14),
    "lead_generation": ("Lead generation", "리드 생성", 0.05, 14),
    "qualification": ("Lead qualification", "리드 자격 확인", 0.10, 14),
    "initial_contact": ("Initial contact", "초기 연락", 0.20, 10),
    "needs_assessment": ("Needs assessment", "요구 사항 평가", 0.30, 21),
    "proposal": ("Proposal / quote", "제안/견적", 0.50, 21),
    "negotiation": ("Negotiation", "협상", 0.70, 30),
    "closing": ("Closing", "거래 마감", 0.90, 14),
    "awareness": ("Awareness", "인식", 0.02, 30),
    "interest": ("Interest", "관심", 0.05, 30),
    "evaluation": ("Evaluation", "평가", 0.15, 21),
    "decision": ("Decision", "결정", 0.40, 14),
    "purchase": ("Purchase", "구매", 0.80, 14),
    "post_purchase": ("Post-purchase (retention)", "구매 이후", 0.90, 90),
}


def _build(name: str, stage_names: Sequence[str], labels: str, clock: Clock | None) -> Pipeline:
    if labels not in ("en", "ko"):
        raise ValidationError(f"labels must be 'en' or 'ko', not {shown(labels)}")
    stages = []
    for stage_name in stage_names:
        english, korean, probability, days = _CATALOGUE[stage_name]
        stages.append(
            Stage(
                stage_name,
                label=english if labels == "en" else korean,
                probability=probability,
                requires=(guards.bant(),) if stage_name == "proposal" else (),
                rot_after=timedelta(days=days),
            )
        )
    return Pipeline(name, stages, clock=clock)


def seven_stage(*, labels: Labels = "en", clock: Clock | None = None) -> Pipeline:
    """Prospecting to closing in seven stages, with initial contact and needs assessment."""
    names = (
        "prospecting",
        "qualification",
        "initial_contact",
        "needs_assessment",
        "proposal",
        "negotiation",
        "closing",
    )
    return _build("seven_stage", names, labels, clock)


def six_stage(*, labels: Labels = "en", clock: Clock | None = None) -> Pipeline:
    """Six stages: the seven-stage set without initial contact."""
    names = (
        "prospecting",
        "qualification",
        "needs_assessment",
        "proposal",
        "negotiation",
        "closing",
    )
    return _build("six_stage", names, labels, clock)


def five_stage(*, labels: Labels = "en", clock: Clock | None = None) -> Pipeline:
    """Five stages: prospecting, qualification, initial contact, proposal, closing."""
    names = ("prospecting", "qualification", "initial_contact", "proposal", "closing")
    return _build("five_stage", names, labels, clock)


def four_stage(*, labels: Labels = "en", clock: Clock | None = None) -> Pipeline:
    """Four stages for short cycles: lead generation, qualification, proposal, closing."""
    names = ("lead_generation", "qualification", "proposal", "closing")
    return _build("four_stage", names, labels, clock)


def funnel(*, labels: Labels = "en", clock: Clock | None = None) -> Pipeline:
    """The marketing funnel; WON after post-purchase means a retained customer."""
    names = ("awareness", "interest", "evaluation", "decision", "purchase", "post_purchase")
    return _build("funnel", names, labels, clock)


PRESETS: Final = {
    "seven_stage": seven_stage,
    "six_stage": six_stage,
    "five_stage": five_stage,
    "four_stage": four_stage,
    "funnel": funnel,
}
