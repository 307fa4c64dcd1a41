"""MemoryStore: deals in a dict, for tests, notebooks and short-lived jobs.

It keeps the same contract as the database stores (optimistic saves, definitions
kept as ``to_dict`` data), so code tested against it behaves the same on SQLite or
PostgreSQL. A lock makes one store safe to share between threads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from salespipeline.deal import Deal
from salespipeline.errors import (
    ConcurrencyError,
    DealNotFoundError,
    DuplicateDealError,
    StorageError,
)
from salespipeline.pipeline import Pipeline
from salespipeline.storage.base import (
    DealStore,
    check_deal,
    check_filters,
    check_id,
    decode_all,
    definition_row,
    matches,
    new_entries,
)

__all__ = ["MemoryStore"]


class MemoryStore(DealStore):
    """Deals held in this process's memory; gone when the store is."""

    def __init__(self) -> None:
        self._deals: dict[str, Deal] = {}
        self._definitions_by_version: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._deals)} deals)"

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"{self!r} is closed")

    def add(self, deal: Deal) -> None:
        deal = check_deal(deal)
        with self._lock:
            self._check_open()
            if deal.id in self._deals:
                raise DuplicateDealError(deal.id)
            self._deals[deal.id] = deal

    def get(self, id: str) -> Deal:
        id = check_id(id)
        with self._lock:
            self._check_open()
            deal = self._deals.get(id)
        if deal is None:
            raise DealNotFoundError(id)
        return deal

    def save(self, deal: Deal) -> None:
        deal = check_deal(deal)
        base = deal.version - 1
        with self._lock:
            self._check_open()
            stored = self._deals.get(deal.id)
            if stored is None or stored.version != base:
                actual = None if stored is None else stored.version
                raise ConcurrencyError(deal.id, expected=base, actual=actual)
            new_entries(deal, stored.history)
            self._deals[deal.id] = deal

    def find(
        self, *, pipeline: str | None = None, stage: str | None = None, open: bool | None = None
    ) -> Iterator[Deal]:
        check_filters(pipeline, stage, open)
        with self._lock:
            self._check_open()
            deals = sorted(self._deals.items())
        return (deal for _, deal in deals if matches(deal, pipeline, stage, open))

    def save_pipeline(self, pipeline: Pipeline) -> None:
        name, version, text = definition_row(pipeline)
        with self._lock:
            self._check_open()
            self._definitions_by_version[name, version] = text

    def pipelines(self) -> tuple[Pipeline, ...]:
        return decode_all(self._definitions())

    def _definitions(self) -> dict[str, str]:
        with self._lock:
            self._check_open()
            latest = sorted(self._definitions_by_version.items())
        return {name: text for (name, _), text in latest}

    def close(self) -> None:
        with self._lock:
            self._closed = True
