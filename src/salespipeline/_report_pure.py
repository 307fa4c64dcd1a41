"""The pure report path: one pass over deals into ``Aggregates`` (private)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal, localcontext

from salespipeline._report import EXACT, STALLED_SHOWN, Aggregates, at_least, micros
from salespipeline.deal import Deal
from salespipeline.errors import UnknownStageError
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
    """Per-stage tallies of the deals of one pipeline, one deal at a time."""

    def __init__(self, pipeline: Pipeline, now: datetime | None) -> None:
        n = self.n = len(pipeline.stages)
        self.name = pipeline.name
        self.index = {name: i for i, name in enumerate(pipeline.stage_names)}
        self.rot = [s.rot_after for s in pipeline.stages]
        self.now = now
        self.outcomes = Outcomes()
        self.counts = [0] * (n + 2)
        self.reach = [0] * (n + 1)
        self.lost_reach = [0] * n
        self.stay_us = [0] * n
        self.stays = [0] * n
        self.open_amount = [Decimal(0)] * n
        self.override: dict[float, Decimal] = {}
        self.stalled = [0] * n
        self.oldest: list[tuple[datetime, str]] = []
        self.currencies: set[str] = set()

    def add(self, deal: Deal) -> None:
        index = self.index.get(deal.stage)
        if index is None:
            raise UnknownStageError(deal.stage, pipeline=self.name, deal_id=deal.id)
        self.counts[index] += 1
        self.outcomes.add(deal)
        self.currencies.add(deal.currency)
        self._history(deal)
        if index < self.n:
            self._open(deal, index)

    def _history(self, deal: Deal) -> None:
        n, index, history = self.n, self.index, deal.history
        reach = -1
        for k, change in enumerate(history):
            i = index.get(change.to_stage, -1)
            if 0 <= i < n and k + 1 < len(history):
                self.stay_us[i] += micros(history[k + 1].at - change.at)
                self.stays[i] += 1
            if reach < i <= n:
                reach = i
        if reach >= 0:
            self.reach[reach] += 1
            if deal.stage == LOST and reach < n:
                self.lost_reach[reach] += 1

    def _open(self, deal: Deal, index: int) -> None:
        if deal.probability is None:
            self.open_amount[index] += deal.amount
        else:
            self.override[deal.probability] = (
                self.override.get(deal.probability, Decimal(0)) + deal.amount
            )
        rot = self.rot[index]
        if self.now is not None and rot is not None and self.now - deal.stage_entered_at > rot:
            self.stalled[index] += 1
            self.oldest.append((deal.stage_entered_at, deal.id))
            if len(self.oldest) > 4 * STALLED_SHOWN:
                self.oldest = sorted(self.oldest)[:STALLED_SHOWN]

    def result(self) -> Aggregates:
        tally = self.outcomes
        return Aggregates(
            counts=tuple(self.counts),
            reached=at_least(self.reach),
            lost_reached=at_least(self.lost_reach),
            stay_us=tuple(self.stay_us),
            stays=tuple(self.stays),
            won_amount=tally.won_amount,
            lost_amount=tally.lost_amount,
            cycle_us=tally.cycle_us,
            open_amount=tuple(self.open_amount),
            override_amount=tuple(sorted(self.override.items())),
            stalled=tuple(self.stalled),
            stalled_ids=tuple(i for _, i in sorted(self.oldest)[:STALLED_SHOWN]),
            currencies=tuple(sorted(self.currencies)),
        )


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
