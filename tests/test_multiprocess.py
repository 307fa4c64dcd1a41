"""Four processes, each with its own Tracker, move one deal back and forth on one database.

Afterwards the stored version is 1 + the moves the workers report having written,
the history versions are exactly 1..n, and every written move appears once.
"""

from __future__ import annotations

import multiprocessing
import queue
from pathlib import Path
from typing import Any

import pytest

from _workers import DEAL_ID, mover, open_store, ping_pong
from salespipeline import Tracker

WORKERS = 4
ROUNDS = 25


def _race(kind: str, target: str) -> list[str]:
    """Run the workers against ``target``; all the moves they wrote."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(WORKERS), context.Queue()
    processes = [
        context.Process(target=mover, args=(kind, target, n, ROUNDS, barrier, results))
        for n in range(WORKERS)
    ]
    for process in processes:
        process.start()
    try:
        reports = [_report(results, processes) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
    return [tag for _, written in reports for tag in written]


def _report(results: Any, processes: list[Any]) -> tuple[int, list[str]]:
    """The next worker report; fails at once if a worker died without reporting."""
    for _ in range(120):
        try:
            report: tuple[int, list[str]] = results.get(timeout=1)
            return report
        except queue.Empty:
            if any(p.exitcode not in (None, 0) for p in processes):
                pytest.fail("a worker process failed (see its output above)")
    pytest.fail("a worker process did not report back within two minutes")


def _check(kind: str, target: str) -> None:
    with open_store(kind, target) as store:
        Tracker(store, [ping_pong()]).open("ping_pong", DEAL_ID)
    written = _race(kind, target)
    with open_store(kind, target) as store:
        deal = store.get(DEAL_ID)
    assert written, "no worker managed a single move"
    assert deal.version == 1 + len(written)
    assert [change.version for change in deal.history] == list(range(1, deal.version + 1))
    reasons = [change.reason for change in deal.history[1:]]
    assert sorted(reasons) == sorted(written)
    assert len(set(reasons)) == len(reasons)


@pytest.mark.slow
def test_processes_sharing_a_sqlite_file_lose_no_move(tmp_path: Path) -> None:
    _check("sqlite", str(tmp_path / "shared.sqlite"))


@pytest.mark.slow
@pytest.mark.postgres
def test_processes_sharing_postgres_lose_no_move(postgres_database: str) -> None:
    _check("postgres", postgres_database)
