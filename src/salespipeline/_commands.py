"""Tracker commands as values, and the one rule that decides and retries them (private).

A command is decided once, on the deal as first loaded; that fixes where it sends
the deal (``advance`` means "to the stage after the one I saw"). The ``Intent``
carries the decision through retries after a conflict, under DESIGN.md's retry
rule. Nothing here does I/O (the sans-I/O style of h11): ``run`` and ``opened`` are
generators that yield each read or write they need as a ``Step`` value and take its
result back (or its error, thrown in), so a sync driver (``Tracker``) and an async
one perform the same decisions and differ only in how they do the I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, Literal, NamedTuple, TypeVar

import attrs

from salespipeline import log
from salespipeline.deal import Deal
from salespipeline.errors import (
    ConcurrencyError,
    DealNotFoundError,
    DuplicateDealError,
    SalesPipelineError,
    ValidationError,
)
from salespipeline.pipeline import Pipeline

__all__ = [
    "STARTED",
    "Changes",
    "Command",
    "Commit",
    "CommitMany",
    "Erase",
    "Finished",
    "Get",
    "Intent",
    "Load",
    "Outcome",
    "Step",
    "Steps",
    "decide",
    "erased",
    "intent_of",
    "keyed",
    "keyed_many",
    "opened",
    "opened_many",
    "read",
    "redo",
    "resume",
    "run",
    "with_actor",
]

Kind = Literal["move", "advance", "win", "lose", "reopen", "update"]


_NO_VALUES: Final[Mapping[str, Any]] = MappingProxyType({})


class Command(NamedTuple):
    """What one Tracker call asks of a stored deal; its arguments are checked when applied.

    A named tuple, read-only and quick to make: every Tracker call makes one (a frozen
    attrs class with a dict factory took several times as long).
    """

    kind: Kind
    to: str | None = None
    reason: str | None = None
    changes: Mapping[str, Any] = _NO_VALUES
    actor: str | None = None


def with_actor(command: Command, *, actor: str) -> Command:
    """A copy of a command with ``actor=`` set."""
    return Command(command.kind, command.to, command.reason, command.changes, actor)


class Intent(NamedTuple):
    """A command as decided: the stage and version it saw, and where it sends the deal.

    ``to`` is None for an update, which moves nothing and instead sets ``values``
    (the named attributes as the first application converted them). Made only when
    a commit found another version (``intent_of``): the common path needs none.
    """

    command: Command
    seen: str
    version: int
    to: str | None
    values: Mapping[str, Any] = _NO_VALUES

    def is_done(self, deal: Deal) -> bool:
        """Whether ``deal`` already is what this intent asks for."""
        if self.to is None:
            return all(getattr(deal, name) == value for name, value in self.values.items())
        return deal.stage == self.to


Now = Callable[[], datetime]
"""The current time, which every command stamps on the change it makes."""
Recall = Callable[[str], "Deal | None"]
"""The deal the store last read or wrote (``DealStore.last_known``), or None: a
lookup in memory that does no I/O, so it is called, like the clock, not yielded."""


def decide(command: Command, pipeline: Pipeline, deal: Deal, *, now: Now) -> Deal | None:
    """The deal to write for ``command`` on the loaded ``deal`` (None: no change)."""
    kind, actor, at = command.kind, command.actor, _at(deal, now)
    if kind == "move":
        to, reason = command.to, command.reason
        return pipeline.move(deal, to, at=at, reason=reason, actor=actor)  # type: ignore[arg-type]
    if kind == "update":
        changed = deal.evolve(at=at, **command.changes)
        return None if intent_of(command, deal, changed).is_done(deal) else changed
    if kind == "advance":
        return pipeline.advance(deal, at=at, actor=actor)
    if kind == "win":
        return pipeline.win(deal, at=at, actor=actor)
    if kind == "lose":
        return pipeline.lose(deal, command.reason, at=at, actor=actor)  # type: ignore[arg-type]
    return pipeline.reopen(deal, command.to, at=at, actor=actor)


def intent_of(command: Command, seen: Deal, changed: Deal) -> Intent:
    """The intent of ``command`` decided on ``seen``, which it changed into ``changed``."""
    if command.kind == "update":
        values = {name: getattr(changed, name) for name in command.changes}
        return Intent(command, seen.stage, seen.version, None, values)
    return Intent(command, seen.stage, seen.version, changed.stage)


def redo(intent: Intent, pipeline: Pipeline, deal: Deal, *, now: Now) -> Deal | None:
    """After a conflict: the deal to write now, or None when ``deal`` already is done.

    A move is re-checked (guards included) and re-applied only while the deal is
    still in the stage the command saw; anywhere else it is refused with
    ``ConcurrencyError``, so a move decided on one state is never applied to
    another (an ``advance`` never reopens a deal someone else just lost). An
    update re-applies only the attributes it names, wherever the deal is.
    """
    if intent.is_done(deal):
        return None
    if intent.to is None:
        return deal.evolve(at=_at(deal, now), **intent.values)
    if deal.stage != intent.seen:
        raise ConcurrencyError(
            deal.id,
            expected=intent.version,
            actual=deal.version,
            seen=intent.seen,
            found=deal.stage,
        )
    command = intent.command
    return pipeline.move(
        deal, intent.to, at=_at(deal, now), reason=command.reason, actor=command.actor
    )


def _at(deal: Deal, now: Now) -> datetime:
    """Now, but never before the deal's last change (clocks of several hosts differ)."""
    at, last = now(), deal.updated_at
    return at if at >= last else last


# -- the decision core: the reads and writes a command needs, as values ---------------


@attrs.frozen
class Load:
    """Read the stored deal to change (``DealStore.load``); ``DealNotFoundError`` if none."""

    id: str


@attrs.frozen
class Get:
    """Read the whole stored deal (``DealStore.get``)."""

    id: str


@attrs.frozen
class Changes:
    """Read the deal's changes (``DealStore.changes``), only the one made with ``key`` if set."""

    id: str
    key: str | None = None


class Commit(NamedTuple):
    """Store ``deal`` (new when ``previous`` is None) and tell the listeners; the deal back.

    ``ConcurrencyError`` when the stored deal moved on, ``DuplicateDealError`` when a
    new deal's id is taken. A named tuple, read-only and quick to make: every change
    makes one.
    """

    deal: Deal
    previous: Deal | None
    actor: str | None
    key: str | None
    reason: str | None = None


@attrs.frozen
class CommitMany:
    """Store new ``deals`` in one transaction (``DealStore.add_many``, as ``import``
    changes when ``imported``) and tell the listeners of each; the deals back."""

    deals: tuple[Deal, ...]
    actor: str | None
    key: str | None = None
    imported: bool = False


@attrs.frozen
class Erase:
    """Erase the stored deal (``DealStore.erase``): the ``erase`` change it logged back."""

    id: str
    actor: str
    reason: str
    key: str | None
    at: datetime


Step = Load | Get | Changes | Commit | CommitMany | Erase
T = TypeVar("T")
Steps = Generator[Step, Any, T]
"""A decision in progress: it yields the steps it needs and returns its result."""


class Finished(NamedTuple):
    """A decision's result, once it needs no more steps (a named tuple: one is made on
    every command, and a frozen class takes many times as long to make)."""

    value: Any


Outcome = tuple[Any, "SalesPipelineError | None"]
"""What a performed step gave: its result and None, or None and the error it raised."""
STARTED: Final[Outcome] = (None, None)


def resume(steps: Steps[Any], outcome: Outcome) -> Step | Finished:
    """Hand ``steps`` the outcome of its last step; the next step it needs, or its result."""
    reply, failure = outcome
    try:
        return steps.send(reply) if failure is None else steps.throw(failure)
    except StopIteration as done:
        return Finished(done.value)


def read(
    step: Load | Get | Changes | Erase,
) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """The store method a step other than a commit calls, with its arguments: (name,
    args, keywords)."""
    if isinstance(step, Erase):
        options = {"actor": step.actor, "reason": step.reason, "key": step.key, "at": step.at}
        return "erase", (step.id,), options
    if isinstance(step, Changes) and step.key is not None:
        return "changes", (step.id,), {"key": step.key}
    return _READS[type(step)], (step.id,), {}


_READS: Final = {Load: "load", Get: "get", Changes: "changes"}


def run(
    id: str,
    command: Command,
    key: str | None,
    *,
    pipeline: Callable[[str], Pipeline],
    now: Now,
    remembered: Recall,
    retries: int,
) -> Steps[Deal]:
    """Decide ``command`` on deal ``id``, commit it, and after a conflict finish the same
    intent (at most ``retries`` times); the deal as stored.

    The deal the store remembers (``remembered(id)``) saves a read when it is
    current, which the commit's version check proves; only a write is decided on it.
    A refusal or "nothing to do" may come from a stale copy, so those are decided
    again on the deal loaded fresh, as is a command whose commit found another
    version, and that is not a retry.
    With ``key``, a command already made with it returns its deal and writes nothing.
    """
    kind = "update" if command.kind == "update" else "move"
    if key is not None:
        done = yield from keyed(id, key, kind)
        if done is not None:
            return done
    decided = _decided_on(remembered(id), command, pipeline, now)
    if decided is None:
        decided = yield from _loaded(id, command, pipeline, now)
    previous, deal, loaded = decided
    intent: Intent | None = None
    attempt = 0
    while True:
        if deal is None:
            return previous
        try:
            committed: Deal = yield Commit(deal, previous, command.actor, key, command.reason)
            return committed
        except ConcurrencyError:
            if loaded and attempt == retries:
                raise
        if key is not None:
            done = yield from keyed(id, key, kind)
            if done is not None:
                return done
        if not loaded:  # decided on a stale remembered deal: decide afresh
            previous, deal, loaded = yield from _loaded(id, command, pipeline, now)
            continue
        attempt += 1
        if intent is None:  # the first conflict on a loaded deal: the intent it decided
            intent = intent_of(command, previous, deal)
        previous = yield Load(id)
        deal = redo(intent, pipeline(previous.pipeline), previous, now=now)


Decided = tuple[Deal, "Deal | None", bool]
"""The deal decided on, the deal to write (None: nothing to do), and whether the
deal was loaded fresh."""


def _decided_on(
    known: Deal | None, command: Command, pipeline: Callable[[str], Pipeline], now: Now
) -> Decided | None:
    """The decision on the deal the store remembers, or None when the deal must be loaded:
    none is remembered, or the command refuses it or finds nothing to do (it may be stale).

    A plain function, not a step: the common path (a remembered, current deal) then
    runs in ``run``'s own generator frame."""
    if known is None:
        return None
    try:
        deal = decide(command, pipeline(known.pipeline), known, now=now)
    except SalesPipelineError:
        return None
    return None if deal is None else (known, deal, False)


def _loaded(
    id: str, command: Command, pipeline: Callable[[str], Pipeline], now: Now
) -> Steps[Decided]:
    """The decision on the deal loaded fresh."""
    previous: Deal = yield Load(id)
    return previous, decide(command, pipeline(previous.pipeline), previous, now=now), True


def erased(step: Erase) -> Steps[log.Change]:
    """Erase the deal as ``step`` says; the ``erase`` change (a retry with its key too)."""
    change: log.Change = yield step
    return change


def opened(
    id: str,
    key: str | None,
    start: Callable[[], Deal],
    actor: str | None,
    *,
    imported: bool = False,
) -> Steps[Deal]:
    """Open deal ``id`` as ``start()`` makes it (``imported``: bring it with its past); with
    ``key``, a deal already opened (or imported) with it is returned instead, and nothing
    is written."""
    kind = "import" if imported else "open"
    if key is not None:
        done = yield from keyed(id, key, kind)
        if done is not None:
            return done
    deal = start()
    try:
        committed: Deal = yield from _written(deal, actor, key, imported)
        return committed
    except DuplicateDealError as taken:
        if key is not None:
            done = yield from keyed(id, key, kind)
            if done is not None:
                return done
        raise taken


def _written(deal: Deal, actor: str | None, key: str | None, imported: bool) -> Steps[Deal]:
    if not imported:
        committed: Deal = yield Commit(deal, None, actor, key)
        return committed
    deals: tuple[Deal, ...] = yield CommitMany((deal,), actor, key, imported=True)
    return deals[0]


def opened_many(
    deals: tuple[Deal, ...], actor: str | None, key: str | None = None
) -> Steps[tuple[Deal, ...]]:
    """Open every deal in one transaction, all or nothing; the deals as stored.

    With ``key`` (logged on every deal's ``open``): a batch already opened with it is
    returned, each deal as its ``open`` left it, and nothing is written.
    """
    if key is not None and deals:
        done = yield from keyed_many(deals, key)
        if done is not None:
            return done
    try:
        committed: tuple[Deal, ...] = yield CommitMany(deals, actor, key)
        return committed
    except DuplicateDealError as taken:
        if key is not None and deals:
            done = yield from keyed_many(deals, key)
            if done is not None:
                return done
        raise taken


def keyed_many(deals: tuple[Deal, ...], key: str) -> Steps[tuple[Deal, ...] | None]:
    """The deals as the batch opened with ``key`` left them, or None when it was not.

    The batch is all or nothing, so its first deal tells; a key that opened some of
    these deals but not all was given to another batch (``ValidationError``).
    """
    first = yield from keyed(deals[0].id, key, "open")
    if first is None:
        return None
    found = [first]
    for deal in deals[1:]:
        done = yield from keyed(deal.id, key, "open")
        if done is None:
            raise ValidationError(
                f"key {key!r} opened deal {deals[0].id!r} but not {deal.id!r}: "
                "give each batch its own key",
                deal_id=deal.id,
                field="key",
            )
        found.append(done)
    return tuple(found)


def keyed(id: str, key: str, kind: str) -> Steps[Deal | None]:
    """The deal as the change made with ``key`` left it, or None when there is none.

    A key that made another kind of change (an update's key given to a move) is a
    ``ValidationError``: a retry repeats its command, so the key was reused.
    """
    try:
        made: tuple[log.Change, ...] = yield Changes(id, key)
    except DealNotFoundError:
        return None
    if not made:
        return None
    first = made[0]
    if first.kind != kind:
        raise ValidationError(
            f"key {key!r} made the {first.kind} change of version {first.version}, "
            f"not a {kind}: give each command its own key",
            deal_id=id,
            field="key",
        )
    current: Deal = yield Get(id)
    if current.version == first.version:
        return current
    changes: tuple[log.Change, ...] = yield Changes(id)
    return log.replay(c for c in changes if c.version <= first.version)[id]
