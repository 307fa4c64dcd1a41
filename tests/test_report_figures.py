"""The per-deal figures that let ``store.report`` skip the history table.

Every deal row carries the stages its history entered and its completed stays per
stage (``storage._figures``). These tests hold them to an independent reading of
the history, after ``add``, after each ``save``, past the seven stay slots, and
after a version-1 database is upgraded to keep them.
"""

from __future__ import annotations

import json
import tempfile
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _backends import Backend, sqlite_raw
from _dataset import DAY, NOW, T, abc, hand_worked
from _postgres import PostgresServer, postgres_database, postgres_server  # noqa: F401
from _schema_v1 import write_v1
from salespipeline import metrics
from salespipeline.deal import Deal
from salespipeline.errors import CorruptRecordError, StorageError
from salespipeline.metrics._facts import Facts
from salespipeline.metrics._pure import DealFacts
from salespipeline.pipeline import Pipeline
from salespipeline.stages import LOST, WON, Stage
from salespipeline.storage import DealStore, SQLiteStore
from salespipeline.storage.sql import _plan
from salespipeline.storage.sql._figures import SLOTS
from salespipeline.storage.sql._report import sql_facts
from salespipeline.storage.sql._store import SQLStore
from salespipeline.testing import strategies as sps

US = timedelta(microseconds=1)
FIGURES = ", ".join(
    ["entered_stages", "stays_more"]
    + [f"stays_{j}" for j in range(1, SLOTS + 1)]
    + [f"stay_us_{j}" for j in range(1, SLOTS + 1)]
)

AFTER_ALL = datetime(2200, 1, 1, tzinfo=timezone.utc)
"""After every generated change (``strategies.timestamps`` end in 2100)."""
LATE = T + 400 * DAY
"""After every change of these tests' walks and datasets: reports of them as they end."""


def expected(deal: Deal) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """The figures read straight off the history: stages entered, stays per open stage."""
    entered = sorted({change.to_stage for change in deal.history})
    stays = {stage: (0, 0) for stage in entered if stage not in (WON, LOST)}
    for change, following in pairwise(deal.history):
        if change.to_stage in stays:
            count, micros = stays[change.to_stage]
            stays[change.to_stage] = (count + 1, micros + (following.at - change.at) // US)
    return entered, stays


def stored(row: tuple[Any, ...]) -> tuple[list[str], dict[str, tuple[int, int]]]:
    """The figures of one raw ``FIGURES`` row, slots unpacked by the stage they belong to."""
    entered = json.loads(row[0])
    open_stages = [stage for stage in entered if stage not in (WON, LOST)]
    counts, micros = row[2 : 2 + SLOTS], row[2 + SLOTS :]
    used = min(len(open_stages), SLOTS)
    assert all(value == 0 for value in (*counts[used:], *micros[used:]))  # unused slots
    stays = {open_stages[j]: (counts[j], micros[j]) for j in range(used)}
    more = json.loads(row[1]) if row[1] is not None else {}
    assert (row[1] is None) == (len(open_stages) <= SLOTS)
    stays.update({stage: (pair[0], pair[1]) for stage, pair in more.items()})
    return entered, stays


def figures_of(raw: Any, deal_id: str) -> tuple[list[str], dict[str, tuple[int, int]]]:
    [row] = raw(f"SELECT {FIGURES} FROM sp_deals WHERE id = ?", (deal_id,))
    return stored(tuple(row))


def long_pipeline(stages: int = 9) -> Pipeline:
    """More open stages than there are stay slots."""
    return Pipeline("long", [Stage(f"s{i}", probability=i / stages) for i in range(stages)])


def walk(pipeline: Pipeline, deal_id: str) -> list[Deal]:
    """Every state of a deal that goes through all stages, back once, lost, reopened, won."""
    names = [s.name for s in pipeline.stages]
    deal = pipeline.start(deal_id, amount=100, at=T)
    states = [deal]
    for hours, name in enumerate([*names[1:], names[2], names[3], LOST], 1):
        at = T + timedelta(hours=7 * hours, microseconds=hours)
        if name == LOST:
            deal = pipeline.lose(deal, reason="price", at=at)
        else:
            deal = pipeline.move(deal, name, at=at)
        states.append(deal)
    states.append(pipeline.reopen(deal, at=T + 30 * DAY))
    for name in names[4:]:
        states.append(pipeline.move(states[-1], name, at=states[-1].stage_entered_at + DAY))
    states.append(pipeline.win(states[-1], at=states[-1].stage_entered_at + 2 * DAY))
    return states


# -- what a save writes -------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_stored_figures_match_the_history(data: st.DataObject) -> None:
    pipeline = data.draw(sps.pipelines(max_stages=12, allow_skip=True, guards=False))
    deals = data.draw(
        st.lists(sps.deals(pipeline, max_steps=20), max_size=6, unique_by=lambda d: d.id)
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "deals.sqlite"
        with SQLiteStore(path) as store:
            for deal in deals:
                store.add(deal)
            assert store.report(pipeline, as_of=AFTER_ALL) == metrics.report(
                deals, pipeline, as_of=AFTER_ALL
            )
        raw = sqlite_raw(path)
        for deal in deals:
            assert figures_of(raw, deal.id) == expected(deal)


def test_each_save_keeps_the_figures_current(backend: Backend) -> None:
    pipeline = long_pipeline()
    states = walk(pipeline, "w")
    with backend.open() as store:
        store.add(states[0])
        for state in states[1:]:
            store.save(state)
            assert figures_of(backend.raw, "w") == expected(state)
        assert store.report(pipeline, as_of=LATE) == metrics.report(
            [states[-1]], pipeline, as_of=LATE
        )


def test_stays_past_the_slots_are_kept_and_reported(backend: Backend) -> None:
    # s0..s8 entered: slots hold s0..s6, stays_more holds s7 and s8
    pipeline = long_pipeline()
    deals = [walk(pipeline, f"w{i}")[-1] for i in range(3)]
    deals.append(walk(pipeline, "open")[8])  # still open in s8 (entered last, no stay yet)
    with backend.open() as store:
        for deal in deals:
            store.add(deal)
        [(more,)] = backend.raw("SELECT stays_more FROM sp_deals WHERE id = ?", ("w0",))
        assert set(json.loads(more)) == {"s7", "s8"}
        report = store.report(pipeline, as_of=LATE)
    assert report == metrics.report(deals, pipeline, as_of=LATE)
    # s8, per won deal: 7 h + 1 us (entered at 56 h + 8 us, left at 63 h + 9 us) and,
    # after the reopen, 2 days (entered, then won 2 days later); the open deal's stay
    # has not ended. Mean of (7 h + 1 us, 2 d) x 3 = 27.5 h + 0.5 us, rounded half to
    # even: 27.5 h.
    assert report.time_in_stage["s8"] == timedelta(hours=27, minutes=30)


def test_a_report_over_junk_figures_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "deals.sqlite"
    pipeline = abc()
    with SQLiteStore(path) as store:
        for deal in hand_worked(pipeline):
            store.add(deal)
        for column, junk in [
            ("entered_stages", "not json"),
            ("entered_stages", '{"a": 1}'),
            ("stays_1", 1.5),
            ("stay_us_1", 2.0**70),
            ("stays_more", "[1]"),
        ]:
            raw = sqlite_raw(path)
            [(kept,)] = raw(f"SELECT {column} FROM sp_deals WHERE id = 'd4'", ())
            raw(f"UPDATE sp_deals SET {column} = ? WHERE id = 'd4'", (junk,))
            with pytest.raises(StorageError, match="'abc'"):
                store.report(pipeline, as_of=LATE)
            raw(f"UPDATE sp_deals SET {column} = ? WHERE id = 'd4'", (kept,))
            assert store.report(pipeline, as_of=LATE) is not None


# -- what a report reads back: the facts the pure path makes of each deal ----------------


def normalised(facts: Facts) -> Facts:
    """``facts`` with its stays summed per stage, stages without a stay left out."""
    stays: dict[str, tuple[int, int]] = {}
    for stage, count, micros in facts.stays:
        before = stays.get(stage, (0, 0))
        stays[stage] = (before[0] + count, before[1] + micros)
    return facts._replace(stays=sorted((s, n, us) for s, (n, us) in stays.items() if n))


def stored_facts(store: DealStore, pipeline: Pipeline, now: datetime) -> list[Facts]:
    assert isinstance(store, SQLStore)
    facts: list[Facts] = []
    steps = sql_facts(pipeline, as_of=now, dialect=store.sql.dialect, take=facts.extend)
    store._run(_read(steps))
    return facts


def _read(steps: _plan.Steps[None]) -> _plan.Plan[None]:
    yield _plan.Within("read", steps)


def one_deal_each() -> list[tuple[Pipeline, Deal]]:
    """Every state of a walk past the slots and every hand-worked deal, each in its own
    pipeline (same stages), so one pipeline's stored facts are one deal's."""
    cases = []
    for k in range(len(walk(long_pipeline(), "w"))):
        p = Pipeline(f"long-{k}", long_pipeline().stages)
        cases.append((p, walk(p, f"w{k}")[k]))
    for k in range(len(hand_worked(abc()))):
        p = Pipeline(f"abc-{k}", abc().stages)
        cases.append((p, hand_worked(p)[k]))
    return cases


def test_each_stored_deal_reads_back_as_the_facts_the_pure_path_makes_of_it(
    backend: Backend,
) -> None:
    with backend.open() as store:
        for pipeline, deal in one_deal_each():
            store.add(deal)
            [stored] = stored_facts(store, pipeline, LATE)
            assert normalised(stored) == normalised(DealFacts(pipeline, LATE)(deal))


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_stored_facts_equal_the_pure_facts_deal_by_deal(data: st.DataObject) -> None:
    pipeline = data.draw(sps.pipelines(max_stages=10, guards=False))
    deal = data.draw(sps.deals(pipeline, max_steps=12))
    now = deal.stage_entered_at + data.draw(st.sampled_from([timedelta(0), DAY, 40 * DAY]))
    with SQLiteStore(":memory:") as store:
        store.add(deal)
        [stored] = stored_facts(store, pipeline, now)
    assert normalised(stored) == normalised(DealFacts(pipeline, now)(deal))


# -- upgrading a version-1 database -------------------------------------------------------


def make_v1(backend: Backend, pipeline: Pipeline, deals: list[Deal]) -> None:
    """A database as salespipeline 0.1 left it: version-1 tables holding ``deals``."""
    write_v1(backend.raw, backend.name == "sqlite", pipeline, deals)


def test_a_version_1_database_is_upgraded_on_open(backend: Backend) -> None:
    pipeline = abc()
    deals = hand_worked(pipeline)
    make_v1(backend, pipeline, deals)
    with backend.open() as store:
        assert backend.raw("SELECT value FROM sp_meta WHERE key = ?", ("schema_version",)) == [
            ("3",)
        ]
        for deal in deals:
            assert figures_of(backend.raw, deal.id) == expected(deal)
            assert store.get(deal.id) == deal
        assert store.report(pipeline, as_of=LATE) == metrics.report(deals, pipeline, as_of=LATE)
        moved = pipeline.lose(store.get("d4"), "price", at=NOW)
        store.save(moved)
        assert figures_of(backend.raw, "d4") == expected(moved)
    with backend.open() as store:  # opening again changes nothing
        assert store.get("d4") == moved


def test_a_long_version_1_database_is_upgraded_in_batches(backend: Backend) -> None:
    pipeline = long_pipeline()
    deals = [walk(pipeline, f"w{i:04d}")[-1 - i % 5] for i in range(2_300)]
    make_v1(backend, pipeline, deals)
    with backend.open() as store:
        assert store.report(pipeline, as_of=LATE) == metrics.report(deals, pipeline, as_of=LATE)
    for deal in deals[::97]:
        assert figures_of(backend.raw, deal.id) == expected(deal)


def test_an_unreadable_history_stops_the_upgrade_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite"
    backend = Backend("sqlite", lambda: SQLiteStore(path), sqlite_raw(path))
    pipeline = abc()
    make_v1(backend, pipeline, hand_worked(pipeline))
    backend.raw("UPDATE sp_stage_changes SET at_us = 'noon' WHERE deal_id = 'd3'", ())
    before = backend.raw("SELECT * FROM sp_deals ORDER BY id", ())
    with pytest.raises(CorruptRecordError) as error:
        backend.open()
    assert error.value.deal_id == "d3"
    assert backend.raw("SELECT value FROM sp_meta", ()) == [("1",)]
    assert backend.raw("SELECT * FROM sp_deals ORDER BY id", ()) == before


def test_a_schema_version_with_no_upgrade_is_refused(backend: Backend) -> None:
    backend.open().close()
    backend.raw("UPDATE sp_meta SET value = ? WHERE key = ?", ("0", "schema_version"))
    with pytest.raises(StorageError, match="schema version 0, which this salespipeline cannot"):
        backend.open()
