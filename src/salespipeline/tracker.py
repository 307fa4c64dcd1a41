"""Tracker: the entry point for apps, tying pipelines, a store and a clock together.

Every change loads the deal, lets the pipeline check and apply the move, and saves
it optimistically. When another writer got there first (``ConcurrencyError``), the
Tracker reloads and finishes the same intent, up to ``retries`` times: a deal
already at the destination is returned unchanged (two concurrent clicks on
"advance" move a deal one stage, not two); one still where the move was decided is
re-checked, guards included, and moved; one that is anywhere else is refused with
``ConcurrencyError``. The decision rule lives in ``_commands``; this module does
the I/O around it.

Every command takes ``actor=`` (who; the Tracker's ``actor`` by default) and
``key=``: a command whose key is already in the deal's log writes nothing and
returns the deal as that change left it, so a client may retry after a lost reply.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from salespipeline import _checks as c
from salespipeline import log
from salespipeline._commands import (
    Changes,
    Command,
    Commit,
    Load,
    Remembered,
    Step,
    Steps,
    T,
    opened,
    run,
    with_actor,
)
from salespipeline._listeners import EVENTS, Listener, ListenerFailure, Listeners, Unsubscribe
from salespipeline.deal import Bant, Deal, to_actor
from salespipeline.errors import (
    SalesPipelineError,
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
        actor: str | None = None,
    ) -> None:
        if not isinstance(store, DealStore):
            raise ValidationError(f"store must be a DealStore, not {type(store).__name__}")
        if not c.is_int(retries) or retries < 0:
            raise ValidationError(f"retries must be a non-negative integer, not {shown(retries)}")
        if clock is not None and not callable(clock):
            raise ValidationError("clock must be a zero-argument callable returning a datetime")
        self._actor = to_actor(actor)
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
        owner: str | None = None,
        close_date: date | None = None,
        forecast_category: str | None = None,
        next_action: str | None = None,
        next_action_at: datetime | None = None,
        actor: str | None = None,
        key: str | None = None,
    ) -> Deal:
        """A new deal in the pipeline's first stage, stored; ``DuplicateDealError`` if taken.

        With ``key``: when deal ``id`` was opened with that key, that deal as it was
        opened, and nothing is written.
        """
        who, key = self._who(actor), _key(key)

        def start() -> Deal:
            return self.pipeline(pipeline_name).start(
                id,
                amount=amount,
                currency=currency,
                bant=bant,
                fields=fields,
                probability=probability,
                owner=owner,
                close_date=close_date,
                forecast_category=forecast_category,
                next_action=next_action,
                next_action_at=next_action_at,
                at=self._now(),
                actor=who,
            )

        return self._drive(opened(id, key, start, who))

    def move(
        self,
        id: str,
        to: str,
        *,
        reason: str | None = None,
        actor: str | None = None,
        key: str | None = None,
    ) -> Deal:
        """Move the deal to stage ``to`` (``reason`` is required when ``to`` is LOST)."""
        return self._run(id, Command("move", to=to, reason=reason), actor, key)

    def advance(self, id: str, *, actor: str | None = None, key: str | None = None) -> Deal:
        """Move the deal to the stage after the one it is in when first loaded."""
        return self._run(id, Command("advance"), actor, key)

    def win(self, id: str, *, actor: str | None = None, key: str | None = None) -> Deal:
        """Move the deal to WON (final)."""
        return self._run(id, Command("win"), actor, key)

    def lose(
        self, id: str, reason: str, *, actor: str | None = None, key: str | None = None
    ) -> Deal:
        """Move the deal to LOST with ``reason``."""
        return self._run(id, Command("lose", reason=reason), actor, key)

    def reopen(
        self,
        id: str,
        to: str | None = None,
        *,
        actor: str | None = None,
        key: str | None = None,
    ) -> Deal:
        """Move a lost deal back to ``to`` (default: the stage it was lost from)."""
        return self._run(id, Command("reopen", to=to), actor, key)

    def update(
        self,
        id: str,
        *,
        actor: str | None = None,
        key: str | None = None,
        reason: str | None = None,
        **changes: Any,
    ) -> Deal:
        """Change non-stage attributes (``deal.evolve``): amount, owner, fields, next action…

        ``reason`` says why, in the log. An update that changes nothing writes
        nothing and notifies no one.
        """
        return self._run(id, Command("update", reason=reason, changes=changes), actor, key)

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

    def _run(self, id: str, command: Command, actor: str | None, key: str | None) -> Deal:
        """Decide, save; after a conflict, reload and finish the same intent (``run``)."""
        id = c.check_id(id)
        who = self._who(actor)
        if who is not None:
            command = with_actor(command, actor=who)
        steps = run(
            id, command, _key(key), pipeline=self.pipeline, now=self._now, retries=self._retries
        )
        return self._drive(steps)

    def _drive(self, steps: Steps[T]) -> T:
        """Perform each step the decision asks for, handing back its result or error."""
        reply: Any = None
        failure: SalesPipelineError | None = None
        while True:
            try:
                step = steps.send(reply) if failure is None else steps.throw(failure)
            except StopIteration as done:
                result: T = done.value
                return result
            try:
                reply, failure = self._perform(step), None
            except SalesPipelineError as error:
                reply, failure = None, error

    def _perform(self, step: Step) -> Any:
        """The one step's I/O, on this tracker's store."""
        store = self._store
        if isinstance(step, Remembered):
            return store.last_known(step.id)
        if isinstance(step, Load):
            return store.load(step.id)
        if isinstance(step, Commit):
            return self._commit(step.deal, step.previous, step.actor, step.key, step.reason)
        if isinstance(step, Changes):
            if step.key is None:
                return store.changes(step.id)
            return store.changes(step.id, key=step.key)
        return store.get(step.id)

    def _commit(
        self,
        deal: Deal,
        previous: Deal | None,
        actor: str | None,
        key: str | None,
        reason: str | None = None,
    ) -> Deal:
        """Write ``deal`` (new when ``previous`` is None); the one place changes are stored."""
        if deal.history[-1].version == deal.version:
            reason = None  # a move's reason is on its history entry
        options = {
            name: value
            for name, value in (("actor", actor), ("reason", reason), ("key", key))
            if value is not None
        }  # a store written for part 1 takes the deal alone
        if previous is None:
            change = self._store.add(deal, **options)
        else:
            change = self._store.save(deal, **options)
        if not isinstance(change, log.Change):
            change = log.derive(previous, deal, **options)
        pipeline = self.pipeline(deal.pipeline)
        self._store._when_committed(lambda: _heard(self._listeners, change, deal, pipeline))
        return deal

    def _who(self, actor: str | None) -> str | None:
        return self._actor if actor is None else to_actor(actor)

    def _now(self) -> datetime:
        return c.to_utc(self._clock(), "the tracker clock's time")


def _heard(listeners: Listeners, change: log.Change, deal: Deal, pipeline: Pipeline) -> None:
    """Tell the listeners of a committed change (their failures are kept, not raised)."""
    listeners.notify(change, deal, pipeline)


def _key(key: object) -> str | None:
    return None if key is None else c.check_id(key, "key")


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
