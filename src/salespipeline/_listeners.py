"""Listeners: callbacks told about committed changes, filtered by stage and event kind.

The ``Tracker`` calls ``Listeners.notify`` only after a save committed, so a listener
never hears of a refused or rolled-back change. Listeners run in subscription order,
in the thread that made the change; one that raises is logged (logger
``salespipeline.listeners``) and recorded, and neither undoes the change nor stops
the others.
"""

from __future__ import annotations

import collections
import inspect
import logging
import threading
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Final

import attrs

from salespipeline.deal import Deal, StageChange
from salespipeline.errors import UnknownStageError, ValidationError, shown
from salespipeline.log import Change
from salespipeline.stages import LOST, WON

if TYPE_CHECKING:
    from types import TracebackType

    from salespipeline.pipeline import Pipeline

__all__ = [
    "EVENTS",
    "STAGE_EVENTS",
    "Listener",
    "ListenerFailure",
    "Listeners",
    "Unsubscribe",
    "event_of",
]

logger: Final = logging.getLogger("salespipeline.listeners")

STAGE_EVENTS: Final = ("start", "advance", "move", "win", "lose", "reopen")
"""The kinds of stage change; a listener hears these unless it asks for others."""
EVENTS: Final = (*STAGE_EVENTS, "update")
"""Every event kind; ``update`` is a field change with no stage change."""
MAX_FAILURES: Final = 100

Listener = Callable[[Change, Deal], object]
"""A listener: called with the committed ``Change`` and the deal as that change left it."""


def event_of(change: StageChange | Change, pipeline: Pipeline) -> str:
    """The kind of a stage change: start, win, lose, reopen, advance or move.

    ``advance`` is a step to the next open stage; ``move`` is any other move between
    open stages (a skip forward or a step back). It is read from the change itself,
    so it is the same whichever Tracker call made it.
    """
    if change.to_stage is None:
        return "update"
    if change.from_stage is None:
        return "start"
    if change.to_stage == WON:
        return "win"
    if change.to_stage == LOST:
        return "lose"
    if change.from_stage == LOST:
        return "reopen"
    names = pipeline.stage_names
    known = change.from_stage in names and change.to_stage in names
    if known and names.index(change.to_stage) == names.index(change.from_stage) + 1:
        return "advance"
    return "move"


@attrs.frozen
class ListenerFailure:
    """A listener that raised: which one, on which change, and the exception."""

    listener: Listener
    event: str
    change: Change
    deal: Deal
    error: Exception


@attrs.define(eq=False)
class _Subscription:
    callback: Listener
    stages: frozenset[str] | None
    events: frozenset[str]
    active: bool = True

    def wants(self, event: str, stage: str) -> bool:
        return event in self.events and (self.stages is None or stage in self.stages)


class Unsubscribe:
    """The handle ``subscribe`` returns: call it to stop listening (again is harmless).

    It is also a context manager that unsubscribes on exit.
    """

    __slots__ = ("_registry", "_subscription")

    def __init__(self, registry: Listeners, subscription: _Subscription) -> None:
        self._registry = registry
        self._subscription = subscription

    @property
    def active(self) -> bool:
        """True until this subscription is cancelled."""
        return self._subscription.active

    def __call__(self) -> None:
        self._registry._remove(self._subscription)

    def __enter__(self) -> Unsubscribe:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self()

    def __repr__(self) -> str:
        state = "active" if self.active else "cancelled"
        return f"<Unsubscribe {self._subscription.callback!r} ({state})>"


def _names(value: str | Iterable[str] | None, what: str) -> frozenset[str] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    names = list(items) if isinstance(items, Iterable) else []
    if not names or not all(isinstance(n, str) for n in names):
        raise ValidationError(
            f"{what} must be a name or a collection of names, not {shown(value)}"
        )
    return frozenset(names)


class Listeners:
    """A thread-safe registry of listeners and a record of the recent failures."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self.subscriptions: tuple[_Subscription, ...] = ()
        """Every active subscription, oldest first: empty when nobody listens."""
        self._failures: collections.deque[ListenerFailure] = collections.deque(maxlen=MAX_FAILURES)

    def subscribe(
        self,
        callback: Listener,
        *,
        stage: str | Iterable[str] | None = None,
        event: str | Iterable[str] | None = None,
        known_stages: Collection[str] | None = None,
    ) -> Unsubscribe:
        """Call ``callback(change, deal)`` after each committed change that matches.

        ``stage`` filters on the destination stage, ``event`` on the kinds in
        ``EVENTS``; by default every stage change is heard, and ``update`` only when
        asked for. ``known_stages`` lets a caller reject stage names that cannot occur.
        """
        subscription = _Subscription(
            _checked_callback(callback),
            _checked_stages(stage, known_stages),
            _checked_events(event),
        )
        with self._lock:
            self.subscriptions = (*self.subscriptions, subscription)
        return Unsubscribe(self, subscription)

    def _remove(self, subscription: _Subscription) -> None:
        with self._lock:
            subscription.active = False
            self.subscriptions = tuple(s for s in self.subscriptions if s is not subscription)

    def __len__(self) -> int:
        return len(self.subscriptions)

    @property
    def failures(self) -> tuple[ListenerFailure, ...]:
        """The most recent listener failures (up to ``MAX_FAILURES``), oldest first."""
        with self._lock:
            return tuple(self._failures)

    def notify(
        self, change: Change, deal: Deal, pipeline: Pipeline
    ) -> tuple[ListenerFailure, ...]:
        """Dispatch the committed ``change``, which left the deal as ``deal``.

        A stage move is its kind of event (see ``event_of``); any other change is an
        ``update``. A change that a listener commits (a nested tracker call) is
        delivered once the current one has reached every listener, so each thread's
        changes are heard in commit order. Returns the failures of this call's
        dispatch, nested ones included.
        """
        if not self.subscriptions:
            return ()
        pending = self._pending()
        pending.append((event_of(change, pipeline), change, deal))
        if self._local.busy:
            return ()
        return self._drain(pending)

    def _pending(self) -> collections.deque[tuple[str, Change, Deal]]:
        local = self._local
        if not hasattr(local, "pending"):
            local.pending = collections.deque()
            local.busy = False
        pending: collections.deque[tuple[str, Change, Deal]] = local.pending
        return pending

    def _drain(
        self, pending: collections.deque[tuple[str, Change, Deal]]
    ) -> tuple[ListenerFailure, ...]:
        failures: list[ListenerFailure] = []
        self._local.busy = True
        try:
            while pending:
                failures.extend(self._dispatch(*pending.popleft()))
        finally:
            self._local.busy = False
            pending.clear()
        return tuple(failures)

    def _dispatch(self, event: str, change: Change, deal: Deal) -> list[ListenerFailure]:
        failures = []
        for subscription in self.subscriptions:
            if not (subscription.active and subscription.wants(event, deal.stage)):
                continue
            try:
                subscription.callback(change, deal)
            except Exception as error:
                failures.append(self._record(subscription.callback, event, change, deal, error))
        return failures

    def _record(
        self, callback: Listener, event: str, change: Change, deal: Deal, error: Exception
    ) -> ListenerFailure:
        logger.exception(
            "listener %r failed on %s of deal %r to %r (version %d); the change stands",
            callback,
            event,
            deal.id,
            deal.stage,
            deal.version,
        )
        failure = ListenerFailure(callback, event, change, deal, error)
        with self._lock:
            self._failures.append(failure)
        return failure


def _checked_callback(callback: object) -> Listener:
    if not callable(callback):
        raise ValidationError(f"a listener must be callable, not {shown(callback)}")
    if inspect.iscoroutinefunction(callback):
        raise ValidationError(
            "a listener is called synchronously and an async function would never run: "
            "hand the change to your event loop with loop.call_soon_threadsafe instead "
            "(see the how-to 'React to stage changes')"
        )
    return callback


def _checked_stages(
    stage: str | Iterable[str] | None, known: Collection[str] | None
) -> frozenset[str] | None:
    stages = _names(stage, "stage")
    if stages is not None and known is not None:
        unknown = sorted(stages - set(known))
        if unknown:
            raise UnknownStageError(unknown[0])
    return stages


def _checked_events(event: str | Iterable[str] | None) -> frozenset[str]:
    events = _names(event, "event")
    if events is None:
        return frozenset(STAGE_EVENTS)
    unknown = sorted(events - set(EVENTS))
    if unknown:
        raise ValidationError(f"unknown event kind {unknown[0]!r}; use one of {list(EVENTS)}")
    return events
