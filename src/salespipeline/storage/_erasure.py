"""Erasure: what a store keeps of a deal it erases, and the checks before it starts (private).

A store erases a deal by deleting its row and every change of its log, then logging
one ``erase`` change, so consumers learn of it. That change holds no personal data
of the deal: no ``changed`` values and no stages; only its id, its next version, the
time, and the controller's ``actor``, ``reason`` and ``key`` (see the how-to "Erase
a deal" for why, and for what the caller must keep out of the reason).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import NamedTuple

from salespipeline import _checks as c
from salespipeline.deal import to_actor
from salespipeline.errors import ValidationError
from salespipeline.log import Change

__all__ = ["Erasure", "check_erasure", "erase_change", "erased_by"]


class Erasure(NamedTuple):
    """An erase call's arguments, checked."""

    id: str
    actor: str
    reason: str
    key: str | None
    at: datetime
    """The time asked for (the erase change is never earlier than the deal's last change)."""


def check_erasure(
    id: object, actor: object, reason: object, key: object, at: object = None
) -> Erasure:
    """``erase``'s arguments checked before any work: an actor and a reason are required."""
    deal_id = c.check_id(id)
    who = to_actor(actor)
    if who is None:
        raise ValidationError("erase needs an actor: who erased the deal", deal_id=deal_id)
    why = c.to_optional_text(reason, "reason")
    if why is None or not why.strip():
        raise ValidationError(
            "erase needs a non-blank reason (a request or ticket number, not the person's data)",
            deal_id=deal_id,
            field="reason",
        )
    keyed = None if key is None else c.check_id(key, "key")
    when = c.to_utc(datetime.now(timezone.utc) if at is None else at, "at")
    return Erasure(deal_id, who, why, keyed, when)


def erase_change(erasure: Erasure, version: int, updated_at: datetime) -> Change:
    """The ``erase`` change of a deal last at ``version`` and ``updated_at`` (never earlier)."""
    return Change(
        erasure.id,
        version + 1,
        max(erasure.at, updated_at),
        "erase",
        actor=erasure.actor,
        reason=erasure.reason,
        key=erasure.key,
    )


def erased_by(changes: tuple[Change, ...], key: str | None) -> Change | None:
    """The erase change ``changes`` end with when it was made with ``key`` (a retry)."""
    if key is not None and changes and changes[-1].kind == "erase" and changes[-1].key == key:
        return changes[-1]
    return None
