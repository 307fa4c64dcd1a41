"""Which currency a report is in, and the one rule that converts amounts into it (private).

``currency=C`` alone keeps only the deals in C; ``currency=C, rates=...`` keeps every
deal and converts its amount into C. A conversion is ``amount x rate``, exact (no
rounding): rates have at most ``MAX_RATE_DIGITS`` digits before the point and
``MAX_RATE_PLACES`` after, so every product and every sum of them fits the ``EXACT``
context. Converting a group's sum therefore equals summing its converted amounts, and
the SQL path (one sum per currency) agrees with the pure path (one amount per deal).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Context, Decimal
from typing import Final

import attrs

from salespipeline import limits
from salespipeline.deal import _to_currency
from salespipeline.errors import ValidationError, shown
from salespipeline.metrics._report import EXACT

__all__ = ["Money", "convert", "money"]

_ONE: Final = Decimal(1)
_PLACES: Final = Decimal(1).scaleb(-limits.MAX_RATE_PLACES)
_RATES: Final = Context(prec=limits.MAX_RATE_DIGITS + limits.MAX_RATE_PLACES + 2)


@attrs.frozen
class Money:
    """A report's currency (None: the deals' own) and the rates into it (None: no conversion)."""

    currency: str | None = None
    rates: Mapping[str, Decimal] | None = None

    @property
    def only(self) -> str | None:
        """The currency whose deals alone are reported: ``currency`` when nothing converts."""
        return self.currency if self.rates is None else None

    def rate(self, currency: str) -> Decimal | None:
        """The value of one unit of ``currency`` in the report's; None when it has no rate."""
        if self.rates is None or currency == self.currency:
            return _ONE
        return self.rates.get(currency)


def convert(amount: Decimal, rate: Decimal) -> Decimal:
    """``amount`` at ``rate``, exactly: the one conversion both report paths use."""
    return EXACT.multiply(amount, rate)


def money(currency: object, rates: object) -> Money:
    """The checked ``Money`` of a report's ``currency=`` and ``rates=`` arguments."""
    if rates is not None and currency is None:
        raise ValidationError(
            "rates need a currency to convert into: pass currency= with rates=", field="rates"
        )
    code = None if currency is None else _code(currency, "currency", "currency")
    return Money(code, None if rates is None or code is None else _rates(rates, code))


def _code(value: object, what: str, field: str) -> str:
    try:
        return _to_currency(value)
    except ValidationError as error:
        raise ValidationError(f"{what}: {error}", field=field) from None


def _rates(value: object, currency: str) -> dict[str, Decimal]:
    if not isinstance(value, Mapping):
        raise ValidationError(
            f"rates must be a mapping of currency code to Decimal, not {shown(value)}",
            field="rates",
        )
    checked: dict[str, Decimal] = {}
    for key, rate in value.items():
        code = _code(key, f"rates key {shown(key)}", "rates")
        if code in checked:
            raise ValidationError(f"rates names {code} twice ({shown(key)})", field="rates")
        checked[code] = _rate(rate, f"rates[{code!r}]")
    if checked.get(currency, _ONE) != _ONE:
        raise ValidationError(
            f"rates[{currency!r}] must be 1 (or left out): {currency} is the report's currency",
            field="rates",
        )
    return checked


def _rate(value: object, what: str) -> Decimal:
    """A positive, finite Decimal within the rate limits, from a Decimal or an int."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise ValidationError(
            f"{what} must be a Decimal or an int (no floats), not {shown(value)}", field="rates"
        )
    if isinstance(value, int):
        value = Decimal(min(value, 10**limits.MAX_RATE_DIGITS))
    if not value.is_finite() or value <= 0:
        raise ValidationError(
            f"{what} must be a positive finite number, not {value}", field="rates"
        )
    if value.adjusted() >= limits.MAX_RATE_DIGITS:
        raise ValidationError(
            f"{what} has more than {limits.MAX_RATE_DIGITS} digits before the point",
            field="rates",
        )
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    if exponent < -limits.MAX_RATE_PLACES:
        exact = value.quantize(_PLACES, context=_RATES)
        if exact != value:
            raise ValidationError(
                f"{what} has more than {limits.MAX_RATE_PLACES} decimal places", field="rates"
            )
        return exact
    return value
