"""Histories shared, not copied; long ones loaded lazily; figures extended, not recomputed."""

from __future__ import annotations

import pickle
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from _backends import Backend
from salespipeline import (
    LOST,
    CorruptRecordError,
    Pipeline,
    Stage,
    StorageError,
    Tracker,
    ValidationError,
    metrics,
)
from salespipeline.deal import History, StageChange
from salespipeline.storage import SQLiteStore, _codec
from salespipeline.storage.sql import _figures
from salespipeline.storage.sql._store import LOAD_LATEST

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def entries(count: int, deal_id: str = "d") -> list[StageChange]:
    """A chain of ``count`` entries a -> b -> a -> b ... an hour apart."""
    names = ["a", "b"]
    return [
        StageChange(
            deal_id,
            None if i == 0 else names[(i - 1) % 2],
            names[i % 2],
            T0 + i * timedelta(hours=1),
            i + 1,
        )
        for i in range(count)
    ]


# -- History as a value --------------------------------------------------------------


@given(st.integers(0, 40), st.data())
def test_a_history_is_the_tuple_of_its_entries(count: int, data: st.DataObject) -> None:
    items = tuple(entries(count))
    history = History(items)
    assert history == items and items == history and list(history) == list(items)
    assert len(history) == count and tuple(reversed(history)) == items[::-1]
    assert hash(history) == hash(items) and repr(history) == repr(items)
    start = data.draw(st.integers(-count - 2, count + 2))
    stop = data.draw(st.integers(-count - 2, count + 2))
    step = data.draw(st.sampled_from([1, 2, -1]))
    assert history[start:stop:step] == items[start:stop:step]
    if count:
        index = data.draw(st.integers(-count, count - 1))
        assert history[index] is items[index]
    assert pickle.loads(pickle.dumps(history)) == items
    assert history + ("x",) == (*items, "x")  # noqa: RUF005
    assert ("x",) + history == ("x", *items)  # type: ignore[operator]  # noqa: RUF005


def test_an_index_past_either_end_is_an_index_error() -> None:
    history = History(entries(3))
    for index in (3, -4):
        with pytest.raises(IndexError):
            history[index]


def test_appending_shares_the_entries_and_never_changes_an_older_view() -> None:
    first = History(entries(2))
    second = first.appended(entries(3)[2])
    assert second._entries is first._entries  # shared, not copied
    assert first == tuple(entries(2)) and second == tuple(entries(3))
    branch = first.appended(StageChange("d", "b", "lost", T0 + timedelta(hours=5), 3))
    assert branch._entries is not first._entries  # a branch copies what it sees
    assert second == tuple(entries(3)) and [c.to_stage for c in branch] == ["a", "b", "lost"]
    assert second.starts_with(first) and branch.starts_with(first)
    assert not branch.starts_with(second) and not first.starts_with(second)


def test_threads_appending_to_one_history_each_get_their_own() -> None:
    base = History(entries(1))
    made: list[History] = []

    def move(n: int) -> None:
        made.append(base.appended(StageChange("d", "a", f"s{n}", T0, 2)))

    threads = [threading.Thread(target=move, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(h[-1].to_stage for h in made) == sorted(f"s{n}" for n in range(16))
    assert all(len(h) == 2 and h[0] is base[0] for h in made)


def test_a_lazy_history_reads_its_head_once_and_only_when_asked() -> None:
    whole = entries(10)
    reads: list[int] = []

    def fetch() -> list[StageChange]:
        reads.append(1)
        return whole[:7]

    history = History.lazy(whole[7:], 7, fetch)
    assert len(history) == 10 and history[-1] is whole[-1] and history[7:] == tuple(whole[7:])
    assert history.latest() == tuple(whole[7:]) and not history.loaded and not reads
    longer = history.appended(StageChange("d", "b", "lost", T0 + timedelta(days=1), 11))
    assert longer[-2:] == (whole[-1], longer[-1]) and not reads
    assert history == tuple(whole) and longer[:10] == tuple(whole)
    assert reads == [1] and history.loaded and longer.loaded


def test_a_lazy_head_of_the_wrong_length_is_a_storage_error() -> None:
    history = History.lazy(entries(3)[2:], 2, lambda: entries(1))
    with pytest.raises(StorageError, match="1 of the 2"):
        list(history)


# -- derived figures ------------------------------------------------------------------

stages = st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "h", "i", "won", LOST])


@st.composite
def histories(draw: st.DrawFn) -> list[StageChange]:
    names = draw(st.lists(stages, min_size=1, max_size=30))
    gaps = draw(st.lists(st.integers(0, 10**9), min_size=len(names), max_size=len(names)))
    at, made, previous = T0, [], None
    for version, (name, gap) in enumerate(zip(names, gaps, strict=True), start=1):
        at += timedelta(microseconds=gap)
        made.append(StageChange("d", previous, name, at, version))
        previous = name
    return made


@given(histories(), st.data())
def test_extended_figures_equal_those_of_the_whole_history(
    history: list[StageChange], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(1, len(history)))
    before = _figures.of_history(history[:cut])
    extended = _figures.extended(before, history[cut - 1], history[cut:])
    assert extended == _figures.of_history(history)
    assert _figures.read(_figures.values(extended)) == extended


@given(histories())
def test_figures_extended_one_move_at_a_time_equal_those_of_the_whole_history(
    history: list[StageChange],
) -> None:
    """A save extends the figures by one entry (its own path, not the general one)."""
    figures = _figures.of_history(history[:1])
    for index in range(1, len(history)):
        figures = _figures.extended(figures, history[index - 1], history[index : index + 1])
        assert figures == _figures.of_history(history[: index + 1])


@given(histories())
def test_a_row_s_figures_moved_one_entry_at_a_time_equal_those_of_the_whole_history(
    history: list[StageChange],
) -> None:
    """A save works a move on the row's values (by index where the stays fit the slots,
    the general way where they do not)."""
    row = _figures.written(_figures.of_history(history[:1]))
    for index in range(1, len(history)):
        row = _figures.moved(row, history[index - 1], history[index])
        whole = _figures.of_history(history[: index + 1])
        assert row.entered == whole.entered
        assert list(row.values) == _figures.values(whole)


@pytest.mark.parametrize("bad", [True, -1, 1.0, "1", None])
def test_figures_that_are_not_counts_do_not_read(bad: object) -> None:
    values = _figures.values(_figures.of_history(entries(3)))
    assert _figures.read(values) == _figures.of_history(entries(3))
    for index in (2, 2 + _figures.SLOTS, len(values) - 1):  # a count, a duration, moves
        damaged = list(values)
        damaged[index] = bad
        with pytest.raises(ValueError, match="not counts"):
            _figures.read(damaged)


def test_figures_that_disagree_with_their_stages_do_not_read() -> None:
    values = _figures.values(_figures.of_history(entries(3)))
    values[1] = '{"z":[1,2]}'  # stays in a stage it never entered
    with pytest.raises(ValueError, match="do not match"):
        _figures.read(values)


# -- long histories in a store --------------------------------------------------------

LONG = 3 * LOAD_LATEST + 5


def pipeline() -> Pipeline:
    return Pipeline("p", [Stage("a", probability=0.1), Stage("b", probability=0.5)])


def long_deal(tracker: Tracker, id: str, moves: int) -> None:
    """Deal ``id`` with ``moves`` + 1 history entries (lost and reopened in turn)."""
    tracker.open("p", id)
    for n in range(moves):
        if n % 2 == 0:
            tracker.lose(id, "timing")
        else:
            tracker.reopen(id)


def counting_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many history rows the stores decode from now on."""
    seen: list[int] = []
    change = _codec._change

    def counted(deal_id: str, row: Any) -> StageChange:
        seen.append(1)
        return change(deal_id, row)

    monkeypatch.setattr(_codec, "_change", counted)
    return seen


def test_a_move_on_a_deal_read_cold_decodes_as_many_rows_for_any_history_length(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    with backend.open() as store:
        writer = Tracker(store, pipeline())
        long_deal(writer, "short", 4)
        long_deal(writer, "long", LONG)
    decoded = {}
    for id in ("short", "long"):
        with backend.open() as store:  # nothing remembered: the move loads the deal
            tracker = Tracker(store, pipeline(), record_definitions=False)
            seen = counting_decodes(monkeypatch)
            [(stage,)] = backend.raw("SELECT stage FROM sp_deals WHERE id = ?", (id,))
            moved = tracker.reopen(id) if stage == LOST else tracker.lose(id, "x")
            decoded[id] = len(seen)
            assert len(moved.history) == store.get(id).version
            monkeypatch.undo()
    assert decoded["short"] == 5 and decoded["long"] == LOAD_LATEST


def test_a_lazily_loaded_deal_equals_the_deal_and_its_store_agrees(backend: Backend) -> None:
    with backend.open() as store:
        tracker = Tracker(store, pipeline())
        long_deal(tracker, "d", LONG)
        full = tuple(store.changes("d"))
    with backend.open() as store:
        loaded = store.load("d")
        assert not loaded.history.loaded and len(loaded.history) == LONG + 1
        tracker = Tracker(store, pipeline(), record_definitions=False)
        moved = tracker.reopen("d") if loaded.stage == LOST else tracker.lose("d", "x")
        assert moved.history[: LONG + 1] == loaded.history
        assert [c.to_stage for c in moved.history if c.version <= len(full)] == [
            c.to_stage for c in full
        ]
        assert store.verify() == ()
        now = T0 + timedelta(days=400)
        pure = metrics.report(list(store.find(pipeline="p")), pipeline(), as_of=now)
        assert store.report("p", as_of=now) == pure


def test_older_history_rows_that_break_the_chain_are_a_corrupt_record(backend: Backend) -> None:
    with backend.open() as store:
        long_deal(Tracker(store, pipeline()), "d", LONG)
    backend.raw(
        "UPDATE sp_changes SET to_stage = ? WHERE deal_id = ? AND version = ?", ("b", "d", 3)
    )
    with backend.open() as store:
        deal = store.load("d")  # the latest entries are sound
        with pytest.raises(CorruptRecordError, match="broken at v4"):
            list(deal.history)


def test_a_row_that_miscounts_its_history_is_a_corrupt_record(backend: Backend) -> None:
    with backend.open() as store:
        long_deal(Tracker(store, pipeline()), "d", LONG)
    backend.raw("UPDATE sp_deals SET moves = ? WHERE id = ?", (5, "d"))
    with backend.open() as store, pytest.raises(CorruptRecordError, match="counts 5"):
        store.get("d")
    backend.raw("UPDATE sp_deals SET moves = ? WHERE id = ?", (LONG + 40, "d"))
    with backend.open() as store:
        deal = store.load("d")  # more than it has: found when the older ones are read
        with pytest.raises(CorruptRecordError, match="older history entries"):
            list(deal.history)


def test_a_store_reads_the_older_history_of_deals_in_use_before_it_closes(tmp_path: Any) -> None:
    with SQLiteStore(tmp_path / "d.sqlite") as store:
        long_deal(Tracker(store, pipeline()), "d", LONG)
    store = SQLiteStore(tmp_path / "d.sqlite")
    deal, whole = store.load("d"), store.get("d")
    assert not deal.history.loaded and whole.history.loaded
    stray = store.load("d").history  # a view that outlives its deal
    store.close()  # reads what the deals still in use left unread
    assert deal.history == whole.history == stray and deal.history.loaded
    assert len(list(deal.history)) == LONG + 1


def test_older_history_cannot_be_read_once_its_store_is_gone(tmp_path: Any) -> None:
    with SQLiteStore(tmp_path / "d.sqlite") as store:
        long_deal(Tracker(store, pipeline()), "d", LONG)
    store = SQLiteStore(tmp_path / "d.sqlite")
    deal = store.load("d")
    store._connection.close()  # type: ignore[union-attr]  # as if the process lost it
    store._connection = None
    del store
    with pytest.raises(StorageError, match=r"read them now.*store\.get"):
        list(deal.history)
    assert deal.history[-1].version == LONG + 1  # what was loaded is still there


@pytest.mark.parametrize("junk", [None, 5, "ab", [1], (entries(1)[0], "x")])
def test_a_history_of_anything_but_stage_changes_is_a_validation_error(junk: Any) -> None:
    with pytest.raises(ValidationError, match="StageChange"):
        History(junk)
