"""The scoring rules: frozen values that award up to their points, and say why (private).

Each rule validates its fields on construction and describes itself as data with
``spec()``: ``{"rule": kind, **parameters}``, which ``scoring._data`` reads back.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import attrs

from salespipeline import _checks as c
from salespipeline.deal import Deal
from salespipeline.scoring import _fields as f
from salespipeline.scoring._fields import Scalar

__all__ = [
    "RULE_TYPES",
    "AmountBands",
    "Award",
    "BantCriterion",
    "FieldEquals",
    "FieldIn",
    "FieldPresent",
    "Recency",
    "ScoreRule",
]

Award = tuple[int, str]


class _AsData:
    """``to_dict()`` for every rule: its ``spec()``, the one way a rule becomes data."""

    __slots__ = ()

    def spec(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The rule as TOML/JSON-safe data, ``{"rule": kind, **parameters}``."""
        return self.spec()


@attrs.frozen
class BantCriterion(_AsData):
    """Awards ``points`` when the BANT ``criterion`` is confirmed."""

    criterion: str = attrs.field(validator=f.criterion)
    points: int = attrs.field(validator=f.points)
    name: str = attrs.field(validator=f.rule_name)

    def award(self, deal: Deal, now: datetime | None) -> Award:
        if getattr(deal.bant, self.criterion):
            return self.points, f"BANT {self.criterion} confirmed"
        return 0, f"BANT {self.criterion} not confirmed"

    def spec(self) -> dict[str, Any]:
        return {
            "rule": "bant",
            "name": self.name,
            "criterion": self.criterion,
            "points": self.points,
        }


@attrs.frozen
class FieldPresent(_AsData):
    """Awards ``points`` when the custom ``field`` is present and not empty."""

    field: str = attrs.field(validator=f.field_name)
    points: int = attrs.field(validator=f.points)
    name: str = attrs.field(validator=f.rule_name)

    def award(self, deal: Deal, now: datetime | None) -> Award:
        if c.is_empty(deal.fields.get(self.field)):
            return 0, f"field {self.field!r} is missing or empty"
        return self.points, f"field {self.field!r} is filled in"

    def spec(self) -> dict[str, Any]:
        return {"rule": "has_field", "name": self.name, "field": self.field, "points": self.points}


@attrs.frozen
class FieldEquals(_AsData):
    """Awards ``points`` when the custom ``field`` equals ``value`` (``True`` is not ``1``)."""

    field: str = attrs.field(validator=f.field_name)
    value: Scalar = attrs.field(validator=f.scalar)
    points: int = attrs.field(validator=f.points)
    name: str = attrs.field(validator=f.rule_name)

    def award(self, deal: Deal, now: datetime | None) -> Award:
        actual = deal.fields.get(self.field)
        if _same(actual, self.value):
            return self.points, f"field {self.field!r} is {self.value!r}"
        return 0, f"field {self.field!r} is {_shown(deal, self.field)}, not {self.value!r}"

    def spec(self) -> dict[str, Any]:
        return {
            "rule": "field_equals",
            "name": self.name,
            "field": self.field,
            "value": self.value,
            "points": self.points,
        }


@attrs.frozen
class FieldIn(_AsData):
    """Awards ``points`` when the custom ``field`` is one of ``values``."""

    field: str = attrs.field(validator=f.field_name)
    values: tuple[Scalar, ...] = attrs.field(converter=f.to_values, validator=f.scalars)
    points: int = attrs.field(validator=f.points)
    name: str = attrs.field(validator=f.rule_name)

    def award(self, deal: Deal, now: datetime | None) -> Award:
        actual = deal.fields.get(self.field)
        if any(_same(actual, v) for v in self.values):
            return self.points, f"field {self.field!r} is {actual!r}, one of {list(self.values)}"
        shown = _shown(deal, self.field)
        return 0, f"field {self.field!r} is {shown}, not one of {list(self.values)}"

    def spec(self) -> dict[str, Any]:
        return {
            "rule": "field_in",
            "name": self.name,
            "field": self.field,
            "values": list(self.values),
            "points": self.points,
        }


def _same(a: object, b: object) -> bool:
    """JSON equality: ``True`` is not ``1``, but ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


def _shown(deal: Deal, field: str) -> str:
    return repr(deal.fields[field]) if field in deal.fields else "missing"


@attrs.frozen
class AmountBands(_AsData):
    """Awards the points of the highest band whose minimum the deal's amount reaches.

    ``bands`` are ``(minimum, points)`` pairs (or a mapping), kept in rising order.
    """

    bands: tuple[tuple[Decimal, int], ...] = attrs.field(converter=f.to_amount_bands)
    name: str = attrs.field(validator=f.rule_name)

    @property
    def points(self) -> int:
        return max(p for _, p in self.bands)

    def award(self, deal: Deal, now: datetime | None) -> Award:
        reached = [(low, p) for low, p in self.bands if deal.amount >= low]
        if not reached:
            return 0, f"amount {deal.amount} is below the lowest band {self.bands[0][0]}"
        low, points = reached[-1]
        return points, f"amount {deal.amount} is in the band from {low}"

    def spec(self) -> dict[str, Any]:
        bands = [{"min": str(low), "points": p} for low, p in self.bands]
        return {"rule": "amount_bands", "name": self.name, "bands": bands}


@attrs.frozen
class Recency(_AsData):
    """Awards the points of the tightest band the time since the last activity fits in.

    The last activity is the later of the last stage change and, when ``field`` is
    set, the ISO-8601 timestamp in that custom field. Needs ``now``: without it the
    rule awards 0 and says so.
    """

    bands: tuple[tuple[timedelta, int], ...] = attrs.field(converter=f.to_recency_bands)
    name: str = attrs.field(validator=f.rule_name)
    field: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(f.field_name)
    )

    @property
    def points(self) -> int:
        return max(p for _, p in self.bands)

    def award(self, deal: Deal, now: datetime | None) -> Award:
        if now is None:
            return 0, "not scored: no 'now' was given"
        last, note = self._last_activity(deal)
        age = max(now - last, timedelta(0))
        for within, points in self.bands:
            if age <= within:
                return points, f"last activity {_days(age)} ago, within {_days(within)}{note}"
        return 0, f"last activity {_days(age)} ago, older than {_days(self.bands[-1][0])}{note}"

    def _last_activity(self, deal: Deal) -> tuple[datetime, str]:
        if self.field is None:
            return deal.stage_entered_at, ""
        raw = deal.fields.get(self.field)
        if raw is None:
            return deal.stage_entered_at, ""
        stamp = _parse_timestamp(raw)
        if stamp is None:
            return deal.stage_entered_at, f" (field {self.field!r} is not an aware timestamp)"
        return max(stamp, deal.stage_entered_at), ""

    def spec(self) -> dict[str, Any]:
        bands = [{"within_seconds": _whole(w.total_seconds()), "points": p} for w, p in self.bands]
        data: dict[str, Any] = {"rule": "recency", "name": self.name, "bands": bands}
        if self.field is not None:
            data["field"] = self.field
        return data


def _whole(seconds: float) -> int | float:
    return int(seconds) if seconds.is_integer() else seconds


def _parse_timestamp(raw: object) -> datetime | None:
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    return stamp if stamp.utcoffset() is not None else None


def _days(span: timedelta) -> str:
    """A readable span: whole days, else hours to one decimal."""
    if span >= timedelta(days=1) and span % timedelta(days=1) == timedelta(0):
        days = span // timedelta(days=1)
        return "1 day" if days == 1 else f"{days} days"
    return f"{span / timedelta(hours=1):.1f} hours"


ScoreRule = BantCriterion | FieldPresent | FieldEquals | FieldIn | AmountBands | Recency
RULE_TYPES: Final = (BantCriterion, FieldPresent, FieldEquals, FieldIn, AmountBands, Recency)
