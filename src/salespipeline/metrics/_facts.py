"""What deals contribute to a report, and the one fold of it into ``Aggregates`` (private).

Both report paths produce ``Facts``: the pure path one per deal, the SQL path one per
grouped row of ``sp_deals``. ``fold`` sums any mix of them; ``finish`` (in
``_report``) takes the ratios. "Completed stay" (``completed_stays``) and "furthest
stage reached" (``furthest``) are defined here only; the stores keep each deal's
stages entered and ``completed_stays`` in its row, so SQL reads what the pure path
computes.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal, localcontext
from itertools import pairwise
from typing import Final, NamedTuple, Protocol

from salespipeline.deal import Deal
from salespipeline.metrics._money import Money, combined
from salespipeline.metrics._report import EXACT, STALLED_SHOWN, Aggregates, MoneySums, at_least
from salespipeline.metrics._time import ONE_US, micros
from salespipeline.pipeline import Pipeline
from salespipeline.stages import LOST, WON, category_of

__all__ = [
    "Change",
    "Facts",
    "Outcomes",
    "Stay",
    "completed_stays",
    "cycle_us",
    "fold",
    "folding",
    "furthest",
    "stay_stages",
]

Stay = tuple[str, int, int]
"""Completed stays in one stage: (stage, how many, their summed microseconds)."""

_TERMINAL: Final = frozenset((WON, LOST))
NO_MONEY: Final = Money()
"""Amounts as given: no currency filter, no conversion."""
_ZERO: Final = Decimal(0)


def stay_stages(entered: Iterable[str]) -> list[str]:
    """The stages of ``entered`` that stays are kept for: all but WON and LOST."""
    return [stage for stage in entered if stage not in _TERMINAL]


class Change(Protocol):
    """A history entry as a stay is read from it (``StageChange`` is one)."""

    @property
    def to_stage(self) -> str: ...

    @property
    def at(self) -> datetime: ...


def completed_stays(history: Sequence[Change]) -> list[Stay]:
    """Each completed stay of ``history``, as ``(stage, 1, microseconds)``.

    A stay is completed when another change follows it, whatever the next stage: it
    lasted from its entry to that change. The last stay is still running; stays in
    WON and LOST are not kept.
    """
    return [
        (change.to_stage, 1, (after.at - change.at) // ONE_US)
        for change, after in pairwise(history)
        if change.to_stage not in _TERMINAL
    ]


def furthest(entered: Iterable[str], pipeline: Pipeline) -> int | None:
    """The position of the furthest open stage or WON among ``entered``; None if neither.

    A deal reached stage S when it entered S, a later open stage, or WON; LOST and
    stages the pipeline does not have reach nothing.
    """
    positions, won = pipeline.positions, len(pipeline.stages)
    return max((p for s in entered if (p := positions.get(s, won + 1)) <= won), default=None)


def cycle_us(deal: Deal) -> int:
    """``closed_at - created_at`` in microseconds; 0 while the deal is open."""
    return 0 if deal.closed_at is None else micros(deal.closed_at - deal.created_at)


class Facts(NamedTuple):
    """What a group of ``deals`` deals, alike in stage, currency, overrides (probability and
    forecast category) and stages entered, contributes to a report.

    Sums run over the group: ``amount`` exactly, ``cycle_us`` over its closed
    deals; ``stays`` lists their completed stays (a stage may repeat, and any
    stage name may appear: the fold keeps the pipeline's open ones). ``stalled_since``
    holds (stage entry in epoch microseconds, id) of stalled deals among them: at
    least every one of the ``STALLED_SHOWN`` longest stalled of the whole pipeline.
    (A named tuple, not an attrs class: the pure path makes one per deal.)
    """

    stage: str
    currency: str
    probability: float | None
    entered: frozenset[str]
    stays: Sequence[Stay]
    amount: Decimal
    cycle_us: int
    stalled: int
    deals: int = 1
    stalled_since: tuple[tuple[int, str], ...] = ()
    forecast_category: str | None = None


class Outcomes:
    """Open, won and lost counts with exact won/lost amounts and summed won cycles."""

    __slots__ = ("cycle_us", "lost", "lost_amount", "open", "won", "won_amount")

    def __init__(self) -> None:
        self.open = self.won = self.lost = self.cycle_us = 0
        self.won_amount = self.lost_amount = Decimal(0)

    def add(self, stage: str, count: int, amount: Decimal, cycle: int) -> None:
        """Count ``count`` deals in ``stage`` (call inside an ``EXACT`` decimal context)."""
        if stage == WON:
            self.won += count
            self.won_amount += amount
            self.cycle_us += cycle
        elif stage == LOST:
            self.lost += count
            self.lost_amount += amount
        else:
            self.open += count

    @classmethod
    def of(cls, deals: Iterable[Deal]) -> Outcomes:
        """The outcomes of every deal given, whatever its pipeline."""
        tally = cls()
        with localcontext(EXACT):
            for deal in deals:
                tally.add(deal.stage, 1, deal.amount, cycle_us(deal))
        return tally


class Purse:
    """The running money sums of one currency's deals, in that currency."""

    __slots__ = ("categories", "open_amounts", "outcomes")

    def __init__(self) -> None:
        self.outcomes = Outcomes()
        self.open_amounts: dict[float, Decimal] = {}
        self.categories: dict[str, tuple[int, Decimal]] = {}

    def add(self, f: Facts, weight: float | None, category: str | None) -> None:
        """Count ``f``; ``weight``, its win probability, weighs its amount while open
        and ``category`` is its forecast category then (both None once closed). Call
        inside an ``EXACT`` decimal context."""
        self.outcomes.add(f.stage, f.deals, f.amount, f.cycle_us)
        if weight is not None:
            self.open_amounts[weight] = self.open_amounts.get(weight, _ZERO) + f.amount
        if category is not None:
            count, amount = self.categories.get(category, (0, _ZERO))
            self.categories[category] = (count + f.deals, amount + f.amount)

    def result(self) -> MoneySums:
        o = self.outcomes
        return MoneySums(
            open=o.open,
            won=o.won,
            lost=o.lost,
            cycle_us=o.cycle_us,
            won_amount=o.won_amount,
            lost_amount=o.lost_amount,
            open_amounts=tuple(sorted(self.open_amounts.items())),
            categories=tuple((name, n, a) for name, (n, a) in sorted(self.categories.items())),
        )


def fold(pipeline: Pipeline, facts: Iterable[Facts], *, money: Money = NO_MONEY) -> Aggregates:
    """The ``Aggregates`` of ``facts``, every one of a stage ``pipeline`` has.

    Amounts are summed per currency; the report's own sums are those sums converted
    as ``money`` says (``_money.combined``).
    """
    summed = folding(pipeline)
    summed.add_all(facts)
    return summed.result(money)


def folding(pipeline: Pipeline) -> _Sums:
    """Running sums that ``fold`` makes in one go, for facts that come in batches (a SQL
    report's rebuilt deals): ``add_all`` each batch, then take ``result``."""
    return _Sums(pipeline)


class _Sums:
    """The running sums behind ``fold`` (private to it: nothing else mutates them)."""

    def __init__(self, pipeline: Pipeline) -> None:
        n = self.n = len(pipeline.stages)
        self.pipeline = pipeline
        self.positions = dict(pipeline.positions)
        self.probabilities = [s.probability for s in pipeline.stages]
        self.counts = [0] * (n + 2)
        self.reach = [0] * (n + 1)
        self.lost_reach = [0] * n
        self.stays = [0] * n
        self.stay_us = [0] * n
        self.stalled = [0] * n
        self.stalled_since: list[tuple[int, str]] = []
        self.purses: dict[str, Purse] = {}
        self.furthest: dict[frozenset[str], int | None] = {}
        self.categories: dict[tuple[int, float | None, str | None], str] = {}

    def add_all(self, facts: Iterable[Facts]) -> None:
        """Add every one of ``facts``, amounts summed exactly."""
        with localcontext(EXACT):
            for item in facts:
                self.add(item)

    def add(self, f: Facts) -> None:
        i, n = self.positions[f.stage], self.n
        self.counts[i] += f.deals
        self._purse(f.currency).add(f, self._weight(f, i), self._category(f, i))
        reach = self.furthest.get(f.entered, -1)
        if reach == -1:  # entered stages not seen before
            reach = self.furthest[f.entered] = furthest(f.entered, self.pipeline)
        if reach is not None:
            self.reach[reach] += f.deals
            if f.stage == LOST and reach < n:
                self.lost_reach[reach] += f.deals
        for stage, count, total_us in f.stays:
            if (j := self.positions.get(stage, n)) < n:
                self.stays[j] += count
                self.stay_us[j] += total_us
        if f.stalled and i < n:
            self._stalled(f, i)

    def _purse(self, currency: str) -> Purse:
        purse = self.purses.get(currency)
        if purse is None:
            purse = self.purses[currency] = Purse()
        return purse

    def _weight(self, f: Facts, i: int) -> float | None:
        """The win probability of ``f``'s open deals (override, else stage's); None if closed."""
        if i >= self.n:
            return None
        return self.probabilities[i] if f.probability is None else f.probability

    def _category(self, f: Facts, i: int) -> str | None:
        """The forecast category of ``f``'s open deals (``stages.category_of``); None if closed."""
        if i >= self.n:
            return None
        key = (i, f.probability, f.forecast_category)
        found = self.categories.get(key)
        if found is None:
            stage = self.pipeline.stages[i]
            found = self.categories[key] = category_of(
                stage, probability=f.probability, override=f.forecast_category
            )
        return found

    def _stalled(self, f: Facts, i: int) -> None:
        self.stalled[i] += f.stalled
        self.stalled_since.extend(f.stalled_since)
        if len(self.stalled_since) > 4 * STALLED_SHOWN:
            self.stalled_since = self._longest_stalled()

    def _longest_stalled(self) -> list[tuple[int, str]]:
        return heapq.nsmallest(STALLED_SHOWN, self.stalled_since)

    def result(self, money: Money) -> Aggregates:
        by_currency = tuple((code, self.purses[code].result()) for code in sorted(self.purses))
        return Aggregates(
            counts=tuple(self.counts),
            reached=at_least(self.reach),
            lost_reached=at_least(self.lost_reach),
            stay_us=tuple(self.stay_us),
            stays=tuple(self.stays),
            stalled=tuple(self.stalled),
            stalled_ids=tuple(i for _, i in self._longest_stalled()),
            currencies=tuple(code for code, _ in by_currency),
            money=combined(by_currency, money),
            currency=money.currency,
            by_currency=by_currency,
        )
