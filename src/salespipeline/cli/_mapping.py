"""The mapping file of ``salespipeline import``: columns to attributes, stages to ours (private).

A mapping is TOML (read as definitions are, nesting within ``limits.MAX_DEPTH``) with
four tables, every one optional:

- ``[columns]``: deal attribute → the CSV column that holds it (see ``KEYS``;
  ``fields.<name>``, ``entered.<stage>`` and ``bant.<criterion>`` name a custom
  field, the time a stage was entered, a BANT criterion);
- ``[stages]``: the other system's stage name → one of the pipeline's stages;
- ``[defaults]``: attribute → the cell text used where its column is absent or empty;
- ``[parse]``: ``decimal`` (``"."`` or ``","``), ``date_format`` and ``time_format``
  (``strptime``), ``timezone`` (of times written without an offset; default UTC),
  ``symbols`` (currency symbol → ISO 4217 code, for amount cells like ``$1,200``).

Everything is checked against the pipeline before a row is read: a key that names
no attribute or stage is refused, naming the key.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from salespipeline.cli._cells import UNIT, Cells
from salespipeline.deal import BANT_CRITERIA, _to_currency
from salespipeline.definitions import _data
from salespipeline.errors import (
    DefinitionError,
    SalesPipelineError,
    UnknownStageError,
    ValidationError,
    shown,
)
from salespipeline.pipeline import Pipeline

__all__ = ["KEYS", "ImportMap", "default_map", "load_map"]

KEYS: Final = (
    "id",
    "stage",
    "amount",
    "currency",
    "owner",
    "close_date",
    "probability",
    "forecast_category",
    "next_action",
    "next_action_at",
    "lost_reason",
    "created_at",
    "stage_entered_at",
    "closed_at",
)
"""The attributes a column may hold, besides ``fields.*``, ``entered.*`` and ``bant.*``."""

_TABLES: Final = ("columns", "stages", "defaults", "parse")
_PARSE: Final = ("decimal", "date_format", "time_format", "timezone", "symbols")
E = TypeVar("E", bound=SalesPipelineError)


@attrs.frozen
class ImportMap:
    """A checked mapping: attribute key → column, their stage → ours, defaults, cell formats."""

    columns: Mapping[str, str]
    stages: Mapping[str, str] = attrs.field(factory=dict)
    defaults: Mapping[str, str] = attrs.field(factory=dict)
    cells: Cells = attrs.field(factory=Cells)


def load_map(path: Path, pipeline: Pipeline) -> ImportMap:
    """The mapping in TOML file ``path``, checked against ``pipeline``; errors name the key."""
    where = str(path)
    try:
        data = _data._parse(path.read_bytes().decode("utf-8"), "toml")
    except UnicodeDecodeError as error:
        raise ValidationError(f"{where} is not UTF-8: {error.reason}") from None
    except DefinitionError as error:
        raise ValidationError(f"{where}: " + "; ".join(error.problems)) from None
    try:
        return from_data(data, pipeline)
    except SalesPipelineError as error:
        raise _named(error, where) from None


def default_map(header: Sequence[str], pipeline: Pipeline) -> ImportMap:
    """Without a mapping file, each column is named for the attribute it holds."""
    unknown = [name for name in header if name and not _is_key(name, pipeline)]
    if unknown:
        raise ValidationError(
            f"column {unknown[0]!r} is not a deal attribute; name the columns {list(KEYS)} "
            "(or fields.<name>, entered.<stage>, bant.<criterion>), or map them with --map",
            field=unknown[0],
        )
    return ImportMap({name: name for name in header if name})


def from_data(data: Mapping[str, Any], pipeline: Pipeline) -> ImportMap:
    """The mapping in parsed TOML ``data``; a key naming no attribute or stage is refused."""
    for table in data:
        if table not in _TABLES:
            raise ValidationError(f"{table!r} is not a table of a mapping; use {list(_TABLES)}")
    columns = {k: _text(v, f"columns.{k}") for k, v in _flat(data, "columns")}
    defaults = {k: _cell(v, f"defaults.{k}") for k, v in _flat(data, "defaults")}
    for table, keys in (("columns", columns), ("defaults", defaults)):
        for key in keys:
            _check_key(key, pipeline, f"{table}.{key}")
    if "id" in defaults:
        raise ValidationError("defaults.id: every row needs its own id", field="defaults.id")
    stages = {k: _stage(v, pipeline, f"stages.{k}") for k, v in _table(data, "stages").items()}
    return ImportMap(columns, stages, defaults, _cells(_table(data, "parse")))


def _check_key(key: str, pipeline: Pipeline, where: str) -> None:
    if not _is_key(key, pipeline):
        prefix = key.partition(".")[0]
        if prefix == "entered":
            stage = UnknownStageError(key.partition(".")[2], pipeline=pipeline.name)
            raise _named(stage, where)
        raise ValidationError(
            f"{where}: {key!r} is not a deal attribute; use {list(KEYS)}, fields.<name>, "
            f"entered.<stage> or bant.<criterion>",
            field=where,
        )


def _is_key(key: str, pipeline: Pipeline) -> bool:
    prefix, dot, rest = key.partition(".")
    if not dot:
        return key in KEYS
    if prefix == "fields":
        return bool(rest.strip())
    if prefix == "entered":
        return rest in pipeline.stage_names
    return prefix == "bant" and rest in BANT_CRITERIA


def _table(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, Mapping):
        raise ValidationError(f"{name} must be a table, not {shown(table)}", field=name)
    return table


def _flat(data: Mapping[str, Any], name: str) -> Iterator[tuple[str, Any]]:
    """A table's entries with nested tables as dotted keys (``fields.account``)."""
    todo = [("", _table(data, name))]
    while todo:
        prefix, table = todo.pop(0)
        for key, value in table.items():
            if isinstance(value, Mapping):
                todo.append((f"{prefix}{key}.", value))
            else:
                yield f"{prefix}{key}", value


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{where} must be a column name, not {shown(value)}", field=where)
    return value.strip()


def _cell(value: object, where: str) -> str:
    """A default as the cell text it stands for (TOML numbers and booleans too)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value).strip()
    raise ValidationError(f"{where} must be text, a number or a boolean, not {shown(value)}")


def _stage(value: object, pipeline: Pipeline, where: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{where} must name a stage, not {shown(value)}", field=where)
    if value not in pipeline.stage_names:
        raise _named(UnknownStageError(value, pipeline=pipeline.name), where)
    return value


def _cells(parse: Mapping[str, Any]) -> Cells:
    """The ``[parse]`` table as cell readers."""
    for key in parse:
        if key not in _PARSE:
            raise ValidationError(f"parse.{key} is not an option; use {list(_PARSE)}")
    decimal = parse.get("decimal", ".")
    if decimal not in (".", ","):
        raise ValidationError(f"parse.decimal must be '.' or ',', not {shown(decimal)}")
    formats = [parse.get(name) for name in ("date_format", "time_format")]
    for name, form in zip(("date_format", "time_format"), formats, strict=True):
        if form is not None and (not isinstance(form, str) or "%" not in form):
            raise ValidationError(f"parse.{name} must be a strptime format, not {shown(form)}")
    zone = _zone(parse.get("timezone", "UTC"))
    return Cells(decimal, formats[0], formats[1], zone, _symbols(parse.get("symbols", {})))


def _symbols(table: object) -> dict[str, str]:
    """``[parse.symbols]``: each currency symbol an export writes, and its ISO 4217 code."""
    if not isinstance(table, Mapping):
        raise ValidationError(f"parse.symbols must be a table, not {shown(table)}")
    symbols: dict[str, str] = {}
    for symbol, code in table.items():
        where = f"parse.symbols.{symbol!r}"
        if not UNIT.fullmatch(symbol):
            raise ValidationError(
                f"{where}: a symbol has no digits, spaces, signs or separators", field=where
            )
        try:
            symbols[symbol] = _to_currency(code)
        except ValidationError as error:
            raise ValidationError(f"{where}: {error.message}", field=where) from None
    return symbols


def _zone(name: object) -> ZoneInfo:
    try:
        if isinstance(name, str):
            return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    raise ValidationError(f"parse.timezone {shown(name)} is not a time zone (say 'Europe/Paris')")


def _named(error: E, where: str) -> E:
    """``error`` with ``where`` (the file or key it is about) ahead of its message."""
    error.message = f"{where}: {error.message}"
    error.args = (error.message,)
    return error
