"""The relational schema shared by the SQLite and PostgreSQL stores (version 1).

Tables (the ``sp_`` prefix keeps them apart from an application's own tables):

``sp_meta``
    ``key`` / ``value`` text pairs; the row ``('schema_version', '1')`` says which
    layout a database has. Opening a newer layout with older code is refused.

``sp_pipelines``
    One row per pipeline definition and version: ``name``, ``version``, and
    ``definition`` (``pipeline.to_dict()`` as JSON). The highest version per name is
    the current one.

``sp_deals``
    One row per deal, its current state. ``version`` is the optimistic-concurrency
    counter: a save writes only where the stored version is ``deal.version - 1``.

    =====================  =================================================================
    column                 meaning (SQLite type / PostgreSQL type)
    =====================  =================================================================
    id                     deal id (TEXT / TEXT COLLATE "C", so both sort by code point)
    pipeline               pipeline name (TEXT)
    stage                  current stage name, ``'won'`` / ``'lost'`` when closed (TEXT)
    amount                 exact decimal (TEXT holding ``str(Decimal)`` / NUMERIC); the
                           authoritative value, never a float
    amount_whole           SQLite only: the integer part of ``amount`` (INTEGER, < 10**18)
    amount_frac            SQLite only: the fractional part in units of 10**-12 (INTEGER),
                           so ``SUM(amount_whole)`` and ``SUM(amount_frac)`` are exact
                           integer sums (amounts have at most 12 decimal places)
    currency               ISO 4217 code, upper case (TEXT)
    bant_budget ...        the four BANT criteria: ``bant_budget``, ``bant_authority``,
                           ``bant_need``, ``bant_timeline`` (INTEGER 0/1 / BOOLEAN)
    fields                 custom fields, a JSON object, Unicode kept (TEXT / JSONB)
    probability            per-deal win probability override or NULL (REAL / DOUBLE)
    lost_reason            why a lost deal was lost, NULL unless stage is ``'lost'``
    next_action            free text or NULL
    next_action_at_us      when the next action is due, or NULL
    created_at_us          when the deal entered its first stage
    stage_entered_at_us    when the deal entered its current stage
    closed_at_us           when the deal was won or lost, NULL while open
    version                positive INTEGER, rises by one per save
    =====================  =================================================================

``sp_stage_changes``
    The append-only history, primary key ``(deal_id, version)``: ``deal_id``,
    ``version`` (the deal version the change produced), ``from_stage`` (NULL for
    the first entry), ``to_stage``, ``at_us``, ``reason`` (the lost reason or a move
    note, else NULL). A deal's history is its rows ordered by ``version``, and only
    rows with ``version <= sp_deals.version`` belong to it.

Every ``*_us`` column is an integer count of microseconds since 1970-01-01T00:00:00
UTC (INTEGER / BIGINT), so SQL can sum and subtract durations exactly: a stay in a
stage lasts ``next.at_us - change.at_us`` microseconds.
"""

from __future__ import annotations

from typing import Final

__all__ = ["POSTGRES_DDL", "SCHEMA_VERSION", "SQLITE_DDL", "TABLES"]

SCHEMA_VERSION: Final = 1
TABLES: Final = ("sp_meta", "sp_pipelines", "sp_deals", "sp_stage_changes")

SQLITE_DDL: Final = (
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

POSTGRES_DDL: Final = (
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
