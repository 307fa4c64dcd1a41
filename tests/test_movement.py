"""metrics.movement: the waterfall of the open pipeline, from the change log.

The stores are held to ``store.movement == metrics.movement`` by ``StoreContract``;
here: the balance over generated logs, each row on a hand-made log, money, refusals.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salespipeline import Bant, Pipeline, log, metrics, presets
from salespipeline.errors import ValidationError
from salespipeline.metrics import Flow, Movement
from salespipeline.migration import Migration
from salespipeline.testing._stories import Story, changes_of, deal_stories, elsewhere, windows

FIVE = presets.five_stage()
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
QUALIFIED = Bant(budget=True, authority=True, need=True, timeline=True)
STAGES_TO_CLOSING = ("qualification", "initial_contact", "proposal", "closing")
RATES = {"EUR": Decimal("1.08"), "KRW": Decimal("0.00074")}


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def balance(m: Movement) -> tuple[int, Decimal | None]:
    """What start plus the flows comes to: (count, value); the value None when mixed."""
    count = (
        m.start.count
        + m.created.count
        - m.won.count
        - m.lost.count
        + m.reopened.count
        - m.migrated_out.count
    )
    if m.start.value is None:
        return count, None
    flows = [m.created, m.increased, m.reopened]
    outs = [m.decreased, m.won, m.lost, m.migrated_out]
    value = m.start.value + sum(f.value or 0 for f in flows) - sum(f.value or 0 for f in outs)
    return count, value


def assert_balanced(m: Movement) -> None:
    count, value = balance(m)
    assert count == m.end.count
    assert value == m.end.value
    for own in m.by_currency.values():
        assert_balanced(own)
    assert all(flow.count >= 0 for _, flow in m.rows())


@given(deal_stories(FIVE, T0), windows(T0))
def test_the_waterfall_balances_for_any_window_of_any_log(
    story: Story, window: tuple[datetime, datetime]
) -> None:
    changes = changes_of(story)
    start, end = window
    for options in ({}, {"currency": "EUR"}, {"currency": "USD", "rates": RATES}):
        assert_balanced(metrics.movement(changes, FIVE, start=start, end=end, **options))


@given(deal_stories(FIVE, T0), windows(T0))
def test_start_and_end_are_the_open_deals_replay_gives(
    story: Story, window: tuple[datetime, datetime]
) -> None:
    changes = changes_of(story)
    start, end = window
    moved = metrics.movement(changes, FIVE, start=start, end=end, currency="USD", rates=RATES)
    tick = timedelta(microseconds=1)
    for flow, until in ((moved.start, start - tick), (moved.end, end - tick)):
        deals = [
            d
            for d in log.replay(changes, until=until).values()
            if d.pipeline == FIVE.name and d.is_open
        ]
        rate = {**RATES, "USD": Decimal(1)}
        assert flow.count == len(deals)
        assert flow.value == sum((d.amount * rate[d.currency] for d in deals), Decimal(0))


@given(deal_stories(FIVE, T0), windows(T0), st.randoms())
def test_the_order_of_the_deals_in_the_log_does_not_matter(
    story: Story, window: tuple[datetime, datetime], random: Random
) -> None:
    changes = changes_of(story)
    shuffled = list(changes)
    random.shuffle(shuffled)
    start, end = window
    assert metrics.movement(shuffled, FIVE, start=start, end=end) == metrics.movement(
        changes, FIVE, start=start, end=end
    )


@given(deal_stories(FIVE, T0), windows(T0))
def test_each_currency_s_waterfall_is_the_one_asked_for_alone(
    story: Story, window: tuple[datetime, datetime]
) -> None:
    changes = changes_of(story)
    start, end = window
    mixed = metrics.movement(changes, FIVE, start=start, end=end)
    for code, own in mixed.by_currency.items():
        alone = metrics.movement(changes, FIVE, start=start, end=end, currency=code)
        assert alone.by_currency == {code: own}
        assert attrs_without_by_currency(alone) == attrs_without_by_currency(own)
    if len(mixed.by_currency) > 1:
        assert mixed.currency is None and mixed.end.value is None


def attrs_without_by_currency(m: Movement) -> tuple[object, ...]:
    return (m.currency, m.rows())


# -- each row, on a hand-made log ----------------------------------------------------------


def week() -> list[log.Change]:
    """Five deals over a week; the window is [at(24), at(24 * 7))."""
    return changes_of(week_story())


def week_story() -> Story:
    """The deals of ``week``, step by step."""
    a0 = FIVE.start("a", amount=100, close_date=date(2026, 3, 5), at=at(0))
    a1 = a0.evolve(amount=150, close_date=date(2026, 3, 12), at=at(30))  # raised, slipped
    b0 = FIVE.start("b", amount=80, at=at(1))
    b1 = FIVE.lose(b0, "price", at=at(48))
    b2 = FIVE.move(b1, "qualification", at=at(72))  # lost, then reopened
    c0 = FIVE.start("c", amount=40, at=at(24))  # created at the window's start: inside
    c1 = FIVE.advance(c0, at=at(25))
    c2 = c1.evolve(amount=10, at=at(26))  # cut by 30
    d0 = FIVE.start("d", amount=500, at=at(2))
    d1 = Migration(FIVE, elsewhere(FIVE)).apply(d0, at=at(50))  # migrated out
    e0 = FIVE.start("e", amount=7, at=at(24 * 7))  # created at the end: outside
    steps: Story = [
        (None, a0), (None, b0), (None, d0), (None, c0), (c0, c1), (c1, c2),
        (a0, a1), (b0, b1), (d0, d1), (b1, b2), (None, e0),
    ]  # fmt: skip
    return steps


def test_every_row_of_a_hand_made_week() -> None:
    m = metrics.movement(week(), FIVE, start=at(24), end=at(24 * 7))
    assert m.currency == "USD"
    assert m.start == Flow(3, Decimal(680))
    assert m.created == Flow(1, Decimal(40))
    assert m.increased == Flow(1, Decimal(50))
    assert m.decreased == Flow(1, Decimal(30))
    assert (m.won, m.lost) == (Flow(0, Decimal(0)), Flow(1, Decimal(80)))
    assert m.reopened == Flow(1, Decimal(80))
    assert m.migrated_out == Flow(1, Decimal(500))
    assert m.end == Flow(3, Decimal(240))
    assert m.slipped == Flow(1, Decimal(150))
    assert m.pushed_out == Flow(1, Decimal(150))
    assert_balanced(m)


def test_a_change_at_start_is_inside_and_one_at_end_is_not() -> None:
    m = metrics.movement(week(), FIVE, start=at(24), end=at(24 * 7))
    assert m.created.count == 1  # c at start; e at end is not
    later = metrics.movement(week(), FIVE, start=at(24 * 7), end=at(24 * 8))
    assert later.created == Flow(1, Decimal(7))


def test_an_empty_window_moves_nothing() -> None:
    m = metrics.movement(week(), FIVE, start=at(30), end=at(30))
    assert m.start == m.end
    assert all(flow.count == 0 for name, flow in m.rows() if name not in ("start", "end"))


def test_a_deal_won_in_the_window_leaves_at_its_amount_then() -> None:
    deal = FIVE.start("w", amount=10, bant=QUALIFIED, at=at(0))
    story: Story = [(None, deal)]
    for step in [
        lambda d: d.evolve(amount=25, at=at(2)),
        *[lambda d, s=stage: FIVE.move(d, s, at=at(3)) for stage in STAGES_TO_CLOSING],
        lambda d: FIVE.win(d, at=at(4)),
    ]:
        story.append((story[-1][1], step(story[-1][1])))
    m = metrics.movement(changes_of(story), FIVE, start=at(1), end=at(5))
    assert (m.start, m.increased, m.won, m.end.count) == (
        Flow(1, Decimal(10)),
        Flow(1, Decimal(15)),
        Flow(1, Decimal(25)),
        0,
    )


def test_a_window_at_the_first_instant_there_is_moves_nothing() -> None:
    first = datetime.min.replace(tzinfo=timezone.utc)
    m = metrics.movement(week(), FIVE, start=first, end=first)
    assert m.start == m.end == Flow(0, Decimal(0))


def test_an_erased_deal_is_in_no_row() -> None:
    deal = FIVE.start("x", amount=10, at=at(0))
    erase = log.Change("x", 2, at(2), "erase", actor="dpo", reason="request")
    m = metrics.movement([*changes_of([(None, deal)]), erase], FIVE, start=at(1), end=at(3))
    assert m.start.count == m.end.count == 0


# -- money ---------------------------------------------------------------------------------


def mixed() -> list[log.Change]:
    return changes_of(mixed_story())


def mixed_story() -> Story:
    """A EUR deal open before at(1), a USD deal opened at at(2)."""
    eu = FIVE.start("eu", amount=Decimal("100.50"), currency="EUR", at=at(0))
    us = FIVE.start("us", amount=20, at=at(2))
    return [(None, eu), (None, us)]


def test_mixed_currencies_without_a_currency_give_counts_and_each_currency() -> None:
    m = metrics.movement(mixed(), FIVE, start=at(1), end=at(3))
    assert m.currency is None
    assert m.start == Flow(1, None) and m.created == Flow(1, None)
    assert m.by_currency["EUR"].end == Flow(1, Decimal("100.5"))
    assert m.by_currency["USD"].created == Flow(1, Decimal(20))


def test_one_currency_alone_keeps_only_its_deals() -> None:
    m = metrics.movement(mixed(), FIVE, start=at(1), end=at(3), currency="eur")
    assert (m.currency, m.end, m.created.count) == ("EUR", Flow(1, Decimal("100.5")), 0)


def test_rates_convert_every_deal_exactly() -> None:
    m = metrics.movement(mixed(), FIVE, start=at(1), end=at(3), currency="USD", rates=RATES)
    assert m.end == Flow(2, Decimal("100.50") * Decimal("1.08") + 20)
    assert set(m.by_currency) == {"EUR", "USD"}


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"start": datetime(2026, 3, 2), "end": at(1)}, "start"),
        ({"start": at(0), "end": datetime(2026, 3, 3)}, "end"),
        ({"start": at(2), "end": at(1)}, "start"),
        ({"currency": "USD", "rates": {"EUR": 0}}, "rates"),
        ({"currency": "USD", "rates": {"EUR": Decimal(-1)}}, "rates"),
        ({"currency": "USD", "rates": {"EUR": 1.08}}, "rates"),
        ({"currency": "USD", "rates": {"KRW": 1}}, "rates"),
        ({"rates": {"EUR": 1}}, "rates"),
        ({"currency": "dollars"}, "currency"),
    ],
)
def test_bad_arguments_are_validation_errors_naming_them(
    options: dict[str, object], field: str
) -> None:
    arguments: dict[str, object] = {"start": at(1), "end": at(3), **options}
    with pytest.raises(ValidationError) as refused:
        metrics.movement(mixed(), FIVE, **arguments)  # type: ignore[arg-type]
    assert refused.value.field == field or field in str(refused.value)


def test_what_is_not_a_log_or_a_pipeline_is_refused() -> None:
    with pytest.raises(ValidationError, match="changes"):
        metrics.movement("log", FIVE, start=at(0), end=at(1))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="Change"):
        metrics.movement([1], FIVE, start=at(0), end=at(1))  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="pipeline"):
        metrics.movement([], "five", start=at(0), end=at(1))  # type: ignore[arg-type]


def test_the_movement_renders_as_text_and_json_data() -> None:
    m = metrics.movement(week(), FIVE, start=at(24), end=at(24 * 7))
    assert "migrated_out" in m.render() and "680.00 USD" in m.render()
    data = m.to_dict()
    assert data["start"] == {"count": 3, "value": "680"}
    assert data["window_start"] == at(24).isoformat()


def test_a_pipeline_of_that_name_is_what_counts() -> None:
    other = Pipeline("other", FIVE.stages)
    assert metrics.movement(week(), other, start=at(0), end=at(200)).end.count == 0
