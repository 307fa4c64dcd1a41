"""Tracker: the entry point for apps, tying pipelines, a store and a clock together.

Every change loads the deal, lets the pipeline check and apply the move, and saves
it optimistically. When another writer got there first (``ConcurrencyError``), the
Tracker reloads and tries the same destination again, guards included, up to
``retries`` times; a deal already at that destination is returned unchanged, so two
concurrent clicks on "advance" move a deal one stage, not two.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from salespipeline import _checks as c
from salespipeline._listeners import EVENTS, Listener, ListenerFailure, Listeners, Unsubscribe
from salespipeline.deal import Bant, Deal
from salespipeline.errors import ConcurrencyError, UnknownPipelineError, ValidationError
from salespipeline.pipeline import Clock, Pipeline, system_clock
from salespipeline.stages import LOST, WON
from salespipeline.storage.base import DealStore

__all__ = ["EVENTS", "Listener", "ListenerFailure", "Tracker", "Unsubscribe"]

_Apply = Callable[[Pipeline, Deal], Deal]
_Done = Callable[[Deal], bool]


class Tracker:
    """Pipelines + a store + a clock: atomic, retried changes to stored deals.

    The pipelines' definitions are recorded in the store (``store.pipelines()``), so a
    report or the CLI needs only the database. A pipeline whose guards cannot be
    written as data raises ``DefinitionError`` here unless ``record_definitions=False``.
    """

    def __init__(
        self,
        store: DealStore,
        pipelines: Pipeline | Iterable[Pipeline],
        *,
        clock: Clock | None = None,
        retries: int = 3,
        record_definitions: bool = True,
    ) -> None:
        if not isinstance(store, DealStore):
            raise ValidationError(f"store must be a DealStore, not {type(store).__name__}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValidationError(f"retries must be a non-negative integer, not {retries!r}")
        if clock is not None and not callable(clock):
            raise ValidationError("clock must be a zero-argument callable returning a datetime")
        self._store = store
        self._pipelines = _by_name(pipelines)
        self._clock: Clock = clock or system_clock
        self._retries = retries
        self._listeners = Listeners()
        if record_definitions:
            for pipeline in self._pipelines.values():
                store.save_pipeline(pipeline)

    @property
    def store(self) -> DealStore:
        return self._store

    @property
    def pipelines(self) -> tuple[Pipeline, ...]:
        return tuple(self._pipelines.values())

    def pipeline(self, name: str) -> Pipeline:
        """The pipeline called ``name``; ``UnknownPipelineError`` if the tracker has none."""
        found = self._pipelines.get(name) if isinstance(name, str) else None
        if found is None:
            raise UnknownPipelineError(name, known=sorted(self._pipelines))
        return found

    # -- reading ----------------------------------------------------------------------

    def get(self, id: str) -> Deal:
        """The stored deal with its history."""
        return self._store.get(id)

    def deals(
        self, *, pipeline: str | None = None, stage: str | None = None, open: bool | None = None
    ) -> Iterator[Deal]:
        """The stored deals matching every given filter (see ``DealStore.find``)."""
        return self._store.find(pipeline=pipeline, stage=stage, open=open)

    # -- changing ---------------------------------------------------------------------

    def open(
        self,
        pipeline_name: str,
        id: str,
        *,
        amount: Decimal | int | str = 0,
        currency: str = "USD",
        bant: Bant | None = None,
        fields: Mapping[str, Any] | None = None,
        probability: float | None = None,
    ) -> Deal:
        """A new deal in the pipeline's first stage, stored; ``DuplicateDealError`` if taken."""
        deal = self.pipeline(pipeline_name).start(
            id,
            amount=amount,
            currency=currency,
            bant=bant,
            fields=fields,
            probability=probability,
            at=self._now(),
        )
        return self._commit(deal, None)

    def move(self, id: str, to: str, *, reason: str | None = None) -> Deal:
        """Move the deal to stage ``to`` (``reason`` is required when ``to`` is LOST)."""
        again: _Apply = lambda p, d: p.move(d, to, at=self._at(d), reason=reason)  # noqa: E731
        return self._change(id, again, lambda new: (again, _at_stage(new.stage)))

    def advance(self, id: str) -> Deal:
        """Move the deal to the stage after the one it is in when first loaded."""

        def plan(new: Deal) -> tuple[_Apply, _Done]:
            return (lambda p, d: p.move(d, new.stage, at=self._at(d))), _at_stage(new.stage)

        return self._change(id, lambda p, d: p.advance(d, at=self._at(d)), plan)

    def win(self, id: str) -> Deal:
        """Move the deal to WON (final)."""
        again: _Apply = lambda p, d: p.win(d, at=self._at(d))  # noqa: E731
        return self._change(id, again, lambda new: (again, _at_stage(WON)))

    def lose(self, id: str, reason: str) -> Deal:
        """Move the deal to LOST with ``reason``."""
        again: _Apply = lambda p, d: p.lose(d, reason, at=self._at(d))  # noqa: E731
        return self._change(id, again, lambda new: (again, _at_stage(LOST)))

    def reopen(self, id: str, to: str | None = None) -> Deal:
        """Move a lost deal back to ``to`` (default: the stage it was lost from)."""

        def plan(new: Deal) -> tuple[_Apply, _Done]:
            return (lambda p, d: p.reopen(d, new.stage, at=self._at(d))), _at_stage(new.stage)

        return self._change(id, lambda p, d: p.reopen(d, to, at=self._at(d)), plan)

    def update(self, id: str, **changes: Any) -> Deal:
        """Change non-stage fields (``deal.evolve``): amount, bant, fields, next action…"""
        again: _Apply = lambda p, d: d.evolve(**changes)  # noqa: E731

        def plan(new: Deal) -> tuple[_Apply, _Done]:
            return again, lambda d: all(getattr(d, k) == getattr(new, k) for k in changes)

        return self._change(id, again, plan)

    # -- listening --------------------------------------------------------------------

    def subscribe(
        self,
        callback: Listener,
        *,
        stage: str | Iterable[str] | None = None,
        event: str | Iterable[str] | None = None,
    ) -> Unsubscribe:
        """Call ``callback(change, deal)`` after each committed change that matches.

        ``stage`` filters on the destination, ``event`` on the kind ("start", "advance",
        "move", "win", "lose", "reopen", and "update" only when asked for). A listener
        that raises is logged and kept in ``listener_errors``; the change stands.
        """
        known = {n for p in self._pipelines.values() for n in p.stage_names}
        return self._listeners.subscribe(callback, stage=stage, event=event, known_stages=known)

    @property
    def listener_errors(self) -> tuple[ListenerFailure, ...]:
        """The most recent listener failures (up to 100), oldest first."""
        return self._listeners.failures

    # -- internals --------------------------------------------------------------------

    def _change(
        self, id: str, first: _Apply, plan: Callable[[Deal], tuple[_Apply, _Done]]
    ) -> Deal:
        """Load, apply, save; on a conflict reload and re-apply the first load's intent."""
        previous = self._store.get(id)
        deal = first(self.pipeline(previous.pipeline), previous)
        again, done = plan(deal)
        for attempt in range(self._retries + 1):
            try:
                return self._commit(deal, previous)
            except ConcurrencyError:
                if attempt == self._retries:
                    raise
            previous = self._store.get(id)
            if done(previous):
                return previous
            deal = again(self.pipeline(previous.pipeline), previous)
        raise AssertionError("unreachable")  # pragma: no cover

    def _commit(self, deal: Deal, previous: Deal | None) -> Deal:
        """Write ``deal`` (new when ``previous`` is None); the one place changes are stored."""
        if previous is None:
            self._store.add(deal)
        else:
            self._store.save(deal)
        self._listeners.notify(previous, deal, self.pipeline(deal.pipeline))
        return deal

    def _now(self) -> datetime:
        return c.to_utc(self._clock(), "the tracker clock's time")

    def _at(self, deal: Deal) -> datetime:
        """Now, but never before the deal's last change (clocks of several hosts differ)."""
        return max(self._now(), deal.history[-1].at)


def _at_stage(stage: str) -> _Done:
    return lambda deal: deal.stage == stage


def _by_name(pipelines: Pipeline | Iterable[Pipeline]) -> dict[str, Pipeline]:
    if isinstance(pipelines, Pipeline):
        pipelines = [pipelines]
    elif not isinstance(pipelines, Iterable) or isinstance(pipelines, (str, bytes)):
        raise ValidationError(
            f"pipelines must be a Pipeline or an iterable of them, not {pipelines!r}"
        )
    items = list(pipelines)
    found: dict[str, Pipeline] = {}
    for item in items:
        if not isinstance(item, Pipeline):
            raise ValidationError(f"pipelines must be Pipeline values, not {item!r}")
        if item.name in found:
            raise ValidationError(f"two pipelines are called {item.name!r}")
        found[item.name] = item
    if not found:
        raise ValidationError("a Tracker needs at least one pipeline")
    return found
