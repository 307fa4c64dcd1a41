"""Lead scoring: weighted rules that turn a deal into an explainable 0-100 score.

A ``ScoreCard`` is a tuple of rules; each rule is a frozen value that awards up to
its ``points`` and says why. ``Score.value`` is the points earned as a share of the
card's maximum, so cards of any total weight score on the same 0-100 scale.
Rules are plain data, so a card can be written to a definition file and read back;
``min_score`` (from ``guards``) puts a minimum score on a stage.
"""

from salespipeline.scoring._bands import ScoreBand, conversion_by_score_band
from salespipeline.scoring._card import Score, ScoreCard
from salespipeline.scoring._factories import (
    amount_bands,
    bant,
    field_equals,
    field_in,
    has_field,
    recency,
)
from salespipeline.scoring._guard import min_score
from salespipeline.scoring._rules import (
    AmountBands,
    BantCriterion,
    FieldEquals,
    FieldIn,
    FieldPresent,
    Recency,
    ScoreRule,
)

__all__ = [
    "AmountBands",
    "BantCriterion",
    "FieldEquals",
    "FieldIn",
    "FieldPresent",
    "Recency",
    "Score",
    "ScoreBand",
    "ScoreCard",
    "ScoreRule",
    "amount_bands",
    "bant",
    "conversion_by_score_band",
    "field_equals",
    "field_in",
    "has_field",
    "min_score",
    "recency",
]
