"""Cells of an imported CSV file read as values: amounts, dates, times, shares, yes/no (private).

Other systems write numbers and dates as their users read them (``$1,234.50``,
``1.234,50 €``, ``05/03/2026``); ``Cells`` reads them as a mapping file's
``[parse]`` table says. Each reader takes the stripped text of a filled cell and
raises ``ValidationError`` saying what is wrong with it; nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Final

import attrs

from salespipeline.deal import _to_currency
from salespipeline.errors import ValidationError

__all__ = ["UNIT", "Cells", "Money"]

_GROUPING: Final = frozenset(" '\u00a0\u202f,.")
"""Characters a number may group its thousands with (the decimal mark is taken out)."""
_DIGITS: Final = re.compile(r"[0-9]+")
_UNIT: Final = r"[^\d\s.,'+\-]+"
"""A currency code or symbol: no digits, spaces, signs or separators."""
_SHAPE: Final = re.compile(
    rf"\s*(?P<sign>-?)\s*(?:(?P<before>{_UNIT})\s*(?P<inner>-?)\s*)?"
    rf"(?P<number>[0-9](?:[0-9\s.,']*[0-9])?)\s*(?P<after>{_UNIT})?\s*"
)
"""An amount cell: a sign, a unit before or after, the number between."""
UNIT: Final = re.compile(_UNIT)
_YES: Final = frozenset({"true", "yes", "y", "1", "x"})
_NO: Final = frozenset({"false", "no", "n", "0"})


@attrs.frozen
class Money:
    """An amount cell read: the number, and the currency the cell names (None: none)."""

    amount: Decimal
    currency: str | None


@attrs.frozen
class Cells:
    """How to read the cells of one file: its decimal mark, date and time formats, timezone.

    ``date_format``/``time_format`` are ``strptime`` formats (None: ISO 8601); a time
    without an offset is in ``zone``, and a date alone where a time is expected is
    its midnight there. ``symbols`` maps currency symbols (``$``) to ISO 4217 codes.
    """

    decimal: str = "."
    date_format: str | None = None
    time_format: str | None = None
    zone: tzinfo = timezone.utc
    symbols: Mapping[str, str] = attrs.field(factory=dict)

    def money(self, text: str) -> Money:
        """An amount and the currency the cell names, if it does: ``EUR 12,000.00``,
        ``12.000,00 €``, ``$1,200.50``, ``1200 USD`` (a symbol only through ``symbols``)."""
        shape = _SHAPE.fullmatch(text)
        if (
            shape is None
            or (shape["before"] and shape["after"])
            or (shape["sign"] and shape["inner"])
        ):
            raise ValidationError(f"{text!r} is not an amount (decimal mark {self.decimal!r})")
        amount = self._number(shape["number"], text)
        unit = shape["before"] or shape["after"]
        sign = -1 if shape["sign"] or shape["inner"] else 1
        return Money(sign * amount, None if unit is None else self._currency(unit, text))

    def _number(self, number: str, text: str) -> Decimal:
        """Digits grouped by threes (any of ``_GROUPING`` but the mark), then the fraction."""
        whole, mark, fraction = number.partition(self.decimal)
        groups = re.split(f"[{re.escape(''.join(_GROUPING - {self.decimal}))}]", whole)
        grouped = len(groups) == 1 or (
            1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])
        )
        digits = "".join(groups)
        if (
            not grouped
            or not _DIGITS.fullmatch(digits)
            or (mark and not _DIGITS.fullmatch(fraction))
        ):
            raise ValidationError(f"{text!r} is not an amount (decimal mark {self.decimal!r})")
        return Decimal(f"{digits}.{fraction}" if mark else digits)

    def _currency(self, unit: str, text: str) -> str:
        """The code ``unit`` stands for: a symbol of ``symbols``, else an ISO 4217 code."""
        mapped = self.symbols.get(unit)
        if mapped is not None:
            return mapped
        if len(unit) == 3 and unit.isascii() and unit.isalpha():
            try:
                return _to_currency(unit)
            except ValidationError as error:
                raise ValidationError(f"{text!r}: {error.message}") from None
        raise ValidationError(
            f"{text!r}: {unit!r} is neither an ISO 4217 code nor a symbol the mapping names; "
            f'add "{unit}" = "<code>" to [parse.symbols] (say "{unit}" = "USD")'
        )

    def probability(self, text: str) -> float:
        """A share: ``0.4``, or a percentage, ``40%``."""
        percent = text.endswith("%")
        number = text.removesuffix("%").strip().replace(self.decimal, ".")
        try:
            value = float(Decimal(number))
        except (InvalidOperation, ValueError):
            raise ValidationError(f"{text!r} is not a probability (0.4 or 40%)") from None
        return value / 100 if percent else value

    def flag(self, text: str) -> bool:
        """Yes or no: true/false, yes/no, y/n, 1/0, x."""
        folded = text.casefold()
        if folded in _YES or folded in _NO:
            return folded in _YES
        raise ValidationError(f"{text!r} is not yes or no (true, yes, y, 1, x or false, no, n, 0)")

    def date(self, text: str) -> date:
        """A calendar date; a time, when given one, is read as its date in the zone."""
        try:
            if self.date_format is not None:
                return datetime.strptime(text, self.date_format).date()
            return date.fromisoformat(text)
        except ValueError:
            pass
        return self.time(text, what="date").date()

    def time(self, text: str, *, what: str = "time") -> datetime:
        """An instant, in UTC: ISO 8601 or ``time_format``; a date alone is its midnight."""
        value = self._parsed(text)
        if value is None:
            shape = self.time_format or self.date_format or "ISO 8601"
            raise ValidationError(f"{text!r} is not a {what} ({shape})")
        if value.tzinfo is None:
            value = value.replace(tzinfo=self.zone)
        try:
            return value.astimezone(timezone.utc)
        except OverflowError:
            raise ValidationError(f"{text!r} is out of range in UTC") from None

    def _parsed(self, text: str) -> datetime | None:
        formats = [f for f in (self.time_format, self.date_format) if f is not None]
        for form in formats:
            try:
                return datetime.strptime(text, form)
            except ValueError:
                continue
        if formats:
            return None
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
