"""Databases written by earlier releases (schema versions 1 and 2) upgrade to the log.

The fixtures are written by ``_schema_v1.write_v1``/``write_v2`` the way those
releases' code wrote them. After the upgrade every deal reads back unchanged, has
one change per version (the versions the old layout kept no record of are
``PRE_LOG`` updates), replays to its row, and ``verify()`` finds nothing wrong; an
upgrade that fails, or a process killed half way through one, leaves the old
version openable.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from _backends import Backend, sqlite_raw
from _dataset import AS_OF, NOW, T, abc, hand_worked
from _postgres import PostgresServer, postgres_database, postgres_server  # noqa: F401
from _schema_v1 import write_v1, write_v2
from salespipeline import log
from salespipeline.deal import Deal
from salespipeline.errors import CorruptRecordError
from salespipeline.pipeline import Pipeline
from salespipeline.storage import SQLiteStore

WRITERS: dict[str, Callable[..., None]] = {"v1": write_v1, "v2": write_v2}


def with_updates(pipeline: Pipeline) -> list[Deal]:
    """The hand-worked deals, some changed by ``evolve`` (versions with no history entry)."""
    deals = hand_worked(pipeline)
    deals[0] = deals[0].evolve(next_action="send the invoice")
    deals[3] = deals[3].evolve(amount=750).evolve(fields={"owner": "ann"})
    return deals


def schema_version(backend: Backend) -> str:
    rows = backend.raw("SELECT value FROM sp_meta WHERE key = ?", ("schema_version",))
    return str(rows[0][0])


@pytest.mark.parametrize("old", sorted(WRITERS))
def test_an_old_database_upgrades_to_one_change_per_version(backend: Backend, old: str) -> None:
    pipeline = abc()
    deals = with_updates(pipeline)
    WRITERS[old](backend.raw, backend.name == "sqlite", pipeline, deals)
    with backend.open() as store:
        assert schema_version(backend) == "3"
        for deal in deals:
            assert store.get(deal.id) == deal
            changes = store.changes(deal.id)
            assert [c.version for c in changes] == list(range(1, deal.version + 1))
            assert log.replay(changes) == {deal.id: deal}
            entries = {e.version for e in deal.history}
            for change in changes:
                expected = "open" if change.version == 1 else "move"
                if change.version not in entries:
                    assert (change.kind, change.reason, dict(change.changed)) == (
                        "update",
                        log.PRE_LOG,
                        {},
                    )
                else:
                    assert change.kind == expected
        assert store.verify() == ()
        positions = [c.position for c in store.log()]
        assert positions == sorted(positions) and len(positions) == sum(d.version for d in deals)
        moved = pipeline.lose(store.get("d4"), "price", at=NOW)
        change = store.save(moved, actor="ann")
        assert change is not None and change.version == moved.version
        assert store.report(pipeline, as_of=AS_OF).deals == len(deals)
    tables = backend.raw(
        "SELECT COUNT(*) FROM sp_meta WHERE key = 'schema_version'", ()
    )  # the old history table is gone, the meta row is one
    assert tables == [(1,)]
    with backend.open() as store:  # opening again changes nothing
        assert store.get("d4") == store.get("d4")
        assert store.verify() == ()


def test_a_failed_upgrade_leaves_version_2_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite"
    backend = Backend("sqlite", lambda: SQLiteStore(path), sqlite_raw(path))
    pipeline = abc()
    write_v2(backend.raw, True, pipeline, with_updates(pipeline))
    backend.raw("UPDATE sp_stage_changes SET to_stage = '' WHERE deal_id = 'd2'", ())
    before = [backend.raw(f"SELECT * FROM {t} ORDER BY 1", ()) for t in ("sp_deals", "sp_meta")]
    with pytest.raises(CorruptRecordError) as error:
        backend.open()
    assert error.value.deal_id == "d2"
    after = [backend.raw(f"SELECT * FROM {t} ORDER BY 1", ()) for t in ("sp_deals", "sp_meta")]
    assert after == before
    assert backend.raw("SELECT name FROM sqlite_master WHERE name = 'sp_changes'", ()) == []


_OPEN = """
import sys
from salespipeline.storage import SQLiteStore
print("opening", flush=True)
SQLiteStore(sys.argv[1]).close()
print("done", flush=True)
"""


def many_deals(pipeline: Pipeline, count: int) -> Sequence[Deal]:
    deals = []
    for n in range(count):
        deal = pipeline.start(f"m{n:05d}", amount=n, at=T)
        deal = pipeline.advance(deal, at=T + timedelta(hours=1))
        deals.append(deal.evolve(fields={"rep": n % 7}))
    return deals


@pytest.mark.slow
def test_an_upgrade_killed_half_way_leaves_the_old_version_openable(tmp_path: Path) -> None:
    """SIGKILL the opening process at several points: the file is version 2 or 3, whole."""
    pipeline = abc()
    deals = many_deals(pipeline, 2_500)
    template = tmp_path / "template.sqlite"
    connection = sqlite3.connect(template, isolation_level=None)
    connection.execute("BEGIN")
    write_v2(lambda sql, params: connection.execute(sql, params).fetchall(), True, pipeline, deals)
    connection.execute("COMMIT")
    connection.close()
    outcomes = set()
    for attempt, delay in enumerate((0.05, 0.15, 0.3, 0.6, 1.2)):
        path = tmp_path / f"killed-{attempt}.sqlite"
        path.write_bytes(template.read_bytes())
        child = subprocess.Popen(
            [sys.executable, "-c", _OPEN, str(path)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        assert child.stdout is not None and child.stdout.readline() == "opening\n"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        raw = sqlite_raw(path)
        version = raw("SELECT value FROM sp_meta WHERE key = 'schema_version'", ())[0][0]
        outcomes.add(version)
        assert version in ("2", "3")
        if version == "2":  # nothing of the upgrade is left behind
            assert raw("SELECT name FROM sqlite_master WHERE name = 'sp_changes'", ()) == []
        with SQLiteStore(path) as store:
            assert store.get("m00042") == deals[42]
            assert len(store.changes("m00042")) == 3
    assert "2" in outcomes  # at least one kill landed inside the upgrade
