"""Concurrency: several processes (and threads) change the same deals; no update is lost.

Four "spawn" processes each make 200 random changes to the same ten deals through
their own ``Tracker``, on one SQLite file and on one PostgreSQL schema. Workers catch
only ``SalesPipelineError`` subclasses (counted by type); anything else fails the test.

What "no lost update" means here, exactly:

- every save that committed was acknowledged by the call that made it, so the
  versions returned by successful calls are exactly 2..V for a deal stored at
  version V (the stored version is 1 + the number of distinct committed writes);
- a successful call may also return a deal unchanged (the Tracker's retry found the
  deal already where the call wanted it): such a return equals, field for field, the
  deal another call committed at that version, so two calls never both "wrote" one
  version with different content;
- every returned deal's history is a prefix of the stored history (nothing a caller
  saw was later rewritten), history versions rise strictly, each row starts where
  the previous one ended, and for deals that only moved, the versions are exactly 1..n.
"""

from __future__ import annotations

import itertools
import multiprocessing
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

from _reliability_workers import (
    DEALS_MOVED,
    DEALS_UPDATED,
    PIPELINE_NAME,
    QUALIFIED,
    StoreSpec,
    WorkerResult,
    concurrent_worker,
    count_conflicts,
    open_store,
    open_tracker,
    raw_rows,
    record_figures,
    seed_deals,
    start_barrier,
    threaded_worker,
)
from salespipeline import Deal
from salespipeline.storage import MemoryStore

WORKERS = 4
OPERATIONS = 200
THREADS = 4
DEALS = DEALS_MOVED + DEALS_UPDATED
EXPECTED_REFUSALS = {"TransitionNotAllowedError", "ConcurrencyError"}
"""A concurrent change can make a move stale, or outlast the retries; nothing else."""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> StoreSpec:
    if request.param == "sqlite":
        return StoreSpec("sqlite", str(tmp_path / "concurrency.sqlite"))
    return StoreSpec("postgres", request.getfixturevalue("postgres_database"))


WAIT_SECONDS = 600
"""Longer than the slowest run seen on CI (about a minute), far shorter than CI's budget."""


def run_processes(spec: StoreSpec) -> list[WorkerResult]:
    """WORKERS spawned processes, released together, OPERATIONS changes each."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    with context.Pool(WORKERS, initializer=start_barrier, initargs=(barrier,)) as pool:
        jobs = [
            (spec, worker, OPERATIONS, DEALS, DEALS_UPDATED, 1000 + worker)
            for worker in range(WORKERS)
        ]
        # A bounded wait: a worker that dies before the barrier must fail the test, not
        # leave the others waiting at it for ever.
        return pool.starmap_async(concurrent_worker, jobs).get(timeout=WAIT_SECONDS)


def run_threads(store: Any) -> list[WorkerResult]:
    """THREADS threads sharing one store and one Tracker."""
    results: list[WorkerResult] = []
    lock = threading.Lock()
    failures: list[BaseException] = []

    def guarded(*args: Any) -> None:
        try:
            threaded_worker(*args)
        except BaseException as error:  # an untyped error: the test must see it
            failures.append(error)

    conflicts: Counter[str] = Counter()
    count_conflicts(store, conflicts)
    tracker = open_tracker(store)
    threads = [
        threading.Thread(
            target=guarded, args=(tracker, worker, OPERATIONS, DEALS, DEALS_UPDATED, results, lock)
        )
        for worker in range(THREADS)
    ]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, so their loads and saves interleave
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switch)
    assert failures == []
    return [attrs.evolve(results[0], conflicts=conflicts["seen"]), *results[1:]]


def check_returns(stored: Mapping[str, Deal], results: Sequence[WorkerResult]) -> dict[str, Any]:
    """Assert the module docstring's definition on the returned deals; return the figures."""
    returned: dict[str, dict[int, list[Deal]]] = defaultdict(lambda: defaultdict(list))
    for result in results:
        for outcome in result.outcomes:
            returned[outcome.deal_id][outcome.deal.version].append(outcome.deal)
    for deal_id, deal in stored.items():
        versions = returned[deal_id]
        assert sorted(versions) == list(range(2, deal.version + 1)), deal_id
        for same in versions.values():
            assert all(other == same[0] for other in same), f"{deal_id}: two writes, one version"
            seen = same[0].history
            assert deal.history[: len(seen)] == seen, f"{deal_id}: history was rewritten"
    successes = sum(sum(r.successes.values()) for r in results)
    writes = sum(deal.version - 1 for deal in stored.values())
    errors: Counter[str] = Counter()
    for result in results:
        errors.update(result.errors)
    assert successes + sum(errors.values()) == len(results) * OPERATIONS
    assert successes == sum(len(v) for by in returned.values() for v in by.values())
    assert writes >= len(results) * OPERATIONS // 2, "too few changes got through"
    assert set(errors) <= EXPECTED_REFUSALS, "a lock timeout or another failure surfaced"
    return {
        "workers": len(results),
        "operations": len(results) * OPERATIONS,
        "successes": successes,
        "writes": writes,
        "unchanged_returns": successes - writes,
        "conflicts_retried": sum(r.conflicts for r in results),
        "refusals": dict(errors),
    }


def check_no_lost_update(spec: StoreSpec, results: Sequence[WorkerResult]) -> dict[str, Any]:
    """``check_returns`` against the stored deals, then the raw history rows."""
    with open_store(spec) as store:
        stored = {deal_id: store.get(deal_id) for deal_id in DEALS}
    figures = check_returns(stored, results)
    for deal_id, deal in stored.items():
        check_raw_history(spec, deal_id, deal.version, moves_only=deal_id in DEALS_MOVED)
    return {"backend": spec.kind, **figures}


def check_raw_history(spec: StoreSpec, deal_id: str, version: int, *, moves_only: bool) -> None:
    """The log rows as stored: one per version 1..n, an unbroken chain of stage moves."""
    every = raw_rows(
        spec, "SELECT version FROM sp_changes WHERE deal_id = ? ORDER BY version", (deal_id,)
    )
    assert [row[0] for row in every] == list(range(1, version + 1))
    rows = raw_rows(
        spec,
        "SELECT version, from_stage, to_stage, kind FROM sp_changes "
        "WHERE deal_id = ? AND to_stage IS NOT NULL ORDER BY version",
        (deal_id,),
    )
    versions = [row[0] for row in rows]
    assert rows[0][1] is None
    for before, after in itertools.pairwise(rows):
        assert after[1] == before[2], f"{deal_id}: v{after[0]} starts off v{before[0]}'s end"
    if moves_only:
        assert versions == list(range(1, version + 1))


@pytest.mark.slow
def test_processes_lose_no_update(spec: StoreSpec, request: pytest.FixtureRequest) -> None:
    seed_deals(spec, DEALS)
    figures = check_no_lost_update(spec, run_processes(spec))
    record_figures(request.config, f"concurrency-processes-{spec.kind}", figures)


@pytest.mark.slow
def test_threads_sharing_one_tracker_lose_no_update(
    spec: StoreSpec, request: pytest.FixtureRequest
) -> None:
    seed_deals(spec, DEALS)
    with open_store(spec) as store:
        results = run_threads(store)
    figures = check_no_lost_update(spec, results)
    record_figures(request.config, f"concurrency-threads-{spec.kind}", figures)


@pytest.mark.slow
def test_threads_sharing_one_memory_store_lose_no_update(request: pytest.FixtureRequest) -> None:
    store = MemoryStore()
    tracker = open_tracker(store)
    for deal_id in DEALS:
        tracker.open(PIPELINE_NAME, deal_id, amount=1000, bant=QUALIFIED)
    results = run_threads(store)
    stored = {deal_id: store.get(deal_id) for deal_id in DEALS}
    figures = check_returns(stored, results)
    for deal_id in DEALS_MOVED:
        deal = stored[deal_id]
        assert [change.version for change in deal.history] == list(range(1, deal.version + 1))
    record_figures(request.config, "concurrency-threads-memory", {"backend": "memory", **figures})


class LastWriterWins(MemoryStore):
    """A broken store that saves without checking the version: it loses updates."""

    def save(self, deal: Deal) -> None:
        time.sleep(0.0002)  # widen the window between a Tracker's load and its save
        with self._lock:
            self._deals[deal.id] = deal


def test_the_check_catches_a_store_that_loses_updates() -> None:
    store = LastWriterWins()
    tracker = open_tracker(store)
    for deal_id in DEALS:
        tracker.open(PIPELINE_NAME, deal_id, amount=1000, bant=QUALIFIED)
    results = run_threads(store)
    with pytest.raises(AssertionError):
        check_returns({deal_id: store.get(deal_id) for deal_id in DEALS}, results)
