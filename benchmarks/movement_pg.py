"""The log's questions on PostgreSQL: the report now and as of a month back, and the
quarter's movement, each in SQL against the pure path over the same data.

    python benchmarks/report_1m.py --deals 50000 --log --db log.sqlite   # make the log
    python benchmarks/movement_pg.py --db log.sqlite                     # then this

Copies every table of a SQLite file that ``report_1m.py --log`` wrote through the store
(deals, their derived columns and the change log, row for row) into a fresh schema on
a throw-away PostgreSQL server (``tests/_postgres.py``), then times each question
both ways (``report_1m.log_contenders``: best of ``--rounds``) with each one's peak
traced Python heap in a separate run. Both must be equal.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import persist, report_1m
from salespipeline import presets
from salespipeline.storage import PostgresStore

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="a report_1m.py --log file")
    parser.add_argument("--rounds", type=int, default=1, help="timing rounds (best counts)")
    parser.add_argument(
        "--sql-heap-only", action="store_true", help="trace the SQL paths' heap only"
    )
    args = parser.parse_args(argv)
    pipeline = presets.seven_stage()
    with persist.postgres_backend() as backend:
        if isinstance(backend, str):
            print(backend)
            return 0
        conninfo = backend.fresh()
        copied(args.db, conninfo)
        with PostgresStore(conninfo) as store:
            results = report_1m.measure_store(
                store, pipeline, rounds=args.rounds, trace_pure=not args.sql_heap_only
            )
    sizes = report_1m._sizes(args.db)
    print("\n".join(report_1m.log_table(sizes, results, None, where="PostgreSQL")))
    equal = all(sql.report == pure.report for sql, pure in (p.values() for p in results.values()))
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
