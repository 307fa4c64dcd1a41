"""``store.movement`` on a SQL store: only the changes the waterfall needs, streamed (private).

A deal can be in a pipeline's waterfall only if it is in the pipeline now or was ever
migrated (``pipeline`` changes only by migration), and only its changes before the
window's end count. Rows come deal by deal (``deal_id``, ``version``) in batches, so
Python holds one deal's changes at a time; the shared ``Waterfall`` sorts them.
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
from salespipeline.storage import _codec

__all__ = ["sql_movement"]

BATCH: Final = 1000
_DEAL: Final = _codec.LOG_COLUMNS.index("deal_id")


class _Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> object: ...

    def fetchmany(self, size: int = ..., /) -> list[Any]: ...


def statement(placeholder: str) -> str:
    """The changes before an instant of the deals a pipeline's waterfall may hold."""
    columns = ", ".join(f"c.{name}" for name in _codec.LOG_COLUMNS)
    p = placeholder
    return (
        f"SELECT {columns} FROM sp_changes c WHERE c.at_us < {p} AND c.deal_id IN "
        f"(SELECT id FROM sp_deals WHERE pipeline = {p} "
        "UNION SELECT deal_id FROM sp_changes WHERE kind = 'migrate') "
        "ORDER BY c.deal_id, c.version"
    )


def sql_movement(
    read: Callable[[], AbstractContextManager[Any]],
    placeholder: str,
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
    with read() as cursor:
        cursor.execute(statement(placeholder), (to_us(window.end), pipeline.name))
        for changes in _per_deal(cursor):
            waterfall.add(changes)
    return waterfall.result()


def _per_deal(cursor: _Cursor) -> Iterator[list[Change]]:
    """Each deal's changes, decoded one deal at a time from batches of rows."""
    rows = itertools.chain.from_iterable(iter(lambda: cursor.fetchmany(BATCH), []))
    for _, group in itertools.groupby(rows, key=lambda row: row[_DEAL]):
        yield [_codec.decode_change(row) for row in group]
