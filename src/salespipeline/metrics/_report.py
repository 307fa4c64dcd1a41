"""Report values and the one finishing step both report paths share (private).

The pure path (``metrics.report``) and the SQL path (``DealStore.report``) both fold
their ``Facts`` (``_facts.fold``) into one ``Aggregates``: integer counts, exact
``Decimal`` sums and integer microseconds. ``finish`` turns them into a
``PipelineReport``; every ratio is taken here, once, so both paths give equal reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction
from typing import Any, Final

import attrs

from salespipeline._checks import FrozenMap
from salespipeline.errors import ValidationError
from salespipeline.metrics._encode import report_dict
from salespipeline.metrics._render import human_duration, render_report
from salespipeline.metrics._time import micros
from salespipeline.pipeline import Pipeline
from salespipeline.stages import STAGE_CATEGORIES

__all__ = [
    "CATEGORIES",
    "STALLED_SHOWN",
    "Aggregates",
    "Bottleneck",
    "Calibration",
    "CategoryFigures",
    "CurrencyFigures",
    "MoneySums",
    "PipelineReport",
    "finish",
    "money_figures",
]

STALLED_SHOWN: Final = 10
"""How many of the longest-stalled deal ids a report lists."""

CATEGORIES: Final = STAGE_CATEGORIES
"""The keys of ``by_category``, in this order: the categories an open deal can be in
(won deals are ``closed``: the report's ``won`` and ``won_value``)."""

US_PER_DAY: Final = 86_400 * 10**6
RESULT: Final = Context(prec=34, rounding=ROUND_HALF_EVEN)
"""Means and Decimal ratios are rounded once, to 34 significant digits (any amount has
at most 30: 18 before the point, 12 after), in this context."""
EXACT: Final = Context(prec=96, rounding=ROUND_HALF_EVEN)
"""Sums of amounts (< 10**18, at most 12 places) are exact in this context."""


def _frozen(value: Mapping[str, object]) -> Mapping[str, object]:
    if isinstance(value, FrozenMap):
        return value
    if not isinstance(value, Mapping):
        raise ValidationError(f"a report figure by stage is a mapping, not {type(value).__name__}")
    return FrozenMap(value)


def canonical(value: Decimal) -> Decimal:
    """``value`` without trailing fractional zeros (``12.50`` -> ``12.5``, ``100`` stays)."""
    if value == value.to_integral_value():
        return EXACT.quantize(value, Decimal(1))
    return EXACT.normalize(value)


def mean_duration(total_us: int, count: int) -> timedelta | None:
    """The mean of ``count`` durations summing to ``total_us``, to the microsecond."""
    return None if count == 0 else timedelta(microseconds=round(Fraction(total_us, count)))


def at_least(histogram: Sequence[int]) -> tuple[int, ...]:
    """From counts of deals whose furthest stage is i, the counts reaching i or further."""
    total, out = 0, []
    for count in reversed(histogram):
        total += count
        out.append(total)
    return tuple(reversed(out))


def ratio(part: int, whole: int) -> float | None:
    """``part / whole`` correctly rounded to a float; None when ``whole`` is zero."""
    return None if whole == 0 else part / whole


def decimal_ratio(part: Decimal, whole: Decimal) -> float | None:
    """An exact ratio of two Decimals, rounded once to a float; None when ``whole`` is 0."""
    return None if whole == 0 else float(Fraction(part) / Fraction(whole))


def to_decimal(value: Fraction) -> Decimal:
    """A Fraction rounded once to a 34-digit Decimal."""
    return canonical(RESULT.divide(Decimal(value.numerator), Decimal(value.denominator)))


def weighted(amounts: Sequence[tuple[float, Decimal]]) -> Decimal:
    """Sum of amount x probability, exact (the probability read as its shortest repr)."""
    total = sum((Fraction(repr(p)) * Fraction(a) for p, a in amounts), Fraction(0))
    return to_decimal(total) if total else Decimal(0)


def average_amount(total: Decimal, count: int) -> Decimal | None:
    return None if count == 0 else canonical(RESULT.divide(total, Decimal(count)))


def velocity(
    open_deals: int, won: int, closed: int, won_amount: Decimal, cycle_us: int
) -> Decimal | None:
    """open x (won_amount/won) x (won/closed) / (cycle_us/won in days), exactly, then rounded."""
    if won == 0 or closed == 0 or cycle_us == 0:
        return None
    return to_decimal(Fraction(won_amount) * open_deals * won * US_PER_DAY / (closed * cycle_us))


@attrs.frozen(kw_only=True)
class MoneySums:
    """The counts and exact sums behind the money figures of one currency (or of a report).

    ``open_amounts`` pairs each win probability with the open amount weighted by it.
    """

    open: int
    won: int
    lost: int
    cycle_us: int
    won_amount: Decimal
    lost_amount: Decimal
    open_amounts: tuple[tuple[float, Decimal], ...]
    categories: tuple[tuple[str, int, Decimal], ...] = ()
    """(category, open deals, their summed amount) for each category with open deals."""


@attrs.frozen(kw_only=True)
class CategoryFigures:
    """The open deals in one forecast category: how many, and their summed amount.

    ``value`` is None in a report's own ``by_category`` when its deals are in several
    currencies and no currency was asked for (``by_currency`` has each one's).
    """

    deals: int
    value: Decimal | None


@attrs.frozen(kw_only=True)
class CurrencyFigures:
    """The money figures of the deals in one currency, in that currency (never converted).

    Defined as the report's own figures (``metrics.md``), over those deals only.
    """

    open_value: Decimal
    weighted_pipeline: Decimal
    won_value: Decimal
    lost_value: Decimal
    average_deal_size: Decimal | None
    sales_velocity: Decimal | None
    win_rate_by_value: float | None
    by_category: Mapping[str, CategoryFigures] = attrs.field(
        default=FrozenMap(), converter=_frozen
    )


def exact_sum(amounts: Iterable[Decimal]) -> Decimal:
    """The exact sum of ``amounts``, without trailing fractional zeros."""
    total = Decimal(0)
    for amount in amounts:
        total = EXACT.add(total, amount)
    return canonical(total)


def money_figures(sums: MoneySums) -> CurrencyFigures:
    """Every money figure of ``sums``: the one definition a report and its currencies share."""
    won, closed = sums.won, sums.won + sums.lost
    return CurrencyFigures(
        open_value=exact_sum(amount for _, amount in sums.open_amounts),
        weighted_pipeline=weighted(sums.open_amounts),
        won_value=canonical(sums.won_amount),
        lost_value=canonical(sums.lost_amount),
        average_deal_size=average_amount(sums.won_amount, won),
        sales_velocity=velocity(sums.open, won, closed, sums.won_amount, sums.cycle_us),
        win_rate_by_value=decimal_ratio(sums.won_amount, sums.won_amount + sums.lost_amount),
        by_category=categories(sums, priced=True),
    )


def categories(sums: MoneySums, *, priced: bool) -> dict[str, CategoryFigures]:
    """Every category of ``CATEGORIES`` with its open deals in ``sums`` (zero when none);
    the values left None unless ``priced``."""
    found = {name: (count, amount) for name, count, amount in sums.categories}
    figures = {}
    for name in CATEGORIES:
        count, amount = found.get(name, (0, Decimal(0)))
        figures[name] = CategoryFigures(deals=count, value=canonical(amount) if priced else None)
    return figures


@attrs.frozen(kw_only=True)
class Aggregates:
    """Everything a report needs, as counts, exact sums and integer microseconds.

    Tuples indexed like the pipeline: ``counts`` by ``stage_names`` (open stages,
    WON, LOST); ``reached`` by open stage then WON; the rest by open stage.
    ``by_currency`` holds each currency's money sums as recorded; ``money`` the
    report's own, converted into ``currency`` when rates were given (else as given).
    """

    counts: tuple[int, ...]
    reached: tuple[int, ...]
    lost_reached: tuple[int, ...]
    stay_us: tuple[int, ...]
    stays: tuple[int, ...]
    stalled: tuple[int, ...]
    stalled_ids: tuple[str, ...]
    currencies: tuple[str, ...]
    money: MoneySums
    currency: str | None = None
    by_currency: tuple[tuple[str, MoneySums], ...] = ()


@attrs.frozen(kw_only=True)
class Bottleneck:
    """An open stage that holds deals back, with the figures that rank it.

    ``score = (1 - conversion) + time_share + stalled_share``, each part in [0, 1]:
    ``time_share`` is the stage's mean time in stage over the sum of all stages'
    means, ``stalled_share`` its stalled deals over the open deals in it.
    """

    stage: str
    score: float
    conversion: float | None
    time_in_stage: timedelta | None
    time_share: float
    deals: int
    stalled: int
    reasons: tuple[str, ...]


@attrs.frozen(kw_only=True)
class Calibration:
    """A stage's configured win probability beside the share of closed deals won.

    ``empirical`` = won / closed, over the closed deals that reached the stage
    (every won deal reached every stage); None when none did.
    """

    stage: str
    probability: float
    empirical: float | None
    closed: int
    won: int

    @property
    def gap(self) -> float | None:
        """``empirical - probability``: positive when the stage is too pessimistic."""
        return None if self.empirical is None else self.empirical - self.probability


@attrs.frozen(kw_only=True)
class PipelineReport:
    """Every pipeline figure at one instant; equal (``==``) whichever path computed it.

    Mappings are read-only and keyed by stage name in pipeline order. ``stalled_ids``
    lists at most ``STALLED_SHOWN`` ids, longest in stage first; use
    ``metrics.stalled`` for all of them. The money figures (``open_value``,
    ``weighted_pipeline``, ``won_value``, ``lost_value``, ``average_deal_size``,
    ``sales_velocity``, ``win_rate_by_value``) are in ``currency``; when the deals are
    in several currencies and no ``currency`` was asked for, they and ``currency`` are
    None, and ``by_currency`` (always filled, one entry per currency found) has them.
    """

    pipeline: str
    as_of: datetime
    deals: int
    open_deals: int
    won: int
    lost: int
    currencies: tuple[str, ...]
    currency: str | None = None
    stage_counts: Mapping[str, int] = attrs.field(converter=_frozen)
    conversion_rates: Mapping[str, float | None] = attrs.field(converter=_frozen)
    overall_conversion: float | None
    win_rate: float | None
    win_rate_by_value: float | None
    average_deal_size: Decimal | None
    cycle_length: timedelta | None
    sales_velocity: Decimal | None
    open_value: Decimal | None
    weighted_pipeline: Decimal | None
    won_value: Decimal | None = None
    lost_value: Decimal | None = None
    time_in_stage: Mapping[str, timedelta | None] = attrs.field(converter=_frozen)
    stalled: int
    stalled_by_stage: Mapping[str, int] = attrs.field(converter=_frozen)
    stalled_ids: tuple[str, ...]
    bottlenecks: tuple[Bottleneck, ...]
    calibration: tuple[Calibration, ...]
    by_currency: Mapping[str, CurrencyFigures] = attrs.field(
        default=FrozenMap(), converter=_frozen
    )
    by_category: Mapping[str, CategoryFigures] = attrs.field(
        default=FrozenMap(), converter=_frozen
    )
    """The open deals per forecast category, every one of ``CATEGORIES`` in that order:
    counts always, values in ``currency`` (None each when the money figures are None)."""

    def render(self) -> str:
        """The report as a plain-text table."""
        return render_report(self)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-compatible data keyed by field name (``json.dumps`` takes it).

        Decimals are strings, times ISO 8601 in UTC, durations ISO 8601 durations.
        """
        return report_dict(self)


def conversions(pipeline: Pipeline, reached: Sequence[int]) -> dict[str, float | None]:
    """Per open stage: the share of deals that reached it which reached the next one."""
    return {s.name: ratio(reached[i + 1], reached[i]) for i, s in enumerate(pipeline.stages)}


def stage_times(
    pipeline: Pipeline, stay_us: Sequence[int], stays: Sequence[int]
) -> dict[str, timedelta | None]:
    """Per open stage: the mean completed stay."""
    return {s.name: mean_duration(stay_us[i], stays[i]) for i, s in enumerate(pipeline.stages)}


def finish(agg: Aggregates, pipeline: Pipeline, *, as_of: datetime) -> PipelineReport:
    """The report these aggregates describe: every ratio and mean taken here."""
    n = len(pipeline.stages)
    won, lost = agg.counts[n], agg.counts[n + 1]
    total = sum(agg.counts)
    rates = conversions(pipeline, agg.reached)
    times = stage_times(pipeline, agg.stay_us, agg.stays)
    stalled = dict(zip((s.name for s in pipeline.stages), agg.stalled, strict=True))
    currency = report_currency(agg)
    mixed = currency is None and len(agg.currencies) > 1
    return PipelineReport(
        pipeline=pipeline.name,
        as_of=as_of,
        deals=total,
        open_deals=total - won - lost,
        won=won,
        lost=lost,
        currencies=agg.currencies,
        stage_counts=dict(zip(pipeline.stage_names, agg.counts, strict=True)),
        conversion_rates=rates,
        overall_conversion=ratio(won, total),
        win_rate=ratio(won, won + lost),
        cycle_length=mean_duration(agg.money.cycle_us, won),
        time_in_stage=times,
        stalled=sum(agg.stalled),
        stalled_by_stage=stalled,
        stalled_ids=agg.stalled_ids,
        bottlenecks=rank_bottlenecks(pipeline, agg, rates, times),
        calibration=calibrate(pipeline, won, agg.lost_reached),
        currency=currency,
        by_currency={code: money_figures(sums) for code, sums in agg.by_currency},
        by_category=categories(agg.money, priced=not mixed),
        **_money_fields(None if mixed else money_figures(agg.money)),
    )


def report_currency(agg: Aggregates) -> str | None:
    """The currency asked for, else the deals' one currency; None when mixed or none."""
    if agg.currency is not None:
        return agg.currency
    return agg.currencies[0] if len(agg.currencies) == 1 else None


def _money_fields(figures: CurrencyFigures | None) -> dict[str, Any]:
    """The report's money fields: those of ``figures``, or None each when there are none."""
    names = [name for name in attrs.fields_dict(CurrencyFigures) if name != "by_category"]
    return {name: None if figures is None else getattr(figures, name) for name in names}


def calibrate(
    pipeline: Pipeline, won: int, lost_reached: Sequence[int]
) -> tuple[Calibration, ...]:
    """Configured against empirical win probability, per open stage."""
    return tuple(
        Calibration(
            stage=s.name,
            probability=s.probability,
            empirical=ratio(won, won + lost_reached[i]),
            closed=won + lost_reached[i],
            won=won,
        )
        for i, s in enumerate(pipeline.stages)
    )


def rank_bottlenecks(
    pipeline: Pipeline,
    agg: Aggregates,
    rates: Mapping[str, float | None],
    times: Mapping[str, timedelta | None],
) -> tuple[Bottleneck, ...]:
    """Open stages with a positive bottleneck score, highest first, ties in stage order."""
    total_us = sum(micros(t) for t in times.values() if t is not None)
    found = []
    for i, stage in enumerate(pipeline.stages):
        conversion, mean = rates[stage.name], times[stage.name]
        time_share = 0.0 if mean is None or total_us == 0 else micros(mean) / total_us
        deals, stalled = agg.counts[i], agg.stalled[i]
        stalled_share = 0.0 if deals == 0 else stalled / deals
        loss = 0.0 if conversion is None else 1.0 - conversion
        score = loss + time_share + stalled_share
        if score > 0:
            reasons = _reasons(conversion, mean, time_share, deals, stalled)
            found.append(
                Bottleneck(
                    stage=stage.name,
                    score=score,
                    conversion=conversion,
                    time_in_stage=mean,
                    time_share=time_share,
                    deals=deals,
                    stalled=stalled,
                    reasons=reasons,
                )
            )
    return tuple(sorted(found, key=lambda b: -b.score))


def _reasons(
    conversion: float | None,
    mean: timedelta | None,
    time_share: float,
    deals: int,
    stalled: int,
) -> tuple[str, ...]:
    reasons = []
    if conversion is not None and conversion < 1:
        reasons.append(f"{_share(1 - conversion)} of the deals that reach it go no further")
    if mean is not None and time_share > 0:
        reasons.append(
            f"{_share(time_share)} of the time deals spend in stages (mean {human_duration(mean)})"
        )
    if stalled:
        noun = "deal" if deals == 1 else "deals"
        verb = "is" if stalled == 1 else "are"
        reasons.append(f"{stalled:,} of its {deals:,} open {noun} {verb} stalled")
    return tuple(reasons)


def _share(part: float) -> str:
    """A share in whole percent, never rounded to a misleading 0% or 100%."""
    if 0 < part < 0.005:
        return "under 1%"
    if 0.995 <= part < 1:
        return "over 99%"
    return f"{part:.0%}"
