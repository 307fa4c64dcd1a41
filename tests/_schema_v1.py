"""Schema versions 1 and 2, as earlier releases wrote them: the start of upgrade tests.

Frozen here on purpose: the library only knows how to upgrade from them, so the
tests keep the layouts it upgrades from. ``write_v1`` and ``write_v2`` are the
fixture generators: they write deals the way those releases' code did (version 2
is version 1 plus the derived report columns).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from salespipeline.deal import Deal
from salespipeline.definitions import to_dict
from salespipeline.metrics._time import to_us
from salespipeline.pipeline import Pipeline
from salespipeline.storage._codec import amount_parts, dumps
from salespipeline.storage.sql import _figures
from salespipeline.storage.sql._schema import UPGRADES

Raw = Callable[[str, tuple[Any, ...]], list[Any]]

V1_DEAL_COLUMNS: Final = (
    "id",
    "pipeline",
    "stage",
    "amount",
    "currency",
    "bant_budget",
    "bant_authority",
    "bant_need",
    "bant_timeline",
    "fields",
    "probability",
    "lost_reason",
    "next_action",
    "next_action_at_us",
    "created_at_us",
    "stage_entered_at_us",
    "closed_at_us",
    "version",
)
V1_HISTORY_COLUMNS: Final = ("deal_id", "version", "from_stage", "to_stage", "at_us", "reason")


def _optional_us(moment: Any) -> int | None:
    return None if moment is None else to_us(moment)


def _deal_row(deal: Deal, sqlite: bool) -> list[Any]:
    bant = deal.bant
    row: list[Any] = [
        deal.id,
        deal.pipeline,
        deal.stage,
        str(deal.amount) if sqlite else deal.amount,
        deal.currency,
        bant.budget,
        bant.authority,
        bant.need,
        bant.timeline,
        dumps(dict(deal.fields)),
        deal.probability,
        deal.lost_reason,
        deal.next_action,
        _optional_us(deal.next_action_at),
        to_us(deal.created_at),
        to_us(deal.stage_entered_at),
        _optional_us(deal.closed_at),
        deal.version,
    ]
    return row + (list(amount_parts(deal.amount)) if sqlite else [])


def insert(
    raw: Raw, table: str, columns: Sequence[str], marks: list[str], rows: list[Any]
) -> None:
    """``rows`` into ``table``, a few hundred per statement."""
    for start in range(0, len(rows), 200):
        chunk = rows[start : start + 200]
        values = ", ".join([f"({', '.join(marks)})"] * len(chunk))
        raw(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}",
            tuple(value for row in chunk for value in row),
        )


def write_v1(raw: Raw, sqlite: bool, pipeline: Pipeline, deals: Sequence[Deal]) -> None:
    """A database as salespipeline 0.1 left it: version-1 tables holding ``deals``."""
    for statement in SQLITE_V1 if sqlite else POSTGRES_V1:
        raw(statement, ())
    raw("INSERT INTO sp_meta (key, value) VALUES (?, ?)", ("schema_version", "1"))
    json_mark = "?" if sqlite else "CAST(? AS JSONB)"
    raw(
        f"INSERT INTO sp_pipelines (name, version, definition) VALUES (?, ?, {json_mark})",
        (pipeline.name, pipeline.version, dumps(to_dict(pipeline))),
    )
    columns = list(V1_DEAL_COLUMNS) + (["amount_whole", "amount_frac"] if sqlite else [])
    marks = [json_mark if c == "fields" else "?" for c in columns]
    insert(raw, "sp_deals", columns, marks, [_deal_row(deal, sqlite) for deal in deals])
    history = [
        (c.deal_id, c.version, c.from_stage, c.to_stage, to_us(c.at), c.reason)
        for deal in deals
        for c in deal.history
    ]
    insert(raw, "sp_stage_changes", V1_HISTORY_COLUMNS, ["?"] * 6, history)


def write_v2(raw: Raw, sqlite: bool, pipeline: Pipeline, deals: Sequence[Deal]) -> None:
    """A database as the release with schema version 2 left it (report columns filled)."""
    write_v1(raw, sqlite, pipeline, deals)
    for statement in UPGRADES["sqlite" if sqlite else "postgres"][2]:
        raw(statement, ())
    columns = _figures.V2_COLUMNS
    sets = ", ".join(f"{column} = ?" for column in columns)
    for deal in deals:
        figures = _figures.deal_figures(deal)[: len(columns)]
        raw(f"UPDATE sp_deals SET {sets} WHERE id = ?", (*figures, deal.id))
    raw("UPDATE sp_meta SET value = ? WHERE key = ?", ("2", "schema_version"))


SQLITE_V1: Final = (
    """CREATE TABLE IF NOT EXISTS sp_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS sp_pipelines (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        definition TEXT NOT NULL,
        PRIMARY KEY (name, version)
    )""",
    """CREATE TABLE IF NOT EXISTS sp_deals (
        id TEXT PRIMARY KEY,
        pipeline TEXT NOT NULL,
        stage TEXT NOT NULL,
        amount TEXT NOT NULL,
        amount_whole INTEGER NOT NULL,
        amount_frac INTEGER NOT NULL,
        currency TEXT NOT NULL,
        bant_budget INTEGER NOT NULL,
        bant_authority INTEGER NOT NULL,
        bant_need INTEGER NOT NULL,
        bant_timeline INTEGER NOT NULL,
        fields TEXT NOT NULL,
        probability REAL,
        lost_reason TEXT,
        next_action TEXT,
        next_action_at_us INTEGER,
        created_at_us INTEGER NOT NULL,
        stage_entered_at_us INTEGER NOT NULL,
        closed_at_us INTEGER,
        version INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS sp_deals_pipeline_stage ON sp_deals (pipeline, stage)",
    """CREATE TABLE IF NOT EXISTS sp_stage_changes (
        deal_id TEXT NOT NULL REFERENCES sp_deals (id),
        version INTEGER NOT NULL,
        from_stage TEXT,
        to_stage TEXT NOT NULL,
        at_us INTEGER NOT NULL,
        reason TEXT,
        PRIMARY KEY (deal_id, version)
    )""",
)

POSTGRES_V1: Final = (
    """CREATE TABLE IF NOT EXISTS sp_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS sp_pipelines (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        definition JSONB NOT NULL,
        PRIMARY KEY (name, version)
    )""",
    """CREATE TABLE IF NOT EXISTS sp_deals (
        id TEXT COLLATE "C" PRIMARY KEY,
        pipeline TEXT NOT NULL,
        stage TEXT NOT NULL,
        amount NUMERIC NOT NULL,
        currency TEXT NOT NULL,
        bant_budget BOOLEAN NOT NULL,
        bant_authority BOOLEAN NOT NULL,
        bant_need BOOLEAN NOT NULL,
        bant_timeline BOOLEAN NOT NULL,
        fields JSONB NOT NULL,
        probability DOUBLE PRECISION,
        lost_reason TEXT,
        next_action TEXT,
        next_action_at_us BIGINT,
        created_at_us BIGINT NOT NULL,
        stage_entered_at_us BIGINT NOT NULL,
        closed_at_us BIGINT,
        version INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS sp_deals_pipeline_stage ON sp_deals (pipeline, stage)",
    """CREATE TABLE IF NOT EXISTS sp_stage_changes (
        deal_id TEXT COLLATE "C" NOT NULL REFERENCES sp_deals (id),
        version INTEGER NOT NULL,
        from_stage TEXT,
        to_stage TEXT NOT NULL,
        at_us BIGINT NOT NULL,
        reason TEXT,
        PRIMARY KEY (deal_id, version)
    )""",
)
