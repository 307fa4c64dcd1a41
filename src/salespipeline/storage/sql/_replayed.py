"""The deals a report of the past cannot read from their rows, rebuilt from the log (private).

A deal whose row was last changed at or before ``as_of`` stands today as it stood
then, so the report aggregates its row in SQL. One opened by ``as_of`` and changed
since is rebuilt from its own changes up to ``as_of`` (``log.replay``), a batch of
deals at a time (memory stays flat in the number of deals). A deal may have been
migrated out of the pipeline since, so those with a later ``migrate`` change are
read too; the caller keeps the ones in its pipeline then. The reads are steps of the
report's one read transaction (``sql._plan``): they do no I/O themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Final

from salespipeline import log
from salespipeline.deal import Deal
from salespipeline.metrics._time import to_us
from salespipeline.storage import _codec
from salespipeline.storage.sql._dialect import Dialect, Row
from salespipeline.storage.sql._plan import Statement, Steps

__all__ = ["BATCH", "changed_since", "named"]

BATCH: Final = 500
"""Deals rebuilt per round trip."""

_IDS: Final = (
    "SELECT d.id AS id, d.updated_at_us AS updated_us FROM sp_deals d "
    "WHERE d.updated_at_us > CAST(? AS BIGINT) "
    "AND (d.updated_at_us, d.id) > (CAST(? AS BIGINT), ?) "
    "AND d.created_at_us <= CAST(? AS BIGINT) "
    "AND (d.pipeline = ? OR EXISTS (SELECT 1 FROM sp_changes m "
    "WHERE m.deal_id = d.id AND m.kind = 'migrate' AND m.at_us > CAST(? AS BIGINT))) "
    "ORDER BY d.updated_at_us, d.id LIMIT ?"
)
"""A page of the deals opened by ``as_of`` and changed since, in ``(updated_at_us, id)``
order: read from that index, so a report of today (nothing changed since) reads
nothing."""
_COLUMNS: Final = ", ".join(f"c.{name} AS {name}" for name in _codec.LOG_COLUMNS)


def named(dialect: Dialect, sql: str, params: Sequence[object]) -> Statement:
    """A statement of the report's (``?`` placeholders) whose rows it reads by column name."""
    return Statement(dialect.q(sql), params, "named")


def _changes(dialect: Dialect, ids: Sequence[str], as_of_us: int) -> Statement:
    """The changes of ``ids`` up to ``as_of_us`` that belong to their deals, in version order."""
    marks = ", ".join(["?"] * len(ids))
    sql = (
        f"SELECT {_COLUMNS} FROM sp_changes c JOIN sp_deals d ON d.id = c.deal_id "
        f"WHERE c.deal_id IN ({marks}) AND c.at_us <= CAST(? AS BIGINT) "
        "AND c.version <= d.version ORDER BY c.deal_id, c.version"
    )
    return named(dialect, sql, [*ids, as_of_us])


def _decoded(row: Row) -> log.Change:
    return _codec.decode_change([row[name] for name in _codec.LOG_COLUMNS])


def changed_since(
    dialect: Dialect, pipeline: str, as_of: datetime, take: Callable[[Iterable[Deal]], None]
) -> Steps[None]:
    """The steps that hand ``take`` the deals opened by ``as_of`` and changed since, as
    they stood at ``as_of``, a batch at a time: those now in ``pipeline``, and any
    migrated since (their pipeline then may be another)."""
    as_of_us = to_us(as_of)
    after: tuple[object, str] = (as_of_us, "")
    while True:
        params = [as_of_us, *after, as_of_us, pipeline, as_of_us, BATCH]
        page: list[Row] = yield named(dialect, _IDS, params)
        if not page:
            return
        ids = [str(row["id"]) for row in page]
        rows: list[Row] = yield _changes(dialect, ids, as_of_us)
        take(log.replay(map(_decoded, rows), until=as_of).values())
        if len(ids) < BATCH:
            return
        after = (page[-1]["updated_us"], ids[-1])
