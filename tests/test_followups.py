"""Follow-ups: overdue next actions and open deals with none planned."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salespipeline import Deal, Pipeline, Stage, ValidationError
from salespipeline.followups import overdue, unplanned

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)
PIPELINE = Pipeline("p", [Stage("lead", probability=0.1), Stage("demo", probability=0.4)])


def deal(id: str, due: datetime | None = None, *, at: datetime = T0, **kw: Any) -> Deal:
    d = PIPELINE.start(id, at=at)
    return d.evolve(next_action_at=due, next_action="call back", **kw) if due else d


def ids(deals: list[Deal]) -> list[str]:
    return [d.id for d in deals]


def test_overdue_lists_open_deals_past_due_most_overdue_first() -> None:
    now = T0 + 10 * HOUR
    deals = [
        deal("due-in-future", T0 + 11 * HOUR),
        deal("due-2h-ago", T0 + 8 * HOUR),
        deal("no-action"),
        deal("due-5h-ago", T0 + 5 * HOUR),
        deal("due-now", now),
    ]
    assert ids(overdue(deals, now=now)) == ["due-5h-ago", "due-2h-ago"]


def test_overdue_ignores_closed_deals() -> None:
    late = deal("won", T0 + HOUR)
    won = PIPELINE.win(PIPELINE.advance(late, at=T0), at=T0)
    lost = PIPELINE.lose(deal("lost", T0 + HOUR), "no budget", at=T0)
    assert won.next_action_at is not None
    assert overdue([won, lost], now=T0 + 5 * HOUR) == []


def test_overdue_breaks_ties_by_id() -> None:
    deals = [deal("b", T0), deal("c", T0), deal("a", T0)]
    assert ids(overdue(deals, now=T0 + HOUR)) == ["a", "b", "c"]


def test_overdue_accepts_any_aware_now_and_refuses_a_naive_one() -> None:
    seoul = timezone(timedelta(hours=9))
    d = deal("d", T0 + HOUR)
    # T0 + 2h in UTC is 20:00 in Seoul.
    assert ids(overdue([d], now=datetime(2026, 3, 2, 20, 0, tzinfo=seoul))) == ["d"]
    with pytest.raises(ValidationError, match="timezone-aware"):
        overdue([d], now=datetime(2026, 3, 2, 20, 0))


def test_unplanned_lists_open_deals_without_a_next_action_longest_waiting_first() -> None:
    deals = [
        deal("planned", T0 + HOUR),
        deal("newer", at=T0 + 3 * HOUR),
        deal("older", at=T0),
        PIPELINE.lose(deal("lost"), "no reply", at=T0),
    ]
    assert ids(unplanned(deals)) == ["older", "newer"]


offsets = st.integers(-100, 100).map(lambda h: T0 + h * HOUR)


@given(st.lists(st.one_of(st.none(), offsets), max_size=12), offsets)
def test_overdue_is_exactly_the_open_deals_due_before_now_in_due_order(
    dues: list[datetime | None], now: datetime
) -> None:
    deals = [deal(f"d{i}", due) for i, due in enumerate(dues)]
    found = overdue(deals, now=now)
    expected = {d.id for d in deals if d.next_action_at is not None and d.next_action_at < now}
    assert {d.id for d in found} == expected
    keys = [(d.next_action_at, d.id) for d in found]
    assert keys == sorted(keys)  # type: ignore[type-var]
