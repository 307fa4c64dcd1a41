"""Crash safety: a writer killed with SIGKILL at random moments leaves no torn write.

A "spawn" child changes five deals in a loop through a ``Tracker`` and appends
"id version" to a journal after each save returns. The parent kills it with SIGKILL
at a random moment: a third of the time soon after starting it (before, while or
after it opens the store and creates the schema), a third at any point of its loop,
a third aimed inside a store write (at a random point of the transaction). Then it
checks the database, and starts the next child on the same data.

After every kill, exactly:

- the store opens and every deal decodes (``get`` and ``find``);
- no acknowledged save is lost: each deal's stored version is at least the last
  version journaled for it, and at most one deal (the one being written when the
  child died) is one version ahead, its save committed but not yet journaled;
- no torn write: a save writes the deal row and its new history row together or not
  at all. The history rows of a deal rise strictly from 1, form an unbroken chain,
  and none is newer than the deal row (a history row without its deal row update).
  With H the last history version and V the row version: V == H when the last save
  was a move; V > H only when the saves after the last move were updates, and then
  the row carries the stamp of the last one (``fields["v"] == V``, ``fields["h"] ==
  H``), which a move's row update (moves never touch ``fields``) cannot forge.

A second child opens stores on fresh databases over and over and is killed at random
moments; every database it started, including those whose schema creation was cut
short, must open afterwards and take a deal.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _reliability_workers import (
    PIPELINE_NAME,
    QUALIFIED,
    StoreSpec,
    crash_writer,
    open_store,
    open_tracker,
    raw_rows,
    raw_write,
    read_journal,
    record_figures,
    schema_creator,
)

KILLS = 24
"""Per backend: a third early, a third at random moments, a third aimed at a write."""
SCHEMA_KILLS = 10
DEALS = tuple(f"crash-{n}" for n in range(5))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> StoreSpec:
    if request.param == "sqlite":
        return StoreSpec("sqlite", str(tmp_path / "crash.sqlite"))
    return StoreSpec("postgres", request.getfixturevalue("postgres_database"))


def run_and_kill(
    spec: StoreSpec, journal: Path, round: int, rng: random.Random
) -> tuple[bool, bool]:
    """Start a writer, SIGKILL it at a random moment: (had it saved?, was it saving?)."""
    context = multiprocessing.get_context("spawn")
    saved, writing = context.Value("q", 0, lock=False), context.Value("b", 0, lock=False)
    child = context.Process(
        target=crash_writer, args=(spec, str(journal), DEALS, round, saved, writing)
    )
    child.start()
    if round % 3 == 0:  # early: before, while or just after it opens the store
        time.sleep(rng.uniform(0.0, 0.4))
    else:
        wait_for(lambda: saved.value > 0)
        if round % 3 == 1:  # at any moment of its loop
            time.sleep(rng.uniform(0.0, 0.05))
        else:  # aimed: during a store write, at a random point of it
            wait_for(lambda: bool(writing.value))
            time.sleep(rng.uniform(0.0, 0.0003))
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    child.join(timeout=60)
    assert child.exitcode == -signal.SIGKILL, f"the writer died on its own ({child.exitcode})"
    return saved.value > 0, bool(writing.value)


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the writer made no progress"
        time.sleep(0)


def check_after_kill(spec: StoreSpec, journal: Path, base: dict[str, int]) -> int:
    """Assert the module docstring's guarantees; return how many deals were one ahead."""
    journaled = read_journal(journal)
    acknowledged = {d: max(base.get(d, 0), journaled.get(d, 0)) for d in {*base, *journaled}}
    with open_store(spec) as store:
        stored = {deal.id: deal for deal in store.find()}
        for deal_id in stored:
            assert store.get(deal_id) == stored[deal_id]
    assert set(acknowledged) <= set(stored), "an acknowledged deal is missing"
    ahead = [d for d in stored if stored[d].version == acknowledged.get(d, 0) + 1]
    for deal_id, deal in stored.items():
        assert acknowledged.get(deal_id, 0) <= deal.version <= acknowledged.get(deal_id, 0) + 1
        check_rows(spec, deal_id)
    assert len(ahead) <= 1, f"more than one unacknowledged save survived: {ahead}"
    base.update({deal_id: deal.version for deal_id, deal in stored.items()})
    return len(ahead)


def check_rows(spec: StoreSpec, deal_id: str) -> None:
    """The raw rows of one deal: one log row per version of its row, no more, no fewer."""
    (version, fields), *_ = raw_rows(
        spec, "SELECT version, fields FROM sp_deals WHERE id = ?", (deal_id,)
    )
    changes = raw_rows(
        spec,
        "SELECT version, from_stage, to_stage FROM sp_changes WHERE deal_id = ? ORDER BY version",
        (deal_id,),
    )
    versions = [change[0] for change in changes]
    assert versions == list(range(1, version + 1)), f"{deal_id}: log {versions}, row v{version}"
    moves = [change for change in changes if change[2] is not None]
    for before, after in itertools.pairwise(moves):
        assert after[1] == before[2], f"{deal_id}: broken chain at v{after[0]}"
    stamp = json.loads(fields) if isinstance(fields, str) else fields
    last_move = moves[-1][0]
    if version > last_move:
        assert (stamp.get("v"), stamp.get("h")) == (version, last_move), (
            f"{deal_id}: row v{version} after move v{last_move} is not a complete update"
        )


@pytest.mark.slow
def test_a_writer_killed_at_random_moments_leaves_no_torn_write(
    spec: StoreSpec, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    rng = random.Random(8)
    journal = tmp_path / "journal.txt"
    base: dict[str, int] = {}
    busy_kills = mid_write = ahead = 0
    for round in range(KILLS):
        had_saved, was_saving = run_and_kill(spec, journal, round, rng)
        busy_kills += had_saved
        mid_write += was_saving
        ahead += check_after_kill(spec, journal, base)
    figures: dict[str, Any] = {
        "backend": spec.kind,
        "kills": KILLS,
        "kills_after_a_save": busy_kills,
        "kills_inside_a_store_write": mid_write,
        "acknowledged_saves": sum(1 for _ in journal.read_text().splitlines()),
        "unacknowledged_saves_found_committed": ahead,
        "final_versions": dict(sorted(base.items())),
    }
    assert busy_kills >= KILLS // 2
    assert mid_write >= KILLS // 6, "too few kills landed inside a store write"
    record_figures(request.config, f"crash-{spec.kind}", figures)


@pytest.mark.parametrize(
    "tear",
    [
        "DELETE FROM sp_changes WHERE deal_id = 'torn' AND version = 3",
        "INSERT INTO sp_changes (deal_id, version, at_us, kind, from_stage, to_stage, changed) "
        "VALUES ('torn', 4, 0, 'move', 'initial_contact', 'proposal', '{}')",
        "UPDATE sp_deals SET version = 4 WHERE id = 'torn'",
    ],
    ids=["row without its history", "history without its row", "row ahead, no stamp"],
)
def test_the_check_sees_torn_writes(tmp_path: Path, tear: str) -> None:
    spec = StoreSpec("sqlite", str(tmp_path / "torn.sqlite"))
    with open_store(spec) as store:
        tracker = open_tracker(store)
        tracker.open(PIPELINE_NAME, "torn", bant=QUALIFIED)
        tracker.advance("torn")
        tracker.advance("torn")
    check_rows(spec, "torn")
    raw_write(spec, tear)
    with pytest.raises(AssertionError):
        check_rows(spec, "torn")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> StoreSpec:
    """Where fresh databases are made: a directory, or a PostgreSQL server."""
    if request.param == "sqlite":
        return StoreSpec("sqlite", str(tmp_path))
    return StoreSpec("postgres", request.getfixturevalue("postgres_server").conninfo)


def kill_schema_creator(server: StoreSpec, journal: Path, round: int, rng: random.Random) -> int:
    """Start a process opening fresh databases, SIGKILL it; how many opens completed."""
    context = multiprocessing.get_context("spawn")
    opened = context.Value("q", 0, lock=False)
    child = context.Process(target=schema_creator, args=(server, str(journal), round, opened))
    child.start()
    wait_for(lambda: opened.value > 0)
    time.sleep(rng.uniform(0.0, 0.03))
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    child.join(timeout=60)
    assert child.exitcode == -signal.SIGKILL, f"the opener died on its own ({child.exitcode})"
    return int(opened.value)


@pytest.mark.slow
def test_a_process_killed_while_creating_the_schema_leaves_a_database_that_opens(
    server: StoreSpec, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    rng = random.Random(9)
    journal = tmp_path / "targets.txt"
    completed = sum(kill_schema_creator(server, journal, n, rng) for n in range(SCHEMA_KILLS))
    targets = journal.read_text().splitlines()
    for target in targets:
        spec = StoreSpec(server.kind, target)
        with open_store(spec) as store:
            open_tracker(store).open(PIPELINE_NAME, "after-the-crash")
        assert raw_rows(spec, "SELECT value FROM sp_meta") == [("3",)]
    assert len(targets) > completed  # some opens were cut short by the kill
    figures = {"kills": SCHEMA_KILLS, "databases": len(targets), "opens_completed": completed}
    record_figures(request.config, f"crash-schema-{server.kind}", figures)
