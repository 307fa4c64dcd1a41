"""``find`` and ``count`` arguments as one checked value, read the same way by every store.

``check_query`` refuses a bad argument before any work; ``Query.matches`` and
``Query.select`` are the in-memory reading of the filters, which the SQL stores
push down into their ``WHERE`` clauses and which the contract and property tests
hold them to. ``check_names`` makes a mistyped pipeline or stage name an error
instead of an empty page.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Final

import attrs

from salespipeline import _checks as c
from salespipeline import limits
from salespipeline.deal import Deal
from salespipeline.errors import (
    UnknownPipelineError,
    UnknownStageError,
    ValidationError,
    shown,
)
from salespipeline.pipeline import Pipeline
from salespipeline.stages import LOST, WON
from salespipeline.storage import _codec

__all__ = ["ORDERS", "FieldValue", "Query", "check_names", "check_query", "field_matches"]

ORDERS: Final = ("id",)
"""The orders ``find`` pages in; each is keyset-correct with ``after``."""

FieldValue = str | int | float | bool | None
"""A value a ``fields`` filter compares with: a JSON scalar."""


@attrs.frozen(kw_only=True)
class Query:
    """``find``'s and ``count``'s arguments, checked; ``fields`` as sorted (key, value) pairs."""

    pipeline: str | None = None
    stage: str | None = None
    open: bool | None = None
    owner: str | None = None
    fields: tuple[tuple[str, FieldValue], ...] = ()
    updated_since: datetime | None = None
    order_by: str = "id"
    limit: int | None = None
    after: str | None = None

    def matches(self, deal: Deal) -> bool:
        """Whether ``deal`` passes every filter (the order and the page aside)."""
        return (
            (self.pipeline is None or deal.pipeline == self.pipeline)
            and (self.stage is None or deal.stage == self.stage)
            and (self.open is None or self.open == (deal.stage not in (WON, LOST)))
            and (self.owner is None or deal.owner == self.owner)
            and (self.updated_since is None or deal.updated_at >= self.updated_since)
            and all(field_matches(deal.fields, key, value) for key, value in self.fields)
        )

    def select(self, deals: Iterable[Deal]) -> Iterator[Deal]:
        """The page of ``deals`` this query asks for: matching, in id order, after
        ``after``, at most ``limit``."""
        ordered = sorted(deals, key=_by_id)
        kept = (
            d for d in ordered if (self.after is None or d.id > self.after) and self.matches(d)
        )
        return itertools.islice(kept, self.limit)


def _by_id(deal: Deal) -> str:
    return deal.id


def field_matches(fields: Mapping[str, object], key: str, wanted: FieldValue) -> bool:
    """Whether ``fields[key]`` equals ``wanted`` as JSON values: the key is present, a
    boolean or null equals only itself, text equals equal text, and a number equals
    any number of the same value (``1`` matches ``1.0``, never ``True``)."""
    if key not in fields:
        return False
    value = fields[key]
    if wanted is None or isinstance(wanted, bool):
        return value is wanted
    if isinstance(wanted, str):
        return isinstance(value, str) and value == wanted
    return c.is_number(value) and value == wanted


def check_query(
    *,
    pipeline: object = None,
    stage: object = None,
    open: object = None,
    owner: object = None,
    fields: object = None,
    updated_since: object = None,
    order_by: object = "id",
    limit: object = None,
    after: object = None,
) -> Query:
    """The arguments as a ``Query``, or a ``ValidationError`` naming the bad one."""
    if open is not None and not isinstance(open, bool):
        raise ValidationError(f"find(): open must be True, False or None, not {shown(open)}")
    if not isinstance(order_by, str) or order_by not in ORDERS:
        allowed = ", ".join(repr(o) for o in ORDERS)
        raise ValidationError(f"find(): order_by must be one of {allowed}, not {shown(order_by)}")
    return Query(
        pipeline=_name(pipeline, "pipeline"),
        stage=_name(stage, "stage"),
        open=open,
        owner=_name(owner, "owner"),
        fields=_check_fields(fields),
        updated_since=None if updated_since is None else c.to_utc(updated_since, "updated_since"),
        order_by=order_by,
        limit=_check_limit(limit),
        after=None if after is None else c.check_id(after, "find(): after (the last id seen)"),
    )


def _name(value: object, what: str) -> str | None:
    return (
        None
        if value is None
        else c.check_text(value, f"find(): {what}", max_length=c.MAX_ID_LENGTH)
    )


def _check_limit(limit: object) -> int | None:
    if limit is None:
        return None
    if not c.is_int(limit) or not 0 <= limit <= limits.MAX_FIND_PAGE:
        raise ValidationError(
            f"find(): limit must be an integer from 0 to {limits.MAX_FIND_PAGE:,}, "
            f"not {shown(limit)}"
        )
    return limit


def _check_fields(fields: object) -> tuple[tuple[str, FieldValue], ...]:
    if fields is None:
        return ()
    if not isinstance(fields, Mapping):
        raise ValidationError(f"find(): fields must be a mapping, not {shown(fields)}")
    if len(fields) > limits.MAX_FIND_FIELDS:
        raise ValidationError(
            f"find(): fields names {len(fields):,} fields; at most {limits.MAX_FIND_FIELDS} "
            "may be filtered on at once"
        )
    pairs = []
    for key, value in fields.items():
        name = c.check_text(key, "find(): a fields key", max_length=c.MAX_ID_LENGTH)
        pairs.append((name, _check_field_value(name, value)))
    return tuple(sorted(pairs, key=lambda pair: pair[0]))


def _check_field_value(key: str, value: object) -> FieldValue:
    where = f"find(): fields[{key!r}]"
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return c.check_text(value, where, max_length=limits.MAX_FIELDS_BYTES)
    if c.is_number(value):
        if not math.isfinite(value) or abs(value) > limits.MAX_FIELD_NUMBER:
            raise ValidationError(
                f"{where} must be a finite number of magnitude at most 2**53 (where every "
                f"backend's JSON reads it exactly alike), not {shown(value)}"
            )
        return value
    raise ValidationError(
        f"{where} must be a JSON scalar (text, a number, True, False or None), not {shown(value)}"
    )


Carries = Callable[[str | None, str | None], bool]
"""Whether a stored deal is in pipeline (None: any) and stage (None: any)."""


def check_names(query: Query, definitions: Mapping[str, object], carries: Carries) -> None:
    """``UnknownPipelineError`` / ``UnknownStageError`` for a name the store does not know.

    A pipeline is known when its definition is recorded or a stored deal is in it; a
    stage when it is WON or LOST, a recorded definition in scope (the given
    pipeline's, else every one) has it, or a stored deal in scope is in it.
    """
    pipeline, stage = query.pipeline, query.stage
    if pipeline is not None and pipeline not in definitions and not carries(pipeline, None):
        raise UnknownPipelineError(pipeline, known=sorted(definitions))
    if stage is None or stage in (WON, LOST):
        return
    scope = definitions.values() if pipeline is None else [definitions.get(pipeline)]
    if not any(stage in _stage_names(data) for data in scope) and not carries(pipeline, stage):
        raise UnknownStageError(stage, pipeline=pipeline)


def _stage_names(data: object) -> frozenset[str]:
    """The stage names of a stored definition (a Pipeline, ``to_dict`` data or its JSON),
    read without decoding its guards; none from a definition that does not read."""
    if isinstance(data, Pipeline):
        return frozenset(data.stage_names)
    try:
        decoded = _codec.loads(data) if isinstance(data, (str, bytes)) else data
    except ValueError:
        return frozenset()
    stages = decoded.get("stages") if isinstance(decoded, Mapping) else None
    if not isinstance(stages, list):
        return frozenset()
    return frozenset(
        s["name"] for s in stages if isinstance(s, Mapping) and isinstance(s.get("name"), str)
    )
