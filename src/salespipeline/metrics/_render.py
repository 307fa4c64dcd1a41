"""Plain-text rendering of a ``PipelineReport`` (private; used by the CLI)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from salespipeline.metrics._report import CategoryFigures, PipelineReport

__all__ = ["human_duration", "render_report"]


def human_duration(delta: timedelta) -> str:
    """A duration in its two largest units, for example ``3d 4h`` or ``12m 5s``."""
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")]
    while len(parts) > 1 and parts[0][0] == 0:
        parts.pop(0)
    return " ".join(f"{value}{unit}" for value, unit in parts[:2])


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _money(value: Decimal | None, currency: str | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f}" if currency is None else f"{value:,.2f} {currency}"


class _Money(Protocol):
    """The money figures a report and each of its currencies share (``CurrencyFigures``)."""

    @property
    def win_rate_by_value(self) -> float | None: ...
    @property
    def average_deal_size(self) -> Decimal | None: ...
    @property
    def sales_velocity(self) -> Decimal | None: ...
    @property
    def open_value(self) -> Decimal | None: ...
    @property
    def weighted_pipeline(self) -> Decimal | None: ...
    @property
    def won_value(self) -> Decimal | None: ...
    @property
    def lost_value(self) -> Decimal | None: ...


def _money_rows(figures: _Money, currency: str | None) -> list[tuple[str, str]]:
    velocity = figures.sales_velocity
    return [
        ("win rate (value)", _percent(figures.win_rate_by_value)),
        ("average deal size", _money(figures.average_deal_size, currency)),
        ("sales velocity", "-" if velocity is None else f"{_money(velocity, currency)} / day"),
        ("open value", _money(figures.open_value, currency)),
        ("weighted pipeline", _money(figures.weighted_pipeline, currency)),
        ("won value", _money(figures.won_value, currency)),
        ("lost value", _money(figures.lost_value, currency)),
    ]


def _rows(rows: list[tuple[str, str]], indent: str = "") -> list[str]:
    return [f"{indent}{name:<{24 - len(indent)}} {value}" for name, value in rows]


def _stage_rows(report: PipelineReport) -> list[str]:
    header = f"{'stage':<24} {'deals':>8} {'stalled':>8} {'conversion':>11} {'time in stage':>14}"
    rows = [header, "-" * len(header)]
    for stage, count in report.stage_counts.items():
        if stage in report.conversion_rates:
            stay = report.time_in_stage[stage]
            rows.append(
                f"{stage:<24} {count:>8,} {report.stalled_by_stage[stage]:>8,} "
                f"{_percent(report.conversion_rates[stage]):>11} "
                f"{'-' if stay is None else human_duration(stay):>14}"
            )
        else:
            rows.append(f"{stage:<24} {count:>8,}")
    return rows


def _mixed(report: PipelineReport) -> bool:
    return report.currency is None and len(report.currencies) > 1


def _figures(report: PipelineReport) -> list[str]:
    cycle = report.cycle_length
    figures = [
        ("win rate (count)", _percent(report.win_rate)),
        ("overall conversion", _percent(report.overall_conversion)),
        ("cycle length", "-" if cycle is None else human_duration(cycle)),
    ]
    if not _mixed(report):
        figures += _money_rows(report, report.currency)
    return _rows([*figures, ("stalled deals", f"{report.stalled:,}")])


def _currency_blocks(report: PipelineReport) -> list[str]:
    """Each currency's money figures, in its own currency, when there are several."""
    if len(report.by_currency) < 2:
        return []
    lines = ["", "By currency (as recorded, never added together):"]
    for code, figures in report.by_currency.items():
        lines += [code, *_rows(_money_rows(figures, code), "  ")]
    return lines


def _category_rows(
    categories: Mapping[str, CategoryFigures], currency: str | None, indent: str = ""
) -> list[str]:
    """One line per forecast category: its open deals and, when known, their value."""
    lines = []
    for name, item in categories.items():
        noun = "deal" if item.deals == 1 else "deals"
        value = "" if item.value is None else f"  {_money(item.value, currency)}"
        lines.append(f"{indent}{name:<{24 - len(indent)}} {item.deals:>8,} {noun:<5}{value}")
    return lines


def _category_blocks(report: PipelineReport) -> list[str]:
    """The open deals per forecast category; per currency too when there are several."""
    lines = ["", "Open deals by forecast category:"]
    lines += _category_rows(report.by_category, report.currency)
    if len(report.by_currency) < 2:
        return lines
    lines.append("By forecast category, per currency:")
    for code, figures in report.by_currency.items():
        lines += [code, *_category_rows(figures.by_category, code, "  ")]
    return lines


def _header(report: PipelineReport) -> list[str]:
    currencies = ", ".join(report.currencies) or "-"
    lines = [
        f"Pipeline {report.pipeline} as of {report.as_of:%Y-%m-%d %H:%M} UTC",
        f"{report.deals:,} deals: {report.open_deals:,} open, {report.won:,} won, "
        f"{report.lost:,} lost (currencies: {currencies})",
    ]
    if _mixed(report):
        lines.append("Money is shown per currency below: pass currency= (and rates=) for totals")
    elif set(report.currencies) - {report.currency}:
        lines.append(
            f"Money in {report.currency}, the other currencies converted at the rates given"
        )
    return lines


def render_report(report: PipelineReport) -> str:
    """The report as a plain-text table: stages, headline figures, currencies, bottlenecks.

    Every amount carries its currency; deals in several currencies without a report
    currency get one block of money figures per currency instead of totals.
    """
    lines = [*_header(report), "", *_stage_rows(report), "", *_figures(report)]
    if report.stalled_ids:
        lines.append(f"{'longest stalled':<24} {', '.join(report.stalled_ids)}")
    lines += _currency_blocks(report)
    lines += _category_blocks(report)
    if report.bottlenecks:
        lines += ["", "Bottlenecks (highest score first):"]
        for rank, b in enumerate(report.bottlenecks, 1):
            lines.append(f"{rank:>2}. {b.stage} (score {b.score:.2f}): {'; '.join(b.reasons)}")
    return "\n".join(lines) + "\n"
