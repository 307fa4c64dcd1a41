"""``PipelineReport``s as one self-contained HTML page (private; ``render_html``).

The page carries everything inline (CSS in a ``<style>``, the funnel as inline SVG):
no script, no link, no image or font to fetch, so it can be mailed, attached to a
ticket or opened offline and looks the same. Every text from the report is escaped.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from decimal import Decimal
from html import escape
from typing import Final

from salespipeline.errors import ValidationError, shown
from salespipeline.metrics._funnel import render_funnel
from salespipeline.metrics._movement import Movement
from salespipeline.metrics._movement_render import render_waterfalls
from salespipeline.metrics._render import human_duration
from salespipeline.metrics._report import CurrencyFigures, PipelineReport

__all__ = ["MOVEMENT_SLOT", "render_html"]

MOVEMENT_SLOT: Final = (
    "<!-- movement: no waterfall was asked for (render_html(..., movements=...)) -->"
)
"""Where a report's waterfall stands when no movement of its pipeline was given."""

_CSS: Final = """
body{font-family:system-ui,sans-serif;color:#1f2933;max-width:980px;margin:2em auto;
padding:0 1em;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.1em}h2{font-size:1.15em;margin-top:1.6em}
.as-of{color:#52606d;margin-top:0}
.tiles{display:flex;flex-wrap:wrap;gap:.8em;padding:0;margin:1em 0}
.tiles div{border:1px solid #d9e2ec;border-radius:6px;padding:.5em .9em;min-width:9em}
.tiles dt{font-size:.8em;color:#52606d}.tiles dd{margin:0;font-size:1.25em;font-weight:600}
table{border-collapse:collapse;margin:.5em 0}
th,td{padding:.3em .8em;border-bottom:1px solid #e4e7eb;text-align:right}
th:first-child,td:first-child{text-align:left}
figure{margin:0}
figcaption,.note{color:#52606d;font-size:.9em}
section.report+section.report{border-top:2px solid #d9e2ec;margin-top:2.5em}
"""

_MONEY_ROWS: Final = (
    ("open value", "open_value"),
    ("weighted pipeline", "weighted_pipeline"),
    ("won value", "won_value"),
    ("lost value", "lost_value"),
    ("average deal size", "average_deal_size"),
    ("sales velocity (per day)", "sales_velocity"),
    ("win rate (value)", "win_rate_by_value"),
)


def render_html(
    *reports: PipelineReport, title: str | None = None, movements: Sequence[Movement] = ()
) -> str:
    """One self-contained HTML page: a section per report, funnel and money per currency.

    ``title`` defaults to the pipelines' names. A movement in ``movements`` adds its
    SVG waterfall to the section of its pipeline. No script and nothing fetched.
    """
    checked = _reports(reports)
    waterfalls = _movements(movements, checked)
    heading = (
        title
        if title is not None
        else "Pipeline report: " + ", ".join(r.pipeline for r in checked)
    )
    if not isinstance(heading, str):
        raise ValidationError(f"title must be text, not {shown(heading)}", field="title")
    body = "\n".join(_section(r, waterfalls.get(r.pipeline)) for r in checked)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(heading)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def _reports(reports: Sequence[object]) -> list[PipelineReport]:
    if not reports:
        raise ValidationError("render_html() needs at least one report", field="reports")
    for number, value in enumerate(reports, 1):
        if not isinstance(value, PipelineReport):
            raise ValidationError(
                f"render_html() takes PipelineReports; report {number} is {shown(value)}",
                field="reports",
            )
    return [r for r in reports if isinstance(r, PipelineReport)]


def _movements(movements: object, reports: Sequence[PipelineReport]) -> dict[str, Movement]:
    """Each movement by its pipeline, which must be one of the reports'."""
    if isinstance(movements, (str, bytes)) or not isinstance(movements, Sequence):
        raise ValidationError(f"movements must be a sequence of Movement, not {shown(movements)}")
    names = {r.pipeline for r in reports}
    found: dict[str, Movement] = {}
    for value in movements:
        if not isinstance(value, Movement) or value.pipeline not in names:
            raise ValidationError(
                f"movements holds {shown(value)}, not a Movement of a reported pipeline",
                field="movements",
            )
        found[value.pipeline] = value
    return found


def _waterfall(movement: Movement | None) -> str:
    if movement is None:
        return MOVEMENT_SLOT
    since, until = (
        f"{movement.window_start:%Y-%m-%d %H:%M}",
        f"{movement.window_end:%Y-%m-%d %H:%M}",
    )
    return (
        f"<h2>Movement, {escape(since)} to {escape(until)} UTC</h2>\n"
        f"<figure>{render_waterfalls(movement)}<figcaption>The open pipeline at the "
        "start, what came in (green) and went out (red), and the open pipeline at the end "
        f"(blue), by value. Slipped: {movement.slipped.count:,}; pushed out of the window: "
        f"{movement.pushed_out.count:,}.</figcaption></figure>"
    )


def _section(report: PipelineReport, movement: Movement | None = None) -> str:
    parts = [
        f'<section class="report" id="pipeline-{escape(report.pipeline)}">',
        f"<h1>{escape(report.pipeline)}</h1>",
        f'<p class="as-of">{escape(_summary(report))}</p>',
        _tiles(report),
        "<h2>Funnel</h2>",
        f"<figure>{render_funnel(report, xmlns=False)}<figcaption>Bars: the deals in each "
        "stage now. Between two bars: the share of the deals that reached the upper "
        "stage which went on to the next.</figcaption></figure>",
        "<h2>Money</h2>",
        *_money(report),
        "<h2>Forecast categories</h2>",
        _categories(report),
        "<h2>Stages</h2>",
        _stages(report),
        *_bottlenecks(report),
        *_stalled(report),
        _waterfall(movement),
        "</section>",
    ]
    return "\n".join(parts)


def _summary(report: PipelineReport) -> str:
    currencies = ", ".join(report.currencies) or "none"
    return (
        f"As of {report.as_of:%Y-%m-%d %H:%M} UTC. {report.deals:,} deals: "
        f"{report.open_deals:,} open, {report.won:,} won, {report.lost:,} lost. "
        f"Currencies: {currencies}."
    )


def _tiles(report: PipelineReport) -> str:
    tiles = [
        ("win rate (count)", _percent(report.win_rate)),
        ("overall conversion", _percent(report.overall_conversion)),
        ("cycle length", _duration(report.cycle_length)),
        ("stalled deals", f"{report.stalled:,}"),
    ]
    if report.currency is not None:
        tiles.append(("open value", _amount(report.open_value, report.currency)))
        tiles.append(("weighted pipeline", _amount(report.weighted_pipeline, report.currency)))
    items = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in tiles)
    return f'<dl class="tiles">{items}</dl>'


def _money(report: PipelineReport) -> list[str]:
    columns = list(_money_columns(report))
    if not columns:
        return ['<p class="note">No deals, so no money figures.</p>']
    head = "".join(f"<th>{escape(name)}</th>" for name, _, _ in columns)
    rows = [f"<tr><th>figure</th>{head}</tr>"]
    for label, field in _MONEY_ROWS:
        cells = "".join(
            f"<td>{escape(_figure(getattr(figures, field), code))}</td>"
            for _, code, figures in columns
        )
        rows.append(f"<tr><td>{escape(label)}</td>{cells}</tr>")
    return [_money_note(report), f'<table class="money">{"".join(rows)}</table>']


def _money_columns(
    report: PipelineReport,
) -> Iterator[tuple[str, str, PipelineReport | CurrencyFigures]]:
    """(heading, currency, figures): the report's own total, then each recorded currency."""
    converted = bool(set(report.currencies) - {report.currency})
    if report.currency is not None:
        suffix = ", every deal converted" if converted else ""
        yield f"{report.currency}{suffix}", report.currency, report
    if report.currency is None or converted:
        for code, figures in report.by_currency.items():
            yield f"{code} deals, in {code}", code, figures


def _categories(report: PipelineReport) -> str:
    """The open deals per forecast category: deals and value in each money column."""
    columns = list(_money_columns(report))
    head = "".join(f"<th>{escape(name)}</th>" for name, _, _ in columns)
    rows = [f"<tr><th>category</th><th>open deals</th>{head}</tr>"]
    for name, item in report.by_category.items():
        cells = "".join(
            f"<td>{escape(_amount(figures.by_category[name].value, code))}</td>"
            for _, code, figures in columns
        )
        rows.append(f"<tr><td>{escape(name)}</td><td>{item.deals:,}</td>{cells}</tr>")
    return f'<table class="categories">{"".join(rows)}</table>'


def _money_note(report: PipelineReport) -> str:
    if report.currency is None and len(report.currencies) > 1:
        text = (
            "The deals are in several currencies: each column is in its own currency, "
            "and amounts are never added across currencies."
        )
    elif set(report.currencies) - {report.currency}:
        text = f"The first column converts every deal into {report.currency} at the rates given."
    else:
        text = f"Every deal is in {report.currency}."
    return f'<p class="note">{escape(text)}</p>'


def _stages(report: PipelineReport) -> str:
    rows = [
        "<tr><th>stage</th><th>deals</th><th>stalled</th><th>conversion</th>"
        "<th>time in stage</th></tr>"
    ]
    for stage, count in report.stage_counts.items():
        if stage in report.conversion_rates:
            cells = [
                f"{count:,}",
                f"{report.stalled_by_stage[stage]:,}",
                _percent(report.conversion_rates[stage]),
                _duration(report.time_in_stage[stage]),
            ]
        else:
            cells = [f"{count:,}", "", "", ""]
        row = "".join(f"<td>{escape(cell)}</td>" for cell in cells)
        rows.append(f"<tr><td>{escape(stage)}</td>{row}</tr>")
    return f'<table class="stages">{"".join(rows)}</table>'


def _bottlenecks(report: PipelineReport) -> list[str]:
    if not report.bottlenecks:
        return []
    items = "".join(
        f"<li><strong>{escape(b.stage)}</strong> (score {b.score:.2f}): "
        f"{escape('; '.join(b.reasons))}</li>"
        for b in report.bottlenecks
    )
    return ["<h2>Bottlenecks</h2>", f"<ol>{items}</ol>"]


def _stalled(report: PipelineReport) -> list[str]:
    if not report.stalled_ids:
        return []
    return [f'<p class="note">Longest stalled: {escape(", ".join(report.stalled_ids))}</p>']


def _figure(value: Decimal | float | None, currency: str) -> str:
    if isinstance(value, float):
        return _percent(value)
    return _amount(value, currency)


def _amount(value: Decimal | None, currency: str) -> str:
    return "-" if value is None else f"{value:,.2f} {currency}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _duration(value: timedelta | None) -> str:
    return "-" if value is None else human_duration(value)
