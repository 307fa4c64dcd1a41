"""Tracker commands as values, and the one rule that decides and retries them (private).

A command is decided once, on the deal as first loaded; that fixes where it sends
the deal (``advance`` means "to the stage after the one I saw"). The ``Intent``
carries the decision through retries after a conflict, under DESIGN.md's retry
rule. Nothing here does I/O: the Tracker loads and saves around these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal

import attrs

from salespipeline._unchecked import generate
from salespipeline.deal import Deal
from salespipeline.errors import ConcurrencyError
from salespipeline.pipeline import Pipeline

__all__ = ["Command", "Intent", "decide", "redo", "with_actor"]

Kind = Literal["move", "advance", "win", "lose", "reopen", "update"]


@attrs.frozen
class Command:
    """What one Tracker call asks of a stored deal; its arguments are checked when applied."""

    kind: Kind
    to: str | None = None
    reason: str | None = None
    changes: Mapping[str, Any] = attrs.field(factory=dict)
    actor: str | None = None


with_actor: Callable[..., Command] = generate(
    Command, "with_actor", "A copy of a command with ``actor=`` set.", given=("actor",)
)


@attrs.frozen
class Intent:
    """A command as decided: the stage and version it saw, and where it sends the deal.

    ``to`` is None for an update, which moves nothing and instead sets ``values``
    (the named attributes as the first application converted them).
    """

    command: Command
    seen: str
    version: int
    to: str | None
    values: Mapping[str, Any] = attrs.field(factory=dict)

    def is_done(self, deal: Deal) -> bool:
        """Whether ``deal`` already is what this intent asks for."""
        if self.to is None:
            return all(getattr(deal, name) == value for name, value in self.values.items())
        return deal.stage == self.to


Now = Callable[[], datetime]
"""The current time, which every command stamps on the change it makes."""


def decide(
    command: Command, pipeline: Pipeline, deal: Deal, *, now: Now
) -> tuple[Intent, Deal | None]:
    """The intent of ``command`` on the loaded ``deal`` and the deal to write (None: no change)."""
    changed = _first(command, pipeline, deal, lambda: _at(deal, now))
    if command.kind == "update":
        values = {name: getattr(changed, name) for name in command.changes}
        intent = Intent(command, deal.stage, deal.version, None, values)
        return intent, None if intent.is_done(deal) else changed
    return Intent(command, deal.stage, deal.version, changed.stage), changed


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


def _first(command: Command, pipeline: Pipeline, deal: Deal, at: Now) -> Deal:
    kind, actor = command.kind, command.actor
    if kind == "update":
        return deal.evolve(at=at(), **command.changes)
    if kind == "advance":
        return pipeline.advance(deal, at=at(), actor=actor)
    if kind == "win":
        return pipeline.win(deal, at=at(), actor=actor)
    if kind == "lose":
        return pipeline.lose(deal, command.reason, at=at(), actor=actor)  # type: ignore[arg-type]
    if kind == "reopen":
        return pipeline.reopen(deal, command.to, at=at(), actor=actor)
    to, reason = command.to, command.reason
    return pipeline.move(deal, to, at=at(), reason=reason, actor=actor)  # type: ignore[arg-type]


def _at(deal: Deal, now: Now) -> datetime:
    """Now, but never before the deal's last change (clocks of several hosts differ)."""
    return max(now(), deal.updated_at)
