"""Stores with hooks and child-process workers for tests/test_log_reliability.py.

The hooked stores run the library's own write code unchanged and call a test's hook
around the statement that inserts a change row (``INSERT INTO sp_changes``), inside
the transaction, before it commits: to sleep a random moment, or to stop there until
the test lets it go. ``UnlockedPostgresStore`` is the negative control: the same
writes without the advisory lock that makes positions rise in commit order.

The workers (``consume``, ``write``) are top-level functions, so "spawn" and
"forkserver" children import them. They share progress with the parent through
lock-free ``multiprocessing.Value`` objects: a process killed while holding a lock
would never release it.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from salespipeline import ConcurrencyError, Deal, TransitionNotAllowedError, presets
from salespipeline.pipeline import Pipeline
from salespipeline.storage import DealStore, PostgresStore, SQLiteStore
from salespipeline.storage.sql._plan import Within
from salespipeline.storage.sql._store import Cursor, SQLStore

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
LOG_INSERT = "INSERT INTO sp_changes"


def pipeline() -> Pipeline:
    return presets.seven_stage()


def open_store(kind: str, target: str, *, fast: bool = False) -> DealStore:
    """A plain store: a SQLite file, or a PostgreSQL conninfo.

    ``fast``: SQLite syncs only at checkpoints (for seeding; a crash of a process
    loses nothing either way).
    """
    if kind == "sqlite":
        return SQLiteStore(target, synchronous="normal" if fast else "full")
    return PostgresStore(target)


# -- hooked stores -------------------------------------------------------------------


class Hooks:
    """Called around each insert of a change row, inside its transaction (no-ops here)."""

    def starting(self) -> None:
        """A write transaction is about to begin (SQLite: to wait for the write lock)."""

    def opened(self, waited: float) -> None:
        """A write transaction began, after ``waited`` seconds (SQLite: for the write lock)."""

    def closed(self, began: bool) -> None:
        """A write transaction ended: committed or rolled back (``began``), or never began."""

    def before(self) -> None:
        """Just before the change row is inserted (PostgreSQL: before the row update too)."""

    def after(self) -> None:
        """Just after it is inserted, before the transaction commits."""


class RandomPauses(Hooks):
    """Sleep a random moment (0 to ``longest`` s) before and after each change row insert.

    Shared by every writer's store: ``open`` counts the write transactions begun and
    not yet ended, ``overlaps`` the inserts made while another one was open,
    ``waits`` the transactions that waited over a millisecond to begin, and
    ``contended`` those that set out to begin while another was under way.
    """

    def __init__(self, seed: int, longest: float = 0.002) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.longest = longest
        self.open = 0
        self.overlaps = 0
        self.waits = 0
        self.under_way = 0
        self.contended = 0

    def starting(self) -> None:
        with self._lock:
            self.contended += self.under_way > 0
            self.under_way += 1

    def opened(self, waited: float) -> None:
        with self._lock:
            self.open += 1
            self.waits += waited > 0.001

    def closed(self, began: bool) -> None:
        with self._lock:
            self.under_way -= 1
            self.open -= began

    def _pause(self) -> None:
        with self._lock:
            seconds = self._rng.uniform(0, self.longest)
        if seconds > self.longest / 4:  # some writes run with no pause at all
            time.sleep(seconds)

    def before(self) -> None:
        with self._lock:
            self.overlaps += self.open > 1
        self._pause()

    def after(self) -> None:
        self._pause()


class Stop(Hooks):
    """Stop the first write that logs a change, right after its insert, until ``go`` is set.

    ``inserted`` is set when it gets there (its transaction still open).
    """

    def __init__(self) -> None:
        self.inserted = threading.Event()
        self.go = threading.Event()
        self._armed = True

    def after(self) -> None:
        if not self._armed:
            return
        self._armed = False
        self.inserted.set()
        if not self.go.wait(timeout=60):
            raise RuntimeError("the test never let the stopped write go on")


class _HookedCursor:
    """A cursor that calls the hooks around ``INSERT INTO sp_changes`` statements."""

    def __init__(self, cursor: Cursor, hooks: Hooks) -> None:
        self._cursor = cursor
        self._hooks = hooks

    def execute(self, sql: str, params: Sequence[Any] = (), /, **options: Any) -> object:
        logs = LOG_INSERT in sql
        if logs:
            self._hooks.before()
        result = self._cursor.execute(sql, params, **options)
        if logs:
            self._hooks.after()
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


class _Hooked:
    """Mixin: every write transaction's cursor is hooked, and so is a one-statement save.

    PostgreSQL saves with one statement in autocommit mode (update, advisory lock and
    insert together); here that statement is given a write transaction instead, so a
    hook can hold it open between the insert and the commit.
    """

    hooks: Hooks = Hooks()

    @contextmanager
    def _hooked(self, transaction: AbstractContextManager[Cursor]) -> Iterator[Any]:
        self.hooks.starting()
        start = time.monotonic()
        began = False
        try:
            with transaction as cursor:
                began = True
                self.hooks.opened(time.monotonic() - start)
                yield _HookedCursor(cursor, self.hooks)
        finally:  # after the commit or rollback
            self.hooks.closed(began)

    def _write(self) -> AbstractContextManager[Any]:
        return self._hooked(super()._write())  # type: ignore[misc]

    def _update(
        self, columns: Sequence[str], params: Sequence[Any], change: Sequence[Any]
    ) -> Within[int | None]:
        return Within("write", super()._update(columns, params, change).steps)  # type: ignore[misc]


class HookedSQLiteStore(_Hooked, SQLiteStore):  # type: ignore[misc]
    def __init__(self, path: str, hooks: Hooks, **options: Any) -> None:
        self.hooks = hooks
        super().__init__(path, **options)


class HookedPostgresStore(_Hooked, PostgresStore):  # type: ignore[misc]
    def __init__(self, conninfo: str, hooks: Hooks, **options: Any) -> None:
        self.hooks = hooks
        super().__init__(conninfo, **options)


class UnlockedPostgresStore(HookedPostgresStore):
    """NEGATIVE CONTROL: PostgreSQL writes without the log lock.

    A save is the plain two-statement transaction (update the row, insert the
    change) and no write takes the advisory lock, so the identity column hands out
    positions in insert order while transactions commit in any order.
    """

    _log_lock = ()

    def _update(
        self, columns: Sequence[str], params: Sequence[Any], change: Sequence[Any]
    ) -> Within[int | None]:
        return SQLStore._update(self, columns, params, change)


def open_hooked(kind: str, target: str, hooks: Hooks) -> DealStore:
    if kind == "sqlite":
        return HookedSQLiteStore(target, hooks)
    return HookedPostgresStore(target, hooks)


# -- data ----------------------------------------------------------------------------


def deal_with_past(deal_id: str, versions: int) -> Deal:
    """A new deal at ``versions`` (its later versions are updates): ``add`` logs them all."""
    deal = pipeline().start(deal_id, amount=100, at=T0)
    for n in range(2, versions + 1):
        deal = deal.evolve(amount=100 + n, at=T0 + timedelta(minutes=n))
    return deal


def seed_log(store: DealStore, deals: int, versions: int, prefix: str = "seed") -> None:
    """``deals`` deals of ``versions`` versions each: ``deals * versions`` changes."""
    for n in range(deals):
        store.add(deal_with_past(f"{prefix}-{n}", versions))


def bump(store: DealStore, deal_id: str, rng: random.Random) -> Any:
    """Save one update of ``deal_id`` (a new amount); the change, or None on a conflict."""
    deal = store.get(deal_id)
    amount = Decimal(rng.randint(1, 10**6)) / 100
    if amount == deal.amount:
        amount += 1
    try:
        return store.save(deal.evolve(amount=amount, at=deal.updated_at + timedelta(seconds=1)))
    except ConcurrencyError:
        return None


# -- child processes -----------------------------------------------------------------


def consume(
    kind: str,
    target: str,
    out_path: str,
    name: str,
    page: int,
    run: int,
    handled: Any,
    die_after: int = 0,
) -> None:
    """Drain the log with durable consumer ``name``; append each position to ``out_path``.

    Writes ``run <n>`` first and ``drained`` last; each handled change is one line,
    flushed and fsynced before the handler returns. ``handled.value`` counts them.
    ``die_after``: SIGKILL itself inside the handler of that many-th change (0: never).
    """
    with open(out_path, "a", encoding="ascii") as out:

        def line(text: str) -> None:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())

        line(f"run {run}\n")
        with open_store(kind, target) as store:
            consumer = store.consumer(name)

            def handle(change: Any) -> None:
                line(f"{change.position}\n")
                handled.value += 1
                if handled.value == die_after:
                    os.kill(os.getpid(), signal.SIGKILL)

            while consumer.poll(handle, limit=page):
                pass
        line("drained\n")


def write(
    kind: str,
    target: str,
    journal_path: str,
    shared: Sequence[str],
    worker: int,
    run: int,
    saved: Any,
    writing: Any,
) -> None:
    """Write forever (until killed): new deals, updates and moves of the shared deals.

    Appends "position deal_id version" to the journal after each write returns (it
    is acknowledged); ``writing.value`` is 1 while a store write is in progress.
    """
    rng = random.Random(worker * 1000 + run)
    journal = os.open(journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    flow = pipeline()
    stages = [stage.name for stage in flow.stages]
    with open_store(kind, target) as store:
        _flag_writes(store, writing)
        for n in range(10**9):
            roll = rng.random()
            if roll < 0.2:
                change = store.add(flow.start(f"w{worker}-r{run}-{n}", amount=7, at=T0))
            elif roll < 0.6:
                change = bump(store, rng.choice(shared), rng)
            else:
                change = _move(store, flow, rng.choice(shared), stages, rng)
            if change is None:
                continue
            os.write(journal, f"{change.position} {change.deal_id} {change.version}\n".encode())
            saved.value += 1


def _move(
    store: DealStore, flow: Pipeline, deal_id: str, stages: Sequence[str], rng: random.Random
) -> Any:
    """Move ``deal_id`` to another open stage; its change, or None when refused."""
    deal = store.get(deal_id)
    to = rng.choice([stage for stage in stages if stage != deal.stage])
    try:
        moved = flow.move(deal, to, at=deal.updated_at + timedelta(seconds=1))
        return store.save(moved)
    except (ConcurrencyError, TransitionNotAllowedError):
        return None


def _flag_writes(store: DealStore, writing: Any) -> None:
    for name in ("add", "save"):
        method: Callable[..., Any] = getattr(store, name)

        def flagged(*args: Any, _method: Callable[..., Any] = method, **kwargs: Any) -> Any:
            writing.value = 1
            try:
                return _method(*args, **kwargs)
            finally:
                writing.value = 0

        setattr(store, name, flagged)
