"""Weighted revenue forecast by expected close period (private; see ``metrics.forecast``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Final, Literal

import attrs

from salespipeline.deal import Deal, checked_deals
from salespipeline.errors import ValidationError
from salespipeline.metrics._report import EXACT, mean_duration, weighted
from salespipeline.metrics._time import micros
from salespipeline.pipeline import Pipeline
from salespipeline.stages import WON

__all__ = ["ForecastPeriod", "forecast"]

Period = Literal["month", "quarter", "year"]
PERIODS: Final = ("month", "quarter", "year")
UNSCHEDULED: Final = "unscheduled"


@attrs.frozen(kw_only=True)
class ForecastPeriod:
    """Expected revenue (sum of amount x probability) of the open deals closing in a period.

    ``period`` is ``"2026-03"``, ``"2026-Q1"`` or ``"2026"``; ``start`` its first day.
    Deals with no expected date share the period ``"unscheduled"`` (``start`` None).
    """

    period: str
    start: date | None
    expected: Decimal
    deals: int


def expected_close(deal: Deal) -> date | None:
    """The deal's ``fields["expected_close"]`` as a date, when it is an ISO date string."""
    value = deal.fields.get("expected_close")
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        try:
            return datetime.fromisoformat(value).date()
        except ValueError:
            return None


def period_of(day: date, by: Period) -> tuple[str, date]:
    if by == "month":
        return f"{day.year:04d}-{day.month:02d}", day.replace(day=1)
    if by == "quarter":
        quarter = (day.month - 1) // 3 + 1
        return f"{day.year:04d}-Q{quarter}", date(day.year, 3 * quarter - 2, 1)
    return f"{day.year:04d}", date(day.year, 1, 1)


def _projected(entered: datetime, mean: timedelta) -> date | None:
    """The day ``mean`` after ``entered``; None past the calendar's end (unscheduled)."""
    try:
        return (entered + mean).date()
    except OverflowError:
        return None


class _RemainingCycle:
    """Per open stage: mean time from a won deal's last entry into it to its close."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.positions = pipeline.positions
        self.n = len(pipeline.stages)
        self.total_us = [0] * len(pipeline.stages)
        self.count = [0] * len(pipeline.stages)

    def add(self, deal: Deal) -> None:
        assert deal.closed_at is not None
        last_entry: dict[int, datetime] = {}
        for change in deal.history:
            i = self.positions.get(change.to_stage, self.n)
            if i < self.n:
                last_entry[i] = change.at
        for i, entered in last_entry.items():
            self.total_us[i] += micros(deal.closed_at - entered)
            self.count[i] += 1

    def means(self) -> list[timedelta | None]:
        return [mean_duration(t, c) for t, c in zip(self.total_us, self.count, strict=True)]


def forecast(
    deals: Iterable[Deal], pipeline: Pipeline, *, by: Period = "month"
) -> tuple[ForecastPeriod, ...]:
    """Weighted expected revenue of ``pipeline``'s open deals per close period.

    A deal closes on ``fields["expected_close"]`` (an ISO date) when it has one, else
    on its stage entry date plus the stage's mean remaining cycle (over won deals:
    close minus last entry into the stage). Periods in date order, unscheduled last.
    """
    if by not in PERIODS:
        raise ValidationError(f"forecast by must be one of {', '.join(PERIODS)}, not {by!r}")
    if not isinstance(pipeline, Pipeline):
        raise ValidationError(f"pipeline must be a Pipeline, not {type(pipeline).__name__}")
    positions, n = pipeline.positions, len(pipeline.stages)
    remaining = _RemainingCycle(pipeline)
    waiting: list[tuple[Deal, int]] = []
    for deal in checked_deals(deals, "forecast()"):
        if deal.pipeline != pipeline.name:
            continue
        if deal.stage == WON:
            remaining.add(deal)
        elif (i := positions.get(deal.stage, n)) < n:
            waiting.append((deal, i))
    return _periods(waiting, pipeline, remaining.means(), by)


def _periods(
    waiting: list[tuple[Deal, int]],
    pipeline: Pipeline,
    means: list[timedelta | None],
    by: Period,
) -> tuple[ForecastPeriod, ...]:
    groups: dict[tuple[date | None, str], dict[float, Decimal]] = {}
    counts: dict[tuple[date | None, str], int] = {}
    with localcontext(EXACT):
        for deal, i in waiting:
            day = expected_close(deal)
            mean = means[i]
            if day is None and mean is not None:
                day = _projected(deal.stage_entered_at, mean)
            key = (None, UNSCHEDULED) if day is None else period_of(day, by)[::-1]
            probability = pipeline.stages[i].probability
            if deal.probability is not None:
                probability = deal.probability
            amounts = groups.setdefault(key, {})
            amounts[probability] = amounts.get(probability, Decimal(0)) + deal.amount
            counts[key] = counts.get(key, 0) + 1
    ordered = sorted(groups, key=lambda k: (k[0] is None, k[0] or date.min))
    return tuple(
        ForecastPeriod(
            period=key[1],
            start=key[0],
            expected=weighted(sorted(groups[key].items())),
            deals=counts[key],
        )
        for key in ordered
    )
