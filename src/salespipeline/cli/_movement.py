"""The ``movement`` command, and the waterfall ``report --format html --from`` adds (private).

A window's bounds are ISO 8601 dates (00:00 UTC that day) or aware date-times; the
currency and rates are checked as ``report`` checks them (``cli._report``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, TypeVar

import attrs

from salespipeline._checks import to_utc
from salespipeline.cli._report import currency, rates
from salespipeline.errors import ValidationError
from salespipeline.metrics import Movement
from salespipeline.metrics._movement import to_window
from salespipeline.pipeline import Pipeline
from salespipeline.storage import DealStore

__all__ = ["MovementOptions", "add_movement", "html_window", "moved", "movement_options", "shown"]

FORMATS = ("text", "json")


def add_movement(commands: Any, run: Callable[[argparse.Namespace], int]) -> None:
    """The ``movement`` subcommand's parser, running ``run``."""
    parser = commands.add_parser(
        "movement", help="print what moved in a pipeline over a window (the waterfall)"
    )
    parser.add_argument("--db", type=Path, required=True, help="SQLite file")
    parser.add_argument("--pipeline", help="only this pipeline (default: every one recorded)")
    add_window(parser, required=True)
    add_money(parser)
    parser.add_argument("--format", choices=FORMATS, default="text", help="default: text")
    parser.set_defaults(run=run)


def add_money(parser: Any) -> None:
    """``--currency`` and ``--rate``: money in one currency, others converted at given rates."""
    parser.add_argument("--currency", metavar="CODE", help="money in CODE only")
    parser.add_argument(
        "--rate",
        action="append",
        default=[],
        metavar="CODE=RATE",
        help="with --currency: convert CODE at RATE, one CODE in the --currency (repeatable)",
    )


def add_window(parser: Any, *, required: bool) -> None:
    """``--from`` and ``--to``: the window ``[FROM, TO)``."""
    parser.add_argument(
        "--from", dest="start", required=required, metavar="WHEN", help="window start (included)"
    )
    parser.add_argument(
        "--to",
        dest="end",
        required=required,
        metavar="WHEN",
        help="window end (excluded); an ISO date means 00:00 UTC that day",
    )


@attrs.frozen
class MovementOptions:
    """The checked window, currency and rates of a movement."""

    start: datetime
    end: datetime
    currency: str | None
    rates: dict[str, Decimal] | None


def moment(text: str, option: str) -> datetime:
    """An ISO 8601 date (00:00 UTC) or aware date-time, as UTC; refusals name ``option``."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=timezone.utc)
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{option} {text!r} is not an ISO 8601 date or time") from None
    if value.tzinfo is None:
        raise ValidationError(f"{option} {text!r} needs a timezone, for example +00:00")
    return to_utc(value, option)


def movement_options(args: argparse.Namespace) -> MovementOptions:
    """``--from``, ``--to``, ``--currency`` and ``--rate``, checked before any I/O."""
    start, end = moment(args.start, "--from"), moment(args.end, "--to")
    try:
        to_window(start, end)
    except ValidationError:
        raise ValidationError(f"--from {args.start} is after --to {args.end}") from None
    return MovementOptions(start, end, currency(args.currency), rates(args.currency, args.rate))


def html_window(args: argparse.Namespace) -> MovementOptions | None:
    """The waterfall's window for ``report`` (None without ``--from``); html only."""
    if args.start is None and args.end is None:
        return None
    if args.format != "html":
        raise ValidationError("--from and --to add the waterfall to --format html only")
    if args.start is None or args.end is None:
        raise ValidationError("the waterfall needs both --from and --to")
    return movement_options(args)


def moved(store: DealStore, pipeline: Pipeline, options: MovementOptions) -> Movement:
    """The pipeline's movement; currencies found without a rate are named with the option."""
    return rates_named(
        lambda currency, rates: store.movement(
            pipeline, start=options.start, end=options.end, currency=currency, rates=rates
        ),
        options,
        f"pipeline {pipeline.name} has deals",
    )


class _PerCurrency(Protocol):
    @property
    def by_currency(self) -> Mapping[str, object]: ...


Result = TypeVar("Result", bound=_PerCurrency)


def rates_named(
    compute: Callable[[str | None, Mapping[str, Decimal] | None], Result],
    options: MovementOptions,
    holding: str,
) -> Result:
    """``compute(currency, rates)`` with the options' money; when a currency it found
    has no rate, the error says which ``--rate`` to add (``holding``: what has them)."""
    try:
        return compute(options.currency, options.rates)
    except ValidationError as error:
        if error.field != "rates" or options.currency is None or options.rates is None:
            raise
        found = compute(None, None).by_currency
        missing = [c for c in found if c != options.currency and c not in options.rates]
        raise ValidationError(
            f"--currency {options.currency}: {holding} in "
            f"{', '.join(missing)} without a --rate: add --rate {missing[0]}=RATE "
            f"(the value of one {missing[0]} in {options.currency}) for each"
        ) from None


def shown(form: str, movements: Sequence[Movement]) -> str:
    """The movements as text tables, or as JSON Lines (one ``to_dict()`` per line)."""
    if form == "json":
        return "".join(json.dumps(m.to_dict(), ensure_ascii=False) + "\n" for m in movements)
    return "\n".join(m.render() for m in movements)
