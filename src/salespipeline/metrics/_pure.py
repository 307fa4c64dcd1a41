"""The pure report path: one pass over deals into ``Aggregates`` (private)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal, localcontext

from salespipeline.deal import Deal
from salespipeline.errors import UnknownStageError
from salespipeline.metrics._report import EPOCH, EXACT, Aggregates, Tallies, micros
from salespipeline.pipeline import Pipeline
from salespipeline.stages import LOST, WON

__all__ = ["Outcomes", "aggregate"]


class Outcomes:
    """Open, won and lost tallies with exact won/lost amounts and won cycle time."""

    __slots__ = ("cycle_us", "lost", "lost_amount", "open", "won", "won_amount")

    def __init__(self) -> None:
        self.open = self.won = self.lost = self.cycle_us = 0
        self.won_amount = self.lost_amount = Decimal(0)

    def add(self, deal: Deal) -> None:
        """Count one deal (call inside an ``EXACT`` decimal context)."""
        if deal.stage == WON:
            self.won += 1
            self.won_amount += deal.amount
            assert deal.closed_at is not None
            self.cycle_us += micros(deal.closed_at - deal.created_at)
        elif deal.stage == LOST:
            self.lost += 1
            self.lost_amount += deal.amount
        else:
            self.open += 1

    @classmethod
    def of(cls, deals: Iterable[Deal]) -> Outcomes:
        tally = cls()
        with localcontext(EXACT):
            for deal in deals:
                tally.add(deal)
        return tally


class _Accumulator:
    """Fills ``Tallies`` from the deals of one pipeline, one deal at a time."""

    def __init__(self, pipeline: Pipeline, now: datetime | None) -> None:
        self.n = len(pipeline.stages)
        self.name = pipeline.name
        self.index = {name: i for i, name in enumerate(pipeline.stage_names)}
        self.rot = [s.rot_after for s in pipeline.stages]
        self.now = now
        self.outcomes = Outcomes()
        self.tallies = Tallies(pipeline)

    def add(self, deal: Deal) -> None:
        index = self.index.get(deal.stage)
        if index is None:
            raise UnknownStageError(deal.stage, pipeline=self.name, deal_id=deal.id)
        self.tallies.counts[index] += 1
        self.tallies.currencies.add(deal.currency)
        self.outcomes.add(deal)
        self._history(deal)
        if index < self.n:
            self._open(deal, index)

    def _history(self, deal: Deal) -> None:
        n, index, history, t = self.n, self.index, deal.history, self.tallies
        reach = -1
        for k, change in enumerate(history):
            i = index.get(change.to_stage, -1)
            if 0 <= i < n and k + 1 < len(history):
                t.stay_us[i] += micros(history[k + 1].at - change.at)
                t.stays[i] += 1
            if reach < i <= n:
                reach = i
        if reach >= 0:
            t.reach[reach] += 1
            if deal.stage == LOST and reach < n:
                t.lost_reach[reach] += 1

    def _open(self, deal: Deal, index: int) -> None:
        t = self.tallies
        if deal.probability is None:
            t.open_amount[index] += deal.amount
        else:
            t.add_override(deal.probability, deal.amount)
        rot = self.rot[index]
        if self.now is not None and rot is not None and self.now - deal.stage_entered_at > rot:
            t.stalled[index] += 1
            t.add_oldest(micros(deal.stage_entered_at - EPOCH), deal.id)

    def result(self) -> Aggregates:
        t, o = self.tallies, self.outcomes
        t.won_amount, t.lost_amount, t.cycle_us = o.won_amount, o.lost_amount, o.cycle_us
        return t.result()


def aggregate(deals: Iterable[Deal], pipeline: Pipeline, *, now: datetime | None) -> Aggregates:
    """The aggregates of ``pipeline``'s deals among ``deals`` (others are skipped).

    Stalled figures are counted only when ``now`` is given.
    """
    acc = _Accumulator(pipeline, now)
    name = pipeline.name
    with localcontext(EXACT):
        for deal in deals:
            if deal.pipeline == name:
                acc.add(deal)
    return acc.result()
