"""The shortcuts a save takes on every move do what the general code does."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salespipeline._checks import FrozenMap
from salespipeline.storage import SQLiteStore, _codec
from salespipeline.storage.sql._names import DEFAULT, check_names

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4).map(FrozenMap)
    ),
    max_leaves=20,
)


@given(json_values)
def test_the_change_encoder_writes_what_the_general_one_writes(value: object) -> None:
    assert _codec._encode_acyclic(value) == _codec._encode(value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_the_change_encoder_refuses_what_json_cannot_hold(value: float) -> None:
    with pytest.raises(ValueError, match="JSON"):
        _codec._encode_acyclic({"probability": value})


def test_the_default_names_are_the_default_itself() -> None:
    # A store compares its names with DEFAULT by identity to skip renaming each
    # statement; equal names that were not DEFAULT made every statement go through
    # the renaming wrapper.
    assert check_names("sp_", None, schemas=False) is DEFAULT
    assert check_names("crm_", None, schemas=False) is not DEFAULT


def test_a_store_with_the_default_names_uses_the_driver_cursor(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "deals.sqlite")
    try:
        assert type(store._cursor()) is sqlite3.Cursor
    finally:
        store.close()


def test_a_bulk_add_keeps_the_rows_of_every_change_and_the_last_change_of_each_deal() -> None:
    from datetime import datetime, timedelta, timezone

    from salespipeline import Bant, log, presets
    from salespipeline.storage.sql._store import encoded_adds

    pipeline = presets.seven_stage()
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    qualified = Bant(budget=True, authority=True, need=True, timeline=True)
    deals = []
    for i in range(3):
        deal = pipeline.start(f"d{i}", amount=100 * i, bant=qualified, at=at)
        for step in range(i):
            deal = pipeline.advance(deal, at=at + timedelta(hours=step + 1))
        deals.append(deal)
    encoded = encoded_adds(deals, "ana", None, None, False)
    for deal, add in zip(deals, encoded, strict=True):
        made = log.recorded(deal, actor="ana")
        assert add.deal is deal
        assert add.changes == tuple(_codec.log_values(change) for change in made)
        assert add.last == made[-1]


def test_the_async_plan_driver_sends_each_result_and_throws_each_error_in() -> None:
    import asyncio
    from collections.abc import Generator

    from salespipeline.storage.sql._plan import awaited

    seen: list[object] = []

    def plan() -> Generator[int, int, str]:
        seen.append((yield 5))
        try:
            yield 0
        except ZeroDivisionError:
            seen.append("caught")
        seen.append((yield 2))
        return "done"

    async def do(step: int) -> int:
        await asyncio.sleep(0)
        return 10 // step

    assert asyncio.run(awaited(plan(), do)) == "done"
    assert seen == [2, "caught", 5]


def test_the_async_plan_driver_raises_what_the_plan_does_not_catch() -> None:
    import asyncio
    from collections.abc import Generator

    from salespipeline.storage.sql._plan import awaited

    def plan() -> Generator[int, int, int]:
        return (yield 0)

    async def do(step: int) -> int:
        return 1 // step

    with pytest.raises(ZeroDivisionError):
        asyncio.run(awaited(plan(), do))


def test_psycopg_errors_are_mapped_by_one_reusable_guard() -> None:
    psycopg = pytest.importorskip("psycopg")
    from salespipeline.errors import StorageError
    from salespipeline.storage.postgres import Mapped
    from salespipeline.storage.sql._store import UniqueViolation

    guard = Mapped(psycopg, DEFAULT, "db")
    for _ in range(2):  # entered again: it keeps nothing of a call
        with pytest.raises(UniqueViolation), guard:
            raise psycopg.errors.UniqueViolation("duplicate key")
        with pytest.raises(StorageError, match="PostgreSQL db failed"), guard:
            raise psycopg.OperationalError("gone")
        with pytest.raises(KeyError), guard:  # not psycopg's: passes through as it is
            raise KeyError("x")
        with guard:
            pass


def test_an_async_store_makes_its_blocks_once() -> None:
    pytest.importorskip("psycopg_pool")
    from salespipeline.aio import AsyncPostgresStore

    store = AsyncPostgresStore("host=/nonexistent dbname=none")  # constructing does no I/O
    assert store._blocks is store._blocks


def test_differing_names_each_state_attribute_two_deals_do_not_share_in_order() -> None:
    from datetime import datetime, timezone

    from salespipeline import presets
    from salespipeline._unchecked import differing, replace
    from salespipeline.deal import STATE

    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    deal = presets.seven_stage().start("d", amount=5, owner="ana", at=at)
    other = deal.evolve(at=at, owner="bo", amount=7, fields={"k": 1})
    found = differing(deal, other)
    expected = [n for n in STATE if getattr(deal, n) is not getattr(other, n)]
    assert [name for name, _, _ in found] == expected
    assert {"owner", "amount", "fields"} <= set(expected)
    assert all(old is getattr(deal, n) and new is getattr(other, n) for n, old, new in found)
    assert differing(deal, deal) == []
    unlike = replace(deal, **{name: object() for name in STATE})
    assert [name for name, _, _ in differing(deal, unlike)] == list(STATE)
