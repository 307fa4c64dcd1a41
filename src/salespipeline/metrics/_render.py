"""Plain-text rendering of a ``PipelineReport`` (private; used by the CLI)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from salespipeline.metrics._report import PipelineReport

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


def _money(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


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


def _figures(report: PipelineReport) -> list[str]:
    cycle = report.cycle_length
    velocity = report.sales_velocity
    figures = [
        ("win rate (count)", _percent(report.win_rate)),
        ("win rate (value)", _percent(report.win_rate_by_value)),
        ("overall conversion", _percent(report.overall_conversion)),
        ("average deal size", _money(report.average_deal_size)),
        ("cycle length", "-" if cycle is None else human_duration(cycle)),
        ("sales velocity", "-" if velocity is None else f"{_money(velocity)} / day"),
        ("open value", _money(report.open_value)),
        ("weighted pipeline", _money(report.weighted_pipeline)),
        ("stalled deals", f"{report.stalled:,}"),
    ]
    return [f"{name:<24} {value}" for name, value in figures]


def render_report(report: PipelineReport) -> str:
    """The report as a plain-text table: stages, headline figures, bottlenecks."""
    currencies = ", ".join(report.currencies) or "-"
    lines = [
        f"Pipeline {report.pipeline} as of {report.as_of:%Y-%m-%d %H:%M} UTC",
        f"{report.deals:,} deals: {report.open_deals:,} open, {report.won:,} won, "
        f"{report.lost:,} lost (currencies: {currencies})",
        "",
        *_stage_rows(report),
        "",
        *_figures(report),
    ]
    if report.stalled_ids:
        lines.append(f"{'longest stalled':<24} {', '.join(report.stalled_ids)}")
    if report.bottlenecks:
        lines += ["", "Bottlenecks (highest score first):"]
        for rank, b in enumerate(report.bottlenecks, 1):
            lines.append(f"{rank:>2}. {b.stage} (score {b.score:.2f}): {'; '.join(b.reasons)}")
    return "\n".join(lines) + "\n"
