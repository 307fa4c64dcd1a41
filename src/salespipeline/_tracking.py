"""The commands a tracker offers, written once for the sync and the async driver (private).

``Commands`` checks every argument, builds the steps of ``_commands`` for each
call, and hands them to its driver's ``_drive``: ``Tracker`` performs them with
blocking calls and returns the deal, ``aio.AsyncTracker`` awaits them and returns
an awaitable of it. The two differ only in how they do I/O (h11's sans-I/O style).
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar, Final, Generic, Protocol, TypeVar

from salespipeline import _bulk, log
from salespipeline import _checks as c
from salespipeline._commands import (
    Command,
    CommitMany,
    Erase,
    Get,
    Steps,
    erased,
    opened,
    opened_many,
    run,
    with_actor,
)
from salespipeline._listeners import Listener, ListenerFailure, Listeners, Unsubscribe
from salespipeline.deal import Bant, Deal, to_actor
from salespipeline.errors import UnknownPipelineError, UnknownStageError, ValidationError, shown
from salespipeline.pipeline import Clock, Pipeline, system_clock
from salespipeline.storage._erasure import check_erasure
from salespipeline.storage.base import check_filters

__all__ = ["Commands", "Many", "Result"]


class Remembering(Protocol):
    """What a tracker asks of its store without a step: both kinds of store remember
    the deals they last read or wrote, in memory."""

    def last_known(self, id: str) -> Deal | None: ...


Store = TypeVar("Store", bound=Remembering)
"""The store a tracker drives: a ``DealStore`` (``Tracker``) or an ``AsyncDealStore``."""
Result = TypeVar("Result")
"""What a command returns: the deal (``Tracker``), or an awaitable of it (``AsyncTracker``)."""
Many = TypeVar("Many")
"""What a bulk command returns: the deals, or an awaitable of them."""


class Commands(abc.ABC, Generic[Store, Result, Many]):
    """Pipelines + a store + a clock + listeners: every tracker command, checked and planned.

    Each command returns the deal it leaves (for ``AsyncTracker``, an awaitable of
    it). A subclass performs the planned reads and writes in ``_drive``.
    """

    _stores: ClassVar[type]
    """The kind of store this driver drives."""

    def __init__(
        self,
        store: Store,
        pipelines: Pipeline | Iterable[Pipeline],
        *,
        clock: Clock | None = None,
        retries: int = 3,
        record_definitions: bool = True,
        actor: str | None = None,
    ) -> None:
        if not isinstance(store, self._stores):
            raise ValidationError(
                f"{type(self).__name__} drives a {self._stores.__name__}, not a "
                f"{type(store).__name__} (Tracker takes the sync stores, AsyncTracker the "
                "async ones in salespipeline.aio)"
            )
        if not c.is_int(retries) or retries < 0:
            raise ValidationError(f"retries must be a non-negative integer, not {shown(retries)}")
        if clock is not None and not callable(clock):
            raise ValidationError("clock must be a zero-argument callable returning a datetime")
        self._actor = to_actor(actor)
        self._pipelines = _by_name(pipelines)
        clock = clock or system_clock
        self._now: Clock = clock if clock is system_clock else functools.partial(_time_of, clock)
        """The current time for a change: the system clock's (aware UTC already), or the
        given clock's, checked."""
        self._retries = retries
        self._listeners = Listeners()
        self._store = store
        recorded = tuple(self._pipelines.values()) if record_definitions else ()
        for pipeline in recorded:
            pipeline.to_dict()  # every definition must be writable before any is written
        self._record(recorded)

    @property
    def store(self) -> Store:
        return self._store

    @abc.abstractmethod
    def _record(self, pipelines: tuple[Pipeline, ...]) -> None:
        """Record these definitions in the store (now, or with the first command)."""

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

    def get(self, id: str) -> Result:
        """The stored deal with its history."""
        return self._drive(_got(c.check_id(id)))

    def _filters(
        self, pipeline: str | None, stage: str | None, open: bool | None, query: Mapping[str, Any]
    ) -> None:
        """Refuse filters no deal could match: a typo never reads as "no deals"."""
        unknown = sorted(set(query) - _QUERY)
        if unknown:
            raise ValidationError(
                f"deals() has no filter {unknown[0]!r}; use pipeline, stage, open or "
                f"{', '.join(sorted(_QUERY))}",
                field=unknown[0],
            )
        check_filters(pipeline, stage, open)
        if pipeline is not None:
            self.pipeline(pipeline)
        if stage is not None:
            scope = self._pipelines.values() if pipeline is None else [self.pipeline(pipeline)]
            if not any(stage in p.positions for p in scope):
                raise UnknownStageError(stage, pipeline=pipeline)

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
    ) -> Result:
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
    ) -> Result:
        """Move the deal to stage ``to`` (``reason`` is required when ``to`` is LOST)."""
        return self._run(id, Command("move", to, reason), actor, key)

    def advance(self, id: str, *, actor: str | None = None, key: str | None = None) -> Result:
        """Move the deal to the stage after the one it is in when first loaded."""
        return self._run(id, Command("advance"), actor, key)

    def win(self, id: str, *, actor: str | None = None, key: str | None = None) -> Result:
        """Move the deal to WON (final)."""
        return self._run(id, Command("win"), actor, key)

    def lose(
        self, id: str, reason: str, *, actor: str | None = None, key: str | None = None
    ) -> Result:
        """Move the deal to LOST with ``reason``."""
        return self._run(id, Command("lose", reason=reason), actor, key)

    def reopen(
        self,
        id: str,
        to: str | None = None,
        *,
        actor: str | None = None,
        key: str | None = None,
    ) -> Result:
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
    ) -> Result:
        """Change non-stage attributes (``deal.evolve``): amount, owner, fields, next action…

        ``reason`` says why, in the log. An update that changes nothing writes
        nothing and notifies no one.
        """
        return self._run(id, Command("update", reason=reason, changes=changes), actor, key)

    def open_many(
        self,
        pipeline_name: str,
        items: Iterable[Mapping[str, Any]],
        *,
        actor: str | None = None,
        key: str | None = None,
    ) -> Many:
        """New deals in the pipeline's first stage, stored in one transaction: all or nothing.

        Each item is a mapping of ``open()``'s keywords with ``id``; at most
        ``limits.MAX_BULK`` items. A taken or repeated id is ``DuplicateDealError`` and
        nothing is written; listeners hear every open after the commit. With ``key``
        (one for the batch, logged on each deal's ``open``), a retried batch returns
        the deals as it opened them and writes nothing.
        """
        who, key = self._who(actor), _key(key)
        pipeline = self.pipeline(pipeline_name)
        at = self._now()
        deals = tuple(
            pipeline.start(item["id"], **_attributes(item), at=at, actor=who)
            for item in _bulk.check_items(items)
        )
        return self._drive_many(opened_many(deals, who, key))

    def import_deal(
        self,
        pipeline_name: str,
        id: str,
        *,
        history: Sequence[tuple[str, datetime]],
        lost_reason: str | None = None,
        actor: str | None = None,
        key: str | None = None,
        **attributes: Any,
    ) -> Result:
        """A deal brought from another system with its past: one ``import`` change per
        ``history`` entry, ``(stage, at)``, oldest first.

        The past is taken as fact: any order of the pipeline's stages, guards and the
        move graph not applied. Stages must exist (``UnknownStageError``), times never
        run backwards, and a LOST entry needs ``lost_reason`` (``ValidationError``).
        ``attributes`` are ``open()``'s (amount, owner, fields…). With ``key``, a deal
        already imported with it is returned and nothing is written.
        """
        who, key = self._who(actor), _key(key)

        def build() -> Deal:
            return _bulk.imported_deal(
                self.pipeline(pipeline_name),
                id,
                history,
                lost_reason=lost_reason,
                attributes=attributes,
                actor=who,
            )

        return self._drive(opened(c.check_id(id), key, build, who, imported=True))

    def _erasure(
        self, id: str, actor: str | None, reason: str, key: str | None
    ) -> Steps[log.Change]:
        """The checked plan of ``erase``: an actor (the call's, else the tracker's) and a
        non-blank reason are required, refused before any I/O."""
        erasure = check_erasure(id, self._who(actor), reason, key, self._now())
        return erased(Erase(*erasure))

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

    @abc.abstractmethod
    def _drive(self, steps: Steps[Deal]) -> Result:
        """Perform each step the decision asks for, handing back its result or error."""

    @abc.abstractmethod
    def _drive_many(self, steps: Steps[tuple[Deal, ...]]) -> Many:
        """``_drive`` for a bulk command, which gives the deals."""

    def _told(
        self,
        change: object,
        previous: Deal | None,
        deal: Deal,
        options: Mapping[str, str],
        when_committed: Callable[[Callable[[], None]], None],
    ) -> None:
        """Once a commit is committed, tell the listeners of its change (nothing is
        derived, nothing waits, when nobody listens)."""
        if self._listeners.subscriptions:
            told = logged(change, previous, deal, options)
            when_committed(lambda: self._heard(told, deal))

    def _tell_each(
        self,
        changes: Sequence[object],
        step: CommitMany,
        when_committed: Callable[[Callable[[], None]], None],
    ) -> None:
        """Once the bulk commit is committed, tell the listeners of each deal's change
        (nothing waits when nobody listens, as after a single commit)."""
        if not self._listeners.subscriptions:
            return
        for change, deal in zip(changes, step.deals, strict=True):
            told = logged(change, None, deal, {})
            when_committed(functools.partial(self._heard, told, deal))

    def _run(self, id: str, command: Command, actor: str | None, key: str | None) -> Result:
        """Decide, save; after a conflict, reload and finish the same intent (``run``)."""
        id = c.check_id(id)
        who = self._who(actor)
        if who is not None:
            command = with_actor(command, actor=who)
        steps = run(
            id,
            command,
            _key(key),
            pipeline=self.pipeline,
            now=self._now,
            remembered=self._store.last_known,
            retries=self._retries,
        )
        return self._drive(steps)

    def _who(self, actor: str | None) -> str | None:
        return self._actor if actor is None else to_actor(actor)

    def _heard(self, change: log.Change, deal: Deal) -> None:
        """Tell the listeners of a committed change (their failures are kept, not raised)."""
        self._listeners.notify(change, deal, self.pipeline(deal.pipeline))


def commit_options(
    deal: Deal, actor: str | None, key: str | None, reason: str | None
) -> dict[str, str]:
    """The keywords a store's ``add``/``save`` takes for a commit: only those given (a
    store written for part 1 takes the deal alone); a move's reason is on its entry."""
    options = {}
    if actor is not None:
        options["actor"] = actor
    if reason is not None and deal.history[-1].version != deal.version:
        options["reason"] = reason
    if key is not None:
        options["key"] = key
    return options


def logged(
    change: object, previous: Deal | None, deal: Deal, options: Mapping[str, str]
) -> log.Change:
    """The change a store returned; derived here for a store written for part 1."""
    if isinstance(change, log.Change):
        return change
    return log.derive(previous, deal, **options)


_QUERY: Final = frozenset({"owner", "fields", "updated_since", "order_by", "limit", "after"})
"""The keywords ``deals()`` passes on to ``find`` besides pipeline, stage and open."""


def many_options(step: CommitMany) -> dict[str, Any]:
    """The keywords a store's ``add_many`` takes for a bulk commit."""
    options: dict[str, Any] = (
        commit_options(step.deals[0], step.actor, step.key, None) if step.deals else {}
    )
    if step.imported:
        options["imported"] = True
    return options


def _attributes(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in item.items() if name != "id"}


def _got(id: str) -> Steps[Deal]:
    deal: Deal = yield Get(id)
    return deal


def _time_of(clock: Clock) -> datetime:
    """The time a tracker's own clock gives, checked: aware, in range, normalised to UTC."""
    return c.to_utc(clock(), "the tracker clock's time")


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
