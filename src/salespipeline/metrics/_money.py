"""Which currency a report is in, and the one rule that converts amounts into it (private).

``currency=C`` alone keeps only the deals in C; ``currency=C, rates=...`` keeps every
deal and converts its amounts into C. Both report paths sum amounts per currency
(``Purse``) and convert each currency's sums once, here (``combined``), as
``amount x rate`` with no rounding: rates have at most ``MAX_RATE_DIGITS`` digits
before the point and ``MAX_RATE_PLACES`` after, so every product and every sum of
them is exact in the ``EXACT`` context, and converting a sum equals summing the
converted amounts deal by deal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Context, Decimal
from typing import Final

import attrs

from salespipeline import limits
from salespipeline.deal import _to_currency
from salespipeline.errors import ValidationError, shown
from salespipeline.metrics._report import EXACT, MoneySums, exact_sum

__all__ = ["Money", "combined", "convert", "to_money"]

_ONE: Final = Decimal(1)
_ZERO: Final = Decimal(0)
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


def combined(blocks: Sequence[tuple[str, MoneySums]], money: Money) -> MoneySums:
    """The report's own sums: each currency's sums converted at its rate, then added.

    Without rates every rate is 1 (the sums of one currency, or of several as given).
    A currency without a rate is a ``ValidationError`` naming every such currency.
    """
    rated = [(money.rate(code), sums) for code, sums in blocks]
    unrated = [code for code, _ in blocks if money.rate(code) is None]
    if unrated:
        raise _unrated(unrated, money)
    return _total([_at(sums, rate) for rate, sums in rated if rate is not None])


def _at(sums: MoneySums, rate: Decimal) -> MoneySums:
    """``sums`` with every amount converted at ``rate``."""
    return attrs.evolve(
        sums,
        won_amount=convert(sums.won_amount, rate),
        lost_amount=convert(sums.lost_amount, rate),
        open_amounts=tuple((weight, convert(a, rate)) for weight, a in sums.open_amounts),
        categories=tuple((name, n, convert(a, rate)) for name, n, a in sums.categories),
    )


def _total(parts: Sequence[MoneySums]) -> MoneySums:
    """The sums of ``parts`` together (in one currency), amounts added exactly."""
    open_amounts: dict[float, Decimal] = {}
    for part in parts:
        for weight, amount in part.open_amounts:
            open_amounts[weight] = EXACT.add(open_amounts.get(weight, _ZERO), amount)
    categories: dict[str, tuple[int, Decimal]] = {}
    for part in parts:
        for name, count, amount in part.categories:
            before = categories.get(name, (0, _ZERO))
            categories[name] = (before[0] + count, EXACT.add(before[1], amount))
    return MoneySums(
        open=sum(p.open for p in parts),
        won=sum(p.won for p in parts),
        lost=sum(p.lost for p in parts),
        cycle_us=sum(p.cycle_us for p in parts),
        won_amount=exact_sum(p.won_amount for p in parts),
        lost_amount=exact_sum(p.lost_amount for p in parts),
        open_amounts=tuple(sorted(open_amounts.items())),
        categories=tuple((name, n, a) for name, (n, a) in sorted(categories.items())),
    )


def _unrated(currencies: Sequence[str], money: Money) -> ValidationError:
    listed = ", ".join(currencies)
    return _refused(
        f"rates has no rate for {listed}, found among the reported deals: add the value of "
        f"one unit of each in {money.currency} (for example rates={{{currencies[0]!r}: ...}})"
    )


def to_money(currency: object, rates: object) -> Money:
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


def _refused(message: str) -> ValidationError:
    return ValidationError(message, field="rates")


def _rates(value: object, currency: str) -> dict[str, Decimal]:
    if not isinstance(value, Mapping):
        raise _refused(f"rates must be a mapping of currency code to Decimal, not {shown(value)}")
    checked: dict[str, Decimal] = {}
    for key, rate in value.items():
        code = _code(key, f"rates key {shown(key)}", "rates")
        if code in checked:
            raise _refused(f"rates names {code} twice ({shown(key)})")
        checked[code] = _rate(rate, f"rates[{code!r}]")
    if checked.get(currency, _ONE) != _ONE:
        raise _refused(
            f"rates[{currency!r}] must be 1 (or left out): {currency} is the report's currency"
        )
    return checked


def _rate(value: object, what: str) -> Decimal:
    """A positive, finite Decimal within the rate limits, from a Decimal or an int."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise _refused(f"{what} must be a Decimal or an int (no floats), not {shown(value)}")
    if isinstance(value, int):
        value = Decimal(min(value, 10**limits.MAX_RATE_DIGITS))
    if not value.is_finite() or value <= 0:
        raise _refused(f"{what} must be a positive finite number, not {value}")
    if value.adjusted() >= limits.MAX_RATE_DIGITS:
        raise _refused(f"{what} has more than {limits.MAX_RATE_DIGITS} digits before the point")
    return _in_places(value, what)


def _in_places(value: Decimal, what: str) -> Decimal:
    """``value`` with at most ``MAX_RATE_PLACES`` places (trailing zeros past them dropped)."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    if exponent >= -limits.MAX_RATE_PLACES:
        return value
    exact = value.quantize(_PLACES, context=_RATES)
    if exact != value:
        raise _refused(f"{what} has more than {limits.MAX_RATE_PLACES} decimal places")
    return exact
