"""The SQL algorithm shared by the SQLite and PostgreSQL stores (private).

Subclasses supply transactions (``_read`` gives one consistent snapshot, ``_write``
one atomic transaction that serialises with other writers, ``_statement`` single
statements that are atomic on their own) and the dialect's SQL spelling; everything
else (optimistic saves, streaming ``find``, decoding) is here, written as plans
(``sql._plan``) that do no I/O: ``_run`` drives them on the store's cursors, and
``aio.AsyncPostgresStore`` awaits the same plans. ``get`` is one
statement (the deal's row, then its history rows), so a load is one round trip, and a
save compares the deal's history with the one the store last handed out for it.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import os
import re
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from decimal import Decimal
from itertools import compress
from operator import ne
from typing import TYPE_CHECKING, Any, ClassVar, Final, NamedTuple, NoReturn, Protocol, TypeVar

import attrs

from salespipeline import log
from salespipeline._checks import is_int
from salespipeline._history import head_of
from salespipeline.deal import BANT_CRITERIA, Deal, StageChange, chain_problem
from salespipeline.errors import (
    ConcurrencyError,
    CorruptRecordError,
    DealNotFoundError,
    DuplicateDealError,
    SalesPipelineError,
    StorageError,
    ValidationError,
    shown,
)
from salespipeline.log import Change
from salespipeline.pipeline import Pipeline
from salespipeline.stages import LOST, WON
from salespipeline.storage import _codec
from salespipeline.storage._erasure import Erasure, check_erasure, erase_change, erased_by
from salespipeline.storage._query import Query, check_names
from salespipeline.storage.base import (
    QueryingStore,
    as_stored,
    check_change_args,
    check_consumer_name,
    check_deal,
    check_id,
    check_log_page,
    check_recorded,
    decode_all,
    definition_row,
    each_planned_add,
    new_entries,
)
from salespipeline.storage.sql import _figures
from salespipeline.storage.sql._dialect import Dialect, read_int
from salespipeline.storage.sql._movement import sql_movement
from salespipeline.storage.sql._names import DEFAULT, Names
from salespipeline.storage.sql._plan import (
    Kind,
    Plan,
    Statement,
    Steps,
    Within,
    drive,
    one,
    single,
)
from salespipeline.storage.sql._recent import Recent
from salespipeline.storage.sql._report import sql_report
from salespipeline.storage.sql._schema import (
    FIND_INDEXES,
    OLD_HISTORY,
    SCHEMA_VERSION,
    UPGRADES,
)

LOAD_LATEST: Final = 32
"""History entries a load reads with the deal; older ones are read when first needed."""

_LOADED_DEAL: Final = len(_codec.DEAL_COLUMNS) + len(_figures.COLUMNS)
"""The deal row's columns in a load: its own, then its derived figures."""

if TYPE_CHECKING:
    from salespipeline.metrics import Movement, PipelineReport

__all__ = ["Cursor", "SQLStore", "Statements", "UniqueViolation", "Window"]

T = TypeVar("T")

_SCHEMA_KEY: Final = "schema_version"
_VERSION_TEXT: Final = re.compile(r"0|[1-9][0-9]{0,8}")


class Cursor(Protocol):
    """What the store uses of a DB-API cursor (``sqlite3.Cursor``, ``psycopg.Cursor``);
    a dialect with ``binary_pages`` also passes psycopg's ``execute(..., binary=True)``."""

    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Sequence[Sequence[Any]] | None: ...

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> object: ...

    def executemany(self, sql: str, params: Iterable[Sequence[Any]], /) -> object: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class UniqueViolation(StorageError):
    """A unique key refused a row (raised by a store's ``_write``, handled here).

    ``of_key``: the refused key was a change's idempotency key (index
    ``sp_changes_key``), not a deal id or a version.
    """

    def __init__(self, message: str, *, of_key: bool = False) -> None:
        super().__init__(message)
        self.of_key = of_key


@attrs.frozen
class Statements:
    """The statements of one dialect, built once; every value is a bound parameter."""

    dialect: Dialect
    ddl: tuple[str, ...]
    extra_deal_columns: tuple[str, ...] = ()

    @property
    def placeholder(self) -> str:
        return self.dialect.placeholder

    def _marks(self, count: int) -> str:
        return ", ".join([self.placeholder] * count)

    @property
    def deal_columns(self) -> tuple[str, ...]:
        """The deal's own columns, the dialect's extras, then the derived figures."""
        return _codec.DEAL_COLUMNS + self.extra_deal_columns + _figures.COLUMNS

    def _values(self) -> str:
        marks = [self.placeholder] * len(self.deal_columns)
        marks[_codec.DEAL_COLUMNS.index("fields")] = self.dialect.json_param
        return ", ".join(marks)

    @functools.cached_property
    def insert_deal(self) -> str:
        return (
            f"INSERT INTO sp_deals ({', '.join(self.deal_columns)}) VALUES ({self._values()}) "
            "ON CONFLICT (id) DO NOTHING"
        )

    @functools.cached_property
    def insert_log(self) -> str:
        """One change row; the database assigns its position."""
        columns = _codec.LOG_COLUMNS[1:]
        marks = [self.placeholder] * (len(columns) - 1) + [self.dialect.json_param]
        return f"INSERT INTO sp_changes ({', '.join(columns)}) VALUES ({', '.join(marks)})"

    @functools.cached_property
    def select_log(self) -> str:
        columns = ", ".join(_codec.LOG_COLUMNS)
        p = self.placeholder
        return f"SELECT {columns} FROM sp_changes WHERE position > {p} ORDER BY position LIMIT {p}"

    def select_changes(self, *, keyed: bool) -> str:
        columns = ", ".join(_codec.LOG_COLUMNS)
        p = self.placeholder
        where = f"deal_id = {p}" + (f" AND key = {p}" if keyed else "")
        return f"SELECT {columns} FROM sp_changes WHERE {where} ORDER BY version"

    @functools.cached_property
    def select_deal(self) -> str:
        """A deal's row and derived figures, then all its history rows."""
        return self._select_deal(latest=None)

    @functools.cached_property
    def select_latest(self) -> str:
        """A deal's row and derived figures, then its latest ``LOAD_LATEST`` history rows."""
        return self._select_deal(latest=LOAD_LATEST)

    def _select_deal(self, *, latest: int | None) -> str:
        """A deal's row, then its history rows, in one statement (one snapshot, one round trip).

        The deal's columns come back once: each history row carries NULL in them, and
        the deal row NULL in the history columns (``SQLStore._load`` reads the rows).
        """
        p = self.placeholder
        deal = ", ".join(f"d.{c}" for c in (*_codec.DEAL_COLUMNS, *_figures.COLUMNS))
        changes = ", ".join(f"l.{c}" for c in _codec.CHANGE_COLUMNS)
        selected = ", ".join(f"c.{c}" for c in _codec.CHANGE_COLUMNS)
        no_deal = ", ".join(["NULL"] * (len(_codec.DEAL_COLUMNS) + len(_figures.COLUMNS)))
        no_changes = ", ".join(["NULL"] * len(_codec.CHANGE_COLUMNS))
        order = 1 + _LOADED_DEAL + 1 + _codec.CHANGE_COLUMNS.index("version")
        limit = "" if latest is None else f" ORDER BY c.version DESC LIMIT {latest}"
        return (
            f"SELECT 0, {deal}, {no_changes} FROM sp_deals d WHERE d.id = {p} "
            f"UNION ALL SELECT 1, {no_deal}, {changes} FROM (SELECT {selected} FROM sp_changes c "
            f"WHERE c.deal_id = {p} AND c.to_stage IS NOT NULL "
            f"AND c.version <= (SELECT version FROM sp_deals WHERE id = {p}){limit}) l "
            f"ORDER BY 1, {order}"
        )

    @functools.cached_property
    def page_history(self) -> str | None:
        """A find page's deal ``p``'s history as one JSON text: an array of
        ``CHANGE_COLUMNS[1:]`` arrays in version order (``Dialect.history_json``, None
        where the dialect reads histories with a statement of their own)."""
        aggregate = self.dialect.history_json
        if aggregate is None:
            return None
        values = ", ".join(f"c.{c}" for c in _codec.CHANGE_COLUMNS[1:])
        rows = (
            "FROM sp_changes c "
            "WHERE c.deal_id = p.id AND c.version <= p.version AND c.to_stage IS NOT NULL"
        )
        return aggregate.format(values=values, rows=rows, order="c.version")

    @functools.cached_property
    def page_columns(self) -> str:
        """A one-statement find page's ``DEAL_COLUMNS`` of its deals ``p``, the dialect's
        ``page_text`` columns read as text."""
        text = self.dialect.page_text
        return ", ".join(
            f"CAST(p.{c} AS TEXT)" if c in text else f"p.{c}" for c in _codec.DEAL_COLUMNS
        )

    @functools.cached_property
    def select_older(self) -> str:
        """The ``count`` oldest history rows of a deal (what a lazy load left unread)."""
        columns = ", ".join(_codec.CHANGE_COLUMNS)
        p = self.placeholder
        return (
            f"SELECT {columns} FROM sp_changes WHERE deal_id = {p} AND to_stage IS NOT NULL "
            f"ORDER BY version LIMIT {p}"
        )

    def update_columns(self, columns: Sequence[str]) -> str:
        """The deal row's ``columns``, where the stored version is the base (cached)."""
        dialect = self.dialect
        columns = columns if type(columns) is tuple else tuple(columns)
        return _update_statement(dialect.placeholder, dialect.json_param, columns)

    @functools.cached_property
    def columns_of(self) -> dict[str, tuple[str, ...]]:
        """Per attribute a change may alter, the deal columns that hold it."""
        columns = self.deal_columns
        held: dict[str, tuple[str, ...]] = {}
        for name in log.ATTRIBUTES:
            if name == "bant":
                held[name] = tuple(f"bant_{c}" for c in BANT_CRITERIA)
            elif name == "amount":
                held[name] = ("amount", *self.extra_deal_columns)
            else:
                held[name] = (f"{name}_us",) if f"{name}_us" in columns else (name,)
        return held

    def q(self, sql: str) -> str:
        """``sql`` written with ``?`` marks, in this dialect's spelling."""
        return self.dialect.q(sql)


_UNKNOWN: Final = object()
"""What a save knows of a figure column it was not told the row's value of."""


@functools.lru_cache(maxsize=256)
def _update_statement(p: str, json_param: str, columns: tuple[str, ...]) -> str:
    sets = [f"{c} = {json_param if c == 'fields' else p}" for c in columns]
    return (
        f"UPDATE sp_deals SET {', '.join(sets)} "
        f"WHERE id = {p} AND version = {p} AND created_at_us = {p}"
    )


class SQLStore(QueryingStore):
    """A DealStore over a relational database (see ``storage._schema`` for the layout)."""

    sql: ClassVar[Statements]
    find_batch: ClassVar[int] = 500
    _row_lock: ClassVar[str] = ""
    """What makes a read of a deal row hold it to the transaction's end, where writers
    are not serialised already (PostgreSQL: ``FOR UPDATE``)."""
    _encoders: ClassVar[Mapping[str, Callable[[Deal], tuple[Any, ...]]]] = _codec.ENCODERS
    """Per deal attribute, the values of ``sql.columns_of[name]`` (a dialect may store one
    attribute in more columns: SQLite's amount)."""
    _names: Names = DEFAULT
    """Where the store's tables live (``prefix=``, ``schema=``); the default names."""

    # -- supplied by the backend ------------------------------------------------------

    @abc.abstractmethod
    def _read(self) -> AbstractContextManager[Cursor]:
        """A cursor in a read-only transaction that sees one consistent snapshot."""

    @abc.abstractmethod
    def _write(self) -> AbstractContextManager[Cursor]:
        """A cursor in a write transaction: committed on success, rolled back on error."""

    @abc.abstractmethod
    def _statement(self) -> AbstractContextManager[Cursor]:
        """A cursor outside any explicit transaction: each statement commits on its own."""

    def _run(self, plan: Plan[T]) -> T:
        """Run ``plan`` on this store's cursors (the sync driver of the plans below)."""
        return drive(plan, self._cursor_for)

    def _cursor_for(self, kind: Kind) -> AbstractContextManager[Cursor]:
        if kind == "statement":
            return self._statement()
        return self._read() if kind == "read" else self._write()

    def _update(
        self, columns: Sequence[str], params: Sequence[Any], change: Sequence[Any]
    ) -> Within[int | None]:
        """The transaction that writes the deal row's ``columns`` (``update_columns``) and
        the change row atomically.

        It gives the change's position, or None, with nothing written, when no row
        matched the stored version.
        """
        update = Statement(self.sql.update_columns(columns), params, "rowcount")
        return Within("write", self._update_steps(update, change))

    def _update_steps(self, update: Statement, change: Sequence[Any]) -> Steps[int | None]:
        if (yield update) != 1:
            return None
        yield from self._log_lock
        return (yield from self._insert_log(change))

    def _insert_log(self, values: Sequence[Any]) -> Steps[int]:
        """Insert one change row; its position."""
        position = yield Statement(self.sql.insert_log, values, "lastrowid")
        if not is_int(position):
            raise StorageError("the database did not say the position of the change it logged")
        return position

    _log_lock: ClassVar[tuple[Statement, ...]] = ()
    """The statements that make positions rise in commit order, run before a transaction
    logs a change (none where writers are serialised already); they return nothing."""

    def _lock_schema(self) -> Steps[None]:
        """Serialise schema creation between processes (none where writes already are)."""
        yield from ()

    def _row_values(self, deal: Deal) -> list[Any]:
        """The deal's own column values and the dialect's extras."""
        return _codec.deal_values(deal)

    # -- schema -----------------------------------------------------------------------

    def _ensure_schema(self) -> None:
        self._run(self._schema_plan())

    def _schema_plan(self) -> Plan[None]:
        """Create the tables on first use, upgrade an older layout, refuse a newer one."""
        try:
            if (yield Within("read", self._current())):
                return
        except StorageError:
            pass  # no schema yet (or a problem the write below reports)
        yield Within("write", self._schema_steps())

    def _current(self) -> Steps[bool]:
        """Whether the schema is this version's, with every index ``find`` seeks with."""
        version = yield from self._stored_schema_version()
        return version == SCHEMA_VERSION and (yield from self._indexed())

    def _schema_steps(self) -> Steps[None]:
        yield from self._lock_schema()
        yield Statement(self.sql.ddl[0])
        version = yield from self._stored_schema_version()
        if version is None:
            for statement in self.sql.ddl[1:]:
                yield Statement(statement)
            yield Statement(
                self.sql.q("INSERT INTO sp_meta (key, value) VALUES (?, ?)"),
                (_SCHEMA_KEY, str(SCHEMA_VERSION)),
            )
        elif version < SCHEMA_VERSION:
            yield from self._upgrade(version)
        for statement in FIND_INDEXES.values():
            yield Statement(statement)

    def _indexed(self) -> Steps[bool]:
        """Whether ``sp_deals`` has every index ``find`` seeks with (``FIND_INDEXES``)."""
        rows = yield Statement(self.sql.dialect.index_names, (), "all")
        return {self._names.of(name) for name in FIND_INDEXES} <= {row[0] for row in rows}

    def _upgrade(self, version: int) -> Steps[None]:
        """Bring a database at ``version`` to ``SCHEMA_VERSION`` in the caller's transaction."""
        steps = UPGRADES[self.sql.dialect.name]
        for target in range(version + 1, SCHEMA_VERSION + 1):
            if target not in steps:
                raise StorageError(
                    f"the database has schema version {version}, which this salespipeline "
                    "cannot upgrade"
                )
            for statement in steps[target]:
                yield Statement(statement)
        yield from _fill_figures(self.sql.placeholder)
        if version < 3:
            yield from self._log_lock
            yield from self._fill_log()
            yield Statement(f"DROP TABLE {OLD_HISTORY}")
        yield Statement(
            self.sql.q("UPDATE sp_meta SET value = ? WHERE key = ?"),
            (str(SCHEMA_VERSION), _SCHEMA_KEY),
        )

    def _stored_schema_version(self) -> Steps[int | None]:
        select = self.sql.q("SELECT value FROM sp_meta WHERE key = ?")
        row = yield Statement(select, (_SCHEMA_KEY,), "one")
        if row is None:
            return None
        version = _schema_number(row[0])
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"the database has schema version {version}, newer than this salespipeline "
                f"understands ({SCHEMA_VERSION}); upgrade salespipeline to open it"
            )
        return version

    # -- deals ------------------------------------------------------------------------

    def add(
        self,
        deal: Deal,
        *,
        actor: str | None = None,
        reason: str | None = None,
        key: str | None = None,
    ) -> Change:
        return self._run(self._add(deal, actor, reason, key))

    def _add(
        self, deal: Deal, actor: str | None, reason: str | None, key: str | None
    ) -> Plan[Change]:
        deal = check_deal(deal)
        check_change_args(actor, reason, key)
        changes = log.recorded(deal, actor=actor, reason=reason, key=key)
        written = _figures.written(_figures.of_history(deal.history))
        try:
            position = yield Within("write", self._add_steps(deal, changes, written.values))
        except UniqueViolation as error:
            _refuse_row(error, deal, key)
        self._remember(as_stored(deal, changes[-1]), written)
        return changes[-1].with_position(position)

    def _add_steps(
        self, deal: Deal, changes: Sequence[Change], figures: Sequence[Any]
    ) -> Steps[int]:
        row = [*self._row_values(deal), *figures]
        if (yield Statement(self.sql.insert_deal, row, "rowcount")) != 1:
            raise DuplicateDealError(deal.id)
        yield from self._refuse_erased([deal.id])
        yield from self._log_lock
        for change in changes:
            position = yield from self._insert_log(_codec.log_values(change))
        return position

    def add_many(
        self,
        deals: Iterable[Deal],
        *,
        actor: str | None = None,
        reason: str | None = None,
        key: str | None = None,
        imported: bool = False,
    ) -> tuple[Change, ...]:
        """Every deal's row, then every change row, each one batched statement (executemany)."""
        return self._run(self._add_many(encoded_adds(deals, actor, reason, key, imported), key))

    def _add_many(
        self, planned: Sequence[EncodedAdd], key: str | None
    ) -> Plan[tuple[Change, ...]]:
        if not planned:
            return ()
        checked = [add.deal for add in planned]
        changes = [row for add in planned for row in add.changes]
        try:
            positions = yield Within("write", self._add_many_steps(checked, changes))
        except _Taken:
            raise DuplicateDealError((yield from self._first_taken(checked))) from None
        except UniqueViolation as error:
            _refuse_row(error, checked[0], key)
        return _last_of_each(planned, positions)

    def _add_many_steps(
        self, deals: Sequence[Deal], changes: Sequence[Sequence[Any]]
    ) -> Steps[list[int]]:
        rows = [self._new_row(d) for d in deals]
        if (yield Statement(self.sql.insert_deal, rows, "rowcount", many=True)) != len(deals):
            raise _Taken
        yield from self._refuse_erased([deal.id for deal in deals])
        yield from self._log_lock
        return (yield from self._insert_logs(changes))

    def _new_row(self, deal: Deal) -> tuple[Any, ...]:
        """A new deal's row: its own columns, then the figures its history implies (a
        tuple of plain values, which the cyclic collector stops tracking)."""
        return (*self._row_values(deal), *_figures.values(_figures.of_history(deal.history)))

    def _insert_logs(self, changes: Sequence[Sequence[Any]]) -> Steps[list[int]]:
        """Insert the change rows (``_codec.log_values``) in one batch; their positions,
        in order.

        Under the log lock positions are drawn in insert order, so the new rows fill
        one range past the highest position before; they are read back one by one only
        when they do not.
        """
        q = self.sql.q
        before = read_int(
            (yield Statement(q("SELECT MAX(position) FROM sp_changes"), (), "one"))[0]
        )
        yield Statement(self.sql.insert_log, changes, many=True)
        counted = q(
            "SELECT COUNT(*), MIN(position), MAX(position) FROM sp_changes WHERE position > ?"
        )
        count, low, high = (read_int(v) for v in (yield Statement(counted, (before,), "one")))
        if count == len(changes) and high - low + 1 == count:
            return list(range(low, high + 1))
        select = q("SELECT deal_id, version, position FROM sp_changes WHERE position > ?")
        rows = yield Statement(select, (before,), "all")
        found = {(row[0], read_int(row[1])): read_int(row[2]) for row in rows}
        return [found[(row[_DEAL_ID], row[_VERSION])] for row in changes]

    def _first_taken(self, deals: Sequence[Deal]) -> Plan[str]:
        """The first of ``deals`` whose id the store already has (after a refused batch)."""
        p = self.sql.placeholder
        for start in range(0, len(deals), 500):
            ids = [deal.id for deal in deals[start : start + 500]]
            marks = ", ".join([p] * len(ids))
            select = Statement(f"SELECT id FROM sp_deals WHERE id IN ({marks})", ids, "all")
            taken = {row[0] for row in (yield Within("read", one(select)))}
            for id in ids:
                if id in taken:
                    return id
        raise StorageError("the database refused a deal id it does not hold")

    def save(
        self,
        deal: Deal,
        *,
        actor: str | None = None,
        reason: str | None = None,
        key: str | None = None,
    ) -> Change:
        return self._run(self._save(deal, actor, reason, key))

    def _save(
        self, deal: Deal, actor: str | None, reason: str | None, key: str | None
    ) -> Plan[Change]:
        deal = check_deal(deal)
        check_change_args(actor, reason, key)
        base = deal.version - 1
        remembered = self._recent.deal(deal.id, base)
        stored, known = remembered or (yield from self._stored_at(deal.id, base))
        change = log.derive(stored, deal, actor=actor, reason=reason, key=key)
        columns, values, written = self._written(deal, change, stored, known)
        logged = _codec.log_values(change)  # before created_at: to_us reuses the move's time
        params = [*values, deal.id, base, _codec.to_us(deal.created_at)]
        try:
            position = yield self._update(tuple(columns), params, logged)
        except UniqueViolation as error:
            _refuse_row(error, deal, key)
        if position is None:
            raise (yield from self._refusal(deal, base))
        self._remember(as_stored(deal, change), written)
        return log.committed_at(change, position)

    def _written(
        self, deal: Deal, change: Change, stored: Deal, known: object
    ) -> tuple[list[str], list[Any], _figures.Written | None]:
        """The columns a save writes, their values, and the figures the row will hold
        (None: not known)."""
        new = new_entries(deal, stored.history)
        before, stored_values = self._known_figures(stored, known)
        columns, values = self._changed_columns(deal, change)
        if new:
            written = self._changed_figures(columns, values, stored_values, before, new, stored)
            return columns, values, written
        if stored_values is not None and list(stored_values) == list(before.values):
            return columns, values, before
        return columns, values, None

    def _changed_columns(self, deal: Deal, change: Change) -> tuple[list[str], list[Any]]:
        """The deal columns a save writes and their values: those of the attributes the
        change altered, then the version and the time."""
        columns: list[str] = []
        values: list[Any] = []
        columns_of, encoders = self.sql.columns_of, self._encoders
        for name in change.changed:
            columns += columns_of[name]
            values += encoders[name](deal)
        columns += ("version", "updated_at_us")
        values += (deal.version, _codec.to_us(deal.updated_at))
        return columns, values

    @staticmethod
    def _changed_figures(
        columns: list[str],
        values: list[Any],
        stored_values: Sequence[Any] | None,
        before: _figures.Written,
        new: Sequence[StageChange],
        stored: Deal,
    ) -> _figures.Written:
        """Add the figure columns the new history entries alter (every one when what the
        row holds is not known); the figures as the row will hold them."""
        last = stored.history[-1]
        if len(new) == 1:
            after = _figures.moved(before, last, new[0])
        else:
            after = _figures.written(_figures.extended(_figures.read(before.values), last, new))
        now = after.values
        if stored_values is None:
            columns += _figures.COLUMNS
            values += now
        else:
            if len(stored_values) != len(now):
                raise ValueError("the row's figures are not one value per figure column")
            differ = list(map(ne, stored_values, now))
            columns += compress(_figures.COLUMNS, differ)
            values += compress(now, differ)
        return after

    @staticmethod
    def _known_figures(
        stored: Deal, known: object
    ) -> tuple[_figures.Written, Sequence[Any] | None]:
        """The derived figures of the stored deal, and the values its row holds for them
        (None: not known): as written, derived from a short history in memory (the
        source of truth), else read from its row, or derived again from its history
        when the row's do not read. The row's values only decide which columns a save
        writes, so they need no check."""
        if isinstance(known, _figures.Written):
            return known, known.values
        if isinstance(known, (list, tuple)):
            history = stored.history
            if history.loaded and len(history) <= LOAD_LATEST:  # cheaper than reading the row's
                return _figures.written(_figures.of_history(history)), known
            with contextlib.suppress(ValueError):  # unreadable: derived again below
                return _figures.written(_figures.read(known)), known
        return _figures.written(_figures.of_history(stored.history)), None

    def last_known(self, id: str) -> Deal | None:
        return self._recent.latest(id)

    def _remember(self, deal: Deal, figures: object = None) -> None:
        """Keep ``deal`` as the stored one; inside a transaction the store does not end
        (it may yet be rolled back), forget its id instead."""
        if self._in_transaction():
            self._recent.forget(deal.id)
        else:
            self._recent.keep(deal, figures)

    def _remember_page(self, deals: Sequence[Deal]) -> None:
        """``_remember`` each deal of a ``find`` page, asking once whether in a transaction."""
        if self._in_transaction():
            for deal in deals:
                self._recent.forget(deal.id)
        else:
            self._recent.keep_all(deals)

    def _in_transaction(self) -> bool:
        """Whether this thread's calls are inside a transaction that outlasts them."""
        return False

    @functools.cached_property
    def _recent(self) -> Recent:
        return Recent()

    @functools.cached_property
    def _unread(self) -> weakref.WeakSet[_OlderReader]:
        """The readers of lazily loaded histories whose deals may still be in use."""
        return weakref.WeakSet()

    def _read_unread(self) -> None:
        """Before closing: read the older history of every lazily loaded deal still in
        use, so it can be read after the store is gone (the remembered deals are
        forgotten first: only the caller's own are read)."""
        self.__dict__.pop("_recent", None)
        if getattr(self, "_pid", os.getpid()) != os.getpid():
            return  # a forked child never touches the parent's connection
        for reader in list(self._unread):
            with contextlib.suppress(SalesPipelineError):  # it says why when read
                reader.read_now()
        self._unread.clear()

    def _stored_at(self, id: str, version: int) -> Plan[tuple[Deal, object]]:
        """The stored deal ``id`` at ``version`` and what is known of its figures, read
        back (for a deal not remembered at that version).

        ``ConcurrencyError`` when the stored deal is not at ``version``.
        """
        try:
            stored, figures = yield from self._load(id)
        except DealNotFoundError:
            raise ConcurrencyError(id, expected=version, actual=None) from None
        if stored.version != version:
            raise ConcurrencyError(id, expected=version, actual=stored.version)
        return stored, figures

    def _refusal(self, deal: Deal, base: int) -> Plan[SalesPipelineError]:
        """Explain why the conditional update matched no row, as the right error.

        Runs after the failed write: versions only rise, so a stored version still
        equal to ``base`` means the update failed on ``created_at``, not the version.
        """
        select = self.sql.q("SELECT version, stage FROM sp_deals WHERE id = ?")
        row = yield Within("statement", one(Statement(select, (deal.id,), "one")))
        if row is None or row[0] != base:
            return ConcurrencyError(deal.id, expected=base, actual=None if row is None else row[0])
        return ValidationError(
            "its created_at differs from the stored deal's; save only deals derived from the "
            "stored deal",
            deal_id=deal.id,
        )

    def get(self, id: str) -> Deal:
        return self._run(self._load(check_id(id), lazy=False))[0]

    def load(self, id: str) -> Deal:
        return self._run(self._load(check_id(id)))[0]

    _lazy_loads: ClassVar[bool] = True
    """Whether ``load`` may leave older history entries to be read when first needed
    (not where reads must be awaited)."""

    def _load(self, id: str, *, lazy: bool = True) -> Plan[tuple[Deal, tuple[Any, ...]]]:
        """Deal ``id`` and the raw values of its derived figures, both remembered.

        ``lazy``: only the latest ``LOAD_LATEST`` history entries are read with it,
        the older ones when first needed.
        """
        lazy = lazy and self._lazy_loads and not self._in_transaction()  # it may roll back
        select = self.sql.select_latest if lazy else self.sql.select_deal
        rows = yield Within("statement", one(Statement(select, (id, id, id), "all")))
        if not rows or rows[0][0] != 0:
            raise DealNotFoundError(id)
        head = rows[0]
        row = head[1 : 1 + len(_codec.DEAL_COLUMNS)]
        figures = tuple(head[1 + len(_codec.DEAL_COLUMNS) : 1 + _LOADED_DEAL])
        latest = [r[1 + _LOADED_DEAL :] for r in rows[1:]]
        moves = figures[-1]
        older = moves - len(latest) if is_int(moves) else -1
        if older < 0 or (older and (len(latest) < LOAD_LATEST or not lazy)):
            raise CorruptRecordError(
                id, f"its row counts {moves!r} history entries, not the {len(latest)} stored"
            )
        deal = self._decoded(id, row, latest, older)
        self._remember(deal, figures)
        return deal, figures

    def _decoded(self, id: str, row: Sequence[Any], latest: list[Any], older: int) -> Deal:
        """The deal of a loaded ``row``; ``older`` entries left unread are read when needed."""
        if not older:
            return _codec.decode_deal(row, latest)
        reader = _OlderReader(self, id, older)
        deal = _codec.decode_deal(row, latest, older=older, fetch=reader)
        reader.bind(deal)
        self._unread.add(reader)
        return deal

    def _read_older(self, id: str, count: int) -> list[StageChange]:
        """Deal ``id``'s ``count`` oldest history entries, each checked."""
        select = Statement(self.sql.select_older, (id, count), "all")
        rows = self._run(single("statement", select))
        return _codec.decode_history(id, rows)

    def _selected(self, query: Query) -> Iterator[Deal]:
        return self._pages(query)

    def _counted(self, query: Query) -> int:
        return self._run(self._count(query))

    def _count(self, query: Query) -> Plan[int]:
        conditions, params = self._conditions(query, None)
        select = Statement(f"SELECT COUNT(*) FROM sp_deals WHERE {conditions}", params, "one")
        return read_int((yield Within("read", one(select)))[0])

    def _carries(self, pipeline: str | None, stage: str | None) -> bool:
        return self._run(self._carrying(pipeline, stage))

    def _carrying(self, pipeline: str | None, stage: str | None) -> Plan[bool]:
        conditions, params = self._conditions(Query(pipeline=pipeline, stage=stage), None)
        select = Statement(f"SELECT 1 FROM sp_deals WHERE {conditions} LIMIT 1", params, "one")
        return (yield Within("statement", one(select))) is not None

    def _conditions(
        self, query: Query, after: str | None, *, prefix: str = ""
    ) -> tuple[str, list[Any]]:
        """``query``'s filters (and ``id > after``) as a WHERE clause with bound values."""
        return _where(self.sql.dialect, query, after, prefix)

    def _pages(self, query: Query) -> Iterator[Deal]:
        window = Window.first(query, self.find_batch)
        while window is not None:
            page = self._run(self._page(query, window.after, window.size))
            yield from page
            window = window.next(page)

    def _named(self, query: Query) -> Plan[Query]:
        """``query`` once its pipeline and stage names are checked against what the
        store knows (``check_names``): the plan of ``checked_query``'s check."""
        if query.pipeline is None and query.stage is None:
            return query
        definitions = yield from self._recorded()
        asked = {(query.pipeline, query.stage)} | (
            {(query.pipeline, None)} if query.pipeline else set()
        )
        carried: dict[tuple[str | None, str | None], bool] = {}
        for pipeline, stage in asked:
            carried[pipeline, stage] = yield from self._carrying(pipeline, stage)
        check_names(query, definitions, lambda pipeline, stage: carried[pipeline, stage])
        return query

    def _find_statement(self, query: Query, after: str | None, size: int) -> tuple[str, list[Any]]:
        """The SELECT of one page of ``find``: up to ``size`` deal rows after ``after``,
        each ending in its deal's history where the dialect aggregates it
        (``Statements.page_history``)."""
        conditions, params = self._conditions(query, after)
        columns = ", ".join(_codec.DEAL_COLUMNS)
        page = (
            f"SELECT {columns} FROM sp_deals WHERE {conditions} ORDER BY id "
            f"LIMIT {self.sql.placeholder}"
        )
        history = self.sql.page_history
        if history is not None:
            page = f"SELECT {self.sql.page_columns}, {history} FROM ({page}) p ORDER BY p.id"
        return page, [*params, size]

    def _page(self, query: Query, after: str | None, size: int) -> Plan[list[Deal]]:
        """Up to ``size`` deals after ``after``, histories read in the same snapshot: in
        the page's own statement (one round trip) where the dialect aggregates them,
        else by a second statement in the page's read transaction."""
        if self.sql.page_history is None:
            rows, changes = yield Within("read", self._page_steps(query, after, size))
            deals = [_codec.decode_deal(row, changes.get(row[0], ())) for row in rows]
        else:
            binary = self.sql.dialect.binary_pages
            page = Statement(*self._find_statement(query, after, size), "all", binary=binary)
            deals = [_codec.decode_found(row) for row in (yield Within("statement", one(page)))]
        self._remember_page(deals)
        return deals

    def _page_steps(
        self, query: Query, after: str | None, size: int
    ) -> Steps[tuple[list[Any], dict[str, list[Any]]]]:
        statement, params = self._find_statement(query, after, size)
        rows = yield Statement(statement, params, "all")
        if not rows:
            return [], {}
        return rows, (yield from self._page_changes(query, after, rows[-1][0]))

    def _page_changes(
        self, query: Query, after: str | None, last: str
    ) -> Steps[dict[str, list[Any]]]:
        conditions, params = self._conditions(query, after, prefix="d.")
        columns = ", ".join(f"c.{c}" for c in _codec.CHANGE_COLUMNS)
        p = self.sql.placeholder
        rows = yield Statement(
            f"SELECT {columns} FROM sp_changes c JOIN sp_deals d ON d.id = c.deal_id "
            f"WHERE c.version <= d.version AND c.to_stage IS NOT NULL AND d.id <= {p} "
            f"AND {conditions} "
            "ORDER BY c.deal_id, c.version",
            (last, *params),
            "all",
        )
        grouped: dict[str, list[Any]] = {}
        for change in rows:
            grouped.setdefault(change[0], []).append(change)
        return grouped

    # -- the change log ---------------------------------------------------------------

    def changes(self, id: str, *, key: str | None = None) -> tuple[Change, ...]:
        return self._run(self._changes(id, key))

    def _changes(self, id: str, key: str | None) -> Plan[tuple[Change, ...]]:
        id = check_id(id)
        check_change_args(None, None, key)
        rows = yield Within("read", self._changes_steps(id, key))
        if rows == [None] or (not rows and key is None):
            raise DealNotFoundError(id)
        return tuple(_codec.decode_change(row) for row in rows)

    def _changes_steps(self, id: str, key: str | None) -> Steps[list[Any]]:
        params = (id,) if key is None else (id, key)
        rows = yield Statement(self.sql.select_changes(keyed=key is not None), params, "all")
        if rows or key is None:
            return list(rows)
        select = self.sql.q("SELECT 1 FROM sp_changes WHERE deal_id = ? LIMIT 1")
        return [] if (yield Statement(select, (id,), "one")) else [None]

    def log(self, *, after: int = 0, limit: int = 1000) -> tuple[Change, ...]:
        return self._run(self._log(after, limit))

    def _log(self, after: object, limit: object) -> Plan[tuple[Change, ...]]:
        after, limit = check_log_page(after, limit)
        select = Statement(self.sql.select_log, (after, limit), "all")
        return tuple(map(_codec.decode_change, (yield Within("statement", one(select)))))

    def erase(
        self,
        id: str,
        *,
        actor: str,
        reason: str,
        key: str | None = None,
        at: datetime | None = None,
    ) -> Change:
        return self._run(self._erase(check_erasure(id, actor, reason, key, at)))

    def _erase(self, erasure: Erasure) -> Plan[Change]:
        change: Change = yield Within("write", self._erase_rows(erasure))
        self._recent.forget(erasure.id)
        self._when_committed(self._erased)
        return change

    def _erase_rows(self, erasure: Erasure) -> Steps[Change]:
        """Delete the deal's row and changes and log its erase change; the change."""
        id = erasure.id
        read = f"SELECT version, updated_at_us FROM sp_deals WHERE id = ?{self._row_lock}"
        row = yield Statement(self.sql.q(read), (id,), "one")
        if row is None:
            return (yield from self._erased_before(erasure))
        try:
            change = erase_change(erasure, read_int(row[0]), _codec.from_us(read_int(row[1])))
        except (TypeError, ValueError) as error:
            raise CorruptRecordError(id, f"its version or time does not read: {error}") from error
        yield from self._log_lock
        yield from self._deleting_securely(self._deletes(id))
        return change.with_position((yield from self._insert_log(_codec.log_values(change))))

    def _deletes(self, id: str) -> Steps[None]:
        yield Statement(self.sql.q("DELETE FROM sp_changes WHERE deal_id = ?"), (id,))
        yield Statement(self.sql.q("DELETE FROM sp_deals WHERE id = ?"), (id,))

    def _refuse_erased(self, ids: Sequence[str], *, batch: int = 500) -> Steps[None]:
        """An erased deal's id stays taken (its erase change is in the log under it):
        ``DuplicateDealError`` for the first of ``ids`` the log holds, a batch per query."""
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            marks = ", ".join("?" * len(chunk))
            select = self.sql.q(
                f"SELECT deal_id FROM sp_changes WHERE deal_id IN ({marks}) LIMIT 1"
            )
            row = yield Statement(select, chunk, "one")
            if row is not None:
                raise DuplicateDealError(str(row[0]))

    def _erased_before(self, erasure: Erasure) -> Steps[Change]:
        """The erase change a retry with the same key asks for; else ``DealNotFoundError``."""
        columns = ", ".join(_codec.LOG_COLUMNS)
        select = (
            f"SELECT {columns} FROM sp_changes WHERE deal_id = ? ORDER BY version DESC LIMIT 1"
        )
        row = yield Statement(self.sql.q(select), (erasure.id,), "one")
        done = erased_by((_codec.decode_change(row),) if row else (), erasure.key)
        if done is None:
            raise DealNotFoundError(erasure.id)
        return done

    def _deleting_securely(self, deletes: Steps[None]) -> Steps[None]:
        """An erase's deletes, with what the backend needs so the deleted bytes are gone."""
        yield from deletes

    def _erased(self) -> None:
        """Once an erase is committed: let the backend clear its files of the old copies."""

    def consumer_position(self, name: str) -> int:
        return self._run(self._consumer_position(name))

    def _consumer_position(self, name: str) -> Plan[int]:
        name = check_consumer_name(name)
        select = self.sql.q("SELECT position FROM sp_consumers WHERE name = ?")
        row = yield Within("statement", one(Statement(select, (name,), "one")))
        if row is None:
            return 0
        if not is_int(row[0]) or row[0] < 0:
            raise StorageError(f"consumer {name!r} has a damaged position {row[0]!r}")
        return int(row[0])

    def record_consumer_position(
        self, name: str, position: int, *, backwards: bool = False
    ) -> None:
        self._run(self._record_consumer_position(name, position, backwards))

    def _record_consumer_position(self, name: str, position: int, backwards: bool) -> Plan[None]:
        name, position = check_recorded(name, position, backwards)
        kept = (
            "excluded.position"
            if backwards
            else self.sql.dialect.greatest("sp_consumers.position", "excluded.position")
        )
        upsert = self.sql.q(
            "INSERT INTO sp_consumers (name, position) VALUES (?, ?) "
            f"ON CONFLICT (name) DO UPDATE SET position = {kept}"
        )
        yield Within("write", one(Statement(upsert, (name, position))))

    def _fill_log(self, *, batch: int = 1000) -> Steps[None]:
        """Write the change log of every deal from the version 1-2 history (an upgrade)."""
        p = self.sql.placeholder
        columns = ", ".join(_codec.DEAL_COLUMNS)
        after = ""
        while True:
            select = f"SELECT {columns} FROM sp_deals WHERE id > {p} ORDER BY id LIMIT {batch}"
            rows = yield Statement(select, (after,), "all")
            if not rows:
                return
            last = rows[-1][0]
            changes = yield Statement(
                "SELECT c.deal_id, c.version, c.from_stage, c.to_stage, c.at_us, c.reason, NULL "
                f"FROM {OLD_HISTORY} c JOIN sp_deals d ON d.id = c.deal_id "
                f"WHERE c.version <= d.version AND d.id > {p} AND d.id <= {p} "
                "ORDER BY c.deal_id, c.version",
                (after, last),
                "all",
            )
            histories: dict[str, list[Any]] = {}
            for change in changes:
                histories.setdefault(change[0], []).append(change)
            for row in rows:
                deal = _codec.decode_deal(row, histories.get(row[0], ()))
                for change in log.recorded(deal):
                    yield from self._insert_log(_codec.log_values(change))
            after = last

    # -- pipelines --------------------------------------------------------------------

    def save_pipeline(self, pipeline: Pipeline) -> None:
        self._run(self._save_pipeline(pipeline))

    def _save_pipeline(self, pipeline: Pipeline) -> Plan[None]:
        row = definition_row(pipeline)
        p = self.sql.placeholder
        upsert = (
            "INSERT INTO sp_pipelines (name, version, definition) "
            f"VALUES ({p}, {p}, {self.sql.dialect.json_param}) ON CONFLICT (name, version) "
            "DO UPDATE SET definition = excluded.definition"
        )
        yield Within("write", one(Statement(upsert, row)))

    def pipelines(self) -> tuple[Pipeline, ...]:
        return decode_all(self._definitions())

    def _definitions(self) -> dict[str, object]:
        return self._run(self._recorded())

    def _recorded(self) -> Plan[dict[str, object]]:
        """Each pipeline's newest definition, as stored."""
        select = Statement(
            "SELECT name, definition FROM sp_pipelines p WHERE version = "
            "(SELECT MAX(version) FROM sp_pipelines q WHERE q.name = p.name)",
            (),
            "all",
        )
        return dict((yield Within("read", one(select))))

    # -- report (aggregated in SQL: storage/sql/_report.py) ----------------------------

    def report(
        self,
        pipeline: Pipeline | str,
        *,
        as_of: datetime | None = None,
        owner: str | None = None,
        currency: str | None = None,
        rates: Mapping[str, Decimal | int] | None = None,
        now: datetime | None = None,
    ) -> PipelineReport:
        """Every metric for ``pipeline`` as it stood at ``as_of``, aggregated by the
        database in one snapshot.

        Equal (``==``) to ``metrics.report`` over the deals replayed from the log up to
        ``as_of``, with the same arguments.
        """
        resolved = self._resolve(pipeline)
        return self._run(
            self._reported(
                resolved, as_of=as_of, now=now, owner=owner, currency=currency, rates=rates
            )
        )

    def _reported(
        self,
        resolved: Pipeline,
        *,
        as_of: datetime | None,
        now: datetime | None,
        owner: str | None,
        currency: str | None,
        rates: Mapping[str, Decimal | int] | None,
    ) -> Plan[PipelineReport]:
        """The plan of ``sql_report`` of ``resolved`` (one read transaction), its arguments
        checked now; junk in a column is a StorageError."""
        plan = sql_report(
            resolved,
            as_of=as_of,
            now=now,
            dialect=self.sql.dialect,
            owner=owner,
            currency=currency,
            rates=rates,
        )
        return _aggregated(resolved, plan)

    def movement(
        self,
        pipeline: Pipeline | str,
        *,
        start: datetime,
        end: datetime,
        rates: Mapping[str, Decimal | int] | None = None,
        currency: str | None = None,
    ) -> Movement:
        """The waterfall over ``[start, end)``: quiet deals summed in SQL, the rest streamed
        (``_movement``)."""
        resolved = self._resolve(pipeline)
        return sql_movement(
            self._read,
            self.sql.dialect,
            resolved,
            start=start,
            end=end,
            rates=rates,
            currency=currency,
        )


def _aggregated(resolved: Pipeline, plan: Plan[PipelineReport]) -> Plan[PipelineReport]:
    """``plan``, with junk in a stored column (a value of the wrong kind) a StorageError."""
    try:
        return (yield from plan)
    except SalesPipelineError:
        raise
    except (ValueError, TypeError, ArithmeticError) as error:  # junk in a stored column
        raise StorageError(
            f"the stored deals of pipeline {resolved.name!r} cannot be aggregated: "
            f"a column holds a value of the wrong kind ({type(error).__name__}: {error})"
        ) from error


class _OlderReader:
    """Reads the older history entries a load left unread, the first time they are needed.

    It holds the store and the history weakly (a deal kept in memory keeps no
    connection open) and checks what it reads: a chain from the deal's first stage
    to its latest entries. A store reads every head still unread when it closes, so
    a deal outlives its store.
    """

    def __init__(self, store: SQLStore, id: str, count: int) -> None:
        self._store = weakref.ref(store)
        self._id, self._count = id, count
        self._head: Callable[[], Any] = lambda: None
        self._created_at: datetime | None = None
        self._latest: StageChange | None = None

    def bind(self, deal: Deal) -> None:
        """Say which deal's head this reads (once the deal is decoded)."""
        head = head_of(deal.history)
        if head is not None:
            self._head = weakref.ref(head)
        self._created_at, self._latest = deal.created_at, deal.history.latest()[0]

    def read_now(self) -> None:
        """Read the head now if it is still wanted and unread."""
        head = self._head()
        if head is not None and not head.loaded:
            head.entries()

    def __call__(self) -> list[StageChange]:
        store = self._store()
        if store is None:
            raise StorageError(self._unread())
        try:
            older = store._read_older(self._id, self._count)
        except StorageError as error:
            raise StorageError(f"{self._unread()}: {error}") from error
        assert self._latest is not None
        problem = (
            f"it has {len(older)} older history entries, not {self._count}"
            if len(older) != self._count
            else chain_problem(self._id, [*older, self._latest], created_at=self._created_at)
        )
        if problem is not None:
            raise CorruptRecordError(self._id, problem)
        return older

    def _unread(self) -> str:
        return (
            f"the {self._count} oldest history entries of deal {self._id!r} were left to be "
            "read when needed, and its store cannot read them now (read the history while "
            "the store is open, or load the deal with store.get(), which reads all of it)"
        )


def _fill_figures(p: str, *, batch: int = 1000) -> Steps[None]:
    """Write every stored deal's derived figures (``storage._figures``) from its history.

    Works through the deals in id order, ``batch`` at a time, in the caller's
    transaction, so a schema upgrade stays one transaction.
    """
    update = ", ".join(f"{column} = {p}" for column in _figures.COLUMNS)
    after = ""
    while True:
        select = f"SELECT id FROM sp_deals WHERE id > {p} ORDER BY id LIMIT {batch}"
        ids = [row[0] for row in (yield Statement(select, (after,), "all"))]
        if not ids:
            return
        rows = yield Statement(
            f"SELECT c.deal_id, c.to_stage, c.at_us FROM {OLD_HISTORY} c "
            f"JOIN sp_deals d ON d.id = c.deal_id WHERE c.version <= d.version "
            f"AND d.id > {p} AND d.id <= {p} ORDER BY c.deal_id, c.version",
            (after, ids[-1]),
            "all",
        )
        histories: dict[str, tuple[list[str], list[int]]] = {i: ([], []) for i in ids}
        for deal_id, to_stage, at_us in rows:
            if not isinstance(to_stage, str) or not is_int(at_us):
                raise CorruptRecordError(
                    deal_id, "its history cannot be read to upgrade the database's schema"
                )
            stages, times = histories[deal_id]
            stages.append(to_stage)
            times.append(at_us)
        values = [[*_figures.figure_values(*h), i] for i, h in histories.items()]
        yield Statement(f"UPDATE sp_deals SET {update} WHERE id = {p}", values, many=True)
        after = ids[-1]


@attrs.frozen
class Window:
    """Where the next page of a ``find`` starts (``after``) and how many deals it asks for."""

    after: str | None
    size: int
    left: int | None
    batch: int

    @classmethod
    def first(cls, query: Query, batch: int) -> Window | None:
        return cls._of(query.after, query.limit, batch)

    @classmethod
    def _of(cls, after: str | None, left: int | None, batch: int) -> Window | None:
        size = batch if left is None else min(left, batch)
        return cls(after, size, left, batch) if size > 0 else None

    def next(self, page: Sequence[Deal]) -> Window | None:
        """The window after ``page`` (None: that was the last)."""
        if len(page) < self.size:
            return None
        left = None if self.left is None else self.left - len(page)
        return self._of(page[-1].id, left, self.batch)


def _schema_number(value: object) -> int:
    """A stored schema version: the ASCII digits of a whole number, else ``StorageError``."""
    text = value if isinstance(value, str) else ""
    if not _VERSION_TEXT.fullmatch(text):
        raise StorageError(
            f"the database's schema version {shown(value)} is not a whole number; it was not "
            "written by salespipeline, or it was damaged"
        )
    return int(text)


class _Taken(Exception):
    """A batch of new deals met an id the store already has (its write rolls back)."""


_WRITTEN: Final = _codec.LOG_COLUMNS[1:]  # a change row as written: all but the position
_DEAL_ID: Final = _WRITTEN.index("deal_id")
_VERSION: Final = _WRITTEN.index("version")


class EncodedAdd(NamedTuple):
    """A new deal as ``add_many`` writes it: the deal, its change rows
    (``_codec.log_values``) and its last change, the one returned. The other changes
    are let go once encoded: a batch of 100,000 deals kept half a million ``Change``
    values alive, and the cyclic collector walked them all again and again."""

    deal: Deal
    changes: tuple[tuple[Any, ...], ...]
    last: Change


def encoded_adds(
    deals: object, actor: object, reason: object, key: object, imported: bool
) -> list[EncodedAdd]:
    """``add_many``'s arguments checked (``each_planned_add``) and encoded, before any write."""
    return [
        EncodedAdd(deal, tuple(_codec.log_values(change) for change in made), made[-1])
        for deal, made in each_planned_add(deals, actor, reason, key, imported=imported)
    ]


def _last_of_each(planned: Sequence[EncodedAdd], positions: Sequence[int]) -> tuple[Change, ...]:
    """Each deal's last change with its position (``positions`` follow every change in order)."""
    last: list[Change] = []
    index = -1
    for add in planned:
        index += len(add.changes)
        last.append(add.last.with_position(positions[index]))
    return tuple(last)


def _refuse_row(error: UniqueViolation, deal: Deal, key: str | None) -> NoReturn:
    """History rows beyond the stored version mean the database was tampered with; a
    refused idempotency key is the caller's ``ValidationError``."""
    if error.of_key:  # the index on (deal_id, key) refused it: the write rolled back
        raise ValidationError(
            f"key {key!r} is already in the deal's log", deal_id=deal.id, field="key"
        ) from None
    raise CorruptRecordError(
        deal.id, "the history already holds entries newer than the stored deal"
    ) from error


def _where(
    dialect: Dialect, query: Query, after: str | None, prefix: str
) -> tuple[str, list[Any]]:
    """``find``'s filters as SQL conditions on ``sp_deals`` (columns named with
    ``prefix``), with bound values; what ``Query.matches`` reads in Python."""
    p = dialect.placeholder
    since = None if query.updated_since is None else _codec.to_us(query.updated_since)
    compared = (
        ("id >", after),
        ("pipeline =", query.pipeline),
        ("stage =", query.stage),
        ("owner =", query.owner),
        ("updated_at_us >=", since),
    )
    conditions = [f"{prefix}{column} {p}" for column, value in compared if value is not None]
    params: list[Any] = [value for _, value in compared if value is not None]
    if since is not None:
        conditions[-1] = dialect.since.format(conditions[-1])
    if query.open is not None:
        conditions.append(f"{prefix}stage {'NOT IN' if query.open else 'IN'} ({p}, {p})")
        params.extend((WON, LOST))
    for key, wanted in query.fields:
        condition, values = dialect.field_match(p, f"{prefix}fields", key, wanted)
        conditions.append(condition)
        params.extend(values)
    return (" AND ".join(conditions) or "1 = 1"), params
