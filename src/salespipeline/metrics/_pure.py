"""The pure report path: each deal's ``Facts``, folded into ``Aggregates`` (private)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from salespipeline.deal import Deal
from salespipeline.errors import UnknownStageError
from salespipeline.metrics._facts import NO_MONEY, Facts, completed_stays, cycle_us, fold
from salespipeline.metrics._money import Money
from salespipeline.metrics._report import Aggregates
from salespipeline.metrics._time import to_us
from salespipeline.pipeline import Pipeline

__all__ = ["DealFacts", "aggregate"]


class DealFacts:
    """Turns deals of one pipeline into their ``Facts``.

    A deal is stalled when it has been in its stage longer than the stage's
    ``rot_after`` (strictly) at ``now``; without ``now`` none is.
    """

    def __init__(self, pipeline: Pipeline, now: datetime | None) -> None:
        self.pipeline = pipeline
        self.positions = dict(pipeline.positions)
        self.rot: tuple[timedelta | None, ...] = (
            *(s.rot_after for s in pipeline.stages),
            None,
            None,
        )
        self.now = now

    def __call__(self, deal: Deal) -> Facts:
        position = self.positions.get(deal.stage)
        if position is None:
            raise UnknownStageError(deal.stage, pipeline=self.pipeline.name, deal_id=deal.id)
        history = deal.history
        rot, now = self.rot[position], self.now
        stalled = now is not None and rot is not None and now - deal.stage_entered_at > rot
        return Facts(  # positional: one per deal, and keywords cost a third of the build
            deal.stage,
            deal.currency,
            deal.probability,
            frozenset([change.to_stage for change in history]),
            completed_stays(history),
            deal.amount,
            cycle_us(deal),
            int(stalled),
            1,
            ((to_us(deal.stage_entered_at), deal.id),) if stalled else (),
            deal.forecast_category,
        )


def _own(deals: Iterable[Deal], pipeline: Pipeline, only: str | None) -> Iterator[Deal]:
    name = pipeline.name
    if only is None:
        return (deal for deal in deals if deal.pipeline == name)
    return (deal for deal in deals if deal.pipeline == name and deal.currency == only)


def aggregate(
    deals: Iterable[Deal], pipeline: Pipeline, *, now: datetime | None, money: Money = NO_MONEY
) -> Aggregates:
    """The aggregates of ``pipeline``'s deals among ``deals`` (others are skipped).

    Stalled figures are counted only when ``now`` is given; ``money`` keeps the deals
    of one currency, or converts every amount into it.
    """
    facts = map(DealFacts(pipeline, now), _own(deals, pipeline, money.only))
    return fold(pipeline, facts, money=money)
