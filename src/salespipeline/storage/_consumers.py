"""Durable consumers of the change log: a name and a position kept in the store.

A consumer reads the log in position order and records how far it got, so a
process that crashes (or is killed) starts again after the last change it
recorded: every change is handled at least once, in order. That is the outbox
for webhooks, CRM sync and follow-up mailers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from salespipeline import limits
from salespipeline._checks import check_id, is_int, to_position
from salespipeline.errors import ValidationError, shown
from salespipeline.log import Change

if TYPE_CHECKING:
    from salespipeline.storage.base import DealStore

__all__ = [
    "Consumer",
    "check_consumer_name",
    "check_poll",
    "check_position",
    "check_recorded",
    "reached",
]


def check_consumer_name(name: object) -> str:
    return check_id(name, "consumer name")


def check_position(position: object) -> int:
    """A log position a consumer may record (0 to ``limits.MAX_POSITION``)."""
    return to_position(position)


def check_recorded(name: object, position: object, backwards: object) -> tuple[str, int]:
    """``record_consumer_position``'s arguments checked, before any write."""
    if not isinstance(backwards, bool):
        raise ValidationError(f"backwards must be True or False, not {shown(backwards)}")
    return check_consumer_name(name), check_position(position)


class Consumer:
    """A named, durable reader of ``store.log()``; made by ``store.consumer(name)``."""

    __slots__ = ("_name", "_store")

    def __init__(self, store: DealStore, name: str) -> None:
        self._store = store
        self._name = check_consumer_name(name)

    def __repr__(self) -> str:
        return f"Consumer({self._name!r}, position={self.position})"

    @property
    def name(self) -> str:
        return self._name

    @property
    def position(self) -> int:
        """The position of the last change this consumer recorded as handled (0: none)."""
        return self._store.consumer_position(self._name)

    def poll(self, handler: Callable[[Change], object], *, limit: int = 100) -> int:
        """Call ``handler(change)`` for up to ``limit`` changes after the position; say how many.

        Progress is recorded when the page is done, and before a handler's exception
        propagates (that change and the ones after it are delivered again next time).
        A crash in between delivers the page's handled changes again: at least once.
        """
        check_poll(handler, limit)
        changes = self._store.log(after=self.position, limit=limit)
        handled = 0
        try:
            for change in changes:
                handler(change)
                handled += 1
        finally:
            if handled:
                self._store.record_consumer_position(self._name, reached(changes, handled))
        return handled

    def seek(self, position: int) -> None:
        """Set the position (0 re-reads the whole log); for replays and repairs."""
        self._store.record_consumer_position(self._name, check_position(position), backwards=True)


def check_poll(handler: object, limit: object) -> None:
    """``poll``'s arguments checked, before any read."""
    if not callable(handler):
        raise ValidationError(f"poll() takes a callable handler, not {shown(handler)}")
    if not is_int(limit) or not 1 <= limit <= limits.MAX_PAGE:
        raise ValidationError(
            f"limit must be an integer from 1 to {limits.MAX_PAGE:,}, not {shown(limit)}"
        )


def reached(changes: Sequence[Change], handled: int) -> int:
    """The position to record once the first ``handled`` of a page are handled."""
    position = changes[handled - 1].position
    assert position is not None  # the store's log is committed changes
    return position
