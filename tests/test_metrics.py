"""Metrics: hand-worked figures for every function, and properties over random pipelines."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _dataset import AS_OF, DAY, FULL, NOW, T, abc, day, hand_worked
from salespipeline import metrics
from salespipeline.deal import Bant, Deal
from salespipeline.errors import UnknownStageError, ValidationError
from salespipeline.metrics import PipelineReport
from salespipeline.pipeline import Pipeline
from salespipeline.stages import LOST, WON, Stage


@pytest.fixture(name="abc")
def abc_fixture() -> Pipeline:
    return abc()


@pytest.fixture
def deals(abc: Pipeline) -> list[Deal]:
    return hand_worked(abc)


def other_pipeline_deal() -> Deal:
    """A won deal of another pipeline: functions with a pipeline argument ignore it."""
    other = Pipeline("other", [Stage("x", probability=0.5)])
    return other.win(other.start("o1", amount=99_999, at=day(0)), at=day(1))


# -- outcomes ----------------------------------------------------------------------


def test_win_rate_by_count(deals: list[Deal]) -> None:
    # won: d1, d3; lost: d2, d6 -> 2 / (2 + 2)
    assert metrics.win_rate(deals) == 0.5


def test_win_rate_by_value(deals: list[Deal]) -> None:
    # won 1000 + 2000 = 3000; lost 3000 + 1500 = 4500 -> 3000 / 7500
    assert metrics.win_rate(deals, by="value") == 0.4


def test_win_rate_counts_every_pipeline(deals: list[Deal]) -> None:
    # no pipeline argument: the other pipeline's won deal counts -> 3 / 5
    assert metrics.win_rate([*deals, other_pipeline_deal()]) == 0.6


def test_win_rate_undefined_without_closed_deals(abc: Pipeline) -> None:
    open_only = [abc.start("x", amount=10, at=T)]
    assert metrics.win_rate(open_only) is None
    assert metrics.win_rate([]) is None


def test_win_rate_by_value_undefined_when_closed_amounts_are_zero(abc: Pipeline) -> None:
    lost = abc.lose(abc.start("x", at=T), "no", at=T)
    assert metrics.win_rate([lost]) == 0.0
    assert metrics.win_rate([lost], by="value") is None


def test_win_rate_refuses_unknown_by(deals: list[Deal]) -> None:
    with pytest.raises(ValidationError, match="count"):
        metrics.win_rate(deals, by="amount")  # type: ignore[arg-type]


def test_average_deal_size(deals: list[Deal]) -> None:
    # (1000 + 2000) / 2 won deals
    assert metrics.average_deal_size(deals) == Decimal(1500)


def won(p: Pipeline, id: str, amount: int | str, *, at: datetime = T) -> Deal:
    """A deal walked through every stage of ``p`` and won, all at ``at``."""
    deal = p.start(id, amount=amount, bant=FULL, at=at)
    for _ in p.stages[1:]:
        deal = p.advance(deal, at=at)
    return p.win(deal, at=at)


def test_average_deal_size_rounds_to_34_digits(abc: Pipeline) -> None:
    won_deals = [won(abc, "x", 1), won(abc, "y", 1), won(abc, "z", 0)]
    # 2 / 3 rounded half-even to 34 significant digits
    assert metrics.average_deal_size([]) is None
    assert str(metrics.average_deal_size(won_deals)) == "0.6666666666666666666666666666666667"


def test_cycle_length(deals: list[Deal]) -> None:
    # won cycles: d1 4 d, d3 (1 -> 10) 9 d -> mean 6.5 d
    assert metrics.cycle_length(deals) == timedelta(days=6, hours=12)
    assert metrics.cycle_length([]) is None


def test_sales_velocity(deals: list[Deal]) -> None:
    # open d4, d5 -> 2 x 1500 x 0.5 / 6.5 days = 1500 / 6.5 = 230.769230...
    assert metrics.sales_velocity(deals) == Decimal("230.7692307692307692307692307692308")


def test_sales_velocity_undefined(abc: Pipeline) -> None:
    assert metrics.sales_velocity([]) is None
    one = Pipeline("one", [Stage("only", probability=0.5)])
    instant = one.win(one.start("x", amount=5, at=T), at=T)  # cycle length zero
    assert metrics.sales_velocity([instant, one.start("y", at=T)]) is None


def test_sales_velocity_is_zero_without_open_deals(deals: list[Deal]) -> None:
    closed = [d for d in deals if not d.is_open]
    assert metrics.sales_velocity(closed) == Decimal(0)


# -- per pipeline ------------------------------------------------------------------


def test_weighted_pipeline(deals: list[Deal], abc: Pipeline) -> None:
    # d4 500 x 0.1 (stage a) + d5 4000 x 0.25 (its override) = 50 + 1000
    assert metrics.weighted_pipeline(deals, abc) == Decimal(1050)


def test_weighted_pipeline_is_exact_decimal(abc: Pipeline) -> None:
    # 0.10 x 0.1 + 1234.56 x 0.1 + 3.33 x 0.3 (override) = 0.01 + 123.456 + 0.999
    deals = [
        abc.start("x", amount="0.10", at=T),
        abc.start("y", amount="1234.56", at=T),
        abc.start("z", amount="3.33", probability=0.3, at=T),
    ]
    assert str(metrics.weighted_pipeline(deals, abc)) == "124.465"
    assert metrics.weighted_pipeline([], abc) == Decimal(0)


def test_stage_counts(deals: list[Deal], abc: Pipeline) -> None:
    counts = metrics.stage_counts([*deals, other_pipeline_deal()], abc)
    assert counts == {"a": 1, "b": 1, "c": 0, WON: 2, LOST: 2}
    assert list(counts) == ["a", "b", "c", WON, LOST]


def test_stage_counts_refuses_a_stage_the_pipeline_lacks(abc: Pipeline) -> None:
    renamed = Pipeline("abc", [Stage("z", probability=0.1)])
    with pytest.raises(UnknownStageError, match="'x'"):
        metrics.stage_counts([renamed.start("x", at=T)], abc)


def test_conversion_rates(deals: list[Deal], abc: Pipeline) -> None:
    # reached a: all 6; reached b (b, c or won): d1 d2 d3 d5 = 4; reached c: d1 d3 = 2;
    # reached won: d1 d3 = 2  ->  a 4/6, b 2/4, c 2/2
    rates = metrics.conversion_rates(deals, abc)
    assert rates == {"a": 4 / 6, "b": 0.5, "c": 1.0}


def test_conversion_counts_a_skipped_stage_as_reached() -> None:
    p = Pipeline("skip", [Stage(n, probability=0.5) for n in "xyz"], allow_skip=True)
    jumped = p.move(p.start("j", at=T), "z", at=T)  # never entered y, but reached it
    assert metrics.conversion_rates([jumped], p) == {"x": 1.0, "y": 1.0, "z": 0.0}


def test_conversion_rates_none_where_no_deal_reached(abc: Pipeline) -> None:
    assert metrics.conversion_rates([abc.start("x", at=T)], abc) == {
        "a": 0.0,
        "b": None,
        "c": None,
    }


def test_time_in_stage(deals: list[Deal], abc: Pipeline) -> None:
    # a: d1 1, d2 2, d3 1, d5 1, d6 1 (to lost) -> 6/5 = 1.2 d (d4 still there: not counted)
    # b: d1 2, d2 3 (to lost), d3 2 -> 7/3 d = 2 d 8 h;  c: d1 1, d3 6 -> 3.5 d
    assert metrics.time_in_stage(deals, abc) == {
        "a": timedelta(days=1, hours=4, minutes=48),
        "b": timedelta(days=2, hours=8),
        "c": timedelta(days=3, hours=12),
    }


def test_time_in_stage_rounds_to_the_microsecond(abc: Pipeline) -> None:
    # stays of 1 us, 1 us and 0 us -> 2/3 us, rounded to 1 us
    third = [
        abc.advance(abc.start(str(i), at=T), at=T + timedelta(microseconds=us))
        for i, us in enumerate((1, 1, 0))
    ]
    assert metrics.time_in_stage(third, abc)["a"] == timedelta(microseconds=1)
    assert metrics.time_in_stage([], abc) == {"a": None, "b": None, "c": None}


def test_stalled(deals: list[Deal], abc: Pipeline) -> None:
    # at day 6: d4 4 d in a (> 2 d), d5 5 d in b (> 3 d); longest first
    assert [d.id for d in metrics.stalled(deals, abc, now=NOW)] == ["d5", "d4"]


def test_stalled_is_strictly_longer_than_rot_after(deals: list[Deal], abc: Pipeline) -> None:
    # at day 4: d4 has been exactly 2 d in a (not stalled), d5 exactly 3 d in b
    assert metrics.stalled(deals, abc, now=day(4)) == []
    assert [d.id for d in metrics.stalled(deals, abc, now=day(4) + timedelta(microseconds=1))] == [
        "d5",
        "d4",
    ]


def test_stalled_needs_an_aware_now(deals: list[Deal], abc: Pipeline) -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        metrics.stalled(deals, abc, now=datetime(2026, 1, 1))


def test_bottlenecks(deals: list[Deal], abc: Pipeline) -> None:
    # mean stays (us): a 1.2 d, b 7/3 d, c 3.5 d; total 7.0333 d
    # a: (1 - 4/6) + 1.2/7.0333 + 1/1 stalled = 0.3333 + 0.1706 + 1 = 1.5040
    # b: (1 - 0.5) + (7/3)/7.0333 + 1/1       = 0.5    + 0.3318 + 1 = 1.8318
    # c: (1 - 1)   + 3.5/7.0333   + 0 deals   = 0.4976
    ranked = metrics.bottlenecks(deals, abc, now=NOW)
    assert [b.stage for b in ranked] == ["b", "a", "c"]
    b = ranked[0]
    assert b.score == pytest.approx(0.5 + 201_600 / 607_680 + 1.0)
    assert (b.conversion, b.deals, b.stalled) == (0.5, 1, 1)
    assert b.time_share == 201_600 / 607_680
    assert b.time_in_stage == timedelta(days=2, hours=8)
    assert "1 of its 1 open deal is stalled" in b.reasons
    assert ranked[2].reasons == ("50% of the time deals spend in stages (mean 3d 12h)",)


def test_bottlenecks_leave_out_stages_that_hold_nothing_back(abc: Pipeline) -> None:
    assert metrics.bottlenecks([won(abc, "w", 10)], abc, now=NOW) == ()


def test_calibration(deals: list[Deal], abc: Pipeline) -> None:
    # won 2 (reached everything); lost that reached a: d2 d6, reached b: d2, reached c: none
    cal = {c.stage: c for c in metrics.calibration(deals, abc)}
    assert (cal["a"].probability, cal["a"].empirical, cal["a"].closed) == (0.1, 0.5, 4)
    assert (cal["b"].empirical, cal["b"].closed, cal["b"].won) == (2 / 3, 3, 2)
    assert (cal["c"].empirical, cal["c"].closed) == (1.0, 2)
    assert cal["c"].gap == pytest.approx(0.2)


def test_calibration_without_closed_deals(abc: Pipeline) -> None:
    cal = metrics.calibration([abc.start("x", at=T)], abc)
    assert [(c.empirical, c.closed, c.gap) for c in cal] == [(None, 0, None)] * 3


def test_forecast_by_month(deals: list[Deal], abc: Pipeline) -> None:
    # remaining cycle of a (won deals, close - last entry): d1 4 d, d3 9 d -> 6.5 d
    # d4: entered a day 2 + 6.5 d = 2026-01-09 -> January, 500 x 0.1 = 50
    # d5: expected_close 2026-02-15 -> February, 4000 x 0.25 = 1000
    january = metrics.ForecastPeriod(
        period="2026-01", start=date(2026, 1, 1), expected=Decimal(50), deals=1
    )
    february = metrics.ForecastPeriod(
        period="2026-02", start=date(2026, 2, 1), expected=Decimal(1000), deals=1
    )
    assert metrics.forecast(deals, abc) == (january, february)


def test_forecast_by_quarter_and_year(deals: list[Deal], abc: Pipeline) -> None:
    by_quarter = metrics.forecast(deals, abc, by="quarter")
    assert [(f.period, f.start, f.expected, f.deals) for f in by_quarter] == [
        ("2026-Q1", date(2026, 1, 1), Decimal(1050), 2)
    ]
    assert metrics.forecast(deals, abc, by="year")[0].period == "2026"


def test_forecast_without_history_is_unscheduled(abc: Pipeline) -> None:
    # no won deal yet, so no remaining cycle to estimate from
    forecast = metrics.forecast([abc.start("x", amount=100, at=T)], abc)
    assert forecast == (
        metrics.ForecastPeriod(period="unscheduled", start=None, expected=Decimal(10), deals=1),
    )


def test_forecast_refuses_unknown_period(deals: list[Deal], abc: Pipeline) -> None:
    with pytest.raises(ValidationError, match="month"):
        metrics.forecast(deals, abc, by="week")  # type: ignore[arg-type]


def test_disqualification_candidates(abc: Pipeline) -> None:
    # the pipeline has no 'qualification' stage, so the first stage (a) qualifies
    no_authority = abc.advance(
        abc.start("na", bant=Bant(budget=True), at=day(0)), at=day(1)
    )  # in b since day 1: past a without authority
    slow = abc.start("slow", bant=FULL, at=day(0))  # in a 6 d > 2 x 2 d
    twice = abc.start("twice", bant=FULL, at=day(5))
    twice = abc.reopen(abc.lose(twice, "x", at=day(5)), at=day(5))
    twice = abc.reopen(abc.lose(twice, "y", at=day(5)), at=day(5))  # lost twice, reopened
    fine = abc.start("fine", at=day(5))
    found = metrics.disqualification_candidates([fine, twice, slow, no_authority], abc, now=NOW)
    assert [(c.deal.id, c.reasons) for c in found] == [
        ("slow", ("in a for 6d 0h, more than twice its stall limit of 2d 0h",)),
        ("na", ("past a without a decision maker (authority)",)),
        ("twice", ("lost 2 times and reopened each time",)),
    ]


def test_disqualification_uses_the_qualification_stage() -> None:
    from salespipeline import presets

    p = presets.five_stage()
    qualified = p.advance(p.start("q", at=T), at=T)  # in qualification: not past it yet
    past = p.advance(qualified, at=T)
    found = metrics.disqualification_candidates([qualified, past], p, now=T)
    assert [(c.deal.id, c.reasons) for c in found] == [
        (
            "q",
            (
                "past qualification without a confirmed budget",
                "past qualification without a decision maker (authority)",
            ),
        )
    ]


# -- report ------------------------------------------------------------------------


def test_report_gathers_every_figure(deals: list[Deal], abc: Pipeline) -> None:
    report = metrics.report([*deals, other_pipeline_deal()], abc, as_of=AS_OF)
    assert (report.pipeline, report.as_of, report.deals, report.open_deals) == ("abc", AS_OF, 6, 2)
    assert (report.won, report.lost, report.currencies) == (2, 2, ("USD",))
    assert report.stage_counts == metrics.stage_counts(deals, abc)
    assert report.conversion_rates == metrics.conversion_rates(deals, abc)
    assert report.overall_conversion == 2 / 6
    assert (report.win_rate, report.win_rate_by_value) == (0.5, 0.4)
    assert report.average_deal_size == metrics.average_deal_size(deals)
    assert report.cycle_length == metrics.cycle_length(deals)
    assert report.sales_velocity == metrics.sales_velocity(deals)
    assert (report.open_value, report.weighted_pipeline) == (Decimal(4500), Decimal(1050))
    assert report.time_in_stage == metrics.time_in_stage(deals, abc)
    assert (report.stalled, report.stalled_ids) == (2, ("d5", "d4"))
    assert report.stalled_by_stage == {"a": 1, "b": 1, "c": 0}
    assert report.bottlenecks == metrics.bottlenecks(deals, abc, now=AS_OF)
    assert report.calibration == metrics.calibration(deals, abc)


def test_report_reads_the_pipeline_clock_when_now_is_omitted(
    deals: list[Deal], abc: Pipeline
) -> None:
    report = metrics.report(deals, abc.with_clock(lambda: AS_OF))
    assert report == metrics.report(deals, abc, as_of=AS_OF)


def test_report_is_a_hashable_value(deals: list[Deal], abc: Pipeline) -> None:
    report = metrics.report(deals, abc, as_of=AS_OF)
    again = metrics.report(list(reversed(deals)), abc, as_of=AS_OF)
    assert report == again
    assert hash(report) == hash(again)
    assert report != metrics.report(deals[:-1], abc, as_of=AS_OF)


def test_report_of_nothing(abc: Pipeline) -> None:
    report = metrics.report([], abc, as_of=AS_OF)
    assert (report.deals, report.win_rate, report.average_deal_size) == (0, None, None)
    assert (report.sales_velocity, report.weighted_pipeline) == (None, Decimal(0))
    assert report.conversion_rates == {"a": None, "b": None, "c": None}
    assert report.bottlenecks == ()


def test_report_refuses_what_is_not_a_pipeline(deals: list[Deal]) -> None:
    with pytest.raises(ValidationError, match="Pipeline"):
        metrics.report(deals, "abc", as_of=AS_OF)  # type: ignore[arg-type]


def test_render_shows_the_figures(deals: list[Deal], abc: Pipeline) -> None:
    text = metrics.report(deals, abc, as_of=AS_OF).render()
    assert text == metrics.render_report(metrics.report(deals, abc, as_of=AS_OF))
    lines = text.splitlines()
    assert lines[0] == "Pipeline abc as of 2026-01-12 00:00 UTC"
    assert "6 deals: 2 open, 2 won, 2 lost (currencies: USD)" in lines
    row = next(line for line in lines if line.startswith("b "))
    assert row.split() == ["b", "1", "1", "50.0%", "2d", "8h"]
    assert any(line.split()[:2] == ["average", "deal"] and "1,500.00" in line for line in lines)
    assert " 1. b (score 1.83)" in text


# -- properties over random, legally moved deals ------------------------------------


@st.composite
def pipelines(draw: st.DrawFn) -> Pipeline:
    size = draw(st.integers(1, 5))
    stages = [
        Stage(
            f"s{i}",
            probability=draw(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9])),
            rot_after=draw(st.sampled_from([None, DAY, 3 * DAY])),
        )
        for i in range(size)
    ]
    return Pipeline("prop", stages, allow_skip=draw(st.booleans()), allow_back=draw(st.booleans()))


def random_deals(pipeline: Pipeline, seed: int, count: int) -> list[Deal]:
    """``count`` deals moved at random along legal moves, at random later times."""
    rng = random.Random(seed)
    deals = []
    for i in range(count):
        at = T + timedelta(hours=rng.randrange(200), microseconds=rng.randrange(10**6))
        deal = pipeline.start(
            f"p{i}",
            amount=Decimal(rng.randrange(10**7)).scaleb(-rng.randrange(4)),
            probability=rng.choice([None, None, 0.3, 0.75]),
            at=at,
        )
        for _ in range(rng.randrange(8)):
            moves = pipeline.moves(deal)
            if not moves:
                break
            at += timedelta(minutes=rng.randrange(5000), microseconds=rng.randrange(10**6))
            to = rng.choice(moves)
            deal = pipeline.move(deal, to, at=at, reason="gone" if to == LOST else None)
        deals.append(deal)
    return deals


datasets = st.tuples(pipelines(), st.integers(0, 2**32), st.integers(0, 40)).map(
    lambda t: (t[0], random_deals(*t))
)


@given(datasets)
def test_figures_stay_in_range(dataset: tuple[Pipeline, list[Deal]]) -> None:
    pipeline, deals = dataset
    report = metrics.report(deals, pipeline, as_of=T + 30 * DAY)
    assert sum(report.stage_counts.values()) == len(deals) == report.deals
    assert list(report.stage_counts) == list(pipeline.stage_names)
    for rate in (report.win_rate, report.win_rate_by_value, *report.conversion_rates.values()):
        assert rate is None or 0.0 <= rate <= 1.0
    assert Decimal(0) <= report.weighted_pipeline <= report.open_value
    assert report.stalled == len(metrics.stalled(deals, pipeline, now=report.as_of))
    assert all(c.empirical is None or 0 <= c.empirical <= 1 for c in report.calibration)
    scores = [b.score for b in report.bottlenecks]
    assert scores == sorted(scores, reverse=True)
    assert all(0 < s <= 3 for s in scores)


@given(datasets, st.randoms())
def test_report_does_not_depend_on_order(
    dataset: tuple[Pipeline, list[Deal]], rng: random.Random
) -> None:
    pipeline, deals = dataset
    shuffled = list(deals)
    rng.shuffle(shuffled)
    now = T + 400 * DAY  # after every generated change
    assert metrics.report(iter(shuffled), pipeline, as_of=now) == metrics.report(
        deals, pipeline, as_of=now
    )


@given(datasets)
def test_conversion_follows_the_literal_definition(dataset: tuple[Pipeline, list[Deal]]) -> None:
    pipeline, deals = dataset
    names = [s.name for s in pipeline.stages] + [WON]

    def reached(deal: Deal, i: int) -> bool:
        entered = {c.to_stage for c in deal.history}
        return any(name in entered for name in names[i:])

    expected = {}
    for i, name in enumerate(names[:-1]):
        at_s = [d for d in deals if reached(d, i)]
        expected[name] = None if not at_s else sum(reached(d, i + 1) for d in at_s) / len(at_s)
    assert metrics.conversion_rates(deals, pipeline) == expected


@given(datasets)
def test_time_in_stage_follows_the_literal_definition(
    dataset: tuple[Pipeline, list[Deal]],
) -> None:
    pipeline, deals = dataset
    stays: dict[str, list[timedelta]] = {s.name: [] for s in pipeline.stages}
    for deal in deals:
        for entered, left in pairwise(deal.history):
            if entered.to_stage in stays:
                stays[entered.to_stage].append(left.at - entered.at)
    result = metrics.time_in_stage(deals, pipeline)
    for name, durations in stays.items():
        if not durations:
            assert result[name] is None
        else:
            exact = sum(durations, timedelta()) / len(durations)
            assert abs(result[name] - exact) <= timedelta(microseconds=1)  # type: ignore[operator]


@given(datasets)
def test_stalled_lists_exactly_the_rotting_open_deals(
    dataset: tuple[Pipeline, list[Deal]],
) -> None:
    pipeline, deals = dataset
    now = T + 10 * DAY
    found = metrics.stalled(deals, pipeline, now=now)
    limits = {s.name: s.rot_after for s in pipeline.stages}
    expected = {
        d.id
        for d in deals
        if limits.get(d.stage) is not None and now - d.stage_entered_at > limits[d.stage]  # type: ignore[operator]
    }
    assert {d.id for d in found} == expected
    entered = [d.stage_entered_at for d in found]
    assert entered == sorted(entered)


@given(datasets)
def test_weighted_pipeline_is_the_exact_sum(dataset: tuple[Pipeline, list[Deal]]) -> None:
    pipeline, deals = dataset
    exact = sum(
        (d.amount * Decimal(repr(pipeline.probability(d))) for d in deals if d.is_open),
        Decimal(0),
    )
    assert metrics.weighted_pipeline(deals, pipeline) == exact


def test_report_type_is_exported() -> None:
    import salespipeline

    assert salespipeline.PipelineReport is PipelineReport
    assert salespipeline.metrics is metrics


def test_report_pickles(deals: list[Deal], abc: Pipeline) -> None:
    import pickle

    report = metrics.report(deals, abc, as_of=AS_OF)
    assert pickle.loads(pickle.dumps(report)) == report


@pytest.mark.parametrize(
    ("conversion", "stalled", "deals", "expected"),
    [
        (
            0.95,
            1,
            12,
            ("5% of the deals that reach it go no further", "1 of its 12 open deals is stalled"),
        ),
        (
            0.5,
            3,
            12,
            ("50% of the deals that reach it go no further", "3 of its 12 open deals are stalled"),
        ),
        (
            0.999,
            1,
            1,
            (
                "under 1% of the deals that reach it go no further",
                "1 of its 1 open deal is stalled",
            ),
        ),
        (1.0, 1_200, 1_500, ("1,200 of its 1,500 open deals are stalled",)),
    ],
)
def test_bottleneck_reasons_read_as_plain_english(
    conversion: float, stalled: int, deals: int, expected: tuple[str, ...]
) -> None:
    from salespipeline.metrics._report import _reasons

    assert _reasons(conversion, None, 0.0, deals, stalled) == expected


def test_the_rendered_report_groups_thousands(abc: Pipeline) -> None:
    many = [abc.start(f"d{i:04}", at=T) for i in range(1_000)]
    text = metrics.report(many, abc, as_of=AS_OF).render()
    assert "1,000 deals: 1,000 open, 0 won, 0 lost" in text
    assert any(line.split()[:2] == ["a", "1,000"] for line in text.splitlines())


PER_PIPELINE = [
    lambda d, p: metrics.weighted_pipeline(d, p),
    lambda d, p: metrics.stage_counts(d, p),
    lambda d, p: metrics.conversion_rates(d, p),
    lambda d, p: metrics.time_in_stage(d, p),
    lambda d, p: metrics.calibration(d, p),
    lambda d, p: metrics.stalled(d, p, now=NOW),
    lambda d, p: metrics.bottlenecks(d, p, now=NOW),
    lambda d, p: metrics.report(d, p, as_of=AS_OF),
    lambda d, p: metrics.forecast(d, p),
    lambda d, p: metrics.disqualification_candidates(d, p, now=NOW),
]
OUTCOMES = [
    metrics.win_rate,
    metrics.average_deal_size,
    metrics.cycle_length,
    metrics.sales_velocity,
]


@pytest.mark.parametrize("figure", PER_PIPELINE)
@pytest.mark.parametrize("deals", [None, 5, "deals", [1, 2]])
def test_per_pipeline_figures_refuse_what_is_not_deals(
    figure: Any, deals: Any, abc: Pipeline
) -> None:
    with pytest.raises(ValidationError, match="Deal"):
        figure(deals, abc)


@pytest.mark.parametrize("figure", PER_PIPELINE)
def test_per_pipeline_figures_refuse_what_is_not_a_pipeline(figure: Any, abc: Pipeline) -> None:
    with pytest.raises(ValidationError, match="Pipeline"):
        figure([abc.start("d", at=T)], "abc")


@pytest.mark.parametrize("figure", OUTCOMES)
@pytest.mark.parametrize("deals", [None, 5, {"a": 1}, [object()]])
def test_outcome_figures_refuse_what_is_not_deals(figure: Any, deals: Any) -> None:
    with pytest.raises(ValidationError, match="Deal"):
        figure(deals)


def test_a_forecast_past_the_calendar_is_unscheduled(abc: Pipeline) -> None:
    late = datetime(9998, 12, 30, tzinfo=T.tzinfo)
    won_deal = abc.win(
        abc.advance(abc.advance(abc.start("w", at=T), at=T), at=T), at=T + 400 * DAY
    )
    stuck = abc.start("s", at=late)
    periods = metrics.forecast([won_deal, stuck], abc)
    assert [p.period for p in periods] == ["unscheduled"]


def test_a_report_built_by_hand_with_a_non_mapping_figure_is_a_validation_error(
    abc: Pipeline,
) -> None:
    report = metrics.report([abc.start("d", at=T)], abc, as_of=AS_OF)
    with pytest.raises(ValidationError, match="mapping"):
        attrs.evolve(report, stage_counts=5)
