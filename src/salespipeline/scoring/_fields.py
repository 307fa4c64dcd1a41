"""The checks and converters on scoring rules' fields (private).

Each rule validates its own fields on construction with these, so a rule made
directly, by a factory or from data is refused in one place, as a ``ValidationError``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any, Final, TypeVar

import attrs

from salespipeline import _checks as c
from salespipeline.deal import BANT_CRITERIA
from salespipeline.errors import ValidationError, shown

Scalar = str | int | float | bool
AmountLimit = Decimal | int | str
AmountBandsLike = Mapping[AmountLimit, int] | Sequence[tuple[AmountLimit, int]]
RecencyBandsLike = Mapping[timedelta, int] | Sequence[tuple[timedelta, int]]
MAX_POINTS: Final = 1_000_000
_Limit = TypeVar("_Limit", Decimal, timedelta)


def check_points(value: object, what: str, *, minimum: int = 1) -> int:
    """An integer (not a bool) from ``minimum`` to ``MAX_POINTS``."""
    if not c.is_int(value) or not minimum <= value <= MAX_POINTS:
        message = f"{what} must be an integer from {minimum} to {MAX_POINTS:,}, not {shown(value)}"
        raise ValidationError(message)
    return value


def check_scalar(value: object, what: str) -> Scalar:
    """A value TOML and JSON both keep exactly: text, a finite float, a 64-bit int, a bool."""
    if isinstance(value, str):
        return c.check_text(value, what)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(f"{what} must be a finite number, not {value!r}")
    if c.is_int(value) and not -(2**63) <= value < 2**63:
        raise ValidationError(f"{what} does not fit in 64 bits")
    if not isinstance(value, (int, float, bool)):
        raise ValidationError(f"{what} must be a string, number or boolean, not {shown(value)}")
    return value


# -- attrs validators -----------------------------------------------------------------


def points(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    check_points(value, attribute.name)


def rule_name(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"a rule name must be a non-blank string, not {shown(value)}")
    c.check_text(value, "rule name", max_length=c.MAX_ID_LENGTH)


def field_name(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"a field name must be a non-blank string, not {shown(value)}")
    c.check_text(value, "field name", max_length=c.MAX_ID_LENGTH)


def criterion(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or value not in BANT_CRITERIA:
        raise ValidationError(
            f"unknown BANT criterion {shown(value)}; use one of {list(BANT_CRITERIA)}"
        )


def scalar(instance: Any, attribute: attrs.Attribute[Scalar], value: object) -> None:
    check_scalar(value, f"the value for field {instance.field!r}")


def scalars(instance: Any, attribute: attrs.Attribute[tuple[Scalar, ...]], value: Any) -> None:
    if not value:
        raise ValidationError(f"field_in({instance.field!r}) needs at least one value")
    for item in value:
        check_scalar(item, f"a value for field {instance.field!r}")


# -- attrs converters -----------------------------------------------------------------


def to_values(value: Iterable[Scalar]) -> tuple[Scalar, ...]:
    """The listed values as a tuple; a string is one value, not a collection of them."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValidationError(f"field_in values must be a collection, not {shown(value)}")
    return tuple(value)


def to_amount_bands(value: AmountBandsLike) -> tuple[tuple[Decimal, int], ...]:
    """``minimum amount -> points`` pairs, exact amounts, in rising order."""
    pairs = [(c.to_amount(low), p) for low, p in _pairs(value, "amount")]
    return _checked_bands(pairs, "amount")


def to_recency_bands(value: RecencyBandsLike) -> tuple[tuple[timedelta, int], ...]:
    """``within -> points`` pairs, positive spans, tightest first."""
    pairs = _pairs(value, "recency")
    for within, _ in pairs:
        c.check_positive_timedelta(within, "a recency band")
    return _checked_bands(pairs, "recency")


def _pairs(bands: object, what: str) -> list[tuple[Any, Any]]:
    if isinstance(bands, Mapping):
        pairs = list(bands.items())
    elif isinstance(bands, Sequence) and not isinstance(bands, (str, bytes)):
        pairs = list(bands)
    else:
        raise ValidationError(
            f"{what} bands must be a mapping or a sequence of pairs, not {shown(bands)}"
        )
    if not pairs or not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in pairs):
        raise ValidationError(
            f"{what} bands must be a non-empty collection of (limit, points) pairs"
        )
    return pairs


def _checked_bands(pairs: list[tuple[_Limit, Any]], what: str) -> tuple[tuple[_Limit, int], ...]:
    ordered = tuple(sorted((k, check_points(p, f"{what} points", minimum=0)) for k, p in pairs))
    limits = [k for k, _ in ordered]
    if len(set(limits)) != len(limits):
        raise ValidationError(f"{what} bands name a limit twice")
    if max(p for _, p in ordered) < 1:
        raise ValidationError(f"{what} bands must award at least one point somewhere")
    return ordered
