"""Pipeline metrics: pure functions over deals, with the exact definitions teams rely on.

Functions that take a ``pipeline`` ignore deals of other pipelines; the four that
take none (``win_rate``, ``average_deal_size``, ``cycle_length``,
``sales_velocity``) count every deal given. A figure that is undefined (nothing to
average, nothing closed) is ``None``, never a ``ZeroDivisionError``. Each function
makes one pass over its deals, so any iterable (a generator, ``store.find()``)
works. ``report`` never adds amounts across currencies: it reports per currency
(``by_currency``), in one (``currency=``), or converted into one (``rates=``).
Definitions and formulas: ``docs/explanation/metrics.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

from salespipeline import _checks as c
from salespipeline.deal import Deal, checked_deals
from salespipeline.errors import ValidationError
from salespipeline.followups import overdue
from salespipeline.metrics._asof import as_of_instant, as_they_stood, check_owner, of_owner
from salespipeline.metrics._disqualify import (
    DisqualificationCandidate,
    disqualification_candidates,
)
from salespipeline.metrics._facts import Outcomes
from salespipeline.metrics._forecast import ForecastPeriod, forecast
from salespipeline.metrics._money import to_money
from salespipeline.metrics._owners import OwnerFigures, owner_rows
from salespipeline.metrics._pure import aggregate
from salespipeline.metrics._render import render_report
from salespipeline.metrics._report import (
    Aggregates,
    Bottleneck,
    Calibration,
    CategoryFigures,
    CurrencyFigures,
    PipelineReport,
    average_amount,
    calibrate,
    conversions,
    decimal_ratio,
    finish,
    mean_duration,
    ratio,
    stage_times,
    velocity,
    weighted,
)
from salespipeline.pipeline import Pipeline

__all__ = [
    "Bottleneck",
    "Calibration",
    "CategoryFigures",
    "CurrencyFigures",
    "DisqualificationCandidate",
    "ForecastPeriod",
    "OwnerFigures",
    "PipelineReport",
    "average_deal_size",
    "bottlenecks",
    "by_owner",
    "calibration",
    "conversion_rates",
    "cycle_length",
    "disqualification_candidates",
    "forecast",
    "overdue",
    "render_report",
    "report",
    "sales_velocity",
    "stage_counts",
    "stalled",
    "time_in_stage",
    "weighted_pipeline",
    "win_rate",
]


def _pipeline(value: object) -> Pipeline:
    if not isinstance(value, Pipeline):
        raise ValidationError(f"pipeline must be a Pipeline, not {type(value).__name__}")
    return value


def _aggregate(
    deals: Iterable[Deal], pipeline: object, what: str, now: datetime | None = None
) -> Aggregates:
    checked = _pipeline(pipeline)
    return aggregate(checked_deals(deals, what), checked, now=now)


# -- outcomes (every deal counts) -------------------------------------------------


def win_rate(deals: Iterable[Deal], *, by: Literal["count", "value"] = "count") -> float | None:
    """won / (won + lost), by number of deals or (``by="value"``) by amount.

    None when no deal is closed, or by value when the closed amounts sum to zero.
    """
    if by not in ("count", "value"):
        raise ValidationError(f"win_rate by must be 'count' or 'value', not {by!r}")
    tally = Outcomes.of(checked_deals(deals, "win_rate()"))
    if by == "count":
        return ratio(tally.won, tally.won + tally.lost)
    return decimal_ratio(tally.won_amount, tally.won_amount + tally.lost_amount)


def average_deal_size(deals: Iterable[Deal]) -> Decimal | None:
    """The mean amount of the won deals (34 significant digits); None if none is won."""
    tally = Outcomes.of(checked_deals(deals, "average_deal_size()"))
    return average_amount(tally.won_amount, tally.won)


def cycle_length(deals: Iterable[Deal]) -> timedelta | None:
    """The mean ``closed_at - created_at`` of the won deals; None if none is won."""
    tally = Outcomes.of(checked_deals(deals, "cycle_length()"))
    return mean_duration(tally.cycle_us, tally.won)


def sales_velocity(deals: Iterable[Deal]) -> Decimal | None:
    """open deals x average deal size x win rate / cycle length in days (amount per day).

    Computed exactly from the counts and sums, rounded once; None when a factor is
    undefined or the cycle length is zero.
    """
    t = Outcomes.of(checked_deals(deals, "sales_velocity()"))
    return velocity(t.open, t.won, t.won + t.lost, t.won_amount, t.cycle_us)


# -- per pipeline -------------------------------------------------------------------


def weighted_pipeline(deals: Iterable[Deal], pipeline: Pipeline) -> Decimal:
    """Sum over open deals of amount x probability (the deal's override, else its stage's)."""
    agg = _aggregate(deals, pipeline, "weighted_pipeline()")
    return weighted(agg.money.open_amounts)


def stage_counts(deals: Iterable[Deal], pipeline: Pipeline) -> dict[str, int]:
    """Current stage -> number of deals; every stage present, WON and LOST last."""
    agg = _aggregate(deals, pipeline, "stage_counts()")
    return dict(zip(pipeline.stage_names, agg.counts, strict=True))


def conversion_rates(deals: Iterable[Deal], pipeline: Pipeline) -> dict[str, float | None]:
    """Per open stage S: of the deals that reached S, the share that reached the next stage.

    A deal reached S if its history entered S or a later open stage, or WON; after
    the last open stage comes WON. None where no deal reached S.
    """
    return conversions(pipeline, _aggregate(deals, pipeline, "conversion_rates()").reached)


def time_in_stage(deals: Iterable[Deal], pipeline: Pipeline) -> dict[str, timedelta | None]:
    """Per open stage: the mean of completed stays (entered to left, to any stage).

    A deal's current stay is not complete and does not count. None where no stay is.
    """
    agg = _aggregate(deals, pipeline, "time_in_stage()")
    return stage_times(pipeline, agg.stay_us, agg.stays)


def stalled(deals: Iterable[Deal], pipeline: Pipeline, *, now: datetime) -> list[Deal]:
    """Open deals in the stage longer than its ``rot_after`` (strictly), longest first."""
    now = c.to_utc(now, "now")
    limits = {s.name: s.rot_after for s in _pipeline(pipeline).stages}
    found = [
        deal
        for deal in checked_deals(deals, "stalled()")
        if deal.pipeline == pipeline.name
        and (limit := limits.get(deal.stage)) is not None
        and now - deal.stage_entered_at > limit
    ]
    found.sort(key=lambda deal: (deal.stage_entered_at, deal.id))
    return found


def bottlenecks(
    deals: Iterable[Deal], pipeline: Pipeline, *, now: datetime
) -> tuple[Bottleneck, ...]:
    """Open stages ranked by how much they hold deals back, highest score first.

    ``score = (1 - conversion) + time_share + stalled_share`` (see ``Bottleneck``);
    stages scoring zero are left out, ties keep pipeline order.
    """
    pipeline, now = _pipeline(pipeline), c.to_utc(now, "now")
    agg = aggregate(checked_deals(deals, "bottlenecks()"), pipeline, now=now)
    return finish(agg, pipeline, as_of=now).bottlenecks


def calibration(deals: Iterable[Deal], pipeline: Pipeline) -> tuple[Calibration, ...]:
    """Per open stage: configured probability beside won / closed among deals reaching it."""
    agg = _aggregate(deals, pipeline, "calibration()")
    return calibrate(pipeline, agg.counts[len(pipeline.stages)], agg.lost_reached)


def report(
    deals: Iterable[Deal],
    pipeline: Pipeline,
    *,
    as_of: datetime | None = None,
    owner: str | None = None,
    currency: str | None = None,
    rates: Mapping[str, Decimal | int] | None = None,
    now: datetime | None = None,
) -> PipelineReport:
    """Every figure for ``pipeline`` as it stood at ``as_of`` (default: its clock's now).

    ``deals`` must be as they were then (``log.replay(changes, until=as_of)``): deals
    opened later are left out, one changed later is a ``ValidationError``. ``owner``
    keeps that owner's deals; ``currency`` alone only the deals in it; with ``rates``
    (currency -> value of one unit in ``currency``) every deal, converted. ``now`` is
    the deprecated name of ``as_of``. Equal (``==``) to ``store.report`` with the same
    arguments over the same deals.
    """
    pipeline = _pipeline(pipeline)
    instant = as_of_instant(pipeline, as_of, now)
    mine = of_owner(check_owner(owner))
    chosen = to_money(currency, rates)
    own = (d for d in checked_deals(deals, "report()") if d.pipeline == pipeline.name)
    kept = filter(mine, as_they_stood(own, instant))
    return finish(aggregate(kept, pipeline, now=instant, money=chosen), pipeline, as_of=instant)


def by_owner(
    deals: Iterable[Deal],
    pipeline: Pipeline,
    *,
    as_of: datetime | None = None,
    currency: str | None = None,
    rates: Mapping[str, Decimal | int] | None = None,
) -> tuple[OwnerFigures, ...]:
    """One row per owner of ``pipeline``'s deals as they stood at ``as_of``: each equal
    to the figures of ``report(..., owner=that owner)``; the unowned deals last.

    ``deals``, ``as_of``, ``currency`` and ``rates`` are taken as ``report`` takes them.
    """
    pipeline = _pipeline(pipeline)
    instant = as_of_instant(pipeline, as_of, None)
    chosen = to_money(currency, rates)
    checked = checked_deals(deals, "by_owner()")
    return owner_rows(checked, pipeline, as_of=instant, money=chosen)
