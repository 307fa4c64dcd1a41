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
from typing import Final

from salespipeline.deal import Deal, StageChange

__all__ = ["MAX_ENTRIES", "Recent"]

MAX_ENTRIES: Final = 65_536
"""History entries kept in all (a few MB at most, most of it shared with live deals)."""


class Recent:
    """Per deal id, the version and history a store last returned or wrote."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._histories: OrderedDict[str, tuple[int, tuple[StageChange, ...]]] = OrderedDict()
        self._entries = 0
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def keep(self, deal: Deal) -> None:
        """Remember ``deal``'s history as the stored one of its id at its version."""
        with self._lock:
            self._forget(deal.id)
            self._histories[deal.id] = (deal.version, deal.history)
            self._entries += len(deal.history)
            while self._entries > self._max_entries and self._histories:
                self._forget(next(iter(self._histories)))

    def history(self, id: str, version: int) -> tuple[StageChange, ...] | None:
        """The history deal ``id`` had at ``version``, if it is remembered at that version."""
        with self._lock:
            kept = self._histories.get(id)
        return kept[1] if kept is not None and kept[0] == version else None

    def _forget(self, id: str) -> None:
        kept = self._histories.pop(id, None)
        if kept is not None:
            self._entries -= len(kept[1])
