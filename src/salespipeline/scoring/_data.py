"""The rule kinds a score card's data may name, and how each is read back (private).

Rules are written by their ``spec()`` and read through the same ``Kinds`` registry
as guards, so every bad rule in a card is reported, not only the first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Final, TypeGuard

from salespipeline import _checks as c
from salespipeline._kinds import Kinds
from salespipeline.errors import ValidationError, shown
from salespipeline.scoring._rules import (
    RULE_TYPES,
    AmountBands,
    BantCriterion,
    FieldEquals,
    FieldIn,
    FieldPresent,
    Recency,
    ScoreRule,
)

__all__ = ["RULES"]


def _amount_bands(*, name: str, bands: object) -> AmountBands:
    """Bands as data are tables: ``{min = "10000", points = 10}``."""
    rows = _band_rows(bands, "min")
    return AmountBands(tuple((b["min"], b["points"]) for b in rows), name)


def _recency(*, name: str, bands: object, field: str | None = None) -> Recency:
    """Bands as data are tables: ``{within_seconds = 604800, points = 20}``."""
    rows = _band_rows(bands, "within_seconds")
    return Recency(tuple((_seconds(b["within_seconds"]), b["points"]) for b in rows), name, field)


def _seconds(value: object) -> timedelta:
    if not c.is_number(value):
        raise ValidationError(f"within_seconds must be a number, not {shown(value)}")
    try:
        return timedelta(seconds=value)
    except (OverflowError, ValueError):
        raise ValidationError(f"within_seconds {shown(value)} is out of range") from None


def _band_rows(bands: object, limit: str) -> list[Mapping[str, Any]]:
    if isinstance(bands, (str, bytes)) or not isinstance(bands, Sequence):
        raise ValidationError("bands must be a list of tables")
    for row in bands:
        if not isinstance(row, Mapping) or set(row) != {limit, "points"}:
            raise ValidationError(
                f"a band is a table with {limit!r} and 'points', not {shown(row)}"
            )
    return list(bands)


def _is_rule(value: object) -> TypeGuard[ScoreRule]:
    return isinstance(value, RULE_TYPES)


_FACTORIES: Final[dict[str, Callable[..., ScoreRule]]] = {
    "bant": BantCriterion,
    "has_field": FieldPresent,
    "field_equals": FieldEquals,
    "field_in": FieldIn,
    "amount_bands": _amount_bands,
    "recency": _recency,
}
RULES: Final[Kinds[ScoreRule]] = Kinds("rule", _is_rule, _FACTORIES)
"""The rule kinds: ``{"rule": kind, **parameters}`` to a rule and back."""
