"""The Tracker and the change log: actors, idempotency keys, listeners hearing Changes."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from salespipeline import (
    LOST,
    DuplicateDealError,
    StorageError,
    Tracker,
    TransitionNotAllowedError,
    ValidationError,
    log,
)
from salespipeline.deal import Deal
from salespipeline.storage import DealStore, MemoryStore, SQLiteStore
from salespipeline.storage.sql import _figures
from test_tracker import HOUR, QUALIFIED, T0, Clock, sales


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    made: DealStore = (
        MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "t.db")
    )
    yield made
    made.close()


def losing_replies(store: DealStore, times: int = 1) -> DealStore:
    """``store`` whose next ``times`` saves commit and then raise, as a dropped connection."""
    save = store.save
    left = [times]

    def save_then_fail(deal: Deal, **options: Any) -> Any:
        change = save(deal, **options)
        if left[0] > 0:
            left[0] -= 1
            raise StorageError("the connection dropped before the reply")
        return change

    store.save = save_then_fail  # type: ignore[method-assign]
    return store


def test_the_trackers_actor_is_recorded_and_a_calls_actor_wins(store: DealStore) -> None:
    tracker = Tracker(store, sales(), clock=Clock(), actor="router")
    tracker.open("sales", "d", bant=QUALIFIED)
    tracker.advance("d", actor="지민")
    tracker.update("d", amount=500, reason="new scope")
    changes = store.changes("d")
    assert [(c.kind, c.actor) for c in changes] == [
        ("open", "router"),
        ("move", "지민"),
        ("update", "router"),
    ]
    assert changes[2].reason == "new scope"
    assert [e.actor for e in store.get("d").history] == ["router", "지민"]
    assert tracker.get("d").history == store.get("d").history


def test_open_takes_the_part_two_attributes(store: DealStore) -> None:
    tracker = Tracker(store, sales(), clock=Clock())
    deal = tracker.open(
        "sales",
        "d",
        owner="ann",
        close_date=date(2026, 3, 31),
        forecast_category="best_case",
        next_action="call",
        next_action_at=T0 + 48 * HOUR,
    )
    assert store.get("d") == deal
    assert (deal.owner, deal.close_date, deal.forecast_category) == (
        "ann",
        date(2026, 3, 31),
        "best_case",
    )
    assert store.changes("d")[0].changed["close_date"] == (None, "2026-03-31")


def test_a_retry_with_the_same_key_after_a_lost_reply_writes_nothing(store: DealStore) -> None:
    tracker = Tracker(losing_replies(store), sales(), clock=Clock())
    tracker.open("sales", "d", bant=QUALIFIED)
    with pytest.raises(StorageError):
        tracker.advance("d", key="click-1")  # committed, but the caller never heard
    moved = store.get("d")
    assert moved.stage == "proposal"
    again = tracker.advance("d", key="click-1")  # the client retries
    assert again == moved
    assert store.get("d") == moved
    assert [c.key for c in store.changes("d")] == [None, "click-1"]


def test_a_late_retry_returns_the_deal_as_its_change_left_it(store: DealStore) -> None:
    tracker = Tracker(store, sales(), clock=Clock())
    tracker.open("sales", "d", bant=QUALIFIED)
    first = tracker.advance("d", key="k1")
    tracker.update("d", amount=900)
    tracker.lose("d", "price")
    assert tracker.advance("d", key="k1") == first
    assert store.get("d").stage == LOST
    assert len(store.changes("d")) == 4


def test_open_with_a_key_is_idempotent_and_without_one_still_refuses(store: DealStore) -> None:
    tracker = Tracker(losing_replies(store, times=0), sales(), clock=Clock())
    opened = tracker.open("sales", "d", amount=10, key="form-7")
    assert tracker.open("sales", "d", amount=10, key="form-7") == opened
    with pytest.raises(DuplicateDealError):
        tracker.open("sales", "d", amount=10)
    with pytest.raises(DuplicateDealError):
        tracker.open("sales", "d", amount=10, key="another")
    assert len(store.changes("d")) == 1


def test_a_key_reused_for_another_kind_of_command_is_refused(store: DealStore) -> None:
    tracker = Tracker(store, sales(), clock=Clock())
    tracker.open("sales", "d", bant=QUALIFIED)
    tracker.update("d", amount=5, key="k")
    before = store.log()
    with pytest.raises(ValidationError, match="give each command its own key") as error:
        tracker.advance("d", key="k")
    assert error.value.field == "key"
    assert store.log() == before


@pytest.mark.parametrize(
    "options",
    [{"actor": ""}, {"actor": "  "}, {"actor": "x" * 201}, {"key": ""}, {"key": "k" * 201}],
)
def test_bad_actors_and_keys_are_refused_before_any_write(
    store: DealStore, options: dict[str, Any]
) -> None:
    tracker = Tracker(store, sales(), clock=Clock())
    tracker.open("sales", "d", bant=QUALIFIED)
    before = store.log()
    with pytest.raises(ValidationError):
        tracker.advance("d", **options)
    with pytest.raises(ValidationError):
        tracker.open("sales", "e", **options)
    assert store.log() == before
    with pytest.raises(ValidationError):
        Tracker(store, sales(), actor="")


def test_listeners_receive_the_committed_change(store: DealStore) -> None:
    tracker = Tracker(store, sales(), clock=Clock(), actor="ops")
    heard: list[tuple[str, log.Change, int]] = []
    tracker.subscribe(lambda change, deal: heard.append(("stage", change, deal.version)))
    tracker.subscribe(
        lambda change, deal: heard.append(("update", change, deal.version)), event="update"
    )
    tracker.open("sales", "d", bant=QUALIFIED)
    tracker.advance("d")
    tracker.update("d", amount=7)
    assert [(tag, c.kind, c.version, v) for tag, c, v in heard] == [
        ("stage", "open", 1, 1),
        ("stage", "move", 2, 2),
        ("update", "update", 3, 3),
    ]
    assert [c for _, c, _ in heard] == list(store.changes("d"))
    assert all(c.position is not None for _, c, _ in heard)


def test_a_part_one_store_without_save_options_still_works() -> None:
    """A store written for part 1 takes ``save(deal)`` alone; without actor or key it works."""

    class PartOneStore(MemoryStore):
        def save(self, deal: Deal) -> None:  # type: ignore[override]
            super().save(deal)

    store = PartOneStore()
    tracker = Tracker(store, sales(), clock=Clock())
    tracker.open("sales", "d", bant=QUALIFIED)
    heard: list[log.Change] = []
    tracker.subscribe(lambda change, deal: heard.append(change))
    assert tracker.advance("d").stage == "proposal"
    assert heard[0].kind == "move" and heard[0].position is None


# -- deciding on the deal the store remembers ------------------------------------------


def two_trackers(path: Path) -> tuple[Tracker, Tracker]:
    """Two Trackers on one SQLite file, each with its own store (two app processes)."""
    ours = Tracker(SQLiteStore(path), sales(), clock=Clock(), retries=0)
    theirs = Tracker(SQLiteStore(path), sales(), clock=Clock(), retries=0)
    return ours, theirs


def statements(tracker: Tracker) -> list[str]:
    """The SQL the tracker's SQLite store runs from now on, as the connection sees it."""
    seen: list[str] = []
    connection = tracker.store._connection  # type: ignore[attr-defined]
    connection.set_trace_callback(seen.append)
    return seen


def test_a_move_on_a_remembered_deal_reads_nothing_before_it_writes(tmp_path: Path) -> None:
    ours, _ = two_trackers(tmp_path / "t.db")
    ours.open("sales", "d", bant=QUALIFIED)
    seen = statements(ours)
    ours.advance("d")
    assert [s.split()[0] for s in seen] == ["BEGIN", "UPDATE", "INSERT", "COMMIT"]


def test_a_stale_remembered_deal_is_decided_again_on_the_stored_one(tmp_path: Path) -> None:
    """Their advance since our last look: ours goes on from where the deal is now, and
    the conflict with our stale copy is not a retry (``retries=0`` still succeeds)."""
    ours, theirs = two_trackers(tmp_path / "t.db")
    ours.open("sales", "d", bant=QUALIFIED)
    theirs.advance("d")
    moved = ours.advance("d")
    assert [c.to_stage for c in moved.history] == ["lead", "proposal", "closing"]
    assert ours.store.get("d") == theirs.store.get("d") == moved


def test_a_refusal_of_a_stale_deal_is_checked_on_the_stored_one(tmp_path: Path) -> None:
    ours, theirs = two_trackers(tmp_path / "t.db")
    ours.open("sales", "d", bant=QUALIFIED)
    theirs.lose("d", "budget")
    assert ours.reopen("d").stage == "lead"  # our copy is open: it would refuse a reopen
    assert [c.to_stage for c in ours.get("d").history] == ["lead", LOST, "lead"]


def test_nothing_to_do_on_a_stale_deal_is_checked_on_the_stored_one(tmp_path: Path) -> None:
    ours, theirs = two_trackers(tmp_path / "t.db")
    ours.open("sales", "d", amount=100)
    theirs.update("d", amount=200)
    assert ours.update("d", amount=100).amount == 100  # our copy already says 100
    assert [c.kind for c in ours.store.changes("d")] == ["open", "update", "update"]


def test_a_move_that_the_stored_deal_refuses_is_refused(tmp_path: Path) -> None:
    ours, theirs = two_trackers(tmp_path / "t.db")
    ours.open("sales", "d", bant=QUALIFIED)
    theirs.lose("d", "budget")
    with pytest.raises(TransitionNotAllowedError):
        ours.advance("d")  # our copy could advance; the stored deal is lost
    assert ours.store.get("d").stage == LOST
    assert len(ours.store.changes("d")) == 2


def test_a_save_writes_only_the_columns_its_change_altered(tmp_path: Path) -> None:
    ours, _ = two_trackers(tmp_path / "t.db")
    ours.open("sales", "d", amount=100, bant=QUALIFIED)
    seen = statements(ours)
    ours.update("d", amount=250)
    ours.advance("d")
    updates = [s for s in seen if s.startswith("UPDATE")]
    assert len(updates) == 2
    assert "amount = '250'" in updates[0] and "stage" not in updates[0]
    assert "fields" not in updates[0] and "entered_stages" not in updates[0]
    assert "stage = 'proposal'" in updates[1] and "amount" not in updates[1]
    assert "entered_stages" in updates[1] and "moves = 2" in updates[1]
    assert ours.store.verify() == ()


def test_a_move_writes_only_the_figures_it_alters(tmp_path: Path) -> None:
    ours, _ = two_trackers(tmp_path / "t.db")
    ours.open("sales", "d", bant=QUALIFIED)
    seen = statements(ours)
    ours.advance("d")  # lead's stay completes: slot 1 (lead) and the entered set change
    (update,) = [s for s in seen if s.startswith("UPDATE")]
    written = {part.split(" = ")[0].strip() for part in update.split(" WHERE ")[0].split(",")}
    figures = written & set(_figures.COLUMNS)
    assert figures == {"entered_stages", "stays_1", "stay_us_1", "moves"}
    assert ours.store.verify() == ()


@pytest.mark.parametrize("first", ["advance", "update, then advance"])
def test_a_move_rewrites_every_figure_when_the_row_s_do_not_read(
    tmp_path: Path, first: str
) -> None:
    path = tmp_path / "t.db"
    ours, _ = two_trackers(path)
    ours.open("sales", "d", bant=QUALIFIED)
    ours.advance("d")
    ours.store.close()
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE sp_deals SET stays_more = 'junk', stays_5 = 9 WHERE id = 'd'")
    with SQLiteStore(path) as store:
        tracker = Tracker(store, sales(), clock=Clock())
        if first.startswith("update"):
            tracker.update("d", amount=5)  # writes no figures, so still knows none
        moved = tracker.advance("d")
    with sqlite3.connect(path) as connection:
        columns = ", ".join(_figures.COLUMNS)
        (row,) = connection.execute(f"SELECT {columns} FROM sp_deals WHERE id = 'd'").fetchall()
    assert list(row) == _figures.values(_figures.of_history(moved.history))
