"""Lead scoring: weighted rules that turn a deal into an explainable 0-100 score.

A ``ScoreCard`` is a tuple of rules; each rule is a frozen value that awards up to
its ``points`` and says why. ``Score.value`` is the points earned as a share of the
card's maximum, so cards of any total weight score on the same 0-100 scale.
Rules are plain data, so a card can be written to a definition file and read back.
"""

from salespipeline.scoring._rules import (
    AmountBands,
    BantCriterion,
    FieldEquals,
    FieldIn,
    FieldPresent,
    Recency,
    Score,
    ScoreBand,
    ScoreCard,
    ScoreRule,
    amount_bands,
    bant,
    conversion_by_score_band,
    field_equals,
    field_in,
    has_field,
    recency,
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
    "recency",
]
