"""Lead scoring: each rule, the 0-100 score, cards as data, min_score, score bands."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from salespipeline import (
    Bant,
    Deal,
    DefinitionError,
    Pipeline,
    Stage,
    StageBlockedError,
    ValidationError,
    guards,
)
from salespipeline import scoring as sc

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)
PIPELINE = Pipeline(
    "p",
    [Stage("lead", probability=0.1), Stage("proposal", probability=0.5)],
    allow_skip=True,
)


def deal(id: str = "d1", **kw: Any) -> Deal:
    return PIPELINE.start(id, at=T0, **kw)


def closed(id: str, won: bool, **kw: Any) -> Deal:
    d = deal(id, **kw)
    return PIPELINE.win(d, at=T0) if won else PIPELINE.lose(d, "price", at=T0)


# -- rules, one by one -------------------------------------------------------------


def test_bant_rule_awards_its_points_only_when_the_criterion_is_met() -> None:
    rule = sc.bant("budget", points=20)
    assert rule.award(deal(bant=Bant(budget=True)), None) == (20, "BANT budget confirmed")
    assert rule.award(deal(bant=Bant(need=True)), None) == (0, "BANT budget not confirmed")
    assert rule.name == "bant.budget"


@pytest.mark.parametrize("value", [None, "", "   ", [], {}])
def test_has_field_treats_empty_values_as_missing(value: object) -> None:
    rule = sc.has_field("industry", points=10)
    assert rule.award(deal(fields={"industry": value}), None)[0] == 0
    assert rule.award(deal(), None)[0] == 0


@pytest.mark.parametrize("value", ["retail", 0, False, ["a"], {"k": 1}])
def test_has_field_awards_any_non_empty_value(value: object) -> None:
    assert (
        sc.has_field("industry", points=10).award(deal(fields={"industry": value}), None)[0] == 10
    )


def test_field_equals_compares_as_json_so_true_is_not_one() -> None:
    assert sc.field_equals("size", 1, points=5).award(deal(fields={"size": 1.0}), None)[0] == 5
    assert sc.field_equals("size", 1, points=5).award(deal(fields={"size": True}), None)[0] == 0
    assert sc.field_equals("vip", True, points=5).award(deal(fields={"vip": 1}), None)[0] == 0
    assert sc.field_equals("vip", True, points=5).award(deal(fields={"vip": True}), None)[0] == 5


def test_field_in_awards_points_for_any_listed_value() -> None:
    rule = sc.field_in("source", ["referral", "event"], points=15)
    assert rule.award(deal(fields={"source": "event"}), None)[0] == 15
    points, reason = rule.award(deal(fields={"source": "ad"}), None)
    assert points == 0
    assert "'ad'" in reason


@pytest.mark.parametrize(
    ("amount", "points"), [(0, 0), (9_999, 0), (10_000, 10), (49_999, 10), (50_000, 25)]
)
def test_amount_bands_award_the_highest_band_reached(amount: int, points: int) -> None:
    rule = sc.amount_bands({50_000: 25, 10_000: 10})
    assert rule.points == 25
    assert rule.award(deal(amount=amount), None)[0] == points


@pytest.mark.parametrize(
    ("age", "points"), [(0 * DAY, 20), (7 * DAY, 20), (8 * DAY, 10), (30 * DAY, 10), (31 * DAY, 0)]
)
def test_recency_awards_the_tightest_band_the_last_activity_fits(
    age: timedelta, points: int
) -> None:
    rule = sc.recency({timedelta(days=7): 20, timedelta(days=30): 10})
    assert rule.award(deal(), T0 + age)[0] == points


def test_recency_without_now_awards_nothing_and_says_so() -> None:
    card = sc.ScoreCard([sc.recency({DAY: 10}), sc.bant("need", points=10)])
    score = card.score(deal(bant=Bant(need=True)))
    assert score.parts == {"recency": 0, "bant.need": 10}
    assert "no 'now'" in score.reasons["recency"]
    assert score.value == 50.0


def test_recency_counts_from_the_last_stage_change() -> None:
    moved = PIPELINE.move(deal(), "proposal", at=T0 + 20 * DAY)
    rule = sc.recency({timedelta(days=7): 20})
    assert rule.award(moved, T0 + 25 * DAY)[0] == 20
    assert rule.award(moved, T0 + 28 * DAY)[0] == 0


def test_recency_reads_a_later_activity_timestamp_from_a_field() -> None:
    rule = sc.recency({timedelta(days=7): 20}, field="last_activity_at")
    touched = deal(fields={"last_activity_at": "2026-01-20T10:00:00Z"})
    assert rule.award(touched, datetime(2026, 1, 25, tzinfo=timezone.utc))[0] == 20
    assert rule.award(deal(), datetime(2026, 1, 25, tzinfo=timezone.utc))[0] == 0


@pytest.mark.parametrize("stamp", ["yesterday", "2026-01-20T10:00:00", 17])
def test_recency_ignores_an_unreadable_activity_field_and_says_so(stamp: object) -> None:
    rule = sc.recency({timedelta(days=7): 20}, field="last_activity_at")
    points, reason = rule.award(deal(fields={"last_activity_at": stamp}), T0 + 30 * DAY)
    assert points == 0
    assert "not an aware timestamp" in reason


def test_recency_treats_an_activity_after_now_as_just_now() -> None:
    rule = sc.recency({DAY: 5})
    assert rule.award(deal(), T0 - 3 * DAY)[0] == 5


# -- the score ---------------------------------------------------------------------


CARD = sc.ScoreCard(
    [
        sc.bant("budget", points=20),
        sc.bant("authority", points=20),
        sc.has_field("industry", points=10),
        sc.field_in("source", ["referral", "event"], points=10),
        sc.amount_bands({10_000: 10, 50_000: 20}),
        sc.recency({timedelta(days=7): 20, timedelta(days=30): 10}),
    ]
)


def test_score_is_the_share_of_the_maximum_points_hand_worked() -> None:
    d = deal(amount=20_000, bant=Bant(budget=True), fields={"source": "referral"})
    score = CARD.score(d, now=T0 + 10 * DAY)
    # 20 (budget) + 0 + 0 + 10 (source) + 10 (amount band) + 10 (within 30 days) of 100
    assert score.parts == {
        "bant.budget": 20,
        "bant.authority": 0,
        "has industry": 0,
        "source in ['referral', 'event']": 10,
        "amount": 10,
        "recency": 10,
    }
    assert (score.points, score.max_points, score.value) == (50, 100, 50.0)
    assert "bant.authority: +0 (BANT authority not confirmed)" in score.explain()


def test_score_value_is_normalised_when_weights_do_not_sum_to_100() -> None:
    card = sc.ScoreCard([sc.bant("budget", points=1), sc.bant("need", points=2)])
    assert card.max_points == 3
    assert card.score(deal(bant=Bant(budget=True))).value == pytest.approx(100 / 3)
    assert card.score(deal(bant=Bant(budget=True, need=True))).value == 100.0


def test_score_refuses_a_naive_now() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        CARD.score(deal(), now=datetime(2026, 1, 1))


def test_score_cards_compare_equal_by_value() -> None:
    a = sc.ScoreCard([sc.bant("budget", points=5), sc.amount_bands({100: 1})])
    b = sc.ScoreCard((sc.bant("budget", points=5), sc.amount_bands([(Decimal(100), 1)])))
    assert a == b
    assert hash(a) == hash(b)
    assert a != sc.ScoreCard([sc.bant("budget", points=6), sc.amount_bands({100: 1})])


@pytest.mark.parametrize(
    "make",
    [
        lambda: sc.bant("money", points=1),
        lambda: sc.bant("budget", points=0),
        lambda: sc.bant("budget", points=True),
        lambda: sc.bant("budget", points=1, name=" "),
        lambda: sc.has_field("", points=1),
        lambda: sc.field_equals("x", None, points=1),  # type: ignore[arg-type]
        lambda: sc.field_equals("x", float("nan"), points=1),
        lambda: sc.field_equals("x", float("inf"), points=1),
        lambda: sc.field_equals("x", 2**63, points=1),
        lambda: sc.field_equals("x", "a\x00b", points=1),
        lambda: sc.bant("budget", points=10**7),
        lambda: sc.field_in("x", [], points=1),
        lambda: sc.field_in("x", "ab", points=1),
        lambda: sc.amount_bands({}),
        lambda: sc.amount_bands({-1: 5}),
        lambda: sc.amount_bands({10: 0}),
        lambda: sc.amount_bands({1.5: 5}),  # type: ignore[dict-item]
        lambda: sc.recency({timedelta(0): 5}),
        lambda: sc.recency({7: 5}),  # type: ignore[dict-item]
        lambda: sc.ScoreCard([]),
        lambda: sc.ScoreCard(["bant"]),
        lambda: sc.ScoreCard(
            [sc.bant("need", points=1), sc.has_field("x", points=1, name="bant.need")]
        ),
    ],
)
def test_bad_rules_and_cards_are_validation_errors(make: Any) -> None:
    with pytest.raises(ValidationError):
        make()


def test_a_rule_class_made_directly_names_its_bad_field() -> None:
    with pytest.raises(ValidationError, match="unknown BANT criterion 'nope'"):
        sc.BantCriterion("nope", -5, "")


@pytest.mark.parametrize(
    "make",
    [
        lambda: sc.BantCriterion("budget", -5, "b"),
        lambda: sc.BantCriterion("budget", 5, " "),
        lambda: sc.FieldPresent("", 1, "f"),
        lambda: sc.FieldPresent("x", True, "f"),
        lambda: sc.FieldEquals("x", None, 1, "f"),  # type: ignore[arg-type]
        lambda: sc.FieldIn("x", "ab", 1, "f"),
        lambda: sc.FieldIn("x", [], 1, "f"),
        lambda: sc.FieldIn("x", [float("nan")], 1, "f"),
        lambda: sc.AmountBands({}, "a"),
        lambda: sc.AmountBands({10: 0}, "a"),
        lambda: sc.Recency({timedelta(0): 5}, "r"),
        lambda: sc.Recency({DAY: 5}, "r", field=" "),
        lambda: sc.ScoreBand(50, 25, 0, 0),
        lambda: sc.ScoreBand(0, 101, 0, 0),
        lambda: sc.ScoreBand(0, 25, -1, 0),
        lambda: sc.ScoreBand(0, 25, True, 0),
        lambda: sc.ScoreBand("0", 25, 0, 0),  # type: ignore[arg-type]
    ],
)
def test_every_rule_class_validates_on_construction(make: Any) -> None:
    with pytest.raises(ValidationError):
        make()


def test_a_rule_made_directly_equals_the_one_its_factory_makes() -> None:
    assert sc.AmountBands({50: 2, 10: 1}, "amount") == sc.amount_bands([(10, 1), (50, 2)])
    made = sc.FieldIn("x", ["a", "b"], 3, "x in ['a', 'b']")
    assert made == sc.field_in("x", ("a", "b"), points=3)
    assert sc.Recency({DAY: 1}, "recency") == sc.recency([(DAY, 1)])


def test_the_scoring_package_offers_the_min_score_guard() -> None:
    assert sc.min_score is guards.min_score


# -- cards as data -----------------------------------------------------------------


def test_a_card_round_trips_through_toml() -> None:
    card = sc.ScoreCard([*CARD.rules, sc.field_equals("vip", True, points=3)])
    text = tomli_w.dumps(card.to_dict())
    assert sc.ScoreCard.from_dict(tomllib.loads(text)) == card


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"rules": "bant"},
        {"rules": [{"rule": "magic", "name": "x", "points": 1}]},
        {"rules": [{"rule": "bant", "criterion": "budget", "points": 1}]},
        {"rules": [{"rule": "bant", "name": "b", "criterion": "budget", "points": 1, "x": 1}]},
        {"rules": [{"rule": "amount_bands", "name": "a", "bands": [{"points": 1}]}]},
        {
            "rules": [
                {"rule": "recency", "name": "r", "bands": [{"within_seconds": 1e300, "points": 1}]}
            ]
        },
        {
            "rules": [
                {"rule": "recency", "name": "r", "bands": [{"within_seconds": "1", "points": 1}]}
            ]
        },
        {"rules": ["bant"]},
    ],
)
def test_bad_card_data_is_a_validation_error(data: Any) -> None:
    with pytest.raises(ValidationError):
        sc.ScoreCard.from_dict(data)


def test_from_dict_lists_every_bad_rule_in_one_error() -> None:
    good = sc.has_field("industry", points=5).to_dict()
    data = {
        "rules": [
            {"rule": "bant", "name": "b", "criterion": "money", "points": 1},
            good,
            {"rule": "magic", "name": "m", "points": 1},
            {"rule": "field_in", "name": "f", "field": "x", "values": [], "points": 1},
        ]
    }
    with pytest.raises(ValidationError) as raised:
        sc.ScoreCard.from_dict(data)
    message = str(raised.value)
    assert "rules[0]: rule 'bant': unknown BANT criterion 'money'" in message
    assert "rules[1]" not in message
    assert "rules[2]: unknown rule 'magic'" in message
    assert "rules[3]: rule 'field_in': field_in('x') needs at least one value" in message


def test_each_rule_writes_itself_as_its_kind_and_parameters() -> None:
    for rule in CARD.rules:
        assert rule.to_dict() == rule.spec()
        assert sc.ScoreCard.from_dict({"rules": [rule.to_dict()]}).rules == (rule,)


names = st.sampled_from(["a", "b", "c", "d", "e"])


def text(size: int) -> st.SearchStrategy[str]:
    return st.text(st.characters(blacklist_characters="\x00"), max_size=size)


points = st.integers(1, 50)
rules = st.one_of(
    st.builds(
        lambda k, p, n: sc.bant(k, points=p, name=n),
        st.sampled_from(["budget", "need"]),
        points,
        names,
    ),
    st.builds(lambda f, p, n: sc.has_field(f, points=p, name=n), names, points, names),
    st.builds(
        lambda f, v, p, n: sc.field_equals(f, v, points=p, name=n),
        names,
        st.one_of(text(5), st.integers(-5, 5), st.booleans()),
        points,
        names,
    ),
    st.builds(
        lambda b, n: sc.amount_bands(b, name=n),
        st.dictionaries(st.integers(0, 10**6), st.integers(1, 20), min_size=1, max_size=4),
        names,
    ),
    st.builds(
        lambda b, n: sc.recency({timedelta(hours=h): p for h, p in b.items()}, name=n),
        st.dictionaries(st.integers(1, 10**4), st.integers(1, 20), min_size=1, max_size=4),
        names,
    ),
)
cards = st.lists(rules, min_size=1, max_size=5, unique_by=lambda r: r.name).map(sc.ScoreCard)


@given(
    cards,
    st.integers(0, 10**6),
    st.builds(Bant, st.booleans(), st.booleans(), st.booleans(), st.booleans()),
    st.dictionaries(names, st.one_of(st.none(), text(3), st.integers(-5, 5))),
    st.integers(0, 10**5),
)
def test_score_is_within_0_100_and_sums_its_parts(
    card: sc.ScoreCard, amount: int, bant: Bant, fields: dict[str, Any], hours: int
) -> None:
    score = card.score(
        deal(amount=amount, bant=bant, fields=fields), now=T0 + timedelta(hours=hours)
    )
    assert 0 <= score.value <= 100
    assert score.points == sum(score.parts.values())
    assert score.value == 100 * score.points / card.max_points
    assert list(score.parts) == [r.name for r in card.rules]
    assert all(0 <= score.parts[r.name] <= r.points for r in card.rules)
    assert sc.ScoreCard.from_dict(tomllib.loads(tomli_w.dumps(card.to_dict()))) == card


# -- min_score guard ---------------------------------------------------------------

HALF = sc.ScoreCard([sc.bant("budget", points=50), sc.has_field("industry", points=50)])


def test_min_score_passes_at_the_threshold_and_explains_a_refusal() -> None:
    guard = guards.min_score(HALF, 50)
    assert guard(deal(bant=Bant(budget=True))) == ()
    (violation,) = guard(deal())
    assert (violation.rule, violation.field) == ("min_score", "score")
    assert "0.0 is below the minimum 50" in violation.message
    assert "bant.budget, has industry" in violation.message


def test_min_score_blocks_the_proposal_stage() -> None:
    gated = Pipeline(
        "gated",
        [
            Stage("lead", probability=0.1),
            Stage("proposal", probability=0.5, requires=guards.min_score(HALF, 75)),
        ],
    )
    d = gated.start("d", at=T0, bant=Bant(budget=True))
    with pytest.raises(StageBlockedError) as refused:
        gated.advance(d, at=T0)
    assert [v.rule for v in refused.value.violations] == ["min_score"]
    ready = d.evolve(fields={"industry": "retail"})
    assert gated.advance(ready, at=T0).stage == "proposal"


def test_min_score_combines_with_other_guards() -> None:
    either = guards.min_score(HALF, 100) | guards.min_amount(1_000)
    assert either(deal(amount=1_000)) == ()
    both = guards.min_score(HALF, 50) & guards.bant("need")
    assert [v.rule for v in both(deal(bant=Bant(budget=True)))] == ["bant"]


def test_min_score_uses_its_clock_for_time_based_rules() -> None:
    card = sc.ScoreCard([sc.recency({timedelta(days=7): 10})])
    assert guards.min_score(card, 100)(deal()) != ()
    assert guards.min_score(card, 100, clock=lambda: T0 + DAY)(deal()) == ()
    assert guards.min_score(card, 100, clock=lambda: T0 + 8 * DAY)(deal()) != ()
    assert guards.min_score(card, 100, clock=lambda: T0) == guards.min_score(card, 100)


def test_min_score_spec_rebuilds_an_equal_guard_from_the_registry() -> None:
    guard = guards.min_score(CARD, 60)
    spec = tomllib.loads(tomli_w.dumps(guard.spec()))
    kind = spec.pop("guard")
    assert guards.registered()[kind](**spec) == guard


def test_a_pipeline_with_min_score_round_trips_as_a_definition() -> None:
    gated = Pipeline(
        "gated",
        [
            Stage("lead", probability=0.1),
            Stage("proposal", probability=0.5, requires=guards.min_score(CARD, 60)),
        ],
    )
    data = tomllib.loads(tomli_w.dumps(gated.to_dict()))
    assert Pipeline.from_dict(data) == gated


def test_a_definition_with_a_bad_score_card_is_a_definition_error() -> None:
    gated = Pipeline(
        "gated",
        [
            Stage("lead", probability=0.1),
            Stage("proposal", probability=0.5, requires=guards.min_score(HALF, 60)),
        ],
    )
    data = gated.to_dict()
    data["stages"][1]["requires"][0]["scorecard"]["rules"][0]["criterion"] = "money"
    with pytest.raises(DefinitionError, match="money"):
        Pipeline.from_dict(data)


def test_a_definition_lists_every_bad_rule_of_its_score_card() -> None:
    gated = Pipeline(
        "gated",
        [
            Stage("lead", probability=0.1),
            Stage("proposal", probability=0.5, requires=guards.min_score(HALF, 60)),
        ],
    )
    data = gated.to_dict()
    rules = data["stages"][1]["requires"][0]["scorecard"]["rules"]
    rules[0]["criterion"] = "money"
    rules[1]["points"] = 0
    with pytest.raises(DefinitionError) as raised:
        Pipeline.from_dict(data)
    (problem,) = raised.value.problems
    assert problem.startswith("stage #2 ('proposal'): requires[0]: guard 'min_score':")
    assert "rules[0]: rule 'bant': unknown BANT criterion 'money'" in problem
    assert "rules[1]: rule 'has_field': points must be" in problem


@pytest.mark.parametrize(
    "make",
    [
        lambda: guards.min_score(CARD.to_dict(), 50),  # type: ignore[arg-type]
        lambda: guards.min_score(CARD, 101),
        lambda: guards.min_score(CARD, -1),
        lambda: guards.min_score(CARD, True),
        lambda: guards.min_score(CARD, float("nan")),
        lambda: guards.min_score(CARD, 5, clock=5),  # type: ignore[arg-type]
    ],
)
def test_bad_min_score_parameters_are_validation_errors(make: Any) -> None:
    with pytest.raises(ValidationError):
        make()


# -- does the score predict wins? --------------------------------------------------


def test_conversion_by_score_band_hand_worked() -> None:
    deals = [
        closed("w100", True, bant=Bant(budget=True), fields={"industry": "x"}),  # 100
        closed("w50", True, bant=Bant(budget=True)),  # 50
        closed("l50", False, fields={"industry": "x"}),  # 50
        closed("l0a", False),  # 0
        closed("l0b", False),  # 0
        closed("w0", True),  # 0
        deal("open", bant=Bant(budget=True)),  # open: ignored
    ]
    other = Pipeline("other", [Stage("lead", probability=0.1)])
    deals.append(other.win(other.start("elsewhere", at=T0), at=T0))  # other pipeline
    bands = sc.conversion_by_score_band(deals, PIPELINE, HALF)
    assert [(b.low, b.high, b.won, b.lost) for b in bands] == [
        (0, 25, 1, 2),
        (25, 50, 0, 0),
        (50, 75, 1, 1),
        (75, 100, 1, 0),
    ]
    assert [b.win_rate for b in bands] == [pytest.approx(1 / 3), None, 0.5, 1.0]
    assert bands[0].closed == 3


def test_conversion_by_score_band_with_custom_edges() -> None:
    deals = [closed("a", True, bant=Bant(budget=True)), closed("b", False)]
    bands = sc.conversion_by_score_band(deals, PIPELINE, HALF, bands=(0, 50, 100))
    assert [(b.won, b.lost) for b in bands] == [(0, 1), (1, 0)]


@pytest.mark.parametrize("edges", [(), (0,), (0, 50), (10, 100), (0, 50, 50, 100), (0, "x", 100)])
def test_bad_score_bands_are_validation_errors(edges: Any) -> None:
    with pytest.raises(ValidationError):
        sc.conversion_by_score_band([], PIPELINE, HALF, bands=edges)
