"""``DealStore.report`` pushed down into SQL, for SQLite and PostgreSQL (private).

The report reads ``sp_deals`` only: each row carries the figures a report needs
from its history (``storage._figures``: the stages it entered, its completed stays
per stage), written with the row by every save. One pass groups the pipeline's deals
by stage, currency, probability override and stages entered, into integer counts,
exact amount sums and integer microseconds; two small queries add the rare extra
stays and the longest-stalled ids. All three run in one read transaction (one
snapshot). The rows become the same ``Tallies`` the pure path fills, and the shared
``finish`` takes every ratio. Durations and amounts are summed in split parts
(seconds and remaining microseconds, 10**9 and unit parts) so no 64-bit sum overflows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any, Final

from salespipeline import _checks as c
from salespipeline.errors import CorruptRecordError
from salespipeline.metrics._report import (
    EPOCH,
    EXACT,
    STALLED_SHOWN,
    PipelineReport,
    Tallies,
    finish,
)
from salespipeline.metrics._report import micros as _micros
from salespipeline.pipeline import Pipeline
from salespipeline.stages import LOST, WON
from salespipeline.storage.sql import _figures
from salespipeline.storage.sql._figures import SLOTS

__all__ = ["Query", "sql_report"]

Row = Sequence[Any]
Statement = tuple[str, Sequence[object]]
Query = Callable[[Sequence[Statement]], list[list[Row]]]
"""Runs parameterised statements in one read transaction, returning each one's rows."""

DIALECTS: Final = ("sqlite", "postgres")

_FIRST_IN_STAGE: Final = "SELECT MIN(id) FROM sp_deals WHERE pipeline = ? AND stage = ?"

# Columns of a deals row: the group key, then the sums.
_STAGE, _CURRENCY, _PROBABILITY, _ENTERED, _COUNT = range(5)
_CYCLE, _STALLED, _AMOUNT, _NUMERIC, _STAYS = 5, 7, 8, 12, 13


class _Statements:
    """The report's three statements, each value bound where it is used."""

    def __init__(self, dialect: str, pipeline: Pipeline, now_us: int) -> None:
        self.sqlite = dialect == "sqlite"
        self.mark = "?" if self.sqlite else "%s"
        self.mod = "%" if self.sqlite else "%%"
        self.pipeline = pipeline
        self.now_us = now_us

    def split(self, expression: str, unit: int) -> str:
        """Two sums whose ``sum1 * unit + sum2`` is the exact, overflow-free total."""
        return f"SUM(({expression}) / {unit}), SUM(({expression}) {self.mod} {unit})"

    def stalled(self, params: list[object]) -> str:
        """True when the deal has been in its stage longer than the stage's ``rot_after``."""
        rot = [
            (s.name, _micros(s.rot_after)) for s in self.pipeline.stages if s.rot_after is not None
        ]
        if not rot:
            return "1 = 0"
        params.append(self.now_us)
        arms = []
        for name, micros in rot:
            params.extend((name, micros))
            arms.append(f"WHEN {self.mark} THEN CAST({self.mark} AS BIGINT)")
        return (
            f"CAST({self.mark} AS BIGINT) - d.stage_entered_at_us > "
            f"CASE d.stage {' '.join(arms)} END"
        )

    def deals(self) -> Statement:
        """The pipeline's deals grouped: counts, amount and duration sums, stays per slot.

        On SQLite ``+`` keeps the planner off the pipeline index: reading the whole
        table in order is faster than looking up most of its rows one by one.
        """
        params: list[object] = []
        stalled = self.stalled(params)
        if self.sqlite:
            amounts = f"{self.split('d.amount_whole', 10**9)}, "
            amounts += f"{self.split('d.amount_frac', 10**6)}, NULL"
        else:
            amounts = "NULL, NULL, NULL, NULL, SUM(d.amount)"
        stays = ", ".join(
            f"SUM(d.stays_{j}), {self.split(f'd.stay_us_{j}', 10**6)}" for j in range(1, SLOTS + 1)
        )
        params.append(self.pipeline.name)
        where = "+d.pipeline" if self.sqlite else "d.pipeline"
        key = "d.stage, d.currency, d.probability, d.entered_stages"
        sql = (
            f"SELECT {key}, COUNT(*), {self.split('d.closed_at_us - d.created_at_us', 10**6)}, "
            f"SUM(CASE WHEN {stalled} THEN 1 ELSE 0 END), {amounts}, {stays} "
            f"FROM sp_deals d WHERE {where} = {self.mark} GROUP BY {key}"
        )
        return sql, params

    def more(self) -> Statement:
        """The extra stays of deals that entered more open stages than there are slots."""
        sql = (
            "SELECT d.stays_more FROM sp_deals d "
            f"WHERE d.pipeline = {self.mark} AND d.stays_more IS NOT NULL"
        )
        return sql, [self.pipeline.name]

    def oldest(self) -> Statement:
        """The ids of the deals stalled longest (first in, then by id)."""
        params: list[object] = [self.pipeline.name]
        stalled = self.stalled(params)
        params.append(STALLED_SHOWN)
        sql = (
            f"SELECT d.id, d.stage_entered_at_us FROM sp_deals d "
            f"WHERE d.pipeline = {self.mark} AND {stalled} "
            f"ORDER BY d.stage_entered_at_us, d.id LIMIT {self.mark}"
        )
        return sql, params


def _int(value: object) -> int:
    """An integer column or sum (PostgreSQL sums are NUMERIC); ValueError for anything else.

    SQLite sums a stray REAL into a REAL, so junk written into an integer column
    shows up here instead of being rounded into the report.
    """
    if value is None:
        return 0
    if type(value) is int:
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    raise ValueError(f"expected an integer, found {value!r}")


def _split(row: Row, at: int, unit: int) -> int:
    return _int(row[at]) * unit + _int(row[at + 1])


class _UnknownStage(Exception):
    """A stored deal is in a stage its pipeline does not have."""


class _Collector:
    """Turns the statements' rows into the ``Tallies`` the pure path would fill."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.names = pipeline.stage_names
        self.n = len(pipeline.stages)
        self.index = {name: i for i, name in enumerate(self.names)}
        self.tallies = Tallies(pipeline)
        self.entered: dict[object, tuple[int, tuple[int | None, ...]]] = {}

    def _entered(self, text: object) -> tuple[int, tuple[int | None, ...]]:
        """A stored set of entered stages as (furthest index reached or -1, slot indices).

        The furthest stage counts open stages and WON, like the pure path; a slot's
        index is its stage's open index, None when the pipeline has no such open stage.
        """
        known = self.entered.get(text)
        if known is not None:
            return known
        entered = _figures.read_entered(text)
        reached = [self.index.get(s, -1) for s in entered]
        reach = max((i for i in reached if i <= self.n), default=-1)
        slots = tuple(self._open(s) for s in _figures.open_stages(entered)[:SLOTS])
        self.entered[text] = reach, slots
        return reach, slots

    def _open(self, stage: str) -> int | None:
        index = self.index.get(stage)
        return index if index is not None and index < self.n else None

    def deals(self, row: Row) -> None:
        stage, count, t = str(row[_STAGE]), _int(row[_COUNT]), self.tallies
        index = self.index.get(stage)
        if index is None:
            raise _UnknownStage(stage)
        reach, slots = self._entered(row[_ENTERED])
        t.counts[index] += count
        t.currencies.add(str(row[_CURRENCY]))
        if reach >= 0:
            t.reach[reach] += count
            if stage == LOST and reach < self.n:
                t.lost_reach[reach] += count
        for j, open_index in enumerate(slots):
            if open_index is not None:
                t.stays[open_index] += _int(row[_STAYS + 3 * j])
                t.stay_us[open_index] += _split(row, _STAYS + 3 * j + 1, 10**6)
        amount = _amount(row)
        if stage == WON:
            t.won_amount += amount
            t.cycle_us += _split(row, _CYCLE, 10**6)
        elif stage == LOST:
            t.lost_amount += amount
        else:
            t.stalled[index] += _int(row[_STALLED])
            probability = row[_PROBABILITY]
            if probability is None:
                t.open_amount[index] += amount
            else:
                t.add_override(float(probability), amount)

    def more(self, row: Row) -> None:
        for stage, (stays, micros) in _figures.read_stays_more(row[0]).items():
            open_index = self._open(stage)
            if open_index is not None:
                self.tallies.stays[open_index] += stays
                self.tallies.stay_us[open_index] += micros

    def oldest(self, row: Row) -> None:
        self.tallies.add_oldest(_int(row[1]), str(row[0]))


def _amount(row: Row) -> Decimal:
    """The exact amount sum of a deals row: NUMERIC, or SQLite's split integer sums."""
    if row[_NUMERIC] is not None:
        return Decimal(row[_NUMERIC])
    whole = _split(row, _AMOUNT, 10**9)
    frac = _split(row, _AMOUNT + 2, 10**6)
    return Decimal(whole) + Decimal(frac).scaleb(-12)


def sql_report(
    query: Query, pipeline: Pipeline, *, now: datetime | None, dialect: str
) -> PipelineReport:
    """The ``PipelineReport`` of ``pipeline``'s stored deals, aggregated in SQL.

    ``query`` runs the statements on the store's connection; the result equals
    ``metrics.report`` over the same deals.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"no SQL report for dialect {dialect!r}")
    as_of = c.to_utc(pipeline.clock() if now is None else now, "now")
    statements = _Statements(dialect, pipeline, _micros(as_of - EPOCH))
    deals, more, oldest = query([statements.deals(), statements.more(), statements.oldest()])
    collector = _Collector(pipeline)
    try:
        with localcontext(EXACT):
            for row in deals:
                collector.deals(row)
    except _UnknownStage as unknown:
        raise _corrupt(query, pipeline, dialect, str(unknown)) from None
    for row in more:
        collector.more(row)
    for row in oldest:
        collector.oldest(row)
    return finish(collector.tallies.result(), pipeline, as_of=as_of)


def _corrupt(query: Query, pipeline: Pipeline, dialect: str, stage: str) -> Exception:
    statement = _FIRST_IN_STAGE if dialect == "sqlite" else _FIRST_IN_STAGE.replace("?", "%s")
    [rows] = query([(statement, [pipeline.name, stage])])
    deal_id = str(rows[0][0]) if rows else "?"
    reason = f"stage {stage!r} is not a stage of pipeline {pipeline.name!r}"
    return CorruptRecordError(deal_id, reason)
