"""The histories a store last read or wrote, so a save need not read history back (private).

A deal's history up to a version never changes once the deal reached that version
(rows are only appended, under a unique ``(deal_id, version)`` key), so the history
a store handed out with version ``v`` is the stored history for as long as the
stored version is ``v`` — which the save's conditional ``UPDATE`` checks anyway.
A save made on such a deal compares its history with that one in memory, entry by
entry (by identity, when the deal was derived from it), instead of reading it back.

The histories are shared with the deals handed out, not copied; at most
``MAX_ENTRIES`` entries are kept, the least recently used deals forgotten first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Final

from salespipeline.deal import Deal

__all__ = ["MAX_ENTRIES", "Recent"]

MAX_ENTRIES: Final = 65_536
"""History entries kept in all (a few MB at most, most of it shared with live deals)."""


class Recent:
    """Per deal id, the deal a store last returned or wrote (so it can diff a save), with
    the derived figures of its row when the store knows them (so a save extends them)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._deals: OrderedDict[str, tuple[Deal, object]] = OrderedDict()
        self._entries = 0
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def keep(self, deal: Deal, figures: object = None) -> None:
        """Remember ``deal`` as the stored one of its id at its version, and its figures."""
        id, held = deal.id, _held(deal)
        with self._lock:
            kept = self._deals.pop(id, None)
            self._deals[id] = (deal, figures)
            self._entries += held if kept is None else held - _held(kept[0])
            while self._entries > self._max_entries and self._deals:
                self._forget(next(iter(self._deals)))

    def keep_all(self, deals: Sequence[Deal]) -> None:
        """``keep`` each of ``deals`` (a page of ``find``), taking the lock once."""
        with self._lock:
            for deal in deals:
                self._forget(deal.id)
                self._deals[deal.id] = (deal, None)
                self._entries += _held(deal)
            while self._entries > self._max_entries and self._deals:
                self._forget(next(iter(self._deals)))

    def deal(self, id: str, version: int) -> tuple[Deal, object] | None:
        """Deal ``id`` as stored at ``version`` and its figures, if remembered at that version."""
        with self._lock:
            kept = self._deals.get(id)
        return kept if kept is not None and kept[0].version == version else None

    def latest(self, id: str) -> Deal | None:
        """Deal ``id`` as last remembered, whatever its version (None: not remembered)."""
        with self._lock:
            kept = self._deals.get(id)
        return None if kept is None else kept[0]

    def forget(self, id: str) -> None:
        """Forget deal ``id`` (what was remembered of it may no longer be stored)."""
        with self._lock:
            self._forget(id)

    def _forget(self, id: str) -> None:
        kept = self._deals.pop(id, None)
        if kept is not None:
            self._entries -= _held(kept[0])


def _held(deal: Deal) -> int:
    """The history entries ``deal`` holds in memory (a lazily loaded one: its latest)."""
    return deal.history.in_memory
