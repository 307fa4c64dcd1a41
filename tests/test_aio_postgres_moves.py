"""AsyncPostgresStore's move path: the round trips a move costs, and the log's order
when writers commit while another's transaction is still open."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import pytest

from salespipeline import Bant, presets
from salespipeline.aio import AsyncPostgresStore, AsyncTracker
from salespipeline.deal import Deal
from salespipeline.log import Change

psycopg = pytest.importorskip("psycopg")

R = TypeVar("R")
QUALIFIED = Bant(budget=True, authority=True, need=True, timeline=True)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
WAIT = 10.0


def run(scenario: Callable[[], Awaitable[R]]) -> R:
    return asyncio.run(scenario())  # type: ignore[arg-type]


def counting(store: AsyncPostgresStore, seen: list[str]) -> None:
    """Record the first words of every statement ``store`` sends."""
    execute = store._execute

    async def counted(cursor: Any, statement: Any) -> Any:
        seen.append(" ".join(statement.sql.split()[:3]))
        return await execute(cursor, statement)

    store._execute = counted  # type: ignore[method-assign]


def bumped(deal: Deal) -> Deal:
    return deal.evolve(amount=deal.amount + 1, at=deal.updated_at + timedelta(minutes=1))


@pytest.mark.postgres
def test_a_move_of_a_remembered_deal_is_one_statement_and_of_another_two(
    postgres_database: str,
) -> None:
    async def scenario() -> None:
        async with AsyncPostgresStore(postgres_database) as store:
            tracker = AsyncTracker(store, presets.four_stage(), clock=lambda: T0)
            await tracker.open("four_stage", "a", bant=QUALIFIED)
            seen: list[str] = []
            counting(store, seen)
            await tracker.move("a", "qualification")
            assert seen == ["WITH moved AS"]  # the update, the lock and the change row
            async with AsyncPostgresStore(postgres_database) as other:
                counting(other, seen)
                seen.clear()
                moving = AsyncTracker(
                    other, presets.four_stage(), clock=lambda: T0, record_definitions=False
                )
                await moving.move("a", "proposal")
            assert seen[0].startswith("SELECT 0,")  # the load: row and history at once
            assert seen[1:] == ["WITH moved AS"]
            assert [c.to_stage for c in await store.changes("a")][-2:] == [
                "qualification",
                "proposal",
            ]

    run(scenario)


async def advisory_waiters(conninfo: str) -> int:
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as raw:
        cursor = await raw.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'"
        )
        row = await cursor.fetchone()
        assert row is not None
        return int(row[0])


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not await check():
        assert loop.time() < deadline, f"waited {WAIT}s for {what}"
        await asyncio.sleep(0.01)


@pytest.mark.postgres
@pytest.mark.parametrize("second", ["save", "add"])
def test_a_write_that_logs_later_waits_for_an_open_one_and_the_log_skips_nothing(
    postgres_database: str, second: str
) -> None:
    """A's change is inserted in a block still open; B's write waits for the log lock,
    so B's position is higher and a reader at A's commit sees both, in order."""
    pipeline = presets.four_stage()

    async def scenario() -> None:
        async with (
            AsyncPostgresStore(postgres_database) as a_store,
            AsyncPostgresStore(postgres_database) as b_store,
            AsyncPostgresStore(postgres_database) as reader,
        ):
            for name in ("a", "b"):
                await a_store.add(pipeline.start(name, bant=QUALIFIED, at=T0))
            last = (await reader.log())[-1].position
            assert last is not None
            inserted, go = asyncio.Event(), asyncio.Event()

            async def write_a() -> Change:
                async with a_store.transaction():
                    change = await a_store.save(bumped(await a_store.get("a")))
                    inserted.set()
                    await go.wait()
                return change

            async def write_b() -> Change:
                if second == "add":
                    return await b_store.add(pipeline.start("c", bant=QUALIFIED, at=T0))
                return await b_store.save(bumped(await b_store.get("b")))

            a = asyncio.ensure_future(write_a())
            await asyncio.wait_for(inserted.wait(), WAIT)
            b = asyncio.ensure_future(write_b())

            async def b_waits() -> bool:
                return await advisory_waiters(postgres_database) >= 1

            await eventually(b_waits, "B to wait for the log lock")
            assert not b.done(), "B finished while A's transaction was still open"
            assert await reader.log(after=last) == (), "a change of an open block was read"
            go.set()
            change_a, change_b = await asyncio.wait_for(asyncio.gather(a, b), WAIT)
            assert change_a.position is not None and change_b.position is not None
            assert change_a.position < change_b.position, "B committed later, logged earlier"
            page = await reader.log(after=last)
            assert [c.position for c in page] == [change_a.position, change_b.position]
            assert await reader.verify() == ()

    run(scenario)


@pytest.mark.postgres
def test_fifty_tasks_moving_deals_leave_a_log_read_in_pages_with_every_change_once(
    postgres_database: str,
) -> None:
    """While 50 tasks each walk a deal, a reader paging with after= misses no change."""
    pipeline = presets.four_stage()
    stages = [s.name for s in pipeline.stages][1:]

    async def scenario() -> None:
        async with (
            AsyncPostgresStore(postgres_database, max_connections=8) as store,
            AsyncPostgresStore(postgres_database) as reader,
        ):
            tracker = AsyncTracker(store, pipeline, clock=lambda: T0)
            ids = [f"d{n:02}" for n in range(50)]
            for id in ids:
                await tracker.open("four_stage", id, bant=QUALIFIED)
            start = (await reader.log())[-1].position
            assert start is not None
            writing = True
            read: list[Change] = []

            async def page_reader() -> None:
                after = start
                while True:
                    done = not writing  # a last page after the writers ended
                    page = await reader.log(after=after, limit=7)
                    read.extend(page)
                    after = page[-1].position if page else after
                    assert after is not None
                    if done and not page:
                        return
                    await asyncio.sleep(0)

            async def walk(id: str) -> None:
                for stage in stages:
                    await tracker.move(id, stage)

            paging = asyncio.ensure_future(page_reader())
            await asyncio.gather(*(walk(id) for id in ids))
            writing = False
            await asyncio.wait_for(paging, WAIT)
            moved = await reader.log(after=start, limit=10_000)
            assert len(moved) == len(ids) * len(stages)
            assert [c.position for c in read] == [c.position for c in moved]

    run(scenario)
