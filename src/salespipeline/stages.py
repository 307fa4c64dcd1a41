"""Stages: the open steps a team defines, and the two terminal outcomes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

import attrs

from salespipeline import _checks as c
from salespipeline.errors import ValidationError, shown

if TYPE_CHECKING:
    from salespipeline.guards import Guard

__all__ = ["LOST", "STAGE_CATEGORIES", "TERMINAL", "WON", "Stage"]

WON: Final = "won"
LOST: Final = "lost"
TERMINAL: Final = (WON, LOST)
STAGE_CATEGORIES: Final = ("pipeline", "best_case", "commit", "omitted")
"""The forecast categories an open stage may be put in (WON is ``closed``, LOST
``omitted``)."""


def _to_guards(value: object) -> tuple[Guard, ...]:
    items: Sequence[Any]
    if callable(value):
        items = (value,)
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        raise ValidationError(
            f"requires must be a guard or a sequence of guards, not {shown(value)}"
        )
    for item in items:
        if not callable(item) or not isinstance(getattr(item, "name", None), str):
            raise ValidationError(f"requires: {shown(item)} is not a guard (callable with a name)")
    return tuple(items)


def _to_probability(value: object) -> float:
    if not c.is_number(value):
        raise ValidationError(f"stage probability must be a number, not {shown(value)}")
    try:
        return float(value)
    except OverflowError:
        raise ValidationError(f"stage probability {shown(value)} is not in [0, 1]") from None


def _check_name(instance: Stage, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str):
        raise ValidationError(f"stage name must be a string, not {shown(value)}")


def _check_probability(instance: Stage, attribute: attrs.Attribute[float], value: float) -> None:
    if not math.isfinite(value):
        raise ValidationError(f"stage {instance.name!r}: probability must be finite")


def _check_rot_after(instance: Stage, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, timedelta):
        raise ValidationError(f"stage {instance.name!r}: rot_after must be a timedelta or None")


def _check_category(instance: Stage, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, str) or value not in STAGE_CATEGORIES):
        raise ValidationError(
            f"stage {instance.name!r}: forecast_category must be one of "
            f"{list(STAGE_CATEGORIES)} or None, not {shown(value)}"
        )


def _check_label(instance: Stage, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise ValidationError(f"stage {instance.name!r}: label must be a string or None")


@attrs.frozen(kw_only=True)
class Stage:
    """An open pipeline stage with its default win probability and entry rules.

    ``Stage`` checks only its own fields' types; names, uniqueness and the relations
    between stages are checked by ``Pipeline`` so every problem is reported together.
    """

    name: str = attrs.field(kw_only=False, validator=_check_name)
    label: str = attrs.field(default=None, validator=_check_label)
    probability: float = attrs.field(validator=_check_probability, converter=_to_probability)
    requires: tuple[Guard, ...] = attrs.field(default=(), converter=_to_guards)
    rot_after: timedelta | None = attrs.field(default=None, validator=_check_rot_after)
    forecast_category: str | None = attrs.field(default=None, validator=_check_category)
    """None: the category follows the probability (see ``Pipeline.forecast_category``)."""

    def __attrs_post_init__(self) -> None:
        if self.label is None:
            object.__setattr__(self, "label", self.name.replace("_", " ").title())

    @property
    def guard_names(self) -> tuple[str, ...]:
        """The names of the guards on this stage, in order."""
        return tuple(g.name for g in self.requires)


def category_of(stage: Stage | str, *, probability: float | None, override: str | None) -> str:
    """The forecast category of a deal in ``stage`` (a ``Stage``, or WON or LOST) with its
    own ``probability`` and ``override`` (None each when it has none): the one definition
    ``Pipeline.forecast_category`` and both report paths use.

    WON is ``closed`` and LOST ``omitted``; else the override, else the stage's
    category, else the win probability's: below 0.4 ``pipeline``, below 0.7
    ``best_case``, else ``commit``.
    """
    if not isinstance(stage, Stage):
        return "closed" if stage == WON else "omitted"
    if override is not None:
        return override
    if stage.forecast_category is not None:
        return stage.forecast_category
    p = stage.probability if probability is None else probability
    return "pipeline" if p < 0.4 else "best_case" if p < 0.7 else "commit"
