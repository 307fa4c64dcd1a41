"""Cells of an imported CSV file read as values: amounts, dates, times, shares, yes/no (private).

Other systems write numbers and dates as their users read them (``$1,234.50``,
``1.234,50 €``, ``05/03/2026``); ``Cells`` reads them as a mapping file's
``[parse]`` table says. Each reader takes the stripped text of a filled cell and
raises ``ValidationError`` saying what is wrong with it; nothing here does I/O.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Final

import attrs

from salespipeline.errors import ValidationError

__all__ = ["Cells"]

_GROUPING: Final = frozenset(" '\u00a0\u202f,.")
"""Characters a number may group its thousands with (the decimal mark is taken out)."""
_DIGITS: Final = re.compile(r"[0-9]+")
_YES: Final = frozenset({"true", "yes", "y", "1", "x"})
_NO: Final = frozenset({"false", "no", "n", "0"})


@attrs.frozen
class Cells:
    """How to read the cells of one file: its decimal mark, date and time formats, timezone.

    ``date_format``/``time_format`` are ``strptime`` formats (None: ISO 8601); a time
    without an offset is in ``zone``, and a date alone where a time is expected is
    its midnight there.
    """

    decimal: str = "."
    date_format: str | None = None
    time_format: str | None = None
    zone: tzinfo = timezone.utc

    def amount(self, text: str) -> Decimal:
        """An amount, currency symbols and thousands separators left out: ``$1,234.50``."""
        kept = "".join(ch for ch in text if unicodedata.category(ch) != "Sc").strip()
        sign = "-" if kept.startswith("-") else ""
        whole, mark, fraction = kept.removeprefix(sign).strip().partition(self.decimal)
        groups = re.split(f"[{re.escape(''.join(_GROUPING - {self.decimal}))}]", whole)
        grouped = len(groups) == 1 or (
            1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])
        )
        digits = "".join(groups)
        if not grouped or not _DIGITS.fullmatch(digits) or (mark and not fraction.isdigit()):
            raise ValidationError(f"{text!r} is not an amount (decimal mark {self.decimal!r})")
        try:
            return Decimal(f"{sign}{digits}.{fraction}" if mark else f"{sign}{digits}")
        except InvalidOperation:  # pragma: no cover - the text is digits by now
            raise ValidationError(f"{text!r} is not an amount") from None

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
