"""The async API: the whole store contract on AsyncSQLiteStore, and what only asyncio shows."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from salespipeline import (
    Bant,
    Deal,
    DuplicateDealError,
    StageBlockedError,
    StorageError,
    Tracker,
    UnknownStageError,
    ValidationError,
    limits,
    presets,
)
from salespipeline.aio import AsyncDealStore, AsyncSQLiteStore, AsyncTracker
from salespipeline.log import Change
from salespipeline.pipeline import Pipeline
from salespipeline.storage import MemoryStore
from salespipeline.testing import AsyncStoreContract

R = TypeVar("R")


class TestAsyncSQLiteFile(AsyncStoreContract):
    @pytest.fixture(autouse=True)
    def _file(self, tmp_path: Path) -> None:
        self.path = tmp_path / "deals.sqlite"

    def make_async_store(self) -> AsyncDealStore:
        return AsyncSQLiteStore(self.path)

    def reopen_async_store(self) -> AsyncDealStore:
        return AsyncSQLiteStore(self.path)


class TestAsyncSQLiteInMemory(AsyncStoreContract):
    def make_async_store(self) -> AsyncDealStore:
        return AsyncSQLiteStore(":memory:")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "deals.sqlite"


def run(scenario: Callable[[AsyncDealStore], Awaitable[R]], path: Path) -> R:
    """``scenario`` awaited on a store opened at ``path``."""

    async def main() -> R:
        async with AsyncSQLiteStore(path) as store:
            return await scenario(store)

    return asyncio.run(main())


def test_nothing_is_opened_before_the_store_is_and_calls_before_say_how(path: Path) -> None:
    store = AsyncSQLiteStore(path)
    AsyncTracker(store, presets.four_stage())  # no I/O either
    assert not path.exists()
    with pytest.raises(StorageError, match="async with"):
        asyncio.run(store.get("d1"))


@pytest.mark.parametrize("options", [{"synchronous": "off"}, {"timeout": -1}, {"timeout": "soon"}])
def test_bad_options_are_refused_when_the_store_is_made(
    path: Path, options: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        AsyncSQLiteStore(path, **options)
    assert not path.exists()


def test_a_sync_store_and_an_async_one_each_need_their_own_tracker(path: Path) -> None:
    with pytest.raises(ValidationError, match="AsyncDealStore"):
        AsyncTracker(MemoryStore(), presets.four_stage())  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="DealStore"):
        Tracker(AsyncSQLiteStore(path), presets.four_stage())  # type: ignore[arg-type]


def test_the_first_command_records_the_definitions(path: Path) -> None:
    async def scenario(store: AsyncDealStore) -> tuple[Pipeline, ...]:
        tracker = AsyncTracker(store, [presets.four_stage(), presets.funnel()])
        assert await store.pipelines() == ()
        await tracker.open("four_stage", "d1")
        return await store.pipelines()

    recorded = run(scenario, path)
    assert sorted(p.name for p in recorded) == ["four_stage", "funnel"]


def test_a_command_retried_with_its_key_writes_nothing_and_returns_the_same_deal(
    path: Path,
) -> None:
    async def scenario(store: AsyncDealStore) -> list[tuple[int, str | None, str | None]]:
        tracker = AsyncTracker(store, presets.four_stage(), actor="ops")
        opened = await tracker.open("four_stage", "d1", key="open-1")
        moved = await tracker.advance("d1", key="move-1")
        assert await tracker.advance("d1", key="move-1") == moved
        assert await tracker.open("four_stage", "d1", key="open-1") == opened
        return [(c.version, c.key, c.actor) for c in await store.changes("d1")]

    assert run(scenario, path) == [(1, "open-1", "ops"), (2, "move-1", "ops")]


def test_refusals_are_the_sync_tracker_s_errors(path: Path) -> None:
    async def scenario(store: AsyncDealStore) -> None:
        tracker = AsyncTracker(store, presets.four_stage())
        await tracker.open("four_stage", "d1")
        await tracker.advance("d1")
        with pytest.raises(StageBlockedError):
            await tracker.advance("d1")  # BANT first
        with pytest.raises(DuplicateDealError):
            await tracker.open("four_stage", "d1")
        with pytest.raises(UnknownStageError):
            tracker.deals(stage="nowhere")
        assert [c.version for c in await store.changes("d1")] == [1, 2]

    run(scenario, path)


def test_an_async_handler_is_awaited_and_progress_is_kept_up_to_its_error(path: Path) -> None:
    async def scenario(store: AsyncDealStore) -> tuple[list[int], int]:
        tracker = AsyncTracker(store, presets.four_stage())
        for n in range(4):
            await tracker.open("four_stage", f"d{n}")
        seen: list[int] = []

        async def handle(change: Change) -> None:
            await asyncio.sleep(0)
            if change.position == 3:
                raise ZeroDivisionError
            seen.append(change.position or 0)

        consumer = store.consumer("mailer")
        with pytest.raises(ZeroDivisionError):
            await consumer.poll(handle)
        return seen, await consumer.position()

    assert run(scenario, path) == ([1, 2], 2)


def test_an_async_consumer_seeks_any_position_of_the_log_and_refuses_others(path: Path) -> None:
    async def scenario(store: AsyncDealStore) -> list[int]:
        tracker = AsyncTracker(store, presets.four_stage())
        for n in range(3):
            await tracker.open("four_stage", f"d{n}")
        consumer = store.consumer("mailer")
        reached = [await consumer.position()]
        await consumer.seek(2)
        reached.append(await consumer.position())
        for position in (-1, limits.MAX_POSITION + 1, True, "2"):
            with pytest.raises(ValidationError):
                await consumer.seek(position)  # type: ignore[arg-type]
        await consumer.seek(0)
        reached.append(await consumer.position())
        return reached

    assert run(scenario, path) == [0, 2, 0]


def test_a_task_cancelled_inside_a_transaction_leaves_nothing_written(path: Path) -> None:
    async def scenario(store: AsyncDealStore) -> list[int]:
        tracker = AsyncTracker(store, presets.four_stage())
        await tracker.open("four_stage", "d1", bant=Bant(True, True, True, True))
        started = asyncio.Event()

        async def work() -> None:
            async with store.transaction():
                await tracker.advance("d1")
                started.set()
                await asyncio.sleep(60)

        task = asyncio.ensure_future(work())
        await started.wait()
        task.cancel()
        await asyncio.wait([task])
        assert task.cancelled()
        await tracker.advance("d1")  # the store is free again, and nothing stale is kept
        return [c.version for c in await store.changes("d1")]

    assert run(scenario, path) == [1, 2]


def test_other_tasks_wait_for_a_transaction_and_stay_out_of_it(path: Path) -> None:
    async def scenario(store: AsyncDealStore) -> tuple[str | None, str | None]:
        tracker = AsyncTracker(store, presets.four_stage())
        for id in ("mine", "theirs"):
            await tracker.open("four_stage", id)
        inside = asyncio.Event()

        async def fail() -> None:
            async with store.transaction():
                await tracker.update("mine", owner="kim")
                inside.set()
                await asyncio.sleep(0.05)
                _ = 1 / 0

        async def other() -> Deal:
            await inside.wait()
            return await tracker.update("theirs", owner="lee")

        failed, theirs = await asyncio.gather(fail(), other(), return_exceptions=True)
        assert isinstance(failed, ZeroDivisionError)
        assert isinstance(theirs, Deal)
        return (await tracker.get("mine")).owner, (await tracker.get("theirs")).owner

    assert run(scenario, path) == (None, "lee")


def test_tasks_started_inside_a_transaction_join_it(path: Path) -> None:
    async def scenario(store: AsyncDealStore) -> tuple[list[int], list[str]]:
        tracker = AsyncTracker(store, presets.four_stage())
        heard: list[str] = []
        tracker.subscribe(lambda change, deal: heard.append(deal.id), event="update")
        for id in ("a", "b"):
            await tracker.open("four_stage", id)

        async def fail() -> None:
            async with store.transaction():
                await asyncio.gather(*(tracker.update(id, owner="kim") for id in ("a", "b")))
                _ = 1 / 0

        with pytest.raises(ZeroDivisionError):
            await fail()
        async with store.transaction():
            await asyncio.gather(*(tracker.update(id, owner="lee") for id in ("a", "b")))
            assert heard == []
        return [(await tracker.get(id)).version for id in ("a", "b")], sorted(heard)

    assert run(scenario, path) == ([2, 2], ["a", "b"])


def test_find_and_count_take_the_sync_store_s_filters_and_pages(path: Path) -> None:
    async def scenario(store: AsyncDealStore) -> tuple[list[str], int, list[str]]:
        tracker = AsyncTracker(store, presets.four_stage())
        for n in range(5):
            await tracker.open("four_stage", f"d{n}", owner="kim" if n % 2 else "lee")
        page = [d.id async for d in tracker.deals(owner="lee", limit=2, after="d0")]
        counted = await store.count(owner="kim")
        with pytest.raises(ValidationError, match="limit"):
            [d async for d in store.find(limit=-1)]
        return page, counted, [d.id async for d in store.find(owner="kim")]

    assert run(scenario, path) == (["d2", "d4"], 2, ["d1", "d3"])
