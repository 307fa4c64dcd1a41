"""One deal's part in a waterfall: its states through a window, sorted into rows (private).

``log.replay`` rebuilds the deal as it stood just before ``start`` and just before
``end``; the changes in between are read only for the five attributes a waterfall
needs (``State``), and the walk must arrive at the replayed end. A ``View`` says
which states are in the open pipeline being measured and what each is worth.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Final

import attrs

from salespipeline import _checks as c
from salespipeline.deal import Deal, decode_value
from salespipeline.errors import ValidationError
from salespipeline.log import Change, replay
from salespipeline.metrics._report import EXACT
from salespipeline.stages import LOST, WON

__all__ = [
    "ROWS",
    "Path",
    "State",
    "Tally",
    "View",
    "Window",
    "path",
    "pushed_out",
    "slipped",
    "step",
    "tally_deal",
]

ROWS: Final = (
    "start",
    "created",
    "increased",
    "decreased",
    "won",
    "lost",
    "reopened",
    "migrated_out",
    "end",
    "slipped",
    "pushed_out",
)
_TICK: Final = timedelta(microseconds=1)
_EARLIEST: Final = datetime.min.replace(tzinfo=timezone.utc)
_ZERO: Final = Decimal(0)
_NAMES: Final = ("pipeline", "stage", "amount", "currency", "close_date")


@attrs.frozen
class Window:
    """The instants ``[start, end)``; a change at ``start`` is inside, one at ``end`` is not."""

    start: datetime
    end: datetime

    def holds(self, at: datetime) -> bool:
        """Whether ``at`` is inside the window."""
        return self.start <= at < self.end

    def days(self) -> tuple[date | None, date | None]:
        """The first day that begins (at 00:00 UTC) at or after ``start``, and the first
        at or after ``end`` (None: none does before ``date.max`` ends).

        ``holds_day`` and ``after_end`` compare a day with these two only, so a store
        can compare its ISO date text with theirs in SQL.
        """
        return _first_day(self.start), _first_day(self.end)

    def holds_day(self, day: date | None) -> bool:
        """Whether ``day`` begins (at 00:00 UTC) inside the window."""
        first, after = self.days()
        return day is not None and first is not None and first <= day and _before(day, after)

    def after_end(self, day: date | None) -> bool:
        """Whether ``day`` begins (at 00:00 UTC) at or after ``end``."""
        after = self.days()[1]
        return day is not None and not _before(day, after)


def _first_day(moment: datetime) -> date | None:
    """The first day beginning (00:00 UTC) at or after the aware ``moment``."""
    day = moment.astimezone(timezone.utc).date()
    if datetime.combine(day, time(), tzinfo=timezone.utc) >= moment:
        return day
    return None if day == date.max else day + timedelta(days=1)


def _before(day: date, bound: date | None) -> bool:
    return bound is None or day < bound


@attrs.frozen
class State:
    """What a waterfall reads of a deal at one version."""

    pipeline: str
    stage: str
    amount: Decimal
    currency: str
    close_date: date | None

    @property
    def closed(self) -> bool:
        """Whether the deal is WON or LOST."""
        return self.stage in (WON, LOST)


@attrs.frozen
class Path:
    """A deal's state at ``start`` (None: not yet opened), after each change in the
    window, and at ``end``."""

    first: State | None
    steps: tuple[State, ...]
    last: State | None


def _state(deal: Deal | None) -> State | None:
    if deal is None:
        return None
    return State(deal.pipeline, deal.stage, deal.amount, deal.currency, deal.close_date)


def _after(state: State | None, change: Change) -> State:
    """``state`` with the five attributes ``change`` altered set to their new values."""
    known = {} if state is None else attrs.asdict(state, recurse=False)
    for name in _NAMES:
        if name in change.changed:
            known[name] = decode_value(name, change.changed[name][1])
    try:
        known["amount"] = c.to_amount(known["amount"])
        return State(**known)
    except (KeyError, TypeError):
        raise ValidationError(
            "the log does not say the deal's pipeline, stage, amount and currency "
            f"by version {change.version}",
            deal_id=change.deal_id,
        ) from None


def path(changes: Sequence[Change], window: Window) -> Path | None:
    """The deal's path through ``window`` (its changes in version order, at least one).

    None for an erased deal: a store deletes its past with it, so it is in no row.
    """
    if any(change.kind == "erase" for change in changes):
        return None
    deal_id = changes[0].deal_id
    first, last = _stood(changes, window.start), _stood(changes, window.end)
    steps: list[State] = []
    state = first
    for change in changes:
        if window.holds(change.at):
            state = _after(state, change)
            steps.append(state)
    if state != last:
        raise ValidationError(
            "its changes inside the window do not lead to the deal that replay rebuilds",
            deal_id=deal_id,
        )
    return Path(first, tuple(steps), last)


def _stood(changes: Sequence[Change], moment: datetime) -> State | None:
    """The deal as it stood just before ``moment`` (None: not opened by then)."""
    if moment <= _EARLIEST:
        return None
    return _state(replay(changes, until=moment - _TICK).get(changes[0].deal_id))


@attrs.frozen
class View:
    """Which states are in the measured open pipeline, and what one is worth in it.

    ``worth`` returns None for a state it cannot value (another currency).
    """

    pipeline: str
    currency: str | None
    worth: Callable[[State], Decimal | None]

    def member(self, state: State | None) -> bool:
        """Whether ``state`` is an open deal of the pipeline (in the view's currency)."""
        return (
            state is not None
            and state.pipeline == self.pipeline
            and not state.closed
            and (self.currency is None or state.currency == self.currency)
        )

    def value(self, state: State) -> Decimal:
        """The worth of a member state."""
        return self.worth(state) or _ZERO


class Tally:
    """Counts and exact sums per row, added deal by deal."""

    __slots__ = ("counts", "values")

    def __init__(self) -> None:
        self.counts = dict.fromkeys(ROWS, 0)
        self.values = dict.fromkeys(ROWS, _ZERO)

    def add(self, row: str, value: Decimal) -> None:
        """One more in ``row``, worth ``value``."""
        self.counts[row] += 1
        self.values[row] = EXACT.add(self.values[row], value)


def tally_deal(tally: Tally, view: View, deal: Path, window: Window) -> None:
    """Add one deal's rows in ``view`` to ``tally``."""
    if view.member(deal.first):
        assert deal.first is not None
        tally.add("start", view.value(deal.first))
    net, slip = _ZERO, None
    before = deal.first
    for state in deal.steps:
        net = EXACT.add(net, step(tally, view, before, state))
        if slipped(view, before, state):
            slip = view.value(state)
        before = state
    if view.member(deal.last):
        assert deal.last is not None
        tally.add("end", view.value(deal.last))
        if pushed_out(view, deal, window):
            tally.add("pushed_out", view.value(deal.last))
    if net:
        tally.add("increased" if net > 0 else "decreased", abs(net))
    if slip is not None:
        tally.add("slipped", slip)


def step(tally: Tally, view: View, before: State | None, after: State) -> Decimal:
    """Tally a change that enters or leaves the view; the amount change it makes inside."""
    was, now = view.member(before), view.member(after)
    if now and not was:
        reopened = before is not None and before.pipeline == view.pipeline and before.closed
        tally.add("reopened" if reopened else "created", view.value(after))
        return _ZERO
    if not was:
        return _ZERO
    assert before is not None
    if now:
        return EXACT.subtract(view.value(after), view.value(before))
    worth = view.worth(after)
    left = view.value(before) if worth is None else worth
    tally.add(_exit(view, after), left)
    return EXACT.subtract(left, view.value(before))


def _exit(view: View, after: State) -> str:
    """The row of a deal that left the view: won, lost, or left the pipeline (or currency)."""
    if after.pipeline == view.pipeline and after.closed:
        return "won" if after.stage == WON else "lost"
    return "migrated_out"


def slipped(view: View, before: State | None, after: State) -> bool:
    """Whether a change moved an open deal's close date to a later day."""
    return (
        view.member(before)
        and view.member(after)
        and before is not None
        and before.close_date is not None
        and after.close_date is not None
        and after.close_date > before.close_date
    )


def pushed_out(view: View, deal: Path, window: Window) -> bool:
    """Whether a deal open at start, due inside the window then, is due at or after its end."""
    first, last = deal.first, deal.last
    return (
        view.member(first)
        and first is not None
        and last is not None
        and window.holds_day(first.close_date)
        and window.after_end(last.close_date)
    )
