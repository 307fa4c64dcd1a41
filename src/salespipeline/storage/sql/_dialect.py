"""What SQLite and PostgreSQL spell differently, as one value per backend (private).

The store and its report write their SQL once, with ``?`` marks, and ask the
``Dialect`` that ``sqlite.py`` or ``postgres.py`` provides for the rest: the
placeholder, the modulo operator, how an exact amount sum is selected and read
back, and the planner hint of the grouped report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import attrs

from salespipeline._checks import is_int
from salespipeline.metrics._report import EXACT
from salespipeline.storage import _codec
from salespipeline.storage._query import FieldValue

__all__ = [
    "AmountPart",
    "Dialect",
    "FieldMatch",
    "Row",
    "json_each_field_match",
    "jsonb_field_match",
    "read_int",
    "read_split",
]

FieldMatch = Callable[[str, str, str, FieldValue], tuple[str, list[Any]]]
"""``(placeholder, fields column, key, value)`` -> the condition that the column's
``key`` equals ``value`` as ``Query.matches`` reads it, and its bound values."""


def json_each_field_match(
    p: str, column: str, key: str, value: FieldValue
) -> tuple[str, list[Any]]:
    """SQLite: the key's JSON type must fit (``true`` is not ``1``), then its value equal."""
    if value is None or isinstance(value, bool):
        kind = {None: "null", True: "true", False: "false"}[value]
        return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE key = {p} AND type = {p})", [
            key,
            kind,
        ]
    types = "'text'" if isinstance(value, str) else "'integer', 'real'"
    return (
        f"EXISTS (SELECT 1 FROM json_each({column}) WHERE key = {p} "
        f"AND type IN ({types}) AND atom = {p})",
        [key, value],
    )


def jsonb_field_match(p: str, column: str, key: str, value: FieldValue) -> tuple[str, list[Any]]:
    """PostgreSQL: JSONB equality, which compares numbers by value and never across types."""
    return f"{column} -> CAST({p} AS TEXT) = CAST({p} AS JSONB)", [key, _codec.dumps(value)]


Row = Mapping[str, object]
"""A result row, read by column name (the ``AS`` names of its SELECT)."""


def read_int(value: object) -> int:
    """An integer column or sum (PostgreSQL sums are NUMERIC); ValueError for anything else.

    SQLite sums a stray REAL into a REAL, so junk written into an integer column
    shows up here instead of being rounded into the report. NULL (no rows) is 0.
    """
    if value is None:
        return 0
    if is_int(value):
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    raise ValueError(f"expected an integer, found {value!r}")


def read_split(row: Row, name: str, unit: int) -> int:
    """The exact total of a sum selected by ``Dialect.split_sum`` as ``name``."""
    return read_int(row[f"{name}_q"]) * unit + read_int(row[f"{name}_r"])


def _read_decimal(value: object) -> Decimal:
    if isinstance(value, Decimal) or is_int(value):
        return Decimal(value)
    raise ValueError(f"expected an exact decimal sum, found {value!r}")


@attrs.frozen
class AmountPart:
    """One column an amount is kept in, counting units of ``10 ** exponent``.

    ``split``: sum it as quotient and remainder by ``split``, so a 64-bit integer
    sum cannot overflow; None where the database sums it exactly (NUMERIC).
    """

    column: str
    exponent: int = 0
    split: int | None = None


@attrs.frozen(kw_only=True)
class Dialect:
    """The spellings one database needs; every value stays a bound parameter.

    ``pipeline_scan`` is the pipeline column as the grouped report's WHERE names
    it: SQLite's ``+d.pipeline`` keeps its planner off the pipeline index, since
    reading the whole table in order beats looking most of its rows up one by one;
    ``updated_scan`` is the time column as a report's ``as_of`` condition names it,
    SQLite's ``+d.updated_at_us`` keeping it off the time index for the same reason
    (nearly every deal stands unchanged since ``as_of``; the few changed since are
    found by the time index in a statement of their own).
    ``field_match`` spells a ``find(fields=...)`` condition; ``index_names`` selects
    the names of ``sp_deals``'s indexes (to create the ones a database lacks);
    ``since`` wraps an ``updated_since`` condition: SQLite's planner, which keeps no
    histogram, is told a time window is selective (``likelihood``), so it seeks the
    time index and sorts the page rather than walking every id.
    ``history_json`` gathers a find page's history rows into one JSON text per deal
    (``{values}``: a row's values, ``{rows}``: the ``FROM ... WHERE`` of the deal's
    rows, ``{order}``: their order), so a page and its histories are one statement
    (PostgreSQL's ``ARRAY(SELECT ... ORDER BY ...)`` keeps the index's order, where an
    ordered ``json_agg`` sorts each deal's rows again); None: read them with a second
    statement in the page's read transaction (SQLite, in process, pays nothing for it).
    Such a page reads its ``page_text`` columns as their text (an amount's exact digits
    and places, the fields' JSON: what the codec reads, with no driver value made of
    them first), and its rows in the driver's binary format when ``binary_pages``.
    """

    name: str
    placeholder: str
    json_param: str
    modulo: str
    pipeline_scan: str
    updated_scan: str = "d.updated_at_us"
    amount: tuple[AmountPart, ...]
    field_match: FieldMatch
    index_names: str
    greatest_function: str = "GREATEST"
    since: str = "{}"
    history_json: str | None = None
    page_text: tuple[str, ...] = ()
    binary_pages: bool = False

    def greatest(self, *expressions: str) -> str:
        """The largest of ``expressions`` (SQLite's scalar ``MAX``, PostgreSQL's ``GREATEST``)."""
        return f"{self.greatest_function}({', '.join(expressions)})"

    def q(self, sql: str) -> str:
        """``sql`` written with ``?`` marks, in this dialect's spelling."""
        return sql.replace("?", self.placeholder)

    def split_sum(self, name: str, expression: str, unit: int) -> str:
        """Two integer sums, ``name_q`` and ``name_r``, whose exact total ``read_split`` gives."""
        parts = f"SUM(({expression}) / {unit}) AS {name}_q"
        return f"{parts}, SUM(({expression}) {self.modulo} {unit}) AS {name}_r"

    def amount_sum(self, name: str, table: str) -> str:
        """The sums whose exact total ``read_amount(row, name)`` gives: ``table``'s amounts."""
        sums = []
        for k, part in enumerate(self.amount):
            column = f"{table}.{part.column}"
            if part.split is None:
                sums.append(f"SUM({column}) AS {name}_{k}")
            else:
                sums.append(self.split_sum(f"{name}_{k}", column, part.split))
        return ", ".join(sums)

    def read_amount(self, row: Row, name: str) -> Decimal:
        """The exact amount sum selected by ``amount_sum`` as ``name``."""
        total = Decimal(0)
        for k, part in enumerate(self.amount):
            alias = f"{name}_{k}"
            if part.split is None:
                value = _read_decimal(row[alias])
            else:
                value = Decimal(read_split(row, alias, part.split))
            total = EXACT.add(total, EXACT.scaleb(value, part.exponent))
        return total
