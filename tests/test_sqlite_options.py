"""SQLiteStore's keyword options: the durability setting reaches the connection."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from salespipeline.errors import ValidationError
from salespipeline.storage import SQLiteStore

# PRAGMA synchronous reads back as a number: 1 is NORMAL, 2 is FULL.
_LEVELS = {"normal": 1, "full": 2}


def _synchronous(store: SQLiteStore) -> int:
    with store._statement() as cursor:
        cursor.execute("PRAGMA synchronous")
        return int(cursor.fetchone()[0])


@pytest.mark.parametrize("level", ["full", "normal"])
def test_synchronous_is_set_on_the_connection(tmp_path: Path, level: str) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite", synchronous=level)
    with store:
        assert _synchronous(store) == _LEVELS[level]


@pytest.mark.parametrize("given", [{}, {"synchronous": None}])
def test_synchronous_defaults_to_full(tmp_path: Path, given: dict[str, None]) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite", **given)
    with store:
        assert _synchronous(store) == _LEVELS["full"]


@pytest.mark.parametrize("level", ["full", "normal"])
def test_an_app_s_connection_keeps_its_own_settings_unless_asked(
    tmp_path: Path, level: str
) -> None:
    connection = sqlite3.connect(tmp_path / "app.sqlite", timeout=2)
    connection.execute("PRAGMA synchronous = OFF")
    with SQLiteStore(connection) as store:
        assert _synchronous(store) == 0
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert connection.execute("PRAGMA busy_timeout").fetchone()[0] == 2000
    with SQLiteStore(connection, synchronous=level, timeout=5) as store:
        assert _synchronous(store) == _LEVELS[level]
        assert connection.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    connection.close()


@pytest.mark.parametrize("level", ["off", "FULL", "extra", "", 2])
def test_other_synchronous_values_are_refused_before_opening(
    tmp_path: Path, level: object
) -> None:
    path = tmp_path / "s.sqlite"
    with pytest.raises(ValidationError, match="synchronous"):
        SQLiteStore(path, synchronous=level)  # type: ignore[arg-type]
    assert not path.exists()


def test_normal_keeps_committed_deals_across_reopening(tmp_path: Path) -> None:
    from salespipeline import Tracker, presets

    path = tmp_path / "s.sqlite"
    with SQLiteStore(path, synchronous="normal") as store:
        Tracker(store, presets.seven_stage()).open("seven_stage", "d-1", amount=5)
    with SQLiteStore(path) as store:
        assert store.get("d-1").amount == 5
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
