"""The ``accuracy`` command: a past forecast for a window against what was won (private).

``--made-at``, ``--from`` and ``--to`` are ISO 8601 dates (00:00 UTC that day) or
aware date-times, read as ``movement`` reads them; the currency and rates are checked
as ``report`` checks them. A forecast made after the window began is allowed (a
mid-quarter forecast is one people read).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from salespipeline.cli._movement import (
    MovementOptions,
    add_money,
    add_window,
    moment,
    movement_options,
    rates_named,
)
from salespipeline.metrics import ForecastAccuracy
from salespipeline.pipeline import Pipeline
from salespipeline.storage import DealStore

__all__ = ["AccuracyOptions", "accuracy_options", "add_accuracy", "measured", "shown"]

FORMATS = ("text", "json")


def add_accuracy(commands: Any, run: Callable[[argparse.Namespace], int]) -> None:
    """The ``accuracy`` subcommand's parser, running ``run``."""
    parser = commands.add_parser(
        "accuracy", help="compare the forecast made at a date with what was won in a window"
    )
    parser.add_argument("--db", type=Path, required=True, help="SQLite file")
    parser.add_argument("--pipeline", help="only this pipeline (default: every one recorded)")
    parser.add_argument(
        "--made-at", required=True, metavar="WHEN", help="when the forecast was read"
    )
    add_window(parser, required=True)
    add_money(parser)
    parser.add_argument("--format", choices=FORMATS, default="text", help="default: text")
    parser.set_defaults(run=run)


@attrs.frozen
class AccuracyOptions:
    """The checked instant of the forecast, and the window and money it is measured in."""

    made_at: datetime
    window: MovementOptions


def accuracy_options(args: argparse.Namespace) -> AccuracyOptions:
    """``--made-at``, ``--from``, ``--to``, ``--currency`` and ``--rate``, checked before I/O."""
    return AccuracyOptions(moment(args.made_at, "--made-at"), movement_options(args))


def measured(store: DealStore, pipeline: Pipeline, options: AccuracyOptions) -> ForecastAccuracy:
    """The pipeline's forecast accuracy; a currency without a rate is named with ``--rate``."""
    w = options.window
    return rates_named(
        lambda currency, rates: store.forecast_accuracy(
            pipeline,
            made_at=options.made_at,
            start=w.start,
            end=w.end,
            currency=currency,
            rates=rates,
        ),
        w,
        f"pipeline {pipeline.name} has forecast or won deals",
    )


def shown(form: str, results: Sequence[ForecastAccuracy]) -> str:
    """The results as text blocks, or as JSON Lines (one ``to_dict()`` per line)."""
    if form == "json":
        return "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in results)
    return "\n".join(render(r) for r in results)


def render(result: ForecastAccuracy) -> str:
    """One forecast's accuracy as text; every amount carries its currency."""
    lines = [
        f"Forecast accuracy of pipeline {result.pipeline}: the forecast made at "
        f"{result.made_at:%Y-%m-%d %H:%M} UTC for "
        f"[{result.window_start:%Y-%m-%d %H:%M}, {result.window_end:%Y-%m-%d %H:%M}) UTC",
        f"{result.forecast_deals:,} deals forecast to close in it, {result.won_deals:,} won",
    ]
    if result.currency is None and result.by_currency:
        lines.append("Money per currency (pass --currency and --rate for totals):")
        for code, own in result.by_currency.items():
            lines += [code, *_money_rows(own, code, "  ")]
    else:
        lines += _money_rows(result, result.currency or "", "")
    return "\n".join(lines) + "\n"


def _money_rows(result: ForecastAccuracy, code: str, indent: str) -> list[str]:
    rows = [
        ("weighted forecast", _amount(result.weighted, code)),
        ("commit forecast", _amount(result.commit, code)),
        ("won", _amount(result.won, code)),
        ("weighted error", _error(result.weighted_error, result.weighted_error_rate, code)),
        ("commit error", _error(result.commit_error, result.commit_error_rate, code)),
    ]
    return [f"{indent}{name:<{24 - len(indent)}} {value}" for name, value in rows]


def _amount(value: Decimal | None, code: str) -> str:
    return "-" if value is None else f"{value:,.2f} {code}".rstrip()


def _error(value: Decimal | None, rate: float | None, code: str) -> str:
    share = "" if rate is None else f" ({rate:+.1%} of won)"
    return _amount(value, code) + share
