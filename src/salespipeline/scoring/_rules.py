"""Lead scoring: weighted rules that turn a deal into an explainable 0-100 score.

A ``ScoreCard`` is a tuple of rules; each rule is a frozen value that awards up to
its ``points`` and says why. ``Score.value`` is the points earned as a share of the
card's maximum, so cards of any total weight score on the same 0-100 scale.
Rules are plain data, so a card can be written to a definition file and read back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Final

import attrs

from salespipeline import _checks as c
from salespipeline.deal import BANT_CRITERIA, Deal
from salespipeline.errors import ValidationError
from salespipeline.guards import min_score
from salespipeline.guards import register as register_guard
from salespipeline.stages import LOST, WON

if TYPE_CHECKING:
    from salespipeline.pipeline import Pipeline

__all__ = [
    "AmountBands",
    "BantCriterion",
    "FieldEquals",
    "FieldIn",
    "FieldPresent",
    "Recency",
    "Score",
    "ScoreBand",
    "ScoreCard",
    "ScoreRule",
    "amount_bands",
    "bant",
    "conversion_by_score_band",
    "field_equals",
    "field_in",
    "has_field",
    "recency",
]

Scalar = str | int | float | bool
MAX_POINTS: Final = 1_000_000
Award = tuple[int, str]


def _fail(message: str) -> ValidationError:
    return ValidationError(f"scoring: {message}")


def _check_points(value: object, what: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_POINTS:
        raise _fail(f"{what} must be an integer from {minimum} to {MAX_POINTS:,}, not {value!r}")
    return value


def _check_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"a rule name must be a non-blank string, not {value!r}")
    return c.check_text(value, "rule name", max_length=c.MAX_ID_LENGTH)


def _check_scalar(value: object, what: str) -> Scalar:
    """A value TOML and JSON both keep exactly: text, a finite float, a 64-bit int, a bool."""
    if isinstance(value, str):
        return c.check_text(value, what)
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(f"{what} must be a finite number, not {value!r}")
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        raise _fail(f"{what} does not fit in 64 bits")
    if not isinstance(value, (int, float, bool)):
        raise _fail(f"{what} must be a string, number or boolean, not {value!r}")
    return value


def _same(a: object, b: object) -> bool:
    """JSON equality: ``True`` is not ``1``, but ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


def _shown(deal: Deal, field: str) -> str:
    return repr(deal.fields[field]) if field in deal.fields else "missing"


# -- rules -------------------------------------------------------------------------


@attrs.frozen
class BantCriterion:
    """Awards ``points`` when the BANT ``criterion`` is confirmed."""

    criterion: str
    points: int
    name: str

    def award(self, deal: Deal, now: datetime | None) -> Award:
        if getattr(deal.bant, self.criterion):
            return self.points, f"BANT {self.criterion} confirmed"
        return 0, f"BANT {self.criterion} not confirmed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": "bant",
            "name": self.name,
            "criterion": self.criterion,
            "points": self.points,
        }


@attrs.frozen
class FieldPresent:
    """Awards ``points`` when the custom ``field`` is present and not empty."""

    field: str
    points: int
    name: str

    def award(self, deal: Deal, now: datetime | None) -> Award:
        if c.is_empty(deal.fields.get(self.field)):
            return 0, f"field {self.field!r} is missing or empty"
        return self.points, f"field {self.field!r} is filled in"

    def to_dict(self) -> dict[str, Any]:
        return {"rule": "has_field", "name": self.name, "field": self.field, "points": self.points}


@attrs.frozen
class FieldEquals:
    """Awards ``points`` when the custom ``field`` equals ``value``."""

    field: str
    value: Scalar
    points: int
    name: str

    def award(self, deal: Deal, now: datetime | None) -> Award:
        actual = deal.fields.get(self.field)
        if _same(actual, self.value):
            return self.points, f"field {self.field!r} is {self.value!r}"
        return 0, f"field {self.field!r} is {_shown(deal, self.field)}, not {self.value!r}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": "field_equals",
            "name": self.name,
            "field": self.field,
            "value": self.value,
            "points": self.points,
        }


@attrs.frozen
class FieldIn:
    """Awards ``points`` when the custom ``field`` is one of ``values``."""

    field: str
    values: tuple[Scalar, ...]
    points: int
    name: str

    def award(self, deal: Deal, now: datetime | None) -> Award:
        actual = deal.fields.get(self.field)
        if any(_same(actual, v) for v in self.values):
            return self.points, f"field {self.field!r} is {actual!r}, one of {list(self.values)}"
        shown = _shown(deal, self.field)
        return 0, f"field {self.field!r} is {shown}, not one of {list(self.values)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": "field_in",
            "name": self.name,
            "field": self.field,
            "values": list(self.values),
            "points": self.points,
        }


@attrs.frozen
class AmountBands:
    """Awards the points of the highest band whose minimum the deal's amount reaches.

    ``bands`` are ``(minimum, points)`` pairs in rising order of minimum.
    """

    bands: tuple[tuple[Decimal, int], ...]
    name: str

    @property
    def points(self) -> int:
        return max(p for _, p in self.bands)

    def award(self, deal: Deal, now: datetime | None) -> Award:
        reached = [(low, p) for low, p in self.bands if deal.amount >= low]
        if not reached:
            return 0, f"amount {deal.amount} is below the lowest band {self.bands[0][0]}"
        low, points = reached[-1]
        return points, f"amount {deal.amount} is in the band from {low}"

    def to_dict(self) -> dict[str, Any]:
        bands = [{"min": str(low), "points": p} for low, p in self.bands]
        return {"rule": "amount_bands", "name": self.name, "bands": bands}


@attrs.frozen
class Recency:
    """Awards the points of the tightest band the time since the last activity fits in.

    The last activity is the later of the last stage change and, when ``field`` is
    set, the ISO-8601 timestamp in that custom field. Needs ``now``: without it the
    rule awards 0 and says so.
    """

    bands: tuple[tuple[timedelta, int], ...]
    name: str
    field: str | None = None

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

    def to_dict(self) -> dict[str, Any]:
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
_RULE_TYPES: Final = (BantCriterion, FieldPresent, FieldEquals, FieldIn, AmountBands, Recency)


# -- rule factories ----------------------------------------------------------------


def bant(criterion: str, *, points: int, name: str | None = None) -> BantCriterion:
    """``points`` when the BANT ``criterion`` (budget, authority, need, timeline) is met."""
    if criterion not in BANT_CRITERIA:
        raise _fail(f"unknown BANT criterion {criterion!r}; use one of {list(BANT_CRITERIA)}")
    label = f"bant.{criterion}" if name is None else name
    return BantCriterion(criterion, _check_points(points, "points"), _check_name(label))


def _field_name(field: object) -> str:
    if not isinstance(field, str) or not field.strip():
        raise _fail(f"a field name must be a non-blank string, not {field!r}")
    return c.check_text(field, "field name", max_length=c.MAX_ID_LENGTH)


def has_field(field: str, *, points: int, name: str | None = None) -> FieldPresent:
    """``points`` when the custom ``field`` is present and not empty."""
    field = _field_name(field)
    label = f"has {field}" if name is None else name
    return FieldPresent(field, _check_points(points, "points"), _check_name(label))


def field_equals(
    field: str, value: Scalar, *, points: int, name: str | None = None
) -> FieldEquals:
    """``points`` when the custom ``field`` equals ``value`` (a string, number or bool)."""
    field = _field_name(field)
    value = _check_scalar(value, f"the value for field {field!r}")
    label = f"{field} = {value!r}" if name is None else name
    return FieldEquals(field, value, _check_points(points, "points"), _check_name(label))


def field_in(
    field: str, values: Iterable[Scalar], *, points: int, name: str | None = None
) -> FieldIn:
    """``points`` when the custom ``field`` is one of ``values``."""
    field = _field_name(field)
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise _fail(f"field_in({field!r}): values must be a collection, not {values!r}")
    chosen = tuple(_check_scalar(v, f"a value for field {field!r}") for v in values)
    if not chosen:
        raise _fail(f"field_in({field!r}) needs at least one value")
    label = f"{field} in {list(chosen)}" if name is None else name
    return FieldIn(field, chosen, _check_points(points, "points"), _check_name(label))


def _pairs(bands: object, what: str) -> list[tuple[Any, Any]]:
    if isinstance(bands, Mapping):
        pairs = list(bands.items())
    elif isinstance(bands, Sequence) and not isinstance(bands, (str, bytes)):
        pairs = list(bands)
    else:
        raise _fail(f"{what} bands must be a mapping or a sequence of pairs, not {bands!r}")
    if not pairs or not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in pairs):
        raise _fail(f"{what} bands must be a non-empty collection of (limit, points) pairs")
    return pairs


def _checked_bands(pairs: list[tuple[Any, int]], what: str) -> tuple[tuple[Any, int], ...]:
    ordered = tuple(sorted((k, _check_points(p, f"{what} points", minimum=0)) for k, p in pairs))
    limits = [k for k, _ in ordered]
    if len(set(limits)) != len(limits):
        raise _fail(f"{what} bands name a limit twice")
    if max(p for _, p in ordered) < 1:
        raise _fail(f"{what} bands must award at least one point somewhere")
    return ordered


def amount_bands(
    bands: Mapping[Decimal | int | str, int] | Sequence[tuple[Decimal | int | str, int]],
    *,
    name: str = "amount",
) -> AmountBands:
    """Points by deal size: each band is ``minimum amount -> points``; the highest reached wins.

    ``amount_bands({10_000: 10, 50_000: 20})``: below 10,000 earns 0.
    """
    pairs = [(c.to_amount(low), p) for low, p in _pairs(bands, "amount")]
    return AmountBands(_checked_bands(pairs, "amount"), _check_name(name))


def recency(
    bands: Mapping[timedelta, int] | Sequence[tuple[timedelta, int]],
    *,
    name: str = "recency",
    field: str | None = None,
) -> Recency:
    """Points by how recent the last activity is: each band is ``within -> points``.

    ``recency({timedelta(days=7): 20, timedelta(days=30): 10})``: older earns 0.
    ``field`` names a custom field holding the last activity as an ISO-8601 timestamp.
    """
    pairs = _pairs(bands, "recency")
    for within, _ in pairs:
        c.check_positive_timedelta(within, "a recency band")
    field = None if field is None else _field_name(field)
    return Recency(_checked_bands(pairs, "recency"), _check_name(name), field)


# -- the card and its score --------------------------------------------------------


@attrs.frozen
class Score:
    """A deal's score: ``value`` in 0-100, and each rule's points and reason."""

    value: float
    points: int
    max_points: int
    parts: Mapping[str, int] = attrs.field(converter=c.FrozenMap)
    reasons: Mapping[str, str] = attrs.field(converter=c.FrozenMap)

    def explain(self) -> str:
        """One line per rule, ``name: +points (reason)``, after the total."""
        lines = [f"score {self.value:.1f} ({self.points} of {self.max_points} points)"]
        lines += [f"  {n}: +{p} ({self.reasons[n]})" for n, p in self.parts.items()]
        return "\n".join(lines)


def _to_rules(value: object) -> tuple[ScoreRule, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise _fail(f"a ScoreCard needs a sequence of rules, not {value!r}")
    rules = tuple(value)
    if not rules:
        raise _fail("a ScoreCard needs at least one rule")
    for rule in rules:
        if not isinstance(rule, _RULE_TYPES):
            raise _fail(f"{rule!r} is not a scoring rule (make one with scoring.bant(), ...)")
    names = [r.name for r in rules]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise _fail(f"rule names must be unique; used twice: {twice}")
    return rules


@attrs.frozen
class ScoreCard:
    """Weighted scoring rules; equal by value, and writable as data (``to_dict``)."""

    rules: tuple[ScoreRule, ...] = attrs.field(converter=_to_rules)

    @property
    def max_points(self) -> int:
        """The points a deal that meets every rule earns."""
        return sum(r.points for r in self.rules)

    def score(self, deal: Deal, *, now: datetime | None = None) -> Score:
        """Score ``deal``; time-based rules need ``now`` (aware) and award 0 without it."""
        if not isinstance(deal, Deal):
            raise _fail(f"score() expects a Deal, not {type(deal).__name__}")
        when = None if now is None else c.to_utc(now, "now")
        awards = {r.name: r.award(deal, when) for r in self.rules}
        earned = sum(points for points, _ in awards.values())
        return Score(
            value=100 * earned / self.max_points,
            points=earned,
            max_points=self.max_points,
            parts={n: p for n, (p, _) in awards.items()},
            reasons={n: why for n, (_, why) in awards.items()},
        )

    def to_dict(self) -> dict[str, Any]:
        """The card as TOML/JSON-safe data; ``ScoreCard.from_dict`` reads it back."""
        return {"rules": [r.to_dict() for r in self.rules]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreCard:
        """The card that ``to_dict`` wrote; bad data is a ``ValidationError``."""
        rules = data.get("rules") if isinstance(data, Mapping) else None
        if isinstance(rules, (str, bytes)) or not isinstance(rules, Sequence):
            raise _fail("a score card is a mapping with a list of 'rules'")
        return cls(tuple(_rule_from_dict(r) for r in data["rules"]))


def _rule_from_dict(data: object) -> ScoreRule:
    if not isinstance(data, Mapping):
        raise _fail(f"a rule is a mapping, not {data!r}")
    params = dict(data)
    kind = params.pop("rule", None)
    reader = _READERS.get(kind) if isinstance(kind, str) else None
    if reader is None:
        raise _fail(f"unknown rule kind {kind!r}; known: {sorted(_READERS)}")
    try:
        rule: ScoreRule = reader(**params)
    except TypeError as error:
        raise _fail(f"rule {kind!r} has bad parameters: {error}") from None
    return rule


def _read_amount_bands(*, name: str, bands: object) -> AmountBands:
    rows = _band_rows(bands, "min")
    return amount_bands([(b["min"], b["points"]) for b in rows], name=name)


def _read_recency(*, name: str, bands: object, field: str | None = None) -> Recency:
    rows = _band_rows(bands, "within_seconds")
    return recency(
        [(_seconds(b["within_seconds"]), b["points"]) for b in rows], name=name, field=field
    )


def _seconds(value: object) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(f"within_seconds must be a number, not {value!r}")
    try:
        return timedelta(seconds=value)
    except (OverflowError, ValueError):
        raise _fail(f"within_seconds {value!r} is out of range") from None


def _band_rows(bands: object, limit: str) -> list[Mapping[str, Any]]:
    if isinstance(bands, (str, bytes)) or not isinstance(bands, Sequence):
        raise _fail("bands must be a list of tables")
    for row in bands:
        if not isinstance(row, Mapping) or set(row) != {limit, "points"}:
            raise _fail(f"a band is a table with {limit!r} and 'points', not {row!r}")
    return list(bands)


_READERS: Final[dict[str, Any]] = {
    "bant": lambda *, criterion, points, name: bant(criterion, points=points, name=name),
    "has_field": lambda *, field, points, name: has_field(field, points=points, name=name),
    "field_equals": lambda *, field, value, points, name: field_equals(
        field, value, points=points, name=name
    ),
    "field_in": lambda *, field, values, points, name: field_in(
        field, values, points=points, name=name
    ),
    "amount_bands": _read_amount_bands,
    "recency": _read_recency,
}


# -- does the score predict wins? --------------------------------------------------


@attrs.frozen
class ScoreBand:
    """Closed deals whose score fell in ``[low, high)`` (the top band includes ``high``)."""

    low: float
    high: float
    won: int
    lost: int

    @property
    def closed(self) -> int:
        return self.won + self.lost

    @property
    def win_rate(self) -> float | None:
        """won / (won + lost); None when no closed deal fell in the band."""
        return self.won / self.closed if self.closed else None


def _check_edges(bands: object) -> tuple[float, ...]:
    if isinstance(bands, (str, bytes)) or not isinstance(bands, Sequence):
        raise _fail(f"bands must be a sequence of score edges, not {bands!r}")
    for edge in bands:
        if isinstance(edge, bool) or not isinstance(edge, (int, float)):
            raise _fail(f"band edges must be numbers, not {edge!r}")
    edges = tuple(float(e) for e in bands)
    rising = all(a < b for a, b in pairwise(edges))
    if len(edges) < 2 or not rising or edges[0] != 0 or edges[-1] != 100:
        raise _fail(f"bands must rise strictly from 0 to 100, got {list(bands)}")
    return edges


def conversion_by_score_band(
    deals: Iterable[Deal],
    pipeline: Pipeline,
    scorecard: ScoreCard,
    *,
    bands: Sequence[float] = (0, 25, 50, 75, 100),
) -> tuple[ScoreBand, ...]:
    """Won and lost counts of ``pipeline``'s closed deals per score band, lowest first.

    If the scoring predicts wins, the win rate rises band by band. Deals are scored as
    they are now (without ``now``, so time-based rules award nothing).
    """
    edges = _check_edges(bands)
    won = [0] * (len(edges) - 1)
    lost = [0] * (len(edges) - 1)
    for deal in deals:
        if deal.pipeline != pipeline.name or deal.stage not in (WON, LOST):
            continue
        index = _band_index(edges, scorecard.score(deal).value)
        (won if deal.stage == WON else lost)[index] += 1
    return tuple(
        ScoreBand(low=edges[i], high=edges[i + 1], won=won[i], lost=lost[i])
        for i in range(len(won))
    )


def _band_index(edges: tuple[float, ...], value: float) -> int:
    for i in range(len(edges) - 2, -1, -1):
        if value >= edges[i]:
            return i
    return 0


register_guard(
    "min_score",
    lambda scorecard, threshold: min_score(ScoreCard.from_dict(scorecard), threshold),
)
