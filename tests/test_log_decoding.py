"""Changes read from a SQL log: scalars checked at once, ``at`` and ``changed`` on first read.

A consumer draining the log pays for a change's time and its ``changed`` JSON only
when it reads them. These tests hold the read change to being the same value as the
one the store was given (equal, hashing, pickling, copying alike, however it is first
touched), and a damaged row to raising ``CorruptRecordError`` naming the deal: at once
for a bad scalar or time, on first read of ``changed`` for damaged JSON.
"""

from __future__ import annotations

import copy
import pickle
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import attrs
import pytest

from _backends import Backend
from salespipeline import Pipeline, Stage, Tracker
from salespipeline.errors import CorruptRecordError
from salespipeline.log import Change

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def pipeline() -> Pipeline:
    return Pipeline("p", [Stage("a", probability=0.1), Stage("b", probability=0.5)])


def story(backend: Backend) -> list[Change]:
    """Three deals opened, updated, moved and lost; the changes the listeners got."""
    heard: list[Change] = []
    with backend.open() as store:
        tracker = Tracker(store, pipeline(), actor="rep")
        tracker.subscribe(lambda change, deal: heard.append(change), event=["start", "update"])
        tracker.subscribe(lambda change, deal: heard.append(change), event=["advance", "lose"])
        for n in range(3):
            tracker.open("p", f"d{n}", amount=100 + n, fields={"source": ["web", n]})
            tracker.update(f"d{n}", owner="ana", reason="handover", key=f"k{n}")
            tracker.advance(f"d{n}")
            tracker.lose(f"d{n}", "timing")
    return sorted(heard, key=lambda change: change.position or 0)


FIRST_TOUCH: dict[str, Callable[[Change], Any]] = {
    "kind": lambda change: change.kind,
    "at": lambda change: change.at,
    "changed": lambda change: change.changed,
    "eq": lambda change: change == change,
    "hash": hash,
    "repr": repr,
    "pickle": lambda change: pickle.loads(pickle.dumps(change)),
    "copy": copy.copy,
    "evolve": lambda change: attrs.evolve(change, reason="other"),
    "entry": lambda change: change.entry,
}


@pytest.mark.parametrize("touch", sorted(FIRST_TOUCH))
def test_a_read_change_is_the_change_committed_however_it_is_first_touched(
    backend: Backend, touch: str
) -> None:
    heard = story(backend)
    with backend.open() as store:
        read = store.log()
        for change in read:
            FIRST_TOUCH[touch](change)
        assert read == tuple(heard)
        assert [hash(change) for change in read] == [hash(change) for change in heard]
        assert [change.changed for change in read] == [change.changed for change in heard]
        assert [change.at for change in read] == [change.at for change in heard]
        assert pickle.loads(pickle.dumps(store.log())) == tuple(heard)
        assert store.changes("d1") == tuple(c for c in heard if c.deal_id == "d1")


def test_a_read_change_has_no_other_attribute(backend: Backend) -> None:
    story(backend)
    with backend.open() as store:
        change = store.log(limit=1)[0]
        with pytest.raises(AttributeError, match="'Change' object has no attribute 'nope'"):
            change.nope  # type: ignore[attr-defined]  # noqa: B018
        assert not hasattr(change, "_nope")


def test_threads_reading_one_change_at_once_all_get_the_same_values(backend: Backend) -> None:
    heard = story(backend)
    with backend.open() as store:
        for _ in range(20):
            change = store.log(limit=1)[0]
            seen: list[tuple[Any, Any]] = []
            barrier = threading.Barrier(4)

            def read(
                change: Change = change,
                barrier: threading.Barrier = barrier,
                seen: list[tuple[Any, Any]] = seen,
            ) -> None:
                barrier.wait()
                seen.append((change.changed, change.at))

            threads = [threading.Thread(target=read) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert seen == [(heard[0].changed, heard[0].at)] * 4


def test_a_damaged_changed_column_is_a_corrupt_record_when_first_read(backend: Backend) -> None:
    heard = story(backend)
    damaged = heard[5]  # d1's update
    backend.raw(
        "UPDATE sp_changes SET changed = ? WHERE position = ?", ("[1, 2]", damaged.position)
    )
    with backend.open() as store:
        read = store.log()
        assert [(c.deal_id, c.version, c.kind) for c in read] == [
            (c.deal_id, c.version, c.kind) for c in heard
        ]
        assert read[5].at == damaged.at
        with pytest.raises(CorruptRecordError, match=r"d1.*change log row is damaged"):
            read[5].changed  # noqa: B018
        with pytest.raises(CorruptRecordError, match="d1"):
            read[5] == damaged  # noqa: B015
        assert read[4] == heard[4] and read[6] == heard[6]


def test_a_consumer_stops_before_a_change_whose_changed_cannot_be_read(backend: Backend) -> None:
    heard = story(backend)
    damaged = heard[5]
    assert damaged.position is not None
    backend.raw("UPDATE sp_changes SET changed = ? WHERE position = ?", ('"x"', damaged.position))
    handled: list[int | None] = []

    def handler(change: Change) -> None:
        change.changed  # noqa: B018  # a handler that reads what changed
        handled.append(change.position)

    with backend.open() as store:
        consumer = store.consumer("mailer")
        with pytest.raises(CorruptRecordError, match="d1"):
            consumer.poll(handler, limit=100)
        assert handled == [c.position for c in heard[:5]]
        assert consumer.position == heard[4].position  # the damaged one comes again


@pytest.mark.parametrize(
    ("column", "junk"),
    [
        ("at_us", -(2**62)),  # before year 1
        ("at_us", 2**62),  # after year 9998
        ("at_us", "soon"),
        ("to_stage", "a"),  # on an update, which moves no stage
        ("kind", "teleport"),
        ("version", 0),
    ],
)
def test_a_damaged_scalar_is_a_corrupt_record_at_once(
    backend: Backend, column: str, junk: object
) -> None:
    heard = story(backend)
    if backend.name == "postgres" and column == "at_us" and not isinstance(junk, int):
        pytest.skip("PostgreSQL's BIGINT column refuses text")
    statement = f"UPDATE sp_changes SET {column} = ? WHERE position = ?"
    backend.raw(statement, (junk, heard[5].position))
    with backend.open() as store, pytest.raises(CorruptRecordError, match="d1"):
        store.log()
