"""Bulk adds: ``store.add_many(deals)`` against hand-written executemany inserts, and
``salespipeline import`` of the same deals as a CSV file against ``add_many``.

    python benchmarks/bulk_add.py                   # 100,000 deals (a minute or two)
    python benchmarks/bulk_add.py --deals 500       # the smoke size (seconds)

Each deal has five changes (an open and four moves). Both contenders write the same
rows into the same tables of an emptied SQLite file and PostgreSQL schema (when a
server can be started), in one transaction: the reference encodes the rows the way
the store does (``_codec``, ``log.recorded``) and runs one ``executemany`` per table;
``add_many`` also checks every deal and reads the positions back. The bar of issue
19: at least 0.8x the reference's rate at 100,000 deals, goal 1.0x.

The import row writes the deals as a CSV export (id, stage, amount, BANT, when each
stage was entered) and times the whole command on a fresh SQLite file (opening it,
reading the definition, checking and parsing every row, writing in batches) against
``add_many`` of the already built deals; the bar of issue 19: under 4x its time.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import persist
from benchmarks._timing import best_times
from salespipeline import Tracker, log, presets
from salespipeline.cli import main as cli
from salespipeline.deal import Bant, Deal
from salespipeline.storage import SQLiteStore, _codec
from salespipeline.storage.sql import _figures
from salespipeline.storage.sql._store import SQLStore

ADD_MANY = "store.add_many"
REFERENCE = "hand-written executemany"
IMPORT = "salespipeline import"
STAGES = [stage.name for stage in presets.seven_stage().stages]
CHANGES = 5
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
QUALIFIED = Bant(budget=True, authority=True, need=True, timeline=True)


def deals(n_deals: int) -> list[Deal]:
    """``n_deals`` deals of the seven-stage preset, each opened and moved four stages."""
    pipeline = presets.seven_stage()
    made = []
    for i in range(n_deals):
        at = START + timedelta(seconds=i)
        deal = pipeline.start(f"deal-{i:07d}", amount=i % 9_000, bant=QUALIFIED, at=at)
        for step in range(1, CHANGES):
            deal = pipeline.advance(deal, at=at + timedelta(minutes=step))
        made.append(deal)
    return made


def hand_written(store: SQLStore, batch: Sequence[Deal]) -> None:
    """What an app would write by hand: the same rows, one executemany per table."""
    rows, changes = [], []
    for deal in batch:
        figures = _figures.values(_figures.of_history(deal.history))
        rows.append([*store._row_values(deal), *figures])
        changes += [_codec.log_values(change) for change in log.recorded(deal)]
    with store._write() as cursor:
        cursor.executemany(store.sql.insert_deal, rows)
        cursor.executemany(store.sql.insert_log, changes)


def _emptied(store: SQLStore) -> Callable[[], None]:
    def empty() -> None:
        with store._write() as cursor:
            cursor.execute("DELETE FROM sp_changes")
            cursor.execute("DELETE FROM sp_deals")

    return empty


def measure_store(store: SQLStore, batch: Sequence[Deal], *, rounds: int) -> dict[str, float]:
    """Deals per second of each contender on ``store``, interleaved, best round."""
    empty = _emptied(store)
    contenders: dict[str, tuple[Callable[[], Any], Callable[[Any], Any]]] = {
        ADD_MANY: (empty, lambda _: store.add_many(batch)),
        REFERENCE: (empty, lambda _: hand_written(store, batch)),
    }
    seconds = best_times(contenders, rounds=rounds)
    assert store.count() == len(batch) and len(store.changes(batch[-1].id)) == CHANGES
    return {name: len(batch) / s for name, s in seconds.items()}


def measure(backend: persist.Backend, *, n_deals: int, rounds: int) -> dict[str, float]:
    """``measure_store`` on a fresh database of ``backend``."""
    batch = deals(n_deals)
    with backend.store(backend.fresh()) as store:
        assert isinstance(store, SQLStore)
        return measure_store(store, batch, rounds=rounds)


def export(batch: Sequence[Deal], path: Path) -> Path:
    """The deals as another CRM would export them: one row each, a column per stage time."""
    entered = [f"entered.{stage}" for stage in STAGES[1:CHANGES]]
    bant = [f"bant.{criterion}" for criterion in ("budget", "authority", "need", "timeline")]
    text = io.StringIO()
    rows = csv.writer(text, lineterminator="\n")
    rows.writerow(["id", "stage", "amount", *bant, "created_at", *entered])
    for deal in batch:
        times = [entry.at.isoformat() for entry in deal.history]
        rows.writerow([deal.id, deal.stage, f"{deal.amount:,}", *["yes"] * 4, *times])
    path.write_text(text.getvalue(), encoding="utf-8")
    return path


def _recorded(path: str) -> str:
    """A fresh SQLite file that records the seven-stage pipeline."""
    with SQLiteStore(path) as store:
        Tracker(store, presets.seven_stage())
    return path


def _imported(path: str, source: Path) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        status = cli(["import", "--db", path, "--pipeline", "seven_stage", str(source)])
    assert status == 0, status


def measure_import(directory: Path, *, n_deals: int, rounds: int) -> dict[str, float]:
    """Seconds for ``salespipeline import`` of an ``n_deals``-row CSV and for ``add_many``
    of the same deals, each into a fresh SQLite file, best of ``rounds``."""
    backend = persist.sqlite_backend(directory)
    batch = deals(n_deals)
    source = export(batch, directory / "export.csv")

    def opened() -> SQLStore:
        store = backend.store(_recorded(backend.fresh()))
        assert isinstance(store, SQLStore)
        return store

    contenders: dict[str, tuple[Callable[[], Any], Callable[[Any], Any]]] = {
        IMPORT: (lambda: _recorded(backend.fresh()), lambda path: _imported(path, source)),
        ADD_MANY: (opened, lambda store: store.add_many(batch)),
    }
    return best_times(contenders, rounds=rounds)


def run(n_deals: int, *, rounds: int) -> Iterator[tuple[str, dict[str, float] | str]]:
    """Each backend's name and rates (or why it was skipped)."""
    with persist.backends() as backends:
        for backend in backends:
            if isinstance(backend, str):
                yield "PostgreSQL", backend
            else:
                yield backend.name, measure(backend, n_deals=n_deals, rounds=rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=100_000, help="deals per call")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds (best counts)")
    args = parser.parse_args(argv)
    print(f"{args.deals:,} deals, {CHANGES} changes each")
    print("| backend | add_many | hand-written | ratio (bar 0.8, goal 1.0) |")
    print("|---|---|---|---|")
    for name, rates in run(args.deals, rounds=args.rounds):
        if isinstance(rates, str):
            print(f"| {name} | {rates} | | |")
            continue
        ratio = rates[ADD_MANY] / rates[REFERENCE]
        print(f"| {name} | {rates[ADD_MANY]:,.0f}/s | {rates[REFERENCE]:,.0f}/s | {ratio:.2f}x |")
    with tempfile.TemporaryDirectory() as folder:
        seconds = measure_import(Path(folder), n_deals=args.deals, rounds=args.rounds)
    ratio = seconds[IMPORT] / seconds[ADD_MANY]
    print(
        f"\n{IMPORT}: {seconds[IMPORT]:.2f} s, add_many: {seconds[ADD_MANY]:.2f} s, "
        f"{ratio:.2f}x (bar: under 4x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
