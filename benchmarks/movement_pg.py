"""Movement on PostgreSQL: ``store.movement`` (SQL) against ``metrics.movement`` over the log.

    python benchmarks/report_1m.py --deals 50000 --log --db log.sqlite   # make the log
    python benchmarks/movement_pg.py --db log.sqlite                     # then this

Copies every table of a SQLite file that ``report_1m.py --log`` wrote through the store
(deals, their derived columns and the change log, row for row) into a fresh schema on
a throw-away PostgreSQL server (``tests/_postgres.py``), then times the quarter's
movement both ways (best of ``--rounds``) with each one's peak traced Python heap in
a separate run. Both must be equal.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import persist
from benchmarks.report_1m import QUARTER, _peak, _timed
from salespipeline import metrics, presets
from salespipeline.log import Change
from salespipeline.storage import DealStore, PostgresStore

TABLES = ("sp_pipelines", "sp_deals", "sp_changes")


def copied(source: Path, conninfo: str) -> None:
    """Every row of ``TABLES`` in ``source``, written into the schema at ``conninfo``."""
    import psycopg

    PostgresStore(conninfo).close()  # makes the schema
    lite = sqlite3.connect(source)
    with psycopg.connect(conninfo, autocommit=True) as pg:
        for table in TABLES:
            names = [
                row[0]
                for row in pg.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = %s AND table_schema = current_schema() "
                    "ORDER BY ordinal_position",
                    (table,),
                )
            ]
            columns = ", ".join(names)
            with pg.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in lite.execute(f"SELECT {columns} FROM {table}"):
                    copy.write_row(row)
        pg.execute("ANALYZE")
    lite.close()


def whole_log(store: DealStore) -> Iterator[Change]:
    """The store's log, page by page."""
    after = 0
    while page := store.log(after=after, limit=10_000):
        yield from page
        after = page[-1].position or after


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="a report_1m.py --log file")
    parser.add_argument("--rounds", type=int, default=1, help="timing rounds (best counts)")
    args = parser.parse_args(argv)
    pipeline, (start, end) = presets.seven_stage(), QUARTER
    with persist.postgres_backend() as backend:
        if isinstance(backend, str):
            print(backend)
            return 0
        conninfo = backend.fresh()
        copied(args.db, conninfo)
        with PostgresStore(conninfo) as store:
            paths = {
                "store.movement (SQL)": lambda: store.movement(pipeline, start=start, end=end),
                "metrics.movement(log)": lambda: metrics.movement(
                    whole_log(store), pipeline, start=start, end=end
                ),
            }
            measured = {
                name: (*_timed(run, args.rounds), _peak(run)) for name, run in paths.items()
            }
    sql_seconds, sql = measured["store.movement (SQL)"][:2]
    pure = measured["metrics.movement(log)"][1]
    equal = "yes" if sql == pure else "NO"
    print("| path | time | peak Python heap | pure / SQL (time) | equal |")
    print("|---|---|---|---|---|")
    for name, (seconds, _, peak) in measured.items():
        ratio = seconds / sql_seconds
        print(f"| {name} | {seconds:.2f} s | {peak / 2**20:.2f} MiB | {ratio:.1f}x | {equal} |")
    return 0 if sql == pure else 1


if __name__ == "__main__":
    sys.exit(main())
