"""A ``PipelineReport``'s funnel as SVG: deals per stage, conversion between stages (private).

One horizontal bar per open stage, then WON; a bar's width is its deals over the
largest bar's, centred so the bars read as a funnel. LOST deals left the funnel, so
they are a line of text under it, not a bar that would dwarf the others. Between two
bars stands the conversion of the upper stage (the share of the deals that reached it
which reached the next). Colours are presentation attributes, so the SVG looks the same
inside the HTML report and as a file of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from html import escape
from typing import Final

import attrs

from salespipeline.metrics._report import PipelineReport
from salespipeline.stages import LOST, WON

__all__ = ["BAR_HEIGHT", "BAR_WIDTH", "Bar", "funnel_bars", "render_funnel"]

BAR_WIDTH: Final = 360.0
"""The width of the bar of the stage holding the most deals, in SVG units."""
BAR_HEIGHT: Final = 26.0
_GAP: Final = 24.0
_LOST_GAP: Final = 2.0
_LEFT: Final = 190.0
"""Room for the stage names, left of the bars."""
_TOP: Final = 8.0
_WIDTH: Final = _LEFT + BAR_WIDTH + 90.0
_FILLS: Final = {"open": "#3b6ea8", "won": "#2e8b57", "lost": "#b5523b"}
_FONT: Final = 'font-family="system-ui, sans-serif" font-size="13"'


@attrs.frozen(kw_only=True)
class Bar:
    """One stage of the funnel: its deals now, and its conversion to the next stage."""

    stage: str
    deals: int
    kind: str
    conversion: float | None = None
    has_next: bool = False


def funnel_bars(report: PipelineReport) -> tuple[Bar, ...]:
    """The funnel's bars, top to bottom: the open stages, then WON."""
    bars = [
        Bar(stage=stage, deals=count, kind="open", conversion=rate, has_next=True)
        for stage, count, rate in _open_stages(report)
    ]
    bars.append(Bar(stage=WON, deals=report.stage_counts.get(WON, 0), kind="won"))
    return tuple(bars)


def _open_stages(report: PipelineReport) -> Iterator[tuple[str, int, float | None]]:
    for stage, rate in report.conversion_rates.items():
        yield stage, report.stage_counts.get(stage, 0), rate


def render_funnel(report: PipelineReport, *, xmlns: bool = True) -> str:
    """The report's funnel as one ``<svg>`` element (a standalone file when ``xmlns``)."""
    bars = funnel_bars(report)
    widest = max(bar.deals for bar in bars)
    parts = [f"<title>Funnel of pipeline {escape(report.pipeline)}</title>"]
    for index, bar in enumerate(bars):
        parts += _bar(bar, _top(index), _width(bar.deals, widest))
    bottom = _top(len(bars)) + _LOST_GAP
    parts.append(_lost(report.stage_counts.get(LOST, 0), bottom))
    height = bottom + _TOP
    space = ' xmlns="http://www.w3.org/2000/svg"' if xmlns else ""
    return (
        f'<svg{space} class="funnel" role="img" width="{_WIDTH:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {_WIDTH:.0f} {height:.0f}" {_FONT}>'
        + "".join(parts)
        + "</svg>"
    )


def _top(index: int) -> float:
    return _TOP + index * (BAR_HEIGHT + _GAP)


def _lost(deals: int, y: float) -> str:
    noun = "deal" if deals == 1 else "deals"
    return (
        f'<text class="lost" data-deals="{deals}" x="{_LEFT - 10:.2f}" y="{y:.2f}" '
        f'fill="{_FILLS["lost"]}">{LOST}: {deals:,} {noun} left the funnel</text>'
    )


def _width(deals: int, widest: int) -> float:
    return 0.0 if widest == 0 else BAR_WIDTH * deals / widest


def _bar(bar: Bar, y: float, width: float) -> list[str]:
    x = _LEFT + (BAR_WIDTH - width) / 2
    middle = y + BAR_HEIGHT / 2 + 4.5
    noun = "deal" if bar.deals == 1 else "deals"
    parts = [
        f'<rect class="track" x="{_LEFT:.2f}" y="{y:.2f}" width="{BAR_WIDTH:.2f}" '
        f'height="{BAR_HEIGHT:.2f}" fill="#eef1f5"/>',
        f'<rect class="bar {bar.kind}" data-stage="{escape(bar.stage)}" '
        f'data-deals="{bar.deals}" x="{x:.2f}" y="{y:.2f}" width="{width:.2f}" '
        f'height="{BAR_HEIGHT:.2f}" fill="{_FILLS[bar.kind]}">'
        f"<title>{escape(bar.stage)}: {bar.deals:,} {noun}</title></rect>",
        f'<text class="stage" x="{_LEFT - 10:.2f}" y="{middle:.2f}" '
        f'text-anchor="end">{escape(bar.stage)}</text>',
        f'<text class="deals" x="{_LEFT + BAR_WIDTH + 10:.2f}" y="{middle:.2f}">'
        f"{bar.deals:,}</text>",
    ]
    if bar.has_next:
        parts.append(_conversion(bar, y + BAR_HEIGHT + _GAP / 2 + 4.5))
    return parts


def _conversion(bar: Bar, y: float) -> str:
    text = "no deal reached it" if bar.conversion is None else f"{bar.conversion:.1%} went on"
    return (
        f'<text class="conversion" data-stage="{escape(bar.stage)}" '
        f'x="{_LEFT + BAR_WIDTH / 2:.2f}" y="{y:.2f}" text-anchor="middle" '
        f'fill="#555" font-size="12">\u2193 {text}</text>'
    )
