"""How good a past forecast was: ``ForecastAccuracy`` and ``forecast_accuracy``.

The forecast is rebuilt from the change log as it stood at ``made_at`` (``log.replay``),
and set against what was won in the window. Money follows the report's rule: never
added across currencies without a rate.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Final

import attrs

from salespipeline import _checks as c
from salespipeline.deal import Deal
from salespipeline.errors import ValidationError
from salespipeline.log import Change, replay
from salespipeline.metrics._encode import encoded
from salespipeline.metrics._money import Money, convert, to_money
from salespipeline.metrics._movement import to_window
from salespipeline.metrics._report import EXACT, canonical, decimal_ratio, weighted
from salespipeline.metrics._waterfall import Window
from salespipeline.pipeline import Pipeline
from salespipeline.stages import WON

__all__ = ["ForecastAccuracy", "forecast_accuracy"]

_TICK: Final = timedelta(microseconds=1)
_EARLIEST: Final = datetime.min.replace(tzinfo=timezone.utc)
_ZERO: Final = Decimal(0)


def _frozen(value: Mapping[str, ForecastAccuracy]) -> Mapping[str, ForecastAccuracy]:
    return value if isinstance(value, c.FrozenMap) else c.FrozenMap(value)


@attrs.frozen(kw_only=True)
class ForecastAccuracy:
    """A forecast made at ``made_at`` for ``[window_start, window_end)``, and what came.

    ``weighted`` is Σ amount x probability and ``commit`` Σ amount of the ``commit``
    category, over the deals open at ``made_at`` whose close date fell in the window;
    ``won`` is Σ amount of the deals won in the window. Each error is forecast − won
    (positive: the forecast was too high), each error rate that error / won (None
    when nothing was won). Money is in ``currency``; with mixed currencies and none
    asked for it is None and ``by_currency`` has each currency's own.
    """

    pipeline: str
    made_at: datetime
    window_start: datetime
    window_end: datetime
    currency: str | None
    forecast_deals: int
    won_deals: int
    weighted: Decimal | None
    commit: Decimal | None
    won: Decimal | None
    weighted_error: Decimal | None
    commit_error: Decimal | None
    weighted_error_rate: float | None
    commit_error_rate: float | None
    by_currency: Mapping[str, ForecastAccuracy] = attrs.field(
        default=c.FrozenMap(), converter=_frozen
    )

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible data: Decimals as strings, instants ISO 8601."""
        data: dict[str, Any] = encoded(self)
        return data


@attrs.define
class _Sums:
    """One currency's (or the converted) forecast and outcome, exact."""

    forecast_deals: int = 0
    won_deals: int = 0
    weights: list[tuple[float, Decimal]] = attrs.field(factory=list)
    commit: Decimal = _ZERO
    won: Decimal = _ZERO


def forecast_accuracy(
    changes: Iterable[Change],
    pipeline: Pipeline,
    *,
    made_at: datetime,
    start: datetime,
    end: datetime,
    currency: str | None = None,
    rates: Mapping[str, Decimal | int] | None = None,
) -> ForecastAccuracy:
    """The forecast for ``[start, end)`` as it stood at ``made_at``, against what was won.

    Forecast deals: open in ``pipeline`` at ``made_at`` with a ``close_date`` whose day
    begins (00:00 UTC) in the window. Won: the pipeline's deals whose ``closed_at`` is
    in the window, won as the log stands just before ``end``. Definitions:
    ``docs/explanation/metrics.md``.
    """
    if not isinstance(pipeline, Pipeline):
        raise ValidationError(
            f"pipeline must be a Pipeline, not {type(pipeline).__name__}", field="pipeline"
        )
    made, window, money = (
        c.to_utc(made_at, "made_at"),
        to_window(start, end),
        to_money(currency, rates),
    )
    log = list(changes)
    sums: dict[str, _Sums] = {}
    for deal in replay(log, until=made).values():
        if _forecast(deal, pipeline, window):
            _add_forecast(sums.setdefault(deal.currency, _Sums()), deal, pipeline)
    ended = replay(log, until=window.end - _TICK) if window.end > _EARLIEST else {}
    for deal in ended.values():
        if deal.pipeline == pipeline.name and deal.stage == WON and _closed_in(deal, window):
            own = sums.setdefault(deal.currency, _Sums())
            own.won_deals, own.won = own.won_deals + 1, EXACT.add(own.won, deal.amount)
    return _result(sums, pipeline.name, made, window, money)


def _forecast(deal: Deal, pipeline: Pipeline, window: Window) -> bool:
    return deal.pipeline == pipeline.name and deal.is_open and window.holds_day(deal.close_date)


def _closed_in(deal: Deal, window: Window) -> bool:
    return deal.closed_at is not None and window.holds(deal.closed_at)


def _add_forecast(sums: _Sums, deal: Deal, pipeline: Pipeline) -> None:
    sums.forecast_deals += 1
    sums.weights.append((pipeline.probability(deal), deal.amount))
    if pipeline.forecast_category(deal) == "commit":
        sums.commit = EXACT.add(sums.commit, deal.amount)


def _result(
    sums: Mapping[str, _Sums], name: str, made: datetime, window: Window, money: Money
) -> ForecastAccuracy:
    made_of = functools.partial(_made, name=name, made=made, window=window)
    by_currency = {code: made_of(own, own, code, {}) for code, own in sorted(sums.items())}
    if money.rates is not None:
        converted = _converted(sums, money)
        return made_of(converted, converted, money.currency, by_currency)
    if money.currency is not None:
        own = sums.get(money.currency, _Sums())
        kept = {k: v for k, v in by_currency.items() if k == money.currency}
        return made_of(own, own, money.currency, kept)
    counted = _total(sums.values())
    if len(sums) == 1:
        [(code, own)] = sums.items()
        return made_of(own, counted, code, by_currency)
    return made_of(None if sums else _Sums(), counted, None, by_currency)


def _converted(sums: Mapping[str, _Sums], money: Money) -> _Sums:
    unrated = sorted(code for code in sums if money.rate(code) is None)
    if unrated:
        raise ValidationError(
            f"rates has no rate for {', '.join(unrated)}, found among the forecast and won "
            f"deals: add the value of one unit of each in {money.currency}",
            field="rates",
        )
    parts = []
    for code, own in sums.items():
        rate = money.rate(code)
        assert rate is not None
        parts.append(
            _Sums(
                own.forecast_deals,
                own.won_deals,
                [(p, convert(a, rate)) for p, a in own.weights],
                convert(own.commit, rate),
                convert(own.won, rate),
            )
        )
    return _total(parts)


def _total(parts: Iterable[_Sums]) -> _Sums:
    total = _Sums()
    for part in parts:
        total.forecast_deals += part.forecast_deals
        total.won_deals += part.won_deals
        total.weights += part.weights
        total.commit = EXACT.add(total.commit, part.commit)
        total.won = EXACT.add(total.won, part.won)
    return total


def _made(
    money: _Sums | None,
    counts: _Sums,
    currency: str | None,
    by_currency: Mapping[str, ForecastAccuracy],
    *,
    name: str,
    made: datetime,
    window: Window,
) -> ForecastAccuracy:
    figures = _figures(money)
    return ForecastAccuracy(
        pipeline=name,
        made_at=made,
        window_start=window.start,
        window_end=window.end,
        currency=currency,
        forecast_deals=counts.forecast_deals,
        won_deals=counts.won_deals,
        by_currency=by_currency,
        **figures,
    )


def _figures(money: _Sums | None) -> dict[str, Any]:
    """The money figures and error rates of ``money`` (all None when it is None: mixed)."""
    names = ("weighted", "commit", "won", "weighted_error", "commit_error")
    figures: dict[str, Any] = dict.fromkeys(names, None)
    figures |= {"weighted_error_rate": None, "commit_error_rate": None}
    if money is None:
        return figures
    won = money.won
    figures["won"] = canonical(won)
    for kind, value in (("weighted", weighted(money.weights)), ("commit", money.commit)):
        error = EXACT.subtract(value, won)
        figures[kind] = canonical(value)
        figures[f"{kind}_error"] = canonical(error)
        figures[f"{kind}_error_rate"] = decimal_ratio(error, won)
    return figures
