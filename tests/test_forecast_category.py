"""Forecast categories: a deal's own, else its stage's, else the one its probability implies."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from salespipeline import LOST, WON, DefinitionError, Pipeline, Stage, ValidationError, definitions

T0 = datetime(2026, 2, 2, tzinfo=timezone.utc)


def pipeline() -> Pipeline:
    return Pipeline(
        "p",
        [
            Stage("lead", probability=0.1),
            Stage("demo", probability=0.4),
            Stage("proposal", probability=0.6, forecast_category="commit"),
            Stage("closing", probability=0.7),
        ],
        allow_skip=True,
    )


@pytest.mark.parametrize(
    ("stage", "override", "probability", "expected"),
    [
        ("lead", None, None, "pipeline"),  # 0.1 < 0.4
        ("demo", None, None, "best_case"),  # 0.4 is not below 0.4
        ("closing", None, None, "commit"),  # 0.7 is not below 0.7
        ("proposal", None, None, "commit"),  # the stage says so, whatever its 0.6
        ("lead", None, 0.69, "best_case"),  # the deal's own probability counts
        ("lead", "omitted", None, "omitted"),  # the deal's own category wins
        ("proposal", "best_case", None, "best_case"),
        (WON, "pipeline", None, "closed"),  # closed deals are what they are
        (LOST, "commit", None, "omitted"),
    ],
)
def test_the_category_is_the_deals_then_the_stages_then_the_probabilitys(
    stage: str, override: str | None, probability: float | None, expected: str
) -> None:
    p = pipeline()
    deal = p.start("d", at=T0, forecast_category=override, probability=probability)
    if stage == LOST:
        deal = p.lose(deal, "price", at=T0)
    elif stage != "lead":
        deal = p.move(deal, stage, at=T0)
    assert p.forecast_category(deal) == expected


def test_a_stages_category_survives_definitions_as_data() -> None:
    p = pipeline()
    data = definitions.to_dict(p)
    assert data["stages"][2]["forecast_category"] == "commit"
    assert "forecast_category" not in data["stages"][0]
    assert definitions.from_dict(data) == p


@pytest.mark.parametrize("bad", ["closed", "Commit", "", 3])
def test_an_unknown_category_is_refused(bad: object) -> None:
    with pytest.raises(ValidationError, match="forecast_category"):
        Stage("s", probability=0.5, forecast_category=bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="forecast_category"):
        pipeline().start("d", at=T0, forecast_category=bad)  # type: ignore[arg-type]
    data = definitions.to_dict(pipeline())
    data["stages"][0]["forecast_category"] = bad
    with pytest.raises(DefinitionError, match="forecast_category"):
        definitions.from_dict(data)
