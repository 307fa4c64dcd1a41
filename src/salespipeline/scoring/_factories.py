"""The rule factories: each rule with a readable default name (private).

The rules check their own fields, so a factory only chooses the name a rule's
points are reported under when the caller gives none.
"""

from __future__ import annotations

from collections.abc import Iterable

from salespipeline.errors import shown
from salespipeline.scoring import _fields as f
from salespipeline.scoring._fields import AmountBandsLike, RecencyBandsLike, Scalar
from salespipeline.scoring._rules import (
    AmountBands,
    BantCriterion,
    FieldEquals,
    FieldIn,
    FieldPresent,
    Recency,
)

__all__ = ["amount_bands", "bant", "field_equals", "field_in", "has_field", "recency"]


def bant(criterion: str, *, points: int, name: str | None = None) -> BantCriterion:
    """``points`` when the BANT ``criterion`` (budget, authority, need, timeline) is met."""
    return BantCriterion(criterion, points, _named(name, f"bant.{_text(criterion)}"))


def has_field(field: str, *, points: int, name: str | None = None) -> FieldPresent:
    """``points`` when the custom ``field`` is present and not empty."""
    return FieldPresent(field, points, _named(name, f"has {_text(field)}"))


def field_equals(
    field: str, value: Scalar, *, points: int, name: str | None = None
) -> FieldEquals:
    """``points`` when the custom ``field`` equals ``value`` (a string, number or bool)."""
    return FieldEquals(field, value, points, _named(name, f"{_text(field)} = {shown(value)}"))


def field_in(
    field: str, values: Iterable[Scalar], *, points: int, name: str | None = None
) -> FieldIn:
    """``points`` when the custom ``field`` is one of ``values``."""
    chosen = f.to_values(values)
    return FieldIn(field, chosen, points, _named(name, f"{_text(field)} in {shown(list(chosen))}"))


def amount_bands(bands: AmountBandsLike, *, name: str = "amount") -> AmountBands:
    """Points by deal size: each band is ``minimum amount -> points``; the highest reached wins.

    ``amount_bands({10_000: 10, 50_000: 20})``: below 10,000 earns 0.
    """
    return AmountBands(bands, name)


def recency(
    bands: RecencyBandsLike, *, name: str = "recency", field: str | None = None
) -> Recency:
    """Points by how recent the last activity is: each band is ``within -> points``.

    ``recency({timedelta(days=7): 20, timedelta(days=30): 10})``: older earns 0.
    ``field`` names a custom field holding the last activity as an ISO-8601 timestamp.
    """
    return Recency(bands, name, field)


def _named(name: str | None, default: str) -> str:
    return default if name is None else name


def _text(value: object) -> str:
    """A field or criterion as a default rule name shows it (the rule itself checks it)."""
    return value if isinstance(value, str) else shown(value)
