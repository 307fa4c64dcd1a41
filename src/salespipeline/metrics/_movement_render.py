"""A ``Movement`` as text and as an SVG waterfall (private; ``Movement.render``, HTML report).

The SVG has one column per balance row: ``start`` and ``end`` stand on the axis, each
row between floats from the level before it to the level after it (up for inflows,
down for outflows). A bar's height is its value over the highest level reached, times
``PLOT_HEIGHT``; with mixed currencies and no currency chosen, one waterfall per
currency is drawn, since values are never added across currencies.
"""

from __future__ import annotations

from decimal import Decimal
from html import escape
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from salespipeline.metrics._movement import Flow, Movement

__all__ = ["BALANCE", "PLOT_HEIGHT", "render_movement", "render_waterfalls", "signed_rows"]

BALANCE: Final = (
    ("start", 0),
    ("created", 1),
    ("increased", 1),
    ("decreased", -1),
    ("won", -1),
    ("lost", -1),
    ("reopened", 1),
    ("migrated_out", -1),
    ("end", 0),
)
"""The rows that balance, in waterfall order, with their sign (0: a level, not a flow)."""
PLOT_HEIGHT: Final = 220.0
"""The height, in SVG units, of the highest level the waterfall reaches."""
_COLUMN: Final = 64.0
_BAR: Final = 44.0
_LEFT: Final = 16.0
_TOP: Final = 24.0
_LABELS: Final = 40.0
_FILLS: Final = {0: "#3b6ea8", 1: "#2e8b57", -1: "#b5523b"}
_FONT: Final = 'font-family="system-ui, sans-serif" font-size="12"'
_SIGNS: Final = {0: "", 1: "+ ", -1: "- "}


def _money(value: Decimal | None, currency: str | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f}" if currency is None else f"{value:,.2f} {currency}"


def render_movement(movement: Movement) -> str:
    """The movement as a plain-text table, each currency's after it when mixed."""
    lines = [_heading(movement), *_table(movement)]
    if movement.currency is None:
        for code, own in movement.by_currency.items():
            lines += ["", f"in {code}:", *_table(own)]
    return "\n".join(lines) + "\n"


def _heading(movement: Movement) -> str:
    since = f"{movement.window_start:%Y-%m-%d %H:%M}"
    until = f"{movement.window_end:%Y-%m-%d %H:%M}"
    return f"Movement of pipeline {movement.pipeline}, {since} to {until} UTC (end excluded)"


def _table(movement: Movement) -> list[str]:
    rows = [(f"{_SIGNS[sign]}{name}", getattr(movement, name)) for name, sign in BALANCE]
    rows += [("slipped", movement.slipped), ("pushed out", movement.pushed_out)]
    width = max(len(name) for name, _ in rows)
    return [
        f"  {name:<{width}}  {flow.count:>7,}  {_money(flow.value, movement.currency):>20}"
        for name, flow in rows
    ]


def signed_rows(movement: Movement) -> list[tuple[str, int, Flow]]:
    """The balance rows with their signs: (name, sign, flow)."""
    return [(name, sign, getattr(movement, name)) for name, sign in BALANCE]


def render_waterfalls(movement: Movement) -> str:
    """The movement's SVG waterfall, or one per currency when its values are mixed."""
    if movement.currency is None and movement.by_currency:
        return "\n".join(
            _svg(own, f"{movement.pipeline}, in {code}")
            for code, own in movement.by_currency.items()
        )
    return _svg(movement, movement.pipeline)


def _levels(movement: Movement) -> list[tuple[str, int, Decimal, Decimal, Decimal]]:
    """Per balance row: name, sign, value, and the level it starts and ends at."""
    level = Decimal(0)
    bars = []
    for name, sign, flow in signed_rows(movement):
        value = flow.value or Decimal(0)
        low = Decimal(0) if sign == 0 else level
        high = value if sign == 0 else level + sign * value
        bars.append((name, sign, value, low, high))
        level = high
    return bars


def _svg(movement: Movement, caption: str) -> str:
    bars = _levels(movement)
    top = max(max(low, high) for _, _, _, low, high in bars)
    floor = min(Decimal(0), *(min(low, high) for _, _, _, low, high in bars))
    width = _LEFT * 2 + _COLUMN * len(bars)
    height = _TOP + PLOT_HEIGHT + _LABELS
    parts = [f"<title>Waterfall of pipeline {escape(caption)}</title>"]
    for index, (name, sign, value, low, high) in enumerate(bars):
        parts += _column(movement, index, name, sign, value, (low, high), (floor, top))
    return (
        f'<svg class="waterfall" role="img" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" {_FONT}>' + "".join(parts) + "</svg>"
    )


def _y(level: Decimal, scale: tuple[Decimal, Decimal]) -> float:
    """The SVG y of ``level`` on a plot from ``scale``'s floor (its bottom) to its top.

    The floor is 0 unless the running level dips below it (a deal lost, reopened and
    lost again in the window counts as lost twice), so no bar runs off the plot.
    """
    floor, top = scale
    share = 0.0 if top == floor else float((level - floor) / (top - floor))
    return _TOP + PLOT_HEIGHT * (1 - share)


def _column(
    movement: Movement,
    index: int,
    name: str,
    sign: int,
    value: Decimal,
    span: tuple[Decimal, Decimal],
    scale: tuple[Decimal, Decimal],
) -> list[str]:
    x = _LEFT + index * _COLUMN + (_COLUMN - _BAR) / 2
    upper, lower = _y(max(span), scale), _y(min(span), scale)
    flow = getattr(movement, name)
    shown = _money(flow.value, movement.currency)
    middle = x + _BAR / 2
    return [
        f'<rect class="bar" data-row="{name}" data-value="{value}" data-count="{flow.count}" '
        f'x="{x:.2f}" y="{upper:.4f}" width="{_BAR:.2f}" height="{lower - upper:.4f}" '
        f'fill="{_FILLS[sign]}"><title>{escape(name)}: {flow.count:,} deals, '
        f"{escape(shown)}</title></rect>",
        f'<text class="value" x="{middle:.2f}" y="{upper - 6:.2f}" text-anchor="middle">'
        f"{_SIGNS[sign]}{flow.count:,}</text>",
        f'<text class="row" x="{middle:.2f}" y="{_TOP + PLOT_HEIGHT + 16:.2f}" '
        f'text-anchor="middle" font-size="10">{escape(name.replace("_", " "))}</text>',
    ]
