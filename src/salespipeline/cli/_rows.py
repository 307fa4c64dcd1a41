"""Rows of an imported CSV file as deals to write, under a mapping (private).

``bind`` fixes which cell holds each mapped attribute, once per file; ``plan`` makes
one row a Deal, exactly as the Tracker would make it: ``Pipeline.start`` for a row
with no past (opened now, in the first stage), ``_bulk.imported_deal`` for a row
with one. A row's past comes from its times: when it entered each stage
(``entered.<stage>``), its current stage (``stage_entered_at``, or ``closed_at`` for
a won or lost deal) and when it was created (``created_at``, an entry in the first
stage when it is earlier than every other). A refusal is a ``SalesPipelineError``
whose ``field`` is the attribute key of the cell at fault, when one is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import attrs

from salespipeline import _bulk
from salespipeline.cli._cells import Money
from salespipeline.cli._mapping import ImportMap
from salespipeline.deal import Bant, Deal
from salespipeline.errors import SalesPipelineError, ValidationError
from salespipeline.pipeline import Pipeline
from salespipeline.stages import LOST, WON

__all__ = ["Columns", "Planned", "bind", "plan"]

_ATTRIBUTES: Final = frozenset(_bulk.ATTRIBUTES) - {"bant", "fields"}
_TIMES: Final = frozenset({"created_at", "stage_entered_at", "closed_at", "next_action_at"})
_NEEDS_STAGE: Final = ("stage_entered_at", "closed_at")


@attrs.frozen
class Columns:
    """A mapping bound to one file's header: attribute key → cell index and column name."""

    mapping: ImportMap
    pipeline: Pipeline
    index: Mapping[str, int]
    width: int

    def column(self, key: str | None) -> str | None:
        """The column name holding attribute ``key`` (None when no column does)."""
        return self.mapping.columns[key] if key is not None and key in self.index else None

    def column_of(self, error: SalesPipelineError) -> str | None:
        """The column at fault in a refused row: the error's ``field``, else the attribute
        a deal's own check names first (``amount must not be negative``)."""
        field = getattr(error, "field", None)
        if field is None:
            words = error.message.removeprefix(f"deal {getattr(error, 'deal_id', '')!r}: ")
            field = words.partition(" ")[0]
        return self.column(field)


@attrs.frozen
class Planned:
    """Row ``number``'s deal, and whether it is imported with its past (else opened)."""

    number: int
    deal: Deal
    imported: bool


def bind(mapping: ImportMap, header: Sequence[str], pipeline: Pipeline) -> Columns:
    """The cell of each mapped column in ``header``; a column it lacks is refused, naming it."""
    names = [name.strip() for name in header]
    index: dict[str, int] = {}
    for key, column in mapping.columns.items():
        found = [n for n, name in enumerate(names) if name == column]
        if len(found) != 1:
            problem = "is not in" if not found else f"is {len(found)} times in"
            raise ValidationError(
                f"columns.{key}: column {column!r} {problem} the header", field=f"columns.{key}"
            )
        index[key] = found[0]
    if "id" not in index:
        raise ValidationError("columns.id: map the column of the deal ids", field="columns.id")
    staged = "stage" in index or "stage" in mapping.defaults
    for key in _NEEDS_STAGE:
        if key in index and not staged:
            raise ValidationError(f"columns.{key} needs columns.stage", field=f"columns.{key}")
    return Columns(mapping, pipeline, index, len(names))


def plan(
    cells: Sequence[str], number: int, columns: Columns, *, now: datetime, actor: str
) -> Planned:
    """Row ``number`` as the deal to write; a ``SalesPipelineError`` says why it cannot be."""
    if len(cells) != columns.width:
        raise ValidationError(f"it has {len(cells)} cells where the header has {columns.width}")
    values = _values(cells, columns)
    id = values.pop("id", None)
    if id is None:
        raise ValidationError("the deal id is empty", field="id")
    _priced(values, cells, columns)
    attributes = _attributes(values)
    pipeline = columns.pipeline
    history = _history(values, pipeline)
    if not history:
        return Planned(number, pipeline.start(id, **attributes, at=now, actor=actor), False)
    reason = values.get("lost_reason") if any(s == LOST for s, _ in history) else None
    if reason is None and any(s == LOST for s, _ in history):
        raise ValidationError(
            "the deal was lost but its lost reason is empty (map lost_reason or set "
            "defaults.lost_reason)",
            field="lost_reason",
        )
    deal = _bulk.imported_deal(
        pipeline, id, history, lost_reason=reason, attributes=attributes, actor=actor
    )
    return Planned(number, deal, True)


def _values(cells: Sequence[str], columns: Columns) -> dict[str, Any]:
    """Each filled cell (or its default) read as its attribute's value."""
    defaults = columns.mapping.defaults
    values: dict[str, Any] = {}
    for key in {**dict.fromkeys(columns.index), **dict.fromkeys(defaults)}:
        text = cells[columns.index[key]].strip() if key in columns.index else ""
        text = text or defaults.get(key, "")
        if text:
            values[key] = _read(key, text, columns)
    return values


def _priced(values: dict[str, Any], cells: Sequence[str], columns: Columns) -> None:
    """The amount cell's currency, when it names one, is the deal's; a currency cell (or
    the default currency) saying another rejects the row."""
    money: Money | None = values.get("amount")
    if money is None:
        return
    values["amount"] = money.amount
    if money.currency is None:
        return
    stated: str | None = values.get("currency")
    if stated is not None and stated.upper() != money.currency:
        where = columns.column("currency")
        said = (
            f"column {where!r}"
            if where is not None and cells[columns.index["currency"]].strip()
            else "defaults.currency"
        )
        raise ValidationError(
            f"the amount is in {money.currency} but {said} says {stated!r}", field="amount"
        )
    values["currency"] = money.currency


def _read(key: str, text: str, columns: Columns) -> Any:
    """One cell as the value of attribute ``key``; a refusal names the key."""
    try:
        return _reader(key, columns)(text)
    except ValidationError as error:
        raise ValidationError(error.message, field=key) from None


def _reader(key: str, columns: Columns) -> Callable[[str], Any]:
    cells = columns.mapping.cells
    if key == "amount":
        return cells.money
    if key == "close_date":
        return cells.date
    if key in _TIMES or key.startswith("entered."):
        return cells.time
    if key == "probability":
        return cells.probability
    if key.startswith("bant."):
        return cells.flag
    if key == "stage":
        return lambda text: _stage(text, columns)
    return str


def _stage(text: str, columns: Columns) -> str:
    """Their stage name as ours: through ``[stages]``, else one of our own names."""
    ours = columns.mapping.stages.get(text)
    if ours is None and text in columns.pipeline.stage_names:
        ours = text
    if ours is None:
        raise ValidationError(
            f"{text!r} is neither in the mapping's [stages] nor a stage of pipeline "
            f"{columns.pipeline.name!r}"
        )
    return ours


def _attributes(values: Mapping[str, Any]) -> dict[str, Any]:
    """``open()``'s keywords: the attributes, custom fields and BANT criteria given."""
    attributes = {k: v for k, v in values.items() if k in _ATTRIBUTES}
    fields = {k[len("fields.") :]: v for k, v in values.items() if k.startswith("fields.")}
    bant = {k[len("bant.") :]: v for k, v in values.items() if k.startswith("bant.")}
    if fields:
        attributes["fields"] = fields
    if bant:
        attributes["bant"] = Bant(**bant)
    return attributes


def _history(values: Mapping[str, Any], pipeline: Pipeline) -> list[tuple[str, datetime]]:
    """The row's past as (stage, at) entries, oldest first; empty for a deal with none."""
    entered = {k[len("entered.") :]: v for k, v in values.items() if k.startswith("entered.")}
    stage: str | None = values.get("stage")
    if stage is None and entered:
        stage = max(entered, key=lambda s: entered[s])
    first = pipeline.stages[0].name
    created: datetime | None = values.get("created_at")
    since = _since(stage, entered, values, created if stage == first else None)
    if stage is None or since is None:
        if stage in (None, first) and not entered and created is None:
            return []
        if stage is None:
            return [(first, created)] if created is not None else []
        raise ValidationError(
            f"the deal is in {stage!r} but no cell says since when (map stage_entered_at, "
            f"entered.{stage}{' or closed_at' if stage in (WON, LOST) else ''})",
            field="stage",
        )
    entered[stage] = since
    _check_order(entered, stage, since)
    if created is not None:
        _add_created(entered, first, created)
    return sorted(entered.items(), key=lambda e: (e[1], e[0] == stage))


def _since(
    stage: str | None,
    entered: Mapping[str, datetime],
    values: Mapping[str, Any],
    created: datetime | None,
) -> datetime | None:
    """When the deal entered its current stage, as the first cell that says it."""
    if stage is None:
        return None
    closed = values.get("closed_at") if stage in (WON, LOST) else None
    for at in (entered.get(stage), values.get("stage_entered_at"), closed, created):
        if at is not None:
            return at
    return None


def _check_order(entered: Mapping[str, datetime], stage: str, since: datetime) -> None:
    """No stage may be entered after the current one."""
    for other, at in entered.items():
        if other != stage and at > since:
            raise ValidationError(
                f"it entered {other!r} at {at.isoformat()}, after it entered its current "
                f"stage {stage!r} ({since.isoformat()})",
                field=f"entered.{other}",
            )


def _add_created(entered: dict[str, datetime], first: str, created: datetime) -> None:
    """``created_at`` is an entry in the first stage when it is earlier than every other."""
    earliest = min(entered.values())
    if created > earliest:
        stage = min(entered, key=lambda s: entered[s])
        raise ValidationError(
            f"it was created at {created.isoformat()}, after it entered {stage!r} "
            f"({earliest.isoformat()})",
            field="created_at",
        )
    if created < earliest:
        entered[first] = created
