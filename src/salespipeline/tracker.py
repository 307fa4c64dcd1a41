"""Tracker: the entry point for apps, tying pipelines, a store and a clock together.

Every change loads the deal, lets the pipeline check and apply the move, and saves
it optimistically. When another writer got there first (``ConcurrencyError``), the
Tracker reloads and finishes the same intent, up to ``retries`` times: a deal
already at the destination is returned unchanged (two concurrent clicks on
"advance" move a deal one stage, not two); one still where the move was decided is
re-checked, guards included, and moved; one that is anywhere else is refused with
``ConcurrencyError``. The decision rule lives in ``_commands``; this module does
the I/O around it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from salespipeline import _checks as c
from salespipeline._commands import Command, decide, redo
from salespipeline._listeners import EVENTS, Listener, ListenerFailure, Listeners, Unsubscribe
from salespipeline.deal import Bant, Deal
from salespipeline.errors import (
    ConcurrencyError,
    UnknownPipelineError,
    UnknownStageError,
    ValidationError,
    shown,
)
from salespipeline.pipeline import Clock, Pipeline, system_clock
from salespipeline.storage.base import DealStore, check_filters

__all__ = ["EVENTS", "Listener", "ListenerFailure", "Tracker", "Unsubscribe"]


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
        if not c.is_int(retries) or retries < 0:
            raise ValidationError(f"retries must be a non-negative integer, not {shown(retries)}")
        if clock is not None and not callable(clock):
            raise ValidationError("clock must be a zero-argument callable returning a datetime")
        self._store = store
        self._pipelines = _by_name(pipelines)
        self._clock: Clock = clock or system_clock
        self._retries = retries
        self._listeners = Listeners()
        if record_definitions:
            for pipeline in self._pipelines.values():
                pipeline.to_dict()  # every definition must be writable before any is written
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
        """The stored deals matching every given filter (see ``DealStore.find``).

        A pipeline the tracker does not have is ``UnknownPipelineError``, a stage none
        of the named (or, without ``pipeline``, of any) pipelines has is
        ``UnknownStageError``: a typo never reads as "no deals".
        """
        check_filters(pipeline, stage, open)
        if pipeline is not None:
            self.pipeline(pipeline)
        if stage is not None:
            scope = self._pipelines.values() if pipeline is None else [self.pipeline(pipeline)]
            if not any(stage in p.positions for p in scope):
                raise UnknownStageError(stage, pipeline=pipeline)
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
        return self._run(id, Command("move", to=to, reason=reason))

    def advance(self, id: str) -> Deal:
        """Move the deal to the stage after the one it is in when first loaded."""
        return self._run(id, Command("advance"))

    def win(self, id: str) -> Deal:
        """Move the deal to WON (final)."""
        return self._run(id, Command("win"))

    def lose(self, id: str, reason: str) -> Deal:
        """Move the deal to LOST with ``reason``."""
        return self._run(id, Command("lose", reason=reason))

    def reopen(self, id: str, to: str | None = None) -> Deal:
        """Move a lost deal back to ``to`` (default: the stage it was lost from)."""
        return self._run(id, Command("reopen", to=to))

    def update(self, id: str, **changes: Any) -> Deal:
        """Change non-stage fields (``deal.evolve``): amount, bant, fields, next action…

        An update that changes nothing writes nothing and notifies no one.
        """
        return self._run(id, Command("update", changes=changes))

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

    def _run(self, id: str, command: Command) -> Deal:
        """Load, decide, save; after a conflict, reload and finish the same intent."""
        previous = self._store.get(id)
        pipeline = self.pipeline(previous.pipeline)
        intent, deal = decide(command, pipeline, previous, now=self._now)
        for attempt in range(self._retries + 1):
            if deal is None:
                return previous
            try:
                return self._commit(deal, previous)
            except ConcurrencyError:
                if attempt == self._retries:
                    raise
            previous = self._store.get(id)
            deal = redo(intent, self.pipeline(previous.pipeline), previous, now=self._now)
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


def _by_name(pipelines: Pipeline | Iterable[Pipeline]) -> dict[str, Pipeline]:
    if isinstance(pipelines, Pipeline):
        pipelines = [pipelines]
    elif not isinstance(pipelines, Iterable) or isinstance(pipelines, (str, bytes)):
        raise ValidationError(
            f"pipelines must be a Pipeline or an iterable of them, not {shown(pipelines)}"
        )
    items = list(pipelines)
    found: dict[str, Pipeline] = {}
    for item in items:
        if not isinstance(item, Pipeline):
            raise ValidationError(f"pipelines must be Pipeline values, not {shown(item)}")
        if item.name in found:
            raise ValidationError(f"two pipelines are called {item.name!r}")
        found[item.name] = item
    if not found:
        raise ValidationError("a Tracker needs at least one pipeline")
    return found
