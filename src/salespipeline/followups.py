"""Follow-ups: keep every open deal moving by watching its next planned action."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from salespipeline import _checks as c
from salespipeline.deal import Deal, checked_deals

__all__ = ["overdue", "unplanned"]


def overdue(deals: Iterable[Deal], *, now: datetime) -> list[Deal]:
    """The open deals whose ``next_action_at`` is before ``now``, most overdue first.

    Ties are ordered by deal id, so the list is the same whatever the input order.
    """
    when = c.to_utc(now, "now")
    late = [
        d
        for d in checked_deals(deals, "overdue()")
        if d.is_open and d.next_action_at is not None and d.next_action_at < when
    ]
    return sorted(late, key=_due_key)


def unplanned(deals: Iterable[Deal]) -> list[Deal]:
    """The open deals with no next action planned, longest in their stage first."""
    idle = [
        d for d in checked_deals(deals, "unplanned()") if d.is_open and d.next_action_at is None
    ]
    return sorted(idle, key=lambda d: (d.stage_entered_at, d.id))


def _due_key(deal: Deal) -> tuple[datetime, str]:
    assert deal.next_action_at is not None
    return deal.next_action_at, deal.id
