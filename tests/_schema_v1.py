"""Schema version 1, as salespipeline 0.1 created it: the starting point of upgrade tests.

Frozen here on purpose: the library only knows how to upgrade from it, so the tests
keep the layout it upgrades from.
"""

from __future__ import annotations

from typing import Final

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
