"""Async stores that run a sync store on a worker thread (private), as aiosqlite does.

SQLite serialises a database's writers anyway, so one thread per store costs the
event loop nothing it would not wait for; every rule (checks, derived columns, the
log) is the sync store's own, so nothing is copied. A ``transaction()`` block gets
a thread of its own: the calls of the task inside it run there and join the
block, while other tasks' calls wait on the store's thread, as other threads wait
for a sync store's block.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from salespipeline.aio._finished import finished
from salespipeline.aio._store import AsyncDealStore
from salespipeline.deal import Deal, StageChange
from salespipeline.errors import StorageError
from salespipeline.log import Change
from salespipeline.pipeline import Pipeline
from salespipeline.storage.base import DealStore

if TYPE_CHECKING:
    from salespipeline.metrics import ForecastAccuracy, Movement, OwnerFigures, PipelineReport

__all__ = ["ThreadedStore"]

P = ParamSpec("P")
R = TypeVar("R")
FIND_BATCH = 500
"""Deals a ``find`` brings from the store's thread at a time."""


class ThreadedStore(AsyncDealStore):
    """An async store over the sync store ``make()`` returns, run on a worker thread."""

    def __init__(self, make: Callable[[], DealStore], *, name: str) -> None:
        self._make = make
        self._name = name
        self._store: DealStore | None = None
        self._worker: ThreadPoolExecutor | None = None
        self._block: contextvars.ContextVar[_Block | None] = contextvars.ContextVar(
            f"salespipeline-block-thread-{id(self)}", default=None
        )

    def __repr__(self) -> str:
        return self._name

    async def open(self) -> None:
        if self._store is None:
            worker = self._worker or ThreadPoolExecutor(1, thread_name_prefix="salespipeline")
            self._worker = worker
            self._store = await _on(worker, self._make)

    async def close(self) -> None:
        store, self._store = self._store, None
        worker, self._worker = self._worker, None
        if worker is not None:
            if store is not None:
                await _on(worker, store.close)
            worker.shutdown(wait=False)

    async def _call(self, method: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run a method of the sync store on this task's block thread, else the store's."""
        block = self._block.get()
        worker = block.worker if block is not None and block.open else self._worker
        if worker is None:
            raise self._closed()
        return await _on(worker, method, *args, **kwargs)

    @property
    def _sync(self) -> DealStore:
        if self._store is None:
            raise self._closed()
        return self._store

    def _closed(self) -> StorageError:
        return StorageError(f"{self!r} is not open: use `async with` or `await store.open()`")

    async def add(
        self,
        deal: Deal,
        *,
        actor: str | None = None,
        reason: str | None = None,
        key: str | None = None,
    ) -> Change:
        return _logged(await self._call(self._sync.add, deal, actor=actor, reason=reason, key=key))

    async def add_many(
        self,
        deals: Iterable[Deal],
        *,
        actor: str | None = None,
        reason: str | None = None,
        key: str | None = None,
        imported: bool = False,
    ) -> tuple[Change, ...]:
        return await self._call(
            self._sync.add_many, deals, actor=actor, reason=reason, key=key, imported=imported
        )

    async def save(
        self,
        deal: Deal,
        *,
        actor: str | None = None,
        reason: str | None = None,
        key: str | None = None,
    ) -> Change:
        return _logged(
            await self._call(self._sync.save, deal, actor=actor, reason=reason, key=key)
        )

    async def get(self, id: str) -> Deal:
        return await self._call(self._sync.get, id)

    async def load(self, id: str) -> Deal:
        return await self._call(self._sync.load, id)

    def last_known(self, id: str) -> Deal | None:
        return None if self._store is None else self._store.last_known(id)

    async def changes(self, id: str, *, key: str | None = None) -> tuple[Change, ...]:
        return await self._call(self._sync.changes, id, key=key)

    async def log(self, *, after: int = 0, limit: int = 1000) -> tuple[Change, ...]:
        return await self._call(self._sync.log, after=after, limit=limit)

    async def erase(
        self,
        id: str,
        *,
        actor: str,
        reason: str,
        key: str | None = None,
        at: datetime | None = None,
    ) -> Change:
        return await self._call(self._sync.erase, id, actor=actor, reason=reason, key=key, at=at)

    async def consumer_position(self, name: str) -> int:
        return await self._call(self._sync.consumer_position, name)

    async def record_consumer_position(
        self, name: str, position: int, *, backwards: bool = False
    ) -> None:
        await self._call(self._sync.record_consumer_position, name, position, backwards=backwards)

    async def verify(self) -> tuple[str, ...]:
        return await self._call(self._sync.verify)

    def find(self, **filters: Any) -> AsyncIterator[Deal]:
        """``DealStore.find``'s deals, brought from the store's thread a batch at a time."""
        return self._found(self._sync.find, **filters)

    async def count(self, **filters: Any) -> int:
        return await self._call(self._sync.count, **filters)

    async def _found(
        self, find: Callable[..., Iterator[Deal]], **filters: Any
    ) -> AsyncIterator[Deal]:
        deals = await self._call(find, **filters)
        while batch := await self._call(_batch, deals):
            for deal in batch:
                yield deal

    async def history(self, id: str) -> tuple[StageChange, ...]:
        return await self._call(self._sync.history, id)

    async def save_pipeline(self, pipeline: Pipeline) -> None:
        await self._call(self._sync.save_pipeline, pipeline)

    async def pipelines(self) -> tuple[Pipeline, ...]:
        return await self._call(self._sync.pipelines)

    async def pipeline(self, name: str) -> Pipeline:
        return await self._call(self._sync.pipeline, name)

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
        return await self._call(
            self._sync.report,
            pipeline,
            as_of=as_of,
            owner=owner,
            currency=currency,
            rates=rates,
            now=now,
        )

    async def movement(
        self,
        pipeline: Pipeline | str,
        *,
        start: datetime,
        end: datetime,
        rates: Mapping[str, Decimal | int] | None = None,
        currency: str | None = None,
    ) -> Movement:
        return await self._call(
            self._sync.movement, pipeline, start=start, end=end, rates=rates, currency=currency
        )

    async def by_owner(
        self,
        pipeline: Pipeline | str,
        *,
        as_of: datetime | None = None,
        currency: str | None = None,
        rates: Mapping[str, Decimal | int] | None = None,
    ) -> tuple[OwnerFigures, ...]:
        return await self._call(
            self._sync.by_owner, pipeline, as_of=as_of, currency=currency, rates=rates
        )

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
        return await self._call(
            self._sync.forecast_accuracy,
            pipeline,
            made_at=made_at,
            start=start,
            end=end,
            currency=currency,
            rates=rates,
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Run this task's calls inside the block on a thread of the block's own, in the
        sync store's ``transaction()``; other tasks' calls wait for it to end."""
        block = self._sync.transaction()
        outer = self._block.get()
        if outer is None or not outer.open:
            outer = None
            here = _Block(ThreadPoolExecutor(1, thread_name_prefix="salespipeline-block"))
        token = self._block.set(here if outer is None else outer)
        worker = (here if outer is None else outer).worker
        try:
            with self._blocks.entered():
                await _entered(worker, block)
                try:
                    yield
                except BaseException as error:
                    await finished(
                        _on(worker, block.__exit__, type(error), error, error.__traceback__)
                    )
                    raise
                await finished(_on(worker, block.__exit__, None, None, None))
        finally:
            self._block.reset(token)
            if outer is None:
                here.open = False
                worker.shutdown(wait=False)


class _Block:
    """The thread a task's outermost block runs its calls on, while it is open.

    Tasks started inside the block inherit it, and their calls join the block;
    once it has ended, their calls go to the store's own thread.
    """

    __slots__ = ("open", "worker")

    def __init__(self, worker: ThreadPoolExecutor) -> None:
        self.worker = worker
        self.open = True


async def _entered(worker: ThreadPoolExecutor, block: AbstractContextManager[None]) -> None:
    """Enter ``block`` on ``worker``'s thread; a task cancelled meanwhile leaves it again,
    so the sync store's lock is never left held."""
    entered: list[object] = []
    try:
        await finished(_on(worker, block.__enter__), entered.append)
    except asyncio.CancelledError as cancelled:
        if entered:
            await finished(_on(worker, block.__exit__, type(cancelled), cancelled, None))
        raise


def _logged(change: Change | None) -> Change:
    if change is None:  # a sync store written for part 1 logs nothing
        raise StorageError("the store wrote no change log; an async store needs one")
    return change


def _batch(deals: Iterator[Deal]) -> list[Deal]:
    return list(itertools.islice(deals, FIND_BATCH))


async def _on(
    worker: ThreadPoolExecutor, call: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
) -> R:
    """``call`` run on ``worker``'s thread; cancelling the awaiting task does not stop it."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(worker, functools.partial(call, *args, **kwargs))
