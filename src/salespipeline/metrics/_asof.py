"""Which instant a report describes, and which deals it takes (private).

A report describes the pipeline as it stood at ``as_of``: only deals opened by then,
each as its last change at or before ``as_of`` left it. The pure path cannot rebuild
a deal's past from the deal alone, so it refuses one changed after ``as_of`` and
names the replay that gives it as it was. ``now=`` is the deprecated name of
``as_of``; ``owner=`` keeps one owner's deals.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from salespipeline import _checks as c
from salespipeline.deal import Deal, to_actor
from salespipeline.errors import ValidationError, shown
from salespipeline.pipeline import Pipeline

__all__ = ["as_of_instant", "as_they_stood", "check_owner", "of_owner"]

_REPLAY = "metrics.report(log.replay(changes, until=as_of).values(), pipeline, as_of=as_of)"


def as_of_instant(
    pipeline: Pipeline, as_of: object, now: object, *, stacklevel: int = 3
) -> datetime:
    """The checked UTC instant of ``as_of`` (or of the deprecated ``now``); the pipeline
    clock's now when neither is given."""
    if now is not None:
        if as_of is not None:
            raise ValidationError(
                "pass as_of= alone: now= is its deprecated old name", field="as_of"
            )
        warnings.warn(
            "now= is deprecated: pass as_of= (the instant the report describes)",
            DeprecationWarning,
            stacklevel=stacklevel,
        )
        as_of = now
    if as_of is None:
        return c.to_utc(pipeline.clock(), "the pipeline clock's now")
    if not isinstance(as_of, datetime):
        raise ValidationError(
            f"as_of must be an aware datetime, not {shown(as_of)}", field="as_of"
        )
    try:
        return c.to_utc(as_of, "as_of")
    except ValidationError as error:
        raise ValidationError(str(error), field="as_of") from None


def check_owner(owner: object) -> str | None:
    """``owner`` checked as a deal's owner is (None: every owner), with ``field="owner"``."""
    try:
        return to_actor(owner, "owner")
    except ValidationError as error:
        raise ValidationError(str(error), field="owner") from None


def as_they_stood(deals: Iterable[Deal], as_of: datetime) -> Iterator[Deal]:
    """The deals opened by ``as_of``; a ``ValidationError`` for one changed after it."""
    for deal in deals:
        if deal.created_at > as_of:
            continue
        if deal.updated_at > as_of:
            raise ValidationError(
                f"it changed at {deal.updated_at.isoformat()}, after as_of "
                f"{as_of.isoformat()}: report on the deals as they stood then, "
                f"replayed from the log: {_REPLAY}",
                deal_id=deal.id,
                field="as_of",
            )
        yield deal


def of_owner(owner: str | None) -> Callable[[Deal], bool]:
    """A test keeping the deals of ``owner`` (every deal when it is None)."""
    if owner is None:
        return lambda deal: True
    return lambda deal: deal.owner == owner
