"""``DealStore.report`` pushed down into SQL, for SQLite and PostgreSQL (private).

One statement (so one consistent snapshot) aggregates the deals and their
history into integer counts, exact amount sums and integer microseconds; the rows
become the same ``Aggregates`` the pure path builds, and the shared ``finish``
takes every ratio. Durations and amounts are summed in split parts (seconds and
remaining microseconds, 10**9 and unit parts) so no 64-bit sum can overflow. The
statement avoids window functions and what sorting it can: history is read once
per deal in id order, and once grouped by (from, to) stage pair.
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


class _Statement:
    """Builds the statement and its parameters together, each value bound where it is used.

    Every part yields the columns: kind, text1, text2, probability, key, count,
    ten integer sums, and an exact NUMERIC sum (PostgreSQL amounts).
    """

    def __init__(self, dialect: str, pipeline: Pipeline, now_us: int) -> None:
        self.sqlite = dialect == "sqlite"
        self.mark = "?" if self.sqlite else "%s"
        self.mod = "%" if self.sqlite else "%%"
        self.pipeline = pipeline
        self.now_us = now_us
        self.params: list[object] = []

    def bind(self, value: object, cast: str | None = None) -> str:
        self.params.append(value)
        return self.mark if cast is None else f"CAST({self.mark} AS {cast})"

    def split(self, expression: str, unit: int) -> str:
        """Two sums whose ``sum1 * unit + sum2`` is the exact, overflow-free total."""
        return f"SUM(({expression}) / {unit}), SUM(({expression}) {self.mod} {unit})"

    def rot_case(self) -> str:
        """Each open stage's ``rot_after`` in microseconds, by the deal's stage, else NULL."""
        arms = [
            f"WHEN {self.bind(s.name)} THEN {self.bind(_micros(s.rot_after), 'BIGINT')}"
            for s in self.pipeline.stages
            if s.rot_after is not None
        ]
        return f"CASE d.stage {' '.join(arms)} END" if arms else _INT

    def reach_case(self) -> str:
        """The stage index a history row enters (WON is ``n``); NULL for LOST or unknown."""
        names = [s.name for s in self.pipeline.stages] + [WON]
        arms = " ".join(f"WHEN {self.bind(name)} THEN {i}" for i, name in enumerate(names))
        return f"CASE c.to_stage {arms} END"

    def history(self) -> str:
        """The pipeline's deals joined to their history rows.

        On SQLite the deals are walked in id order (``+`` keeps the planner off the
        pipeline index), so each deal's rows come together and grouping needs no sort.
        """
        if self.sqlite:
            source = "sp_deals d CROSS JOIN sp_stage_changes c ON c.deal_id = d.id WHERE +"
        else:
            source = "sp_deals d JOIN sp_stage_changes c ON c.deal_id = d.id WHERE "
        name = self.bind(self.pipeline.name)
        return f"FROM {source}d.pipeline = {name} AND c.version <= d.version"

    def deals(self) -> str:
        """Per deal (reach over its history), then grouped: counts, sums, stalls."""
        amount = "d.amount_whole AS aw, d.amount_frac AS af" if self.sqlite else "d.amount"
        if self.sqlite:
            amounts = f"{self.split('x.aw', 10**9)}, {self.split('x.af', 10**6)}, {_NUM}"
        else:
            amounts = f"{_INT}, {_INT}, {_INT}, {_INT}, SUM(x.amount)"
        stalled = f"CASE WHEN {self.bind(self.now_us, 'BIGINT')} - d.stage_entered_at_us > "
        stalled += f"{self.rot_case()} THEN 1 ELSE 0 END"
        per_deal = (
            f"SELECT d.stage, d.currency, d.probability, {amount}, "
            "d.closed_at_us - d.created_at_us AS cycle, d.stage_entered_at_us AS entered, "
            f"{stalled} AS stalled, MAX({self.reach_case()}) AS reach "
            f"{self.history()} GROUP BY d.id"
        )
        return (
            "SELECT 'd', x.stage, x.currency, x.probability, x.reach, COUNT(*), "
            f"{self.split('x.cycle', 10**6)}, {self.split('x.entered', 10**6)}, "
            f"SUM(x.stalled), {_INT}, {amounts} "
            f"FROM ({per_deal}) x GROUP BY x.stage, x.currency, x.probability, x.reach"
        )

    def open_index(self, column: str) -> str:
        """1 + the open stage index ``column`` names; 0 for WON, LOST, unknown or NULL."""
        arms = " ".join(
            f"WHEN {self.bind(s.name)} THEN {i + 1}" for i, s in enumerate(self.pipeline.stages)
        )
        return f"CASE {column} {arms} ELSE 0 END"

    def moves(self) -> str:
        """Per (from, to) open-stage pair: how many moves, and the sum of their times.

        The pair is one small integer, ``from * (n + 1) + to``, which sorts fastest.
        """
        nulls = ", ".join([_INT] * 8)
        width = len(self.pipeline.stages) + 1
        pair = f"{self.open_index('c.from_stage')} * {width} + {self.open_index('c.to_stage')}"
        return (
            f"SELECT 'h', {_TEXT}, {_TEXT}, {_REAL}, {pair} AS pair, COUNT(*), "
            f"{self.split('c.at_us', 10**6)}, {nulls}, {_NUM} "
            f"{self.history()} GROUP BY pair"
        )

    def oldest(self) -> str:
        """The ids of the deals stalled longest (first in, then by id)."""
        nulls = ", ".join([_INT] * 10)
        return (
            f"SELECT * FROM (SELECT 'i', d.id, {_TEXT}, {_REAL}, d.stage_entered_at_us, 1, "
            f"{nulls}, {_NUM} FROM sp_deals d "
            f"WHERE d.pipeline = {self.bind(self.pipeline.name)} "
            f"AND {self.bind(self.now_us, 'BIGINT')} - d.stage_entered_at_us > {self.rot_case()} "
            f"ORDER BY d.stage_entered_at_us, d.id LIMIT {self.bind(STALLED_SHOWN)}) oldest"
        )

    def sql(self) -> str:
        return "\nUNION ALL\n".join((self.deals(), self.moves(), self.oldest()))


def _int(value: object) -> int:
    return 0 if value is None else int(value)  # type: ignore[call-overload]


def _split(row: Row, at: int, unit: int) -> int:
    return _int(row[at]) * unit + _int(row[at + 1])


class _UnknownStage(Exception):
    """A stored deal is in a stage its pipeline does not have."""


_FIRST_IN_STAGE: Final = "SELECT MIN(id) FROM sp_deals WHERE pipeline = {ph} AND stage = {ph}"


class _Collector:
    """Turns the statement's rows into the ``Tallies`` the pure path would fill.

    A completed stay in S lasts from one move into S to the next move out of it, so
    the stays in S sum to (moves out of S) - (moves into S) + (entry times of the
    deals still in S), every term a sum SQL can take without pairing rows.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self.names = pipeline.stage_names
        self.open = {s.name: i for i, s in enumerate(pipeline.stages)}
        self.tallies = Tallies(pipeline)

    def row(self, row: Row) -> None:
        if row[0] == "d":
            self._deals(row)
        elif row[0] == "h":
            self._moves(row)
        else:
            self.tallies.add_oldest(_int(row[4]), str(row[1]))

    def _deals(self, row: Row) -> None:
        stage, probability, reach, count, t = (
            str(row[1]),
            row[3],
            row[4],
            _int(row[5]),
            self.tallies,
        )
        if stage not in self.names:
            raise _UnknownStage(stage)
        index, amount = self.names.index(stage), _amount(row)
        t.counts[index] += count
        t.currencies.add(str(row[2]))
        if reach is not None:
            t.reach[_int(reach)] += count
            if stage == LOST:
                t.lost_reach[_int(reach)] += count
        if stage == WON:
            t.won_amount += amount
            t.cycle_us += _split(row, 6, 10**6)
        elif stage == LOST:
            t.lost_amount += amount
        else:
            t.stay_us[index] += _split(row, 8, 10**6)
            t.stalled[index] += _int(row[10])
            if probability is None:
                t.open_amount[index] += amount
            else:
                t.add_override(float(probability), amount)

    def _moves(self, row: Row) -> None:
        count, at_us, t = _int(row[5]), _split(row, 6, 10**6), self.tallies
        left, entered = divmod(_int(row[4]), len(self.open) + 1)
        if left:
            t.stays[left - 1] += count
            t.stay_us[left - 1] += at_us
        if entered:
            t.stay_us[entered - 1] -= at_us


def _amount(row: Row) -> Decimal:
    """The exact amount sum of a deals row: NUMERIC, or SQLite's split integer sums."""
    if row[16] is not None:
        return Decimal(row[16])
    whole = _split(row, 12, 10**9)
    frac = _split(row, 14, 10**6)
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
    statement = _Statement(dialect, pipeline, _micros(as_of - EPOCH))
    rows = query(statement.sql(), statement.params)
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
