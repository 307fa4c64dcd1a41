"""``DealStore.report`` pushed down into SQL, for SQLite and PostgreSQL (private).

One statement (so one consistent snapshot) aggregates the deals and their
history into integer counts, exact amount sums and integer microseconds; the rows
become the same ``Aggregates`` the pure path builds, and the shared ``finish``
takes every ratio. Durations and amounts are summed in split parts (seconds and
remaining microseconds, 10**9 and unit parts) so no 64-bit sum can overflow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any, Final

from salespipeline import _checks as c
from salespipeline._report import EPOCH, EXACT, STALLED_SHOWN, PipelineReport, Tallies, finish
from salespipeline._report import micros as _micros
from salespipeline.errors import CorruptRecordError
from salespipeline.pipeline import Pipeline
from salespipeline.stages import LOST, WON

__all__ = ["Query", "sql_report"]

Row = Sequence[Any]
Query = Callable[[str, Sequence[object]], Sequence[Row]]
"""Runs one parameterised statement and returns all its rows (the store maps errors)."""

DIALECTS: Final = ("sqlite", "postgres")

_INT, _TEXT = "CAST(NULL AS BIGINT)", "CAST(NULL AS TEXT)"
_REAL, _NUM = "CAST(NULL AS DOUBLE PRECISION)", "CAST(NULL AS NUMERIC)"

# Every part yields: kind, t1, t2, i1, i2, i3, p, n, s1, s2, s3, s4, s5, s6, amount.
_DEALS: Final = f"""
SELECT 'd', d.stage, d.currency, {_INT}, {_INT}, {_INT}, d.probability, COUNT(*),
       {{amount_parts}},
       SUM((d.closed_at_us - d.created_at_us) / 1000000),
       SUM((d.closed_at_us - d.created_at_us) {{mod}} 1000000),
       {{amount_sum}}
FROM sp_deals d WHERE d.pipeline = {{ph}}
GROUP BY d.stage, d.currency, d.probability"""

_HISTORY: Final = f"""
SELECT 'h', {_TEXT}, {_TEXT}, h.idx, h.last_reach, h.is_lost, {_REAL}, COUNT(*),
       COUNT(h.stay_us), SUM(h.stay_us / 1000000), SUM(h.stay_us {{mod}} 1000000),
       {_INT}, {_INT}, {_INT}, {_NUM}
FROM (
    SELECT s.idx AS idx, s.left_us - s.at_us AS stay_us, s.is_lost AS is_lost,
           CASE WHEN s.left_us IS NULL THEN s.reach END AS last_reach
    FROM (
        SELECT st.idx AS idx, c.at_us AS at_us,
               LEAD(c.at_us) OVER w AS left_us,
               MAX(CASE WHEN st.idx <= {{ph}} THEN st.idx END) OVER w AS reach,
               CASE WHEN d.stage = 'lost' THEN 1 ELSE 0 END AS is_lost
        FROM sp_deals d
        JOIN sp_stage_changes c ON c.deal_id = d.id AND c.version <= d.version
        LEFT JOIN st ON st.name = c.to_stage
        WHERE d.pipeline = {{ph}}
        WINDOW w AS (PARTITION BY c.deal_id ORDER BY c.version)
    ) s
) h
GROUP BY h.idx, h.last_reach, h.is_lost"""

_STALLED_WHERE: Final = """
FROM sp_deals d JOIN st ON st.name = d.stage
WHERE d.pipeline = {ph} AND st.rot_us IS NOT NULL
  AND {ph} - d.stage_entered_at_us > st.rot_us"""

_STALLED: Final = f"""
SELECT 's', {_TEXT}, {_TEXT}, st.idx, {_INT}, {_INT}, {_REAL}, COUNT(*),
       {_INT}, {_INT}, {_INT}, {_INT}, {_INT}, {_INT}, {_NUM}
{_STALLED_WHERE}
GROUP BY st.idx"""

_OLDEST: Final = f"""
SELECT * FROM (
    SELECT 'i', d.id, {_TEXT}, d.stage_entered_at_us, {_INT}, {_INT}, {_REAL}, 1,
           {_INT}, {_INT}, {_INT}, {_INT}, {_INT}, {_INT}, {_NUM}
    {_STALLED_WHERE}
    ORDER BY d.stage_entered_at_us, d.id
    LIMIT {{ph}}
) oldest"""

_SQLITE_AMOUNTS: Final = (
    "SUM(d.amount_whole / 1000000000), SUM(d.amount_whole % 1000000000), "
    "SUM(d.amount_frac / 1000000), SUM(d.amount_frac % 1000000)"
)
_POSTGRES_AMOUNTS: Final = f"{_INT}, {_INT}, {_INT}, {_INT}"


def _statement(dialect: str, stage_count: int) -> str:
    ph = "?" if dialect == "sqlite" else "%s"
    row = f"(CAST({ph} AS TEXT), CAST({ph} AS INTEGER), CAST({ph} AS BIGINT))"
    parts = {
        "ph": ph,
        "mod": "%" if dialect == "sqlite" else "%%",
        "amount_parts": _SQLITE_AMOUNTS if dialect == "sqlite" else _POSTGRES_AMOUNTS,
        "amount_sum": _NUM if dialect == "sqlite" else "SUM(d.amount)",
    }
    body = "\nUNION ALL".join(
        part.format(**parts) for part in (_DEALS, _HISTORY, _STALLED, _OLDEST)
    )
    values = ", ".join([row] * stage_count)
    return f"WITH st(name, idx, rot_us) AS (VALUES {values})\n{body}"


def _parameters(pipeline: Pipeline, now_us: int) -> list[object]:
    n, name = len(pipeline.stages), pipeline.name
    params: list[object] = []
    for i, stage_name in enumerate(pipeline.stage_names):
        rot = pipeline.stages[i].rot_after if i < n else None
        params += [stage_name, i, None if rot is None else _micros(rot)]
    params += [name]  # deals
    params += [n, name]  # history
    params += [name, now_us]  # stalled
    params += [name, now_us, STALLED_SHOWN]  # oldest
    return params


def _int(value: object) -> int:
    return 0 if value is None else int(value)  # type: ignore[call-overload]


class _UnknownStage(Exception):
    """A stored deal is in a stage its pipeline does not have."""


_FIRST_IN_STAGE: Final = "SELECT MIN(id) FROM sp_deals WHERE pipeline = {ph} AND stage = {ph}"


class _Collector:
    """Turns the statement's rows into the ``Tallies`` the pure path would fill."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.names = pipeline.stage_names
        self.n = len(pipeline.stages)
        self.tallies = Tallies(pipeline)

    def row(self, row: Row) -> None:
        kind, t = row[0], self.tallies
        if kind == "d":
            self._deals(row)
        elif kind == "h":
            self._history(row)
        elif kind == "s":
            t.stalled[_int(row[3])] += _int(row[7])
        else:
            t.add_oldest(_int(row[3]), str(row[1]))

    def _deals(self, row: Row) -> None:
        stage, probability, t = str(row[1]), row[6], self.tallies
        if stage not in self.names:
            raise _UnknownStage(stage)
        index, amount = self.names.index(stage), _amount(row)
        t.counts[index] += _int(row[7])
        t.currencies.add(str(row[2]))
        if stage == WON:
            t.won_amount += amount
            t.cycle_us += _int(row[12]) * 10**6 + _int(row[13])
        elif stage == LOST:
            t.lost_amount += amount
        elif probability is None:
            t.open_amount[index] += amount
        else:
            t.add_override(float(probability), amount)

    def _history(self, row: Row) -> None:
        idx, last_reach, is_lost, rows, t = row[3], row[4], row[5], _int(row[7]), self.tallies
        if idx is not None and _int(idx) < self.n:
            t.stays[_int(idx)] += _int(row[8])
            t.stay_us[_int(idx)] += _int(row[9]) * 10**6 + _int(row[10])
        if last_reach is not None:
            t.reach[_int(last_reach)] += rows
            if _int(is_lost) and _int(last_reach) < self.n:
                t.lost_reach[_int(last_reach)] += rows


def _amount(row: Row) -> Decimal:
    """The exact amount sum of a deals row: NUMERIC, or SQLite's split integer sums."""
    if row[14] is not None:
        return Decimal(row[14])
    whole = _int(row[8]) * 10**9 + _int(row[9])
    frac = _int(row[10]) * 10**6 + _int(row[11])
    return Decimal(whole) + Decimal(frac).scaleb(-12)


def sql_report(
    query: Query, pipeline: Pipeline, *, now: datetime | None, dialect: str
) -> PipelineReport:
    """The ``PipelineReport`` of ``pipeline``'s stored deals, aggregated by one SQL statement.

    ``query`` runs the statement on the store's connection; the result equals
    ``metrics.report`` over the same deals.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"no SQL report for dialect {dialect!r}")
    as_of = c.to_utc(pipeline.clock() if now is None else now, "now")
    statement = _statement(dialect, len(pipeline.stage_names))
    rows = query(statement, _parameters(pipeline, _micros(as_of - EPOCH)))
    collector = _Collector(pipeline)
    try:
        with localcontext(EXACT):
            for row in rows:
                collector.row(row)
    except _UnknownStage as unknown:
        raise _corrupt(query, pipeline, dialect, str(unknown)) from None
    return finish(collector.tallies.result(), pipeline, as_of=as_of)


def _corrupt(query: Query, pipeline: Pipeline, dialect: str, stage: str) -> Exception:
    statement = _FIRST_IN_STAGE.format(ph="?" if dialect == "sqlite" else "%s")
    rows = query(statement, [pipeline.name, stage])
    deal_id = str(rows[0][0]) if rows else "?"
    reason = f"stage {stage!r} is not a stage of pipeline {pipeline.name!r}"
    return CorruptRecordError(deal_id, reason)
