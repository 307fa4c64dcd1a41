"""``PipelineReport``s as one CSV table, one row per figure (private; ``render_csv``).

Long ("tidy") rows, so that a spreadsheet filters, pivots and appends reports without
reshaping: each row names its pipeline, instant, section, stage and currency, then the
figure, its value and its unit. Values are plain numbers a spreadsheet reads (shares
in [0, 1], durations in days, amounts as exact decimals) and empty when undefined.
Forecast categories sit in the ``stage`` column of the ``category`` rows (the
report's) and ``currency_category`` rows (each currency's).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from datetime import timedelta
from decimal import Context, Decimal
from typing import Final

import attrs

from salespipeline.errors import ValidationError, shown
from salespipeline.metrics._report import CategoryFigures, CurrencyFigures, PipelineReport

__all__ = ["COLUMNS", "days_text", "render_csv"]

COLUMNS: Final = ("pipeline", "as_of", "section", "stage", "currency", "figure", "value", "unit")
"""The header row, in order."""

_US_PER_DAY: Final = Decimal(86_400 * 10**6)
_DAY_PLACES: Final = Decimal("1e-11")
"""Eleven places of a day are finer than half a microsecond: the text converts back exactly."""
_DAYS: Final = Context(prec=40)
_MONEY_NAMES: Final = tuple(n for n in attrs.fields_dict(CurrencyFigures) if n != "by_category")
_MONEY_UNITS: Final = {"win_rate_by_value": "share", "sales_velocity": "money/day"}


def render_csv(*reports: PipelineReport) -> str:
    """The reports as one CSV table (``COLUMNS``, one row per figure), ``\\r\\n`` lines.

    Several reports share the table, told apart by their ``pipeline`` and ``as_of``.
    """
    checked = [_report(r, number) for number, r in enumerate(reports, 1)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for report in checked:
        head = (report.pipeline, report.as_of.isoformat())
        writer.writerows((*head, *row) for row in _rows(report))
    return buffer.getvalue()


def _report(value: object, number: int) -> PipelineReport:
    if not isinstance(value, PipelineReport):
        raise ValidationError(
            f"render_csv() takes PipelineReports; report {number} is {shown(value)}",
            field="reports",
        )
    return value


def _rows(report: PipelineReport) -> Iterator[tuple[str, ...]]:
    yield from _headline(report)
    yield from _stages(report)
    yield from _categories("category", report.currency or "", report.by_category)
    for code, figures in report.by_currency.items():
        yield from _money("currency", code, figures)
    for code, figures in report.by_currency.items():
        yield from _categories("currency_category", code, figures.by_category)


def _categories(
    section: str, currency: str, figures: Mapping[str, CategoryFigures]
) -> Iterator[tuple[str, ...]]:
    for category, item in figures.items():
        yield _row(section, category, currency, "deals", item.deals, "deals")
        yield _row(section, category, currency, "value", item.value, "money")


def _headline(report: PipelineReport) -> Iterator[tuple[str, ...]]:
    for name in ("deals", "open_deals", "won", "lost", "stalled"):
        yield _row("pipeline", "", "", name, getattr(report, name), "deals")
    for name in ("win_rate", "overall_conversion"):
        yield _row("pipeline", "", "", name, getattr(report, name), "share")
    yield _row("pipeline", "", "", "cycle_length", report.cycle_length, "days")
    yield from _money("pipeline", report.currency or "", report)


def _money(
    section: str, currency: str, figures: PipelineReport | CurrencyFigures
) -> Iterator[tuple[str, ...]]:
    for name in _MONEY_NAMES:
        unit = _MONEY_UNITS.get(name, "money")
        yield _row(section, "", currency, name, getattr(figures, name), unit)


def _stages(report: PipelineReport) -> Iterator[tuple[str, ...]]:
    calibration = {c.stage: c for c in report.calibration}
    for stage, count in report.stage_counts.items():
        yield _row("stage", stage, "", "deals", count, "deals")
        if stage not in report.conversion_rates:
            continue
        yield _row("stage", stage, "", "conversion", report.conversion_rates[stage], "share")
        yield _row("stage", stage, "", "time_in_stage", report.time_in_stage[stage], "days")
        yield _row("stage", stage, "", "stalled", report.stalled_by_stage[stage], "deals")
        yield _row("stage", stage, "", "probability", calibration[stage].probability, "share")
        yield _row("stage", stage, "", "empirical_win_rate", calibration[stage].empirical, "share")


def _row(
    section: str, stage: str, currency: str, figure: str, value: object, unit: str
) -> tuple[str, ...]:
    return (section, stage, currency, figure, _text(value), unit)


def _text(value: object) -> str:
    """A figure as a spreadsheet reads it; empty when it is undefined (None)."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, timedelta):
        return days_text(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def days_text(value: timedelta) -> str:
    """A duration in days, to eleven places without trailing zeros (``6.5``, ``45``).

    ``round(Decimal(text) * 86_400_000_000)`` gives back its microseconds exactly.
    """
    us = Decimal((value.days * 86_400 + value.seconds) * 10**6 + value.microseconds)
    days = _DAYS.divide(us, _US_PER_DAY).quantize(_DAY_PLACES, context=_DAYS)
    return f"{_DAYS.normalize(days):f}" if days else "0"
