"""AsyncDealStore: the storage contract of ``storage.DealStore``, with awaitable calls.

Every method means what the sync store's of the same name means, with the same
errors; only the calls that do I/O are coroutines (``last_known`` and
``consumer`` are not). A store is opened by ``async with store:`` or ``await
store.open()``, and does no I/O before that.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any

from salespipeline import metrics
from salespipeline._checks import to_utc
from salespipeline.deal import Deal, StageChange
from salespipeline.errors import StorageError
from salespipeline.log import Change
from salespipeline.metrics._asof import as_of_instant
from salespipeline.metrics._money import to_money
from salespipeline.metrics._movement import to_window
from salespipeline.pipeline import Pipeline
from salespipeline.storage._asof import changed_since, standing
from salespipeline.storage._blocks import Blocks
from salespipeline.storage._consumers import (
    check_consumer_name,
    check_poll,
    check_position,
    reached,
)
from salespipeline.storage._query import FieldValue
from salespipeline.storage.base import add_options, check_many, no_import

if TYPE_CHECKING:
    from salespipeline.metrics import ForecastAccuracy, Movement, OwnerFigures, PipelineReport

__all__ = ["AsyncConsumer", "AsyncDealStore"]


class AsyncDealStore(abc.ABC):
    """Deals, their change log and pipeline definitions, behind awaitable calls."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect (and create or upgrade the schema); opening twice is harmless."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the store's resources; closing twice is harmless."""

    async def __aenter__(self) -> AsyncDealStore:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abc.abstractmethod
    async def add(
        self,
        deal: Deal,
        *,
        actor: str | None = None,
        reason: str | None = None,
        key: str | None = None,
    ) -> Change:
        """Store a new deal; its last change (``DealStore.add``)."""

    async def add_many(
        self,
        deals: Iterable[Deal],
        *,
        actor: str | None = None,
        reason: str | None = None,
        key: str | None = None,
        imported: bool = False,
    ) -> tuple[Change, ...]:
        """Store new deals in one transaction, all or nothing; each one's last change
        (``DealStore.add_many``). The default adds them one by one in a block."""
        checked = check_many(deals)
        if imported:
            raise no_import(self)
        async with self.transaction():
            return tuple([await self.add(d, **add_options(actor, reason, key)) for d in checked])

    @abc.abstractmethod
    async def save(
        self,
        deal: Deal,
        *,
        actor: str | None = None,
        reason: str | None = None,
        key: str | None = None,
    ) -> Change:
        """Store the next version of a deal; its change (``DealStore.save``)."""

    @abc.abstractmethod
    async def get(self, id: str) -> Deal:
        """The stored deal with its whole history."""

    @abc.abstractmethod
    async def load(self, id: str) -> Deal:
        """The stored deal to change (its older history may be read when first needed)."""

    @abc.abstractmethod
    def last_known(self, id: str) -> Deal | None:
        """The deal as this store last read or wrote it, without I/O (None: unknown)."""

    @abc.abstractmethod
    async def changes(self, id: str, *, key: str | None = None) -> tuple[Change, ...]:
        """The deal's changes, oldest first (only the one made with ``key`` if given)."""

    @abc.abstractmethod
    async def log(self, *, after: int = 0, limit: int = 1000) -> tuple[Change, ...]:
        """All deals' changes after position ``after``, in position order."""

    async def erase(
        self,
        id: str,
        *,
        actor: str,
        reason: str,
        key: str | None = None,
        at: datetime | None = None,
    ) -> Change:
        """Delete the deal and its log, and log its ``erase`` change (``DealStore.erase``)."""
        raise StorageError(f"{type(self).__name__} cannot erase deals: implement erase()")

    @abc.abstractmethod
    async def consumer_position(self, name: str) -> int:
        """Consumer ``name``'s recorded position (0 when it has none)."""

    @abc.abstractmethod
    async def record_consumer_position(
        self, name: str, position: int, *, backwards: bool = False
    ) -> None:
        """Record consumer ``name``'s position (never lowered unless ``backwards``)."""

    def consumer(self, name: str) -> AsyncConsumer:
        """The durable reader called ``name``; its position is kept in this store."""
        return AsyncConsumer(self, name)

    @abc.abstractmethod
    async def verify(self) -> tuple[str, ...]:
        """Problems found by replaying the log against the stored deals (empty: consistent)."""

    @abc.abstractmethod
    def find(
        self,
        *,
        pipeline: str | None = None,
        stage: str | None = None,
        open: bool | None = None,
        owner: str | None = None,
        fields: Mapping[str, FieldValue] | None = None,
        updated_since: datetime | None = None,
        order_by: str = "id",
        limit: int | None = None,
        after: str | None = None,
    ) -> AsyncIterator[Deal]:
        """The stored deals matching every given filter, in id order, streamed and paged
        by keyset as ``DealStore.find``'s."""

    @abc.abstractmethod
    async def count(
        self,
        *,
        pipeline: str | None = None,
        stage: str | None = None,
        open: bool | None = None,
        owner: str | None = None,
        fields: Mapping[str, FieldValue] | None = None,
        updated_since: datetime | None = None,
    ) -> int:
        """How many deals ``find`` with the same filters yields."""

    @abc.abstractmethod
    async def history(self, id: str) -> tuple[StageChange, ...]:
        """The deal's stage moves, oldest first."""

    @abc.abstractmethod
    async def save_pipeline(self, pipeline: Pipeline) -> None:
        """Record a pipeline definition (one row per name and version)."""

    @abc.abstractmethod
    async def pipelines(self) -> tuple[Pipeline, ...]:
        """The newest recorded definition of each pipeline."""

    @abc.abstractmethod
    async def pipeline(self, name: str) -> Pipeline:
        """The newest recorded definition called ``name``."""

    @abc.abstractmethod
    async def report(
        self,
        pipeline: Pipeline | str,
        *,
        as_of: datetime | None = None,
        owner: str | None = None,
        currency: str | None = None,
        rates: Mapping[str, Decimal | int] | None = None,
        now: datetime | None = None,
    ) -> PipelineReport:
        """Every metric for ``pipeline`` as it stood at ``as_of`` (``DealStore.report``)."""

    async def movement(
        self,
        pipeline: Pipeline | str,
        *,
        start: datetime,
        end: datetime,
        rates: Mapping[str, Decimal | int] | None = None,
        currency: str | None = None,
    ) -> Movement:
        """The waterfall of ``pipeline`` over ``[start, end)`` (``DealStore.movement``).

        This default reads the whole log; a store may read fewer changes.
        """
        to_window(start, end)  # refused before any read
        to_money(currency, rates)
        resolved = await self._resolved(pipeline)
        return metrics.movement(
            await self._whole_log(), resolved, start=start, end=end, rates=rates, currency=currency
        )

    async def by_owner(
        self,
        pipeline: Pipeline | str,
        *,
        as_of: datetime | None = None,
        currency: str | None = None,
        rates: Mapping[str, Decimal | int] | None = None,
    ) -> tuple[OwnerFigures, ...]:
        """One row of figures per owner of ``pipeline``'s deals as they stood at ``as_of``
        (``DealStore.by_owner``). This default reads every deal, and the changes of
        those changed since ``as_of``."""
        to_money(currency, rates)  # refused before any read
        resolved = await self._resolved(pipeline)
        instant = as_of_instant(resolved, as_of, None)
        found = [deal async for deal in self.find()]
        deals = []
        for deal in found:
            changes = await self.changes(deal.id) if changed_since(deal, instant) else ()
            stood = standing(deal, resolved.name, instant, changes)
            if stood is not None:
                deals.append(stood)
        return metrics.by_owner(deals, resolved, as_of=instant, currency=currency, rates=rates)

    async def forecast_accuracy(
        self,
        pipeline: Pipeline | str,
        *,
        made_at: datetime,
        start: datetime,
        end: datetime,
        currency: str | None = None,
        rates: Mapping[str, Decimal | int] | None = None,
    ) -> ForecastAccuracy:
        """The forecast for ``[start, end)`` as it stood at ``made_at``, against what was
        won (``DealStore.forecast_accuracy``); this default reads the whole log."""
        to_utc(made_at, "made_at")  # refused before any read
        to_window(start, end)
        to_money(currency, rates)
        resolved = await self._resolved(pipeline)
        return metrics.forecast_accuracy(
            await self._whole_log(),
            resolved,
            made_at=made_at,
            start=start,
            end=end,
            currency=currency,
            rates=rates,
        )

    async def _resolved(self, pipeline: Pipeline | str) -> Pipeline:
        return pipeline if isinstance(pipeline, Pipeline) else await self.pipeline(pipeline)

    async def _whole_log(self) -> list[Change]:
        """Every change in the log, in position order, read a page at a time."""
        changes: list[Change] = []
        after = 0
        while page := await self.log(after=after):
            changes += page
            after = page[-1].position or after + len(page)
        return changes

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[None]:
        """A block whose calls (this task's) are one transaction: committed when it
        ends, all rolled back when it raises (a savepoint inside another block)."""

    @property
    def _blocks(self) -> Blocks:
        """This store's open blocks, per task (a subclass that has blocks sets its own)."""
        blocks: Blocks | None = self.__dict__.get("_async_blocks")
        if blocks is None:  # made once: ``setdefault`` would make one on every call
            blocks = self.__dict__["_async_blocks"] = Blocks()
        return blocks

    def _when_committed(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once what this task wrote is committed (now, outside a block)."""
        self._blocks.when_committed(callback)


class AsyncConsumer:
    """A named, durable reader of ``store.log()``; made by ``store.consumer(name)``."""

    __slots__ = ("_name", "_store")

    def __init__(self, store: AsyncDealStore, name: str) -> None:
        self._store = store
        self._name = check_consumer_name(name)

    def __repr__(self) -> str:
        return f"AsyncConsumer({self._name!r})"

    @property
    def name(self) -> str:
        return self._name

    async def position(self) -> int:
        """The position of the last change this consumer recorded as handled (0: none)."""
        return await self._store.consumer_position(self._name)

    async def poll(self, handler: Callable[[Change], Any], *, limit: int = 100) -> int:
        """Call ``handler(change)`` (awaited when it returns an awaitable) for up to
        ``limit`` changes after the position, in order; how many it handled.

        Progress is recorded as ``Consumer.poll`` records it: when the page is done,
        and before a handler's exception (or the task's cancellation) propagates.
        """
        check_poll(handler, limit)
        changes = await self._store.log(after=await self.position(), limit=limit)
        handled = 0
        try:
            for change in changes:
                outcome = handler(change)
                if inspect.isawaitable(outcome):
                    await outcome
                handled += 1
        finally:
            if handled:
                await self._store.record_consumer_position(self._name, reached(changes, handled))
        return handled

    async def seek(self, position: int) -> None:
        """Set the position (0 re-reads the whole log); for replays and repairs."""
        await self._store.record_consumer_position(
            self._name, check_position(position), backwards=True
        )
