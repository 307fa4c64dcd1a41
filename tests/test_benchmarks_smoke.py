"""The benchmarks compute what they claim to, on tiny sizes (timings are never judged)."""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SteppingClock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import (
    async_pg,
    bulk_add,
    compile_cache,
    find_page,
    long_history,
    memory,
    persist,
    run,
    walk,
)

from salespipeline import Bant, Deal, StageBlockedError, StageChange, presets
from salespipeline.stages import LOST, WON
from salespipeline.storage import SQLiteStore
from salespipeline.storage.sql._store import SQLStore

UNQUALIFIED = Bant(budget=True, authority=True, need=True, timeline=False)


# -- 1. transition walk ------------------------------------------------------------


def test_the_salespipeline_walk_wins_every_deal_with_eight_history_entries() -> None:
    deals = walk.salespipeline_walk(walk.salespipeline_prepare(3))
    assert [d.stage for d in deals] == [WON] * 3
    assert all(len(d.history) == 8 and d.version == 8 for d in deals)


@pytest.mark.parametrize(
    "walk_records",
    [walk.statemachine_walk, walk.statemachine_reused_walk],
    ids=["machine per move", "machine per deal"],
)
def test_the_python_statemachine_walks_end_won_with_a_history_entry_per_move(
    walk_records: Any,
) -> None:
    records = walk_records(walk._records(3))
    assert [r.stage for r in records] == ["won"] * 3
    assert [h[1] for h in records[0].history] == [*walk.STAGES, "won"]
    assert records[0].version == 8


def test_the_transitions_walk_ends_won_with_a_history_entry_per_move() -> None:
    records = walk.transitions_walk(walk.transitions_prepare(3))
    assert [r.stage for r in records] == ["won"] * 3
    assert [h[1] for h in records[0].history] == [*walk.STAGES, "won"]


def test_the_floor_walk_ends_won() -> None:
    assert [r["stage"] for r in walk.floor_walk(walk.floor_prepare(2))] == ["won"] * 2


def test_every_way_of_walking_refuses_proposal_without_bant() -> None:
    pipeline, _ = walk.salespipeline_prepare(0)
    deal = pipeline.start("d", bant=UNQUALIFIED)
    for _ in range(3):
        deal = pipeline.advance(deal)
    with pytest.raises(StageBlockedError):
        pipeline.advance(deal)

    record = walk.Record("r")
    record.bant, record.stage = UNQUALIFIED, "needs_assessment"
    with pytest.raises(walk.BantRefused):
        walk.SevenStage(model=record, state_field="stage").send("advance")
    assert record.stage == "needs_assessment"

    machine = walk._transitions_machine()
    machine.add_model(record, initial="needs_assessment")
    assert record.trigger("advance") is False  # type: ignore[attr-defined]
    assert record.stage == "needs_assessment"

    row = {"stage": "needs_assessment", "bant_ok": False}
    with pytest.raises(walk.BantRefused):
        walk.floor_walk([row])


def test_measure_gives_a_positive_time_per_transition_for_every_contender() -> None:
    timings = walk.measure(n_deals=2, rounds=1)
    assert set(timings) == set(walk.contenders(2))
    assert all(0 < t < math.inf for t in timings.values())


# -- 2. persisted moves ------------------------------------------------------------


def _walk_and_load(backend: persist.Backend, mover: str) -> list[Any]:
    target = persist.setup(backend, 2)
    moving = persist.MOVERS[mover](backend, target)
    try:
        for deal_id in persist.ids(2):
            moving.walk(deal_id)
    finally:
        moving.close()
    with backend.store(target) as store:
        return [store.get(deal_id) for deal_id in persist.ids(2)]


@pytest.mark.parametrize("mover", list(persist.MOVERS))
def test_every_sqlite_mover_leaves_deals_the_store_reads_back_in_closing(
    tmp_path: Path, mover: str
) -> None:
    deals = _walk_and_load(persist.sqlite_backend(tmp_path), mover)
    assert [d.stage for d in deals] == ["closing", "closing"]
    assert [c.to_stage for c in deals[0].history] == list(persist.STAGES)
    assert deals[0].version == 7


@pytest.mark.postgres
@pytest.mark.parametrize("mover", list(persist.MOVERS))
def test_every_postgres_mover_leaves_deals_the_store_reads_back_in_closing(
    postgres_server: Any, mover: str
) -> None:
    deals = _walk_and_load(persist.postgres(postgres_server), mover)
    assert [d.stage for d in deals] == ["closing", "closing"]
    assert [c.to_stage for c in deals[0].history] == list(persist.STAGES)


@pytest.mark.postgres
def test_the_long_history_moves_are_timed_warm_cold_and_async_on_postgres(
    postgres_server: Any,
) -> None:
    measured = long_history.tracked(
        persist.postgres(postgres_server), 40, deals=2, moves=2, rounds=1
    )
    assert set(measured) == {long_history.WARM, long_history.COLD, long_history.ASYNC_COLD}
    for per_move in measured.values():
        assert set(per_move) == {"short", "long"}
        assert all(0 < seconds < math.inf for seconds in per_move.values())


def test_persisted_measure_gives_a_positive_rate_for_every_contender(tmp_path: Path) -> None:
    rates = persist.measure(persist.sqlite_backend(tmp_path), moves=12, rounds=1)
    assert set(rates) == set(persist.MOVERS)
    assert all(0 < r < math.inf for r in rates.values())


# -- 3. memory ---------------------------------------------------------------------


def test_memory_deals_have_five_history_entries_half_of_them_lost() -> None:
    deals = memory.make_deals(4)
    assert all(len(d.history) == memory.HISTORY for d in deals)
    assert [d.stage for d in deals] == ["proposal", "lost", "proposal", "lost"]


def test_bytes_per_deal_counts_at_least_the_deal_and_its_history() -> None:
    deal = memory.make_deals(1)[0]
    floor = sys.getsizeof(deal) + sys.getsizeof(deal.history)
    floor += sum(sys.getsizeof(c) for c in deal.history)
    assert floor < memory.bytes_per_deal(50) < 64 * 1024


# -- 4. compile cache --------------------------------------------------------------


def test_compile_cost_is_measured_for_first_cached_and_pipeline() -> None:
    cost = compile_cache.compile_cost(rounds=1, lookups=20)
    assert min(cost.first, cost.cached, cost.pipeline_cached) > 0


def test_distinct_definitions_are_distinct_and_cover_sixteen_shapes() -> None:
    built = [compile_cache.distinct_definition(i) for i in range(16)]
    assert len({p.name for p in built}) == 16
    shapes = {(len(p.stages), p.allow_skip, p.allow_back) for p in built}
    assert len(shapes) == 16


def test_growth_reports_a_bounded_cache_and_a_registry_that_does_not_grow() -> None:
    grown = compile_cache.growth(definitions=32, batches=2)
    assert grown.definitions == 32
    assert len(grown.retained_bytes) == 2
    assert grown.cache_size <= grown.cache_max == 128
    assert len(set(grown.registry_entries)) == 1
    assert grown.evicted_class_freed


# -- the runner --------------------------------------------------------------------


def test_the_quick_run_prints_a_table_row_for_each_contender(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run.main(["--quick", "--only", "walk", "--only", "memory"]) == 0
    out = capsys.readouterr().out
    assert "- Python " in out
    for name in walk.contenders(1):
        assert f"| {name} |" in out
    assert "bytes per deal" in out


# -- the optimised hot path --------------------------------------------------------


@settings(max_examples=50)
@given(data=st.data(), qualified=st.booleans())
def test_moved_deals_equal_their_fully_validated_reconstruction(
    data: st.DataObject, qualified: bool
) -> None:
    pipeline = presets.seven_stage(clock=SteppingClock())
    deal = pipeline.start("d", bant=walk.QUALIFIED if qualified else UNQUALIFIED)
    for _ in range(data.draw(st.integers(0, 12))):
        if not pipeline.moves(deal):
            break
        target = data.draw(st.sampled_from(pipeline.moves(deal)))
        before = attrs.asdict(deal, recurse=False)
        moved = pipeline.move(deal, target, reason="no budget" if target == LOST else None)
        assert attrs.asdict(deal, recurse=False) == before
        assert Deal(**attrs.asdict(moved, recurse=False)) == moved
        assert moved.history[-1] == StageChange(*attrs.astuple(moved.history[-1], recurse=False))
        deal = moved


# -- 7. find pages -----------------------------------------------------------------


def _find_result(backend: persist.Backend, n_deals: int) -> find_page.Result:
    with backend.store(backend.fresh()) as store:
        assert isinstance(store, SQLStore)
        find_page.fill(store, n_deals)
        assert store.count(owner=find_page.OWNER) == n_deals // find_page.OWNERS
        return find_page.measure(store, backend.name, rounds=1)


def test_find_pages_are_timed_against_a_full_scan_on_sqlite(tmp_path: Path) -> None:
    result = _find_result(persist.sqlite_backend(tmp_path), 12_000)  # 120 deals per owner
    assert set(result.seconds) == {find_page.FIRST, find_page.DEEP, find_page.SCAN, find_page.COLD}
    assert all(0 < s < math.inf for s in result.seconds.values())
    assert result.depth == 2


@pytest.mark.postgres
def test_find_pages_are_timed_against_a_full_scan_on_postgres(postgres_server: Any) -> None:
    result = _find_result(persist.postgres(postgres_server), 600)
    assert all(0 < s < math.inf for s in result.seconds.values())


# -- 8. bulk add -------------------------------------------------------------------


def test_bulk_deals_have_five_changes_each() -> None:
    deals = bulk_add.deals(3)
    assert [d.version for d in deals] == [bulk_add.CHANGES] * 3
    assert all(len(d.history) == bulk_add.CHANGES for d in deals)


def test_add_many_is_timed_against_hand_written_inserts_on_sqlite(tmp_path: Path) -> None:
    rates = bulk_add.measure(persist.sqlite_backend(tmp_path), n_deals=40, rounds=1)
    assert set(rates) == {bulk_add.ADD_MANY, bulk_add.REFERENCE}
    assert all(0 < rate < math.inf for rate in rates.values())


@pytest.mark.postgres
def test_add_many_is_timed_against_hand_written_inserts_on_postgres(
    postgres_server: Any,
) -> None:
    rates = bulk_add.measure(persist.postgres(postgres_server), n_deals=40, rounds=1)
    assert all(0 < rate < math.inf for rate in rates.values())


def test_the_import_benchmark_times_the_cli_and_add_many_of_the_same_deals(
    tmp_path: Path,
) -> None:
    seconds = bulk_add.measure_import(tmp_path, n_deals=6, rounds=1)
    assert set(seconds) == {bulk_add.IMPORT, bulk_add.ADD_MANY}
    assert all(0 < s < math.inf for s in seconds.values())
    row = run.import_row(run.QUICK)
    assert row.ratio.endswith("x of add_many") and row.verdict


def test_the_exported_csv_imports_as_the_benchmark_s_deals(tmp_path: Path) -> None:
    deals = bulk_add.deals(4)
    source = bulk_add.export(deals, tmp_path / "export.csv")
    path = bulk_add._recorded(str(tmp_path / "db.sqlite"))
    bulk_add._imported(path, source)
    with SQLiteStore(path) as store:
        found = list(store.find())
        assert [(d.id, d.stage, d.amount, d.bant) for d in found] == [
            (d.id, d.stage, d.amount, d.bant) for d in deals
        ]
        assert [[(e.to_stage, e.at) for e in d.history] for d in found] == [
            [(e.to_stage, e.at) for e in d.history] for d in deals
        ]
        assert [c.kind for c in store.changes(deals[0].id)] == ["import"] * bulk_add.CHANGES


def test_the_hand_written_rows_are_the_rows_add_many_writes(tmp_path: Path) -> None:
    deals = bulk_add.deals(4)
    with persist.sqlite_backend(tmp_path).store(str(tmp_path / "a.sqlite")) as ours:
        assert isinstance(ours, SQLStore)
        ours.add_many(deals)
        with persist.sqlite_backend(tmp_path).store(str(tmp_path / "b.sqlite")) as theirs:
            assert isinstance(theirs, SQLStore)
            bulk_add.hand_written(theirs, deals)
            assert list(theirs.find()) == list(ours.find()) == deals
            assert theirs.log() == ours.log()


@pytest.mark.postgres
def test_each_async_contender_walks_its_deals_to_closing(postgres_server: Any) -> None:
    import asyncio

    backend = persist.postgres(postgres_server)
    deal_ids = persist.ids(3)
    ordered = functools.partial(async_pg._hand_written, ordered=True)
    for contender in (async_pg._async_tracker, async_pg._hand_written, ordered):
        target = persist.setup(backend, 3)
        asyncio.run(contender(target, deal_ids))
        with backend.store(target) as store:
            assert [store.get(i).stage for i in deal_ids] == ["closing"] * 3
    rates = async_pg.measure(backend, moves=12, rounds=1)
    assert set(rates) == {async_pg.ASYNC, async_pg.SYNC, async_pg.HAND, async_pg.HAND_ORDERED}
    assert all(0 < rate < math.inf for rate in rates.values())
