"""Top-level worker functions for the reliability tests (importable by "spawn" children).

Each worker opens its own store from a picklable ``StoreSpec``, drives a ``Tracker``,
catches only ``SalesPipelineError`` subclasses (counted by type) and returns what it
did; any other exception escapes and fails the test that started it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from salespipeline import LOST, Bant, ConcurrencyError, Deal, SalesPipelineError, presets
from salespipeline.pipeline import Pipeline

PIPELINE_NAME = "seven_stage"
QUALIFIED = Bant(budget=True, authority=True, need=True, timeline=True)
DEALS_MOVED = tuple(f"moved-{n}" for n in range(5))
"""Deals that only ever change stage: their history versions must be exactly 1..n."""
DEALS_UPDATED = tuple(f"updated-{n}" for n in range(5))
"""Deals that also get ``update`` calls (version + 1, no history row)."""

_barrier: Any = None
_count_lock = threading.Lock()


def start_barrier(barrier: Any) -> None:
    """Pool initializer: keep the barrier that releases every worker at once."""
    global _barrier
    _barrier = barrier


@attrs.frozen
class StoreSpec:
    """How to open a store in another process: ``kind`` is sqlite, postgres or memory."""

    kind: str
    target: str = ""


@attrs.frozen
class Outcome:
    """One successful Tracker call: which deal, which operation, the deal it returned."""

    deal_id: str
    operation: str
    deal: Deal


@attrs.frozen
class WorkerResult:
    """What one worker did: successes per deal, refusals by error type, returned deals."""

    worker: int
    successes: Mapping[str, int]
    errors: Mapping[str, int]
    outcomes: tuple[Outcome, ...]
    conflicts: int = 0


def pipeline() -> Pipeline:
    """The pipeline every worker uses (seven stages, BANT before the proposal)."""
    return presets.seven_stage()


def open_store(spec: StoreSpec) -> Any:
    """A fresh store connection for ``spec`` (one per process or per test)."""
    if spec.kind == "sqlite":
        from salespipeline.storage.sqlite import SQLiteStore

        return SQLiteStore(spec.target)
    if spec.kind == "postgres":
        from salespipeline.storage.postgres import PostgresStore

        return PostgresStore(spec.target)
    if spec.kind == "memory":
        from salespipeline.storage.memory import MemoryStore

        return MemoryStore()
    raise ValueError(f"unknown store kind {spec.kind!r}")


def open_tracker(
    store: Any, *, clock: Callable[[], Any] | None = None, pipeline: Pipeline | None = None
) -> Any:
    """A Tracker over ``store`` knowing ``pipeline`` (default: the seven-stage preset)."""
    from salespipeline.tracker import Tracker

    return Tracker(store, [pipeline or presets.seven_stage()], clock=clock)


def seed_deals(spec: StoreSpec, deal_ids: Sequence[str]) -> None:
    """Open every deal in ``deal_ids`` (BANT-qualified, so every stage is reachable)."""
    with open_store(spec) as store:
        tracker = open_tracker(store)
        for deal_id in deal_ids:
            tracker.open(PIPELINE_NAME, deal_id, amount=1000, bant=QUALIFIED)


def _first_stage() -> str:
    return pipeline().stages[0].name


def _last_open_stage() -> str:
    return pipeline().stages[-1].name


def operate(
    tracker: Any, deal_id: str, rng: random.Random, *, tag: str, may_update: bool
) -> tuple[str, Deal]:
    """One random but mostly sensible change to ``deal_id``; returns (operation, deal)."""
    seen = tracker.get(deal_id)
    roll = rng.random()
    if seen.stage == LOST:
        return "reopen", tracker.reopen(deal_id)
    if may_update and roll < 0.3:
        amount = Decimal(rng.randint(1, 10**9)) / 100
        return "update", tracker.update(deal_id, amount=amount, fields={"tag": tag})
    if seen.stage == _last_open_stage() or (roll < 0.5 and seen.stage != _first_stage()):
        return "back", tracker.move(deal_id, _first_stage())
    if roll < 0.6:
        return "lose", tracker.lose(deal_id, f"lost by {tag}")
    return "advance", tracker.advance(deal_id)


def concurrent_worker(
    spec: StoreSpec,
    worker: int,
    operations: int,
    deal_ids: Sequence[str],
    update_ids: Sequence[str],
    seed: int,
) -> WorkerResult:
    """``operations`` random changes on the shared deals; counts successes and refusals."""
    conflicts: Counter[str] = Counter()
    with open_store(spec) as store:
        count_conflicts(store, conflicts)
        tracker = open_tracker(store)
        if _barrier is not None:
            _barrier.wait(timeout=60)
        result = _operate_many(
            tracker, worker, f"w{worker}", random.Random(seed), operations, deal_ids, update_ids
        )
    return attrs.evolve(result, conflicts=conflicts["seen"])


def _operate_many(
    tracker: Any,
    worker: int,
    prefix: str,
    rng: random.Random,
    operations: int,
    deal_ids: Sequence[str],
    update_ids: Sequence[str],
) -> WorkerResult:
    """The worker loop: random changes, successes per deal, refusals by error type."""
    successes: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    outcomes: list[Outcome] = []
    for n in range(operations):
        deal_id = rng.choice(deal_ids)
        try:
            name, deal = operate(
                tracker, deal_id, rng, tag=f"{prefix}-{n}", may_update=deal_id in update_ids
            )
        except SalesPipelineError as error:
            errors[type(error).__name__] += 1
            continue
        successes[deal_id] += 1
        outcomes.append(Outcome(deal_id, name, deal))
    return WorkerResult(worker, dict(successes), dict(errors), tuple(outcomes))


def count_conflicts(store: Any, counter: Counter[str]) -> None:
    """Count, under "seen", each ConcurrencyError ``store.save`` raises.

    The Tracker catches these and retries; the count shows the optimistic check at work.
    """
    save = store.save

    def counted(deal: Deal) -> None:
        try:
            save(deal)
        except ConcurrencyError:
            with _count_lock:
                counter["seen"] += 1
            raise

    store.save = counted


def threaded_worker(
    tracker: Any,
    worker: int,
    operations: int,
    deal_ids: Sequence[str],
    update_ids: Sequence[str],
    results: list[WorkerResult],
    lock: threading.Lock,
) -> None:
    """The same loop as ``concurrent_worker``, on a Tracker shared between threads."""
    result = _operate_many(
        tracker, worker, f"t{worker}", random.Random(worker), operations, deal_ids, update_ids
    )
    with lock:
        results.append(result)


def _acknowledge(journal: int, deal: Deal) -> None:
    os.write(journal, f"{deal.id} {deal.version}\n".encode())


def crash_writer(
    spec: StoreSpec,
    journal_path: str,
    deal_ids: Sequence[str],
    seed: int,
    saved: Any,
    writing: Any,
) -> None:
    """Write forever (until killed), journaling each acknowledged save as "id version".

    An update stamps ``fields`` with the version it creates (``v``) and the deal's last
    history version (``h``), so a reader can tell a complete update from a torn move.
    ``saved.value`` counts acknowledged saves and ``writing.value`` is 1 while a store
    write is in progress (still 1 if killed there): lock-free shared values, since a
    process killed while holding a lock (as ``Event.set`` takes one) never releases it.
    """
    rng = random.Random(seed)
    journal = os.open(journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    with open_store(spec) as store:
        flag_writes(store, writing)
        tracker = open_tracker(store)
        while True:
            deal_id = rng.choice(deal_ids)
            try:
                deal = _crash_step(tracker, deal_id, rng)
            except SalesPipelineError as error:
                if type(error).__name__ not in {"TransitionNotAllowedError"}:
                    raise
                continue
            _acknowledge(journal, deal)
            saved.value += 1


def flag_writes(store: Any, writing: Any) -> None:
    """Set ``writing.value`` to 1 for the duration of every ``add`` and ``save``."""
    for name in ("add", "save"):
        write = getattr(store, name)

        def flagged(deal: Deal, write: Callable[[Deal], None] = write) -> None:
            writing.value = 1
            write(deal)
            writing.value = 0

        setattr(store, name, flagged)


def _crash_step(tracker: Any, deal_id: str, rng: random.Random) -> Deal:
    from salespipeline.errors import DealNotFoundError

    try:
        seen = tracker.get(deal_id)
    except DealNotFoundError:
        return tracker.open(PIPELINE_NAME, deal_id, amount=10, bant=QUALIFIED)  # type: ignore[no-any-return]
    if rng.random() < 0.4:
        stamp = {"v": seen.version + 1, "h": seen.history[-1].version, "pad": "x" * 2000}
        return tracker.update(deal_id, fields=stamp)  # type: ignore[no-any-return]
    _, deal = operate(tracker, deal_id, rng, tag="crash", may_update=False)
    return deal


def read_journal(path: Path) -> dict[str, int]:
    """The highest acknowledged version per deal (a torn last line is ignored)."""
    acknowledged: dict[str, int] = {}
    if not path.exists():
        return acknowledged
    for line in path.read_text().splitlines():
        parts = line.split(" ")
        if len(parts) == 2 and parts[1].isdigit():
            acknowledged[parts[0]] = max(acknowledged.get(parts[0], 0), int(parts[1]))
    return acknowledged


def record_figures(config: Any, name: str, figures: Mapping[str, Any]) -> None:
    """Print ``figures`` and keep them in pytest's cache under ``reliability/<name>``."""
    print(f"\n[reliability] {name}: {dict(figures)}")
    cache = getattr(config, "cache", None)
    if cache is not None:
        cache.set(f"reliability/{name}", dict(figures))


_raw: dict[StoreSpec, Any] = {}


def _raw_connection(spec: StoreSpec) -> Any:
    """One direct connection per process, to the database last asked for (kept open)."""
    if spec not in _raw:
        for old in _raw.values():
            old.close()
        _raw.clear()
        if spec.kind == "sqlite":
            import sqlite3

            connection = sqlite3.connect(spec.target, isolation_level=None)
            connection.execute("PRAGMA synchronous = OFF")
        else:
            import psycopg

            connection = psycopg.connect(spec.target, autocommit=True)
        _raw[spec] = connection
    return _raw[spec]


def raw_rows(spec: StoreSpec, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` read straight from the database, past the store (``?`` marks)."""
    connection = _raw_connection(spec)
    if spec.kind != "sqlite":
        sql = sql.replace("?", "%s")
    return [tuple(row) for row in connection.execute(sql, tuple(params)).fetchall()]


def dump_tables(spec: StoreSpec) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every salespipeline table, in a stable order (for before/after checks)."""
    from salespipeline.storage.sql._schema import TABLES

    return {table: raw_rows(spec, f"SELECT * FROM {table} ORDER BY 1, 2") for table in TABLES}


def raw_write(spec: StoreSpec, sql: str, params: Sequence[Any] = ()) -> None:
    """Run one statement straight on the database, past the store (committed at once)."""
    connection = _raw_connection(spec)
    connection.execute(sql if spec.kind == "sqlite" else sql.replace("?", "%s"), tuple(params))


def restore_tables(spec: StoreSpec, rows: Mapping[str, list[tuple[Any, ...]]]) -> None:
    """Put every table back to ``rows`` (a ``dump_tables`` result), in one transaction."""
    from salespipeline.storage.sql._schema import TABLES

    statements: list[tuple[str, Sequence[tuple[Any, ...]]]] = [
        (f"DELETE FROM {table}", [()]) for table in reversed(TABLES)
    ]
    for table in TABLES:
        if rows[table]:
            marks = ", ".join("?" * len(rows[table][0]))
            statements.append((f"INSERT INTO {table} VALUES ({marks})", rows[table]))
    connection = _raw_connection(spec)
    if spec.kind == "sqlite":
        connection.execute("BEGIN IMMEDIATE")
        try:
            for sql, batch in statements:
                connection.executemany(sql, batch)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return
    from psycopg.types.json import Jsonb

    def adapt(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(Jsonb(v) if isinstance(v, (dict, list)) else v for v in row)

    with connection.transaction(), connection.cursor() as cursor:
        for sql, batch in statements:
            if sql.startswith("INSERT INTO sp_changes "):  # its positions are the database's
                sql = sql.replace(" VALUES ", " OVERRIDING SYSTEM VALUE VALUES ", 1)
            cursor.executemany(sql.replace("?", "%s"), [adapt(row) for row in batch])


def schema_creator(spec: StoreSpec, journal_path: str, seed: int, opened: Any) -> None:
    """Open stores on fresh databases forever (until killed): schema creation, over and over.

    Each target is journaled before it is opened; ``opened.value`` counts the opens
    that returned. ``spec.target`` is a directory (SQLite) or a server's conninfo.
    """
    journal = os.open(journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    for n in itertools.count():
        target = fresh_target(spec, f"s{seed}_{n}")
        os.write(journal, (target.target + "\n").encode())
        with open_store(target):
            opened.value += 1


def fresh_target(spec: StoreSpec, name: str) -> StoreSpec:
    """A new, empty database for ``name``: a file in the directory, or a new schema."""
    if spec.kind == "sqlite":
        return StoreSpec("sqlite", os.path.join(spec.target, f"{name}.sqlite"))
    import psycopg

    with psycopg.connect(spec.target, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{name}"')
    return StoreSpec("postgres", f"{spec.target} options='-c search_path={name}'")


# -- hostile input, by class (shared by the fuzz modules) --------------------------------

HOSTILE_CLASSES = (
    "surrogates and NUL",
    "huge or odd exponents",
    "deep nesting",
    "extreme datetimes and tzinfos",
    "wrong argument types",
)
"""The classes of hostile input the fuzz suite throws at every public entry point."""
HOSTILE_TRIED: Counter[str] = Counter()
HOSTILE_REFUSED: Counter[str] = Counter()
CALL_SECONDS = 5
"""No single call may take longer: a hostile input must never make the library work long."""


class TookTooLongError(BaseException):
    """A call ran past ``CALL_SECONDS`` (a BaseException, so no ``except Exception`` eats it)."""


@contextlib.contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Interrupt the block with ``TookTooLongError`` after ``seconds`` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: Any) -> None:
        raise TookTooLongError(f"{what} ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def hostile_call(
    kind: str, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any
) -> tuple[bool, Any]:
    """``call(*args, **kwargs)`` with one input of class ``kind``: (refused, result).

    Only a ``SalesPipelineError`` may come out, within ``CALL_SECONDS``; a returned
    iterator is drained (up to 10,000 items), since that is where its work happens.
    """
    HOSTILE_TRIED[kind] += 1
    with time_limit(CALL_SECONDS, what):
        try:
            result = call(*args, **kwargs)
            if isinstance(result, Iterator):
                result = list(itertools.islice(result, 10_000))
        except SalesPipelineError:
            HOSTILE_REFUSED[kind] += 1
            return True, None
    return False, result


def record_hostile(config: Any) -> None:
    """Record the inputs tried and refused per hostile class, over every module run so far."""
    figures = {kind: HOSTILE_TRIED[kind] for kind in HOSTILE_CLASSES}
    figures |= {f"refused with a typed error ({k})": HOSTILE_REFUSED[k] for k in HOSTILE_CLASSES}
    record_figures(config, "hostile", figures)


def nested(depth: int, shape: str = "list", leaf: Any = 1) -> Any:
    """A value nested ``depth`` levels deep: lists, mappings, or both in turn."""
    value = leaf
    for level in range(depth):
        use_list = shape == "list" or (shape == "mixed" and level % 2)
        value = [value] if use_list else {"k": value}
    return value


def cyclic(shape: str = "list") -> Any:
    """A list or mapping that contains itself (infinitely deep to a naive walker)."""
    if shape == "list":
        loop: list[Any] = []
        loop.append(loop)
        return loop
    table: dict[str, Any] = {}
    table["self"] = table
    return table


HOSTILE_CHARACTERS = ("\x00", "\ud800", "\udfff", "\udc80", "\ud83d", "\x00\ud800")
"""NUL and lone surrogates: no backend keeps them alike, so they are refused everywhere."""

ODD_AMOUNTS: tuple[Any, ...] = (
    "0E+20000000",
    "1e-30",
    Decimal("1E+999999"),
    "1E+999999999",
    Decimal((0, (1,), 999_999_999_999_999_999)),
    Decimal((0, (0,), 999_999_999_999_999_999)),
    Decimal((0, (7,), -(10**18))),
    Decimal((0, (0,), -(10**18))),
    "-0E+5",
    "-0",
    "0E-1000000",
    "9" * 19,
    10**18,
    -(10**18),
    10**19,
    "1" + "0" * 100,
    "1.1234567",
    Decimal("0.0000001"),
    "1." + "0" * 50,
    Decimal((0, (1,) * 30, -29)),
    Decimal("999999999999999999.9999995"),
    Decimal("999999999999999999.999999"),
    Decimal("-1E-30"),
    Decimal("sNaN"),
    "NaN",
    "-Infinity",
    "1e",
    " 12.50 ",
    "\u0661\u0662",  # Arabic-Indic digits: Decimal reads them as 12
    "1_000",
)
"""Amounts whose exponent, length or form is extreme: each must be refused or normalised.

Integers past Python's 4,300-digit ``str`` limit are drawn apart (``huge_int``): even
hypothesis cannot print them in a failing example.
"""


def huge_int(digits: int, sign: int = 1) -> int:
    """``sign`` times ten to the ``digits``: ``str()`` and ``repr()`` of it raise ValueError."""
    return sign * 10**digits


class IntOffset(tzinfo):
    """``utcoffset`` returns an int, not a timedelta."""

    def utcoffset(self, dt: datetime | None) -> Any:
        return 3600

    def dst(self, dt: datetime | None) -> Any:
        return None


class FloatOffset(IntOffset):
    def utcoffset(self, dt: datetime | None) -> Any:
        return 3600.0


class RaisingOffset(IntOffset):
    """A tzinfo whose ``utcoffset`` fails (a broken zone database, say)."""

    def utcoffset(self, dt: datetime | None) -> Any:
        raise RuntimeError("the zone database is unreachable")


class FlipOffset(IntOffset):
    """``utcoffset`` answers None, then an offset, then None...: aware only every other call."""

    def __init__(self, first: timedelta | None = None) -> None:
        self.answers = itertools.cycle([first, timedelta(hours=1) if first is None else None])

    def utcoffset(self, dt: datetime | None) -> Any:
        return next(self.answers)


class FixedOffset(IntOffset):
    """A fixed offset that ``datetime.timezone`` would refuse (±24 h) or accept."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def utcoffset(self, dt: datetime | None) -> Any:
        return self.offset


ODD_TZINFOS: tuple[tzinfo | None, ...] = (
    None,
    timezone.utc,
    timezone.min,
    timezone.max,
    timezone(timedelta(hours=-1)),
    timezone(timedelta(hours=1)),
    IntOffset(),
    FloatOffset(),
    RaisingOffset(),
    FlipOffset(),
    FlipOffset(timedelta(hours=1)),
    FixedOffset(timedelta(hours=24)),
    FixedOffset(timedelta(hours=-24)),
    FixedOffset(timedelta(days=10**6)),
    FixedOffset(timedelta(microseconds=1)),
)
"""Zones that break conversion to UTC, zones at the edges, and None (naive)."""

ODD_MOMENTS = (
    datetime.min,
    datetime.max,
    datetime(1, 1, 1, 0, 30),
    datetime(1, 12, 31, 23, 59),
    datetime(9998, 12, 31, 23, 59, 59, 999_999),
    datetime(9999, 1, 1),
    datetime(9999, 12, 31, 23, 59),
    datetime(2026, 1, 5, 9),
)
"""Wall-clock times at the calendar's edges (each combined with a zone from ``ODD_TZINFOS``)."""
