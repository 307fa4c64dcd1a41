"""The pure parts of the bulk commands: ``open_many``'s items and imported deals (private).

Everything here checks its input and builds Deal values; nothing does I/O. An
imported deal's past is taken as fact: any order of the pipeline's stages, with no
guard or move-graph check, but its stages must exist, its times never run
backwards, and every LOST entry has a reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from salespipeline import _checks as c
from salespipeline import limits
from salespipeline.deal import Deal, StageChange
from salespipeline.errors import UnknownStageError, ValidationError, shown
from salespipeline.pipeline import Pipeline, check_lost_reason
from salespipeline.stages import LOST, WON

__all__ = ["ATTRIBUTES", "check_items", "imported_deal"]

ATTRIBUTES: Final = (
    "amount",
    "currency",
    "bant",
    "fields",
    "probability",
    "owner",
    "close_date",
    "forecast_category",
    "next_action",
    "next_action_at",
)
"""The deal attributes ``open`` and ``import_deal`` take as keywords."""


_DEFAULTED: Final = frozenset({"bant", "fields"})
"""Attributes that ``None`` leaves at their default, as ``Pipeline.start`` does."""


def check_items(items: object) -> tuple[Mapping[str, Any], ...]:
    """``open_many``'s items: mappings of ``open()``'s attribute keywords with ``id``, at
    most ``limits.MAX_BULK`` of them, each naming only known keywords."""
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        raise ValidationError(f"items must be an iterable of mappings, not {shown(items)}")
    checked: list[Mapping[str, Any]] = []
    for index, item in enumerate(items):
        if index == limits.MAX_BULK:
            raise ValidationError(
                f"items: one call opens at most {limits.MAX_BULK:,} deals; split the batch"
            )
        if not isinstance(item, Mapping) or "id" not in item:
            raise ValidationError(
                f"items[{index}] must be a mapping with an 'id', not {shown(item)}"
            )
        check_attributes(item.keys() - {"id"}, f"items[{index}]")
        checked.append(item)
    return tuple(checked)


def check_attributes(names: Iterable[object], where: str) -> None:
    """Refuse keywords that are not deal attributes ``open`` takes."""
    unknown = sorted(str(name) for name in names if name not in ATTRIBUTES)
    if unknown:
        raise ValidationError(
            f"{where} names {unknown[0]!r}, which is not a deal attribute; use {list(ATTRIBUTES)}",
            field=unknown[0],
        )


def imported_deal(
    pipeline: Pipeline,
    id: str,
    history: object,
    *,
    lost_reason: object,
    attributes: Mapping[str, Any],
    actor: str | None,
) -> Deal:
    """Deal ``id`` as its ``history`` of (stage, at) entries left it, one version per entry.

    The importer (``actor``) is on every entry; ``lost_reason`` on every LOST entry,
    and on the deal when it ends LOST.
    """
    id = c.check_id(id)
    check_attributes(attributes, "import_deal")
    entries = _entries(pipeline, id, history)
    reason = _reason(pipeline, id, lost_reason, any(stage == LOST for stage, _ in entries))
    made: list[StageChange] = []
    for version, (stage, at) in enumerate(entries, start=1):
        before = made[-1].to_stage if made else None
        why = reason if stage == LOST else None
        made.append(StageChange(id, before, stage, at, version, reason=why, actor=actor))
    last = made[-1]
    given = {n: v for n, v in attributes.items() if v is not None or n not in _DEFAULTED}
    return Deal(
        id,
        pipeline.name,
        last.to_stage,
        **given,
        lost_reason=reason if last.to_stage == LOST else None,
        created_at=made[0].at,
        stage_entered_at=last.at,
        closed_at=last.at if last.to_stage in (WON, LOST) else None,
        updated_at=last.at,
        version=len(made),
        history=tuple(made),
    )


def _entries(pipeline: Pipeline, id: str, history: object) -> list[tuple[str, datetime]]:
    """The (stage, at) entries checked: known stages, no stay in one stage, time forward."""
    if isinstance(history, (str, bytes, Mapping)) or not isinstance(history, Sequence):
        raise ValidationError(
            f"history must be a sequence of (stage, at) pairs, not {shown(history)}",
            deal_id=id,
            field="history",
        )
    if not 1 <= len(history) <= limits.MAX_PAST_VERSIONS:
        raise ValidationError(
            f"history must have 1 to {limits.MAX_PAST_VERSIONS:,} entries, not {len(history):,}",
            deal_id=id,
            field="history",
        )
    entries: list[tuple[str, datetime]] = []
    for index, entry in enumerate(history):
        stage, at = _entry(pipeline, id, index, entry)
        if entries and at < entries[-1][1]:
            raise ValidationError(
                f"history[{index}] is at {at.isoformat()}, before the entry ahead of it: "
                "times never run backwards",
                deal_id=id,
                field="history",
            )
        if entries and stage == entries[-1][0]:
            raise ValidationError(
                f"history[{index}] enters {stage!r} again: staying in a stage is not a move",
                deal_id=id,
                field="history",
            )
        entries.append((stage, at))
    return entries


def _entry(pipeline: Pipeline, id: str, index: int, entry: object) -> tuple[str, datetime]:
    if isinstance(entry, (str, bytes)) or not isinstance(entry, Sequence) or len(entry) != 2:
        raise ValidationError(
            f"history[{index}] must be a (stage, at) pair, not {shown(entry)}",
            deal_id=id,
            field="history",
        )
    stage, at = entry
    if not isinstance(stage, str) or stage not in pipeline.stage_names:
        raise UnknownStageError(stage, pipeline=pipeline.name, deal_id=id)
    return stage, c.to_utc(at, f"history[{index}]'s time")


def _reason(pipeline: Pipeline, id: str, reason: object, lost: bool) -> str | None:
    """The lost reason, required when the past enters LOST and refused when it never does."""
    if reason is None:
        if lost:
            raise ValidationError(
                "the history enters LOST: give lost_reason", deal_id=id, field="lost_reason"
            )
        return None
    if not lost:
        raise ValidationError(
            "lost_reason is given but the history never enters LOST",
            deal_id=id,
            field="lost_reason",
        )
    return check_lost_reason(
        reason, pipeline.lost_reasons, deal_id=id, field="lost_reason", label="lost_reason"
    )
