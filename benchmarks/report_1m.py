"""Report at scale: ``SQLiteStore.report`` (SQL) against ``metrics.report`` over ``find()``.

    python benchmarks/report_1m.py                  # 1,000,000 deals (several minutes)
    python benchmarks/report_1m.py --deals 2000     # the CI smoke size (seconds)
    python benchmarks/report_1m.py --db big.sqlite --reuse   # measure a file made before

Generates deals walking the seven-stage preset along legal moves (about five
history rows each), bulk-inserts them straight into the store's schema, then times
both report paths and measures each one's peak Python heap (tracemalloc) in a
separate run, since tracing slows Python down. Both reports must be equal.
"""

from __future__ import annotations

import argparse
import gc
import random
import sqlite3
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from salespipeline import metrics, presets
from salespipeline.metrics import PipelineReport
from salespipeline.metrics._time import EPOCH
from salespipeline.pipeline import Pipeline
from salespipeline.stages import LOST, WON
from salespipeline.storage import SQLiteStore
from salespipeline.storage._codec import amount_parts
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
    report: PipelineReport


def _timed(run: Callable[[], PipelineReport], rounds: int) -> tuple[float, PipelineReport]:
    best, result = float("inf"), None
    for _ in range(rounds):
        gc.collect()
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    assert result is not None
    return best, result


def _peak(run: Callable[[], PipelineReport]) -> int:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=1_000_000, help="deals to generate")
    parser.add_argument("--rounds", type=int, default=1, help="timing rounds (best counts)")
    parser.add_argument("--db", type=Path, help="SQLite file to create (default: temporary)")
    parser.add_argument("--reuse", action="store_true", help="measure --db as it is")
    args = parser.parse_args(argv)
    pipeline = presets.seven_stage()
    with tempfile.TemporaryDirectory(prefix="sp-report-") as tmp:
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
