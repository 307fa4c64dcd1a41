"""Where a SQL store's tables live: a name prefix, and a PostgreSQL schema (private).

The store's SQL is written with the default names (``sp_deals``, ``sp_changes``, …
and indexes named after them). A store given ``prefix=`` or ``schema=`` renames
them in each statement as it is run, once per distinct statement (cached), so an
app can keep the tables beside its own, or in a schema of their own.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from typing import Any, Final

import attrs

from salespipeline.errors import ValidationError, shown

__all__ = ["DEFAULT", "Names", "Renamed", "check_names"]

_PREFIX: Final = re.compile(r"[a-z][a-z0-9_]{0,23}_")
_SCHEMA: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_TABLES: Final = ("meta", "pipelines", "deals", "changes", "consumers", "stage_changes")
_NAME: Final = re.compile(r"\bsp_(\w+)")


@attrs.frozen
class Names:
    """The prefix of every table and index name, and the schema that holds the tables."""

    prefix: str = "sp_"
    schema: str | None = None

    def of(self, name: str) -> str:
        """A default name (``sp_changes_key``) as this store names it (unqualified)."""
        return _NAME.sub(lambda m: self.prefix + m.group(1), name)

    def rename(self, sql: str) -> str:
        """``sql`` with every default table and index name renamed (tables qualified)."""
        return _renamed(sql, self.prefix, self.schema)


DEFAULT: Final = Names()


@functools.lru_cache(maxsize=4096)
def _renamed(sql: str, prefix: str, schema: str | None) -> str:
    qualifier = "" if schema is None else f'"{schema}".'

    def name(match: re.Match[str]) -> str:
        rest = match.group(1)
        return (qualifier if rest in _TABLES else "") + prefix + rest

    return _NAME.sub(name, sql)


def check_names(prefix: object, schema: object, *, schemas: bool) -> Names:
    """``prefix=`` and ``schema=`` checked (``schemas``: the backend has schemas)."""
    if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
        raise ValidationError(
            f"prefix must be lower-case letters, digits and underscores, starting with a "
            f"letter, ending in '_', at most 24 characters (like 'crm_'), not {shown(prefix)}"
        )
    if schema is not None and not schemas:
        raise ValidationError("schema= is for PostgreSQL; SQLite has no schemas (use prefix=)")
    if schema is not None and (not isinstance(schema, str) or not _SCHEMA.fullmatch(schema)):
        raise ValidationError(
            f"schema must be an identifier (letters, digits and underscores, not starting "
            f"with a digit, at most 63 characters), not {shown(schema)}"
        )
    names = Names(prefix, schema)
    return DEFAULT if names == DEFAULT else names  # the default runs statements unrenamed


class Renamed:
    """A driver cursor whose statements are renamed as ``names`` says, as they run."""

    __slots__ = ("_cursor", "_names")

    def __init__(self, cursor: Any, names: Names) -> None:
        self._cursor, self._names = cursor, names

    def execute(self, sql: str, params: Sequence[Any] = (), /, *, binary: bool = False) -> object:
        if binary:  # psycopg's rows in binary format (a driver without it is never asked)
            return self._cursor.execute(self._names.rename(sql), params, binary=True)
        return self._cursor.execute(self._names.rename(sql), params)

    def executemany(self, sql: str, params: Iterable[Sequence[Any]], /) -> object:
        return self._cursor.executemany(self._names.rename(sql), params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)
