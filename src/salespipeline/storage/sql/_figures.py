"""Per-deal report figures kept beside the deal row, so reports never read history (private).

A report needs two things from each deal's history: which stages it entered (for
conversion and calibration) and its completed stays per stage (for time in stage),
both as ``metrics`` defines them (``_facts.completed_stays``).
The store writes them into ``sp_deals`` with every ``add`` and ``save``, in the same
statement as the deal itself, so they are exactly as current as the row.

They are kept independent of any pipeline's stage order, which can change between
definition versions: ``entered_stages`` is the sorted set of stage names, and the stays sit
in ``SLOTS`` numbered columns, slot j holding the j-th open stage of that set.
A deal that entered more open stages than there are slots (possible only across
migrations, or in pipelines longer than ``SLOTS``) keeps the rest in ``stays_more``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple

from salespipeline._checks import is_int
from salespipeline.deal import Deal
from salespipeline.metrics._facts import Change, Stay, completed_stays, stay_stages
from salespipeline.storage._codec import from_us, loads

__all__ = [
    "COLUMNS",
    "SLOTS",
    "deal_figures",
    "figure_values",
    "open_stages",
    "read_entered",
    "read_stays_more",
    "slot_stays",
]

SLOTS: Final = 7
"""Stay columns per deal: enough for every open stage of a 7-stage pipeline."""

COLUMNS: Final = (
    "entered_stages",
    "stays_more",
    *(f"stays_{j}" for j in range(1, SLOTS + 1)),
    *(f"stay_us_{j}" for j in range(1, SLOTS + 1)),
)
"""``entered_stages`` (JSON list), ``stays_more`` (JSON object or NULL), then the slots'
stay counts and their summed durations in microseconds."""

_json: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class _Entry(NamedTuple):
    """A history row as ``completed_stays`` reads it."""

    to_stage: str
    at: datetime


def deal_figures(deal: Deal) -> list[Any]:
    """The ``COLUMNS`` values of ``deal``, from its history."""
    return _values(deal.history)


def figure_values(stages: Sequence[str], at_us: Sequence[int]) -> list[Any]:
    """The ``COLUMNS`` values of a history given as its entered stages and their times
    in epoch microseconds (as a schema upgrade reads them from the history table)."""
    return _values([_Entry(s, from_us(at)) for s, at in zip(stages, at_us, strict=True)])


def _values(history: Sequence[Change]) -> list[Any]:
    """Stages entered and completed stays, as ``metrics`` defines them, laid out in slots."""
    entered = sorted({change.to_stage for change in history})
    slots = open_stages(entered)
    summed = dict.fromkeys(slots, (0, 0))
    for stage, count, total in completed_stays(history):
        before = summed[stage]
        summed[stage] = (before[0] + count, before[1] + total)
    kept = [summed[stage] for stage in slots[:SLOTS]]
    more = {stage: list(summed[stage]) for stage in slots[SLOTS:]}
    padding = [0] * (SLOTS - len(kept))
    return [
        _json(entered),
        _json(more) if more else None,
        *(count for count, _ in kept),
        *padding,
        *(total for _, total in kept),
        *padding,
    ]


def open_stages(entered: Sequence[str]) -> list[str]:
    """The stages that own stay slots, in slot order: ``entered`` without WON and LOST."""
    return stay_stages(entered)


def slot_stays(entered: Sequence[str], counts: Sequence[int], totals: Sequence[int]) -> list[Stay]:
    """The stays held in a row's slot columns, given its ``entered``: slot j, j-th stage."""
    return [(stage, counts[j], totals[j]) for j, stage in enumerate(open_stages(entered)[:SLOTS])]


def read_entered(text: object) -> tuple[str, ...]:
    """A stored ``entered`` value back as stage names; ValueError when it is not one."""
    value = loads(_text(text))
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ValueError(f"entered stages {text!r} are not a JSON list of names")
    return tuple(value)


def read_stays_more(text: object) -> dict[str, tuple[int, int]]:
    """A stored ``stays_more`` value back as stage -> (stays, microseconds)."""
    value = loads(_text(text))
    if not isinstance(value, dict):
        raise ValueError(f"extra stays {text!r} are not a JSON object")
    stays: dict[str, tuple[int, int]] = {}
    for stage, pair in value.items():
        if not (isinstance(pair, list) and len(pair) == 2 and all(is_int(v) for v in pair)):
            raise ValueError(f"extra stays of {stage!r} are not [count, microseconds]")
        stays[stage] = (pair[0], pair[1])
    return stays


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected JSON text, found {type(value).__name__}")
    return value
