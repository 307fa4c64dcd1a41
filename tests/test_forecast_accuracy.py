"""metrics.forecast_accuracy: a forecast rebuilt from the log at made_at, against what was won."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salespipeline import log, metrics
from salespipeline.errors import ValidationError
from salespipeline.stages import WON
from salespipeline.testing._stories import Story, changes_of, deal_stories
from test_movement import FIVE, QUALIFIED, T0, at

START, END = datetime(2026, 3, 9, tzinfo=T0.tzinfo), datetime(2026, 3, 16, tzinfo=T0.tzinfo)


def quarter() -> Story:
    """Made at at(0): a (100, closing, commit) and b (200, prospecting) close in the
    window; c (50) closes after it. Then a is won at 120, b lost, d opened and won."""
    a0 = FIVE.start("a", amount=100, bant=QUALIFIED, close_date=date(2026, 3, 10), at=T0)
    story: Story = [(None, a0)]
    for stage in ("qualification", "initial_contact", "proposal", "closing"):
        story.append((story[-1][1], FIVE.move(story[-1][1], stage, at=T0)))
    b0 = FIVE.start("b", amount=200, close_date=date(2026, 3, 12), at=T0)
    c0 = FIVE.start("c", amount=50, close_date=date(2026, 3, 20), at=T0)
    a = story[-1][1]
    a_raised = a.evolve(amount=120, at=START)
    a_won = FIVE.win(a_raised, at=START + timedelta(days=1))
    b_lost = FIVE.lose(b0, "price", at=START + timedelta(days=2))
    d0 = FIVE.start("d", amount=30, bant=QUALIFIED, at=START)
    d = d0
    steps = [(None, b0), (None, c0), (a, a_raised), (a_raised, a_won), (b0, b_lost), (None, d0)]
    for stage in ("qualification", "initial_contact", "proposal", "closing"):
        steps.append((d, moved := FIVE.move(d, stage, at=START)))
        d = moved
    steps.append((d, FIVE.win(d, at=END - timedelta(microseconds=1))))
    return [*story, *steps]


def test_a_hand_worked_quarter() -> None:
    result = metrics.forecast_accuracy(
        changes_of(quarter()), FIVE, made_at=at(1), start=START, end=END
    )
    weighted = Decimal(100) * Decimal(repr(FIVE.stage("closing").probability)) + Decimal(
        200
    ) * Decimal(repr(FIVE.stage("prospecting").probability))
    assert (result.forecast_deals, result.won_deals) == (2, 2)
    assert result.weighted == weighted
    assert result.commit == 100  # a, in closing (0.9: commit)
    assert result.won == 150  # a at 120 and d at 30, won in the window
    assert result.commit_error == -50
    assert result.commit_error_rate == -1 / 3
    assert result.weighted_error == weighted - 150
    assert result.currency == "USD"


def test_a_win_at_the_end_is_outside() -> None:
    later = metrics.forecast_accuracy(
        changes_of(quarter()),
        FIVE,
        made_at=at(1),
        start=START,
        end=END - timedelta(microseconds=1),
    )
    assert (later.won_deals, later.won) == (1, 120)


@given(deal_stories(FIVE, T0), st.integers(0, 200), st.integers(0, 200))
def test_the_figures_are_their_definitions(story: Story, made: int, length: int) -> None:
    changes = changes_of(story)
    made_at, start = at(made / 10), at(24)
    end = start + timedelta(hours=length)
    result = metrics.forecast_accuracy(
        changes, FIVE, made_at=made_at, start=start, end=end, currency="USD",
        rates={"EUR": 2, "KRW": Decimal("0.001")},
    )  # fmt: skip
    rate = {"USD": Fraction(1), "EUR": Fraction(2), "KRW": Fraction(1, 1000)}
    then = log.replay(changes, until=made_at).values()
    forecast = [
        d for d in then
        if d.pipeline == FIVE.name and d.is_open and d.close_date is not None
        and start <= datetime.combine(d.close_date, datetime.min.time(), T0.tzinfo) < end
    ]  # fmt: skip
    won = [
        d for d in log.replay(changes, until=end - timedelta(microseconds=1)).values()
        if d.pipeline == FIVE.name and d.stage == WON and d.closed_at is not None
        and start <= d.closed_at < end
    ]  # fmt: skip
    expected = sum(
        (
            Fraction(repr(FIVE.probability(d))) * Fraction(d.amount) * rate[d.currency]
            for d in forecast
        ),
        Fraction(0),
    )
    won_value = sum((Fraction(d.amount) * rate[d.currency] for d in won), Fraction(0))
    assert (result.forecast_deals, result.won_deals) == (len(forecast), len(won))
    assert result.weighted is not None and result.won is not None
    assert abs(Fraction(result.weighted) - expected) <= Fraction(1, 10**20)
    assert Fraction(result.won) == won_value
    assert result.weighted_error == result.weighted - result.won


def test_mixed_currencies_give_each_currency_and_no_total() -> None:
    eu = FIVE.start("eu", amount=10, currency="EUR", close_date=date(2026, 3, 10), at=T0)
    us = FIVE.start("us", amount=20, close_date=date(2026, 3, 11), at=T0)
    result = metrics.forecast_accuracy(
        changes_of([(None, eu), (None, us)]), FIVE, made_at=at(1), start=START, end=END
    )
    assert (result.currency, result.weighted, result.forecast_deals) == (None, None, 2)
    first = Decimal(repr(FIVE.stage("prospecting").probability))
    assert result.by_currency["EUR"].weighted == 10 * first
    assert result.by_currency["USD"].won == 0
    assert result.by_currency["USD"].weighted_error_rate is None  # nothing won
    only = metrics.forecast_accuracy(
        changes_of([(None, eu), (None, us)]), FIVE, made_at=at(1), start=START, end=END,
        currency="EUR",
    )  # fmt: skip
    assert (only.forecast_deals, only.weighted) == (1, 10 * first)
    assert only.to_dict()["weighted"] == "0.5"  # 10 x 0.05, no trailing zero


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"made_at": datetime(2026, 3, 1)}, "made_at"),
        ({"start": datetime(2026, 3, 9)}, "start"),
        ({"start": END, "end": START}, "start"),
        ({"currency": "USD", "rates": {"EUR": 0}}, "rates"),
        ({"currency": "USD", "rates": {"EUR": 0.5}}, "rates"),
        ({"currency": "USD", "rates": {}}, "rates"),
    ],
)
def test_bad_arguments_are_validation_errors_naming_them(
    options: dict[str, object], field: str
) -> None:
    eu = FIVE.start("eu", amount=10, currency="EUR", close_date=date(2026, 3, 10), at=T0)
    arguments: dict[str, object] = {"made_at": at(1), "start": START, "end": END, **options}
    with pytest.raises(ValidationError) as refused:
        metrics.forecast_accuracy(changes_of([(None, eu)]), FIVE, **arguments)  # type: ignore[arg-type]
    assert refused.value.field == field or field in str(refused.value)


def test_a_window_at_the_first_instant_there_is_wins_nothing() -> None:
    first = datetime.min.replace(tzinfo=T0.tzinfo)
    result = metrics.forecast_accuracy(
        changes_of(quarter()), FIVE, made_at=first, start=first, end=first
    )
    assert (result.forecast_deals, result.won_deals, result.won) == (0, 0, 0)
