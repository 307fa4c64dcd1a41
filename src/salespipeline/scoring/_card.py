"""The score card and the score it gives a deal (private).

``Score.value`` is the points earned as a share of the card's maximum, so cards of
any total weight score on the same 0-100 scale.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from salespipeline import _checks as c
from salespipeline.deal import Deal
from salespipeline.errors import ValidationError, shown
from salespipeline.scoring._data import RULES
from salespipeline.scoring._rules import RULE_TYPES, ScoreRule

__all__ = ["Score", "ScoreCard"]


def _to_map(value: object, what: str) -> c.FrozenMap:
    if not isinstance(value, Mapping):
        raise ValidationError(f"Score {what} must be a mapping, not {type(value).__name__}")
    return c.FrozenMap(value)


def _to_parts(value: object) -> c.FrozenMap:
    return _to_map(value, "parts")


def _to_reasons(value: object) -> c.FrozenMap:
    return _to_map(value, "reasons")


@attrs.frozen
class Score:
    """A deal's score: ``value`` in 0-100, and each rule's points and reason."""

    value: float
    points: int
    max_points: int
    parts: Mapping[str, int] = attrs.field(converter=_to_parts)
    reasons: Mapping[str, str] = attrs.field(converter=_to_reasons)

    def explain(self) -> str:
        """One line per rule, ``name: +points (reason)``, after the total."""
        lines = [f"score {self.value:.1f} ({self.points} of {self.max_points} points)"]
        lines += [f"  {n}: +{p} ({self.reasons[n]})" for n, p in self.parts.items()]
        return "\n".join(lines)


def _to_rules(value: Iterable[ScoreRule]) -> tuple[ScoreRule, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValidationError(f"a ScoreCard needs a sequence of rules, not {shown(value)}")
    rules = tuple(value)
    if not rules:
        raise ValidationError("a ScoreCard needs at least one rule")
    for rule in rules:
        if not isinstance(rule, RULE_TYPES):
            message = f"{shown(rule)} is not a scoring rule (make one with scoring.bant(), ...)"
            raise ValidationError(message)
    names = [r.name for r in rules]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValidationError(f"rule names must be unique; used twice: {twice}")
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
            raise ValidationError(f"score() expects a Deal, not {type(deal).__name__}")
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
        return {"rules": [RULES.write(r) for r in self.rules]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreCard:
        """The card that ``to_dict`` wrote; one ``ValidationError`` lists every bad rule."""
        rules = data.get("rules") if isinstance(data, Mapping) else None
        if isinstance(rules, (str, bytes)) or not isinstance(rules, Sequence):
            raise ValidationError("a score card is a mapping with a list of 'rules'")
        shape = c.data_problem(data, "the score card")
        if shape is not None:
            raise ValidationError(shape)
        problems: list[str] = []
        read = RULES.read_list(rules, "rules", problems)
        if problems:
            raise ValidationError("invalid score card: " + "; ".join(problems))
        return cls(read)
