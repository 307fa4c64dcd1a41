"""AsyncStoreContract: the storage contract for async stores, as a pytest base class.

Subclass it, implement ``make_async_store()`` (and ``reopen_async_store()`` for a
store whose data outlives it), and pytest runs every check of ``StoreContract``
on your store, through a blocking view of it that awaits each call on an event
loop of its own, plus the checks only tasks can make: many tasks at once on one
loop, and tasks cancelled in the middle of a commit.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import AbstractAsyncContextManager, contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from salespipeline.aio import AsyncDealStore, AsyncTracker
from salespipeline.deal import Deal, StageChange
from salespipeline.errors import ValidationError
from salespipeline.log import Change
from salespipeline.pipeline import Pipeline
from salespipeline.storage.base import DealStore
from salespipeline.testing.contract import QUALIFIED, T0, StoreContract

if TYPE_CHECKING:
    from salespipeline.metrics import ForecastAccuracy, Movement, OwnerFigures, PipelineReport

__all__ = ["AsyncStoreContract"]

R = TypeVar("R")


class AsyncStoreContract(StoreContract):
    """Every behaviour an ``AsyncDealStore`` promises, as pytest tests."""

    #: how many tasks run at once in the task tests
    tasks: int = 50

    def make_async_store(self) -> AsyncDealStore:
        raise NotImplementedError("an AsyncStoreContract subclass implements make_async_store()")

    def reopen_async_store(self) -> AsyncDealStore:
        pytest.skip("this store has no reopen_async_store(): its data does not outlive it")

    def make_store(self) -> DealStore:
        return BlockingView(self.make_async_store())

    def reopen_store(self) -> DealStore:
        return BlockingView(self.reopen_async_store())

    def test_tasks_moving_the_same_deals_lose_no_update(self, pipeline: Pipeline) -> None:
        async def scenario(store: AsyncDealStore) -> None:
            tracker = AsyncTracker(store, pipeline, clock=_ticking())
            ids = [f"deal-{n}" for n in range(5)]
            for id in ids:
                await tracker.open("contract", id, bant=QUALIFIED)

            async def bump(n: int) -> None:
                deal = await tracker.get(ids[n % len(ids)])
                await tracker.update(deal.id, amount=deal.amount + 1)

            await asyncio.gather(*(bump(n) for n in range(self.tasks)))
            for id in ids:
                changes = await store.changes(id)
                assert (await tracker.get(id)).version == len(changes)
            assert await store.verify() == ()

        self._run(scenario)

    def test_a_task_cancelled_while_moving_leaves_the_deal_moved_or_untouched(
        self, pipeline: Pipeline
    ) -> None:
        async def scenario(store: AsyncDealStore) -> None:
            tracker = AsyncTracker(store, pipeline, clock=_ticking())
            heard: list[int] = []
            tracker.subscribe(lambda change, deal: heard.append(change.version))
            for delay in range(12):
                id = f"deal-{delay}"
                await tracker.open("contract", id, bant=QUALIFIED)
                task = asyncio.ensure_future(tracker.advance(id))
                for _ in range(delay):
                    await asyncio.sleep(0)
                task.cancel()
                await asyncio.wait([task])
                deal = await store.get(id)
                assert [c.version for c in await store.changes(id)] == list(
                    range(1, deal.version + 1)
                )
                assert deal.stage == ("proposal" if deal.version == 2 else "lead")
                assert heard[-1] == deal.version  # the listeners heard what was committed
            assert await store.verify() == ()

        self._run(scenario)

    def test_open_many_retried_with_its_key_returns_the_same_deals_and_writes_nothing(
        self, pipeline: Pipeline
    ) -> None:
        async def scenario(store: AsyncDealStore) -> None:
            tracker = AsyncTracker(store, pipeline, clock=_ticking())
            items = [{"id": f"batch-{n}", "amount": n} for n in range(3)]
            first = await tracker.open_many("contract", items, key="batch-1")
            before = await store.log()
            assert [c.key for c in before] == ["batch-1"] * 3
            again = await tracker.open_many("contract", items, key="batch-1")
            assert again == first and await store.log() == before
            assert [await store.get(d.id) for d in first] == list(first)
            assert await store.verify() == ()

        self._run(scenario)

    def test_open_many_with_a_key_another_batch_opened_in_part_is_refused(
        self, pipeline: Pipeline
    ) -> None:
        async def scenario(store: AsyncDealStore) -> None:
            tracker = AsyncTracker(store, pipeline, clock=_ticking())
            await tracker.open_many("contract", [{"id": "a"}], key="batch-1")
            before = await store.log()
            with pytest.raises(ValidationError) as refused:
                await tracker.open_many("contract", [{"id": "a"}, {"id": "b"}], key="batch-1")
            assert (refused.value.deal_id, refused.value.field) == ("b", "key")
            assert await store.log() == before and await store.count() == 1

        self._run(scenario)

    def test_add_many_with_a_key_logs_it_on_each_open_for_async_callers(
        self, pipeline: Pipeline
    ) -> None:
        async def scenario(store: AsyncDealStore) -> None:
            deals = [pipeline.start(f"k{n}", at=T0) for n in range(3)]
            last = await store.add_many(deals, key="batch-1", actor="sync")
            assert [(c.key, c.actor, c.kind) for c in last] == [("batch-1", "sync", "open")] * 3
            for deal in deals:
                (found,) = await store.changes(deal.id, key="batch-1")
                assert (found.version, found.deal_id) == (1, deal.id)
            assert await store.changes("k0", key="batch-2") == ()

        self._run(scenario)

    def test_a_deal_loaded_to_change_keeps_its_whole_long_history(
        self, pipeline: Pipeline
    ) -> None:
        async def scenario(store: AsyncDealStore) -> None:
            tracker = AsyncTracker(store, pipeline, clock=_ticking())
            await tracker.open("contract", "long", bant=QUALIFIED)
            for n in range(60):  # longer than a store may read with a load
                await (tracker.reopen("long") if n % 2 else tracker.lose("long", "price"))
            stored = await store.get("long")
            loaded = await store.load("long")
            assert loaded == stored and tuple(loaded.history) == tuple(stored.history)
            fresh = AsyncTracker(store, pipeline, clock=_ticking(), record_definitions=False)
            moved = await fresh.lose("long", "timing")
            assert tuple(moved.history[:-1]) == tuple(stored.history)
            assert moved == await store.get("long") and len(moved.history) == 62

        self._run(scenario)

    def _run(self, scenario: Callable[[AsyncDealStore], Awaitable[None]]) -> None:
        async def main() -> None:
            async with self.make_async_store() as store:
                await scenario(store)

        asyncio.run(main())


def _ticking() -> Callable[[], datetime]:
    times = (T0 + timedelta(minutes=n) for n in range(1_000_000))
    return lambda: next(times)


class BlockingView(DealStore):
    """A sync ``DealStore`` over an async one: each call awaited on a loop of its own.

    Each calling thread has a task of its own on that loop, which awaits its calls
    one after another, so a thread's ``transaction()`` block holds for its calls and
    no one else's, as a task's does.
    """

    def __init__(self, store: AsyncDealStore) -> None:
        self._async = store
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._sessions: dict[
            int, asyncio.Queue[tuple[Callable[[], Awaitable[Any]], Future[Any]]]
        ] = {}
        self._lock = threading.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._await(store.open)

    def _await(self, call: Callable[[], Awaitable[R]]) -> R:
        """``call()`` awaited in this thread's task on the view's loop."""
        if self._loop.is_closed():  # the store is closed too: let it say so
            return asyncio.run(_called(call))
        done: Future[R] = Future()
        self._loop.call_soon_threadsafe(self._session().put_nowait, (call, done))
        return done.result()

    def _session(self) -> asyncio.Queue[tuple[Callable[[], Awaitable[Any]], Future[Any]]]:
        with self._lock:
            queue = self._sessions.get(threading.get_ident())
            if queue is None:
                queue = asyncio.Queue()
                self._sessions[threading.get_ident()] = queue
                self._loop.call_soon_threadsafe(
                    lambda: self._tasks.append(self._loop.create_task(_serve(queue)))
                )
        return queue

    def add(self, deal: Deal, **options: Any) -> Change:
        return self._await(lambda: self._async.add(deal, **options))

    def add_many(self, deals: Iterable[Deal], **options: Any) -> tuple[Change, ...]:
        return self._await(lambda: self._async.add_many(deals, **options))

    def save(self, deal: Deal, **options: Any) -> Change:
        return self._await(lambda: self._async.save(deal, **options))

    def get(self, id: str) -> Deal:
        return self._await(lambda: self._async.get(id))

    def load(self, id: str) -> Deal:
        return self._await(lambda: self._async.load(id))

    def last_known(self, id: str) -> Deal | None:
        return self._async.last_known(id)

    def changes(self, id: str, *, key: str | None = None) -> tuple[Change, ...]:
        return self._await(lambda: self._async.changes(id, key=key))

    def log(self, *, after: int = 0, limit: int = 1000) -> tuple[Change, ...]:
        return self._await(lambda: self._async.log(after=after, limit=limit))

    def erase(self, id: str, **options: Any) -> Change:
        return self._await(lambda: self._async.erase(id, **options))

    def consumer_position(self, name: str) -> int:
        return self._await(lambda: self._async.consumer_position(name))

    def record_consumer_position(
        self, name: str, position: int, *, backwards: bool = False
    ) -> None:
        self._await(
            lambda: self._async.record_consumer_position(name, position, backwards=backwards)
        )

    def verify(self) -> tuple[str, ...]:
        return self._await(self._async.verify)

    def find(self, **filters: Any) -> Iterator[Deal]:
        return iter(self._await(lambda: _listed(self._async.find(**filters))))

    def history(self, id: str) -> tuple[StageChange, ...]:
        return self._await(lambda: self._async.history(id))

    def save_pipeline(self, pipeline: Pipeline) -> None:
        self._await(lambda: self._async.save_pipeline(pipeline))

    def pipelines(self) -> tuple[Pipeline, ...]:
        return self._await(self._async.pipelines)

    def pipeline(self, name: str) -> Pipeline:
        return self._await(lambda: self._async.pipeline(name))

    def report(
        self,
        pipeline: Pipeline | str,
        *,
        as_of: datetime | None = None,
        owner: str | None = None,
        currency: str | None = None,
        rates: Mapping[str, Decimal | int] | None = None,
        now: datetime | None = None,
    ) -> PipelineReport:
        return self._await(
            lambda: self._async.report(
                pipeline, as_of=as_of, owner=owner, currency=currency, rates=rates, now=now
            )
        )

    def movement(
        self,
        pipeline: Pipeline | str,
        *,
        start: datetime,
        end: datetime,
        rates: Mapping[str, Decimal | int] | None = None,
        currency: str | None = None,
    ) -> Movement:
        return self._await(
            lambda: self._async.movement(
                pipeline, start=start, end=end, rates=rates, currency=currency
            )
        )

    def by_owner(
        self,
        pipeline: Pipeline | str,
        *,
        as_of: datetime | None = None,
        currency: str | None = None,
        rates: Mapping[str, Decimal | int] | None = None,
    ) -> tuple[OwnerFigures, ...]:
        return self._await(
            lambda: self._async.by_owner(pipeline, as_of=as_of, currency=currency, rates=rates)
        )

    def forecast_accuracy(
        self,
        pipeline: Pipeline | str,
        *,
        made_at: datetime,
        start: datetime,
        end: datetime,
        currency: str | None = None,
        rates: Mapping[str, Decimal | int] | None = None,
    ) -> ForecastAccuracy:
        return self._await(
            lambda: self._async.forecast_accuracy(
                pipeline, made_at=made_at, start=start, end=end, currency=currency, rates=rates
            )
        )

    @contextmanager
    def transaction(self) -> Iterator[None]:
        block: AbstractAsyncContextManager[None] = self._async.transaction()
        self._await(block.__aenter__)
        try:
            yield
        except BaseException as error:
            self._await(
                functools.partial(block.__aexit__, type(error), error, error.__traceback__)
            )
            raise
        self._await(lambda: block.__aexit__(None, None, None))

    def _when_committed(self, callback: Callable[[], None]) -> None:
        self._await(lambda: _registered(self._async, callback))

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._await(self._async.close)
        asyncio.run_coroutine_threadsafe(self._stopped(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=60)
        self._loop.close()

    async def _stopped(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _serve(queue: asyncio.Queue[tuple[Callable[[], Awaitable[Any]], Future[Any]]]) -> None:
    """Await one thread's calls in order, in one task (so its blocks hold for it)."""
    while True:
        call, done = await queue.get()
        try:
            done.set_result(await call())
        except BaseException as error:  # handed to the calling thread, which raises it
            done.set_exception(error)


async def _called(call: Callable[[], Awaitable[R]]) -> R:
    return await call()


async def _listed(deals: AsyncIterator[Deal]) -> list[Deal]:
    return [deal async for deal in deals]


async def _registered(store: AsyncDealStore, callback: Callable[[], None]) -> None:
    store._when_committed(callback)
