"""Per-deal report figures kept beside the deal row, so reports never read history (private).

A report needs two things from each deal's history: which stages it entered (for
conversion and calibration) and its completed stays per stage (for time in stage).
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
from typing import Any, Final

from salespipeline.deal import Deal
from salespipeline.stages import LOST, WON
from salespipeline.storage._codec import to_us

__all__ = [
    "COLUMNS",
    "SLOTS",
    "deal_figures",
    "figure_values",
    "open_stages",
    "read_entered",
    "read_stays_more",
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

_TERMINAL: Final = frozenset((WON, LOST))
_json: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def deal_figures(deal: Deal) -> list[Any]:
    """The ``COLUMNS`` values of ``deal``, from its history."""
    history = deal.history
    return figure_values([c.to_stage for c in history], [to_us(c.at) for c in history])


def figure_values(stages: Sequence[str], at_us: Sequence[int]) -> list[Any]:
    """The ``COLUMNS`` values of a history given as its entered stages and their times.

    A stay is completed when another change follows it: it lasted from its entry
    to that change. Stays in WON and LOST are not kept (no pipeline has them open).
    """
    entered = sorted(set(stages))
    slots = open_stages(entered)
    counts = dict.fromkeys(slots, 0)
    micros = dict.fromkeys(slots, 0)
    for k in range(len(stages) - 1):
        stage = stages[k]
        if stage not in _TERMINAL:
            counts[stage] += 1
            micros[stage] += at_us[k + 1] - at_us[k]
    more = {s: [counts[s], micros[s]] for s in slots[SLOTS:]}
    padding = [0] * (SLOTS - min(len(slots), SLOTS))
    return [
        _json(entered),
        _json(more) if more else None,
        *(counts[s] for s in slots[:SLOTS]),
        *padding,
        *(micros[s] for s in slots[:SLOTS]),
        *padding,
    ]


def open_stages(entered: Sequence[str]) -> list[str]:
    """The stages that own stay slots, in slot order: ``entered`` without WON and LOST."""
    return [stage for stage in entered if stage not in _TERMINAL]


def read_entered(text: object) -> tuple[str, ...]:
    """A stored ``entered`` value back as stage names; ValueError when it is not one."""
    value = json.loads(_text(text))
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ValueError(f"entered stages {text!r} are not a JSON list of names")
    return tuple(value)


def read_stays_more(text: object) -> dict[str, tuple[int, int]]:
    """A stored ``stays_more`` value back as stage -> (stays, microseconds)."""
    value = json.loads(_text(text))
    if not isinstance(value, dict):
        raise ValueError(f"extra stays {text!r} are not a JSON object")
    stays: dict[str, tuple[int, int]] = {}
    for stage, pair in value.items():
        if not (isinstance(pair, list) and len(pair) == 2 and all(type(v) is int for v in pair)):
            raise ValueError(f"extra stays of {stage!r} are not [count, microseconds]")
        stays[stage] = (pair[0], pair[1])
    return stays


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected JSON text, found {type(value).__name__}")
    return value
