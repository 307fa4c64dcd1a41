"""``DealStore.report`` pushed down into SQL, for SQLite and PostgreSQL (private).

A report describes the deals as they stood at ``as_of``. The rows of deals unchanged
since then (``updated_at_us <= as_of``) stand as they stood, and are aggregated here;
the few changed since are rebuilt from the log (``_replayed``) and their ``Facts``
folded in with the groups'. Each row carries the figures a report needs from its
history (``_figures``: the stages it entered, its completed stays per stage), written
with the row by every save. One pass groups the pipeline's deals by stage, currency,
probability and forecast category overrides and stages entered into integer counts,
exact amount sums and integer microseconds; two small queries find the rare extra
stays and the longest-stalled ids, each given to its deal's group. All of them, the
log's reads included, are the steps of one read transaction (one snapshot): a plan
(``sql._plan``) that the sync and async stores drive alike. Each grouped row, read by
column name, becomes the ``Facts`` the pure path makes of one deal; the shared
``fold`` and ``finish`` do the rest. Durations and amounts are summed in split parts
so no 64-bit sum overflows. ``owner=`` and ``currency=`` alone filter all three
queries to that owner and currency (the rebuilt deals are filtered as they stood);
conversion by ``rates=`` happens in the shared ``fold``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Final, TypeVar

from salespipeline import _checks as c
from salespipeline.deal import Deal
from salespipeline.errors import CorruptRecordError
from salespipeline.metrics._asof import as_of_instant, check_owner
from salespipeline.metrics._facts import Facts, Stay, folding
from salespipeline.metrics._money import Money, to_money
from salespipeline.metrics._pure import DealFacts
from salespipeline.metrics._report import STALLED_SHOWN, PipelineReport, finish
from salespipeline.metrics._time import micros, to_us
from salespipeline.pipeline import Pipeline
from salespipeline.stages import STAGE_CATEGORIES
from salespipeline.storage.sql import _figures
from salespipeline.storage.sql._dialect import Dialect, Row, read_int, read_split
from salespipeline.storage.sql._figures import SLOTS
from salespipeline.storage.sql._plan import Plan, Statement, Steps, Within
from salespipeline.storage.sql._replayed import changed_since, named

__all__ = ["sql_facts", "sql_report"]

GroupKey = tuple[object, ...]
_T = TypeVar("_T")

KEY: Final = ("stage", "currency", "probability", "forecast_category", "entered_stages")
"""The ``sp_deals`` columns a group of deals shares, selected under their own names."""
_KEY_SELECT: Final = ", ".join(f"d.{column} AS {column}" for column in KEY)
_US: Final = 10**6
_FIRST_IN_STAGE: Final = "SELECT MIN(id) AS id FROM sp_deals WHERE pipeline = ? AND stage = ?"


class _Statements:
    """The report's three statements, each value bound where it is used."""

    def __init__(
        self,
        dialect: Dialect,
        pipeline: Pipeline,
        now_us: int,
        only: str | None,
        owner: str | None,
    ) -> None:
        self.dialect = dialect
        self.pipeline = pipeline
        self.now_us = now_us
        self.only = only
        self.owner = owner

    def kept(self, params: list[object]) -> str:
        """The conditions keeping the deals unchanged since ``now_us`` (as they stood then),
        of ``owner`` and in ``only`` (each left out when None)."""
        params.append(self.now_us)
        where = f" AND {self.dialect.updated_scan} <= CAST(? AS BIGINT)"
        for column, value in (("owner", self.owner), ("currency", self.only)):
            if value is not None:
                params.append(value)
                where += f" AND d.{column} = ?"
        return where

    def stalled(self, params: list[object]) -> str:
        """True when the deal has been in its stage longer than the stage's ``rot_after``."""
        stages = self.pipeline.stages
        rot = [(s.name, micros(s.rot_after)) for s in stages if s.rot_after is not None]
        if not rot:
            return "1 = 0"
        params.append(self.now_us)
        for limit in rot:
            params.extend(limit)
        arms = " ".join(["WHEN ? THEN CAST(? AS BIGINT)"] * len(rot))
        return f"CAST(? AS BIGINT) - d.stage_entered_at_us > CASE d.stage {arms} END"

    def deals(self) -> Statement:
        """The pipeline's deals grouped by ``KEY``: counts, amount and duration sums, stays."""
        d = self.dialect
        params: list[object] = []
        stalled = self.stalled(params)
        params.append(self.pipeline.name)
        kept = self.kept(params)
        stays = ", ".join(
            f"SUM(d.stays_{j}) AS stays_{j}, {d.split_sum(f'stay_us_{j}', f'd.stay_us_{j}', _US)}"
            for j in range(1, SLOTS + 1)
        )
        key = ", ".join(f"d.{column}" for column in KEY)
        sql = (
            f"SELECT {_KEY_SELECT}, COUNT(*) AS deals, "
            f"{d.split_sum('cycle', 'd.closed_at_us - d.created_at_us', _US)}, "
            f"SUM(CASE WHEN {stalled} THEN 1 ELSE 0 END) AS stalled, "
            f"{d.amount_sum('amount', 'd')}, {stays} "
            f"FROM sp_deals d WHERE {d.pipeline_scan} = ?{kept} GROUP BY {key}"
        )
        return named(d, sql, params)

    def more(self) -> Statement:
        """The extra stays of deals that entered more open stages than there are slots."""
        params: list[object] = [self.pipeline.name]
        sql = (
            f"SELECT {_KEY_SELECT}, d.stays_more AS stays_more FROM sp_deals d "
            f"WHERE d.pipeline = ?{self.kept(params)} AND d.stays_more IS NOT NULL"
        )
        return named(self.dialect, sql, params)

    def oldest(self) -> Statement:
        """The deals stalled longest (first in, then by id), with their group's ``KEY``."""
        params: list[object] = [self.pipeline.name]
        kept = self.kept(params)
        stalled = self.stalled(params)
        params.append(STALLED_SHOWN)
        sql = (
            f"SELECT d.id AS id, d.stage_entered_at_us AS entered_us, {_KEY_SELECT} "
            "FROM sp_deals d "
            f"WHERE d.pipeline = ?{kept} AND {stalled} "
            "ORDER BY d.stage_entered_at_us, d.id LIMIT ?"
        )
        return named(self.dialect, sql, params)


def _key(row: Row) -> GroupKey:
    return tuple(row[column] for column in KEY)


def _by_group(rows: list[Row], read: Callable[[Row], list[_T]]) -> dict[GroupKey, list[_T]]:
    """What ``read`` finds in each row, collected per group of deals (``KEY``)."""
    found: dict[GroupKey, list[_T]] = {}
    for row in rows:
        found.setdefault(_key(row), []).extend(read(row))
    return found


def _extra_stays(row: Row) -> list[Stay]:
    more = _figures.read_stays_more(row["stays_more"])
    return [(stage, count, total) for stage, (count, total) in more.items()]


def _stalled_since(row: Row) -> list[tuple[int, str]]:
    return [(read_int(row["entered_us"]), str(row["id"]))]


def _slot_stays(row: Row, entered: Sequence[str]) -> list[Stay]:
    """A group's summed stays in the slot columns."""
    counts = [read_int(row[f"stays_{j}"]) for j in range(1, SLOTS + 1)]
    totals = [read_split(row, f"stay_us_{j}", _US) for j in range(1, SLOTS + 1)]
    return _figures.slot_stays(entered, counts, totals)


def _probability(value: object) -> float | None:
    if value is None or isinstance(value, float):
        return value
    if c.is_number(value):
        return float(value)
    raise ValueError(f"expected a probability, found {value!r}")


def _category(value: object) -> str | None:
    if value is None or (isinstance(value, str) and value in STAGE_CATEGORIES):
        return value
    raise ValueError(f"expected a forecast category, found {value!r}")


def _group_facts(
    row: Row, dialect: Dialect, more: Sequence[Stay], stalled_since: Sequence[tuple[int, str]]
) -> Facts:
    """What the deals of one grouped row contribute, with the extra stays found for them."""
    entered = _figures.read_entered(row["entered_stages"])
    return Facts(
        stage=str(row["stage"]),
        currency=str(row["currency"]),
        probability=_probability(row["probability"]),
        entered=frozenset(entered),
        stays=[*_slot_stays(row, entered), *more],
        deals=read_int(row["deals"]),
        amount=dialect.read_amount(row, "amount"),
        cycle_us=read_split(row, "cycle", _US),
        stalled=read_int(row["stalled"]),
        stalled_since=tuple(stalled_since),
        forecast_category=_category(row["forecast_category"]),
    )


def _groups(deals: list[Row], more: list[Row], oldest: list[Row], dialect: Dialect) -> list[Facts]:
    """Each grouped row's ``Facts``, given the extra stays and stalled ids of its deals."""
    stays, since = _by_group(more, _extra_stays), _by_group(oldest, _stalled_since)
    return [
        _group_facts(row, dialect, stays.get(_key(row), ()), since.get(_key(row), ()))
        for row in deals
    ]


def sql_facts(
    pipeline: Pipeline,
    *,
    as_of: datetime,
    dialect: Dialect,
    take: Callable[[Iterable[Facts]], None],
    owner: str | None = None,
    only: str | None = None,
) -> Steps[None]:
    """The steps that hand ``take`` what ``pipeline``'s stored deals contributed at
    ``as_of``, stalls measured then.

    One ``Facts`` per group of rows unchanged since ``as_of``, then one per deal
    rebuilt from the log (``_replayed``), a batch at a time. ``owner`` and ``only``
    keep that owner's deals and those in that currency. A row in a stage the pipeline
    does not have is a ``CorruptRecordError``.
    """
    statements = _Statements(dialect, pipeline, to_us(as_of), only, owner)
    deals: list[Row] = yield statements.deals()
    more: list[Row] = yield statements.more()
    oldest: list[Row] = yield statements.oldest()
    for row in deals:
        if row["stage"] not in pipeline.positions:
            raise (yield from _corrupt(pipeline, dialect, str(row["stage"])))
    take(_groups(deals, more, oldest, dialect))
    kept = DealFacts(pipeline, as_of)

    def take_chosen(rebuilt: Iterable[Deal]) -> None:
        take(kept(d) for d in rebuilt if d.pipeline == pipeline.name and _chosen(d, owner, only))

    yield from changed_since(dialect, pipeline.name, as_of, take_chosen)


def _chosen(deal: Deal, owner: str | None, only: str | None) -> bool:
    return (owner is None or deal.owner == owner) and (only is None or deal.currency == only)


def sql_report(
    pipeline: Pipeline,
    *,
    as_of: object,
    now: object,
    dialect: Dialect,
    owner: object = None,
    currency: object = None,
    rates: object = None,
) -> Plan[PipelineReport]:
    """The plan of the ``PipelineReport`` of ``pipeline``'s stored deals at ``as_of``,
    aggregated in SQL; the arguments are checked now, before any read.

    Every statement is a step of one read transaction (one snapshot); the result
    equals ``metrics.report`` over the deals replayed from the log up to ``as_of``,
    with the same ``owner``, ``currency`` and ``rates``.
    """
    instant = as_of_instant(pipeline, as_of, now, stacklevel=4)
    chosen, who = to_money(currency, rates), check_owner(owner)
    return _reported(pipeline, instant, dialect, who, chosen)


def _reported(
    pipeline: Pipeline, instant: datetime, dialect: Dialect, owner: str | None, money: Money
) -> Plan[PipelineReport]:
    sums = folding(pipeline)
    facts = sql_facts(
        pipeline, as_of=instant, dialect=dialect, take=sums.add_all, owner=owner, only=money.only
    )
    yield Within("read", facts)
    return finish(sums.result(money), pipeline, as_of=instant)


def _corrupt(pipeline: Pipeline, dialect: Dialect, stage: str) -> Steps[Exception]:
    rows: list[Row] = yield named(dialect, _FIRST_IN_STAGE, [pipeline.name, stage])
    deal_id = str(rows[0]["id"]) if rows else "?"
    reason = f"stage {stage!r} is not a stage of pipeline {pipeline.name!r}"
    return CorruptRecordError(deal_id, reason)
