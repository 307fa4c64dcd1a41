"""Keyset pages: ``store.find(owner=..., limit=50)`` against a full scan of the table.

    python benchmarks/find_page.py                  # 1,000,000 deals (several minutes)
    python benchmarks/find_page.py --deals 2000     # the smoke size (seconds)

Fills a SQLite file and a PostgreSQL schema (when a server can be started) with
``--deals`` open deals spread over ``OWNERS`` owners, bulk-written in the store's own
row format, then times in one interleaved run: the first page of one owner, the page
``DEPTH`` pages deep (``after`` = the last id of the page before), and the full scan
an unindexed owner filter costs (every row read, the owner compared in SQL). The bars
of issue 19: the first page at most 1/100 of the scan, the deep page at most 1.5x
the first.

A page takes about a millisecond, so each round times ``CALLS`` of them in a row and
counts the mean (as ``timeit`` does: one such call is mostly timer and scheduler
noise); the scan, a hundred times longer, is timed once a round. The first call of
a page after the scan, which has just pushed the page's rows out of the caches, is
timed on its own too (``COLD``) and reported beside it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import persist
from benchmarks._timing import best_times
from salespipeline import log, presets
from salespipeline.storage import _codec
from salespipeline.storage.sql import _figures
from salespipeline.storage.sql._store import SQLStore

PAGE = 50
DEPTH = 50
OWNERS = 100
BATCH = 5_000
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
OWNER = "owner-007"
CALLS = 20

FIRST = "find(owner=..., limit=50), first page"
DEEP = f"find(owner=..., limit=50), page {DEPTH}"
SCAN = "full scan (owner unindexed)"
COLD = "find(owner=..., limit=50), first page, first call after the scan"


@attrs.frozen
class Result:
    """Best seconds per contender on one backend, and the page depth reached."""

    backend: str
    seconds: dict[str, float]
    depth: int

    @property
    def first_vs_scan(self) -> float:
        return self.seconds[FIRST] / self.seconds[SCAN]

    @property
    def deep_vs_first(self) -> float:
        return self.seconds[DEEP] / self.seconds[FIRST]


def _rows(store: SQLStore, start: int, stop: int) -> tuple[list[Any], list[Any]]:
    """Deal rows and change rows for deals ``start``..``stop``, as ``store.add`` writes them."""
    pipeline = presets.seven_stage()
    deals, changes = [], []
    for i in range(start, stop):
        at = START + timedelta(seconds=i)
        deal = pipeline.start(f"deal-{i:07d}", owner=f"owner-{i * 7919 % OWNERS:03d}", at=at)
        figures = _figures.values(_figures.of_history(deal.history))
        deals.append([*store._row_values(deal), *figures])
        changes += [_codec.log_values(change) for change in log.recorded(deal)]
    return deals, changes


def fill(store: SQLStore, n_deals: int) -> None:
    """Write ``n_deals`` deals in batches, one transaction each, then refresh statistics."""
    store.save_pipeline(presets.seven_stage())
    for start in range(0, n_deals, BATCH):
        deals, changes = _rows(store, start, min(start + BATCH, n_deals))
        with store._write() as cursor:
            cursor.executemany(store.sql.insert_deal, deals)
            cursor.executemany(store.sql.insert_log, changes)
    with store._statement() as cursor:
        cursor.execute("ANALYZE")


def _deep_cursor(store: SQLStore) -> tuple[str | None, int]:
    """The last id before the page ``DEPTH`` pages deep (fewer when the owner has fewer)."""
    with store._statement() as cursor:
        cursor.execute(store.sql.q("SELECT COUNT(*) FROM sp_deals WHERE owner = ?"), (OWNER,))
        pages = min(DEPTH, max(1, cursor.fetchone()[0] // PAGE))
        if pages == 1:
            return None, 1
        cursor.execute(
            store.sql.q("SELECT id FROM sp_deals WHERE owner = ? ORDER BY id LIMIT 1 OFFSET ?"),
            (OWNER, (pages - 1) * PAGE - 1),
        )
        return str(cursor.fetchone()[0]), pages


def _scan(store: SQLStore) -> list[Any]:
    columns = ", ".join(_codec.DEAL_COLUMNS)
    with store._read() as cursor:
        cursor.execute(
            store.sql.q(f"SELECT {columns} FROM sp_deals WHERE owner || '' = ? ORDER BY id"),
            (OWNER,),
        )
        return cursor.fetchall()


def measure(store: SQLStore, name: str, *, rounds: int) -> Result:
    """The three contenders, interleaved, on a filled ``store``."""
    after, depth = _deep_cursor(store)
    first = list(store.find(owner=OWNER, limit=PAGE))
    deep = list(store.find(owner=OWNER, limit=PAGE, after=after))
    assert len(first) == min(PAGE, len(_scan(store))) and (after is None or deep)
    assert all(d.owner == OWNER for d in first + deep)
    contenders: dict[str, tuple[Callable[[], Any], Callable[[Any], Any]]] = {
        SCAN: (lambda: None, lambda _: _scan(store)),
        COLD: (lambda: None, lambda _: list(store.find(owner=OWNER, limit=PAGE))),
        FIRST: (lambda: None, _calls(lambda: store.find(owner=OWNER, limit=PAGE))),
        DEEP: (lambda: None, _calls(lambda: store.find(owner=OWNER, limit=PAGE, after=after))),
    }
    seconds = best_times(contenders, rounds=rounds)
    seconds[FIRST] /= CALLS
    seconds[DEEP] /= CALLS
    return Result(name, seconds, depth)


def _calls(find: Callable[[], Any]) -> Callable[[Any], None]:
    """``CALLS`` pages read in a row (the timed run of one contender's round)."""

    def run(_: Any) -> None:
        for _call in range(CALLS):
            list(find())

    return run


def run(n_deals: int, *, rounds: int) -> Iterator[Result | str]:
    """One result per backend (a string saying why a backend was skipped)."""
    with persist.backends() as backends:
        for backend in backends:
            if isinstance(backend, str):
                yield f"PostgreSQL {backend}"
                continue
            with backend.store(backend.fresh()) as store:
                assert isinstance(store, SQLStore)
                fill(store, n_deals)
                yield measure(store, backend.name, rounds=rounds)


def table(n_deals: int, results: Sequence[Result | str]) -> Iterator[str]:
    yield f"{n_deals:,} deals, {OWNERS} owners, pages of {PAGE}"
    yield ""
    yield (
        f"| backend | first page (mean of {CALLS}) | deep page | full scan | first / scan "
        "| deep / first | first call after the scan |"
    )
    yield "|---|---|---|---|---|---|---|"
    for r in results:
        if isinstance(r, str):
            yield f"| {r} | | | | | | |"
            continue
        s = r.seconds
        yield (
            f"| {r.backend} | {s[FIRST] * 1e3:.2f} ms | {s[DEEP] * 1e3:.2f} ms (page {r.depth}) "
            f"| {s[SCAN] * 1e3:.1f} ms | {r.first_vs_scan:.4f}x (bar 0.01) "
            f"| {r.deep_vs_first:.2f}x (bar 1.5) | {s[COLD] * 1e3:.2f} ms "
            f"({s[COLD] / s[SCAN]:.4f}x) |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=1_000_000, help="deals to write")
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds (best counts)")
    args = parser.parse_args(argv)
    results = list(run(args.deals, rounds=args.rounds))
    print("\n".join(table(args.deals, results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
