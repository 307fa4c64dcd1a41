"""``store.movement`` on a SQL store: every deal's rows sorted and summed in SQL (private).

A deal no change touched from the window's start on (``updated_at_us < start``) stands
at ``start`` and at ``end`` as its row does now: if its row is open in the pipeline,
it adds one to ``start`` and to ``end`` at its amount and to no other row. Those are
counted and their amounts summed exactly in the database, per currency (``unchanged``).

Every other deal the waterfall may hold (changed since ``start``, and now in the
pipeline or ever migrated, since ``pipeline`` changes only by migration) has its
states rebuilt from its row and its changes and sorted into rows in the database,
per currency (``_moved``). The few that statement leaves out (``_moved.ODD``: a
currency changed since ``start``) are streamed: their changes before the window's
end, deal by deal, so Python holds one deal's changes at a time, and the shared
``Waterfall`` sorts them. The statements run in one read transaction (one snapshot).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Protocol

from salespipeline.log import Change
from salespipeline.metrics._money import to_money
from salespipeline.metrics._movement import Movement, Waterfall, to_window
from salespipeline.metrics._time import to_us
from salespipeline.pipeline import Pipeline
from salespipeline.stages import LOST, WON
from salespipeline.storage import _codec
from salespipeline.storage.sql import _moved
from salespipeline.storage.sql._dialect import Dialect, read_int

__all__ = ["sql_movement", "statement", "unchanged"]

BATCH: Final = 1000
_DEAL: Final = _codec.LOG_COLUMNS.index("deal_id")


class _Cursor(Protocol):
    @property
    def description(self) -> Any: ...

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> object: ...

    def fetchall(self) -> list[Any]: ...

    def fetchmany(self, size: int = ..., /) -> list[Any]: ...


def unchanged(dialect: Dialect) -> str:
    """Per currency, the open deals of a pipeline unchanged since an instant: how many,
    and their amounts' exact sum (``Dialect.amount_sum``); most deals are, so the time
    is compared as ``Dialect.updated_scan`` names it."""
    return dialect.q(
        f"SELECT d.currency AS currency, COUNT(*) AS deals, {dialect.amount_sum('amount', 'd')} "
        "FROM sp_deals d WHERE d.pipeline = ? AND d.stage NOT IN (?, ?) "
        f"AND {dialect.updated_scan} < CAST(? AS BIGINT) GROUP BY d.currency"
    )


def statement(dialect: Dialect) -> str:
    """The changes before an instant of the deals changed since another that a
    pipeline's waterfall may hold and ``_moved`` leaves out (``_moved.ODD``)."""
    columns = ", ".join(f"c.{name}" for name in _codec.LOG_COLUMNS)
    odd = _moved.odd(_moved.spelling(dialect)).replace(":start", "?")
    return dialect.q(
        f"SELECT {columns} FROM sp_changes c WHERE c.at_us < CAST(? AS BIGINT) AND c.deal_id IN "
        "(SELECT d.id FROM sp_deals d WHERE d.updated_at_us >= CAST(? AS BIGINT) "
        "AND (d.pipeline = ? OR EXISTS (SELECT 1 FROM sp_changes m "
        f"WHERE m.deal_id = d.id AND m.kind = 'migrate')) AND {odd}) "
        "ORDER BY c.deal_id, c.version"
    )


def sql_movement(
    read: Callable[[], AbstractContextManager[Any]],
    dialect: Dialect,
    pipeline: Pipeline,
    *,
    start: datetime,
    end: datetime,
    rates: Mapping[str, Decimal | int] | None,
    currency: str | None,
) -> Movement:
    """The movement ``metrics.movement`` gives over the store's log, from fewer rows.

    Arguments are checked before any query; ``read`` opens a read-only snapshot.
    """
    window = to_window(start, end)
    waterfall = Waterfall(pipeline.name, window, to_money(currency, rates))
    start_us = to_us(window.start)
    with read() as cursor:
        cursor.execute(unchanged(dialect), (pipeline.name, WON, LOST, start_us))
        _add_unchanged(waterfall, cursor, dialect)
        cursor.execute(*_moved.moved(dialect, pipeline.name, window))
        for code, tally in _moved.read_tallies(_named(cursor), dialect):
            waterfall.add_tallied(code, tally)
        params = (to_us(window.end), start_us, pipeline.name, start_us)
        cursor.execute(statement(dialect), params)
        for changes in _per_deal(cursor):
            waterfall.add(changes)
    return waterfall.result()


def _named(cursor: _Cursor) -> list[dict[str, Any]]:
    """The rows of the statement run last, each by column name."""
    names = [column[0] for column in cursor.description or ()]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def _add_unchanged(waterfall: Waterfall, cursor: _Cursor, dialect: Dialect) -> None:
    """Give ``waterfall`` each currency's unchanged open deals, read by column name."""
    for row in _named(cursor):
        waterfall.add_unchanged(
            str(row["currency"]), read_int(row["deals"]), dialect.read_amount(row, "amount")
        )


def _per_deal(cursor: _Cursor) -> Iterator[list[Change]]:
    """Each deal's changes, decoded one deal at a time from batches of rows."""
    rows = itertools.chain.from_iterable(iter(lambda: cursor.fetchmany(BATCH), []))
    for _, group in itertools.groupby(rows, key=lambda row: row[_DEAL]):
        yield [_codec.decode_change(row) for row in group]
