"""``PipelineReport.by_category``: the open deals per forecast category.

The hand-worked example of ``docs/explanation/metrics.md`` ("By forecast category"),
on the pure path and a SQLite store alike; then properties: every category is
present in order, the split follows ``pipeline.forecast_category`` deal by deal and
adds up to the open deals and the open value. Pure == SQL over generated logs is
held in ``test_report_sql.py``.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings

from salespipeline import Pipeline, Stage, metrics
from salespipeline.deal import Deal
from salespipeline.metrics import CategoryFigures
from salespipeline.stages import STAGE_CATEGORIES, TERMINAL
from salespipeline.storage import SQLiteStore
from test_report_sql import datasets

T = datetime(2026, 1, 1, tzinfo=timezone.utc)
LATE = datetime(2200, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def abc() -> Pipeline:
    return Pipeline(
        "abc",
        [Stage("a", probability=0.1), Stage("b", probability=0.5), Stage("c", probability=0.8)],
        allow_skip=True,
    )


@pytest.fixture
def deals(abc: Pipeline) -> list[Deal]:
    """x1..x5 open (x4 with its own category, x5 its own probability), x6 won."""
    return [
        abc.start("x1", amount=100, at=T),
        abc.move(abc.start("x2", amount=200, at=T), "b", at=T),
        abc.move(abc.start("x3", amount=300, at=T), "c", at=T),
        abc.move(abc.start("x4", amount=400, forecast_category="omitted", at=T), "c", at=T),
        abc.start("x5", amount=500, probability=0.75, at=T),
        abc.win(abc.start("x6", amount=600, at=T), at=T),
    ]


HAND_WORKED = {
    "pipeline": CategoryFigures(deals=1, value=Decimal(100)),  # x1: a's 10 %
    "best_case": CategoryFigures(deals=1, value=Decimal(200)),  # x2: b's 50 %
    "commit": CategoryFigures(deals=2, value=Decimal(800)),  # x3 (c's 80 %), x5 (0.75)
    "omitted": CategoryFigures(deals=1, value=Decimal(400)),  # x4: its own category
}


def test_hand_worked_example(abc: Pipeline, deals: list[Deal]) -> None:
    report = metrics.report(deals, abc, as_of=T)
    assert report.by_category == HAND_WORKED
    assert list(report.by_category) == ["pipeline", "best_case", "commit", "omitted"]
    assert report.by_currency["USD"].by_category == HAND_WORKED


def test_hand_worked_example_in_sqlite(abc: Pipeline, deals: list[Deal]) -> None:
    with SQLiteStore(":memory:") as store:
        for deal in deals:
            store.add(deal)
        assert store.report(abc, as_of=T).by_category == HAND_WORKED


def test_a_category_changed_later_is_not_seen_before(abc: Pipeline, deals: list[Deal]) -> None:
    """x1 moved into commit the next day: a report of T still has it in pipeline."""
    with SQLiteStore(":memory:") as store:
        for deal in deals:
            store.add(deal)
        later = datetime(2026, 1, 2, tzinfo=timezone.utc)
        store.save(store.get("x1").evolve(forecast_category="commit", at=later))
        assert store.report(abc, as_of=T).by_category == HAND_WORKED
        now = store.report(abc, as_of=later).by_category
        assert (now["pipeline"].deals, now["commit"]) == (0, CategoryFigures(deals=3, value=900))


def test_no_deal_gives_every_category_at_zero(abc: Pipeline) -> None:
    zero = CategoryFigures(deals=0, value=Decimal(0))
    assert metrics.report([], abc, as_of=T).by_category == dict.fromkeys(STAGE_CATEGORIES, zero)


def test_mixed_currencies_keep_counts_and_split_values(abc: Pipeline) -> None:
    deals = [
        abc.start("e", amount=100, currency="EUR", at=T),
        abc.start("u", amount=70, currency="USD", at=T),
    ]
    report = metrics.report(deals, abc, as_of=T)
    assert report.by_category["pipeline"] == CategoryFigures(deals=2, value=None)
    assert report.by_currency["EUR"].by_category["pipeline"].value == 100
    assert report.by_currency["USD"].by_category["pipeline"].value == 70
    converted = metrics.report(deals, abc, as_of=T, currency="EUR", rates={"USD": Decimal("2")})
    assert converted.by_category["pipeline"] == CategoryFigures(deals=2, value=Decimal(240))
    only = metrics.report(deals, abc, as_of=T, currency="USD")
    assert only.by_category["pipeline"] == CategoryFigures(deals=1, value=Decimal(70))


@settings(max_examples=60)
@given(datasets())
def test_the_split_follows_each_deals_category_and_adds_up(
    dataset: tuple[Pipeline, list[Deal]],
) -> None:
    pipeline, deals = dataset
    report = metrics.report(deals, pipeline, as_of=LATE)
    open_deals = [deal for deal in deals if deal.stage not in TERMINAL]
    for code, figures in report.by_currency.items():
        mine = [deal for deal in open_deals if deal.currency == code]
        counted = Counter(pipeline.forecast_category(deal) for deal in mine)
        assert list(figures.by_category) == list(STAGE_CATEGORIES)
        for name, item in figures.by_category.items():
            assert item.deals == counted[name]
            chosen = (d.amount for d in mine if pipeline.forecast_category(d) == name)
            assert item.value == sum(chosen, Decimal(0))
        assert sum(item.value or 0 for item in figures.by_category.values()) == (
            figures.open_value
        )
    assert sum(item.deals for item in report.by_category.values()) == report.open_deals
    if report.open_value is not None:
        assert sum(item.value or 0 for item in report.by_category.values()) == report.open_value


def test_text_shows_each_category_with_its_currency(abc: Pipeline, deals: list[Deal]) -> None:
    lines = metrics.report(deals, abc, as_of=T).render().splitlines()
    start = lines.index("Open deals by forecast category:")
    assert lines[start + 1 : start + 5] == [
        "pipeline                        1 deal   100.00 USD",
        "best_case                       1 deal   200.00 USD",
        "commit                          2 deals  800.00 USD",
        "omitted                         1 deal   400.00 USD",
    ]


def test_text_of_mixed_currencies_splits_values_per_currency(abc: Pipeline) -> None:
    deals = [
        abc.start("e", amount=100, currency="EUR", at=T),
        abc.start("u", amount=70, currency="USD", at=T),
    ]
    lines = metrics.report(deals, abc, as_of=T).render().splitlines()
    assert "pipeline                        2 deals" in lines
    assert "  pipeline                      1 deal   100.00 EUR" in lines
    assert "  pipeline                      1 deal   70.00 USD" in lines


def test_csv_and_html_carry_the_categories(abc: Pipeline, deals: list[Deal]) -> None:
    report = metrics.report(deals, abc, as_of=T)
    rows = [r.split(",") for r in metrics.render_csv(report).splitlines()]
    mine = {(r[2], r[3], r[5]): r[6] for r in rows[1:] if r[2] == "category"}
    assert (mine[("category", "commit", "deals")], mine[("category", "commit", "value")]) == (
        "2",
        "800",
    )
    html = metrics.render_html(report)
    table = html[html.index('<table class="categories">') :]
    table = table[: table.index("</table>")]
    assert "<tr><td>commit</td><td>2</td><td>800.00 USD</td></tr>" in table
    assert "<script" not in html
