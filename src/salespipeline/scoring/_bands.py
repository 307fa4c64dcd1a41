"""Does the score predict wins? Closed deals counted per score band (private)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import pairwise

import attrs

from salespipeline import _checks as c
from salespipeline.deal import Deal, checked_deals
from salespipeline.errors import ValidationError, shown
from salespipeline.pipeline import Pipeline
from salespipeline.scoring._card import ScoreCard
from salespipeline.stages import LOST, WON

__all__ = ["ScoreBand", "conversion_by_score_band"]


def _to_edge(value: float) -> float:
    """A score edge: a finite number from 0 to 100, as a float."""
    if not c.is_number(value):
        raise ValidationError(f"a score band edge must be a number, not {shown(value)}")
    edge = float(value) if -1 <= value <= 101 else math.nan  # a huge int has no float
    if not math.isfinite(edge) or not 0 <= edge <= 100:
        raise ValidationError(f"a score band edge must be from 0 to 100, not {shown(value)}")
    return edge


def _above_low(instance: ScoreBand, attribute: attrs.Attribute[float], value: float) -> None:
    if value <= instance.low:
        raise ValidationError(
            f"a score band must end above its start {instance.low}, not at {value}"
        )


def _count(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if not c.is_int(value) or value < 0:
        raise ValidationError(
            f"score band {attribute.name} must be a count (0 or more), not {shown(value)}"
        )


@attrs.frozen
class ScoreBand:
    """Closed deals whose score fell in ``[low, high)`` (the top band includes ``high``)."""

    low: float = attrs.field(converter=_to_edge)
    high: float = attrs.field(converter=_to_edge, validator=_above_low)
    won: int = attrs.field(validator=_count)
    lost: int = attrs.field(validator=_count)

    @property
    def closed(self) -> int:
        return self.won + self.lost

    @property
    def win_rate(self) -> float | None:
        """won / (won + lost); None when no closed deal fell in the band."""
        return self.won / self.closed if self.closed else None


def _check_edges(bands: object) -> tuple[float, ...]:
    if isinstance(bands, (str, bytes)) or not isinstance(bands, Sequence):
        raise ValidationError(f"bands must be a sequence of score edges, not {shown(bands)}")
    edges = tuple(_to_edge(e) for e in bands)
    rising = all(a < b for a, b in pairwise(edges))
    if len(edges) < 2 or not rising or edges[0] != 0 or edges[-1] != 100:
        raise ValidationError(f"bands must rise strictly from 0 to 100, got {list(edges)}")
    return edges


def conversion_by_score_band(
    deals: Iterable[Deal],
    pipeline: Pipeline,
    scorecard: ScoreCard,
    *,
    bands: Sequence[float] = (0, 25, 50, 75, 100),
) -> tuple[ScoreBand, ...]:
    """Won and lost counts of ``pipeline``'s closed deals per score band, lowest first.

    If the scoring predicts wins, the win rate rises band by band. Deals are scored as
    they are now (without ``now``, so time-based rules award nothing).
    """
    edges = _check_edges(bands)
    if not isinstance(pipeline, Pipeline) or not isinstance(scorecard, ScoreCard):
        raise ValidationError("conversion_by_score_band() takes a Pipeline and a ScoreCard")
    won = [0] * (len(edges) - 1)
    lost = [0] * (len(edges) - 1)
    for deal in checked_deals(deals, "conversion_by_score_band()"):
        if deal.pipeline != pipeline.name or deal.stage not in (WON, LOST):
            continue
        index = _band_index(edges, scorecard.score(deal).value)
        (won if deal.stage == WON else lost)[index] += 1
    return tuple(
        ScoreBand(low=edges[i], high=edges[i + 1], won=won[i], lost=lost[i])
        for i in range(len(won))
    )


def _band_index(edges: tuple[float, ...], value: float) -> int:
    for i in range(len(edges) - 2, -1, -1):
        if value >= edges[i]:
            return i
    return 0
