"""The waterfall of the open pipeline over a window: ``Flow``, ``Movement``, ``movement``.

Built on the change log: each deal's changes are replayed to where it stood at the
window's start and end (``_waterfall``), and what happened in between is sorted into
rows that balance exactly. Money follows the report's rule (``_money``): never added
across currencies without a rate.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

import attrs

from salespipeline import _checks as c
from salespipeline.errors import ValidationError, shown
from salespipeline.log import Change
from salespipeline.metrics._encode import encoded
from salespipeline.metrics._money import Money, convert, to_money
from salespipeline.metrics._movement_render import render_movement
from salespipeline.metrics._report import EXACT, canonical
from salespipeline.metrics._waterfall import ROWS, State, Tally, View, Window, path, tally_deal
from salespipeline.pipeline import Pipeline

__all__ = ["Flow", "Movement", "Waterfall", "movement", "to_window"]

_ZERO: Final = Decimal(0)


@attrs.frozen
class Flow:
    """How many deals a waterfall row holds and what they are worth (None: mixed currencies)."""

    count: int
    value: Decimal | None


def _frozen(value: Mapping[str, Movement]) -> Mapping[str, Movement]:
    return value if isinstance(value, c.FrozenMap) else c.FrozenMap(value)


@attrs.frozen(kw_only=True)
class Movement:
    """What moved in the open pipeline over ``[window_start, window_end)``.

    Values balance: start + created + increased - decreased - won - lost + reopened -
    migrated_out = end, and counts likewise without increased and decreased.
    ``slipped`` and ``pushed_out`` are views of the same deals, outside the balance.
    Values are in ``currency``; with mixed currencies and no ``currency=`` asked for
    they are None (counts stay), and ``by_currency`` has each currency's own waterfall.
    """

    pipeline: str
    window_start: datetime
    window_end: datetime
    currency: str | None
    start: Flow
    created: Flow
    increased: Flow
    decreased: Flow
    won: Flow
    lost: Flow
    reopened: Flow
    migrated_out: Flow
    end: Flow
    slipped: Flow
    pushed_out: Flow
    by_currency: Mapping[str, Movement] = attrs.field(default=c.FrozenMap(), converter=_frozen)

    def rows(self) -> tuple[tuple[str, Flow], ...]:
        """Every row by name, in waterfall order (start, inflows and outflows, end, then
        slipped and pushed_out)."""
        return tuple((name, getattr(self, name)) for name in ROWS)

    def to_dict(self) -> dict[str, Any]:
        """The movement as JSON-compatible data: Decimals as strings, instants ISO 8601."""
        data: dict[str, Any] = encoded(self)
        return data

    def render(self) -> str:
        """The movement as a plain-text table."""
        return render_movement(self)


def to_window(start: object, end: object) -> Window:
    """The checked window: aware datetimes (UTC), ``start`` not after ``end``."""
    begins, ends = c.to_utc(start, "start"), c.to_utc(end, "end")
    if begins > ends:
        raise ValidationError(
            f"start {begins.isoformat()} is after end {ends.isoformat()}", field="start"
        )
    return Window(begins, ends)


def movement(
    changes: Iterable[Change],
    pipeline: Pipeline,
    *,
    start: datetime,
    end: datetime,
    rates: Mapping[str, Decimal | int] | None = None,
    currency: str | None = None,
) -> Movement:
    """The waterfall of ``pipeline``'s open deals over ``[start, end)``, from the log.

    ``changes`` are any deals' changes in position order (``store.log`` pages or a
    list). Equal (``==``) to ``store.movement`` with the same arguments over the
    store's log. Definitions: ``docs/explanation/metrics.md``.
    """
    if not isinstance(pipeline, Pipeline):
        raise ValidationError(
            f"pipeline must be a Pipeline, not {type(pipeline).__name__}", field="pipeline"
        )
    window = to_window(start, end)
    waterfall = Waterfall(pipeline.name, window, to_money(currency, rates))
    for deal_changes in _by_deal(changes):
        waterfall.add(deal_changes)
    return waterfall.result()


def _by_deal(changes: Iterable[Change]) -> Iterator[list[Change]]:
    """Each deal's changes, in version order."""
    if isinstance(changes, (str, bytes, Mapping)) or not isinstance(changes, Iterable):
        raise ValidationError(
            f"changes must be an iterable of Change, not {shown(changes)}", field="changes"
        )
    grouped: dict[str, list[Change]] = {}
    for change in changes:
        if not isinstance(change, Change):
            raise ValidationError(f"changes holds {shown(change)}, not a Change", field="changes")
        grouped.setdefault(change.deal_id, []).append(change)
    for deal_changes in grouped.values():
        yield sorted(deal_changes, key=lambda change: change.version)


class Waterfall:
    """A movement added up deal by deal: the pure path and the stores share it.

    Give ``add`` each deal's changes (version order, at least those before the window's
    end); the order of the deals does not change the result.
    """

    __slots__ = ("_all", "_currencies", "_money", "_rated", "_unrated", "name", "window")

    def __init__(self, name: str, window: Window, money: Money) -> None:
        self.name, self.window, self._money = name, window, money
        self._all = Tally()
        self._rated = Tally()
        self._currencies: dict[str, Tally] = {}
        self._unrated: set[str] = set()

    def add(self, changes: Sequence[Change]) -> None:
        """Add one deal, given its changes in version order."""
        deal = path(changes, self.window)
        if deal is None:
            return
        counting = View(self.name, None, _amount)
        tally_deal(self._all, counting, deal, self.window)
        states = (deal.first, *deal.steps, deal.last)
        found = {s.currency for s in states if s is not None and counting.member(s)}
        for code in sorted(found):
            tally = self._currencies.setdefault(code, Tally())
            tally_deal(tally, View(self.name, code, _amount), deal, self.window)
        if self._money.rates is not None:
            tally_deal(self._rated, View(self.name, None, self._converted), deal, self.window)

    def add_unchanged(self, currency: str, count: int, value: Decimal) -> None:
        """Add ``count`` open deals in ``currency`` worth ``value`` that no change touched
        from the window's start on: each is in ``start`` and ``end`` at the same amount.

        A SQL store sums these in the database; the result is the one ``add`` of each
        deal's changes would give.
        """
        if count <= 0:
            return
        tally = Tally()
        for row in ("start", "end"):
            tally.counts[row], tally.values[row] = count, value
        self.add_tallied(currency, tally)

    def add_tallied(self, currency: str, tally: Tally) -> None:
        """Add the rows of deals that stood in ``currency`` in every state of theirs that
        ``add`` reads, tallied elsewhere (a SQL store sorts them in the database).

        For such a deal every view ``add`` tallies it in gives the same rows, so adding
        their sums per currency gives the result ``add`` of each would.
        """
        for target in (self._all, self._currencies.setdefault(currency, Tally())):
            _merge(target, tally, None)
        if self._money.rates is not None:
            rate = self._money.rate(currency)
            if rate is None:
                self._unrated.add(currency)
            else:
                _merge(self._rated, tally, rate)

    def _converted(self, state: State) -> Decimal | None:
        rate = self._money.rate(state.currency)
        if rate is None:
            self._unrated.add(state.currency)
            return None
        return convert(state.amount, rate)

    def result(self) -> Movement:
        """The movement of every deal added."""
        if self._unrated:
            listed = ", ".join(sorted(self._unrated))
            raise ValidationError(
                f"rates has no rate for {listed}, found among the deals that moved: add the "
                f"value of one unit of each in {self._money.currency}",
                field="rates",
            )
        by_currency = {
            code: self._made(tally, tally, code)
            for code, tally in sorted(self._currencies.items())
        }
        return self._top(by_currency)

    def _top(self, by_currency: Mapping[str, Movement]) -> Movement:
        money = self._money
        if money.rates is not None:
            return self._made(self._rated, self._rated, money.currency, by_currency)
        if money.currency is not None:
            own = self._currencies.get(money.currency, Tally())
            return self._made(own, own, money.currency, _only(by_currency, money.currency))
        if len(by_currency) == 1:
            [(code, tally)] = self._currencies.items()
            return self._made(self._all, tally, code, by_currency)
        values = None if by_currency else Tally()
        return self._made(self._all, values, None, by_currency)

    def _made(
        self,
        counts: Tally,
        values: Tally | None,
        currency: str | None,
        by_currency: Mapping[str, Movement] | None = None,
    ) -> Movement:
        flows = {
            row: Flow(
                counts.counts[row], None if values is None else canonical(values.values[row])
            )
            for row in ROWS
        }
        return Movement(
            pipeline=self.name,
            window_start=self.window.start,
            window_end=self.window.end,
            currency=currency,
            by_currency=by_currency or {},
            **flows,
        )


def _merge(target: Tally, tally: Tally, rate: Decimal | None) -> None:
    """Add ``tally`` into ``target``, its values converted at ``rate`` (None: as they are)."""
    for row in ROWS:
        value = tally.values[row] if rate is None else convert(tally.values[row], rate)
        target.counts[row] += tally.counts[row]
        target.values[row] = EXACT.add(target.values[row], value)


def _only(by_currency: Mapping[str, Movement], code: str) -> dict[str, Movement]:
    return {code: by_currency[code]} if code in by_currency else {}


def _amount(state: State) -> Decimal:
    return state.amount
