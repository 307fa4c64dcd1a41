"""Open deals the domain rules say to disqualify early (private; see ``metrics``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import attrs

from salespipeline import _checks as c
from salespipeline.deal import Deal, checked_deals
from salespipeline.errors import ValidationError
from salespipeline.metrics._render import human_duration
from salespipeline.pipeline import Pipeline
from salespipeline.stages import LOST

__all__ = ["DisqualificationCandidate", "disqualification_candidates"]

QUALIFICATION = "qualification"


@attrs.frozen(kw_only=True)
class DisqualificationCandidate:
    """An open deal worth disqualifying, with every rule it matched in plain words."""

    deal: Deal
    reasons: tuple[str, ...]


def _qualified_by(pipeline: Pipeline) -> int:
    """Index of the stage that qualifies leads: ``qualification``, else the first stage."""
    for i, stage in enumerate(pipeline.stages):
        if stage.name == QUALIFICATION:
            return i
    return 0


def _reasons(deal: Deal, pipeline: Pipeline, index: int, now: datetime) -> tuple[str, ...]:
    reasons = []
    qualifier = _qualified_by(pipeline)
    if index > qualifier:
        past = pipeline.stages[qualifier].name
        if not deal.bant.budget:
            reasons.append(f"past {past} without a confirmed budget")
        if not deal.bant.authority:
            reasons.append(f"past {past} without a decision maker (authority)")
    stage = pipeline.stages[index]
    waited = now - deal.stage_entered_at
    if stage.rot_after is not None and waited > 2 * stage.rot_after:
        reasons.append(
            f"in {stage.name} for {human_duration(waited)}, more than twice its stall "
            f"limit of {human_duration(stage.rot_after)}"
        )
    losses = sum(1 for change in deal.history if change.to_stage == LOST)
    if losses >= 2:
        reasons.append(f"lost {losses} times and reopened each time")
    return tuple(reasons)


def disqualification_candidates(
    deals: Iterable[Deal], pipeline: Pipeline, *, now: datetime
) -> tuple[DisqualificationCandidate, ...]:
    """Open deals of ``pipeline`` matching a disqualification rule, most reasons first.

    Rules: past the qualification stage without budget or without authority; in the
    stage more than twice its ``rot_after``; lost at least twice (reopened and lost again).
    """
    now = c.to_utc(now, "now")
    if not isinstance(pipeline, Pipeline):
        raise ValidationError(f"pipeline must be a Pipeline, not {type(pipeline).__name__}")
    positions, n_open = pipeline.positions, len(pipeline.stages)
    found = []
    for deal in checked_deals(deals, "disqualification_candidates()"):
        i = positions.get(deal.stage, n_open) if deal.pipeline == pipeline.name else n_open
        if i >= n_open:
            continue
        reasons = _reasons(deal, pipeline, i, now)
        if reasons:
            found.append(DisqualificationCandidate(deal=deal, reasons=reasons))
    found.sort(key=lambda c: (-len(c.reasons), c.deal.stage_entered_at, c.deal.id))
    return tuple(found)
