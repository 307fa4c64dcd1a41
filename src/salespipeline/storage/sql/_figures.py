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

import functools
import json
import operator
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple

from salespipeline._checks import is_int
from salespipeline.deal import Deal
from salespipeline.metrics._facts import Change, Stay, completed_stays, stay_stages
from salespipeline.metrics._time import micros
from salespipeline.stages import TERMINAL
from salespipeline.storage._codec import from_us, loads

__all__ = [
    "COLUMNS",
    "SLOTS",
    "V2_COLUMNS",
    "Figures",
    "Written",
    "deal_figures",
    "extended",
    "figure_values",
    "moved",
    "of_history",
    "open_stages",
    "read",
    "read_entered",
    "read_stays_more",
    "slot_stays",
    "values",
    "written",
]

SLOTS: Final = 7
"""Stay columns per deal: enough for every open stage of a 7-stage pipeline."""

V2_COLUMNS: Final = (
    "entered_stages",
    "stays_more",
    *(f"stays_{j}" for j in range(1, SLOTS + 1)),
    *(f"stay_us_{j}" for j in range(1, SLOTS + 1)),
)
"""The derived columns of schema version 2: ``entered_stages`` (JSON list), ``stays_more``
(JSON object or NULL), then the slots' stay counts and their summed durations in
microseconds."""

COLUMNS: Final = (*V2_COLUMNS, "moves")
"""``V2_COLUMNS`` and ``moves``, the number of history entries (new in version 3: a
store loads a long history's latest entries first, and needs to know how many)."""

_json: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class _Entry(NamedTuple):
    """A history row as ``completed_stays`` reads it."""

    to_stage: str
    at: datetime


class Figures(NamedTuple):
    """What a deal's row says of its history, as ``metrics`` defines it.

    ``stays`` maps every open stage entered to its completed stays and their summed
    microseconds (``(0, 0)`` while none is completed).
    """

    entered: frozenset[str]
    stays: dict[str, tuple[int, int]]
    moves: int


class Written(NamedTuple):
    """A row's figures as its ``COLUMNS`` values, with the stages entered they hold (the
    set a move's layout is looked up by)."""

    entered: frozenset[str]
    values: Sequence[Any]


def written(figures: Figures) -> Written:
    """``figures`` as a row holds them."""
    return Written(figures.entered, values(figures))


def of_history(history: Sequence[Change]) -> Figures:
    """The figures of a whole history."""
    entered = frozenset(change.to_stage for change in history)
    stays = dict.fromkeys(open_stages(sorted(entered)), (0, 0))
    _add_stays(stays, history)
    return Figures(entered, stays, len(history))


def extended(figures: Figures, last: Change, new: Sequence[Change]) -> Figures:
    """The figures of a history ending in ``last`` once ``new`` entries follow it.

    The same as ``of_history`` of the longer history (a property test holds them
    equal), in time proportional to ``new`` alone. A move into a stage entered
    before keeps the same ``entered`` set (so its layout stays cached).
    """
    if not new:
        return figures
    if len(new) == 1:
        return _moved_once(figures, last, new[0])
    stays = dict(figures.stays)
    entered = figures.entered
    adding = [change.to_stage for change in new if change.to_stage not in entered]
    if adding:
        entered = entered.union(adding)
        for stage in open_stages(adding):
            stays.setdefault(stage, (0, 0))
    _add_stays(stays, (last, *new))
    return Figures(entered, stays, figures.moves + len(new))


def _moved_once(figures: Figures, last: Change, entry: Change) -> Figures:
    """``extended`` by one entry (every move and save): the stay ``last`` began is
    completed by ``entry``, whose stage may be a new one."""
    stays = dict(figures.stays)
    entered, stage = figures.entered, entry.to_stage
    if stage not in entered:
        entered = entered | {stage}
        if stage not in TERMINAL:
            stays.setdefault(stage, (0, 0))
    left = last.to_stage
    if left not in TERMINAL:
        count, total = stays[left]
        stays[left] = (count + 1, total + micros(entry.at - last.at))
    return Figures(entered, stays, figures.moves + 1)


def moved(row: Written, last: Change, entry: Change) -> Written:
    """The figures of ``row`` once ``entry`` follows ``last`` (a move), as a row holds them.

    The same as ``written(extended(read(row.values), last, (entry,)))`` (a property test
    holds them equal), but worked on the row's values: where the stays fit the slots,
    how a move from one stage to another rearranges them is worked out once per
    stages entered, then applied by index.
    """
    step = _step(row.entered, last.to_stage, entry.to_stage)
    if step is None:
        return written(_moved_once(read(row.values), last, entry))
    cells = list(step.take((*row.values, 0)))
    cells[0] = step.entered_text
    if step.stay is not None:
        count, total = step.stay
        cells[count] += 1
        cells[total] += micros(entry.at - last.at)
    cells[-1] += 1
    return Written(step.entered, cells)


class _Step(NamedTuple):
    """How a move from one stage to another rearranges a row's figure values: the
    stages entered after it (and as text), which value each cell takes (index
    ``len(COLUMNS)`` is a zero), and the cells of the stay it completes (None: none)."""

    entered: frozenset[str]
    entered_text: str
    take: Callable[[Sequence[Any]], tuple[Any, ...]]
    stay: tuple[int, int] | None


@functools.lru_cache(maxsize=1024)
def _step(entered: frozenset[str], left: str, to: str) -> _Step | None:
    """The ``_Step`` of a move from ``left`` to ``to`` in a row that entered ``entered``;
    None when the stays do not all fit the slots (``stays_more`` is used)."""
    after = entered if to in entered else entered | {to}
    text, slots, more, _ = _layout(after)
    if more:
        return None
    kept = open_stages(sorted(entered))
    zero = len(COLUMNS)
    counts = [2 + kept.index(stage) if stage in kept else zero for stage in slots]
    counts += [zero] * (SLOTS - len(slots))
    totals = [zero if index == zero else index + SLOTS for index in counts]
    take: Callable[[Sequence[Any]], tuple[Any, ...]] = operator.itemgetter(
        *(0, 1, *counts, *totals, len(COLUMNS) - 1)
    )
    stay = None
    if left in slots:
        at = slots.index(left)
        stay = (2 + at, 2 + SLOTS + at)
    return _Step(after, text, take, stay)


def _add_stays(stays: dict[str, tuple[int, int]], history: Sequence[Change]) -> None:
    """Add the completed stays of ``history`` to ``stays`` (which holds their stages)."""
    for stage, count, total in completed_stays(history):
        before = stays[stage]
        stays[stage] = (before[0] + count, before[1] + total)


def values(figures: Figures) -> list[Any]:
    """The ``COLUMNS`` values of ``figures``, the stays laid out in slots."""
    entered, slots, more, padding = _layout(figures.entered)
    summed = figures.stays
    kept = [summed[stage] for stage in slots]
    return [
        entered,
        _json({stage: list(summed[stage]) for stage in more}) if more else None,
        *[count for count, _ in kept],
        *padding,
        *[total for _, total in kept],
        *padding,
        figures.moves,
    ]


@functools.lru_cache(maxsize=1024)
def _layout(
    entered: frozenset[str],
) -> tuple[str, tuple[str, ...], tuple[str, ...], tuple[int, ...]]:
    """A set of stages entered as stored (sorted), the stages of its slots, those beyond
    the slots (in ``stays_more``), and the zeros that pad the slots unused (few sets
    recur, and a save writes one on every move; a frozenset keeps its hash)."""
    ordered = sorted(entered)
    stages = open_stages(ordered)
    slots = tuple(stages[:SLOTS])
    return _json(ordered), slots, tuple(stages[SLOTS:]), (0,) * (SLOTS - len(slots))


def read(row: Sequence[Any]) -> Figures:
    """The figures a row's ``COLUMNS`` values hold; ValueError when they are not figures."""
    entered = read_entered(row[0])
    more = {} if row[1] is None else read_stays_more(row[1])
    counts, totals, moves = row[2 : 2 + SLOTS], row[2 + SLOTS : 2 + 2 * SLOTS], row[-1]
    numbers = (*counts, *totals, moves)
    if not (all(type(value) is int for value in numbers) and min(numbers) >= 0):
        for value in numbers:  # the exact check, for what the quick one did not pass
            if not is_int(value) or value < 0:
                raise ValueError("the deal's derived figures are not counts")
    stays = {stage: (count, total) for stage, count, total in slot_stays(entered, counts, totals)}
    stays.update(more)
    if stays.keys() != set(open_stages(entered)):
        raise ValueError("the deal's derived figures do not match its stages entered")
    return Figures(frozenset(entered), stays, moves)


def deal_figures(deal: Deal) -> list[Any]:
    """The ``COLUMNS`` values of ``deal``, from its whole history."""
    return values(of_history(deal.history))


def figure_values(stages: Sequence[str], at_us: Sequence[int]) -> list[Any]:
    """The ``COLUMNS`` values of a history given as its entered stages and their times
    in epoch microseconds (as a schema upgrade reads them from the history table)."""
    history = [_Entry(s, from_us(at)) for s, at in zip(stages, at_us, strict=True)]
    return values(of_history(history))


open_stages: Final[Callable[[Iterable[str]], list[str]]] = stay_stages
"""The stages that own stay slots, in slot order: ``entered`` without WON and LOST
(``metrics``' own ``stay_stages``, under the name the row's layout gives them)."""


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
