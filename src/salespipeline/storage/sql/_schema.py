"""The relational schema shared by the SQLite and PostgreSQL stores (version 3).

Tables (the ``sp_`` prefix keeps them apart from an application's own tables):

``sp_meta``
    ``key`` / ``value`` text pairs; the row ``('schema_version', '3')`` says which
    layout a database has. Opening a newer layout with older code is refused; an
    older one is upgraded in place, in one transaction (``UPGRADES``).

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
    owner                  who owns the deal, or NULL
    close_date             the expected close date, ``YYYY-MM-DD`` text, or NULL
    forecast_category      the deal's own forecast category, or NULL (its stage's)
    updated_at_us          when the deal last changed (its last change's ``at_us``)
    entered_stages         the distinct stages the history entered, sorted, as a JSON list
    stays_1 ... stays_7    completed stays in the 1st ... 7th open stage of
                           ``entered_stages`` (INTEGER, 0 past the last one)
    stay_us_1 ... _7       their summed durations in microseconds (INTEGER / BIGINT)
    stays_more             NULL, or a JSON object ``{stage: [stays, microseconds]}`` for
                           open stages past the seventh
    moves                  the number of history entries (INTEGER / BIGINT)
    =====================  =================================================================

    The last five are derived from the deal's history (``storage._figures``) and
    written with the row, so ``report`` aggregates deals without reading history.

    Indexes: ``(pipeline, stage)``, and for ``find``'s keyset pages ``(owner, id)``,
    ``(stage, id)`` and ``(updated_at_us, id)`` (``FIND_INDEXES``), which a store
    creates when it opens a database that lacks them, so a version 3 database made
    before them gains them without a new schema version.

``sp_changes``
    The change log, the source of truth (the deal row is its projection): one row
    per deal version, unique ``(deal_id, version)``. ``position`` is assigned at
    insert and rises in commit order (SQLite's writers are serialised by ``BEGIN
    IMMEDIATE``; PostgreSQL's take a transaction-scoped advisory lock before they
    insert, held until commit, as eventsourcing's recorders lock their table), so a
    reader paging by position never skips a committed change. Columns: ``kind``,
    ``actor``, ``reason``, ``key`` (unique per deal when set), ``from_stage`` and
    ``to_stage`` (set on changes that moved a stage), ``at_us``, and ``changed``,
    a JSON object ``{attribute: [old, new]}``. A deal's history is its rows with a
    ``to_stage``, by ``version``; only rows with ``version <= sp_deals.version``
    belong to it.

``sp_consumers``
    One row per durable consumer: ``name`` and the ``position`` it has handled.

Every ``*_us`` column is an integer count of microseconds since 1970-01-01T00:00:00
UTC (INTEGER / BIGINT), so SQL can sum and subtract durations exactly: a stay in a
stage lasts ``next.at_us - change.at_us`` microseconds.
"""

from __future__ import annotations

from typing import Final

from salespipeline.storage.sql._figures import COLUMNS as FIGURE_COLUMNS
from salespipeline.storage.sql._figures import SLOTS
from salespipeline.storage.sql._figures import V2_COLUMNS as V2_FIGURE_COLUMNS

__all__ = [
    "FIND_INDEXES",
    "POSTGRES_DDL",
    "SCHEMA_VERSION",
    "SQLITE_DDL",
    "TABLES",
    "UPGRADES",
]

SCHEMA_VERSION: Final = 3
TABLES: Final = ("sp_meta", "sp_pipelines", "sp_deals", "sp_changes", "sp_consumers")


def _figure_types(integer: str) -> list[tuple[str, str, str]]:
    """The derived columns (see ``storage._figures``): name, type, and the default
    that lets an upgrade add them to existing rows before filling them in."""
    text = [("TEXT NOT NULL", "'[]'"), ("TEXT", "NULL")]
    kinds = text + [(f"{integer} NOT NULL", "0")] * (2 * SLOTS + 1)
    return [
        (name, kind, default) for name, (kind, default) in zip(FIGURE_COLUMNS, kinds, strict=True)
    ]


def _figure_columns(integer: str) -> str:
    return ",\n        ".join(f"{name} {kind}" for name, kind, _ in _figure_types(integer))


def _add_figures(integer: str) -> tuple[str, ...]:
    """Version 1 -> 2: the derived columns of version 2, defaulted until the store fills
    them in."""
    return tuple(
        f"ALTER TABLE sp_deals ADD COLUMN {name} {kind} DEFAULT {default}"
        for name, kind, default in _figure_types(integer)
        if name in V2_FIGURE_COLUMNS
    )


FIND_INDEXES: Final = {
    "sp_deals_owner": "CREATE INDEX IF NOT EXISTS sp_deals_owner ON sp_deals (owner, id)",
    "sp_deals_stage": "CREATE INDEX IF NOT EXISTS sp_deals_stage ON sp_deals (stage, id)",
    "sp_deals_updated": (
        "CREATE INDEX IF NOT EXISTS sp_deals_updated ON sp_deals (updated_at_us, id)"
    ),
}
"""Name -> statement of the indexes ``find`` and ``count`` seek with: each ends in
``id``, so a page of one owner, stage or time range is read in id order from
where the last page stopped, without a sort."""

_STAYS_MORE_INDEX: Final = (
    "CREATE INDEX IF NOT EXISTS sp_deals_stays_more ON sp_deals (pipeline) "
    "WHERE stays_more IS NOT NULL"
)


def _log_tables(position: str, id_type: str, integer: str, json: str) -> tuple[str, ...]:
    """``sp_changes`` and ``sp_consumers`` with their indexes (new in version 3)."""
    return (
        f"""CREATE TABLE IF NOT EXISTS sp_changes (
        position {position},
        deal_id {id_type} NOT NULL,
        version INTEGER NOT NULL,
        at_us {integer} NOT NULL,
        kind TEXT NOT NULL,
        actor TEXT,
        reason TEXT,
        key TEXT,
        from_stage TEXT,
        to_stage TEXT,
        changed {json} NOT NULL,
        UNIQUE (deal_id, version)
    )""",
        "CREATE UNIQUE INDEX IF NOT EXISTS sp_changes_key ON sp_changes (deal_id, key) "
        "WHERE key IS NOT NULL",
        f"""CREATE TABLE IF NOT EXISTS sp_consumers (
        name TEXT PRIMARY KEY,
        position {integer} NOT NULL
    )""",
    )


_LOG_SQLITE: Final = _log_tables("INTEGER PRIMARY KEY", "TEXT", "INTEGER", "TEXT")
_LOG_POSTGRES: Final = _log_tables(
    "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", 'TEXT COLLATE "C"', "BIGINT", "JSONB"
)


def _add_part_two(integer: str) -> tuple[str, ...]:
    """Version 2 -> 3: the deal's new columns (``updated_at_us`` is filled from
    ``stage_entered_at_us``; the store then fills ``moves`` with the other derived
    columns and writes the log from the old history)."""
    return (
        "ALTER TABLE sp_deals ADD COLUMN owner TEXT",
        "ALTER TABLE sp_deals ADD COLUMN close_date TEXT",
        "ALTER TABLE sp_deals ADD COLUMN forecast_category TEXT",
        f"ALTER TABLE sp_deals ADD COLUMN updated_at_us {integer} NOT NULL DEFAULT 0",
        "UPDATE sp_deals SET updated_at_us = stage_entered_at_us",
        f"ALTER TABLE sp_deals ADD COLUMN moves {integer} NOT NULL DEFAULT 0",
    )


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
    f"""CREATE TABLE IF NOT EXISTS sp_deals (
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
        version INTEGER NOT NULL,
        owner TEXT,
        close_date TEXT,
        forecast_category TEXT,
        updated_at_us INTEGER NOT NULL,
        {_figure_columns("INTEGER")}
    )""",
    "CREATE INDEX IF NOT EXISTS sp_deals_pipeline_stage ON sp_deals (pipeline, stage)",
    _STAYS_MORE_INDEX,
    *_LOG_SQLITE,
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
    f"""CREATE TABLE IF NOT EXISTS sp_deals (
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
        version INTEGER NOT NULL,
        owner TEXT,
        close_date TEXT,
        forecast_category TEXT,
        updated_at_us BIGINT NOT NULL,
        {_figure_columns("BIGINT")}
    )""",
    "CREATE INDEX IF NOT EXISTS sp_deals_pipeline_stage ON sp_deals (pipeline, stage)",
    _STAYS_MORE_INDEX,
    *_LOG_POSTGRES,
)


UPGRADES: Final = {
    "sqlite": {
        2: (*_add_figures("INTEGER"), _STAYS_MORE_INDEX),
        3: (*_add_part_two("INTEGER"), *_LOG_SQLITE),
    },
    "postgres": {
        2: (*_add_figures("BIGINT"), _STAYS_MORE_INDEX),
        3: (*_add_part_two("BIGINT"), *_LOG_POSTGRES),
    },
}
"""Per dialect, the statements that bring a database from version ``v - 1`` to ``v``.

After them the store computes the derived columns of every stored deal from its
history (kept in ``sp_stage_changes`` before version 3), writes the change log from
it (``log.recorded``), drops the old history table and records the new version, all
in the same transaction."""

OLD_HISTORY: Final = "sp_stage_changes"
"""The history table of versions 1 and 2: ``deal_id, version, from_stage, to_stage,
at_us, reason``, read once by the upgrade to version 3 and then dropped."""
