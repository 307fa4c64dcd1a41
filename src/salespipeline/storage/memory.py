"""MemoryStore: deals in a dict, for tests, notebooks and short-lived jobs.

It keeps the same contract as the database stores (optimistic saves, a change log
with positions and consumers, definitions kept as ``to_dict`` data), so code tested
against it behaves the same on SQLite or PostgreSQL. A lock makes one store safe to
share between threads; inside ``transaction()`` the lock is held for the whole
block, and an error undoes everything the block wrote.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime

import attrs

from salespipeline import log
from salespipeline.deal import Deal
from salespipeline.errors import (
    ConcurrencyError,
    DealNotFoundError,
    DuplicateDealError,
    StorageError,
    ValidationError,
)
from salespipeline.log import Change
from salespipeline.pipeline import Pipeline
from salespipeline.storage._blocks import Blocks
from salespipeline.storage._erasure import check_erasure, erase_change, erased_by
from salespipeline.storage._query import Query
from salespipeline.storage.base import (
    QueryingStore,
    as_stored,
    check_change_args,
    check_consumer_name,
    check_deal,
    check_id,
    check_log_page,
    check_recorded,
    decode_all,
    definition_row,
    new_entries,
    planned_adds,
)

__all__ = ["MemoryStore"]


class MemoryStore(QueryingStore):
    """Deals held in this process's memory; gone when the store is."""

    def __init__(self) -> None:
        self._deals: dict[str, Deal] = {}
        self._changes: dict[str, list[Change]] = {}
        self._log: list[Change | None] = []  # by position; None where an erasure deleted
        self._positions: dict[str, int] = {}
        self._definitions_by_version: dict[tuple[str, int], str] = {}
        self._lock = threading.RLock()
        self._blocks = Blocks()
        self._marks: list[_Mark] = []  # the open blocks, outermost first (the lock holder's)
        self._closed = False

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._deals)} deals)"

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"{self!r} is closed")

    def add(
        self,
        deal: Deal,
        *,
        actor: str | None = None,
        reason: str | None = None,
        key: str | None = None,
    ) -> Change:
        return self.add_many((deal,), actor=actor, reason=reason, key=key)[0]

    def add_many(
        self,
        deals: Iterable[Deal],
        *,
        actor: str | None = None,
        reason: str | None = None,
        key: str | None = None,
        imported: bool = False,
    ) -> tuple[Change, ...]:
        planned = planned_adds(deals, actor, reason, key, imported=imported)
        with self._lock:
            self._check_open()
            for deal, _ in planned:
                if deal.id in self._deals or deal.id in self._changes:
                    raise DuplicateDealError(deal.id)
            for deal, changes in planned:
                self._set(deal.id, as_stored(deal, changes[-1]))
            return tuple(self._append(deal.id, changes) for deal, changes in planned)

    def _append(self, id: str, changes: tuple[Change, ...]) -> Change:
        kept = self._changes.setdefault(id, [])
        for change in changes:
            committed = change.with_position(len(self._log) + 1)
            self._log.append(committed)
            kept.append(committed)
        return kept[-1]

    def get(self, id: str) -> Deal:
        id = check_id(id)
        with self._lock:
            self._check_open()
            deal = self._deals.get(id)
        if deal is None:
            raise DealNotFoundError(id)
        return deal

    def save(
        self,
        deal: Deal,
        *,
        actor: str | None = None,
        reason: str | None = None,
        key: str | None = None,
    ) -> Change:
        deal = check_deal(deal)
        check_change_args(actor, reason, key)
        base = deal.version - 1
        with self._lock:
            self._check_open()
            stored = self._deals.get(deal.id)
            if stored is None or stored.version != base:
                actual = None if stored is None else stored.version
                raise ConcurrencyError(deal.id, expected=base, actual=actual)
            new_entries(deal, stored.history)
            change = log.derive(stored, deal, actor=actor, reason=reason, key=key)
            if key is not None and any(c.key == key for c in self._changes[deal.id]):
                raise ValidationError(
                    f"key {key!r} is already in the deal's log", deal_id=deal.id, field="key"
                )
            self._set(deal.id, as_stored(deal, change))
            return self._append(deal.id, (change,))

    def erase(
        self,
        id: str,
        *,
        actor: str,
        reason: str,
        key: str | None = None,
        at: datetime | None = None,
    ) -> Change:
        erasure = check_erasure(id, actor, reason, key, at)
        with self._lock:
            self._check_open()
            stored = self._deals.get(erasure.id)
            if stored is None:
                done = erased_by(tuple(self._changes.get(erasure.id, ())), erasure.key)
                if done is None:
                    raise DealNotFoundError(erasure.id)
                return done
            self._forget(stored)
            return self._append(
                stored.id, (erase_change(erasure, stored.version, stored.updated_at),)
            )

    def _forget(self, deal: Deal) -> None:
        """Drop ``deal`` and its changes (their log slots become holes), undoably in a block."""
        if self._marks:
            self._marks[-1].deals.setdefault(deal.id, deal)
            self._marks[-1].erased.append(list(self._changes[deal.id]))
        for change in self._changes.pop(deal.id):
            assert change.position is not None
            self._log[change.position - 1] = None
        del self._deals[deal.id]

    def _set(self, id: str, deal: Deal) -> None:
        if self._marks:
            self._marks[-1].deals.setdefault(id, self._deals.get(id))
        self._deals[id] = deal

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the store for the block; an error undoes every write made inside it."""
        with self._blocks.entered(), self._lock:
            self._check_open()
            mark = _Mark(len(self._log), dict(self._positions), dict(self._definitions_by_version))
            self._marks.append(mark)
            try:
                yield
            except BaseException:
                self._undo(mark)
                raise
            finally:
                self._marks.pop()
            if self._marks:  # the outer block undoes these too, if it fails
                for id, before in mark.deals.items():
                    self._marks[-1].deals.setdefault(id, before)
                self._marks[-1].erased.extend(mark.erased)

    def _when_committed(self, callback: Callable[[], None]) -> None:
        self._blocks.when_committed(callback)

    def _undo(self, mark: _Mark) -> None:
        for change in reversed(self._log[mark.log_length :]):
            if change is None:
                continue
            kept = self._changes[change.deal_id]
            kept.pop()
            if not kept:
                del self._changes[change.deal_id]
        del self._log[mark.log_length :]
        for erased in reversed(mark.erased):
            self._restore([c for c in erased if (c.position or 0) <= mark.log_length])
        for id, before in mark.deals.items():
            if before is None:
                self._deals.pop(id, None)
            else:
                self._deals[id] = before
        self._positions = mark.positions
        self._definitions_by_version = mark.definitions

    def _restore(self, changes: list[Change]) -> None:
        """Put back the changes of a deal whose erasure a failed block undoes."""
        if changes:
            self._changes[changes[0].deal_id] = changes
        for change in changes:
            assert change.position is not None
            self._log[change.position - 1] = change

    def _selected(self, query: Query) -> Iterator[Deal]:
        return query.select(self._snapshot())

    def _counted(self, query: Query) -> int:
        return sum(1 for deal in self._snapshot() if query.matches(deal))

    def _snapshot(self) -> list[Deal]:
        """The stored deals as they are now (later writes do not change the list)."""
        with self._lock:
            self._check_open()
            return list(self._deals.values())

    def _carries(self, pipeline: str | None, stage: str | None) -> bool:
        return any(
            (pipeline is None or d.pipeline == pipeline) and (stage is None or d.stage == stage)
            for d in self._snapshot()
        )

    def changes(self, id: str, *, key: str | None = None) -> tuple[Change, ...]:
        id = check_id(id)
        check_change_args(None, None, key)
        with self._lock:
            self._check_open()
            kept = self._changes.get(id)
        if kept is None:
            raise DealNotFoundError(id)
        if key is not None:
            return tuple(change for change in kept if change.key == key)
        return tuple(kept)

    def log(self, *, after: int = 0, limit: int = 1000) -> tuple[Change, ...]:
        after, limit = check_log_page(after, limit)
        with self._lock:
            self._check_open()
            tail = (self._log[i] for i in range(after, len(self._log)))
            return tuple(itertools.islice(filter(None, tail), limit))

    def consumer_position(self, name: str) -> int:
        name = check_consumer_name(name)
        with self._lock:
            self._check_open()
            return self._positions.get(name, 0)

    def record_consumer_position(
        self, name: str, position: int, *, backwards: bool = False
    ) -> None:
        name, position = check_recorded(name, position, backwards)
        with self._lock:
            self._check_open()
            kept = self._positions.get(name, 0)
            self._positions[name] = position if backwards else max(kept, position)

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


@attrs.define
class _Mark:
    """What a block found when it began, so an error can put it back."""

    log_length: int
    positions: dict[str, int]
    definitions: dict[tuple[str, int], str]
    deals: dict[str, Deal | None] = attrs.field(factory=dict)  # as before the block's first write
    erased: list[list[Change]] = attrs.field(factory=list)  # the changes of deals it erased
