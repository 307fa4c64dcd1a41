"""Reliability of the change log: readers never skip, consumers survive SIGKILL.

Readers. A reader paging ``store.log(after=<last position seen>)`` must never skip a
committed change, although transactions may commit in another order than the one
their positions were handed out in. On both backends:

- forced interleaving: writer A stops inside its transaction right after inserting
  its change row (a hook in the store's own write path); writer B, another store,
  writes meanwhile. B must wait for A (PostgreSQL: on the advisory log lock, seen in
  ``pg_stat_activity``, before it takes a position: the identity sequence has not
  moved; SQLite: on the write lock), a reader sees neither until A commits, and then
  both, A's position first;
- stress: three writers save and add concurrently with random pauses before and
  after each change row insert (inside the transaction), while a reader pages with
  random page sizes. The reader asserts each change it gets is above every position
  it has seen, and after each page that no committed change below its position is
  missing from what it saw (a skip, seen the moment it happens). At the end it has
  seen exactly the committed positions (a raw ``SELECT position FROM sp_changes``).
- negative control (PostgreSQL): a store whose writes skip the advisory lock (a plain
  update-then-insert transaction) lets the same forced interleaving make a reader
  skip A's change, for certain: the check above can fail.

Consumers. A consumer in a child process drains a log of 2,000 changes (pages of
50), its handler appending each position to a file (flushed, fsynced; on tmpfs where
there is one, so the test stays short). It is killed with SIGKILL at seeded random
points and restarted, 20 times, then left to drain: early (while it starts), at a
random moment of its work, or by itself inside its handler of a chosen change.
Every position is handled; each run handles positions in strictly increasing order;
each run starts where a page of the run before started (never past an unhandled
change), and exactly at the first change of the unfinished page when the consumer
died in its handler; each restart delivers again at most one page. Then writer
processes are killed mid-save (16 kills) while a consumer in the test's process
drains: every committed change is handled exactly once, in order, every
acknowledged write is among them, and ``store.verify() == ()``.

On PostgreSQL the hooked store runs the store's own one-statement save (row update,
advisory lock, change insert) inside a transaction the hook can hold open, since in
autocommit mode nothing can come between that statement and its commit.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import random
import shutil
import signal
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from _log_workers import (
    T0,
    Hooks,
    RandomPauses,
    Stop,
    UnlockedPostgresStore,
    bump,
    consume,
    open_hooked,
    open_store,
    pipeline,
    seed_log,
    write,
)
from salespipeline import Bant
from salespipeline.log import Change
from salespipeline.storage import DealStore

QUALIFIED = Bant(budget=True, authority=True, need=True, timeline=True)
WAIT = 20.0
"""Seconds any single wait may take before the test fails instead of hanging."""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(kind, target): a SQLite file, or a fresh PostgreSQL schema's conninfo."""
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "log.sqlite")
    return "postgres", request.getfixturevalue("postgres_database")


# -- raw access, past the store -----------------------------------------------------


class Raw:
    """One direct connection (its own thread's) for reading the tables past the store."""

    def __init__(self, kind: str, target: str) -> None:
        self.kind = kind
        if kind == "sqlite":
            self._connection: Any = sqlite3.connect(target, isolation_level=None)
        else:
            import psycopg

            self._connection = psycopg.connect(target, autocommit=True)

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.kind != "sqlite":
            sql = sql.replace("?", "%s")
        return [tuple(row) for row in self._connection.execute(sql, params).fetchall()]

    def positions(self, at_most: int | None = None) -> list[int]:
        """Every committed change's position (up to ``at_most``), ascending."""
        if at_most is None:
            rows = self.rows("SELECT position FROM sp_changes ORDER BY position")
        else:
            rows = self.rows(
                "SELECT position FROM sp_changes WHERE position <= ? ORDER BY position",
                (at_most,),
            )
        return [int(row[0]) for row in rows]

    def advisory_waiters(self) -> int:
        """PostgreSQL sessions waiting for an advisory lock right now."""
        ((count,),) = self.rows(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'"
        )
        return int(count)

    def last_position_handed_out(self) -> int | None:
        """PostgreSQL: the identity sequence's last value (taken even if not committed)."""
        if self.kind == "sqlite":
            return None  # SQLite picks max(position) + 1 inside the write lock
        ((value,),) = self.rows(
            "SELECT pg_sequence_last_value(pg_get_serial_sequence('sp_changes', 'position'))"
        )
        return None if value is None else int(value)

    def close(self) -> None:
        self._connection.close()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


# -- forced interleaving ------------------------------------------------------------


def one_write(store: DealStore, operation: str, deal_id: str) -> Change:
    """``operation`` on ``deal_id``: "save" an update of it, or "add" it as a new deal."""
    if operation == "add":
        change = store.add(pipeline().start(deal_id, amount=5, at=T0))
    else:
        change = bump(store, deal_id, random.Random(deal_id))
    assert change is not None and change.position is not None
    return change


class Writer(threading.Thread):
    """One store write in a thread; ``change`` (or ``error``) when it is done."""

    def __init__(self, store: DealStore, operation: str, deal_id: str) -> None:
        super().__init__(daemon=True)
        self.store, self.operation, self.deal_id = store, operation, deal_id
        self.change: Change | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.change = one_write(self.store, self.operation, self.deal_id)
        except BaseException as error:
            self.error = error

    def result(self) -> Change:
        self.join(WAIT)
        assert not self.is_alive(), f"the {self.operation} of {self.deal_id} never finished"
        if self.error is not None:
            raise self.error
        assert self.change is not None
        return self.change


def target_of(operation: str, name: str) -> str:
    """The deal a write works on: an existing one to save, a new one to add."""
    return name if operation == "save" else f"{name}-new"


@pytest.mark.parametrize("second", ["save", "add"])
@pytest.mark.parametrize("first", ["save", "add"])
def test_a_write_that_logs_later_waits_for_one_still_open(
    where: tuple[str, str], first: str, second: str
) -> None:
    kind, target = where
    stop = Stop()
    with ExitStack() as stack:
        setup = stack.enter_context(open_store(kind, target))
        for name in ("a", "b"):
            setup.add(pipeline().start(name, amount=1, at=T0))
        a_store = stack.enter_context(open_hooked(kind, target, stop))
        b_store = stack.enter_context(open_store(kind, target))
        reader = stack.enter_context(open_store(kind, target))
        raw = Raw(kind, target)
        stack.callback(raw.close)
        for store, name in ((a_store, "a"), (b_store, "b")):
            store.get(name)
        last = max(raw.positions())

        a = Writer(a_store, first, target_of(first, "a"))
        a.start()
        try:
            assert stop.inserted.wait(WAIT), "writer A never inserted its change"
            handed_out = raw.last_position_handed_out()  # A's, not committed yet
            b = Writer(b_store, second, target_of(second, "b"))
            b.start()
            if kind == "postgres":
                wait_for(lambda: raw.advisory_waiters() >= 1, "B to wait for the log lock")
            else:
                b.join(0.3)
            assert b.is_alive(), "writer B finished while A's transaction was still open"
            assert reader.log(after=last) == (), "a change of an open transaction was read"
            # B waits before it takes a position (PostgreSQL: the identity sequence has
            # not moved), so whichever waiter goes next, positions follow commits.
            assert raw.last_position_handed_out() == handed_out, "B took a position unlocked"
        finally:
            stop.go.set()
        change_a, change_b = a.result(), b.result()
        assert change_a.position is not None and change_b.position is not None
        if kind == "postgres":
            assert handed_out == change_a.position
        assert change_a.position < change_b.position, "B committed later but logged earlier"
        page = reader.log(after=last)
        assert [c.position for c in page] == [change_a.position, change_b.position]
        assert [c.deal_id for c in page] == [change_a.deal_id, change_b.deal_id]
        assert setup.verify() == ()


@pytest.mark.postgres
@pytest.mark.parametrize("operation", ["save", "add"])
def test_negative_control_without_the_log_lock_a_reader_skips_a_change(
    postgres_database: str, operation: str
) -> None:
    """The check can fail: remove the lock and a forced interleaving makes a reader skip."""
    target = postgres_database
    stop = Stop()
    with ExitStack() as stack:
        setup = stack.enter_context(open_store("postgres", target))
        for name in ("a", "b"):
            setup.add(pipeline().start(name, amount=1, at=T0))
        a_store = stack.enter_context(UnlockedPostgresStore(target, stop))
        b_store = stack.enter_context(UnlockedPostgresStore(target, Hooks()))
        reader = stack.enter_context(open_store("postgres", target))
        raw = Raw("postgres", target)
        stack.callback(raw.close)
        start = last = max(raw.positions())
        seen: list[int] = []

        def read() -> None:
            nonlocal last
            for change in reader.log(after=last):
                assert change.position is not None and change.position > last
                last = change.position
                seen.append(change.position)

        a = Writer(a_store, operation, target_of(operation, "a"))
        a.start()
        try:
            assert stop.inserted.wait(WAIT), "writer A never inserted its change"
            b = Writer(b_store, operation, target_of(operation, "b"))
            b.start()
            change_b = b.result()  # nothing makes B wait for A
            read()  # sees B's change; A's is not committed yet
        finally:
            stop.go.set()
        change_a = a.result()
        read()  # A's change is committed now, but below the reader's position
        assert change_a.position is not None and change_b.position is not None
        assert change_a.position < change_b.position
        assert seen == [change_b.position]
        passed = {p for p in raw.positions() if start < p <= last}
        assert passed - set(seen) == {change_a.position}, "the control made no reader skip"


class PagingReader(threading.Thread):
    """Pages through the log while writers write; checks each page as it comes.

    ``overtaken`` collects every committed position below the reader's position that
    it did not see (a skip), checked after each page on a raw connection.
    """

    def __init__(self, kind: str, target: str, done: threading.Event, seed: int) -> None:
        super().__init__(daemon=True)
        self.kind, self.target, self.done = kind, target, done
        self.rng = random.Random(seed)
        self.seen: list[int] = []
        self.overtaken: set[int] = set()
        self.out_of_order: list[tuple[int, int]] = []
        self.pages = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._read()
        except BaseException as error:
            self.error = error

    def _read(self) -> None:
        raw = Raw(self.kind, self.target)
        seen: set[int] = set()
        last = 0
        with open_store(self.kind, self.target) as store:
            while True:
                finished = self.done.is_set()
                page = store.log(after=last, limit=self.rng.choice((1, 2, 5, 20, 100)))
                self.pages += 1
                for change in page:
                    assert change.position is not None
                    if change.position <= last:
                        self.out_of_order.append((last, change.position))
                    last = max(last, change.position)
                    self.seen.append(change.position)
                    seen.add(change.position)
                self.overtaken.update(set(raw.positions(at_most=last)) - seen)
                if finished and not page:
                    break
        raw.close()


def writer_loop(store: DealStore, shared: list[str], seed: int, operations: int) -> list[int]:
    """``operations`` writes: a quarter new deals, the rest updates of shared deals."""
    rng = random.Random(seed)
    positions: list[int] = []
    for n in range(operations):
        if rng.random() < 0.25:
            change: Change | None = store.add(pipeline().start(f"s{seed}-{n}", at=T0))
        else:
            change = bump(store, rng.choice(shared), rng)
        if change is not None:
            assert change.position is not None
            positions.append(change.position)
    return positions


WRITERS = 3
OPERATIONS = 120


def test_a_paging_reader_sees_every_committed_change_once_in_order(
    where: tuple[str, str],
) -> None:
    kind, target = where
    shared = [f"shared-{n}" for n in range(6)]
    with open_store(kind, target) as setup:
        for deal_id in shared:
            setup.add(pipeline().start(deal_id, at=T0))
    pauses = RandomPauses(seed=11)
    done = threading.Event()
    reader = PagingReader(kind, target, done, seed=12)
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            with open_hooked(kind, target, pauses) as store:
                results[worker] = writer_loop(store, shared, 100 + worker, OPERATIONS)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in range(WRITERS)]
    reader.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    done.set()
    reader.join(120)
    assert not reader.is_alive() and not any(t.is_alive() for t in threads)
    if errors:
        raise errors[0]
    if reader.error is not None:
        raise reader.error

    raw = Raw(kind, target)
    committed = raw.positions()
    raw.close()
    acknowledged = [p for positions in results.values() for p in positions]
    assert reader.out_of_order == [], "the log returned a change below one already seen"
    assert reader.overtaken == set(), f"the reader skipped committed changes {reader.overtaken}"
    assert reader.seen == committed, "the reader did not see exactly the committed changes"
    assert len(committed) == len(shared) + len(acknowledged)
    assert set(acknowledged) <= set(committed)
    with open_store(kind, target) as store:
        assert store.verify() == ()
    if kind == "postgres":
        assert pauses.overlaps >= 20, "the writers' transactions hardly ever overlapped"
    else:  # SQLite's writers queue for the write lock
        assert pauses.contended >= 20, "the writers hardly ever wrote at the same time"
    print(
        f"\n[log] {kind}: {len(committed)} changes, {reader.pages} pages read, "
        f"{pauses.overlaps} inserts inside overlapping transactions, {pauses.contended} "
        f"writes begun while another was under way, {pauses.waits} waits for a lock"
    )


# -- durable consumers and SIGKILL --------------------------------------------------


def context() -> Any:
    """Children forked from a clean server process that already imported the workers.

    (A child then starts in milliseconds, not the half second a "spawn" child takes
    to import everything, so the kills can be many and the test still short.) Its
    children are the server's, reaped by it: ``sigkill`` allows for that.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


PRELOAD = ["salespipeline.storage", "salespipeline.storage.sql._store", "psycopg", "psycopg_pool"]
"""What the fork server imports once (Python 3.11's server ignores the tests' sys.path,
so ``_log_workers`` itself is imported by each child: it is small)."""


def sigkill(child: Any) -> None:
    """SIGKILL a child unless it has ended (the fork server reaps its children at once)."""
    assert child.pid is not None
    if child.is_alive():
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """A directory for the handler's file: in memory where there is /dev/shm.

    The handler fsyncs each line, which costs milliseconds on a disk and next to
    nothing on tmpfs; SIGKILL leaves what was written either way.
    """
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    directory = Path(tempfile.mkdtemp(prefix="sp-log-", dir=shm))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def parse_runs(text: str) -> tuple[dict[int, list[int]], int]:
    """The positions each run (by number) handled, and how many runs said "drained"."""
    runs: dict[int, list[int]] = {}
    current: list[int] | None = None
    drained = 0
    for line in text.splitlines():
        if line.startswith("run "):
            current = runs.setdefault(int(line[4:]), [])
            assert not current, f"run {line[4:]} started twice"
        elif line == "drained":
            drained += 1
        else:
            assert line.isdigit(), f"a malformed line {line!r} in the handler's file"
            assert current is not None, "a position before the first run marker"
            current.append(int(line))
    return runs, drained


DEALS = 200
VERSIONS = 10
PAGE = 50
MAX_KILLS = 20


def consume_once(
    ctx: Any, args: tuple[Any, ...], rng: random.Random, kill: bool
) -> tuple[int, int]:
    """One consumer child (``consume(*args, handled, die_after)``), killed at a random point.

    A third of the kills the child makes itself, inside the handler of its change
    number ``die_after`` (mid-page for certain); the others the test makes: early
    (while it starts, opens the store, polls first) or at a random moment of its
    work (handling, reading a page, recording progress). Returns (exit code,
    die_after or 0).
    """
    handled = ctx.Value("q", 0, lock=False)
    roll, goal = rng.random(), rng.randint(1, 150)
    die_after = goal if kill and roll < 0.35 else 0
    child = ctx.Process(target=consume, args=(*args, handled, die_after))
    child.start()
    if kill and not die_after:
        if roll < 0.5:
            time.sleep(rng.uniform(0.0, 0.02))
        else:
            wait_for(lambda: handled.value >= goal or not child.is_alive(), "progress")
            time.sleep(rng.uniform(0.0, 0.003))
        sigkill(child)
    child.join(120)
    assert child.exitcode in (0, -signal.SIGKILL), f"the consumer failed ({child.exitcode})"
    return int(child.exitcode), die_after


def check_runs(
    runs: dict[int, list[int]],
    drained: int,
    everything: list[int],
    self_killed: dict[int, int],
    kills: int,
) -> dict[int, int]:
    """Assert what a consumer killed ``kills`` times must have done; the changes each
    run handled again."""
    assert drained == 1, "the last run should say it drained the log, and only it"
    handled_all = [p for positions in runs.values() for p in positions]
    assert set(handled_all) == set(everything), "a change was never handled"
    successor = dict(itertools.pairwise(everything))
    highest = 0
    redelivered: dict[int, int] = {}  # run -> how many changes it handled again
    for n, positions in sorted(runs.items()):
        assert positions == sorted(set(positions)), f"run {n} did not handle in order"
        if not positions:
            continue
        if highest:
            assert positions[0] <= successor.get(highest, highest + 1), (
                f"run {n} started at {positions[0]}, skipping past {highest}"
            )
            again = sum(1 for p in positions if p <= highest)
            assert again <= PAGE, f"run {n} handled {again} changes again, more than a page"
            redelivered[n] = again
        highest = max(highest, positions[-1])
    # Progress is recorded per page: the run after a killed one starts at a page
    # boundary of it (the page it was in, or the next one when the kill came after
    # the page was recorded); after a death inside the handler, exactly at the
    # first change of that unfinished page.
    busy = [n for n in sorted(runs) if runs[n]]
    for n, m in itertools.pairwise(busy):
        handled = runs[n]
        boundaries = [*handled[::PAGE], successor.get(handled[-1])]
        assert runs[m][0] in boundaries, (
            f"run {m} started at {runs[m][0]}, not where a page of run {n} started"
        )
        if n in self_killed:
            number = self_killed[n]
            assert len(handled) == number, f"run {n} died after {len(handled)}, not {number}"
            page_start = handled[PAGE * ((number - 1) // PAGE)]
            assert runs[m][0] == page_start, (
                f"run {m} started at {runs[m][0]}, not at {page_start}, the first change "
                f"of the page run {n} died in"
            )
    duplicates = len(handled_all) - len(set(handled_all))
    assert duplicates == sum(redelivered.values()) <= PAGE * kills
    return redelivered


def _page_runs(everything: list[int], cuts: list[tuple[int, int]]) -> dict[int, list[int]]:
    """Runs of a consumer that handles pages of PAGE and dies after ``handled`` changes,
    having recorded ``pages`` pages: each (handled, pages) in ``cuts``, then drains."""
    runs: dict[int, list[int]] = {}
    at = 0
    for n, (handled, pages) in enumerate(cuts):
        runs[n] = everything[at : at + handled]
        at += PAGE * pages
    runs[len(cuts)] = everything[at:]
    return runs


def test_the_run_checks_see_a_consumer_that_loses_its_place() -> None:
    everything = list(range(1, 301))
    # run 0 dies in its handler of change 70 (page 1 recorded), run 1 is killed after
    # 30 (nothing recorded), run 2 after 120 (two pages recorded), run 3 drains.
    runs = _page_runs(everything, [(70, 1), (30, 0), (120, 2)])
    assert check_runs(runs, 1, everything, {0: 70}, kills=3) == {1: 20, 2: 30, 3: 20}
    broken = {
        "never handled": {**runs, 3: everything[171:]},
        "did not handle in order": {**runs, 1: runs[1][::-1]},
        "not where a page of run 0 started": {**runs, 1: everything[52:82]},
        "the first change of the page run 0 died in": {**runs, 1: everything[70:100]},
        "more than a page": {**runs, 2: everything[10:170]},
    }
    for message, bad in broken.items():
        with pytest.raises(AssertionError, match=message):
            check_runs(bad, 1, everything, {0: 70}, kills=3)
    with pytest.raises(AssertionError, match="never handled"):  # recorded before handling
        check_runs(_page_runs(everything, [(70, 2)]), 1, everything, {0: 70}, kills=1)
    with pytest.raises(AssertionError, match="drained"):
        check_runs(runs, 0, everything, {0: 70}, kills=3)


@pytest.mark.slow
def test_a_consumer_killed_with_sigkill_handles_every_change_in_order(
    where: tuple[str, str], scratch: Path
) -> None:
    kind, target = where
    with open_store(kind, target, fast=True) as store:
        seed_log(store, DEALS, VERSIONS)
    raw = Raw(kind, target)
    everything = raw.positions()
    raw.close()
    assert len(everything) == DEALS * VERSIONS
    out = scratch / "handled.txt"
    rng = random.Random(20260105)
    ctx = context()
    self_killed: dict[int, int] = {}  # run -> the change number it died handling
    kills = 0
    for run in itertools.count():  # after MAX_KILLS kills, the next run drains the log
        args = (kind, target, str(out), "k", PAGE, run)
        exitcode, die_after = consume_once(ctx, args, rng, kill=kills < MAX_KILLS)
        if exitcode == 0:
            break
        kills += 1
        if die_after:
            self_killed[run] = die_after

    runs, drained = parse_runs(out.read_text())
    redelivered = check_runs(runs, drained, everything, self_killed, kills)
    duplicates = sum(redelivered.values())
    assert kills >= 8, "too few kills"
    assert len(self_killed) >= 2, "too few kills inside a handler"
    with open_store(kind, target) as store:
        assert store.consumer("k").position == everything[-1]
    print(
        f"\n[log] {kind}: consumer killed {kills} times ({len(self_killed)} inside its "
        f"handler) over {len(everything)} changes, {duplicates} handled twice "
        f"(at most {PAGE} per kill), again per run {redelivered}"
    )


ROUNDS = 8
KILLED_WRITERS = 2


class Drainer(threading.Thread):
    """A consumer polling in the test's process until told to stop, then to the end."""

    def __init__(self, kind: str, target: str, seed: int) -> None:
        super().__init__(daemon=True)
        self.kind, self.target = kind, target
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.handled: list[tuple[int, str, int]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with open_store(self.kind, self.target) as store:
                consumer = store.consumer("drainer")

                def handle(change: Change) -> None:
                    assert change.position is not None
                    self.handled.append((change.position, change.deal_id, change.version))

                while True:
                    stopping = self.stop.is_set()
                    count = consumer.poll(handle, limit=self.rng.randint(1, 50))
                    if count == 0:
                        if stopping:
                            return
                        time.sleep(0.002)
        except BaseException as error:
            self.error = error


def kill_writer(child: Any, saved: Any, writing: Any, rng: random.Random) -> bool:
    """SIGKILL a writer child once it has saved: was it inside a store write then?"""
    wait_for(lambda: saved.value > 0 or not child.is_alive(), "a writer to save")
    assert child.is_alive(), f"a writer died on its own ({child.exitcode})"
    time.sleep(rng.uniform(0.0, 0.12))  # let it write a while
    if rng.random() < 0.6:  # aimed inside a store write, at a random point of it
        wait_for(lambda: bool(writing.value), "a writer to write")
        time.sleep(rng.uniform(0.0, 0.0005))
    was_writing = bool(writing.value)
    sigkill(child)
    child.join(60)
    assert child.exitcode == -signal.SIGKILL, f"a writer died on its own ({child.exitcode})"
    return was_writing


@pytest.mark.slow
def test_writers_killed_mid_save_lose_no_committed_change_for_a_consumer(
    where: tuple[str, str], tmp_path: Path
) -> None:
    kind, target = where
    shared = [f"shared-{n}" for n in range(4)]
    with open_store(kind, target) as store:
        for deal_id in shared:
            store.add(pipeline().start(deal_id, amount=10, bant=QUALIFIED, at=T0))
    journal = tmp_path / "journal.txt"
    rng = random.Random(7)
    ctx = context()
    drainer = Drainer(kind, target, seed=8)
    drainer.start()
    kills = in_write = 0
    try:
        for run in range(ROUNDS):
            children = []
            for worker in range(KILLED_WRITERS):
                saved = ctx.Value("q", 0, lock=False)
                writing = ctx.Value("b", 0, lock=False)
                child = ctx.Process(
                    target=write,
                    args=(kind, target, str(journal), shared, worker, run, saved, writing),
                )
                child.start()
                children.append((child, saved, writing))
            for child, saved, writing in children:
                in_write += kill_writer(child, saved, writing, rng)
                kills += 1
        handled_meanwhile = len(drainer.handled)
    finally:
        drainer.stop.set()
        drainer.join(120)
    assert not drainer.is_alive(), "the consumer never drained the log"
    if drainer.error is not None:
        raise drainer.error

    raw = Raw(kind, target)
    committed = raw.positions()
    raw.close()
    positions = [p for p, _, _ in drainer.handled]
    assert positions == committed, (
        "the consumer did not handle each committed change once, in order"
    )
    versions = {(deal_id, version) for _, deal_id, version in drainer.handled}
    assert len(versions) == len(drainer.handled), "a deal's version was logged twice"
    acknowledged = set()
    for line in journal.read_text().splitlines():
        position, deal_id, version = line.split(" ")
        acknowledged.add((int(position), deal_id, int(version)))
    assert acknowledged <= set(drainer.handled), "an acknowledged write was never handled"
    with open_store(kind, target) as store:
        assert store.verify() == ()
        stored = {deal.id: deal.version for deal in store.find()}
        assert len(versions) == sum(stored.values()), "the log and the rows disagree"
    unacknowledged = len(committed) - len(shared) - len(acknowledged)
    assert 0 <= unacknowledged <= kills, "more committed-but-unacknowledged writes than kills"
    assert in_write >= 4, "too few kills landed inside a store write"
    assert handled_meanwhile > len(shared), "the consumer handled nothing while writers died"
    print(
        f"\n[log] {kind}: {kills} writer kills ({in_write} inside a write), "
        f"{len(committed)} changes handled, {unacknowledged} committed but unacknowledged"
    )
