"""Money in reports never mixes currencies: filtered, converted, or split per currency.

Hand-worked on three EUR and two USD deals (``_dataset.two_currencies``), figure by
figure; then the refusals of bad ``currency=`` and ``rates=``; then properties over
random multi-currency deals: a currency's block is the report of its deals alone, a
conversion is exact and linear, and nothing but money depends on ``currency=`` and
``rates=``. The SQL path is held equal to the pure one in ``test_report_sql.py``.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _dataset import DAY, EUR_PER_USD, T, abc, two_currencies
from salespipeline import limits, metrics
from salespipeline._durations import parse_duration
from salespipeline.deal import Deal
from salespipeline.errors import ValidationError
from salespipeline.metrics import CurrencyFigures, PipelineReport
from salespipeline.metrics._encode import encoded
from salespipeline.metrics._report import CATEGORIES, CategoryFigures
from salespipeline.pipeline import Pipeline
from salespipeline.storage import MemoryStore, SQLiteStore
from salespipeline.testing import strategies as sps

NOW = T + 10 * DAY
LATE = datetime(2200, 1, 1, tzinfo=timezone.utc)
"""After every generated change (``strategies.timestamps`` end in 2100)."""
RATES = {"USD": EUR_PER_USD}
MONEY = tuple(name for name in attrs.fields_dict(CurrencyFigures) if name != "by_category")
"""The report's own money fields (``by_category`` keeps its counts when mixed)."""


def open_in_pipeline(deals: int, value: int) -> dict[str, CategoryFigures]:
    """``by_category`` when every open deal is in ``pipeline`` (below 0.4, no category)."""
    figures = {name: CategoryFigures(deals=0, value=Decimal(0)) for name in CATEGORIES}
    return figures | {"pipeline": CategoryFigures(deals=deals, value=Decimal(value))}


EUR = CurrencyFigures(
    open_value=Decimal(500),  # e3
    weighted_pipeline=Decimal(50),  # 500 x 0.1
    won_value=Decimal(1000),  # e1
    lost_value=Decimal(2000),  # e2
    average_deal_size=Decimal(1000),
    sales_velocity=Decimal(125),  # 1 open x 1000 x 1/2 won / 4 days
    win_rate_by_value=1 / 3,  # 1000 / 3000
    by_category=open_in_pipeline(1, 500),  # e3 in a (10 %)
)
USD = CurrencyFigures(
    open_value=Decimal(400),  # u2
    weighted_pipeline=Decimal(100),  # 400 x 0.25 (its own probability)
    won_value=Decimal(3000),  # u1
    lost_value=Decimal(0),
    average_deal_size=Decimal(3000),
    sales_velocity=Decimal(375),  # 1 open x 3000 x 1/1 won / 8 days
    win_rate_by_value=1.0,
    by_category=open_in_pipeline(1, 400),  # u2 in b at its own 25 %
)
IN_EUR = CurrencyFigures(
    open_value=Decimal(860),  # 500 + 400 x 0.9
    weighted_pipeline=Decimal(140),  # 50 + 100 x 0.9
    won_value=Decimal(3700),  # 1000 + 3000 x 0.9
    lost_value=Decimal(2000),
    average_deal_size=Decimal(1850),  # 3700 / 2
    # 2 open x 1850 x 2/3 won / 6 days (mean cycle of 4 and 8)
    sales_velocity=Decimal("411.1111111111111111111111111111111"),
    win_rate_by_value=37 / 57,  # 3700 / 5700
    by_category=open_in_pipeline(2, 860),  # 500 + 400 x 0.9
)


@pytest.fixture
def p() -> Pipeline:
    return abc()


@pytest.fixture
def deals(p: Pipeline) -> list[Deal]:
    return two_currencies(p)


def money_of(report: PipelineReport) -> CurrencyFigures:
    """The report's own money figures, gathered as one currency's are."""
    figures = {name: getattr(report, name) for name in MONEY}
    return CurrencyFigures(**figures, by_category=report.by_category)


# -- hand-worked --------------------------------------------------------------------------


def test_mixed_currencies_are_reported_per_currency_and_never_added(
    deals: list[Deal], p: Pipeline
) -> None:
    report = metrics.report(deals, p, as_of=NOW)
    assert (report.currencies, report.currency) == (("EUR", "USD"), None)
    assert all(getattr(report, name) is None for name in MONEY)
    assert report.by_currency == {"EUR": EUR, "USD": USD}
    assert list(report.by_currency) == ["EUR", "USD"]
    assert (report.deals, report.open_deals, report.won, report.lost) == (5, 2, 2, 1)
    assert report.win_rate == 2 / 3  # counts need no currency
    assert report.cycle_length == 6 * DAY


def test_currency_alone_reports_only_its_deals(deals: list[Deal], p: Pipeline) -> None:
    report = metrics.report(deals, p, as_of=NOW, currency="EUR")
    assert (report.currency, report.currencies, report.deals) == ("EUR", ("EUR",), 3)
    assert report.stage_counts == {"a": 1, "b": 0, "c": 0, "won": 1, "lost": 1}
    assert (report.win_rate, report.cycle_length) == (0.5, 4 * DAY)
    assert (report.stalled, report.stalled_ids) == (1, ("e3",))
    assert money_of(report) == EUR
    assert report.by_currency == {"EUR": EUR}


def test_currency_alone_with_no_deal_in_it_reports_nothing(deals: list[Deal], p: Pipeline) -> None:
    report = metrics.report(deals, p, as_of=NOW, currency="KRW")
    assert (report.currency, report.currencies, report.deals) == ("KRW", (), 0)
    zero = Decimal(0)
    assert (report.open_value, report.weighted_pipeline, report.won_value) == (zero, zero, zero)
    assert (report.average_deal_size, report.sales_velocity, report.by_currency) == (
        None,
        None,
        {},
    )


def test_rates_convert_every_deal_into_the_currency(deals: list[Deal], p: Pipeline) -> None:
    report = metrics.report(deals, p, as_of=NOW, currency="EUR", rates=RATES)
    assert (report.currency, report.currencies, report.deals) == ("EUR", ("EUR", "USD"), 5)
    assert money_of(report) == IN_EUR
    assert report.by_currency == {"EUR": EUR, "USD": USD}  # as recorded, not converted
    assert report.win_rate == 2 / 3


def test_a_single_currency_reports_in_it(deals: list[Deal], p: Pipeline) -> None:
    usd = [deal for deal in deals if deal.currency == "USD"]
    report = metrics.report(usd, p, as_of=NOW)
    assert (report.currency, money_of(report), report.by_currency) == ("USD", USD, {"USD": USD})
    assert report == metrics.report(deals, p, as_of=NOW, currency="USD")


def test_no_deals_report_no_currency(p: Pipeline) -> None:
    report = metrics.report([], p, as_of=NOW)
    assert (report.currency, report.by_currency, report.open_value) == (None, {}, Decimal(0))


def test_the_report_currency_is_upper_case_and_its_own_rate_may_be_one(
    deals: list[Deal], p: Pipeline
) -> None:
    expected = metrics.report(deals, p, as_of=NOW, currency="EUR", rates=RATES)
    same = metrics.report(
        deals, p, as_of=NOW, currency="eur", rates={"usd": Decimal("0.90"), "EUR": 1}
    )
    assert same == expected


def test_conversion_is_exact_at_the_rate_limits(p: Pipeline) -> None:
    # the largest amount at the largest rate: a 54-digit product, kept whole
    rate = Decimal("999999999999999999.999999999999")
    amount = Decimal("999999999999999999.999999")
    deals = [p.start(f"k{i}", amount=amount, currency="KRW", at=T) for i in range(3)]
    report = metrics.report(deals, p, as_of=NOW, currency="EUR", rates={"KRW": rate})
    assert report.open_value is not None
    assert Fraction(report.open_value) == 3 * Fraction(amount) * Fraction(rate)
    assert report.by_currency["KRW"].open_value == 3 * amount


def test_money_figures_carry_their_currency_in_the_text(deals: list[Deal], p: Pipeline) -> None:
    text = metrics.report(deals, p, as_of=NOW, currency="EUR", rates=RATES).render()
    lines = text.splitlines()
    assert "Money in EUR, the other currencies converted at the rates given" in lines
    assert "open value               860.00 EUR" in lines
    assert "sales velocity           411.11 EUR / day" in lines
    assert "  average deal size      3,000.00 USD" in lines  # USD's own block


def test_mixed_text_has_a_block_per_currency_and_no_totals(deals: list[Deal], p: Pipeline) -> None:
    lines = metrics.report(deals, p, as_of=NOW).render().splitlines()
    assert not any(line.startswith("open value") for line in lines)
    start = lines.index("By currency (as recorded, never added together):")
    assert lines[start + 1] == "EUR"
    assert lines[start + 2 : start + 9] == [
        "  win rate (value)       33.3%",
        "  average deal size      1,000.00 EUR",
        "  sales velocity         125.00 EUR / day",
        "  open value             500.00 EUR",
        "  weighted pipeline      50.00 EUR",
        "  won value              1,000.00 EUR",
        "  lost value             2,000.00 EUR",
    ]
    assert lines[start + 9] == "USD"


def test_one_currency_text_has_no_currency_blocks(deals: list[Deal], p: Pipeline) -> None:
    text = metrics.report(deals, p, as_of=NOW, currency="USD").render()
    assert "By currency" not in text
    assert "open value               400.00 USD" in text.splitlines()


# -- to_dict -------------------------------------------------------------------------------


def test_to_dict_is_json_with_the_hand_worked_figures(deals: list[Deal], p: Pipeline) -> None:
    data = metrics.report(deals, p, as_of=NOW, currency="EUR", rates=RATES).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert (data["pipeline"], data["as_of"], data["currency"]) == (
        "abc",
        "2026-01-11T00:00:00+00:00",
        "EUR",
    )
    assert (data["deals"], data["currencies"], data["win_rate"]) == (5, ["EUR", "USD"], 2 / 3)
    assert (data["open_value"], data["weighted_pipeline"]) == ("860", "140")
    assert (data["won_value"], data["lost_value"], data["average_deal_size"]) == (
        "3700",
        "2000",
        "1850",
    )
    assert data["sales_velocity"] == "411.1111111111111111111111111111111"
    assert data["cycle_length"] == "P6D"
    assert data["time_in_stage"] == {"a": "P1DT6H", "b": "P2D", "c": "P3DT12H"}
    assert data["stage_counts"] == {"a": 1, "b": 1, "c": 0, "won": 2, "lost": 1}
    assert data["stalled_ids"] == ["e3", "u2"]
    assert data["by_currency"]["USD"] == {
        "open_value": "400",
        "weighted_pipeline": "100",
        "won_value": "3000",
        "lost_value": "0",
        "average_deal_size": "3000",
        "sales_velocity": "375",
        "win_rate_by_value": 1.0,
        "by_category": {
            "pipeline": {"deals": 1, "value": "400"},
            "best_case": {"deals": 0, "value": "0"},
            "commit": {"deals": 0, "value": "0"},
            "omitted": {"deals": 0, "value": "0"},
        },
    }
    assert list(data["by_category"]) == ["pipeline", "best_case", "commit", "omitted"]
    assert data["by_category"]["pipeline"] == {"deals": 2, "value": "860"}
    assert data["calibration"][0] == {
        "stage": "a",
        "probability": 0.1,
        "empirical": 2 / 3,
        "closed": 3,
        "won": 2,
    }
    assert (
        data["bottlenecks"][0]["stage"] == metrics.report(deals, p, as_of=NOW).bottlenecks[0].stage
    )


def test_to_dict_of_a_mixed_report_has_nulls_at_the_top(deals: list[Deal], p: Pipeline) -> None:
    data = metrics.report(deals, p, as_of=NOW).to_dict()
    assert [data[name] for name in MONEY] == [None] * len(MONEY)
    assert data["currency"] is None
    assert data["by_category"]["pipeline"] == {"deals": 2, "value": None}
    assert list(data["by_currency"]) == ["EUR", "USD"]
    assert data["by_currency"]["EUR"]["win_rate_by_value"] == 1 / 3


def test_to_dict_writes_small_decimals_without_an_exponent(p: Pipeline) -> None:
    deal = p.start("x", amount=Decimal("0.000001"), at=T)
    data = metrics.report([deal], p, as_of=NOW).to_dict()
    assert (data["open_value"], data["weighted_pipeline"]) == ("0.000001", "0.0000001")


@settings(max_examples=200)
@given(st.timedeltas(min_value=timedelta(0)))
def test_report_durations_read_back_exactly_as_definitions_read_them(value: timedelta) -> None:
    assert parse_duration(encoded(value)) == value


# -- refusals -------------------------------------------------------------------------------


def untouched() -> Iterator[Deal]:
    """Deals that must never be read: arguments are checked before any work."""
    raise AssertionError("the deals were read before the arguments were checked")
    yield  # pragma: no cover


BAD_ARGUMENTS: list[tuple[dict[str, Any], str]] = [
    ({"rates": {"USD": Decimal(1)}}, "rates need a currency"),
    ({"currency": ""}, "currency"),
    ({"currency": "  "}, "currency"),
    ({"currency": "EURO"}, "currency"),
    ({"currency": "XYZ"}, "ISO 4217"),
    ({"currency": 978}, "currency"),
    ({"currency": "EUR", "rates": [("USD", 1)]}, "rates must be a mapping"),
    ({"currency": "EUR", "rates": {"": Decimal(1)}}, "rates key ''"),
    ({"currency": "EUR", "rates": {"US": Decimal(1)}}, "rates key 'US'"),
    ({"currency": "EUR", "rates": {"USD": 0.9}}, r"rates\['USD'\] must be a Decimal or an int"),
    ({"currency": "EUR", "rates": {"USD": "0.9"}}, r"rates\['USD'\] must be a Decimal or an int"),
    ({"currency": "EUR", "rates": {"USD": True}}, r"rates\['USD'\] must be a Decimal or an int"),
    ({"currency": "EUR", "rates": {"USD": Decimal(0)}}, "positive"),
    ({"currency": "EUR", "rates": {"USD": Decimal("-0.9")}}, "positive"),
    ({"currency": "EUR", "rates": {"USD": -1}}, "positive"),
    ({"currency": "EUR", "rates": {"USD": Decimal("NaN")}}, "positive finite"),
    ({"currency": "EUR", "rates": {"USD": Decimal("sNaN")}}, "positive finite"),
    ({"currency": "EUR", "rates": {"USD": Decimal("Infinity")}}, "positive finite"),
    ({"currency": "EUR", "rates": {"USD": Decimal("1e18")}}, "18 digits before"),
    ({"currency": "EUR", "rates": {"USD": 10**18}}, "18 digits before"),
    ({"currency": "EUR", "rates": {"USD": 10**10_000}}, "18 digits before"),
    ({"currency": "EUR", "rates": {"USD": Decimal("1e-13")}}, "12 decimal places"),
    ({"currency": "EUR", "rates": {"USD": Decimal("1e-999999999")}}, "12 decimal places"),
    ({"currency": "EUR", "rates": {"USD": 1, "usd": 1}}, "USD twice"),
    ({"currency": "EUR", "rates": {"EUR": Decimal("1.1")}}, r"rates\['EUR'\] must be 1"),
]


@pytest.mark.parametrize(("arguments", "message"), BAD_ARGUMENTS)
def test_bad_currency_or_rates_are_refused_before_any_work(
    p: Pipeline, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as error:
        metrics.report(untouched(), p, as_of=NOW, **arguments)
    assert error.value.field == ("rates" if "rates" in arguments else "currency")
    with MemoryStore() as store, pytest.raises(ValidationError, match=message):
        store.report(p, as_of=NOW, **arguments)
    with SQLiteStore(":memory:") as store, pytest.raises(ValidationError, match=message):
        store.report(p, as_of=NOW, **arguments)


def test_rates_with_trailing_zeros_past_the_places_are_exact_enough(
    deals: list[Deal], p: Pipeline
) -> None:
    rate = Decimal("0.900000000000000000")  # 18 places, but 0.9 exactly
    report = metrics.report(deals, p, as_of=NOW, currency="EUR", rates={"USD": rate})
    assert report == metrics.report(deals, p, as_of=NOW, currency="EUR", rates=RATES)


def test_a_currency_without_a_rate_is_named(deals: list[Deal], p: Pipeline) -> None:
    krw = p.start("k", amount=5, currency="KRW", at=T)
    with pytest.raises(ValidationError, match="no rate for KRW, USD") as error:
        metrics.report([*deals, krw], p, as_of=NOW, currency="EUR", rates={})
    assert error.value.field == "rates"
    with SQLiteStore(":memory:") as store:
        for deal in [*deals, krw]:
            store.add(deal)
        with pytest.raises(ValidationError, match="no rate for KRW"):
            store.report(p, as_of=NOW, currency="EUR", rates=RATES)


def test_rates_for_currencies_no_deal_has_are_ignored(deals: list[Deal], p: Pipeline) -> None:
    more = {**RATES, "JPY": Decimal("0.0062")}
    assert metrics.report(deals, p, as_of=NOW, currency="EUR", rates=more) == metrics.report(
        deals, p, as_of=NOW, currency="EUR", rates=RATES
    )


def test_the_published_rate_limits() -> None:
    assert (limits.MAX_RATE_DIGITS, limits.MAX_RATE_PLACES) == (18, 12)


# -- properties over random multi-currency deals ----------------------------------------------


@st.composite
def datasets(draw: st.DrawFn) -> tuple[Pipeline, list[Deal]]:
    pipeline = draw(sps.pipelines(max_stages=5, guards=False))
    deals = draw(st.lists(sps.deals(pipeline, max_steps=6), max_size=12, unique_by=lambda d: d.id))
    return pipeline, deals


RATE = st.decimals(
    min_value=Decimal("0.000000000001"), max_value=Decimal(10**6), places=limits.MAX_RATE_PLACES
)


@settings(max_examples=60, deadline=None)
@given(datasets())
def test_each_currency_block_is_the_report_of_its_deals_alone(
    dataset: tuple[Pipeline, list[Deal]],
) -> None:
    pipeline, deals = dataset
    report = metrics.report(deals, pipeline, as_of=LATE)
    found = sorted({d.currency for d in deals if d.pipeline == pipeline.name})
    assert list(report.by_currency) == found == list(report.currencies)
    for code, figures in report.by_currency.items():
        alone = metrics.report(deals, pipeline, as_of=LATE, currency=code)
        mine = [d for d in deals if d.currency == code]
        assert alone == metrics.report(mine, pipeline, as_of=LATE)
        assert money_of(alone) == figures
        assert alone.by_currency == {code: figures}
    assert (report.currency is None) == (len(found) != 1)


@settings(max_examples=60, deadline=None)
@given(datasets(), st.data())
def test_conversion_is_exact_and_changes_only_money(
    dataset: tuple[Pipeline, list[Deal]], data: st.DataObject
) -> None:
    pipeline, deals = dataset
    plain = metrics.report(deals, pipeline, as_of=LATE)
    rates = {code: data.draw(RATE, label=code) for code in plain.currencies}
    into = data.draw(st.sampled_from(["EUR", "USD", "KRW", "JPY", "GBP"]), label="into")
    rates.pop(into, None)
    report = metrics.report(deals, pipeline, as_of=LATE, currency=into, rates=rates)

    def converted(name: str) -> Fraction:
        blocks = plain.by_currency.items()
        parts = (Fraction(rates.get(code, 1)) * Fraction(getattr(f, name)) for code, f in blocks)
        return sum(parts, Fraction(0))

    for name in ("open_value", "won_value", "lost_value"):
        assert Fraction(getattr(report, name)) == converted(name), name
    weighted = converted("weighted_pipeline")
    assert report.weighted_pipeline is not None
    assert abs(Fraction(report.weighted_pipeline) - weighted) <= abs(weighted) * Fraction(
        1, 10**32
    )
    assert report.by_currency == plain.by_currency
    for category, figures in report.by_category.items():
        assert figures.deals == plain.by_category[category].deals
        assert figures.value is not None
        assert Fraction(figures.value) == sum(
            Fraction(rates.get(code, 1)) * Fraction(f.by_category[category].value or 0)
            for code, f in plain.by_currency.items()
        )
    unchanged = {"currency", "by_currency", "by_category", *MONEY}
    for field in attrs.fields(PipelineReport):
        if field.name not in unchanged:
            assert getattr(report, field.name) == getattr(plain, field.name), field.name


@settings(max_examples=60, deadline=None)
@given(datasets())
def test_every_report_is_json(dataset: tuple[Pipeline, list[Deal]]) -> None:
    pipeline, deals = dataset
    report = metrics.report(deals, pipeline, as_of=LATE)  # after every generated change
    data = json.loads(json.dumps(report.to_dict()))
    assert data == report.to_dict()
    assert set(data) == set(attrs.fields_dict(PipelineReport))
    for code, figures in report.by_currency.items():
        assert Decimal(data["by_currency"][code]["open_value"]) == figures.open_value
    if report.open_value is not None:
        assert Decimal(data["open_value"]) == report.open_value


def test_a_mixed_report_is_a_hashable_picklable_value(deals: list[Deal], p: Pipeline) -> None:
    report = metrics.report(deals, p, as_of=NOW)
    again = metrics.report(list(reversed(deals)), p, as_of=NOW)
    assert report == again
    assert hash(report) == hash(again)
    assert pickle.loads(pickle.dumps(report)) == report
    assert report != metrics.report(deals, p, as_of=NOW, currency="EUR", rates=RATES)
    with pytest.raises(ValidationError):
        attrs.evolve(report, by_currency=5)
