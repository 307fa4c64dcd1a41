"""Deals and their history: frozen values, validated on construction."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

import attrs

from salespipeline import _checks as c
from salespipeline import limits
from salespipeline._currencies import CODES as CURRENCIES
from salespipeline.errors import ValidationError, shown
from salespipeline.stages import LOST, WON

__all__ = ["BANT_CRITERIA", "Bant", "Deal", "StageChange"]

BANT_CRITERIA: Final = ("budget", "authority", "need", "timeline")


def _bool(instance: object, attribute: attrs.Attribute[bool], value: object) -> None:
    if not isinstance(value, bool):
        raise ValidationError(f"bant.{attribute.name} must be True or False, not {shown(value)}")


@attrs.frozen
class Bant:
    """BANT qualification: Budget, Authority, Need, Timeline."""

    budget: bool = attrs.field(default=False, validator=_bool)
    authority: bool = attrs.field(default=False, validator=_bool)
    need: bool = attrs.field(default=False, validator=_bool)
    timeline: bool = attrs.field(default=False, validator=_bool)

    @property
    def score(self) -> int:
        """How many of the four criteria are met (0-4)."""
        return self.budget + self.authority + self.need + self.timeline

    @property
    def missing(self) -> tuple[str, ...]:
        """The unmet criteria, in B-A-N-T order."""
        return tuple(name for name in BANT_CRITERIA if not getattr(self, name))

    @property
    def qualified(self) -> bool:
        """All four criteria are met."""
        return self.score == 4


def _stage_name(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        c.check_text(value, attribute.name, max_length=limits.MAX_NAME)


MAX_VERSION: Final = limits.MAX_VERSION
"""The highest version every store can keep (PostgreSQL's INTEGER column)."""


def _to_version(value: object) -> int:
    if not c.is_int(value) or not 1 <= value <= MAX_VERSION:
        raise ValidationError(
            f"version must be an integer from 1 to {MAX_VERSION}, not {shown(value)}"
        )
    return value


@attrs.frozen
class StageChange:
    """One entry in a deal's append-only history; ``from_stage`` is None on entry."""

    deal_id: str = attrs.field(converter=c.check_id)
    from_stage: str | None = attrs.field(validator=_stage_name)
    to_stage: str = attrs.field(validator=_stage_name)
    at: datetime = attrs.field(converter=c.to_utc)
    version: int = attrs.field(converter=_to_version)
    reason: str | None = attrs.field(default=None, converter=c.to_optional_text)


def _to_bant(value: object) -> Bant:
    if not isinstance(value, Bant):
        raise ValidationError(f"bant must be a Bant, not {type(value).__name__}")
    return value


def _to_currency(value: object) -> str:
    if not isinstance(value, str) or len(value) != 3 or not value.isascii() or not value.isalpha():
        raise ValidationError(
            f"currency must be a three-letter code such as 'USD', not {shown(value)}"
        )
    code = value.upper()
    if code not in CURRENCIES:
        raise ValidationError(f"currency {value!r} is not an ISO 4217 currency code")
    return code


def _to_history(value: object) -> tuple[StageChange, ...]:
    if not isinstance(value, Sequence) or not all(isinstance(v, StageChange) for v in value):
        raise ValidationError("history must be a sequence of StageChange")
    return tuple(value)


def _pipeline_name(value: object) -> str:
    return c.check_id(value, "pipeline")


def _stage(value: object) -> str:
    return c.check_id(value, "stage")


def _lost_reason(value: object) -> str | None:
    return c.to_optional_text(value, "lost_reason")


def _next_action(value: object) -> str | None:
    text = c.to_optional_text(value, "next_action")
    if text is not None and not text.strip():
        raise ValidationError("next_action must not be blank (use None for no next action)")
    return text


def _history_problem(deal: Deal) -> str | None:
    """Why the history does not describe this deal, or None when it does."""
    history = deal.history
    if not history:
        return "history must not be empty"
    if history[0].from_stage is not None:
        return "the first history entry must have from_stage None"
    previous: StageChange | None = None
    for change in history:
        if change.deal_id != deal.id:
            return f"history entry v{change.version} belongs to deal {change.deal_id!r}"
        if previous is not None:
            if change.from_stage != previous.to_stage:
                return (
                    f"history is broken at v{change.version}: from {change.from_stage!r} "
                    f"after entering {previous.to_stage!r}"
                )
            if change.version <= previous.version:
                return f"history versions must rise (v{previous.version} then v{change.version})"
            if change.at < previous.at:
                return f"history runs backwards in time at v{change.version}"
        previous = change
    last = history[-1]
    if last.to_stage != deal.stage:
        return f"history ends in {last.to_stage!r} but the deal is in {deal.stage!r}"
    if last.version > deal.version:
        return f"history reaches v{last.version} beyond the deal's version {deal.version}"
    if last.at != deal.stage_entered_at:
        return "stage_entered_at must equal the time of the last history entry"
    if history[0].at != deal.created_at:
        return "created_at must equal the time of the first history entry"
    return None


def _closing_problem(deal: Deal) -> str | None:
    if deal.stage in (WON, LOST):
        if deal.closed_at is None:
            return f"a deal in {deal.stage!r} must have closed_at"
    elif deal.closed_at is not None:
        return "an open deal must not have closed_at"
    if deal.stage == LOST and deal.lost_reason is None:
        return "a lost deal must have a lost_reason"
    if deal.stage != LOST and deal.lost_reason is not None:
        return "only a lost deal has a lost_reason"
    return None


# Fields that only Pipeline operations (or a store loading a deal) may set.
_LIFECYCLE: Final = frozenset(
    {"id", "pipeline", "stage", "created_at", "stage_entered_at", "closed_at", "lost_reason"}
    | {"version", "history"}
)


@attrs.frozen(kw_only=True)
class Deal:
    """One opportunity in one pipeline, with its full stage history.

    Deals are made by ``Pipeline.start`` (or loaded by a store); constructing one by
    hand checks the same rules. Change fields with ``evolve``; move stages with a
    ``Pipeline`` operation.
    """

    id: str = attrs.field(kw_only=False, converter=c.check_id)
    pipeline: str = attrs.field(kw_only=False, converter=_pipeline_name)
    stage: str = attrs.field(kw_only=False, converter=_stage)
    amount: Decimal = attrs.field(default=Decimal(0), converter=c.to_amount)
    currency: str = attrs.field(default="USD", converter=_to_currency)
    bant: Bant = attrs.field(factory=Bant, converter=_to_bant)
    fields: Mapping[str, Any] = attrs.field(factory=c.FrozenMap, converter=c.to_fields)
    probability: float | None = attrs.field(default=None, converter=c.to_optional_probability)
    lost_reason: str | None = attrs.field(default=None, converter=_lost_reason)
    next_action: str | None = attrs.field(default=None, converter=_next_action)
    next_action_at: datetime | None = attrs.field(default=None, converter=c.to_optional_utc)
    created_at: datetime = attrs.field(converter=c.to_utc)
    stage_entered_at: datetime = attrs.field(converter=c.to_utc)
    closed_at: datetime | None = attrs.field(default=None, converter=c.to_optional_utc)
    version: int = attrs.field(default=1, converter=_to_version)
    history: tuple[StageChange, ...] = attrs.field(default=(), converter=_to_history)

    def __attrs_post_init__(self) -> None:
        problem = _history_problem(self) or _closing_problem(self)
        if problem is not None:
            raise ValidationError(problem, deal_id=self.id)

    @property
    def is_open(self) -> bool:
        """True unless the deal is won or lost."""
        return self.stage != WON and self.stage != LOST

    def evolve(self, **changes: Any) -> Deal:
        """A copy with ``changes`` applied and validated, version + 1, no history entry.

        Stages, times and history change only through ``Pipeline`` operations.
        """
        refused = sorted(_LIFECYCLE.intersection(changes))
        if refused:
            raise ValidationError(
                f"{', '.join(refused)} cannot be changed with evolve(); "
                "move stages with a Pipeline operation",
                deal_id=self.id,
                field=refused[0],
            )
        unknown = sorted(set(changes) - _FIELD_NAMES)
        if unknown:
            raise ValidationError(f"Deal has no field {unknown[0]!r}", deal_id=self.id)
        try:
            return attrs.evolve(self, version=self.version + 1, **changes)
        except ValidationError as error:
            if error.deal_id is None:
                raise ValidationError(str(error), deal_id=self.id, field=error.field) from None
            raise


_FIELD_NAMES: Final = frozenset(a.name for a in attrs.fields(Deal))


def checked_deals(deals: object, what: str) -> Iterator[Deal]:
    """``deals`` streamed, each checked to be a Deal; a non-iterable is refused at once.

    For the functions that take "an iterable of deals": a ``ValidationError`` naming
    ``what`` instead of a ``TypeError`` or ``AttributeError`` from deep inside them.
    """
    if isinstance(deals, (str, bytes, Mapping)) or not isinstance(deals, Iterable):
        raise ValidationError(f"{what} takes an iterable of Deal, not {type(deals).__name__}")
    return _each_deal(deals, what)


def _each_deal(deals: Iterable[object], what: str) -> Iterator[Deal]:
    for deal in deals:
        if not isinstance(deal, Deal):
            raise ValidationError(f"{what} takes Deal values, not {shown(deal)}")
        yield deal
