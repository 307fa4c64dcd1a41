"""Report at scale: ``SQLiteStore.report`` (SQL) against ``metrics.report`` over ``find()``.

    python benchmarks/report_1m.py                  # 1,000,000 deals (several minutes)
    python benchmarks/report_1m.py --deals 2000     # the CI smoke size (seconds)
    python benchmarks/report_1m.py --db big.sqlite --reuse   # measure a file made before
    python benchmarks/report_1m.py --deals 50000 --log     # also as_of and movement

Generates deals walking the seven-stage preset along legal moves (about five
history rows each), bulk-inserts them straight into the store's schema, then times
both report paths and measures each one's peak Python heap (tracemalloc) in a
separate run, since tracing slows Python down. Both reports must be equal.

``--log`` makes a realistic change log instead (``log_story``): each deal's versions
are made by the library's own operations (moves, amounts raised and cut, close dates
pushed, won, lost, reopened), each change derived and encoded as the store's
``add``/``save`` do it (``generate_log``), so every change row, ``changed`` old/new
pairs included, is what a store writes. It then also times ``report(as_of=a month back)`` and
``movement(over a quarter)`` on SQL against the pure path over the same data (the
store's log replayed), and measures the SQL paths' peak heap at a second, quarter
size (``--heap-deals``) to show whether it is flat in the number of deals.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import random
import sqlite3
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from salespipeline import Bant, log, metrics, presets
from salespipeline.deal import Deal
from salespipeline.metrics import Movement, PipelineReport
from salespipeline.metrics._time import EPOCH
from salespipeline.pipeline import Pipeline
from salespipeline.stages import LOST, WON
from salespipeline.storage import DealStore, SQLiteStore, _codec
from salespipeline.storage._codec import amount_parts
from salespipeline.storage.sql import _figures
from salespipeline.storage.sql._figures import COLUMNS, figure_values

START = datetime(2025, 1, 1, tzinfo=timezone.utc)
NOW = datetime(2027, 1, 1, tzinfo=timezone.utc)  # after every generated change
US = 10**6
BATCH = 10_000
PROPOSAL = presets.seven_stage().stage_names.index("proposal")

DEAL_SQL = (
    "INSERT INTO sp_deals (id, pipeline, stage, amount, amount_whole, amount_frac, currency, "
    "bant_budget, bant_authority, bant_need, bant_timeline, fields, probability, lost_reason, "
    "next_action, next_action_at_us, created_at_us, stage_entered_at_us, closed_at_us, version, "
    f"updated_at_us, {', '.join(COLUMNS)}) "
    "VALUES (?, ?, ?, ?, ?, ?, 'USD', ?, ?, ?, ?, '{}', ?, ?, NULL, NULL, ?, ?, ?, ?, ?, "
    f"{', '.join('?' * len(COLUMNS))})"
)
CHANGE_SQL = (  # the report reads deal rows, so the changes carry only their stage moves
    "INSERT INTO sp_changes (deal_id, version, from_stage, to_stage, at_us, reason, kind, "
    "changed) VALUES (?, ?, ?, ?, ?, ?, ?, '{}')"
)


# -- data --------------------------------------------------------------------------


def _walk(rng: random.Random, names: tuple[str, ...]) -> list[str]:
    """Stage names a deal enters: forward one stage at a time, then won, lost or open."""
    n = len(names) - 2
    path = [names[0]]
    while True:
        roll = rng.random()
        here = names.index(path[-1])
        if roll < 0.08:
            path.append(LOST)
            if rng.random() < 0.1:  # reopened where it was lost
                path.append(names[here])
                continue
            return path
        if roll < 0.18:
            return path
        if here == n - 1:
            path.append(WON)
            return path
        path.append(names[here + 1])


def deal_rows(
    i: int, rng: random.Random, pipeline: Pipeline
) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """One deal row and its history rows, consistent as a store would write them.

    The deal row carries the figures derived from its history, as ``save`` writes them.
    """
    deal_id = f"deal-{i:07d}"
    path = _walk(rng, pipeline.stage_names)
    at = int((START - EPOCH).total_seconds() * US) + rng.randrange(300 * 86_400 * US)
    times = [at]
    for _ in path[1:]:
        times.append(times[-1] + rng.randrange(1, 20 * 86_400 * US))
    changes = [
        (deal_id, v + 1, None if v == 0 else path[v - 1], stage, times[v], None)
        for v, stage in enumerate(path)
    ]
    changes = [(*c[:5], "no budget") if c[3] == LOST else c for c in changes]
    changes = [(*c, "open" if c[1] == 1 else "move") for c in changes]
    stage = path[-1]
    qualified = any(pipeline.stage_names.index(s) >= PROPOSAL for s in path if s != LOST)
    amount = Decimal(rng.randrange(1_000, 250_000_00)).scaleb(-2)
    whole, frac = amount_parts(amount)
    closed = times[-1] if stage in (WON, LOST) else None
    probability = rng.choice((None, None, None, 0.25, 0.6))
    row = (
        deal_id, pipeline.name, stage, str(amount), whole, frac,
        qualified, qualified, qualified, qualified,
        probability, "no budget" if stage == LOST else None,
        times[0], times[-1], closed, len(path), times[-1], *figure_values(path, times),
    )  # fmt: skip
    return row, changes


def _progress(done: int, total: int) -> None:
    width = 40
    filled = width * done // max(total, 1)
    bar = "#" * filled + "-" * (width - filled)
    print(f"\r  generating [{bar}] {done:>9,}/{total:,} deals", end="", file=sys.stderr)


def generate(path: Path, pipeline: Pipeline, n_deals: int, *, seed: int = 5) -> int:
    """Bulk-insert ``n_deals`` deals into a new store file; returns the history rows."""
    with SQLiteStore(path) as store:
        store.save_pipeline(pipeline)
    rng = random.Random(seed)
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA synchronous = OFF")
    history = 0
    try:
        for start in range(0, n_deals, BATCH):
            deals, changes = [], []
            for i in range(start, min(start + BATCH, n_deals)):
                row, rows = deal_rows(i, rng, pipeline)
                deals.append(row)
                changes.extend(rows)
            connection.execute("BEGIN")
            connection.executemany(DEAL_SQL, deals)
            connection.executemany(CHANGE_SQL, changes)
            connection.execute("COMMIT")
            history += len(changes)
            _progress(start + len(deals), n_deals)
        connection.execute("ANALYZE")
    finally:
        connection.close()
        print(file=sys.stderr)
    return history


QUALIFIED = Bant(budget=True, authority=True, need=True, timeline=True)
AS_OF = datetime(2025, 12, 1, tzinfo=timezone.utc)  # a month before the log's busy end
QUARTER = (datetime(2025, 9, 1, tzinfo=timezone.utc), AS_OF)
STORY_BATCH = 10_000


def log_story(i: int, rng: random.Random, pipeline: Pipeline) -> list[Deal]:
    """One deal's versions, each made by a library operation, oldest first.

    Opened in the first 300 days with a close date 30-90 days out; then, a few days
    apart each: advanced (half the time), amount raised or cut, close date pushed,
    lost (a tenth reopened), left open; won from the last open stage.
    """
    at = START + timedelta(seconds=rng.randrange(300 * 86_400))
    amount = Decimal(rng.randrange(1_000, 250_000_00)).scaleb(-2)
    deal = pipeline.start(
        f"deal-{i:07d}",
        amount=amount,
        bant=QUALIFIED,
        owner=f"rep-{rng.randrange(40)}",
        close_date=(at + timedelta(days=rng.randrange(30, 90))).date(),
        at=at,
    )
    versions = [deal]
    last_open = len(pipeline.stage_names) - 3
    for _ in range(12):
        at += timedelta(seconds=rng.randrange(3_600, 20 * 86_400))
        deal, done = _step(deal, rng, pipeline, at, last_open)
        if deal is not versions[-1]:
            versions.append(deal)
        if done:
            break
    return versions


def _step(
    deal: Deal, rng: random.Random, pipeline: Pipeline, at: datetime, last_open: int
) -> tuple[Deal, bool]:
    """The deal after one more operation at ``at``, and whether its story ends there."""
    if deal.stage == LOST:
        return pipeline.reopen(deal, at=at), False
    roll = rng.random()
    if roll < 0.08:
        return pipeline.lose(deal, "no budget", at=at), rng.random() >= 0.1
    if roll < 0.18:
        factor = Decimal(rng.choice(("1.25", "1.1", "0.9", "0.5")))
        return deal.evolve(amount=(deal.amount * factor).quantize(Decimal("0.01")), at=at), False
    if roll < 0.28:
        pushed = (deal.close_date or at.date()) + timedelta(days=rng.randrange(7, 45))
        return deal.evolve(close_date=min(pushed, date(9998, 1, 1)), at=at), False
    if roll < 0.36:
        return deal, True
    if pipeline.stage_names.index(deal.stage) >= last_open:
        return pipeline.win(deal, at=at), True
    return pipeline.advance(deal, at=at), False


def story_changes(versions: list[Deal]) -> list[log.Change]:
    """The changes a store logs for ``versions``: ``add`` of the first, ``save`` of each
    next (the same ``log.derive`` the stores call, none trusted from the caller)."""
    changes = [log.derive(None, versions[0])]
    changes += [log.derive(before, after) for before, after in itertools.pairwise(versions)]
    return changes


def generate_log(path: Path, pipeline: Pipeline, n_deals: int, *, seed: int = 5) -> int:
    """Write ``n_deals`` deals' stories in the rows the store writes for them; returns
    the changes.

    Each change is derived as ``add``/``save`` derive it and encoded by the store's
    codec, each deal row is the store's own row of its last version with the figures
    derived from its history, bulk-inserted in batches (the stores' ``add``/``save``
    one by one would take an hour at a million deals); ``store.verify()`` then holds
    every row to the log, the source of truth (the smoke test runs it).
    """
    rng = random.Random(seed)
    changes = 0
    with SQLiteStore(path, synchronous="normal") as store:
        store.save_pipeline(pipeline)
        for start in range(0, n_deals, STORY_BATCH):
            deals, rows = [], []
            for i in range(start, min(start + STORY_BATCH, n_deals)):
                versions = log_story(i, rng, pipeline)
                rows += [_codec.log_values(change) for change in story_changes(versions)]
                last = versions[-1]
                deals.append([*store._row_values(last), *_figures.deal_figures(last)])
            with store._write() as cursor:
                cursor.executemany(store.sql.insert_deal, deals)
                cursor.executemany(store.sql.insert_log, rows)
            changes += len(rows)
            _progress(min(start + STORY_BATCH, n_deals), n_deals)
    connection = sqlite3.connect(path)
    try:
        connection.execute("ANALYZE")
    finally:
        connection.close()
        print(file=sys.stderr)
    return changes


def _sizes(path: Path) -> tuple[int, int]:
    """How many deals and history rows a file made by ``generate`` holds."""
    connection = sqlite3.connect(path)
    try:
        (deals,) = connection.execute("SELECT COUNT(*) FROM sp_deals").fetchone()
        (history,) = connection.execute("SELECT COUNT(*) FROM sp_changes").fetchone()
    finally:
        connection.close()
    return int(deals), int(history)


# -- measurement -------------------------------------------------------------------


@attrs.frozen
class Measured:
    """Seconds and peak traced Python heap of one report path, and its result."""

    seconds: float
    peak_bytes: int
    report: PipelineReport | Movement


def _timed(
    run: Callable[[], PipelineReport | Movement], rounds: int
) -> tuple[float, PipelineReport | Movement]:
    best, result = float("inf"), None
    for _ in range(rounds):
        gc.collect()
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    assert result is not None
    return best, result


def _peak(run: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def measure(path: Path, pipeline: Pipeline, *, rounds: int) -> dict[str, Measured]:
    results = {}
    with SQLiteStore(path) as store:
        contenders: dict[str, Callable[[], PipelineReport]] = {
            "store.report (SQL)": lambda: store.report(pipeline, as_of=NOW),
            "metrics.report(store.find())": lambda: metrics.report(
                store.find(pipeline=pipeline.name), pipeline, as_of=NOW
            ),
        }
        for name, run in contenders.items():
            print(f"  timing {name} ...", file=sys.stderr)
            seconds, report = _timed(run, rounds)
            print(f"  tracing memory of {name} ...", file=sys.stderr)
            results[name] = Measured(seconds, _peak(run), report)
    return results


def table(n_deals: int, history: int, results: dict[str, Measured]) -> Iterator[str]:
    sql, pure = results.values()
    yield f"{n_deals:,} deals, {history:,} history rows (seven-stage preset, SQLite file)"
    yield ""
    yield "| path | time | peak Python heap | vs SQL (time) | vs SQL (memory) |"
    yield "|---|---|---|---|---|"
    for name, m in results.items():
        yield (
            f"| {name} | {m.seconds:.2f} s | {m.peak_bytes / 2**20:.2f} MiB "
            f"| {m.seconds / sql.seconds:.1f}x | {m.peak_bytes / sql.peak_bytes:.1f}x |"
        )
    yield ""
    yield f"reports equal: {'yes' if sql.report == pure.report else 'NO'}"
    yield f"SQL speed-up: {pure.seconds / sql.seconds:.1f}x (target >= 10x)"


def whole_log(store: DealStore) -> Iterator[log.Change]:
    """Every change in the store's log, page by page (what the pure path reads)."""
    after = 0
    while page := store.log(after=after, limit=10_000):
        yield from page
        after = page[-1].position or after


Contenders = dict[str, Callable[[], PipelineReport | Movement]]


def log_contenders(store: DealStore, pipeline: Pipeline) -> dict[str, Contenders]:
    """Per question, its SQL path then its pure path over the replayed log."""
    start, end = QUARTER
    return {
        "report (now)": {
            "store.report (SQL)": lambda: store.report(pipeline, as_of=NOW),
            "metrics.report(store.find())": lambda: metrics.report(
                store.find(pipeline=pipeline.name), pipeline, as_of=NOW
            ),
        },
        "report as_of a month back": {
            "store.report(as_of=) (SQL)": lambda: store.report(pipeline, as_of=AS_OF),
            "metrics.report(log.replay(log, until=))": lambda: metrics.report(
                log.replay(whole_log(store), until=AS_OF).values(), pipeline, as_of=AS_OF
            ),
        },
        "movement over a quarter": {
            "store.movement (SQL)": lambda: store.movement(pipeline, start=start, end=end),
            "metrics.movement(log)": lambda: metrics.movement(
                whole_log(store), pipeline, start=start, end=end
            ),
        },
    }


def measure_log(
    path: Path, pipeline: Pipeline, *, rounds: int, trace_pure: bool = True
) -> dict[str, dict[str, Measured]]:
    """Every question's two paths timed (best of ``rounds``) and traced, on one file."""
    with SQLiteStore(path) as store:
        return measure_store(store, pipeline, rounds=rounds, trace_pure=trace_pure)


def measure_store(
    store: DealStore, pipeline: Pipeline, *, rounds: int, trace_pure: bool = True
) -> dict[str, dict[str, Measured]]:
    """Every question's two paths timed (best of ``rounds``) and traced, on ``store``;
    without ``trace_pure`` only the SQL paths' heap is traced (tracing the pure
    replay of a million deals takes longer than everything else together). Each
    time is printed to stderr as it is taken."""
    results: dict[str, dict[str, Measured]] = {}
    for question, contenders in log_contenders(store, pipeline).items():
        results[question] = {}
        for k, (name, run) in enumerate(contenders.items()):
            print(f"  timing {name} ...", file=sys.stderr)
            seconds, result = _timed(run, rounds)
            print(f"  {name}: {seconds:.2f} s", file=sys.stderr)
            traced = k == 0 or trace_pure
            if traced:
                print(f"  tracing memory of {name} ...", file=sys.stderr)
            results[question][name] = Measured(seconds, _peak(run) if traced else -1, result)
    return results


def _heap(peak_bytes: int) -> str:
    return "not traced" if peak_bytes < 0 else f"{peak_bytes / 2**20:.2f} MiB"


def sql_peaks(path: Path, pipeline: Pipeline) -> dict[str, int]:
    """The peak traced heap of each question's SQL path on another file."""
    with SQLiteStore(path) as store:
        return {
            question: _peak(next(iter(contenders.values())))
            for question, contenders in log_contenders(store, pipeline).items()
        }


def log_table(
    sizes: tuple[int, int],
    results: dict[str, dict[str, Measured]],
    small: tuple[int, dict[str, int]] | None,
    *,
    where: str = "SQLite file",
) -> Iterator[str]:
    deals, changes = sizes
    yield f"{deals:,} deals, {changes:,} changes (seven-stage preset, realistic log, {where})"
    yield f"as_of {AS_OF.date()}, movement [{QUARTER[0].date()}, {QUARTER[1].date()})"
    yield ""
    yield "| question | path | time | peak Python heap | pure / SQL (time) | equal |"
    yield "|---|---|---|---|---|---|"
    for question, paths in results.items():
        sql, pure = paths.values()
        equal = "yes" if sql.report == pure.report else "NO"
        for name, m in paths.items():
            yield (
                f"| {question} | {name} | {m.seconds:.2f} s | {_heap(m.peak_bytes)} "
                f"| {m.seconds / sql.seconds:.1f}x | {equal} |"
            )
    if small is not None:
        n, peaks = small
        yield ""
        yield f"| SQL path | peak heap at {n:,} deals | at {deals:,} deals |"
        yield "|---|---|---|"
        for question, paths in results.items():
            sql = next(iter(paths.values()))
            yield (
                f"| {question} | {peaks[question] / 2**20:.2f} MiB "
                f"| {sql.peak_bytes / 2**20:.2f} MiB |"
            )


def main_log(args: argparse.Namespace, pipeline: Pipeline, tmp: Path) -> int:
    """``--log``: the realistic log, the three questions, the heap at two sizes."""
    path = args.db or tmp / "log.sqlite"
    if args.reuse and path.exists():
        sizes = _sizes(path)
    else:
        sizes = (args.deals, generate_log(path, pipeline, args.deals))
    results = measure_log(path, pipeline, rounds=args.rounds, trace_pure=not args.sql_heap_only)
    small = None
    if args.heap_deals:
        other = tmp / "log-small.sqlite"
        generate_log(other, pipeline, args.heap_deals)
        small = (args.heap_deals, sql_peaks(other, pipeline))
    print("\n".join(log_table(sizes, results, small)))
    equal = all(sql.report == pure.report for sql, pure in (p.values() for p in results.values()))
    return 0 if equal else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=1_000_000, help="deals to generate")
    parser.add_argument("--rounds", type=int, default=1, help="timing rounds (best counts)")
    parser.add_argument("--db", type=Path, help="SQLite file to create (default: temporary)")
    parser.add_argument("--reuse", action="store_true", help="measure --db as it is")
    parser.add_argument("--log", action="store_true", help="realistic log: as_of, movement")
    parser.add_argument("--heap-deals", type=int, default=0, help="--log: a 2nd size for heap")
    parser.add_argument(
        "--sql-heap-only", action="store_true", help="--log: trace the SQL paths' heap only"
    )
    args = parser.parse_args(argv)
    pipeline = presets.seven_stage()
    with tempfile.TemporaryDirectory(prefix="sp-report-") as tmp:
        if args.log:
            return main_log(args, pipeline, Path(tmp))
        path = args.db or Path(tmp) / "deals.sqlite"
        if args.reuse and path.exists():
            deals, history = _sizes(path)
        elif path.exists():
            parser.error(f"{path} exists; give a new file, or --reuse it")
        else:
            deals, history = args.deals, generate(path, pipeline, args.deals)
        results = measure(path, pipeline, rounds=args.rounds)
    print("\n".join(table(deals, history, results)))
    sql, pure = results.values()
    return 0 if sql.report == pure.report else 1


if __name__ == "__main__":
    raise SystemExit(main())
