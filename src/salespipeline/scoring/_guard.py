"""The ``min_score`` guard as scoring offers it, and its data kind (private).

``guards.min_score`` is core and takes any ``guards.Scorer``; reading one from data
needs a ``ScoreCard``, so scoring registers the kind (core never imports scoring).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from salespipeline.guards import MinScore, min_score, register
from salespipeline.scoring._card import ScoreCard

__all__ = ["min_score"]


def _min_score_kind(scorecard: Mapping[str, Any], threshold: float) -> MinScore:
    """The guard ``MinScore.spec()`` describes: its score card is read as data too."""
    return min_score(ScoreCard.from_dict(scorecard), threshold)


register("min_score", _min_score_kind)
