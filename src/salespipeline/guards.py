"""Stage entry rules: a guard turns a deal into the reasons it may not enter a stage.

A guard is any callable ``guard(deal) -> tuple[Violation, ...]`` with a ``name``.
The built-in guards are frozen values: they compare equal by their parameters,
combine with ``&`` and ``|``, and describe themselves as data (``spec``) so a
pipeline definition can be written to a file and read back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Protocol, TypeGuard, runtime_checkable

import attrs

from salespipeline import _checks as c
from salespipeline import limits
from salespipeline._kinds import Kinds
from salespipeline.deal import BANT_CRITERIA, Deal
from salespipeline.errors import GuardError, ValidationError, shown

__all__ = [
    "Guard",
    "GuardFactory",
    "MinScore",
    "Scorer",
    "Violation",
    "all_of",
    "any_of",
    "bant",
    "evaluate",
    "min_amount",
    "min_score",
    "register",
    "registered",
    "requires_fields",
    "rule",
]


@attrs.frozen
class Violation:
    """One reason a deal may not enter a stage; ``field`` names what is missing."""

    rule: str
    message: str
    field: str | None = None


@runtime_checkable
class Guard(Protocol):
    """Anything callable on a deal that returns its violations, and has a name."""

    @property
    def name(self) -> str: ...

    def __call__(self, deal: Deal, /) -> tuple[Violation, ...]: ...


class _Combinable:
    """``&`` and ``|`` for the built-in guards."""

    __slots__ = ()

    def __and__(self, other: Guard) -> AllOf:
        return all_of(self, other)  # type: ignore[arg-type]

    def __or__(self, other: Guard) -> AnyOf:
        return any_of(self, other)  # type: ignore[arg-type]

    def __rand__(self, other: Guard) -> AllOf:
        return all_of(other, self)  # type: ignore[arg-type]

    def __ror__(self, other: Guard) -> AnyOf:
        return any_of(other, self)  # type: ignore[arg-type]


@attrs.frozen
class BantGuard(_Combinable):
    """Requires BANT criteria: all named ones, or at least ``min_score`` of them."""

    criteria: tuple[str, ...] = BANT_CRITERIA
    min_score: int | None = None
    name: str = "bant"

    def __call__(self, deal: Deal, /) -> tuple[Violation, ...]:
        bant = deal.bant
        missing = [k for k in self.criteria if not getattr(bant, k)]
        if not missing:
            return ()
        if self.min_score is not None and len(self.criteria) - len(missing) >= self.min_score:
            return ()
        return tuple(
            Violation("bant", f"BANT {k} is not confirmed", field=f"bant.{k}") for k in missing
        )

    def spec(self) -> dict[str, Any]:
        params: dict[str, Any] = {"criteria": list(self.criteria)}
        if self.min_score is not None:
            params["min_score"] = self.min_score
        return {"guard": "bant", **params}


def _field_names(value: object) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
        raise ValidationError("requires_fields needs at least one field name")
    for n in value:
        if not isinstance(n, str) or not n.strip():
            raise ValidationError(f"requires_fields: {shown(n)} is not a field name")
        c.check_text(n, "requires_fields: a field name", max_length=limits.MAX_FIELDS_BYTES)
    return tuple(value)


@attrs.frozen
class RequiresFields(_Combinable):
    """Requires custom fields to be present and not empty."""

    names: tuple[str, ...] = attrs.field(converter=_field_names)
    name: str = "requires_fields"

    def __call__(self, deal: Deal, /) -> tuple[Violation, ...]:
        return tuple(
            Violation("requires_fields", f"field {n!r} is required", field=f"fields.{n}")
            for n in self.names
            if c.is_empty(deal.fields.get(n))
        )

    def spec(self) -> dict[str, Any]:
        return {"guard": "requires_fields", "names": list(self.names)}


@attrs.frozen
class MinAmount(_Combinable):
    """Requires the deal's amount to be at least ``amount``."""

    amount: Decimal
    name: str = "min_amount"

    def __call__(self, deal: Deal, /) -> tuple[Violation, ...]:
        if deal.amount >= self.amount:
            return ()
        message = f"amount {deal.amount} is below the minimum {self.amount}"
        return (Violation("min_amount", message, field="amount"),)

    def spec(self) -> dict[str, Any]:
        return {"guard": "min_amount", "amount": str(self.amount)}


@attrs.frozen
class Rule(_Combinable):
    """Wraps any ``deal -> bool`` predicate; a false answer is one violation."""

    name: str
    predicate: Callable[[Deal], bool]
    message: str
    field: str | None = None

    def __call__(self, deal: Deal, /) -> tuple[Violation, ...]:
        if self.predicate(deal):
            return ()
        return (Violation(self.name, self.message, field=self.field),)


@attrs.frozen
class AllOf(_Combinable):
    """Passes when every guard passes; reports the violations of all of them."""

    guards: tuple[Guard, ...]

    @property
    def name(self) -> str:
        return "all_of(" + ", ".join(g.name for g in self.guards) + ")"

    def __call__(self, deal: Deal, /) -> tuple[Violation, ...]:
        return tuple(v for g in self.guards for v in _call(g, deal))

    def spec(self) -> dict[str, Any]:
        return {"guard": "all_of", "guards": [KINDS.write(g) for g in self.guards]}


@attrs.frozen
class AnyOf(_Combinable):
    """Passes when any guard passes; when all fail, reports every option's violations."""

    guards: tuple[Guard, ...]

    @property
    def name(self) -> str:
        return "any_of(" + ", ".join(g.name for g in self.guards) + ")"

    def __call__(self, deal: Deal, /) -> tuple[Violation, ...]:
        found: list[Violation] = []
        for guard in self.guards:
            violations = _call(guard, deal)
            if not violations:
                return ()
            found.extend(violations)
        return tuple(found)

    def spec(self) -> dict[str, Any]:
        return {"guard": "any_of", "guards": [KINDS.write(g) for g in self.guards]}


def bant(*criteria: str, min_score: int | None = None) -> BantGuard:
    """Require BANT criteria (default: all four), or at least ``min_score`` of them."""
    chosen = criteria or BANT_CRITERIA
    unknown = [k for k in chosen if k not in BANT_CRITERIA]
    if unknown:
        raise ValidationError(f"unknown BANT criteria {shown(unknown)}; use {list(BANT_CRITERIA)}")
    if len(set(chosen)) != len(chosen):
        raise ValidationError(f"BANT criteria named twice in {list(chosen)}")
    ordered = tuple(k for k in BANT_CRITERIA if k in chosen)
    if min_score is not None and (not c.is_int(min_score) or not 1 <= min_score <= len(ordered)):
        raise ValidationError(
            f"min_score must be between 1 and {len(ordered)}, not {shown(min_score)}"
        )
    return BantGuard(ordered, min_score)


def requires_fields(*names: str) -> RequiresFields:
    """Require custom fields to be present and not empty (None, blank, [] or {})."""
    return RequiresFields(names)


def min_amount(amount: Decimal | int | str) -> MinAmount:
    """Require the deal's amount to be at least ``amount``."""
    return MinAmount(c.to_amount(amount))


def rule(
    name: str, predicate: Callable[[Deal], bool], message: str, field: str | None = None
) -> Rule:
    """Wrap any ``deal -> bool`` predicate as a guard; False means one violation."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(f"rule name must be a non-blank string, not {shown(name)}")
    c.check_text(name, "rule name")
    if not callable(predicate):
        raise ValidationError(f"rule {name!r}: predicate must be callable")
    if not isinstance(message, str):
        raise ValidationError(f"rule {name!r}: message must be a string")
    c.check_text(message, f"rule {name!r}: message", max_length=limits.MAX_FIELDS_BYTES)
    return Rule(name, predicate, message, c.to_optional_text(field, f"rule {name!r}: field"))


def _check_guards(guards: tuple[object, ...]) -> tuple[Guard, ...]:
    if not guards:
        raise ValidationError("a combinator needs at least one guard")
    for g in guards:
        if not isinstance(g, Guard):
            raise ValidationError(f"{shown(g)} is not a guard (a callable with a name)")
    return guards  # type: ignore[return-value]


def all_of(*guards: Guard) -> AllOf:
    """A guard that passes when all pass, reporting every violation."""
    return AllOf(_check_guards(guards))


def any_of(*guards: Guard) -> AnyOf:
    """A guard that passes when one passes; on failure it reports every option's reasons."""
    return AnyOf(_check_guards(guards))


def _call(guard: Guard, deal: Deal) -> tuple[Violation, ...]:
    result = guard(deal)
    if type(result) is tuple and not result:
        return result
    if not isinstance(result, tuple) or not all(isinstance(v, Violation) for v in result):
        raise TypeError(f"guard {guard.name!r} returned {shown(result)}, not a tuple of Violation")
    return result


def evaluate(guards: tuple[Guard, ...], deal: Deal, *, stage: str) -> tuple[Violation, ...]:
    """Every violation of ``guards`` for ``deal``; a guard that raises is a ``GuardError``."""
    if not isinstance(guards, (tuple, list)) or not isinstance(deal, Deal):
        raise ValidationError("evaluate() takes a tuple of guards and a Deal")
    if not isinstance(stage, str):
        raise ValidationError(f"evaluate(): stage must be a stage name, not {shown(stage)}")
    found: list[Violation] = []
    for guard in guards:
        try:
            found.extend(_call(guard, deal))
        except GuardError:
            raise
        except Exception as error:
            name = getattr(guard, "name", None)
            cause = f"{type(error).__name__}: {error}"
            label = name if isinstance(name, str) else shown(guard)
            raise GuardError(deal.id, stage, label, cause) from error
    return tuple(found)


def _texts(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValidationError(f"{what} must be a list of strings, not {shown(value)}")
    return tuple(value)


def _bant_kind(criteria: Sequence[str] = BANT_CRITERIA, min_score: int | None = None) -> BantGuard:
    """The ``bant`` kind: its criteria are a list in data, not separate arguments."""
    return bant(*_texts(criteria, "criteria"), min_score=min_score)


def _requires_fields_kind(names: Sequence[str]) -> RequiresFields:
    """The ``requires_fields`` kind: its names are a list in data, not separate arguments."""
    return requires_fields(*_texts(names, "names"))


def _is_guard(value: object) -> TypeGuard[Guard]:
    return isinstance(value, Guard) and isinstance(getattr(value, "name", None), str)


GuardFactory = Callable[..., Guard]
_REGISTRY: dict[str, GuardFactory] = {
    "bant": _bant_kind,
    "requires_fields": _requires_fields_kind,
    "min_amount": min_amount,
}
KINDS: Final[Kinds[Guard]] = Kinds(
    "guard",
    _is_guard,
    _REGISTRY,
    combinators={"all_of": all_of, "any_of": any_of},
    register_with="guards.register",
)
"""The guard kinds definitions may name, and how a guard is written as data and read back."""


def register(name: str, factory: GuardFactory) -> None:
    """Make a custom guard kind loadable from definitions by ``name`` + parameters.

    Definitions only ever name registered kinds: data never names code to import.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValidationError(f"guard kind name must be an identifier, not {shown(name)}")
    KINDS.register(name, factory)


def registered() -> Mapping[str, GuardFactory]:
    """The guard kinds definitions may name, read-only."""
    return dict(_REGISTRY)


class _Weighted(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def points(self) -> int: ...


class _Scored(Protocol):
    @property
    def value(self) -> float: ...

    @property
    def parts(self) -> Mapping[str, int]: ...


@runtime_checkable
class Scorer(Protocol):
    """What ``min_score`` needs of a score card; ``scoring.ScoreCard`` is the shipped one.

    Guards are core and scoring is built on them, so the guard names this shape
    instead of importing the card.
    """

    @property
    def rules(self) -> Sequence[_Weighted]: ...

    def score(self, deal: Deal, *, now: datetime | None = None) -> _Scored: ...

    def to_dict(self) -> dict[str, Any]: ...


@attrs.frozen
class MinScore(_Combinable):
    """Requires a lead score of at least ``threshold`` (0-100) on ``scorecard``.

    Time-based rules need a clock: without one they award nothing. The clock is not
    part of the guard's identity and is not written by ``spec()``.
    """

    scorecard: Scorer
    threshold: float
    clock: Callable[[], datetime] | None = attrs.field(default=None, eq=False, repr=False)
    name: str = "min_score"

    def __call__(self, deal: Deal, /) -> tuple[Violation, ...]:
        now = None if self.clock is None else self.clock()
        score = self.scorecard.score(deal, now=now)
        if score.value >= self.threshold:
            return ()
        short = [r.name for r in self.scorecard.rules if score.parts[r.name] < r.points]
        message = (
            f"lead score {score.value:.1f} is below the minimum {self.threshold:g}"
            f" (not earned in full: {', '.join(short)})"
        )
        return (Violation("min_score", message, field="score"),)

    def spec(self) -> dict[str, Any]:
        return {
            "guard": "min_score",
            "scorecard": self.scorecard.to_dict(),
            "threshold": self.threshold,
        }


def min_score(
    scorecard: Scorer, threshold: float, *, clock: Callable[[], datetime] | None = None
) -> MinScore:
    """Require ``scorecard.score(deal).value >= threshold`` (a number from 0 to 100).

    ``clock`` supplies ``now`` for time-based rules such as ``scoring.recency``.
    """
    if not isinstance(scorecard, Scorer):
        raise ValidationError(f"min_score needs a scoring.ScoreCard, not {shown(scorecard)}")
    if not c.is_number(threshold):
        raise ValidationError(f"min_score threshold must be a number, not {shown(threshold)}")
    if not 0 <= threshold <= 100:
        raise ValidationError(
            f"min_score threshold must be between 0 and 100, not {shown(threshold)}"
        )
    if clock is not None and not callable(clock):
        raise ValidationError("min_score clock must be a zero-argument callable")
    return MinScore(scorecard, float(threshold), clock)
